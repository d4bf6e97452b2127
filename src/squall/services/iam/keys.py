"""Access keys: which secret signs for which account and principal.

The default development key `test` / `test` belongs to the root of account `000000000000`.
Lookups are served from memory; the table is read once and on every change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from squall.core.config import DEFAULT_ACCOUNT
from squall.core.context import Principal
from squall.store import Store

DEFAULT_ACCESS_KEY_ID = "test"
DEFAULT_SECRET_ACCESS_KEY = "test"

MIGRATIONS = [
    """
    CREATE TABLE access_keys (
        access_key_id TEXT PRIMARY KEY,
        secret_access_key TEXT NOT NULL,
        account_id TEXT NOT NULL,
        principal_arn TEXT NOT NULL,
        principal_id TEXT NOT NULL,
        principal_type TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'Active',
        created REAL NOT NULL
    )
    """,
]


@dataclass(frozen=True, slots=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str
    principal: Principal


def root_principal(account_id: str, access_key_id: str = "") -> Principal:
    return Principal(
        account_id=account_id,
        arn=f"arn:aws:iam::{account_id}:root",
        user_id=account_id,
        type="Root",
        access_key_id=access_key_id,
    )


class AccessKeys:
    """The store of access keys, cached in memory."""

    def __init__(self, store: Store) -> None:
        self._store = store
        store.migrate("iam.access_keys", MIGRATIONS)
        self._cache: dict[str, AccessKey] = {}
        self.ensure_default()
        self._reload()

    def ensure_default(self) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO access_keys VALUES (?, ?, ?, ?, ?, 'Root', 'Active', ?)",
                (
                    DEFAULT_ACCESS_KEY_ID,
                    DEFAULT_SECRET_ACCESS_KEY,
                    DEFAULT_ACCOUNT,
                    f"arn:aws:iam::{DEFAULT_ACCOUNT}:root",
                    DEFAULT_ACCOUNT,
                    time.time(),
                ),
            )

    def add(self, key: AccessKey) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO access_keys VALUES (?, ?, ?, ?, ?, ?, 'Active', ?)",
                (
                    key.access_key_id,
                    key.secret_access_key,
                    key.principal.account_id,
                    key.principal.arn,
                    key.principal.user_id,
                    key.principal.type,
                    time.time(),
                ),
            )
        self._reload()

    def lookup(self, access_key_id: str) -> AccessKey | None:
        return self._cache.get(access_key_id)

    def _reload(self) -> None:
        rows = self._store.conn.execute(
            "SELECT access_key_id, secret_access_key, account_id, principal_arn, principal_id,"
            " principal_type FROM access_keys WHERE status = 'Active'"
        ).fetchall()
        self._cache = {
            row[0]: AccessKey(
                access_key_id=row[0],
                secret_access_key=row[1],
                principal=Principal(
                    account_id=row[2],
                    arn=row[3],
                    user_id=row[4],
                    type=row[5],
                    access_key_id=row[0],
                ),
            )
            for row in rows
        }
