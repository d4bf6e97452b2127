"""S3's metadata in SQLite: buckets, objects, multipart uploads and their parts.

Object bytes live in files (see `files.py`); a row names its files as `segments`, a list of
`[file, size]` (one for a plain upload, one per part for a completed multipart upload), so an
object appears exactly when its row commits and its files were made durable before that.
Keys are TEXT compared with SQLite's BINARY collation, which is S3's order (UTF-8 bytes).
All calls run on the event-loop thread, on `Store.conn`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from squall.store import Store

COMPONENT = "s3"
MIGRATIONS = [
    """
    CREATE TABLE s3_buckets (
        name TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        created REAL NOT NULL,
        config TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE s3_objects (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        modified REAL NOT NULL,
        segments TEXT NOT NULL,
        meta TEXT NOT NULL,
        PRIMARY KEY (bucket, key)
    ) WITHOUT ROWID;
    CREATE TABLE s3_uploads (
        id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        initiated REAL NOT NULL,
        meta TEXT NOT NULL
    );
    CREATE INDEX s3_uploads_by_key ON s3_uploads (bucket, key, initiated);
    CREATE TABLE s3_parts (
        upload TEXT NOT NULL,
        number INTEGER NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        modified REAL NOT NULL,
        file TEXT NOT NULL,
        checksum TEXT,
        PRIMARY KEY (upload, number)
    ) WITHOUT ROWID;
    """,
]

Segments = list[tuple[str, int]]


@dataclass(slots=True)
class Bucket:
    name: str
    account: str
    region: str
    created: float
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StoredObject:
    """One object's metadata. `meta` holds the content headers, user metadata, checksums,
    tags and part count, as the handlers set them."""

    bucket: str
    key: str
    size: int
    etag: str  # quoted, as S3 shows it
    modified: float
    segments: Segments
    meta: dict[str, Any]


@dataclass(slots=True)
class Upload:
    id: str
    bucket: str
    key: str
    initiated: float
    meta: dict[str, Any]


@dataclass(slots=True)
class Part:
    number: int
    size: int
    etag: str  # quoted
    modified: float
    file: str
    checksum: str | None


class S3Store:
    def __init__(self, store: Store) -> None:
        self._store = store
        store.migrate(COMPONENT, MIGRATIONS)

    @property
    def conn(self) -> Any:
        return self._store.conn

    def transaction(self) -> Any:
        return self._store.transaction()

    # -- buckets ------------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket | None:
        row = self.conn.execute(
            "SELECT name, account, region, created, config FROM s3_buckets WHERE name = ?",
            (name,),
        ).fetchone()
        return _bucket(row) if row else None

    def buckets(self, account: str) -> list[Bucket]:
        rows = self.conn.execute(
            "SELECT name, account, region, created, config FROM s3_buckets WHERE account = ?"
            " ORDER BY name",
            (account,),
        ).fetchall()
        return [_bucket(row) for row in rows]

    def create_bucket(self, bucket: Bucket) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO s3_buckets (name, account, region, created, config)"
                " VALUES (?, ?, ?, ?, ?)",
                (bucket.name, bucket.account, bucket.region, bucket.created, _dumps(bucket.config)),
            )

    def set_bucket_config(self, name: str, config: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE s3_buckets SET config = ? WHERE name = ?", (_dumps(config), name))

    def delete_bucket(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM s3_buckets WHERE name = ?", (name,))

    def is_empty(self, name: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM s3_objects WHERE bucket = ? LIMIT 1", (name,))
        return row.fetchone() is None

    def uploads_in(self, name: str) -> list[str]:
        rows = self.conn.execute("SELECT id FROM s3_uploads WHERE bucket = ?", (name,))
        return [row[0] for row in rows]

    # -- objects ------------------------------------------------------------------------------

    def object(self, bucket: str, key: str) -> StoredObject | None:
        row = self.conn.execute(
            "SELECT bucket, key, size, etag, modified, segments, meta FROM s3_objects"
            " WHERE bucket = ? AND key = ?",
            (bucket, key),
        ).fetchone()
        return _object(row) if row else None

    def objects_after(self, bucket: str, after: str, prefix: str, limit: int) -> list[StoredObject]:
        """Up to `limit` objects with key > `after` starting with `prefix`, in key order."""
        if prefix:
            # keys starting with `prefix` sort between it and `prefix` + the last code point
            # (short of keys that continue with U+10FFFF itself, a noncharacter)
            rows = self.conn.execute(
                "SELECT bucket, key, size, etag, modified, segments, meta FROM s3_objects"
                " WHERE bucket = ? AND key >= ? AND key > ? AND key < ?"
                " AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
                (bucket, prefix, after, prefix + "\U0010ffff", len(prefix), prefix, limit),
            )
        else:
            rows = self.conn.execute(
                "SELECT bucket, key, size, etag, modified, segments, meta FROM s3_objects"
                " WHERE bucket = ? AND key > ? ORDER BY key LIMIT ?",
                (bucket, after, limit),
            )
        return [_object(row) for row in rows]

    def put_object(self, obj: StoredObject) -> StoredObject | None:
        """Insert or replace an object (inside the caller's transaction, if any); returns the
        object it replaced, whose files the caller deletes once the transaction commits."""
        with self.transaction() as conn:
            previous = self.object(obj.bucket, obj.key)
            conn.execute(
                "INSERT OR REPLACE INTO s3_objects"
                " (bucket, key, size, etag, modified, segments, meta)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    obj.bucket,
                    obj.key,
                    obj.size,
                    obj.etag,
                    obj.modified,
                    _dumps(obj.segments),
                    _dumps(obj.meta),
                ),
            )
        return previous

    def set_object_meta(self, bucket: str, key: str, meta: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE s3_objects SET meta = ? WHERE bucket = ? AND key = ?",
                (_dumps(meta), bucket, key),
            )

    def delete_object(self, bucket: str, key: str) -> StoredObject | None:
        """Delete an object (inside the caller's transaction, if any); returns it."""
        with self.transaction() as conn:
            previous = self.object(bucket, key)
            if previous is not None:
                conn.execute("DELETE FROM s3_objects WHERE bucket = ? AND key = ?", (bucket, key))
        return previous

    # -- multipart uploads --------------------------------------------------------------------

    def create_upload(self, upload: Upload) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO s3_uploads (id, bucket, key, initiated, meta) VALUES (?, ?, ?, ?, ?)",
                (upload.id, upload.bucket, upload.key, upload.initiated, _dumps(upload.meta)),
            )

    def upload(self, upload_id: str) -> Upload | None:
        row = self.conn.execute(
            "SELECT id, bucket, key, initiated, meta FROM s3_uploads WHERE id = ?", (upload_id,)
        ).fetchone()
        return Upload(row[0], row[1], row[2], row[3], orjson.loads(row[4])) if row else None

    def uploads(self, bucket: str) -> Iterator[Upload]:
        rows = self.conn.execute(
            "SELECT id, bucket, key, initiated, meta FROM s3_uploads WHERE bucket = ?"
            " ORDER BY key, initiated, id",
            (bucket,),
        ).fetchall()
        for row in rows:
            yield Upload(row[0], row[1], row[2], row[3], orjson.loads(row[4]))

    def put_part(self, upload_id: str, part: Part) -> Part | None:
        """Record a part (replacing one with the same number); returns the replaced part."""
        with self.transaction() as conn:
            previous = self.part(upload_id, part.number)
            conn.execute(
                "INSERT OR REPLACE INTO s3_parts"
                " (upload, number, size, etag, modified, file, checksum)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    upload_id,
                    part.number,
                    part.size,
                    part.etag,
                    part.modified,
                    part.file,
                    part.checksum,
                ),
            )
        return previous

    def part(self, upload_id: str, number: int) -> Part | None:
        row = self.conn.execute(
            "SELECT number, size, etag, modified, file, checksum FROM s3_parts"
            " WHERE upload = ? AND number = ?",
            (upload_id, number),
        ).fetchone()
        return Part(*row) if row else None

    def parts(self, upload_id: str, after: int = 0, limit: int = 10_001) -> list[Part]:
        rows = self.conn.execute(
            "SELECT number, size, etag, modified, file, checksum FROM s3_parts"
            " WHERE upload = ? AND number > ? ORDER BY number LIMIT ?",
            (upload_id, after, limit),
        )
        return [Part(*row) for row in rows]

    def delete_upload(self, upload_id: str) -> list[Part]:
        """Forget an upload and its parts (inside the caller's transaction, if any); returns
        the parts, whose files the caller deletes or adopts."""
        with self.transaction() as conn:
            parts = self.parts(upload_id)
            conn.execute("DELETE FROM s3_parts WHERE upload = ?", (upload_id,))
            conn.execute("DELETE FROM s3_uploads WHERE id = ?", (upload_id,))
        return parts

    # -- files --------------------------------------------------------------------------------

    def referenced_files(self) -> set[str]:
        """Every file a row points at (for collecting the files a crash left behind)."""
        names: set[str] = set()
        for (segments,) in self.conn.execute("SELECT segments FROM s3_objects"):
            names.update(name for name, _ in orjson.loads(segments))
        names.update(row[0] for row in self.conn.execute("SELECT file FROM s3_parts"))
        return names


def _bucket(row: tuple[Any, ...]) -> Bucket:
    return Bucket(row[0], row[1], row[2], row[3], orjson.loads(row[4]))


def _object(row: tuple[Any, ...]) -> StoredObject:
    segments = [(name, size) for name, size in orjson.loads(row[5])]
    return StoredObject(row[0], row[1], row[2], row[3], row[4], segments, orjson.loads(row[6]))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
