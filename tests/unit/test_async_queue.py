"""Tests for squall.engine.async_queue: durable storage, scheduling, retries and redelivery."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.engine.async_queue import AsyncQueue, QueuedEvent, Reschedule
from squall.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "data")
    yield s
    s.close()


def event(
    event_id: str,
    *,
    delay: float = 0.0,
    payload: bytes = b"{}",
    qualifier: str | None = None,
    context: dict[str, Any] | None = None,
) -> QueuedEvent:
    now = time.time()
    return QueuedEvent(
        id=event_id,
        target="arn:aws:lambda:us-east-1:000000000000:function:f",
        qualifier=qualifier,
        payload=payload,
        received_at=now,
        not_before=now + delay,
        context=context or {},
    )


def rows(store: Store) -> dict[str, tuple[float, int, str]]:
    return {
        r[0]: (r[1], r[2], r[3])
        for r in store.conn.execute("SELECT id, not_before, attempts, context FROM async_events")
    }


def test_put_dispatches_once_and_deletes(store: Store) -> None:
    seen: list[QueuedEvent] = []

    async def dispatch(ev: QueuedEvent) -> Reschedule | None:
        seen.append(ev)
        return None

    async def main() -> None:
        # a long idle poll: the put itself must wake the scheduler
        q = AsyncQueue(store, idle_poll_s=10)
        q.start(dispatch)
        await q.put(event("r1", payload=b'{"a": 1}', qualifier="prod", context={"k": [1, "x"]}))
        assert q.pending() == 1
        assert await q.wait_idle(1)
        await asyncio.sleep(0.02)  # no second delivery
        await q.stop()

    asyncio.run(main())
    assert len(seen) == 1
    ev = seen[0]
    assert (ev.id, ev.qualifier, ev.payload, ev.attempts) == ("r1", "prod", b'{"a": 1}', 0)
    assert ev.context == {"k": [1, "x"]}
    assert rows(store) == {}


def test_put_is_durable_when_it_returns_and_rejects_duplicates(store: Store) -> None:
    async def main() -> None:
        q = AsyncQueue(store)
        await q.put(event("r1"))
        # visible to another connection: committed
        other = store.connect()
        try:
            assert other.execute("SELECT id FROM async_events").fetchall() == [("r1",)]
        finally:
            other.close()
        with pytest.raises(ValueError):
            await q.put(event("r1"))
        assert q.pending() == 1

    asyncio.run(main())


def test_future_event_waits_for_not_before(store: Store) -> None:
    times: list[float] = []

    async def dispatch(ev: QueuedEvent) -> None:
        times.append(time.time())

    async def main() -> None:
        q = AsyncQueue(store, idle_poll_s=10)
        q.start(dispatch)
        ev = event("later", delay=0.1)
        await q.put(ev)
        await asyncio.sleep(0.05)
        assert times == []
        assert await q.wait_idle(1)
        await q.stop()
        assert times[0] >= ev.not_before

    asyncio.run(main())


def test_reschedule_is_honoured_and_persisted(store: Store) -> None:
    calls: list[tuple[float, int, dict[str, object]]] = []
    at: list[float] = []
    persisted: list[tuple[float, int, str]] = []

    async def dispatch(ev: QueuedEvent) -> Reschedule | None:
        calls.append((time.time(), ev.attempts, ev.context))
        if len(calls) == 1:
            at.append(time.time() + 0.1)
            return Reschedule(at=at[0], attempts=1, context={"chain": ["a"]})
        if len(calls) == 2:
            persisted.append(rows(store)["r1"])
            return Reschedule(at=0, attempts=2)  # in the past: due now; context kept
        return None

    async def main() -> None:
        q = AsyncQueue(store, idle_poll_s=10)
        q.start(dispatch)
        await q.put(event("r1", context={"orig": True}))
        await asyncio.sleep(0.05)
        assert len(calls) == 1
        assert rows(store)["r1"][:2] == (at[0], 1)
        assert q.pending() == 1
        assert await q.wait_idle(1)
        await q.stop()

    asyncio.run(main())
    assert len(calls) == 3
    assert calls[0][1:] == (0, {"orig": True})
    assert calls[1][0] >= at[0]
    assert calls[1][1:] == (1, {"chain": ["a"]})
    assert calls[2][1:] == (2, {"chain": ["a"]})
    assert persisted == [(at[0], 1, '{"chain":["a"]}')]
    assert rows(store) == {}


def test_dispatch_raising_is_logged_and_retried(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[float, int]] = []

    async def dispatch(ev: QueuedEvent) -> None:
        calls.append((time.time(), ev.attempts))
        if len(calls) < 3:
            raise RuntimeError("boom")

    async def main() -> None:
        q = AsyncQueue(store, idle_poll_s=10, failure_delay_s=0.03)
        q.start(dispatch)
        await q.put(event("r1"))
        assert await q.wait_idle(1)
        await q.stop()

    with caplog.at_level(logging.ERROR, logger="squall.engine.async_queue"):
        asyncio.run(main())
    assert [a for _, a in calls] == [0, 0, 0]  # attempts not bumped by failures
    assert calls[1][0] - calls[0][0] >= 0.025
    assert sum("boom" in (r.exc_text or "") for r in caplog.records) == 2
    assert rows(store) == {}


def test_bad_return_value_is_a_failure(store: Store) -> None:
    calls = 0

    async def dispatch(ev: QueuedEvent) -> object:
        nonlocal calls
        calls += 1
        return "nope" if calls == 1 else None

    async def main() -> None:
        q = AsyncQueue(store, failure_delay_s=0.01)
        q.start(dispatch)  # type: ignore[arg-type]
        await q.put(event("r1"))
        assert await q.wait_idle(1)
        await q.stop()

    asyncio.run(main())
    assert calls == 2


def test_max_in_flight_and_one_dispatch_per_id(store: Store) -> None:
    running: set[str] = set()
    peak = 0
    delivered: list[str] = []

    async def dispatch(ev: QueuedEvent) -> None:
        nonlocal peak
        assert ev.id not in running
        running.add(ev.id)
        peak = max(peak, len(running))
        await asyncio.sleep(0.02)
        running.discard(ev.id)
        delivered.append(ev.id)

    async def main() -> None:
        q = AsyncQueue(store, max_in_flight=3, idle_poll_s=10)
        for i in range(10):
            await q.put(event(f"r{i}"))
        q.start(dispatch)
        assert await q.wait_idle(2)
        await q.stop()

    asyncio.run(main())
    assert peak == 3
    assert sorted(delivered) == sorted(f"r{i}" for i in range(10))


def test_events_survive_a_restart(tmp_path: Path) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    data = tmp_path / "data"

    async def fill() -> None:
        q = AsyncQueue(open_store(data))
        await q.put(event("a", payload=big))
        await q.put(event("b", delay=0.05, qualifier="1"))
        await q.put(event("c", context={"x": 1}))
        assert q.pending() == 3  # never started: nothing dispatched

    first = open_store(data)
    asyncio.run(fill())
    first.close()

    seen: dict[str, QueuedEvent] = {}

    async def dispatch(ev: QueuedEvent) -> None:
        seen[ev.id] = ev

    async def drain() -> None:
        with open_store(data) as s:
            q = AsyncQueue(s, idle_poll_s=10)
            assert q.pending() == 3
            q.start(dispatch)
            assert await q.wait_idle(1)
            await q.stop()
            assert rows(s) == {}

    asyncio.run(drain())
    assert set(seen) == {"a", "b", "c"}
    assert seen["a"].payload == big
    assert seen["b"].qualifier == "1"
    assert seen["c"].context == {"x": 1}


def test_event_in_flight_when_abandoned_is_delivered_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first_calls: list[str] = []
    second_calls: list[str] = []

    async def main() -> None:
        started = asyncio.Event()

        async def hang(ev: QueuedEvent) -> None:
            first_calls.append(ev.id)
            started.set()
            await asyncio.Event().wait()  # never returns

        async def record(ev: QueuedEvent) -> None:
            second_calls.append(ev.id)

        store1 = open_store(data)
        q1 = AsyncQueue(store1, idle_poll_s=10)
        q1.start(hang)
        await q1.put(event("r1"))
        await asyncio.wait_for(started.wait(), 1)

        # the process "dies": a fresh store and queue over the same files take over
        store2 = open_store(data)
        q2 = AsyncQueue(store2, idle_poll_s=10)
        assert q2.pending() == 1
        q2.start(record)
        assert await q2.wait_idle(1)
        await q2.stop()
        assert rows(store2) == {}

        await q1.stop(timeout=0.01)  # cancels the hung dispatch; nothing is deleted by it
        store1.close()
        store2.close()

    asyncio.run(main())
    assert first_calls == ["r1"]
    assert second_calls == ["r1"]


def test_stop_cancels_late_dispatches_without_losing_them(store: Store) -> None:
    calls: list[str] = []

    async def dispatch(ev: QueuedEvent) -> None:
        calls.append(ev.id)
        if ev.id == "slow" and calls.count("slow") == 1:
            await asyncio.sleep(10)
        else:
            await asyncio.sleep(0.01)

    async def main() -> None:
        q = AsyncQueue(store, idle_poll_s=10)
        await q.put(event("slow"))
        await q.put(event("quick"))
        q.start(dispatch)
        await asyncio.sleep(0.005)
        await q.stop(timeout=0.05)  # "quick" finishes in time, "slow" is cancelled
        assert set(rows(store)) == {"slow"}
        assert q.pending() == 1
        assert not await q.wait_idle(0.01)

        q.start(dispatch)  # a restart delivers it again
        assert await q.wait_idle(1)
        await q.stop()

    asyncio.run(main())
    assert sorted(calls) == ["quick", "slow", "slow"]
    assert rows(store) == {}


def test_add_outside_a_transaction_commits_and_dispatches(store: Store) -> None:
    seen: list[str] = []

    async def dispatch(ev: QueuedEvent) -> None:
        seen.append(ev.id)

    async def main() -> None:
        q = AsyncQueue(store, idle_poll_s=10)
        q.start(dispatch)
        q.add(event("r1"))
        other = store.connect()
        try:
            assert other.execute("SELECT id FROM async_events").fetchall() == [("r1",)]
        finally:
            other.close()
        with pytest.raises(ValueError):
            q.add(event("r1"))
        assert await q.wait_idle(1)
        await q.stop()

    asyncio.run(main())
    assert seen == ["r1"]


def test_add_joins_the_callers_transaction(store: Store) -> None:
    seen: list[str] = []

    async def dispatch(ev: QueuedEvent) -> None:
        seen.append(ev.id)

    async def main() -> None:
        q = AsyncQueue(store, idle_poll_s=10)
        q.start(dispatch)
        with store.transaction() as conn:
            conn.execute("CREATE TABLE objects (key TEXT)")
            conn.execute("INSERT INTO objects VALUES ('a')")
            q.add(event("committed"))
            other = store.connect()
            try:  # not visible to anyone else before the caller commits
                assert other.execute("SELECT id FROM async_events").fetchall() == []
            finally:
                other.close()
        assert set(rows(store)) == {"committed"}
        assert await q.wait_idle(1)
        await q.stop()

    asyncio.run(main())
    assert seen == ["committed"]
    assert rows(store) == {}


def test_add_rolled_back_with_the_callers_transaction_is_forgotten(store: Store) -> None:
    seen: list[str] = []

    async def dispatch(ev: QueuedEvent) -> None:
        seen.append(ev.id)

    async def main() -> None:
        q = AsyncQueue(store, idle_poll_s=10)
        q.start(dispatch)
        with pytest.raises(RuntimeError), store.transaction():
            q.add(event("doomed"))
            raise RuntimeError("the object write failed")
        assert rows(store) == {}
        assert q.pending() == 1  # until the scheduler finds the row gone
        assert await q.wait_idle(1)
        q.add(event("next"))  # the queue carries on
        assert await q.wait_idle(1)
        await q.stop()

    asyncio.run(main())
    assert seen == ["next"]
    assert rows(store) == {}


def test_nothing_is_dispatched_while_a_transaction_is_open(store: Store) -> None:
    seen: list[str] = []

    async def dispatch(ev: QueuedEvent) -> None:
        seen.append(ev.id)

    async def main() -> None:
        q = AsyncQueue(store, idle_poll_s=10)
        q.start(dispatch)
        # a caller that awaits inside its transaction: its event is not delivered early
        store.conn.execute("BEGIN IMMEDIATE")
        q.add(event("pending"))
        await asyncio.sleep(0.1)
        assert seen == []
        store.conn.execute("COMMIT")
        assert await q.wait_idle(1)
        # and one that rolls back after awaiting: never delivered at all
        store.conn.execute("BEGIN IMMEDIATE")
        q.add(event("rolled-back"))
        await asyncio.sleep(0.05)
        store.conn.execute("ROLLBACK")
        assert await q.wait_idle(1)
        await q.stop()

    asyncio.run(main())
    assert seen == ["pending"]
    assert rows(store) == {}
