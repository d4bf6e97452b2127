"""Tests for squall.sandbox.cgroups against the real kernel (root only, no mocks)."""

from __future__ import annotations

import errno
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from squall.sandbox.cgroups import (
    CFS_PERIOD_US,
    Cgroup,
    CgroupDriver,
    CgroupV2,
    Limits,
    detect_driver,
)

MB = 1024 * 1024
IS_ROOT = os.geteuid() == 0
# A parent of our own, so that concurrent test runs (and a real server) never see our groups.
PARENT = f"squall-test-{os.getpid()}"

# Prepended to every child script: join the group given as argv, like a sandbox does.
JOIN = """\
import os, sys, time
for _f in sys.argv[1:]:
    with open(_f, "w") as _fh:
        _fh.write(str(os.getpid()))
"""


# ----------------------------------------------------------------------------- Limits (no root)


def test_limits_cpu_derivation() -> None:
    assert Limits(1769 * MB).effective_cpu_millis(cpu_count=4) == pytest.approx(1000)
    assert Limits(128 * MB).effective_cpu_millis(cpu_count=4) == pytest.approx(128 / 1769 * 1000)
    assert Limits(3538 * MB).effective_cpu_millis(cpu_count=4) == pytest.approx(2000)
    # at least 1/16 of a CPU
    assert Limits(32 * MB).effective_cpu_millis(cpu_count=4) == pytest.approx(62.5)
    # at most the machine's CPUs
    assert Limits(10240 * MB).effective_cpu_millis(cpu_count=2) == pytest.approx(2000)
    assert Limits(10240 * MB).effective_cpu_millis(cpu_count=16) == pytest.approx(
        10240 / 1769 * 1000
    )
    assert Limits(10240 * MB).effective_cpu_millis() <= (os.cpu_count() or 1) * 1000
    # explicit
    assert Limits(128 * MB, cpu_millis=500).effective_cpu_millis(cpu_count=1) == 500
    assert Limits(128 * MB).pids == 1024


def test_limits_quota() -> None:
    assert Limits(1769 * MB).cpu_quota_us(100_000, cpu_count=4) == 100_000
    assert Limits(128 * MB).cpu_quota_us(100_000, cpu_count=4) == 7236
    assert Limits(128 * MB).cpu_quota_us(cpu_count=4) == 1447
    assert Limits(1 * MB).cpu_quota_us(100_000, cpu_count=4) == 6250
    assert Limits(10240 * MB).cpu_quota_us(100_000, cpu_count=2) == 200_000
    assert Limits(10240 * MB).cpu_quota_us(100_000, cpu_count=64) == 578_858
    assert Limits(64 * MB, cpu_millis=1).cpu_quota_us() == 1000  # the kernel's minimum


@pytest.mark.parametrize(
    "kwargs",
    [{"memory_bytes": 0}, {"memory_bytes": MB, "pids": 0}, {"memory_bytes": MB, "cpu_millis": 0}],
)
def test_limits_validation(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Limits(**kwargs)


def test_detect_driver_unusable_root_returns_none(tmp_path: Path) -> None:
    assert detect_driver(str(tmp_path / "missing")) is None
    assert detect_driver(str(tmp_path)) is None
    assert detect_driver(parent="../escape") is None


# ----------------------------------------------------------------------------- real cgroups

needs_root = pytest.mark.skipif(not IS_ROOT, reason="creating cgroups needs root")


@pytest.fixture(scope="module")
def driver() -> Iterator[CgroupDriver]:
    if not IS_ROOT:
        pytest.skip("creating cgroups needs root")
    drv = detect_driver(parent=PARENT)
    if drv is None:
        pytest.skip("detect_driver() found no usable cgroup hierarchy on this host")
    print(f"\ncgroup driver: {drv.version} {drv.parents}")
    yield drv
    drv.cleanup_stale()
    for parent in drv.parents:
        os.rmdir(parent)


def spawn(group: Cgroup, body: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", JOIN + body, *group.procs_files],
        stdout=subprocess.PIPE,
        text=True,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child produced no output in time"
    return proc.stdout.readline().strip()


def find_file(group: Cgroup, name: str) -> Path:
    for d in group.dirs:
        if (Path(d) / name).exists():
            return Path(d) / name
    raise AssertionError(f"{name} not in {group.dirs}")


@needs_root
def test_create_sets_limits(driver: CgroupDriver) -> None:
    group = driver.create("limits", Limits(64 * MB, pids=16))
    try:
        assert [Path(p).name for p in group.procs_files] == ["cgroup.procs"] * len(group.dirs)
        assert all(Path(d).is_dir() for d in group.dirs)
        if driver.version == "v1":
            memory = Path(group.dirs[0])
            assert int((memory / "memory.limit_in_bytes").read_text()) == 64 * MB
            memsw = memory / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                assert int(memsw.read_text()) == 64 * MB
        else:
            assert int(find_file(group, "memory.max").read_text()) == 64 * MB
        assert find_file(group, "pids.max").read_text().strip() == "16"
        assert group.pids() == []
        assert group.oom_kills() == 0
    finally:
        group.destroy()


@needs_root
def test_oom_kill_and_peak(driver: CgroupDriver) -> None:
    limit = 64 * MB
    group = driver.create("oom", Limits(limit))
    try:
        group.reset_peak()
        assert group.memory_peak() < limit // 2
        proc = spawn(
            group,
            "print('joined', flush=True)\n"
            "chunks = [b'x' * (1024 * 1024) for _ in range(200)]\n"
            "print('survived', flush=True)\n",
        )
        assert read_line(proc) == "joined"
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert group.oom_kills() >= 1
        peak = group.memory_peak()
        assert 0.85 * limit <= peak <= limit + MB, peak
        assert group.pids() == []
        group.reset_peak()
        assert group.memory_peak() <= group.memory_current() + MB
    finally:
        group.destroy()


@needs_root
def test_pids_limit_stops_fork_loop(driver: CgroupDriver) -> None:
    group = driver.create("forkbomb", Limits(256 * MB, pids=16))
    proc = spawn(
        group,
        "n = 0\n"
        "while n < 100:\n"  # bounded, so a missing limit cannot hurt the host
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as exc:\n"
        "        print('failed', exc.errno, n, flush=True)\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    n += 1\n"
        "else:\n"
        "    print('unlimited', 0, n, flush=True)\n"
        "time.sleep(60)\n",
    )
    try:
        status, code, forked = read_line(proc).split()
        assert (status, int(code)) == ("failed", errno.EAGAIN)
        assert int(forked) == 15  # the forker itself is the 16th
        assert len(group.pids()) == 16
        # the host is unaffected: it can still start processes
        assert subprocess.run(["true"], check=False).returncode == 0
        group.kill()
        assert group.pids() == []
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        group.destroy()


@needs_root
@pytest.mark.parametrize(
    ("memory_mb", "millis"), [(128, 128 / 1769 * 1000), (1769, 1000), (10240, None)]
)
def test_cpu_quota(driver: CgroupDriver, memory_mb: int, millis: float | None) -> None:
    cpus = os.cpu_count() or 1
    if millis is None:
        millis = min(10240 / 1769 * 1000, cpus * 1000)
    expected = round(CFS_PERIOD_US * millis / 1000)
    limits = Limits(memory_mb * MB)
    group = driver.create(f"cpu{memory_mb}", limits)
    driver.limit_cpu(group, limits)
    try:
        if driver.version == "v1":
            try:
                quota = find_file(group, "cpu.cfs_quota_us")
            except AssertionError:
                pytest.skip("no cgroup v1 cpu hierarchy")
            period = quota.with_name("cpu.cfs_period_us")
            assert int(period.read_text()) == CFS_PERIOD_US
            assert int(quota.read_text()) == expected
        else:
            try:
                cpu_max = find_file(group, "cpu.max")
            except AssertionError:
                pytest.skip("cgroup2 cpu controller not enabled")
            assert cpu_max.read_text().split() == [str(expected), str(CFS_PERIOD_US)]
    finally:
        group.destroy()
    if memory_mb == 128:
        assert expected == 1447
    if memory_mb == 1769:
        assert expected == 20_000


@needs_root
def test_kill_empties_group(driver: CgroupDriver) -> None:
    group = driver.create("kill", Limits(256 * MB))
    proc = spawn(
        group,
        "for _ in range(5):\n"
        "    if os.fork() == 0:\n"
        "        os.fork()\n"  # grandchildren too
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n",
    )
    try:
        assert read_line(proc) == "ready"
        deadline = time.monotonic() + 5
        while len(group.pids()) < 11 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(group.pids()) == 11
        assert group.memory_current() > 0
        started = time.perf_counter()
        group.kill()
        elapsed = time.perf_counter() - started
        print(f"\nkill() of 11 processes: {elapsed * 1e3:.2f} ms")
        assert group.pids() == []
        assert proc.wait(timeout=5) == -signal.SIGKILL
        group.kill()  # nothing left: returns at once
    finally:
        proc.kill()
        proc.wait()
        group.destroy()


@needs_root
def test_destroy_is_idempotent_and_create_recreates(driver: CgroupDriver) -> None:
    group = driver.create("again", Limits(64 * MB, pids=10))
    proc = spawn(group, "print('in', flush=True)\ntime.sleep(60)\n")
    try:
        assert read_line(proc) == "in"
        # same name again: the old group (and its process) is replaced
        again = driver.create("again", Limits(128 * MB, pids=20))
        assert again.dirs == group.dirs
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert find_file(again, "pids.max").read_text().strip() == "20"
        assert again.pids() == []
    finally:
        proc.kill()
        proc.wait()
    group.destroy()
    assert not any(Path(d).exists() for d in group.dirs)
    group.destroy()
    again.destroy()


@needs_root
def test_cleanup_stale(driver: CgroupDriver) -> None:
    groups = [driver.create(f"stale{i}", Limits(64 * MB)) for i in range(3)]
    proc = spawn(groups[0], "print('in', flush=True)\ntime.sleep(60)\n")
    try:
        assert read_line(proc) == "in"
        fresh = detect_driver(parent=PARENT)  # as a restarted server would
        assert fresh is not None
        assert fresh.cleanup_stale() == 3
        assert proc.wait(timeout=5) == -signal.SIGKILL
        for group in groups:
            assert not any(Path(d).exists() for d in group.dirs)
        assert fresh.cleanup_stale() == 0
        assert all(Path(p).is_dir() for p in fresh.parents)  # the parent itself stays
    finally:
        proc.kill()
        proc.wait()


@needs_root
def test_create_destroy_timing(driver: CgroupDriver) -> None:
    limits = Limits(128 * MB)
    creates, destroys = [], []
    for i in range(50):
        t0 = time.perf_counter()
        group = driver.create(f"t{i}", limits)
        t1 = time.perf_counter()
        group.destroy()
        t2 = time.perf_counter()
        creates.append(t1 - t0)
        destroys.append(t2 - t1)
    create_ms = statistics.median(creates) * 1e3
    destroy_ms = statistics.median(destroys) * 1e3
    print(
        f"\n{driver.version} create {create_ms:.3f} ms, destroy {destroy_ms:.3f} ms (median of 50)"
    )
    assert create_ms < 10
    assert destroy_ms < 10


@needs_root
def test_invalid_names_rejected(driver: CgroupDriver) -> None:
    for name in ("", ".", "..", "a/b"):
        with pytest.raises(ValueError):
            driver.create(name, Limits(64 * MB))


@needs_root
def test_not_root_gets_no_driver() -> None:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, then detect
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            found = detect_driver(parent=f"{PARENT}-nobody")
            os.write(write_fd, b"none" if found is None else found.version.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        result = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == b"none"


def _cgroup2_mounts() -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split()[:1] == ["cgroup2"]:
            found.append(before.split()[4])
    return found


@needs_root
def test_v2_group_kill_and_destroy() -> None:
    """CgroupV2's process handling, on any writable cgroup2 mount (even one without controllers,
    like the ``unified`` mount of a hybrid host)."""
    mounts = _cgroup2_mounts()
    if not mounts:
        pytest.skip("no cgroup2 mount")
    parent = Path(mounts[0]) / PARENT
    try:
        parent.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a group in {mounts[0]}: {exc}")
    group = CgroupV2("v2kill", [str(parent / "v2kill")])
    try:
        os.mkdir(group.dirs[0])
        proc = spawn(
            group,
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60)\n"
            "        os._exit(0)\n"
            "print('ready', flush=True)\ntime.sleep(60)\n",
        )
        try:
            assert read_line(proc) == "ready"
            assert len(group.pids()) == 4
            assert group.oom_kills() == 0  # no memory.events without the memory controller
            group.destroy()
            assert proc.wait(timeout=5) == -signal.SIGKILL
            assert not Path(group.dirs[0]).exists()
            group.destroy()
        finally:
            proc.kill()
            proc.wait()
    finally:
        group.destroy()
        parent.rmdir()


@needs_root
def test_detect_skips_cgroup2_without_memory_and_pids() -> None:
    for mount in _cgroup2_mounts():
        controllers = set((Path(mount) / "cgroup.controllers").read_text().split())
        if not {"memory", "pids"} <= controllers:
            assert detect_driver(mount, parent=PARENT) is None
            assert not (Path(mount) / PARENT).exists()
            return
    pytest.skip("no cgroup2 mount lacking the memory or pids controller")


@needs_root
def test_destroy_handles_nested_groups(driver: CgroupDriver) -> None:
    """A group the sandbox nested inside its own is emptied and removed with it."""
    group = driver.create("nest", Limits(64 * MB))
    nested = [str(Path(d) / "inner") for d in group.dirs]
    for d in nested:
        os.mkdir(d)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            JOIN + "print('in', flush=True)\ntime.sleep(60)\n",
            *(str(Path(d) / "cgroup.procs") for d in nested),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc) == "in"
        assert group.pids() == [proc.pid]
        group.destroy()
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert not any(Path(d).exists() for d in group.dirs)
    finally:
        proc.kill()
        proc.wait()
        group.destroy()
