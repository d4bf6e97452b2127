"""Live Tail (StartLiveTail): a stream of the log events ingested into up to 10 log groups.

`start_live_tail` checks the request and takes a snapshot of where the groups' events end
before it answers, so its errors are ordinary error responses and every event ingested after
the answer is tailed. The answer's `responseStream` is an async generator of events: a
`sessionStart`, then a `sessionUpdate` about once a second with the events ingested since the
previous one (at most 500, sampled beyond that; empty when there are none, as AWS sends them),
until the session ends after three hours with a `SessionTimeoutException` or the generator is
closed. It holds no task and no connection of its own: each poll is one read transaction on the
service's reader threads (`LogsService._read`).

Finding what is new without an index on the event counter (`seq`) or the ingestion time: a
poll reads the `seq` counter first and stops there when nothing was written anywhere. Else it
reads the groups' streams that ingested lately and compares their upload tokens (bumped by
every write) with the previous poll's, and for each stream that changed reads its new events
(`seq` past the last poll's counter) through the `(stream_id, ts, seq)` index, from a little
before the stream's newest timestamp at the last poll (`LATE_MS`): events mostly arrive in time
order, so this reads the new rows and few others. Events written with much older timestamps
would fall outside that range; the group's `stored_bytes` (message bytes, updated in the same
transaction as the events) tells: when the bytes found do not add up to its growth, the rest of
the changed streams is read too. A retention sweep or deletion shrinking `stored_bytes` only
costs that extra read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from squall.core.context import RequestContext

from .errors import invalid
from .events import MIN_TS, _glob_literal
from .names import group_from_arn, now_ms
from .patterns import compile_pattern

if TYPE_CHECKING:
    from .service import LogsService
    from .store import LogStore

log = logging.getLogger(__name__)

MAX_SESSION_S = 3 * 3600.0  # AWS ends a session after three hours
POLL_S = 1.0  # between updates
HEARTBEAT_S = 1.0  # the longest wait without an update (AWS: every second)
MAX_RESULTS = 500  # events per update; more are sampled down to this
LATE_MS = 60_000  # how far before a stream's newest event a poll looks for new ones
ACTIVE_MS = 300_000  # streams that ingested this long before the last poll are compared

Event = dict[str, Any]


@dataclass(slots=True)
class _Stream:
    token: int
    first_event: int  # -1: no events yet
    last_event: int


@dataclass(slots=True)
class _Group:
    identifier: str  # as the request named it; results carry it back
    name: str
    id: int = 0
    stored_bytes: int = 0
    streams: dict[int, _Stream] = field(default_factory=dict)


@dataclass(slots=True)
class _Hit:
    seq: int
    event: Event


class LiveTail:
    """One session's cursor over the store: what it has seen and how to find what is new.

    `begin` and `poll` take a reader connection (autocommit) and run one read transaction."""

    def __init__(
        self,
        account: str,
        region: str,
        groups: list[_Group],
        *,
        wanted: Callable[[str], bool] | None,
        terms: list[str],
        matches: Callable[[str], bool] | None,
        limit: int = MAX_RESULTS,
    ) -> None:
        self.account = account
        self.region = region
        self.groups = groups
        self.wanted = wanted  # stream names tailed (None: every stream)
        self.matches = matches  # the filter pattern (None: every event)
        self.limit = limit
        self.next_seq = 0  # the counter at the last poll: events from here on are new
        self.polled_at = 0  # wall-clock ms of the last poll
        self.random = random.Random()
        hit = "".join(f" AND message GLOB :term{index}" for index in range(len(terms)))
        self.params: dict[str, Any] = {
            f"term{index}": f"*{_glob_literal(term)}*" for index, term in enumerate(terms)
        }
        # every new row's size (for the completeness check), its message only when it may match
        select = (
            f"SELECT seq, ts, ingested, length(CAST(message AS BLOB)),"
            f" CASE WHEN :wanted{hit} THEN message END FROM logs_events"
            f" WHERE stream_id = :stream AND seq >= :from AND seq < :to AND ts"
        )
        self.sql_from, self.sql_before = f"{select} >= :ts", f"{select} < :ts"

    def begin(self, conn: sqlite3.Connection, store: LogStore) -> None:
        """Resolve the groups (ResourceNotFoundException for a missing one) and note where
        their events end."""
        with _snapshot(conn):
            self.polled_at = now_ms()
            self.next_seq = _counter(conn)
            for group in self.groups:
                found = store.require_group(conn, self.account, self.region, group.name)
                group.id, group.stored_bytes = found.id, found.stored_bytes
                rows = conn.execute(
                    "SELECT id, token, first_event, last_event FROM logs_streams"
                    " WHERE group_id = ?",
                    (group.id,),
                )
                group.streams = {row[0]: _Stream(*row[1:]) for row in rows}

    def poll(self, conn: sqlite3.Connection) -> tuple[list[Event], bool]:
        """The matching events ingested since the last poll, in ingestion order, and whether
        they were sampled down to `limit`."""
        with _snapshot(conn):
            now = now_ms()
            counter = _counter(conn)
            if counter == self.next_seq:
                self.polled_at = now
                return [], False
            found = _Poll(self, conn, counter)
            for group in self.groups:
                found.group(group)
            self.next_seq, self.polled_at = counter, now
        found.hits.sort(key=lambda hit: hit.seq)
        return [hit.event for hit in found.hits], found.seen > self.limit


class _Poll:
    """What one poll finds: the matches (a uniform sample of at most `limit`) and their count."""

    def __init__(self, tail: LiveTail, conn: sqlite3.Connection, counter: int) -> None:
        self.tail = tail
        self.conn = conn
        self.counter = counter  # events with seq from `tail.next_seq` up to this are new
        self.hits: list[_Hit] = []
        self.seen = 0

    def group(self, group: _Group) -> None:
        tail, conn = self.tail, self.conn
        row = conn.execute(
            "SELECT stored_bytes FROM logs_groups WHERE id = ?", (group.id,)
        ).fetchone()
        if row is None:  # deleted: its streams are gone with it
            return
        stored_bytes = row[0]
        changed: list[tuple[int, str, int]] = []  # stream id, name, lowest timestamp read
        for stream_id, name, token, first_event, last_event in conn.execute(
            "SELECT id, name, token, first_event, last_event FROM logs_streams"
            " WHERE group_id = ? AND last_ingestion >= ?",
            (group.id, tail.polled_at - ACTIVE_MS),
        ):
            known = group.streams.get(stream_id)
            if known is not None and known.token == token:
                continue
            changed.append((stream_id, name, _lowest(known, first_event, tail.polled_at)))
            group.streams[stream_id] = _Stream(token, first_event, last_event)
        size = sum(
            self.read(group, stream_id, name, tail.sql_from, lowest)
            for stream_id, name, lowest in changed
        )
        if size != stored_bytes - group.stored_bytes:
            # events dated before the range read, or bytes a sweep took away: read the rest
            for stream_id, name, lowest in changed:
                if lowest > MIN_TS and (tail.wanted is None or tail.wanted(name)):
                    self.read(group, stream_id, name, tail.sql_before, lowest)
        group.stored_bytes = stored_bytes

    def read(self, group: _Group, stream_id: int, name: str, sql: str, ts: int) -> int:
        """Read a stream's new events from `ts` on (or before it: `sql`) and sample the
        matches; the message bytes of all the new events read."""
        tail, hits = self.tail, self.hits
        params = {
            **tail.params,
            "wanted": tail.wanted is None or tail.wanted(name),
            "stream": stream_id,
            "ts": ts,
            "from": tail.next_seq,
            "to": self.counter,
        }
        size = 0
        matches, limit = tail.matches, tail.limit
        cursor = self.conn.execute(sql, params)
        while rows := cursor.fetchmany(256):
            for seq, stamp, ingested, length, message in rows:
                size += length
                if message is None or (matches is not None and not matches(message)):
                    continue
                self.seen += 1
                slot = len(hits)
                if self.seen > limit:  # reservoir sampling: each match stays with p = limit/seen
                    slot = tail.random.randrange(self.seen)
                    if slot >= limit:
                        continue
                hit = _Hit(
                    seq,
                    {
                        "logStreamName": name,
                        "logGroupIdentifier": group.identifier,
                        "message": message,
                        "timestamp": stamp,
                        "ingestionTime": ingested,
                    },
                )
                if slot == len(hits):
                    hits.append(hit)
                else:
                    hits[slot] = hit
        return size


def _lowest(known: _Stream | None, first_event: int, polled_at: int) -> int:
    """The lowest timestamp a poll reads a changed stream from."""
    if known is None or known.first_event < 0:
        return MIN_TS  # new since the last poll (or empty until then): all of it is new
    # a little before its newest event then (or the last poll, when that event is dated later)
    lowest = min(known.last_event, polled_at) - LATE_MS
    return min(lowest, first_event) if first_event < known.first_event else lowest


def _counter(conn: sqlite3.Connection) -> int:
    (value,) = conn.execute("SELECT value FROM logs_counters WHERE name = 'seq'").fetchone()
    return value


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One consistent view for several reads on an autocommit connection."""
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# ---- the operation


async def start_live_tail(
    service: LogsService, ctx: RequestContext, request: dict[str, Any]
) -> dict[str, Any]:
    """StartLiveTail: check the request, snapshot the groups, answer with the session."""
    identifiers: list[str] = request["logGroupIdentifiers"]
    names, prefixes = request.get("logStreamNames"), request.get("logStreamNamePrefixes")
    if names and prefixes:
        raise invalid("Cannot specify both logStreamNames and logStreamNamePrefixes.")
    if (names or prefixes) and len(identifiers) != 1:
        raise invalid(
            "logStreamNames and logStreamNamePrefixes can be specified only when"
            " logGroupIdentifiers names exactly one log group."
        )
    pattern = request.get("logEventFilterPattern")
    try:
        compiled = compile_pattern(pattern)
    except ValueError as exc:
        raise invalid(str(exc) or "Invalid filter pattern.") from None
    groups: dict[str, _Group] = {}
    for identifier in identifiers:
        name = identifier
        if identifier.startswith("arn:"):
            if identifier.endswith("*"):
                raise invalid(f"A log group ARN can't end with an asterisk (*): {identifier}")
            name = group_from_arn(identifier, ctx.account_id, ctx.region)
        groups.setdefault(name, _Group(identifier, name))
    wanted: Callable[[str], bool] | None = None
    if names:
        wanted = set(names).__contains__
    elif prefixes:
        starts = tuple(prefixes)
        wanted = lambda stream: stream.startswith(starts)  # noqa: E731
    tail = LiveTail(
        ctx.account_id,
        ctx.region,
        list(groups.values()),
        wanted=wanted,
        terms=compiled.required_terms(),
        matches=None if compiled.kind == "all" else compiled.matches,
    )
    await service._read(lambda conn: tail.begin(conn, service.logs))
    start: Event = {
        "requestId": ctx.request_id,
        "sessionId": str(uuid.uuid4()),
        "logGroupIdentifiers": identifiers,
    }
    if names:
        start["logStreamNames"] = names
    if prefixes:
        start["logStreamNamePrefixes"] = prefixes
    if pattern is not None:
        start["logEventFilterPattern"] = pattern
    return {"responseStream": session(service, tail, start)}


async def session(
    service: LogsService,
    tail: LiveTail,
    start: Event,
    *,
    max_s: float = MAX_SESSION_S,
    poll_s: float = POLL_S,
    heartbeat_s: float = HEARTBEAT_S,
) -> AsyncIterator[Event]:
    """The events of one session. Closing the generator (the client went away) or cancelling
    the task consuming it ends the session at its current `await`; nothing outlives it."""
    began = time.monotonic()
    session_id = start["sessionId"]
    ended = "closed"
    log.info("live tail session %s started: %s", session_id, start["logGroupIdentifiers"])
    try:
        yield {"sessionStart": start}
        last_sent = began
        while True:
            now = time.monotonic()
            if now - began >= max_s:
                ended = "timed out"
                yield {
                    "SessionTimeoutException": {
                        "message": "The Live Tail session timed out after its maximum duration."
                    }
                }
                return
            await asyncio.sleep(min(poll_s, max(0.0, began + max_s - now)))
            try:
                results, sampled = await service._read(tail.poll)
            except Exception:  # a store failure, or the reader threads are gone (stopping)
                log.exception("live tail session %s failed", session_id)
                ended = "failed"
                yield {
                    "SessionStreamingException": {
                        "message": "An internal error ended the Live Tail session."
                    }
                }
                return
            if results or time.monotonic() - last_sent >= heartbeat_s:
                yield {
                    "sessionUpdate": {
                        "sessionMetadata": {"sampled": sampled},
                        "sessionResults": results,
                    }
                }
                last_sent = time.monotonic()
    finally:
        log.info(
            "live tail session %s %s after %.1f s", session_id, ended, time.monotonic() - began
        )
