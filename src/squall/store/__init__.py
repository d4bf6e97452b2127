"""squall's persistence layer: the embedded SQLite store and content-addressed blob files.

This package is the lowest layer of squall and imports nothing else from it.
"""

from squall.store.blobs import BlobRef, BlobStore, BlobWriter
from squall.store.db import (
    DB_FILENAME,
    Migration,
    MigrationError,
    SchemaDowngradeError,
    Store,
    StoreError,
    open_store,
)

__all__ = [
    "DB_FILENAME",
    "BlobRef",
    "BlobStore",
    "BlobWriter",
    "Migration",
    "MigrationError",
    "SchemaDowngradeError",
    "Store",
    "StoreError",
    "open_store",
]
