"""Warm sandboxes per function version: reuse, keep-alive, and eviction under a memory budget.

A sandbox runs one invocation at a time. `acquire` hands out the most recently used idle
sandbox of the version (the warmest), or cold-starts a new one; `release` returns it. Idle
sandboxes are reclaimed after `keep_alive_s`, and when the memory the sandboxes hold exceeds
`memory_budget_bytes`, the least recently used idle ones go first. Concurrency limits are the
engine's business; this pool only exposes what it needs: acquire, release, create, destroy,
retire, floors and counts.

A version whose code or configuration changed is *retired*: its idle sandboxes go at once, and
its busy ones, as well as those still starting, when they are released (or, for provisioned
ones, as soon as they are up), so no new invocation ever sees the old code. The retired mark
of a version lasts only while some sandbox of it is busy or starting. A *floor* (provisioned
concurrency) keeps that many sandboxes of a version alive through keep-alive expiry and budget
eviction; retiring a version drops its floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from .manager import SandboxManager
from .sandbox import Sandbox
from .spec import FunctionSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolCounts:
    idle: int
    busy: int  # serving an invocation, or still starting (a cold start or a provisioned one)


class SandboxPool:
    def __init__(
        self,
        manager: SandboxManager,
        *,
        keep_alive_s: float = 600.0,
        memory_budget_bytes: int | None = None,
        reap_interval_s: float = 1.0,
    ) -> None:
        self.manager = manager
        self.keep_alive_s = keep_alive_s
        self.memory_budget_bytes = memory_budget_bytes
        self.reap_interval_s = reap_interval_s
        # per version: idle sandboxes, least recently used first
        self._idle: dict[str, OrderedDict[str, Sandbox]] = {}
        self._busy: dict[str, dict[str, Sandbox]] = {}
        # versions retired while some of their sandboxes were busy or starting
        self._retired: set[str] = set()
        # per version: sandboxes being created (not yet busy nor idle)
        self._starting: dict[str, int] = {}
        self._floors: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._reaper(), name="squall-sandbox-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for key in list(self._idle):
            await self.drain(key)

    async def acquire(self, spec: FunctionSpec) -> tuple[Sandbox, bool]:
        """A sandbox for `spec` and whether it was a cold start."""
        # re-read after every await: the version may have been drained or refilled meanwhile
        while idle := self._idle.get(spec.key):
            _, sandbox = idle.popitem(last=True)
            if not sandbox.dead:
                self._busy.setdefault(spec.key, {})[sandbox.id] = sandbox
                return sandbox, False
            await sandbox.destroy()
        self._begin_start(spec.key)
        try:
            sandbox = await self.create(spec)
            # busy before it stops counting as starting: a retire meanwhile holds until release
            self._busy.setdefault(spec.key, {})[sandbox.id] = sandbox
        finally:
            self._end_start(spec.key)
        return sandbox, True

    async def create(self, spec: FunctionSpec) -> Sandbox:
        return await self.manager.create(spec)

    async def release(self, sandbox: Sandbox) -> None:
        key = sandbox.spec.key
        self._forget_busy(key, sandbox)
        if key in self._retired:
            self._settle_retired(key)
            await sandbox.destroy()
            return
        if sandbox.dead:
            await sandbox.destroy()
            return
        sandbox.last_used = time.monotonic()
        self._idle.setdefault(key, OrderedDict())[sandbox.id] = sandbox

    async def destroy(self, sandbox: Sandbox) -> None:
        key = sandbox.spec.key
        self._forget_busy(key, sandbox)
        self._settle_retired(key)
        self._idle.get(key, OrderedDict()).pop(sandbox.id, None)
        await sandbox.destroy()

    async def drain(self, key: str) -> None:
        """Destroy the idle sandboxes of a version (its code or configuration changed)."""
        idle = self._idle.pop(key, OrderedDict())
        # a reap may hold this same dict and pop from it while a destroy is awaited: iterate a
        # snapshot, and destroy only what this drain took out itself
        for sandbox in list(idle.values()):
            if idle.pop(sandbox.id, None) is sandbox:
                await sandbox.destroy()

    async def retire(self, key: str) -> None:
        """The version's code or configuration changed: no sandbox of `key` serves again."""
        self._floors.pop(key, None)
        if self._busy.get(key) or self._starting.get(key):
            self._retired.add(key)
        await self.drain(key)

    def set_floor(self, key: str, count: int) -> None:
        """Keep at least `count` sandboxes of `key` through keep-alive and eviction (0: none);
        not for a version that is retired."""
        if count > 0 and key not in self._retired:
            self._floors[key] = count
        else:
            self._floors.pop(key, None)

    async def add_idle(self, spec: FunctionSpec) -> Sandbox:
        """Start a sandbox ahead of need (provisioned concurrency) and park it idle."""
        self._begin_start(spec.key)
        try:
            sandbox = await self.create(spec)
            retired = spec.key in self._retired  # retired while it started
        finally:
            self._end_start(spec.key)
        if retired:
            await sandbox.destroy()
            return sandbox
        sandbox.last_used = time.monotonic()
        self._idle.setdefault(spec.key, OrderedDict())[sandbox.id] = sandbox
        return sandbox

    def counts(self, key: str) -> PoolCounts:
        """Idle sandboxes of `key`, and busy ones (starting ones included)."""
        busy = len(self._busy.get(key, ())) + self._starting.get(key, 0)
        return PoolCounts(len(self._idle.get(key, ())), busy)

    def _begin_start(self, key: str) -> None:
        self._starting[key] = self._starting.get(key, 0) + 1

    def _end_start(self, key: str) -> None:
        left = self._starting.get(key, 0) - 1
        if left > 0:
            self._starting[key] = left
        else:
            self._starting.pop(key, None)
        self._settle_retired(key)

    def _forget_busy(self, key: str, sandbox: Sandbox) -> None:
        busy = self._busy.get(key)
        if busy is not None:
            busy.pop(sandbox.id, None)
            if not busy:
                del self._busy[key]

    def _settle_retired(self, key: str) -> None:
        """Drop the retired mark once nothing of `key` is busy or starting any more."""
        if key in self._retired and not self._busy.get(key) and not self._starting.get(key):
            self._retired.discard(key)

    async def reap(self) -> int:
        """One pass of keep-alive expiry and budget eviction; returns how many went."""
        removed = 0
        deadline = time.monotonic() - self.keep_alive_s
        for key, idle in list(self._idle.items()):
            spare = len(idle) + len(self._busy.get(key, ())) - self._floors.get(key, 0)
            for sandbox in [s for s in idle.values() if s.last_used < deadline or s.dead]:
                if not sandbox.dead:
                    if spare <= 0:
                        continue
                    spare -= 1
                # an acquire may have taken it while an earlier destroy was awaited
                if idle.pop(sandbox.id, None) is sandbox:
                    await sandbox.destroy()
                    removed += 1
        if self.memory_budget_bytes is not None:
            removed += await self._evict_over_budget()
        return removed

    async def _evict_over_budget(self) -> int:
        sandboxes = [
            s for group in (*self._idle.values(), *self._busy.values()) for s in group.values()
        ]
        used = sum(s.memory_bytes() for s in sandboxes)
        budget = self.memory_budget_bytes or 0
        if used <= budget:
            return 0
        idle = sorted(
            (
                s
                for key, group in self._idle.items()
                if key not in self._floors
                for s in group.values()
            ),
            key=lambda s: s.last_used,
        )
        removed = 0
        for sandbox in idle:
            if used <= budget:
                break
            if self._idle.get(sandbox.spec.key, {}).pop(sandbox.id, None) is not sandbox:
                continue  # acquired (or drained) meanwhile
            used -= sandbox.memory_bytes()
            await sandbox.destroy()
            removed += 1
        return removed

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval_s)
            try:
                removed = await self.reap()
                if removed:
                    log.debug("reclaimed %d idle sandboxes", removed)
            except Exception:
                log.exception("sandbox reaper failed")
