"""Pages of events: GetLogEvents (one stream) and FilterLogEvents (a group, interleaved by time).

Both run on a reader thread with its own connection. A page holds at most `limit` events and
about 1 MB (messages in UTF-8 plus 26 bytes each). Positions are `(timestamp, seq)`.

FilterLogEvents prefilters in SQL: the event must be in one of the streams asked for, and every
term the pattern requires must occur in its message (`GLOB '*term*'`: case-sensitive, and
cheaper than `instr`); only those rows reach Python for the full match. GLOB stops reading at a
NUL character, so in a group that ever stored one (`nul_messages`) every message with a NUL
reaches Python too. So that a rare term (or a quiet stream) does not make one page scan a whole
group unbounded, rows whose `seq` is a multiple of a prime come back too, as checkpoints: they
tell Python how far the scan got, and the page ends with a `nextToken` there once `budget_s` has
passed.

Both bound the index range on `ts` by the position as well as by the time range (the row-value
test `(ts, seq) > position` only filters rows), so a page costs the same at any depth.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .names import EVENT_OVERHEAD, MAX_PAGE_BYTES

MIN_TS = -(1 << 62)
MAX_TS = 1 << 62
HEAD = (MIN_TS, 0)
TAIL = (MAX_TS, 0)
CHECKPOINT_MODULUS = 1021  # a prime: any stride of seqs within a group still hits it
FETCH = 256

Position = tuple[int, int]


def utf8_size(message: str) -> int:
    return len(message) if message.isascii() else len(message.encode())


@dataclass
class StreamPage:
    events: list[dict[str, Any]]
    forward: Position
    backward: Position


def stream_page(
    conn: sqlite3.Connection,
    stream_id: int,
    *,
    start: int,
    end: int,
    position: Position | None,
    forward: bool,
    limit: int,
) -> StreamPage:
    """Events of one stream with `start <= ts < end`: after `position` (forward) or before it.

    Without a position, forward starts at the head and backward at the tail (the newest). An
    empty page keeps the position given (so a caller polling forward sees new events), or the
    head when there was none."""
    given = position
    if position is None:
        position = HEAD if forward else TAIL
    if forward:
        start = max(start, position[0])
        sql = (
            "SELECT ts, seq, ingested, message FROM logs_events WHERE stream_id = ? AND ts >= ?"
            " AND ts < ? AND (ts, seq) > (?, ?) ORDER BY ts, seq LIMIT ?"
        )
    else:
        end = min(end, position[0] + 1)
        sql = (
            "SELECT ts, seq, ingested, message FROM logs_events WHERE stream_id = ? AND ts >= ?"
            " AND ts < ? AND (ts, seq) < (?, ?) ORDER BY ts DESC, seq DESC LIMIT ?"
        )
    rows = conn.execute(sql, (stream_id, start, end, *position, limit)).fetchall()
    kept, size = [], 0
    for row in rows:  # nearest the position first
        size += utf8_size(row[3]) + EVENT_OVERHEAD
        if size > MAX_PAGE_BYTES and kept:
            break
        kept.append(row)
    if not forward:
        kept.reverse()
    events = [
        {"timestamp": ts, "message": message, "ingestionTime": ingested}
        for ts, _seq, ingested, message in kept
    ]
    if not kept:
        stay = HEAD if given is None else given
        return StreamPage(events, stay, stay)
    return StreamPage(events, (kept[-1][0], kept[-1][1]), (kept[0][0], kept[0][1]))


@dataclass
class FilterQuery:
    group_id: int
    names: dict[int, str]  # the streams searched, by id
    only_streams: bool  # whether `names` restricts the search (stream names or a prefix)
    start: int  # inclusive
    end: int  # inclusive
    position: Position | None
    descending: bool
    terms: list[str]  # substrings every match contains
    matches: Callable[[str], bool] | None  # None: every event matches
    limit: int
    budget_s: float = 1.0


def filter_page(
    conn: sqlite3.Connection, query: FilterQuery
) -> tuple[list[dict[str, Any]], Position | None]:
    """Matching events in time order and where the next page starts (None: no more)."""
    if query.only_streams and not query.names:
        return [], None
    (nul,) = conn.execute(
        "SELECT nul_messages FROM logs_groups WHERE id = ?", (query.group_id,)
    ).fetchone() or (0,)
    sql, params = _filter_sql(query, bool(nul))
    deadline = time.monotonic() + query.budget_s
    names, matches, limit = query.names, query.matches, query.limit
    if nul and matches is None and query.terms:  # the prefilter no longer decides alone
        matches = _contains_all(query.terms)
    events: list[dict[str, Any]] = []
    size = 0
    last: Position | None = None
    cursor = conn.execute(sql, params)
    while rows := cursor.fetchmany(FETCH):
        for ts, seq, stream_id, ingested, message, hit in rows:
            if hit and stream_id in names and (matches is None or matches(message)):
                size += utf8_size(message) + EVENT_OVERHEAD
                if size > MAX_PAGE_BYTES and events:
                    return events, last
                events.append(
                    {
                        "logStreamName": names[stream_id],
                        "timestamp": ts,
                        "message": message,
                        "ingestionTime": ingested,
                        "eventId": str(seq),
                    }
                )
                last = (ts, seq)
                if len(events) >= limit:
                    return events, last
            last = (ts, seq)
            if time.monotonic() > deadline:
                return events, last
    return events, None


def _filter_sql(query: FilterQuery, nul: bool) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"group": query.group_id, "start": query.start, "end": query.end}
    where = ["group_id = :group", "ts >= :start", "ts <= :end"]
    if query.position is not None:
        params["ts"], params["seq"] = query.position
        where.append(f"(ts, seq) {'<' if query.descending else '>'} (:ts, :seq)")
        if query.descending:
            params["end"] = min(query.end, query.position[0])
        else:
            params["start"] = max(query.start, query.position[0])
    conditions = []
    if query.only_streams:
        # unary + keeps the planner on the primary key (time order) instead of the stream index
        conditions.append("+stream_id IN (SELECT value FROM json_each(:streams))")
        params["streams"] = orjson.dumps(list(query.names)).decode()
    globs = []
    for index, term in enumerate(query.terms):
        params[f"term{index}"] = f"*{_glob_literal(term)}*"
        globs.append(f"message GLOB :term{index}")
    if globs and nul:  # GLOB reads up to a NUL: messages with one go to the matcher too
        globs = [f"({' AND '.join(globs)} OR instr(message, char(0)) > 0)"]
    conditions += globs
    hit = " AND ".join(conditions) or "1"
    if conditions:
        where.append(f"(({hit}) OR seq % {CHECKPOINT_MODULUS} = 0)")
    order = "DESC" if query.descending else "ASC"
    sql = (
        f"SELECT ts, seq, stream_id, ingested, message, {hit} FROM logs_events"
        f" WHERE {' AND '.join(where)} ORDER BY ts {order}, seq {order}"
    )
    return sql, params


def _contains_all(terms: list[str]) -> Callable[[str], bool]:
    return lambda message: all(term in message for term in terms)


def _glob_literal(text: str) -> str:
    """`text` as a GLOB pattern matching itself: `*`, `?` and `[` in brackets."""
    return "".join(f"[{char}]" if char in "*?[" else char for char in text)
