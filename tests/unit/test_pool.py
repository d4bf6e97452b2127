"""SandboxPool bookkeeping under concurrency, with fake sandboxes and a fake manager."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
from collections import OrderedDict
from typing import Any

import pytest

from squall.sandbox.pool import PoolCounts, SandboxPool
from squall.sandbox.sandbox import Sandbox
from squall.sandbox.spec import FunctionSpec

_ids = itertools.count(1)


def make_spec(revision: str = "r1") -> FunctionSpec:
    return FunctionSpec(
        name="fn",
        version="$LATEST",
        arn="arn:aws:lambda:us-east-1:000000000000:function:fn",
        runtime="python3.11",
        handler="app.handler",
        code_dir="/nonexistent",
        revision=revision,
    )


class FakeSandbox:
    def __init__(self, spec: FunctionSpec, *, last_used: float = 0.0, dead: bool = False) -> None:
        self.id = f"sb-{next(_ids)}"
        self.spec = spec
        self.dead = dead
        self.last_used = last_used
        self.destroyed = 0
        self.hold: asyncio.Event | None = None  # when set: destroy waits for it

    async def destroy(self) -> None:
        self.destroyed += 1
        self.dead = True
        await asyncio.sleep(0)  # yield to the loop, as a real destroy does
        if self.hold is not None:
            await self.hold.wait()

    def memory_bytes(self) -> int:
        return 1024


class FakeManager:
    """Creates FakeSandboxes; while `gate` is set, each create waits for it."""

    def __init__(self) -> None:
        self.created: list[FakeSandbox] = []
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.fail: Exception | None = None

    async def create(self, spec: FunctionSpec) -> FakeSandbox:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        sandbox = FakeSandbox(spec)
        self.created.append(sandbox)
        return sandbox


def make_pool(**kwargs: Any) -> tuple[SandboxPool, FakeManager]:
    manager = FakeManager()
    return SandboxPool(manager, **kwargs), manager  # type: ignore[arg-type]


def park(pool: SandboxPool, *sandboxes: FakeSandbox) -> None:
    """Put sandboxes idle directly, least recently used first."""
    for sandbox in sandboxes:
        group = pool._idle.setdefault(sandbox.spec.key, OrderedDict())
        group[sandbox.id] = sandbox  # type: ignore[assignment]


# --------------------------------------------------------------------------- drain / reap


def test_drain_racing_reap_destroys_each_sandbox_exactly_once():
    spec = make_spec()
    pool, _ = make_pool(keep_alive_s=10.0)
    sandboxes = [FakeSandbox(spec, last_used=0.0) for _ in range(6)]  # all expired
    park(pool, *sandboxes)

    async def main() -> None:
        # reap captures the version's idle dict first, then drain pops that same dict
        await asyncio.gather(pool.reap(), pool.drain(spec.key))

    asyncio.run(main())
    assert [s.destroyed for s in sandboxes] == [1] * 6
    assert pool.counts(spec.key) == PoolCounts(idle=0, busy=0)


def test_drain_racing_an_acquire_of_a_dead_sandbox():
    spec = make_spec()
    pool, manager = make_pool()
    live, dead = FakeSandbox(spec), FakeSandbox(spec, dead=True)
    park(pool, live, dead)  # the dead one is the most recent: acquire tries it first

    async def main() -> tuple[Any, bool]:
        return (await asyncio.gather(pool.acquire(spec), pool.drain(spec.key)))[0]

    sandbox, cold = asyncio.run(main())
    assert cold and sandbox is manager.created[0]  # `live` went with the drain
    assert live.destroyed == 1 and dead.destroyed == 1


def test_acquire_rereads_the_idle_sandboxes_after_destroying_a_dead_one():
    spec = make_spec()
    pool, manager = make_pool()
    stale, dead = FakeSandbox(spec), FakeSandbox(spec, dead=True)
    park(pool, stale, dead)
    fresh = FakeSandbox(spec)

    async def refill() -> None:
        # while acquire awaits the dead sandbox's destroy: the version is drained, then a
        # sandbox released into a new idle group
        await pool.drain(spec.key)
        pool._busy.setdefault(spec.key, {})[fresh.id] = fresh  # type: ignore[assignment]
        await pool.release(fresh)  # type: ignore[arg-type]
        assert dead.hold is not None
        dead.hold.set()

    async def main() -> tuple[Any, bool]:
        dead.hold = asyncio.Event()
        return (await asyncio.gather(pool.acquire(spec), refill()))[0]

    sandbox, cold = asyncio.run(main())
    assert sandbox is fresh and not cold
    assert stale.destroyed == 1 and dead.destroyed == 1 and fresh.destroyed == 0
    assert manager.created == []
    assert pool.counts(spec.key) == PoolCounts(idle=0, busy=1)


# --------------------------------------------------------------------------- retire


def test_retire_during_a_cold_start_destroys_the_new_sandbox_on_release():
    spec = make_spec()
    pool, manager = make_pool()

    async def main() -> None:
        manager.gate = asyncio.Event()
        acquiring = asyncio.create_task(pool.acquire(spec))
        await manager.started.wait()
        assert pool.counts(spec.key) == PoolCounts(idle=0, busy=1)  # starting counts as busy
        await pool.retire(spec.key)
        assert spec.key in pool._retired
        manager.gate.set()
        sandbox, cold = await acquiring
        assert cold
        assert spec.key in pool._retired  # still held: the sandbox is busy
        await pool.release(sandbox)
        assert sandbox.destroyed == 1
        assert pool.counts(spec.key) == PoolCounts(idle=0, busy=0)
        assert pool._retired == set() and pool._starting == {} and pool._busy == {}

    asyncio.run(main())


def test_add_idle_for_a_version_retired_while_it_starts():
    spec = make_spec()
    pool, manager = make_pool()

    async def main() -> None:
        manager.gate = asyncio.Event()
        adding = asyncio.create_task(pool.add_idle(spec))
        await manager.started.wait()
        await pool.retire(spec.key)
        pool.set_floor(spec.key, 2)  # a retired version gets no floor
        assert spec.key not in pool._floors
        manager.gate.set()
        sandbox = await adding
        assert sandbox.destroyed == 1
        assert pool.counts(spec.key) == PoolCounts(idle=0, busy=0)
        assert pool._retired == set() and pool._starting == {}

    asyncio.run(main())


def test_retire_marks_are_cleared_afterwards():
    spec = make_spec()
    pool, manager = make_pool()

    async def main() -> None:
        # nothing in flight: no mark at all
        await pool.retire(spec.key)
        assert pool._retired == set()

        # busy ones: held until the last is released
        first, _ = await pool.acquire(spec)
        second, _ = await pool.acquire(spec)
        await pool.retire(spec.key)
        await pool.release(first)
        assert spec.key in pool._retired
        await pool.release(second)
        assert pool._retired == set()
        assert first.destroyed == 1 and second.destroyed == 1

        # a cold start that fails: its mark goes with it
        manager.gate, manager.fail = asyncio.Event(), RuntimeError("init failed")
        manager.started.clear()
        acquiring = asyncio.create_task(pool.acquire(spec))
        await manager.started.wait()
        await pool.retire(spec.key)
        manager.gate.set()
        with pytest.raises(RuntimeError):
            await acquiring
        assert pool._retired == set() and pool._starting == {}

        # and the version is usable again afterwards
        manager.gate, manager.fail = None, None
        sandbox, cold = await pool.acquire(spec)
        await pool.release(sandbox)
        assert cold and sandbox.destroyed == 0
        assert pool.counts(spec.key) == PoolCounts(idle=1, busy=0)

    asyncio.run(main())


# --------------------------------------------------------------------------- floors


def test_floors_keep_sandboxes_through_reap_and_are_dropped_by_retire():
    spec = make_spec()
    pool, _ = make_pool(keep_alive_s=10.0)
    sandboxes = [FakeSandbox(spec, last_used=0.0) for _ in range(3)]  # all expired
    park(pool, *sandboxes)
    pool.set_floor(spec.key, 2)

    async def main() -> None:
        assert await pool.reap() == 1
        assert pool.counts(spec.key) == PoolCounts(idle=2, busy=0)
        assert await pool.reap() == 0  # the floor holds

        await pool.retire(spec.key)
        assert spec.key not in pool._floors
        assert pool.counts(spec.key) == PoolCounts(idle=0, busy=0)

    asyncio.run(main())
    assert [s.destroyed for s in sandboxes] == [1, 1, 1]


def test_floors_survive_budget_eviction():
    floored, other = make_spec("floored"), make_spec("other")
    pool, _ = make_pool(keep_alive_s=600.0, memory_budget_bytes=0)
    kept = [FakeSandbox(floored, last_used=1.0) for _ in range(2)]
    evicted = [FakeSandbox(other, last_used=2.0) for _ in range(2)]
    park(pool, *kept, *evicted)
    pool.set_floor(floored.key, 2)

    assert asyncio.run(pool.reap()) == 2
    assert [s.destroyed for s in kept] == [0, 0]
    assert [s.destroyed for s in evicted] == [1, 1]


# --------------------------------------------------------------------------- cancelled invoke


def test_a_cancelled_invoke_kills_the_sandbox_and_the_pool_does_not_keep_it():
    spec = make_spec()
    pool, _ = make_pool()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host, guest = socket.socketpair()
    log_r, log_w = os.pipe()
    destroyed: list[Sandbox] = []

    async def main() -> Sandbox:
        reader, writer = await asyncio.open_unix_connection(sock=host)
        sandbox = Sandbox(
            "sb-real",
            spec=spec,
            pid=process.pid,
            reader=reader,
            writer=writer,
            log_fd=log_r,
            cgroup=None,
            log_stream="stream",
            on_destroyed=destroyed.append,
        )
        pool._busy.setdefault(spec.key, {})[sandbox.id] = sandbox
        invoking = asyncio.create_task(sandbox.invoke("req-1", b"{}"))
        await asyncio.sleep(0.05)  # the request is written; no reply ever comes
        invoking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await invoking
        assert sandbox.dead and not sandbox.busy
        await pool.release(sandbox)
        return sandbox

    try:
        sandbox = asyncio.run(main())
        assert destroyed == [sandbox]
        assert pool.counts(spec.key) == PoolCounts(idle=0, busy=0)
        assert process.wait(timeout=5) == -9  # SIGKILLed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        guest.close()
        os.close(log_w)
