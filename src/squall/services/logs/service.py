"""The CloudWatch Logs service (`logs`, JSON 1.1): log groups, streams and events.

Writes run on the writer thread (`writer.py`) and are committed before the answer; small reads
(groups, streams, tags) use the event loop's connection; event reads (GetLogEvents,
FilterLogEvents) run on reader threads with their own connections. Platform logs (Lambda's)
arrive through `ingest`, which only queues. See `store.py` for the tables.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar

from squall.core.config import Settings
from squall.core.context import RequestContext
from squall.core.errors import ServiceError
from squall.services.base import Request, Response, Service, operation
from squall.store import Store

from . import tokens
from .errors import invalid
from .events import MAX_TS, MIN_TS, FilterQuery, filter_page, stream_page, utf8_size
from .live_tail import start_live_tail
from .names import (
    DESCENDING_FLOOR_MS,
    EVENT_OVERHEAD,
    MAX_BATCH_BYTES,
    MAX_FUTURE_MS,
    MAX_PAGE_EVENTS,
    MAX_PAST_MS,
    MAX_SPAN_MS,
    check_retention,
    check_tag_count,
    group_arn,
    group_from_arn,
    group_name,
    now_ms,
    stream_arn,
)
from .patterns import compile_pattern
from .store import Append, Group, LogStore, Stream
from .writer import LogWriter

T = TypeVar("T")

_CLASSES = {
    "STANDARD": ["STANDARD"],
    "INFREQUENT_ACCESS": ["INFREQUENT_ACCESS", "ESSENTIALS"],
    "ESSENTIALS": ["INFREQUENT_ACCESS", "ESSENTIALS"],
    "DELIVERY": ["DELIVERY"],
}


@lru_cache(maxsize=256)
def _compiled(text: str) -> tuple[list[str], Callable[[str], bool]]:
    pattern = compile_pattern(text)
    return list(pattern.required_terms()), pattern.matches


def compile_filter(text: str | None) -> tuple[list[str], Callable[[str], bool] | None]:
    """The substrings a match must contain and the matcher (None: everything matches)."""
    if not text or not text.strip():
        return [], None
    try:
        return _compiled(text)
    except ValueError as exc:
        raise invalid(str(exc) or "Invalid filter pattern.") from None


class LogsService(Service):
    name = "logs"
    data_events = frozenset({"PutLogEvents", "GetLogEvents", "FilterLogEvents"})

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        flush_interval: float = 0.15,
        retention_interval: float = 300.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.logs = LogStore(store)
        self.writer = LogWriter(
            self.logs, flush_interval=flush_interval, retention_interval=retention_interval
        )
        self.filter_budget_s = 1.0  # the longest one FilterLogEvents page searches
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="squall-logs-read")
        self._local = threading.local()

    # ---- for the platform

    def ingest(
        self, account: str, region: str, group: str, stream: str, events: list[tuple[int, str]]
    ) -> None:
        """Queue `(timestamp ms, message)` events for `group`/`stream` (created on first use).

        Never blocks: a writer thread stores them within about 150 ms, and on `stop()`."""
        self.writer.ingest(account, region, group, stream, events)

    @property
    def retention_interval(self) -> float:
        """Seconds between retention sweeps."""
        return self.writer.retention_interval

    @retention_interval.setter
    def retention_interval(self, seconds: float) -> None:
        self.writer.retention_interval = seconds

    async def flush(self) -> None:
        """Store everything `ingest` queued so far."""
        await self.writer.flush()

    async def sweep(self) -> None:
        """Delete now what retention and deletions have made due."""
        await self.writer.sweep()

    async def start(self) -> None:
        await self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()
        self._readers.shutdown(wait=True)

    def validation_error(self, message: str, protocol: str) -> ServiceError:
        return invalid(message)

    # ---- log groups

    @operation("CreateLogGroup")
    async def create_log_group(self, ctx: RequestContext, request: Request) -> Response:
        name, tags = request["logGroupName"], request.get("tags") or {}
        check_tag_count(len(tags), group_arn(ctx.region, ctx.account_id, name))
        created = now_ms()
        await self.writer.call(
            lambda conn: self.logs.create_group(
                conn,
                ctx.account_id,
                ctx.region,
                name,
                created,
                kms_key=request.get("kmsKeyId"),
                log_class=request.get("logGroupClass") or "STANDARD",
                tags=tags,
            )
        )
        return {}

    @operation("DeleteLogGroup")
    async def delete_log_group(self, ctx: RequestContext, request: Request) -> Response:
        name = request["logGroupName"]
        await self.writer.call(
            lambda conn: self.logs.delete_group(conn, ctx.account_id, ctx.region, name)
        )
        self.writer.wake_sweeper()  # its events go now, in batches
        return {}

    @operation("DescribeLogGroups")
    def describe_log_groups(self, ctx: RequestContext, request: Request) -> Response:
        prefix, pattern = request.get("logGroupNamePrefix"), request.get("logGroupNamePattern")
        if prefix and pattern:
            raise invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."
            )
        names = None
        if request.get("logGroupIdentifiers"):
            names = [self._identified(ctx, item) for item in request["logGroupIdentifiers"]]
        classes = _CLASSES.get(request.get("logGroupClass") or "")
        limit = request.get("limit") or 50
        after = None
        if request.get("nextToken"):
            after = tokens.decode(request["nextToken"]).get("n")
            if not isinstance(after, str):
                raise invalid("The specified nextToken is invalid.")
        groups = self.logs.groups(
            self.store.conn,
            ctx.account_id,
            ctx.region,
            prefix=prefix,
            pattern=pattern,
            names=names,
            classes=classes,
            after=after,
            limit=limit + 1,
        )
        page = groups[:limit]
        if pattern:  # AWS answers only these members for a pattern search
            entries = [
                {
                    "logGroupName": group.name,
                    "creationTime": group.created,
                    "arn": group_arn(group.region, group.account, group.name) + ":*",
                }
                for group in page
            ]
        else:
            entries = [_group_entry(group) for group in page]
        result: Response = {"logGroups": entries}
        if len(groups) > limit:
            result["nextToken"] = tokens.encode({"n": page[-1].name})
        return result

    def _identified(self, ctx: RequestContext, identifier: str) -> str:
        if identifier.startswith("arn:"):
            return group_from_arn(identifier, ctx.account_id, ctx.region)
        return identifier

    # ---- log streams

    @operation("CreateLogStream")
    async def create_log_stream(self, ctx: RequestContext, request: Request) -> Response:
        group, stream = request["logGroupName"], request["logStreamName"]
        created = now_ms()

        def create(conn: sqlite3.Connection) -> None:
            found = self.logs.require_group(conn, ctx.account_id, ctx.region, group)
            self.logs.create_stream(conn, found.id, stream, created)

        await self.writer.call(create)
        return {}

    @operation("DeleteLogStream")
    async def delete_log_stream(self, ctx: RequestContext, request: Request) -> Response:
        group, stream = request["logGroupName"], request["logStreamName"]

        def delete(conn: sqlite3.Connection) -> None:
            found = self.logs.require_group(conn, ctx.account_id, ctx.region, group)
            self.logs.delete_stream(conn, found.id, stream)

        await self.writer.call(delete)
        self.writer.wake_sweeper()
        return {}

    @operation("DescribeLogStreams")
    def describe_log_streams(self, ctx: RequestContext, request: Request) -> Response:
        name = group_name(request, ctx.account_id, ctx.region)
        group = self.logs.require_group(self.store.conn, ctx.account_id, ctx.region, name)
        prefix = request.get("logStreamNamePrefix")
        by_time = request.get("orderBy") == "LastEventTime"
        if by_time and prefix:
            raise invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        limit = request.get("limit") or 50
        after: tuple[int, str] | str | None = None
        if request.get("nextToken"):
            state = tokens.decode(request["nextToken"])
            after = state.get("n")
            if by_time:
                after = (state.get("t"), after)  # type: ignore[assignment]
            if not isinstance(state.get("n"), str) or (by_time and type(state.get("t")) is not int):
                raise invalid("The specified nextToken is invalid.")
        streams = self.logs.streams(
            self.store.conn,
            group.id,
            prefix=prefix,
            by_time=by_time,
            descending=bool(request.get("descending")),
            after=after,
            limit=limit + 1,
        )
        page = streams[:limit]
        result: Response = {"logStreams": [_stream_entry(group, stream) for stream in page]}
        if len(streams) > limit:
            result["nextToken"] = tokens.encode({"n": page[-1].name, "t": page[-1].last_event})
        return result

    # ---- events

    @operation("PutLogEvents")
    async def put_log_events(self, ctx: RequestContext, request: Request) -> Response:
        events = request["logEvents"]
        stamps = [event["timestamp"] for event in events]
        if any(later < earlier for earlier, later in itertools.pairwise(stamps)):
            raise invalid(
                "Log events in a single PutLogEvents request must be in chronological order."
            )
        size = sum(utf8_size(event["message"]) for event in events) + EVENT_OVERHEAD * len(events)
        if size > MAX_BATCH_BYTES:
            raise invalid(f"Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}")
        name, stream = request["logGroupName"], request["logStreamName"]
        group = self.logs.require_group(self.store.conn, ctx.account_id, ctx.region, name)
        now = now_ms()
        rejected: dict[str, int] = {}
        first = bisect.bisect_left(stamps, now - MAX_PAST_MS)  # the first one young enough
        if first:
            rejected["tooOldLogEventEndIndex"] = first - 1
        floor = group.retention_floor(now)
        if floor is not None and bisect.bisect_left(stamps, floor) > first:
            first = bisect.bisect_left(stamps, floor)
            rejected["expiredLogEventEndIndex"] = first - 1
        end = bisect.bisect_right(stamps, now + MAX_FUTURE_MS)
        if end < len(stamps):
            rejected["tooNewLogEventStartIndex"] = end
        accepted = [(event["timestamp"], event["message"]) for event in events[first:end]]
        if accepted and accepted[-1][0] - accepted[0][0] > MAX_SPAN_MS:
            raise invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than"
                " 24 hours."
            )
        item = Append(ctx.account_id, ctx.region, name, stream, now, accepted)
        token = await self.writer.put(item)
        if not accepted:
            token = self.logs.require_stream(self.store.conn, group.id, stream).token
        result: Response = {"nextSequenceToken": str(token)}
        if rejected:
            result["rejectedLogEventsInfo"] = rejected
        return result

    @operation("GetLogEvents")
    async def get_log_events(self, ctx: RequestContext, request: Request) -> Response:
        return await self._read(lambda conn: self._get_log_events(conn, ctx, request))

    def _get_log_events(
        self, conn: sqlite3.Connection, ctx: RequestContext, request: Request
    ) -> Response:
        name = group_name(request, ctx.account_id, ctx.region)
        group = self.logs.require_group(conn, ctx.account_id, ctx.region, name)
        stream = self.logs.require_stream(conn, group.id, request["logStreamName"])
        position = None
        forward = bool(request.get("startFromHead"))
        if request.get("nextToken"):
            direction, ts, seq = tokens.parse_stream_token(request["nextToken"])
            forward, position = direction == "f", (ts, seq)
        start, end = _time_range(request, group)
        page = stream_page(
            conn,
            stream.id,
            start=start,
            end=end,
            position=position,
            forward=forward,
            limit=request.get("limit") or MAX_PAGE_EVENTS,
        )
        return {
            "events": page.events,
            "nextForwardToken": tokens.stream_token("f", *page.forward),
            "nextBackwardToken": tokens.stream_token("b", *page.backward),
        }

    @operation("FilterLogEvents")
    async def filter_log_events(self, ctx: RequestContext, request: Request) -> Response:
        if request.get("logStreamNames") and request.get("logStreamNamePrefix"):
            raise invalid("Cannot specify both logStreamNames and logStreamNamePrefix.")
        terms, matches = compile_filter(request.get("filterPattern"))
        return await self._read(
            lambda conn: self._filter_log_events(conn, ctx, request, terms, matches)
        )

    def _filter_log_events(
        self,
        conn: sqlite3.Connection,
        ctx: RequestContext,
        request: Request,
        terms: list[str],
        matches: Callable[[str], bool] | None,
    ) -> Response:
        name = group_name(request, ctx.account_id, ctx.region)
        group = self.logs.require_group(conn, ctx.account_id, ctx.region, name)
        position = None
        descending = request.get("startFromHead") is False
        if request.get("nextToken"):
            state = tokens.decode(request["nextToken"])
            position, descending = tokens.position(state), state.get("d") == "b"
        elif descending and request.get("startTime", DESCENDING_FLOOR_MS) < DESCENDING_FLOOR_MS:
            raise invalid(
                "startFromHead=false is supported only with a startTime on or after"
                " 2024-01-01T00:00:00Z."
            )
        wanted = request.get("logStreamNames")
        if wanted:
            wanted_set = set(wanted)
            names = {
                stream_id: stream
                for stream_id, stream in self.logs.stream_names(conn, group.id).items()
                if stream in wanted_set
            }
        else:
            names = self.logs.stream_names(conn, group.id, request.get("logStreamNamePrefix"))
        start, end = _time_range(request, group)
        query = FilterQuery(
            group_id=group.id,
            names=names,
            only_streams=bool(wanted or request.get("logStreamNamePrefix")),
            start=start,
            end=end,
            position=position,
            descending=descending,
            terms=terms,
            matches=matches,
            limit=request.get("limit") or MAX_PAGE_EVENTS,
            budget_s=self.filter_budget_s,
        )
        events, following = filter_page(conn, query)
        result: Response = {"events": events}
        if following is not None:
            ts, seq = following
            result["nextToken"] = tokens.encode(
                {"t": ts, "s": seq, "d": "b" if descending else "f"}
            )
        return result

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._with_reader, read)

    def _with_reader(self, read: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.store.connect()
        return read(conn)

    @operation("StartLiveTail")
    async def start_live_tail(self, ctx: RequestContext, request: Request) -> Response:
        return await start_live_tail(self, ctx, request)  # see live_tail.py

    # ---- retention

    @operation("PutRetentionPolicy")
    async def put_retention_policy(self, ctx: RequestContext, request: Request) -> Response:
        days = request["retentionInDays"]
        check_retention(days)
        await self._set_retention(ctx, request["logGroupName"], days)
        self.writer.wake_sweeper()
        return {}

    @operation("DeleteRetentionPolicy")
    async def delete_retention_policy(self, ctx: RequestContext, request: Request) -> Response:
        await self._set_retention(ctx, request["logGroupName"], None)
        return {}

    async def _set_retention(self, ctx: RequestContext, name: str, days: int | None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            group = self.logs.require_group(conn, ctx.account_id, ctx.region, name)
            self.logs.set_retention(conn, group.id, days)

        await self.writer.call(write)

    # ---- tags

    @operation("TagResource")
    async def tag_resource(self, ctx: RequestContext, request: Request) -> Response:
        name = group_from_arn(request["resourceArn"], ctx.account_id, ctx.region)
        await self._change_tags(ctx, name, set_tags=request["tags"])
        return {}

    @operation("UntagResource")
    async def untag_resource(self, ctx: RequestContext, request: Request) -> Response:
        name = group_from_arn(request["resourceArn"], ctx.account_id, ctx.region)
        await self._change_tags(ctx, name, remove=request["tagKeys"])
        return {}

    @operation("ListTagsForResource")
    def list_tags_for_resource(self, ctx: RequestContext, request: Request) -> Response:
        name = group_from_arn(request["resourceArn"], ctx.account_id, ctx.region)
        return {
            "tags": self.logs.require_group(self.store.conn, ctx.account_id, ctx.region, name).tags
        }

    @operation("TagLogGroup")
    async def tag_log_group(self, ctx: RequestContext, request: Request) -> Response:
        await self._change_tags(ctx, request["logGroupName"], set_tags=request["tags"])
        return {}

    @operation("UntagLogGroup")
    async def untag_log_group(self, ctx: RequestContext, request: Request) -> Response:
        await self._change_tags(ctx, request["logGroupName"], remove=request["tags"])
        return {}

    @operation("ListTagsLogGroup")
    def list_tags_log_group(self, ctx: RequestContext, request: Request) -> Response:
        group = self.logs.require_group(
            self.store.conn, ctx.account_id, ctx.region, request["logGroupName"]
        )
        return {"tags": group.tags}

    async def _change_tags(
        self,
        ctx: RequestContext,
        name: str,
        *,
        set_tags: dict[str, str] | None = None,
        remove: list[str] | None = None,
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            group = self.logs.require_group(conn, ctx.account_id, ctx.region, name)
            tags = {**group.tags, **(set_tags or {})}
            for key in remove or ():
                tags.pop(key, None)
            check_tag_count(len(tags), group_arn(ctx.region, ctx.account_id, name))
            self.logs.set_tags(conn, group.id, tags)

        await self.writer.call(write)


def _time_range(request: Request, group: Group) -> tuple[int, int]:
    """`startTime` (raised to the retention floor) and `endTime` of a request."""
    start = request.get("startTime")
    start = MIN_TS if start is None else start
    floor = group.retention_floor(now_ms())
    if floor is not None:
        start = max(start, floor)
    end = request.get("endTime")
    return start, MAX_TS if end is None else end


def _group_entry(group: Group) -> dict[str, Any]:
    arn = group_arn(group.region, group.account, group.name)
    entry: dict[str, Any] = {
        "logGroupName": group.name,
        "creationTime": group.created,
        "metricFilterCount": 0,
        "arn": arn + ":*",
        "storedBytes": group.stored_bytes,
        "logGroupClass": group.log_class,
        "logGroupArn": arn,
    }
    if group.retention is not None:
        entry["retentionInDays"] = group.retention
    if group.kms_key:
        entry["kmsKeyId"] = group.kms_key
    return entry


def _stream_entry(group: Group, stream: Stream) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "logStreamName": stream.name,
        "creationTime": stream.created,
        "arn": stream_arn(group.region, group.account, group.name, stream.name),
        "storedBytes": 0,
    }
    if stream.first_event >= 0:
        entry["firstEventTimestamp"] = stream.first_event
        entry["lastEventTimestamp"] = stream.last_event
    if stream.last_ingestion >= 0:
        entry["lastIngestionTime"] = stream.last_ingestion
    if stream.token:
        entry["uploadSequenceToken"] = str(stream.token)
    return entry
