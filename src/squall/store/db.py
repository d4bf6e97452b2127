"""The embedded SQLite store: one database file shared by every squall service.

Durability model
----------------
The database runs in WAL mode with ``synchronous=NORMAL`` by default. In WAL mode a transaction
is committed once its frames are appended to the write-ahead log; with ``NORMAL`` SQLite skips the
fsync at each commit and only syncs the log at checkpoints. That is safe against a crash of the
squall process itself (including ``kill -9`` or an OOM kill): the appended frames are already in
the operating system's page cache and are replayed on the next open, so every committed
transaction survives and the database is never corrupted. Only an operating-system crash or a
power loss can lose the most recent transactions (the database still stays consistent, it just
rolls back to an earlier commit). Pass ``synchronous="FULL"`` to fsync the log on every commit
when that trade-off is not acceptable.

Threading
---------
``Store.conn`` belongs to the thread that created the store (the event-loop thread). Any other
thread must open its own connection with :meth:`Store.connect`; connections are never shared
across threads (``check_same_thread`` stays on).

Transactions
------------
Connections are in autocommit mode (``isolation_level=None``): the ``sqlite3`` module never opens
transactions implicitly. Group statements with :meth:`Store.transaction`, which issues
``BEGIN IMMEDIATE`` (taking the write lock up front, so concurrent writers wait on the busy timeout
rather than failing with a deadlock half-way through).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import count
from pathlib import Path

__all__ = [
    "DB_FILENAME",
    "Migration",
    "MigrationError",
    "SchemaDowngradeError",
    "Store",
    "StoreError",
    "open_store",
]

DB_FILENAME = "squall.db"
BUSY_TIMEOUT_MS = 5000
SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

Migration = str | Callable[[sqlite3.Connection], None]
"""One schema step: an SQL script (one or more statements) or a callable given the connection.

A callable runs inside the step's transaction and must not commit or roll back itself.
"""

_SCHEMA_VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    " component TEXT PRIMARY KEY,"
    " version INTEGER NOT NULL"
    ")"
)

_savepoint_ids = count(1)


class StoreError(Exception):
    """Base class for errors raised by the store."""


class MigrationError(StoreError):
    """A schema migration could not be applied; the component's version is left unchanged."""


class SchemaDowngradeError(MigrationError):
    """The database holds a newer schema for a component than this code knows how to handle."""


class Store:
    """An SQLite database opened with squall's pragmas, plus per-component schema migrations.

    ``path`` is the database file (parent directories are created). ``synchronous`` is the
    SQLite ``synchronous`` pragma: ``NORMAL`` (default, survives process crashes) or ``FULL``
    (also survives OS crashes and power loss, at the cost of an fsync per commit).
    """

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}, not {mode!r}"
            )
        self.path = Path(path)
        self.synchronous = mode
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn: sqlite3.Connection = self.connect()

    def connect(self) -> sqlite3.Connection:
        """Open a new connection with the store's pragmas, for use by the calling thread only."""
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, cached_statements=256
        )
        try:
            _configure(conn, self.synchronous)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def transaction(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """Run the block in a transaction on ``conn`` (default: ``self.conn``).

        Issues ``BEGIN IMMEDIATE``, then ``COMMIT`` when the block exits normally and
        ``ROLLBACK`` when it raises (the exception propagates). When ``conn`` already has a
        transaction open, the block runs in a savepoint instead, so transactional helpers compose:
        an exception rolls back only the nested block's changes.
        """
        conn = self.conn if conn is None else conn
        if conn.in_transaction:
            with _savepoint(conn):
                yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            _rollback_quietly(conn)
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            _rollback_quietly(conn)
            raise

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Bring ``component``'s tables up to ``len(migrations)`` and return the new version.

        The version recorded in ``schema_versions`` counts the steps already applied; the steps
        ``migrations[version:]`` run in order, each in its own ``BEGIN IMMEDIATE`` transaction
        together with its version bump, so a crash or an error never leaves a half-applied step.
        The version is re-read inside each transaction, so processes racing to migrate the same
        database apply every step exactly once. Never edit or reorder a released step: append.

        Raises :class:`SchemaDowngradeError` if the database is newer than ``migrations`` and
        :class:`MigrationError` (chained to the cause) if a step fails.
        """
        if not component:
            raise ValueError("component must be a non-empty string")
        target = len(migrations)
        self.conn.execute(_SCHEMA_VERSIONS_DDL)
        while True:
            with self.transaction() as conn:
                version = _read_version(conn, component)
                _check_not_newer(component, version, target)
                if version == target:
                    return version
                _apply_step(conn, component, version, migrations[version])

    def version(self, component: str) -> int:
        """The schema version recorded for ``component`` (0 when it was never migrated)."""
        self.conn.execute(_SCHEMA_VERSIONS_DDL)
        return _read_version(self.conn, component)

    def close(self) -> None:
        """Close the event-loop connection (connections from :meth:`connect` are the caller's)."""
        with suppress(sqlite3.Error):
            self.conn.execute("PRAGMA optimize")
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, synchronous={self.synchronous!r})"


def open_store(data_dir: Path, *, synchronous: str = "NORMAL") -> Store:
    """Open ``data_dir / "squall.db"``, creating ``data_dir`` (mode 0o700) if needed."""
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    return Store(data_dir / DB_FILENAME, synchronous=synchronous)


def _configure(conn: sqlite3.Connection, synchronous: str) -> None:
    """Apply squall's pragmas to a fresh connection."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    (journal_mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(journal_mode).lower() != "wal":
        raise StoreError(f"could not enable WAL mode (journal_mode is {journal_mode!r})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite may already have rolled back)."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    """A nested transaction inside an already open one."""
    name = f"squall_sp_{next(_savepoint_ids)}"
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def _read_version(conn: sqlite3.Connection, component: str) -> int:
    row = conn.execute(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def _check_not_newer(component: str, version: int, target: int) -> None:
    if version > target:
        raise SchemaDowngradeError(
            f"database schema for {component!r} is at version {version} but this version of "
            f"squall only knows {target} migration(s); refusing to downgrade (upgrade squall or "
            "restore a backup made by this version)"
        )


def _apply_step(conn: sqlite3.Connection, component: str, version: int, step: Migration) -> None:
    """Run step ``version`` (0-based) and record ``version + 1`` in the open transaction."""
    try:
        if isinstance(step, str):
            for statement in split_sql(step):
                conn.execute(statement)
        else:
            step(conn)
    except Exception as exc:
        raise MigrationError(
            f"migration {version + 1} of {component!r} failed: {exc}; schema left at version "
            f"{version}"
        ) from exc
    if not conn.in_transaction:
        raise MigrationError(
            f"migration {version + 1} of {component!r} ended the transaction itself; migrations "
            "must not COMMIT or ROLLBACK"
        )
    conn.execute(
        "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
        " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        (component, version + 1),
    )


def split_sql(script: str) -> list[str]:
    """Split an SQL script into complete statements.

    ``Connection.executescript`` commits any open transaction first, so migrations execute
    statements one by one instead. Semicolons inside string literals, comments and trigger
    bodies are handled by asking SQLite whether the text so far is a complete statement.
    """
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";")[:-1]:
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    rest = (buffer + script.rsplit(";", maxsplit=1)[-1]).strip()
    if rest:
        statements.append(rest)
    return statements
