"""Per-sandbox cgroups: memory, process-count and CPU limits, usage and OOM accounting.

The host (the server) creates one group per sandbox with :meth:`CgroupDriver.create`, hands
the sandbox process :attr:`Cgroup.procs_files`, and the sandbox writes its own pid into each of
them before any user code runs (see ``guest/isolation.py``). From then on everything the
sandbox forks stays inside the group, so the host can read its memory usage and peak, see
whether the kernel OOM-killed something in it, and kill and remove it as a whole.

Layout: every group lives under a parent group (``squall`` by default) at the top of each
hierarchy, ``<root>/<controller>/squall/<name>`` with cgroup v1 (one directory per hierarchy:
memory, pids and cpu; ``cpu,cpuacct`` when they are co-mounted) or ``<root>/squall/<name>``
with cgroup v2 (one directory). :func:`detect_driver` picks the version the host supports.

CPU follows the AWS Lambda model: a function with 1769 MB gets one full vCPU, proportionally
less or more otherwise, enforced as a CFS bandwidth quota over a 20 ms period (short, so that
a throttled function waits milliseconds, not a tenth of a second, for its next slice). The
quota is applied by :meth:`CgroupDriver.limit_cpu` once the function's init is done: a 128 MB
function has 7% of a CPU, and init (imports, the sandbox's own set-up) would otherwise crawl.

:meth:`CgroupDriver.create` is on the cold-start path: it costs one ``mkdir`` per hierarchy and
a handful of small writes (well under a millisecond on a typical host).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from squall.core.mounts import read_mountinfo

__all__ = [
    "MB_PER_VCPU",
    "Cgroup",
    "CgroupDriver",
    "CgroupV1",
    "CgroupV2",
    "Limits",
    "V1Driver",
    "V2Driver",
    "detect_driver",
]

log = logging.getLogger(__name__)

MB = 1024 * 1024
MB_PER_VCPU = 1769
"""Memory size that buys one full vCPU (as in AWS Lambda)."""
MIN_CPU_MILLIS = 1000 / 16
"""The smallest CPU share a sandbox gets: 1/16 of a CPU."""
CFS_PERIOD_US = 20_000
_MIN_CFS_QUOTA_US = 1000  # the kernel rejects smaller quotas

# kill(): how long to keep re-signalling before giving up, and the pause between rounds.
_KILL_TIMEOUT_S = 2.0
_KILL_BACKOFF_S = (0.0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)
# destroy(): how long rmdir keeps retrying on EBUSY (the last task can take a moment to leave).
_RMDIR_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use."""

    memory_bytes: int
    pids: int = 1024
    cpu_millis: int | None = None
    """1000 = one CPU. None derives it from the memory size: see :meth:`effective_cpu_millis`."""

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0:
            raise ValueError(f"memory_bytes must be positive, not {self.memory_bytes}")
        if self.pids <= 0:
            raise ValueError(f"pids must be positive, not {self.pids}")
        if self.cpu_millis is not None and self.cpu_millis <= 0:
            raise ValueError(f"cpu_millis must be positive, not {self.cpu_millis}")

    @property
    def memory_mb(self) -> float:
        return self.memory_bytes / MB

    def effective_cpu_millis(self, cpu_count: int | None = None) -> float:
        """The CPU share in thousandths of a CPU.

        ``cpu_millis`` when given; otherwise ``memory_mb / 1769 * 1000``, at least 1/16 of a CPU
        and at most ``cpu_count`` CPUs (default: the machine's CPU count).
        """
        if self.cpu_millis is not None:
            return float(self.cpu_millis)
        cpus = cpu_count or os.cpu_count() or 1
        derived = self.memory_mb / MB_PER_VCPU * 1000
        return min(max(derived, MIN_CPU_MILLIS), cpus * 1000.0)

    def cpu_quota_us(self, period_us: int = CFS_PERIOD_US, cpu_count: int | None = None) -> int:
        """The CFS quota (microseconds of CPU time per ``period_us``) for this share."""
        millis = self.effective_cpu_millis(cpu_count)
        return max(_MIN_CFS_QUOTA_US, round(period_us * millis / 1000))


# ----------------------------------------------------------------------------- file helpers


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def _read_int(path: str) -> int:
    return int(_read(path).strip() or 0)


def _keyed(text: str, key: str) -> int:
    """The value of ``key`` in a flat-keyed file (``key value`` per line); 0 when absent."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _check_name(name: str) -> None:
    if not name or name in {".", ".."} or "/" in name or "\0" in name:
        raise ValueError(f"invalid cgroup name {name!r}")


def _signal_pids(pids: Iterable[int], recheck: Callable[[], list[int]]) -> None:
    """SIGKILL ``pids``, only those still listed by ``recheck()`` once pinned by a pidfd.

    Opening a pidfd first and then confirming the pid is still in the group rules out killing
    an unrelated process that reused the pid of one that just exited.
    """
    own = os.getpid()
    pinned: dict[int, int] = {}
    try:
        for pid in pids:
            if pid == own:  # never signal the host itself, even if it was misplaced here
                continue
            try:
                pinned[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            except OSError:  # no pidfd support: plain kill
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if not pinned:
            return
        still_there = set(recheck())
        for pid, fd in pinned.items():
            if pid in still_there:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        for fd in pinned.values():
            os.close(fd)


def _rmdir(path: str, deadline: float) -> None:
    """Remove a cgroup directory (and any groups nested in it); missing is fine."""
    delay = 0.0005
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                raise OSError(exc.errno, f"cannot remove cgroup {path}: {exc.strerror}") from exc
            # Nested groups (the sandbox made some) must go first; else wait for the last task.
            for entry in _subdirs(path):
                _rmdir(entry, deadline)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _collect_pids(directory: str, found: set[int]) -> None:
    try:
        text = _read(os.path.join(directory, "cgroup.procs"))
    except FileNotFoundError:
        return
    found.update(int(line) for line in text.split())
    for sub in _subdirs(directory):  # groups the sandbox nested inside its own (rare)
        _collect_pids(sub, found)


# ----------------------------------------------------------------------------- groups


class Cgroup:
    """One sandbox's group: a directory in each hierarchy it must join."""

    version = ""

    def __init__(self, name: str, dirs: list[str]) -> None:
        self.name = name
        self.dirs = dirs
        """The group's directory in each hierarchy (the first is the memory one)."""
        self.procs_files = [os.path.join(d, "cgroup.procs") for d in dirs]
        """The ``cgroup.procs`` files the sandbox writes its pid into."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.dirs}>"

    @property
    def path(self) -> str:
        """The directory holding the memory controller's files."""
        return self.dirs[0]

    def memory_current(self) -> int:
        raise NotImplementedError

    def memory_peak(self) -> int:
        raise NotImplementedError

    def reset_peak(self) -> None:
        raise NotImplementedError

    def oom_kills(self) -> int:
        raise NotImplementedError

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs)

    def pids(self) -> list[int]:
        """The processes in the group, in any of its hierarchies and in any nested group."""
        found: set[int] = set()
        for d in self.dirs:
            _collect_pids(d, found)
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL every process in the group until it is empty (gives up after ~2 s)."""
        self._kill_loop()

    def _kill_loop(self) -> None:
        deadline = time.monotonic() + _KILL_TIMEOUT_S
        for attempt in itertools.count():
            pids = [p for p in self.pids() if p != os.getpid()]
            if not pids:
                return
            if time.monotonic() > deadline:
                log.warning("cgroup %s: processes survive SIGKILL: %s", self.name, pids)
                return
            _signal_pids(pids, self.pids)
            time.sleep(_KILL_BACKOFF_S[min(attempt, len(_KILL_BACKOFF_S) - 1)])

    def destroy(self) -> None:
        """Kill everything inside, then remove the group's directories. Idempotent.

        Raises OSError when a directory cannot be removed (e.g. a process that ignores SIGKILL
        because it is stuck in the kernel); :meth:`CgroupDriver.cleanup_stale` retries later.
        """
        if not self.exists():
            return
        self.kill()
        deadline = time.monotonic() + _RMDIR_TIMEOUT_S
        errors = []
        for d in reversed(self.dirs):
            try:
                _rmdir(d, deadline)
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


class CgroupV1(Cgroup):
    """A group across cgroup v1 hierarchies: memory first, then pids and cpu."""

    version = "v1"

    def __init__(self, name: str, dirs: list[str]) -> None:
        super().__init__(name, dirs)
        self._peak_fd: int | None = None

    def _memory_file(self, name: str) -> str:
        return os.path.join(self.dirs[0], name)

    def memory_current(self) -> int:
        return _read_int(self._memory_file("memory.usage_in_bytes"))

    def memory_peak(self) -> int:
        # read after every invocation: keep the file open and pread it (one syscall, not three)
        fd = self._peak_fd
        if fd is None:
            path = self._memory_file("memory.max_usage_in_bytes")
            fd = self._peak_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return int(os.pread(fd, 64, 0).decode().strip() or 0)
        except OSError:
            self._close_peak()
            raise

    def _close_peak(self) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None

    def destroy(self) -> None:
        self._close_peak()
        super().destroy()

    def reset_peak(self) -> None:
        _write(self._memory_file("memory.max_usage_in_bytes"), "0")

    def oom_kills(self) -> int:
        return _keyed(_read(self._memory_file("memory.oom_control")), "oom_kill")


class CgroupV2(Cgroup):
    """A group in the cgroup v2 unified hierarchy."""

    version = "v2"

    def __init__(self, name: str, dirs: list[str]) -> None:
        super().__init__(name, dirs)
        # Since Linux 6.12 a write to memory.peak resets it only as seen through the same open
        # file, so after reset_peak() the peak is read through the descriptor kept here.
        self._peak_fd: int | None = None

    def _file(self, name: str) -> str:
        return os.path.join(self.dirs[0], name)

    def memory_current(self) -> int:
        return _read_int(self._file("memory.current"))

    def memory_peak(self) -> int:
        if self._peak_fd is not None:
            try:
                return int(os.pread(self._peak_fd, 64, 0).decode().strip() or 0)
            except OSError:
                self._close_peak()
        try:
            return _read_int(self._file("memory.peak"))
        except FileNotFoundError:  # before Linux 5.19
            return self.memory_current()

    def reset_peak(self) -> None:
        self._close_peak()
        try:
            fd = os.open(self._file("memory.peak"), os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # missing, or read-only on kernels without peak reset
            return
        try:
            os.write(fd, b"reset\n")
        except OSError:
            os.close(fd)
            return
        self._peak_fd = fd

    def _close_peak(self) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None

    def oom_kills(self) -> int:
        try:
            return _keyed(_read(self._file("memory.events")), "oom_kill")
        except FileNotFoundError:
            return 0

    def kill(self) -> None:
        kill_file = self._file("cgroup.kill")
        try:
            _write(kill_file, "1")  # Linux 5.14+: the kernel kills every task, race-free
        except FileNotFoundError:
            if not os.path.isdir(self.dirs[0]):
                return
        except OSError as exc:
            log.debug("cgroup %s: cgroup.kill failed (%s), signalling pids", self.name, exc)
        self._kill_loop()

    def destroy(self) -> None:
        self._close_peak()
        super().destroy()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._close_peak()


# ----------------------------------------------------------------------------- drivers


class CgroupDriver:
    """Creates sandbox groups under one parent group; see :class:`V1Driver`, :class:`V2Driver`."""

    version = ""
    _group_class: type[Cgroup] = Cgroup

    def __init__(self, parents: list[str], parent: str) -> None:
        self.parent = parent
        self.parents = parents
        """The parent group's directory in each hierarchy used (the first is memory's)."""
        self.cpu_count = os.cpu_count() or 1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.parents}>"

    def group(self, name: str) -> Cgroup:
        """The handle of group ``name`` (whether or not it exists)."""
        _check_name(name)
        return self._group_class(name, [os.path.join(p, name) for p in self.parents])

    def create(self, name: str, limits: Limits) -> Cgroup:
        """Create group ``name`` with ``limits`` (an existing one is removed first)."""
        group = self.group(name)
        try:
            self._mkdirs(group)
        except FileExistsError:
            log.debug("cgroup %s already exists: recreating it", name)
            group.destroy()
            self._mkdirs(group)
        except FileNotFoundError:  # the parent vanished (removed by hand?): make it again
            self._ensure_parents()
            self._mkdirs(group)
        try:
            self._apply(group, limits)
        except BaseException:
            with contextlib.suppress(OSError):
                group.destroy()
            raise
        return group

    def _mkdirs(self, group: Cgroup) -> None:
        made: list[str] = []
        try:
            for d in group.dirs:
                os.mkdir(d)
                made.append(d)
        except BaseException:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
            raise

    def apply(self, group: Cgroup, limits: Limits) -> None:
        """Set the memory and pids limits of an existing group (a standby's, when assigned)."""
        self._apply(group, limits)

    def _apply(self, group: Cgroup, limits: Limits) -> None:
        """Memory and pids limits, in force from the sandbox's first instruction."""
        raise NotImplementedError

    def limit_cpu(self, group: Cgroup, limits: Limits) -> None:
        """The CPU quota, applied once the function's init is done."""
        raise NotImplementedError

    def _ensure_parents(self) -> None:
        for p in self.parents:
            with contextlib.suppress(FileExistsError):
                os.mkdir(p)

    def remove_parents(self) -> None:
        """Remove the (empty) parent groups when the manager stops; busy ones stay."""
        for p in self.parents:
            with contextlib.suppress(OSError):
                os.rmdir(p)

    def cleanup_stale(self) -> int:
        """Remove every group under the parent (left over from a previous run); the count."""
        names: set[str] = set()
        for p in self.parents:
            names.update(os.path.basename(d) for d in _subdirs(p))
        removed = 0
        for name in sorted(names):
            try:
                self.group(name).destroy()
            except (OSError, ValueError) as exc:
                log.warning("cannot remove stale cgroup %s: %s", name, exc)
            else:
                removed += 1
        if removed:
            log.info("removed %d stale sandbox cgroup(s) under %s", removed, self.parent)
        return removed


class V1Driver(CgroupDriver):
    """cgroup v1: a directory per hierarchy (memory, pids, and cpu when mounted)."""

    version = "v1"
    _group_class = CgroupV1

    def __init__(self, mounts: dict[str, str], parent: str = "squall") -> None:
        """``mounts``: controller (memory, pids, cpu) -> its hierarchy's mount point."""
        order: list[str] = []
        for controller in ("memory", "pids", "cpu"):
            mount = mounts.get(controller)
            if mount is not None and mount not in order:
                order.append(mount)
        super().__init__([os.path.join(m, parent) for m in order], parent)
        parent_of = {m: os.path.join(m, parent) for m in order}
        self._memory = parent_of[mounts["memory"]]
        self._pids = parent_of[mounts["pids"]]
        self._cpu = parent_of[mounts["cpu"]] if "cpu" in mounts else None
        self._ensure_parents()
        self._memsw = os.path.exists(os.path.join(self._memory, "memory.memsw.limit_in_bytes"))
        self._swappiness = os.path.exists(os.path.join(self._memory, "memory.swappiness"))

    def _apply(self, group: Cgroup, limits: Limits) -> None:
        name = group.name
        memory = os.path.join(self._memory, name)
        value = str(limits.memory_bytes)
        limit = os.path.join(memory, "memory.limit_in_bytes")
        memsw = os.path.join(memory, "memory.memsw.limit_in_bytes")
        if self._memsw:  # memory+swap capped at the same value: swap cannot extend the limit
            # the kernel keeps memsw >= limit at every step: raise memsw first, lower it last
            try:
                _write(limit, value)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                _write(memsw, value)
                _write(limit, value)
            _write(memsw, value)
        else:
            _write(limit, value)
        if self._swappiness:
            try:
                _write(os.path.join(memory, "memory.swappiness"), "0")
            except OSError as exc:
                log.debug("memory.swappiness not writable (%s); not setting it again", exc)
                self._swappiness = False
        _write(os.path.join(self._pids, name, "pids.max"), str(limits.pids))

    def limit_cpu(self, group: Cgroup, limits: Limits) -> None:
        if self._cpu is not None:
            cpu = os.path.join(self._cpu, group.name)
            quota = limits.cpu_quota_us(CFS_PERIOD_US, self.cpu_count)
            _write(os.path.join(cpu, "cpu.cfs_period_us"), str(CFS_PERIOD_US))
            _write(os.path.join(cpu, "cpu.cfs_quota_us"), str(quota))


class V2Driver(CgroupDriver):
    """cgroup v2: one directory in the unified hierarchy with memory, pids (and cpu) enabled."""

    version = "v2"
    _group_class = CgroupV2

    def __init__(self, root: str, parent: str = "squall") -> None:
        super().__init__([os.path.join(root, parent)], parent)
        self.root = root
        available = set(_read(os.path.join(root, "cgroup.controllers")).split())
        missing = {"memory", "pids"} - available
        if missing:
            raise OSError(errno.ENOTSUP, f"cgroup2 at {root} lacks {', '.join(sorted(missing))}")
        # The root's children (our parent) must have the controllers before its children can.
        self._controllers = _enable_controllers(
            root, {c for c in ("memory", "pids", "cpu") if c in available}
        )
        self._ensure_parents()
        if not {"memory", "pids"} <= self._controllers:
            raise OSError(errno.ENOTSUP, f"cannot enable memory and pids controllers in {root}")
        self._cpu = "cpu" in self._controllers
        if not self._cpu:
            log.debug("cgroup2 cpu controller unavailable under %s: no CPU limits", root)
        self._swap = os.path.exists(os.path.join(self.parents[0], "memory.swap.max"))

    def _ensure_parents(self) -> None:
        super()._ensure_parents()
        self._controllers = _enable_controllers(self.parents[0], self._controllers)

    def _apply(self, group: Cgroup, limits: Limits) -> None:
        d = group.dirs[0]
        _write(os.path.join(d, "memory.max"), str(limits.memory_bytes))
        if self._swap:
            try:
                _write(os.path.join(d, "memory.swap.max"), "0")
            except FileNotFoundError:
                self._swap = False
        _write(os.path.join(d, "pids.max"), str(limits.pids))

    def limit_cpu(self, group: Cgroup, limits: Limits) -> None:
        if self._cpu:
            quota = limits.cpu_quota_us(CFS_PERIOD_US, self.cpu_count)
            _write(os.path.join(group.dirs[0], "cpu.max"), f"{quota} {CFS_PERIOD_US}")


def _enable_controllers(directory: str, controllers: set[str]) -> set[str]:
    """Enable ``controllers`` for the children of ``directory``; the ones now enabled."""
    control = os.path.join(directory, "cgroup.subtree_control")
    enabled = set(_read(control).split())
    for controller in sorted(controllers - enabled):
        try:
            _write(control, f"+{controller}")
        except OSError as exc:
            log.debug("cannot enable %s in %s: %s", controller, control, exc)
        else:
            enabled.add(controller)
    return enabled & controllers


# ----------------------------------------------------------------------------- detection


def detect_driver(root: str = "/sys/fs/cgroup", parent: str = "squall") -> CgroupDriver | None:
    """The driver for this host's cgroups, with the parent group created; None if unusable.

    v2 when ``root`` is a cgroup2 mount offering the memory and pids controllers, else v1 when
    memory and pids hierarchies are mounted under ``root``. None (logged at debug level, never
    raised) when neither is usable: not root, read-only, controllers missing, ...
    """
    try:
        _check_name(parent)
        return _detect(os.path.normpath(root), parent)
    except Exception as exc:
        log.debug("cgroups unusable under %s: %s", root, exc)
        return None


def _detect(root: str, parent: str) -> CgroupDriver | None:
    mounts = read_mountinfo()
    v2_mount = next((m for m in mounts if m.fstype == "cgroup2" and m.mount_point == root), None)
    if v2_mount is not None:
        if v2_mount.read_only:
            log.debug("cgroup2 at %s is mounted read-only", root)
        else:
            try:
                return V2Driver(root, parent)
            except OSError as exc:
                log.debug("cgroup2 at %s unusable: %s", root, exc)

    v1: dict[str, str] = {}
    for mount in mounts:
        if mount.fstype != "cgroup" or os.path.dirname(mount.mount_point) != root:
            continue
        for controller in ("memory", "pids", "cpu"):
            if controller in mount.super_options:
                if mount.read_only:
                    log.debug("cgroup v1 %s at %s is read-only", controller, mount.mount_point)
                else:
                    v1.setdefault(controller, mount.mount_point)
    if "memory" not in v1 or "pids" not in v1:
        log.debug("no writable cgroup v1 memory and pids hierarchies under %s", root)
        return None
    if "cpu" not in v1:
        log.debug("no cgroup v1 cpu hierarchy under %s: no CPU limits", root)
    try:
        return V1Driver(v1, parent)
    except OSError as exc:
        log.debug("cgroup v1 under %s unusable: %s", root, exc)
        return None
