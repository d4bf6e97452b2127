"""Tests for squall.store.db: pragmas, migrations, transactions, threads and crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import squall
from squall.store import (
    MigrationError,
    SchemaDowngradeError,
    Store,
    open_store,
)
from squall.store.db import split_sql

ITEMS_V1 = [
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    """
    CREATE TABLE tags (item_id INTEGER NOT NULL REFERENCES items(id), tag TEXT NOT NULL);
    CREATE INDEX tags_by_item ON tags (item_id);
    """,
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "sub" / "dir" / "test.db")
    yield s
    s.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_pragmas(store: Store) -> None:
    assert store.path.exists()
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert store.conn.isolation_level is None


def test_synchronous_full_and_invalid(tmp_path: Path) -> None:
    with Store(tmp_path / "full.db", synchronous="FULL") as s:
        assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with pytest.raises(ValueError):
        Store(tmp_path / "bad.db", synchronous="SOMETIMES; DROP TABLE x")


def test_open_store_creates_private_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with open_store(data_dir) as s:
        assert s.path == data_dir / "squall.db"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    data_dir.chmod(0o755)
    open_store(data_dir).close()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_migrations_applied_once_and_idempotent_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    calls: list[int] = []

    def step3(conn: sqlite3.Connection) -> None:
        calls.append(1)
        conn.execute("INSERT INTO items (name) VALUES ('seed')")

    with Store(path) as s:
        assert s.migrate("items", ITEMS_V1) == 2
        assert {"items", "tags", "schema_versions"} <= tables(s.conn)
        assert s.migrate("items", ITEMS_V1) == 2
        assert s.version("items") == 2
        assert s.version("other") == 0

    with Store(path) as s:
        assert s.migrate("items", [*ITEMS_V1, step3]) == 3
        assert s.migrate("items", [*ITEMS_V1, step3]) == 3
    with Store(path) as s:
        assert s.migrate("items", [*ITEMS_V1, step3]) == 3
        assert s.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 1
    assert calls == [1]


def test_components_are_versioned_independently(store: Store) -> None:
    assert store.migrate("a", ["CREATE TABLE a (x)"]) == 1
    assert store.migrate("b", ["CREATE TABLE b (x)", "CREATE TABLE b2 (x)"]) == 2
    assert store.version("a") == 1
    assert store.version("b") == 2
    assert store.migrate("empty", []) == 0


def test_failing_migration_rolls_back_and_keeps_version(store: Store) -> None:
    assert store.migrate("items", ITEMS_V1[:1]) == 1
    broken = """
        CREATE TABLE half_done (x);
        INSERT INTO items (name) VALUES ('should vanish');
        INSERT INTO no_such_table VALUES (1);
    """
    with pytest.raises(MigrationError, match="migration 2 of 'items'") as info:
        store.migrate("items", [ITEMS_V1[0], broken])
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert store.version("items") == 1
    assert "half_done" not in tables(store.conn)
    assert store.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0
    assert not store.conn.in_transaction

    def boom(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE from_callable (x)")
        raise RuntimeError("boom")

    with pytest.raises(MigrationError, match="boom"):
        store.migrate("items", [ITEMS_V1[0], boom])
    assert "from_callable" not in tables(store.conn)
    assert store.version("items") == 1
    # A fixed step then applies normally.
    assert store.migrate("items", ITEMS_V1) == 2


def test_earlier_steps_stay_applied_when_a_later_one_fails(store: Store) -> None:
    with pytest.raises(MigrationError):
        store.migrate("c", ["CREATE TABLE c1 (x)", "CREATE TABLE c2 (x)", "NOT SQL AT ALL"])
    assert store.version("c") == 2
    assert {"c1", "c2"} <= tables(store.conn)


def test_migration_that_commits_itself_is_rejected(store: Store) -> None:
    def sneaky(conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    with pytest.raises(MigrationError, match="must not COMMIT"):
        store.migrate("sneaky", [sneaky])
    assert store.version("sneaky") == 0


def test_downgrade_detected(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with Store(path) as s:
        s.migrate("items", ITEMS_V1)
    with Store(path) as s, pytest.raises(SchemaDowngradeError, match="version 2"):
        s.migrate("items", ITEMS_V1[:1])
    with Store(path) as s:
        assert s.version("items") == 2


def test_concurrent_migrations_apply_each_step_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    with Store(path) as s:
        s.migrate("race", ["CREATE TABLE applied (step INTEGER NOT NULL)"])

    def step(n: int) -> Callable[[sqlite3.Connection], None]:
        def run(conn: sqlite3.Connection) -> None:
            time.sleep(0.01)
            conn.execute("INSERT INTO applied (step) VALUES (?)", (n,))

        return run

    steps = ["CREATE TABLE applied (step INTEGER NOT NULL)"] + [step(n) for n in range(2, 7)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def racer() -> None:
        try:
            with Store(path) as s:
                barrier.wait()
                assert s.migrate("race", steps) == 6
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with Store(path) as s:
        applied = [r[0] for r in s.conn.execute("SELECT step FROM applied ORDER BY rowid")]
    assert applied == [2, 3, 4, 5, 6]


def test_sql_script_with_trigger_and_semicolons_in_strings(store: Store) -> None:
    script = """
        CREATE TABLE log (msg TEXT);  -- a comment; with a semicolon
        CREATE TABLE t (v TEXT);
        CREATE TRIGGER t_log AFTER INSERT ON t BEGIN
            INSERT INTO log VALUES ('inserted; ' || new.v);
        END;
        INSERT INTO t VALUES ('a;b')
    """
    assert len(split_sql(script)) == 4
    store.migrate("trig", [script])
    assert store.conn.execute("SELECT msg FROM log").fetchall() == [("inserted; a;b",)]


def test_transaction_commits_and_rolls_back(store: Store) -> None:
    store.migrate("items", ITEMS_V1)
    with store.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('kept')")
    with pytest.raises(KeyError), store.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('lost')")
        raise KeyError("abort")
    names = [r[0] for r in store.conn.execute("SELECT name FROM items")]
    assert names == ["kept"]
    assert not store.conn.in_transaction


def test_nested_transaction_uses_savepoint(store: Store) -> None:
    store.migrate("items", ITEMS_V1)
    with store.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('outer')")
        with pytest.raises(ValueError), store.transaction(conn):
            conn.execute("INSERT INTO items (name) VALUES ('inner')")
            raise ValueError
        with store.transaction(conn):
            conn.execute("INSERT INTO items (name) VALUES ('inner2')")
    names = sorted(r[0] for r in store.conn.execute("SELECT name FROM items"))
    assert names == ["inner2", "outer"]


def test_foreign_keys_enforced(store: Store) -> None:
    store.migrate("items", ITEMS_V1)
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as conn:
        conn.execute("INSERT INTO tags (item_id, tag) VALUES (42, 'orphan')")


def test_worker_thread_connection_sees_committed_data(store: Store) -> None:
    store.migrate("items", ITEMS_V1)
    with store.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('from loop')")
    seen: list[object] = []

    def worker() -> None:
        conn = store.connect()
        try:
            seen.append(conn.execute("SELECT name FROM items").fetchall())
            seen.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
            with store.transaction(conn) as c:
                c.execute("INSERT INTO items (name) VALUES ('from worker')")
        except Exception as exc:
            seen.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert seen == [[("from loop",)], "wal"]
    names = [r[0] for r in store.conn.execute("SELECT name FROM items ORDER BY id")]
    assert names == ["from loop", "from worker"]


def test_loop_connection_is_bound_to_its_thread(store: Store) -> None:
    errors: list[Exception] = []

    def misuse() -> None:
        try:
            store.conn.execute("SELECT 1")
        except sqlite3.ProgrammingError as exc:
            errors.append(exc)

    thread = threading.Thread(target=misuse)
    thread.start()
    thread.join(10)
    assert len(errors) == 1


ROWS_PER_TXN = 10

CRASH_WRITER = textwrap.dedent(
    f"""
    import sys
    from pathlib import Path
    from squall.store import Store

    store = Store(Path(sys.argv[1]))
    store.migrate("crash", ["CREATE TABLE rows (txn INTEGER NOT NULL, n INTEGER NOT NULL, "
                            "payload BLOB NOT NULL)"])
    txn = 0
    while True:
        txn += 1
        with store.transaction() as conn:
            conn.executemany(
                "INSERT INTO rows (txn, n, payload) VALUES (?, ?, randomblob(200))",
                [(txn, n) for n in range({ROWS_PER_TXN})],
            )
        if txn % 50 == 0:
            print(txn, flush=True)
    """
)


def test_kill_9_mid_write_keeps_database_consistent(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    src_dir = Path(squall.__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src_dir), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_WRITER, str(db)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        acknowledged = 0
        deadline = time.monotonic() + 30
        while acknowledged < 500 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged = int(line)
        assert acknowledged >= 500, "writer did not make progress"
        time.sleep(0.05)  # let it get well into further transactions
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    with Store(db) as s:
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = s.conn.execute("SELECT count(*) FROM rows").fetchone()[0]
        assert count % ROWS_PER_TXN == 0
        assert count >= acknowledged * ROWS_PER_TXN  # every committed transaction survived
        per_txn = s.conn.execute(
            "SELECT count(*) FROM (SELECT txn FROM rows GROUP BY txn HAVING count(*) != ?)",
            (ROWS_PER_TXN,),
        ).fetchone()[0]
        assert per_txn == 0
        assert s.version("crash") == 1
