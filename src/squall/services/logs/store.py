"""Log groups, streams and events in SQLite.

Events live in one table clustered by `(group_id, ts, seq)` (a WITHOUT ROWID table), so a
time-range scan of a group (FilterLogEvents) reads its rows in order from adjacent pages; a
secondary index `(stream_id, ts, seq)` serves one stream (GetLogEvents). `seq` is a counter kept
in `logs_counters`: it orders events of equal timestamps by arrival and is the event's id.

Group and stream ids are never reused (AUTOINCREMENT), so deleting a group or a stream only
drops its row and records it in `logs_trash`: its events become unreachable at once and are
deleted later in batches by `purge_step`, which also enforces retention. Every method takes
the connection to use; the caller owns threads and transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from squall.store import Store

from .errors import group_exists, group_not_found, stream_exists, stream_not_found
from .names import DAY_MS

MIGRATIONS = [
    """
    CREATE TABLE logs_groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        created INTEGER NOT NULL,
        retention INTEGER,
        kms_key TEXT,
        log_class TEXT NOT NULL DEFAULT 'STANDARD',
        tags BLOB NOT NULL DEFAULT '{}',
        stored_bytes INTEGER NOT NULL DEFAULT 0,
        UNIQUE (account, region, name)
    );
    CREATE TABLE logs_streams (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        group_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        created INTEGER NOT NULL,
        first_event INTEGER NOT NULL DEFAULT -1,
        last_event INTEGER NOT NULL DEFAULT -1,
        last_ingestion INTEGER NOT NULL DEFAULT -1,
        token INTEGER NOT NULL DEFAULT 0,
        UNIQUE (group_id, name)
    );
    CREATE INDEX logs_streams_by_time ON logs_streams (group_id, last_event, name);
    CREATE TABLE logs_events (
        group_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        stream_id INTEGER NOT NULL,
        ingested INTEGER NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (group_id, ts, seq)
    ) WITHOUT ROWID;
    CREATE INDEX logs_events_by_stream ON logs_events (stream_id, ts, seq);
    CREATE TABLE logs_trash (
        kind TEXT NOT NULL,
        id INTEGER NOT NULL,
        group_id INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE TABLE logs_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO logs_counters VALUES ('seq', 1)
    """,
    # Whether a group ever stored a message with a NUL character, which GLOB does not read past:
    # FilterLogEvents then lets such messages past its SQL prefilter (see events.py).
    """
    ALTER TABLE logs_groups ADD COLUMN nul_messages INTEGER NOT NULL DEFAULT 0;
    UPDATE logs_groups SET nul_messages = 1 WHERE id IN
        (SELECT DISTINCT group_id FROM logs_events WHERE instr(message, char(0)) > 0)
    """,
]

_GROUP_COLUMNS = (
    "id, account, region, name, created, retention, kms_key, log_class, tags, stored_bytes"
)
_STREAM_COLUMNS = "id, group_id, name, created, first_event, last_event, last_ingestion, token"
_INSERT_EVENT = (
    "INSERT INTO logs_events (group_id, ts, seq, stream_id, ingested, message)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_LAST = "\U0010ffff"  # sorts after every other character: the end of a prefix range


@dataclass(slots=True)
class Group:
    id: int
    account: str
    region: str
    name: str
    created: int
    retention: int | None
    kms_key: str | None
    log_class: str
    tags: dict[str, str]
    stored_bytes: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Group:
        return cls(*row[:8], orjson.loads(row[8]), row[9])  # type: ignore[call-arg]

    def retention_floor(self, now: int) -> int | None:
        """The oldest timestamp the group still keeps, or None without a retention policy."""
        return None if self.retention is None else now - self.retention * DAY_MS


@dataclass(slots=True)
class Stream:
    id: int
    group_id: int
    name: str
    created: int
    first_event: int  # -1: no events yet
    last_event: int
    last_ingestion: int
    token: int  # bumped by every write: the stream's uploadSequenceToken


@dataclass(slots=True)
class Append:
    """Events for one stream, as `(timestamp ms, message)` in any order."""

    account: str
    region: str
    group: str
    stream: str
    ingested: int
    events: Sequence[tuple[int, str]]
    token: int = field(default=0)  # the stream's token after the write


class LogStore:
    """The SQL of CloudWatch Logs. Writers call it inside a transaction on their connection."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("logs", MIGRATIONS)

    # ---- groups

    def group(self, conn: sqlite3.Connection, account: str, region: str, name: str) -> Group | None:
        row = conn.execute(
            f"SELECT {_GROUP_COLUMNS} FROM logs_groups"
            " WHERE account = ? AND region = ? AND name = ?",
            (account, region, name),
        ).fetchone()
        return None if row is None else Group.from_row(row)

    def require_group(
        self, conn: sqlite3.Connection, account: str, region: str, name: str
    ) -> Group:
        group = self.group(conn, account, region, name)
        if group is None:
            raise group_not_found()
        return group

    def groups(
        self,
        conn: sqlite3.Connection,
        account: str,
        region: str,
        *,
        prefix: str | None = None,
        pattern: str | None = None,
        names: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> list[Group]:
        """Groups in name order, after the name `after`."""
        where = ["account = ?", "region = ?"]
        params: list[Any] = [account, region]
        if prefix:
            where.append("name >= ? AND name < ?")
            params += [prefix, prefix + _LAST]
        if pattern:
            where.append("instr(name, ?) > 0")
            params.append(pattern)
        if names is not None:
            where.append("name IN (SELECT value FROM json_each(?))")
            params.append(orjson.dumps(list(names)).decode())
        if classes is not None:
            where.append("log_class IN (SELECT value FROM json_each(?))")
            params.append(orjson.dumps(list(classes)).decode())
        if after is not None:
            where.append("name > ?")
            params.append(after)
        rows = conn.execute(
            f"SELECT {_GROUP_COLUMNS} FROM logs_groups WHERE {' AND '.join(where)}"
            " ORDER BY name LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [Group.from_row(row) for row in rows]

    def create_group(
        self,
        conn: sqlite3.Connection,
        account: str,
        region: str,
        name: str,
        created: int,
        *,
        kms_key: str | None = None,
        log_class: str = "STANDARD",
        tags: dict[str, str] | None = None,
    ) -> int:
        try:
            (group_id,) = conn.execute(
                "INSERT INTO logs_groups (account, region, name, created, kms_key, log_class,"
                " tags) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (account, region, name, created, kms_key, log_class, orjson.dumps(tags or {})),
            ).fetchone()
        except sqlite3.IntegrityError:
            raise group_exists() from None
        return group_id

    def delete_group(self, conn: sqlite3.Connection, account: str, region: str, name: str) -> None:
        group = self.require_group(conn, account, region, name)
        conn.execute("DELETE FROM logs_groups WHERE id = ?", (group.id,))
        conn.execute("DELETE FROM logs_streams WHERE group_id = ?", (group.id,))
        conn.execute("DELETE FROM logs_trash WHERE kind = 's' AND group_id = ?", (group.id,))
        conn.execute("INSERT INTO logs_trash VALUES ('g', ?, ?)", (group.id, group.id))

    def set_retention(self, conn: sqlite3.Connection, group_id: int, days: int | None) -> None:
        conn.execute("UPDATE logs_groups SET retention = ? WHERE id = ?", (days, group_id))

    def set_tags(self, conn: sqlite3.Connection, group_id: int, tags: dict[str, str]) -> None:
        conn.execute("UPDATE logs_groups SET tags = ? WHERE id = ?", (orjson.dumps(tags), group_id))

    # ---- streams

    def stream(self, conn: sqlite3.Connection, group_id: int, name: str) -> Stream | None:
        row = conn.execute(
            f"SELECT {_STREAM_COLUMNS} FROM logs_streams WHERE group_id = ? AND name = ?",
            (group_id, name),
        ).fetchone()
        return None if row is None else Stream(*row)

    def require_stream(self, conn: sqlite3.Connection, group_id: int, name: str) -> Stream:
        stream = self.stream(conn, group_id, name)
        if stream is None:
            raise stream_not_found()
        return stream

    def streams(
        self,
        conn: sqlite3.Connection,
        group_id: int,
        *,
        prefix: str | None = None,
        by_time: bool = False,
        descending: bool = False,
        after: tuple[int, str] | str | None = None,
        limit: int = 50,
    ) -> list[Stream]:
        """Streams by name, or by last event time (then name), after the position `after`."""
        where, params = ["group_id = ?"], [group_id]
        order = "DESC" if descending else "ASC"
        beyond = "<" if descending else ">"
        if prefix:
            where.append("name >= ? AND name < ?")
            params += [prefix, prefix + _LAST]
        if by_time:
            if after is not None:
                where.append(f"(last_event, name) {beyond} (?, ?)")
                params += list(after)
            ordering = f"last_event {order}, name {order}"
        else:
            if after is not None:
                where.append(f"name {beyond} ?")
                params.append(after)
            ordering = f"name {order}"
        rows = conn.execute(
            f"SELECT {_STREAM_COLUMNS} FROM logs_streams WHERE {' AND '.join(where)}"
            f" ORDER BY {ordering} LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [Stream(*row) for row in rows]

    def stream_names(
        self, conn: sqlite3.Connection, group_id: int, prefix: str | None = None
    ) -> dict[int, str]:
        """The names of a group's streams (with a name prefix) by id."""
        if prefix:
            rows = conn.execute(
                "SELECT id, name FROM logs_streams WHERE group_id = ? AND name >= ? AND name < ?",
                (group_id, prefix, prefix + _LAST),
            )
        else:
            rows = conn.execute("SELECT id, name FROM logs_streams WHERE group_id = ?", (group_id,))
        return dict(rows.fetchall())

    def create_stream(
        self, conn: sqlite3.Connection, group_id: int, name: str, created: int
    ) -> int:
        try:
            (stream_id,) = conn.execute(
                "INSERT INTO logs_streams (group_id, name, created) VALUES (?, ?, ?) RETURNING id",
                (group_id, name, created),
            ).fetchone()
        except sqlite3.IntegrityError:
            raise stream_exists() from None
        return stream_id

    def delete_stream(self, conn: sqlite3.Connection, group_id: int, name: str) -> None:
        stream = self.require_stream(conn, group_id, name)
        conn.execute("DELETE FROM logs_streams WHERE id = ?", (stream.id,))
        conn.execute("INSERT INTO logs_trash VALUES ('s', ?, ?)", (stream.id, group_id))

    # ---- events

    def append(
        self, conn: sqlite3.Connection, items: Sequence[Append], *, create: bool, now: int
    ) -> None:
        """Store the items' events; sets each item's `token`. With `create`, missing groups and
        streams are created (as Lambda does); without, they raise ResourceNotFoundException."""
        (seq,) = conn.execute("SELECT value FROM logs_counters WHERE name = 'seq'").fetchone()
        rows: list[tuple[int, int, int, int, int, str]] = []
        groups: dict[tuple[str, str, str], int] = {}
        streams: dict[tuple[int, str], int] = {}
        touched: dict[int, list[int]] = {}  # stream id -> [first, last, ingested]
        added_bytes: dict[int, int] = {}
        nul_groups: set[int] = set()
        for item in items:
            group_key = (item.account, item.region, item.group)
            group_id = groups.get(group_key)
            if group_id is None:
                group_id = groups[group_key] = self._group_id(conn, group_key, create, now)
            stream_id = streams.get((group_id, item.stream))
            if stream_id is None:
                stream_id = self._stream_id(conn, group_id, item.stream, create, now)
                streams[(group_id, item.stream)] = stream_id
            events = item.events
            if not events:
                continue
            ingested = item.ingested
            rows += [
                (group_id, int(ts), seq + index, stream_id, ingested, message)
                for index, (ts, message) in enumerate(events)
            ]
            seq += len(events)
            stamps = [ts for ts, _ in events]
            first, last = int(min(stamps)), int(max(stamps))
            seen = touched.get(stream_id)
            if seen is None:
                touched[stream_id] = [first, last, ingested]
            else:
                seen[0], seen[1], seen[2] = min(seen[0], first), max(seen[1], last), ingested
            text = "".join([message for _, message in events])
            added_bytes[group_id] = added_bytes.get(group_id, 0) + len(text.encode())
            if "\0" in text:
                nul_groups.add(group_id)
        conn.executemany(_INSERT_EVENT, rows)
        conn.execute("UPDATE logs_counters SET value = ? WHERE name = 'seq'", (seq,))
        tokens = {}
        for stream_id, (first, last, ingested) in touched.items():
            (tokens[stream_id],) = conn.execute(
                "UPDATE logs_streams SET"
                " first_event = CASE WHEN first_event < 0 THEN ?1 ELSE min(first_event, ?1) END,"
                " last_event = max(last_event, ?2), last_ingestion = max(last_ingestion, ?3),"
                " token = token + 1 WHERE id = ?4 RETURNING token",
                (first, last, ingested, stream_id),
            ).fetchone()
        conn.executemany(
            "UPDATE logs_groups SET stored_bytes = stored_bytes + ? WHERE id = ?",
            [(size, group_id) for group_id, size in added_bytes.items()],
        )
        if nul_groups:
            conn.executemany(
                "UPDATE logs_groups SET nul_messages = 1 WHERE id = ?",
                [(group_id,) for group_id in nul_groups],
            )
        for item in items:
            group_id = groups[(item.account, item.region, item.group)]
            stream_id = streams[(group_id, item.stream)]
            item.token = tokens.get(stream_id, 0)

    def _group_id(
        self, conn: sqlite3.Connection, key: tuple[str, str, str], create: bool, now: int
    ) -> int:
        row = conn.execute(
            "SELECT id FROM logs_groups WHERE account = ? AND region = ? AND name = ?", key
        ).fetchone()
        if row is not None:
            return row[0]
        if not create:
            raise group_not_found()
        return self.create_group(conn, *key, now)

    def _stream_id(
        self, conn: sqlite3.Connection, group_id: int, name: str, create: bool, now: int
    ) -> int:
        row = conn.execute(
            "SELECT id FROM logs_streams WHERE group_id = ? AND name = ?", (group_id, name)
        ).fetchone()
        if row is not None:
            return row[0]
        if not create:
            raise stream_not_found()
        return self.create_stream(conn, group_id, name, now)

    def count_events(self, conn: sqlite3.Connection, group_id: int) -> int:
        (count,) = conn.execute(
            "SELECT count(*) FROM logs_events WHERE group_id = ?", (group_id,)
        ).fetchone()
        return count

    # ---- deletion: trash and retention

    def purge_step(self, conn: sqlite3.Connection, now: int, batch: int) -> bool:
        """Delete up to about `batch` events of deleted groups and streams, then of events older
        than their group's retention. True when there may be more to delete."""
        budget = batch
        for kind, item_id, group_id in conn.execute(
            "SELECT kind, id, group_id FROM logs_trash"
        ).fetchall():
            column = "group_id" if kind == "g" else "stream_id"
            count, size = self._delete_some(conn, f"{column} = ?", (item_id,), budget)
            if kind == "s":
                self._forget_bytes(conn, group_id, size)
            if count < budget:
                conn.execute("DELETE FROM logs_trash WHERE kind = ? AND id = ?", (kind, item_id))
            budget -= count
            if budget <= 0:
                return True
        for group_id, days in conn.execute(
            "SELECT id, retention FROM logs_groups WHERE retention IS NOT NULL"
        ).fetchall():
            cutoff = now - days * DAY_MS
            count, size = self._delete_some(conn, "group_id = ?", (group_id,), budget, cutoff)
            self._forget_bytes(conn, group_id, size)
            budget -= count
            if budget <= 0:
                return True
        return False

    def _delete_some(
        self,
        conn: sqlite3.Connection,
        where: str,
        params: tuple[Any, ...],
        limit: int,
        before: int | None = None,
    ) -> tuple[int, int]:
        """Delete the first `limit` events (by time) matching `where` (and older than `before`,
        if given): (count, message bytes)."""
        older, older_params = ("", ()) if before is None else (" AND ts < ?", (before,))
        bound = conn.execute(
            f"SELECT ts, seq FROM logs_events WHERE {where}{older}"
            " ORDER BY ts, seq LIMIT 1 OFFSET ?",
            (*params, *older_params, limit - 1),
        ).fetchone()
        if bound is None:  # fewer than `limit` left: all of them
            where, params = where + older, (*params, *older_params)
        else:
            # `ts <= ?` ends the index range at the batch's last event (older than `before`), so
            # a step reads about `limit` rows; ended by `ts < before`, every step would read all
            # the expired rows still left
            where = f"{where} AND ts <= ? AND (ts, seq) <= (?, ?)"
            params = (*params, bound[0], *bound)
        sizes = conn.execute(
            f"DELETE FROM logs_events WHERE {where} RETURNING length(CAST(message AS BLOB))",
            params,
        ).fetchall()
        return len(sizes), sum(size for (size,) in sizes)

    def _forget_bytes(self, conn: sqlite3.Connection, group_id: int, size: int) -> None:
        if size:
            conn.execute(
                "UPDATE logs_groups SET stored_bytes = max(0, stored_bytes - ?) WHERE id = ?",
                (size, group_id),
            )
