"""CloudWatch Logs storage: appends, pages, filtering, the ingestion queue and retention."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.core.config import Settings
from squall.core.context import Principal, RequestContext
from squall.core.errors import ServiceError
from squall.services.logs.events import (
    CHECKPOINT_MODULUS,
    MAX_TS,
    MIN_TS,
    FilterQuery,
    filter_page,
    stream_page,
)
from squall.services.logs.names import DAY_MS
from squall.services.logs.service import LogsService
from squall.services.logs.store import Append, LogStore
from squall.store import Store, open_store

ACCOUNT, REGION = "000000000000", "us-east-1"
ROOT = Principal(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, "Root", "test")


def ctx(operation: str = "Test") -> RequestContext:
    return RequestContext("r-1", "logs", operation, REGION, ROOT)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path)
    yield store
    store.close()


def put(
    logs: LogStore, store: Store, group: str, stream: str, events: list[tuple[int, str]]
) -> Append:
    item = Append(ACCOUNT, REGION, group, stream, 1000, events)
    with store.transaction() as conn:
        logs.append(conn, [item], create=True, now=1000)
    return item


def ids(logs: LogStore, store: Store, group: str, stream: str) -> tuple[int, int]:
    found = logs.require_group(store.conn, ACCOUNT, REGION, group)
    return found.id, logs.require_stream(store.conn, found.id, stream).id


def query(group_id: int, names: dict[int, str], **overrides: Any) -> FilterQuery:
    values = {
        "group_id": group_id,
        "names": names,
        "only_streams": False,
        "start": MIN_TS,
        "end": MAX_TS,
        "position": None,
        "descending": False,
        "terms": [],
        "matches": None,
        "limit": 10_000,
    }
    values.update(overrides)
    return FilterQuery(**values)


def test_append_creates_groups_and_streams_and_tracks_metadata(store: Store) -> None:
    logs = LogStore(store)
    first = put(logs, store, "/aws/lambda/f", "s1", [(30, "c"), (10, "a"), (20, "bé")])
    second = put(logs, store, "/aws/lambda/f", "s1", [(5, "z")])
    assert (first.token, second.token) == (1, 2)
    group = logs.require_group(store.conn, ACCOUNT, REGION, "/aws/lambda/f")
    assert group.stored_bytes == len("cabéz".encode())
    stream = logs.require_stream(store.conn, group.id, "s1")
    assert (stream.first_event, stream.last_event, stream.last_ingestion) == (5, 30, 1000)
    with pytest.raises(ServiceError) as missing, store.transaction() as conn:
        logs.append(
            conn, [Append(ACCOUNT, REGION, "nope", "s", 1, [(1, "x")])], create=False, now=1
        )
    assert missing.value.code == "ResourceNotFoundException"


def test_stream_pages_walk_both_ways_and_keep_the_token_at_the_end(store: Store) -> None:
    logs = LogStore(store)
    put(logs, store, "g", "s", [(ts, f"m{ts}") for ts in range(10)])
    _, stream_id = ids(logs, store, "g", "s")

    def page(position=None, forward=True, limit=4, start=MIN_TS, end=MAX_TS):
        return stream_page(
            store.conn,
            stream_id,
            start=start,
            end=end,
            position=position,
            forward=forward,
            limit=limit,
        )

    newest = page(forward=False)
    assert [e["message"] for e in newest.events] == ["m6", "m7", "m8", "m9"]
    older = page(newest.backward, forward=False)
    assert [e["message"] for e in older.events] == ["m2", "m3", "m4", "m5"]
    head = page(limit=3)
    assert [e["timestamp"] for e in head.events] == [0, 1, 2]
    rest = page(head.forward, limit=100)
    assert [e["timestamp"] for e in rest.events] == list(range(3, 10))
    end = page(rest.forward)
    assert end.events == [] and end.forward == rest.forward  # same token back: caught up
    assert [e["timestamp"] for e in page(start=3, end=5, limit=100).events] == [3, 4]
    put(logs, store, "g", "s", [(10, "m10")])
    assert [e["message"] for e in page(rest.forward).events] == ["m10"]


def test_an_empty_stream_gives_a_forward_token_that_sees_later_events(store: Store) -> None:
    logs = LogStore(store)
    put(logs, store, "g", "s", [])
    _, stream_id = ids(logs, store, "g", "s")
    empty = stream_page(
        store.conn, stream_id, start=MIN_TS, end=MAX_TS, position=None, forward=False, limit=10
    )
    assert empty.events == []
    put(logs, store, "g", "s", [(1, "late")])
    later = stream_page(
        store.conn,
        stream_id,
        start=MIN_TS,
        end=MAX_TS,
        position=empty.forward,
        forward=True,
        limit=10,
    )
    assert [e["message"] for e in later.events] == ["late"]


def test_filter_interleaves_streams_and_pages_by_limit(store: Store) -> None:
    logs = LogStore(store)
    put(logs, store, "g", "a", [(ts, f"a{ts}") for ts in range(0, 20, 2)])
    put(logs, store, "g", "b", [(ts, f"b{ts}") for ts in range(1, 20, 2)])
    put(logs, store, "other", "a", [(5, "other")])
    group_id, _ = ids(logs, store, "g", "a")
    names = logs.stream_names(store.conn, group_id)
    events, following = filter_page(store.conn, query(group_id, names, limit=7))
    assert [e["timestamp"] for e in events] == list(range(7))
    assert {e["logStreamName"] for e in events} == {"a", "b"}
    events, following = filter_page(store.conn, query(group_id, names, position=following))
    assert [e["timestamp"] for e in events] == list(range(7, 20))
    assert following is None
    backwards, _ = filter_page(store.conn, query(group_id, names, descending=True, limit=3))
    assert [e["timestamp"] for e in backwards] == [19, 18, 17]
    only_b = logs.stream_names(store.conn, group_id, "b")
    events, _ = filter_page(store.conn, query(group_id, only_b, only_streams=True, start=4, end=9))
    assert [e["message"] for e in events] == ["b5", "b7", "b9"]


def test_filter_prefilters_on_required_terms_case_sensitively(store: Store) -> None:
    logs = LogStore(store)
    messages = ["ERROR disk [full] *", "error lower", "INFO fine", "ERROR net?", "x [full] *"]
    put(logs, store, "g", "s", list(enumerate(messages)))
    group_id, _ = ids(logs, store, "g", "s")
    names = logs.stream_names(store.conn, group_id)
    events, _ = filter_page(store.conn, query(group_id, names, terms=["ERROR"]))
    assert [e["message"] for e in events] == ["ERROR disk [full] *", "ERROR net?"]
    events, _ = filter_page(store.conn, query(group_id, names, terms=["[full] *"]))
    assert [e["timestamp"] for e in events] == [0, 4]  # glob characters are literal
    events, _ = filter_page(
        store.conn, query(group_id, names, terms=["ERROR"], matches=lambda m: "net" in m)
    )
    assert [e["message"] for e in events] == ["ERROR net?"]


@pytest.mark.parametrize("search", ["a rare term", "a quiet stream"])
def test_a_filter_page_stops_at_its_time_budget_and_resumes(store: Store, search: str) -> None:
    logs = LogStore(store)
    count = CHECKPOINT_MODULUS * 6
    put(logs, store, "g", "busy", [(ts, "INFO nothing to see") for ts in range(count)])
    put(logs, store, "g", "quiet", [(count, "ERROR at the end")])
    group_id, _ = ids(logs, store, "g", "quiet")
    if search == "a rare term":
        names, extra = logs.stream_names(store.conn, group_id), {"terms": ["ERROR"]}
    else:
        names, extra = logs.stream_names(store.conn, group_id, "quiet"), {"only_streams": True}
    events, following = filter_page(store.conn, query(group_id, names, budget_s=0.0, **extra))
    assert events == [] and following is not None  # stopped at a checkpoint, not at the end
    found = []
    for _ in range(20):
        events, following = filter_page(
            store.conn, query(group_id, names, position=following, budget_s=0.0, **extra)
        )
        found += events
        if following is None:
            break
    assert [e["message"] for e in found] == ["ERROR at the end"]


def test_purge_enforces_retention_in_batches_and_empties_the_trash(store: Store) -> None:
    logs = LogStore(store)
    now = 100 * DAY_MS
    old = [(now - 3 * DAY_MS + i, "old") for i in range(25)]
    new = [(now - DAY_MS // 2, "new")]
    put(logs, store, "keep", "s", old + new)
    put(logs, store, "short", "s", old + new)
    put(logs, store, "gone", "s", old)
    put(logs, store, "keep", "dropped", old)
    keep = logs.require_group(store.conn, ACCOUNT, REGION, "keep")
    short = logs.require_group(store.conn, ACCOUNT, REGION, "short")
    gone = logs.require_group(store.conn, ACCOUNT, REGION, "gone")
    with store.transaction() as conn:
        logs.set_retention(conn, short.id, 1)
        logs.delete_group(conn, ACCOUNT, REGION, "gone")
        logs.delete_stream(conn, keep.id, "dropped")
    steps = 0
    while True:
        with store.transaction() as conn:
            more = logs.purge_step(conn, now, batch=10)
        steps += 1
        if not more:
            break
    assert steps >= 7  # 75 events to delete, 10 at a time
    assert logs.count_events(store.conn, keep.id) == 26
    assert logs.count_events(store.conn, short.id) == 1
    assert logs.count_events(store.conn, gone.id) == 0
    assert store.conn.execute("SELECT count(*) FROM logs_trash").fetchone() == (0,)
    assert logs.require_group(store.conn, ACCOUNT, REGION, "short").stored_bytes == 3
    assert logs.require_group(store.conn, ACCOUNT, REGION, "keep").stored_bytes == 25 * 3 + 3


def test_ingest_never_loses_queued_events_on_stop(tmp_path: Path) -> None:
    store = open_store(tmp_path)

    async def scenario() -> None:
        service = LogsService(Settings(data_dir=tmp_path), store, flush_interval=60)
        await service.start()
        for index in range(100):
            service.ingest(
                ACCOUNT, REGION, "/aws/lambda/f", f"s{index % 3}", [(index, f"m{index}")]
            )
        await service.stop()  # the flusher never ran: stop writes the queue

    asyncio.run(scenario())
    logs = LogStore(store)
    group = logs.require_group(store.conn, ACCOUNT, REGION, "/aws/lambda/f")
    assert logs.count_events(store.conn, group.id) == 100
    assert len(logs.stream_names(store.conn, group.id)) == 3
    store.close()


def test_stopping_while_batches_are_in_flight_keeps_every_event(tmp_path: Path) -> None:
    store = open_store(tmp_path)

    async def scenario() -> None:
        service = LogsService(Settings(data_dir=tmp_path), store, flush_interval=0.001)
        service.writer.batch_events = 50  # many batches, the flusher busy with one of them
        await service.start()
        for index in range(400):
            events = [(index * 10 + i, f"m{i}") for i in range(10)]
            service.ingest(ACCOUNT, REGION, "g", f"s{index % 7}", events)
            if index % 50 == 0:
                await asyncio.sleep(0)
        await service.stop()

    asyncio.run(scenario())
    logs = LogStore(store)
    group = logs.require_group(store.conn, ACCOUNT, REGION, "g")
    assert logs.count_events(store.conn, group.id) == 4000
    store.close()


def test_ingested_events_appear_within_a_flush_and_retention_deletes_them(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    now = int(time.time() * 1000)

    async def scenario() -> None:
        service = LogsService(Settings(data_dir=tmp_path), store, flush_interval=0.05)
        await service.start()
        try:
            old = [(now - 3 * DAY_MS + i, f"old {i}") for i in range(50)]
            service.ingest(ACCOUNT, REGION, "app", "s", [*old, (now, "fresh")])
            await asyncio.sleep(0.3)
            found = await service.filter_log_events(ctx(), {"logGroupName": "app"})
            assert len(found["events"]) == 51
            await service.put_retention_policy(ctx(), {"logGroupName": "app", "retentionInDays": 1})
            found = await service.filter_log_events(ctx(), {"logGroupName": "app"})
            assert [e["message"] for e in found["events"]] == ["fresh"]  # hidden at once
            await service.sweep()
            group = service.logs.require_group(store.conn, ACCOUNT, REGION, "app")
            assert service.logs.count_events(store.conn, group.id) == 1  # and really deleted
            assert group.stored_bytes == len("fresh")
        finally:
            await service.stop()

    asyncio.run(scenario())
    store.close()


def test_put_log_events_rejects_old_and_future_events_by_index(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    now = int(time.time() * 1000)

    async def scenario() -> None:
        service = LogsService(Settings(data_dir=tmp_path), store)
        await service.start()
        try:
            await service.create_log_group(ctx(), {"logGroupName": "g"})
            await service.create_log_stream(ctx(), {"logGroupName": "g", "logStreamName": "s"})
            stamps = [now - 15 * DAY_MS, now - 15 * DAY_MS, now - 1000, now, now + 3 * 3_600_000]
            result = await service.put_log_events(
                ctx(),
                {
                    "logGroupName": "g",
                    "logStreamName": "s",
                    "logEvents": [{"timestamp": t, "message": f"m{t}"} for t in stamps],
                },
            )
            assert result["rejectedLogEventsInfo"] == {
                "tooOldLogEventEndIndex": 1,
                "tooNewLogEventStartIndex": 4,
            }
            page = await service.get_log_events(
                ctx(), {"logGroupName": "g", "logStreamName": "s", "startFromHead": True}
            )
            assert [e["timestamp"] for e in page["events"]] == [now - 1000, now]
        finally:
            await service.stop()

    asyncio.run(scenario())
    store.close()


# ---- costs that must not grow with depth, and crafted input


def vm_steps(store: Store, call: Any) -> int:
    """How many hundreds of SQLite VM instructions `call()` runs on `store.conn`."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    store.conn.set_progress_handler(tick, 100)
    try:
        call()
    finally:
        store.conn.set_progress_handler(None, 0)
    return count


def test_pages_cost_the_same_at_any_depth(store: Store) -> None:
    logs = LogStore(store)
    count = 20_000
    put(logs, store, "g", "s", [(ts // 2, f"m{ts}") for ts in range(count)])  # 2 events a ms
    group_id, stream_id = ids(logs, store, "g", "s")
    names = logs.stream_names(store.conn, group_id)
    positions = store.conn.execute(
        "SELECT ts, seq FROM logs_events WHERE group_id = ? ORDER BY ts, seq", (group_id,)
    ).fetchall()

    def get(index: int, forward: bool) -> Any:
        return lambda: stream_page(
            store.conn,
            stream_id,
            start=0,
            end=MAX_TS,
            position=positions[index],
            forward=forward,
            limit=10,
        )

    def scan(index: int, forward: bool) -> Any:
        return lambda: filter_page(
            store.conn,
            query(group_id, names, position=positions[index], descending=not forward, limit=10),
        )

    for page in (get, scan):  # (a filter page reads rows 256 at a time: 1,000 leaves enough)
        near = vm_steps(store, page(1_000, True)) + vm_steps(store, page(count - 1_000, False))
        far = vm_steps(store, page(count - 1_000, True)) + vm_steps(store, page(1_000, False))
        assert far <= near * 1.5 + 5  # bounded by `ts >= start` alone, ~19,000 rows more


def test_pages_bound_by_position_and_time_range_together(store: Store) -> None:
    logs = LogStore(store)
    put(logs, store, "g", "s", [(ts // 3, f"m{ts}") for ts in range(30)])  # 3 events a ms
    group_id, stream_id = ids(logs, store, "g", "s")
    names = logs.stream_names(store.conn, group_id)
    seqs = [seq for (seq,) in store.conn.execute("SELECT seq FROM logs_events ORDER BY ts, seq")]

    def walk(forward: bool, start: int, end: int, position: Any = None) -> list[str]:
        found = []
        while True:
            page = stream_page(
                store.conn,
                stream_id,
                start=start,
                end=end,
                position=position,
                forward=forward,
                limit=2,
            )
            if not page.events:
                return found
            found += [e["message"] for e in (page.events if forward else page.events[::-1])]
            position = page.forward if forward else page.backward

    assert walk(True, 2, 5) == [f"m{i}" for i in range(6, 15)]  # pages split equal timestamps
    assert walk(False, 2, 5) == [f"m{i}" for i in range(14, 5, -1)]
    assert walk(True, 2, 5, (1, seqs[4])) == [f"m{i}" for i in range(6, 15)]  # before the start
    assert walk(True, 2, 5, (3, seqs[10])) == [f"m{i}" for i in range(11, 15)]
    assert walk(False, 2, 5, (9, seqs[27])) == [f"m{i}" for i in range(14, 5, -1)]  # past the end
    assert walk(False, 2, 5, (3, seqs[10])) == [f"m{i}" for i in range(9, 5, -1)]

    def scan(descending: bool, start: int, end: int, position: Any) -> list[str]:
        events, _ = filter_page(
            store.conn,
            query(group_id, names, start=start, end=end, position=position, descending=descending),
        )
        return [e["message"] for e in events]

    assert scan(False, 2, 4, (3, seqs[10])) == [f"m{i}" for i in range(11, 15)]
    assert scan(False, 2, 4, (0, seqs[0])) == [f"m{i}" for i in range(6, 15)]
    assert scan(True, 2, 4, (3, seqs[10])) == [f"m{i}" for i in range(9, 5, -1)]
    assert scan(True, 2, 4, (9, seqs[27])) == [f"m{i}" for i in range(14, 5, -1)]


def test_purge_steps_cost_the_same_however_many_rows_are_left(store: Store) -> None:
    logs = LogStore(store)
    now = 100 * DAY_MS
    put(logs, store, "short", "s", [(now - 3 * DAY_MS + i, "old") for i in range(20_000)])
    short = logs.require_group(store.conn, ACCOUNT, REGION, "short")
    with store.transaction() as conn:
        logs.set_retention(conn, short.id, 1)
    costs = []
    more = True
    while more:

        def step() -> None:
            nonlocal more
            with store.transaction() as conn:
                more = logs.purge_step(conn, now, batch=1_000)

        costs.append(vm_steps(store, step))
    assert len(costs) == 21 and logs.count_events(store.conn, short.id) == 0  # the last: none left
    assert max(costs[:-1]) <= min(costs[:-1]) * 1.5  # bounded by `ts < cutoff`, the first read 20x


def test_tokens_outside_sqlite_integers_are_invalid_tokens(tmp_path: Path) -> None:
    from squall.services.logs import tokens

    def token(state: dict[str, Any]) -> str:
        return tokens.encode(state)

    assert tokens.position(tokens.decode(token({"t": (1 << 63) - 1, "s": -(1 << 63)})))
    for state in ({"t": 1 << 63, "s": 1}, {"t": 1, "s": (1 << 64) - 1}, {"n": "x", "t": 1 << 63}):
        with pytest.raises(ServiceError) as bad:
            tokens.decode(token(state))
        assert bad.value.code == "InvalidParameterException"
    for text in (
        "f/" + "9" * 40,
        "b/" + "0" * 20 + "9" * 20,
        "f/" + "²" * 40,
        "f/" + "\u0661" * 40,  # Arabic-Indic digits: not the ASCII squall writes
    ):
        with pytest.raises(ServiceError) as bad:
            tokens.parse_stream_token(text)
        assert bad.value.code == "InvalidParameterException"
    assert tokens.parse_stream_token(tokens.stream_token("b", 1 << 62, (1 << 63) - 1))
    store = open_store(tmp_path)

    async def scenario() -> None:
        service = LogsService(Settings(data_dir=tmp_path), store)
        await service.start()
        try:
            await service.create_log_group(ctx(), {"logGroupName": "g"})
            await service.create_log_stream(ctx(), {"logGroupName": "g", "logStreamName": "s"})
            requests = [
                (service.get_log_events, {"logStreamName": "s", "nextToken": "f/" + "9" * 40}),
                (service.filter_log_events, {"nextToken": token({"t": 1 << 63, "s": 1})}),
                (service.filter_log_events, {"nextToken": token({"t": 1, "s": 1 << 63})}),
            ]
            for call, request in requests:
                with pytest.raises(ServiceError) as bad:
                    await call(ctx(), {"logGroupName": "g", **request})
                assert bad.value.code == "InvalidParameterException"  # not an OverflowError
        finally:
            await service.stop()

    asyncio.run(scenario())
    store.close()


def test_filter_finds_terms_in_messages_with_nul_characters(store: Store) -> None:
    logs = LogStore(store)
    put(logs, store, "plain", "s", [(1, "ERROR plain")])
    plain, _ = ids(logs, store, "plain", "s")
    assert store.conn.execute(
        "SELECT nul_messages FROM logs_groups WHERE id = ?", (plain,)
    ).fetchone() == (0,)
    messages = ["a\0ERROR after", "ERROR\0before", "\0 nothing", "ERROR plain", "INFO"]
    put(logs, store, "g", "s", list(enumerate(messages)))
    group_id, _ = ids(logs, store, "g", "s")
    names = logs.stream_names(store.conn, group_id)
    for matches in (None, lambda message: "ERROR" in message):
        events, _ = filter_page(
            store.conn, query(group_id, names, terms=["ERROR"], matches=matches)
        )
        assert [e["timestamp"] for e in events] == [0, 1, 3]  # GLOB alone stops at the NUL
    events, _ = filter_page(store.conn, query(group_id, names, terms=["ERROR", "after"]))
    assert [e["message"] for e in events] == ["a\0ERROR after"]


def test_the_nul_flag_migration_marks_groups_that_stored_nul(tmp_path: Path) -> None:
    from squall.services.logs.store import MIGRATIONS

    store = open_store(tmp_path)
    store.migrate("logs", MIGRATIONS[:1])
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO logs_groups (account, region, name, created) VALUES ('a', 'r', ?, 1)",
            [("g",), ("h",)],
        )
        conn.executemany(
            "INSERT INTO logs_events VALUES (?, 1, ?, 1, 1, ?)",
            [(1, 1, "x\0ERROR"), (2, 2, "ERROR")],
        )
    LogStore(store)
    assert store.conn.execute(
        "SELECT id, nul_messages FROM logs_groups ORDER BY id"
    ).fetchall() == [(1, 1), (2, 0)]
    store.close()


def test_ingest_commits_transactions_of_at_most_batch_events(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    sizes: list[int] = []

    async def scenario() -> None:
        service = LogsService(Settings(data_dir=tmp_path), store, flush_interval=60)
        writer = service.writer
        assert writer.batch_events <= 5_000  # ~30 ms holding the write lock: not ~150 ms
        writer.batch_events = 100
        append = writer._append

        def counted(items: Any, *, create: bool) -> None:
            sizes.append(sum(len(item.events) for item in items))
            append(items, create=create)

        writer._append = counted  # type: ignore[method-assign]
        await service.start()
        for index in range(105):
            service.ingest(ACCOUNT, REGION, "g", "s", [(index * 10 + i, "m") for i in range(10)])
        await service.stop()

    asyncio.run(scenario())
    assert sum(sizes) == 1050 and max(sizes) <= 100 and len(sizes) >= 11
    store.close()
