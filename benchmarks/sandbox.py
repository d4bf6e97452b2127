"""Sandbox figures: cold start, warm round trip through the engine, idle sandboxes per GiB.

The floor is the machine's own: a fork of a warm Python process (with boto3 imported, like a
zygote) that answers one byte over a pipe, and a round trip over a socketpair to a process
that is already running. squall's figures include everything its sandboxes do: cgroup
creation, namespaces, the new root, seccomp, the uid drop, the handler's import, the framed
protocol and the log pipe.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from squall.sandbox.manager import SandboxManager
from squall.sandbox.spec import FunctionSpec

HANDLER = "def handler(event, context):\n    return event\n"
GIB = 1024**3


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(seconds) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "samples": len(seconds),
    }


def fork_floor(count: int) -> dict[str, float]:
    import boto3  # noqa: F401  (a zygote-sized parent)

    times = []
    for _ in range(count):
        read_end, write_end = os.pipe()
        began = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.write(write_end, b"x")
            os._exit(0)
        os.read(read_end, 1)
        times.append(time.perf_counter() - began)
        os.waitpid(pid, 0)
        os.close(read_end)
        os.close(write_end)
    return summary(times)


def socketpair_floor(count: int) -> dict[str, float]:
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        while data := child.recv(64):
            child.sendall(data)
        os._exit(0)
    child.close()
    times = []
    for _ in range(count):
        began = time.perf_counter()
        parent.sendall(b"{}")
        parent.recv(64)
        times.append(time.perf_counter() - began)
    parent.close()
    os.waitpid(pid, 0)
    return summary(times)


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def squall_figures(cold_count: int, warm_count: int, idle_count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "code"
        code.mkdir()
        (code / "app.py").write_text(HANDLER)
        os.chmod(tmp, 0o755)
        os.chmod(code, 0o755)
        manager = SandboxManager(Path(tmp) / "run")
        await manager.start()
        spec = FunctionSpec(
            name="bench",
            version="$LATEST",
            arn="arn:aws:lambda:us-east-1:000000000000:function:bench",
            runtime="python3.11",
            handler="app.handler",
            code_dir=str(code),
        )
        try:
            warmup = await manager.create(spec)
            await warmup.invoke("warm-up", b"{}")
            cold, inits = [], []
            for index in range(cold_count):
                began = time.perf_counter()
                sandbox = await manager.create(spec)
                result = await sandbox.invoke(f"cold-{index}", b"{}")
                cold.append(time.perf_counter() - began)
                inits.append(sandbox.init_duration_ms or 0.0)
                assert result.ok, result.payload
                await sandbox.destroy()
            warm = []
            for index in range(warm_count):
                began = time.perf_counter()
                await warmup.invoke(f"warm-{index}", b"{}")
                warm.append(time.perf_counter() - began)
            idle = await idle_density(manager, spec, warmup, idle_count)
        finally:
            await manager.stop()
    return {
        "cold_start": {**summary(cold), "handler_init_p50_ms": statistics.median(inits)},
        "warm_round_trip": summary(warm),
        "idle": idle,
        "degraded": manager.degraded,
    }


async def idle_density(
    manager: SandboxManager, spec: FunctionSpec, warm: Any, count: int
) -> dict[str, float]:
    before = mem_available()
    sandboxes = []
    for index in range(count):
        sandbox = await manager.create(spec)
        await sandbox.invoke(f"idle-{index}", b"{}")
        sandboxes.append(sandbox)
    await asyncio.sleep(0.5)
    after = mem_available()
    per_sandbox = max(1, (before - after) / count)
    pss_each = statistics.median(pss(s.pid) for s in sandboxes)
    for sandbox in sandboxes:
        await sandbox.destroy()
    return {
        "sandboxes": count,
        "host_memory_per_sandbox_mb": per_sandbox / 2**20,
        "pss_per_sandbox_mb": pss_each / 2**20,
        "sandboxes_per_gib": GIB / per_sandbox,
    }


def run(quick: bool = False) -> dict[str, Any]:
    cold, warm, idle = (20, 500, 50) if quick else (100, 5000, 200)
    squall = asyncio.run(squall_figures(cold, warm, idle))
    floor = {"fork": fork_floor(cold), "socketpair_round_trip": socketpair_floor(warm)}
    return {
        "squall": squall,
        "floor": floor,
        "ratios": {
            "cold_p50_over_fork": squall["cold_start"]["p50_ms"] / floor["fork"]["p50_ms"],
            "warm_p50_over_socketpair": squall["warm_round_trip"]["p50_ms"]
            / floor["socketpair_round_trip"]["p50_ms"],
        },
    }
