"""Probe what this host offers for sandboxing function code.

Used by ``squall doctor`` (which prints :func:`format_report`) and logged at server start-up so
an operator sees exactly which protections are active. Probing has no lasting side effects: it
reads ``/proc`` and ``/sys`` and tries namespace creation, seccomp and ``pivot_root`` inside
short-lived forked children, so the calling process is never altered. Nothing here needs root;
without it the privileged probes simply report failure.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from squall.core.mounts import Mount, read_mountinfo

__all__ = ["Check", "HostReport", "format_report", "probe_host"]

PROC = Path("/proc")

# Namespace name -> clone(2) flag.
NAMESPACES: dict[str, int] = {
    "mount": 0x00020000,  # CLONE_NEWNS
    "pid": 0x20000000,
    "net": 0x40000000,
    "ipc": 0x08000000,
    "uts": 0x04000000,
    "user": 0x10000000,
    "cgroup": 0x02000000,
}

# The controllers the sandbox cares about (blkio is v1's name for v2's io).
CGROUP_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "cpuset", "freezer", "io", "blkio")
_KNOWN_V1_CONTROLLERS = frozenset(
    {
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "blkio",
        "perf_event",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
    }
)

# What is lost when a check fails (checks absent from this map are informational).
_PROTECTIONS: dict[str, str] = {
    "cgroup.memory": "memory limits",
    "cgroup.pids": "process-count limits (fork bombs)",
    "cgroup.cpu": "CPU limits",
    "ns.mount": "filesystem isolation (mount namespace)",
    "ns.pid": "process isolation (PID namespace)",
    "ns.net": "network isolation (network namespace)",
    "ns.ipc": "IPC isolation (IPC namespace)",
    "ns.uts": "hostname isolation (UTS namespace)",
    "ns.user": "user-ID isolation (user namespace)",
    "ns.cgroup": "cgroup tree isolation (cgroup namespace)",
    "seccomp": "syscall filtering (seccomp)",
    "pivot_root": "root filesystem switch (pivot_root)",
    "overlayfs": "copy-on-write root filesystems (overlayfs)",
    "tmpfs": "private writable /tmp (tmpfs)",
}

_PIVOT_ROOT_SYSCALL: dict[str, int] = {
    "x86_64": 155,
    "i386": 217,
    "i686": 217,
    "aarch64": 41,
    "riscv64": 41,
    "loongarch64": 41,
    "armv7l": 218,
    "armv6l": 218,
    "ppc64": 203,
    "ppc64le": 203,
    "s390x": 217,
}

PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ALLOW = 0x7FFF0000
_BPF_RET_K = 0x06
_CHILD_CRASHED = 255
_CHILD_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    """One probe: a stable ``name`` (e.g. ``ns.pid``), whether it passed, and a human detail."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class HostReport:
    """Everything :func:`probe_host` learned about the host."""

    checks: list[Check]
    is_root: bool
    cgroup_version: str
    """``v2``, ``v1``, ``hybrid`` (v1 controllers plus a cgroup2 mount) or ``none``."""
    cgroup_controllers: dict[str, str]
    """Controller name -> ``v1`` / ``v2`` for the controllers in :data:`CGROUP_CONTROLLERS`."""
    cgroup_writable: dict[str, bool] = field(default_factory=dict)
    """memory / pids / cpu -> squall could create its group in that controller's hierarchy."""
    namespaces: dict[str, bool] = field(default_factory=dict)
    """Namespace name -> a child process could unshare it."""
    user_namespaces: bool = False
    seccomp: bool = False
    pivot_root: bool = False
    overlayfs: bool = False
    tmpfs: bool = False
    kernel: str = ""
    python: str = ""

    def check(self, name: str) -> Check | None:
        """The check called ``name``, if it was run."""
        return next((c for c in self.checks if c.name == name), None)

    @property
    def all_ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def missing_protections(self) -> list[str]:
        """One line per sandbox protection that will be off, saying what and why."""
        return [
            f"{_PROTECTIONS[c.name]}: {c.detail}"
            for c in self.checks
            if not c.ok and c.name in _PROTECTIONS
        ]


def probe_host() -> HostReport:
    """Probe the host; never raises for a missing feature, it is reported instead."""
    is_root = os.geteuid() == 0
    checks: list[Check] = [_check_python(), _check_kernel(), _check_root(is_root)]

    mounts = read_mountinfo()
    hierarchy = _CgroupHierarchy.from_mounts(mounts)
    checks.append(Check("cgroups", hierarchy.version != "none", hierarchy.describe()))
    writable: dict[str, bool] = {}
    for controller in ("memory", "pids", "cpu"):
        ok, detail = hierarchy.writable(controller)
        writable[controller] = ok
        checks.append(Check(f"cgroup.{controller}", ok, detail))

    namespaces: dict[str, bool] = {}
    for ns, flag in NAMESPACES.items():
        check = _check_namespace(ns, flag)
        namespaces[ns] = check.ok
        checks.append(check)

    seccomp = _check_seccomp()
    pivot = _check_pivot_root()
    overlay = _check_filesystem("overlayfs", "overlay", "fs/overlayfs")
    tmpfs = _check_filesystem("tmpfs", "tmpfs", None)
    checks += [seccomp, pivot, overlay, tmpfs]

    return HostReport(
        checks=checks,
        is_root=is_root,
        cgroup_version=hierarchy.version,
        cgroup_controllers=hierarchy.controllers(),
        cgroup_writable=writable,
        namespaces=namespaces,
        user_namespaces=namespaces["user"],
        seccomp=seccomp.ok,
        pivot_root=pivot.ok,
        overlayfs=overlay.ok,
        tmpfs=tmpfs.ok,
        kernel=platform.release(),
        python=platform.python_version(),
    )


def format_report(report: HostReport) -> str:
    """A readable multi-line report: one line per check, then a summary of what is off."""
    width = max(len(c.name) for c in report.checks) if report.checks else 0
    lines = ["squall doctor: host support for sandboxing"]
    for c in report.checks:
        status = "ok" if c.ok else "MISSING"
        lines.append(f"  {status:<8} {c.name:<{width}}  {c.detail}")
    passed = sum(c.ok for c in report.checks)
    controllers = ", ".join(f"{k}={v}" for k, v in sorted(report.cgroup_controllers.items()))
    lines.append("")
    lines.append(
        f"summary: {passed}/{len(report.checks)} checks ok; "
        f"{'running as root' if report.is_root else 'not running as root'}; "
        f"cgroups {report.cgroup_version}" + (f" ({controllers})" if controllers else "")
    )
    missing = report.missing_protections()
    if missing:
        lines.append("protections that will be OFF:")
        lines += [f"  - {line}" for line in missing]
    else:
        lines.append("all sandbox protections are available")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- simple checks


def _check_python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{version} ({sys.executable})" + ("" if ok else "; need >= 3.11"))


def _check_kernel() -> Check:
    uname = os.uname()
    return Check("kernel", uname.sysname == "Linux", f"{uname.sysname} {uname.release}")


def _check_root(is_root: bool) -> Check:
    if is_root:
        return Check("root", True, "euid 0")
    return Check(
        "root",
        False,
        f"euid {os.geteuid()}: cgroup limits and most namespaces need root",
    )


def _check_filesystem(name: str, fstype: str, module: str | None) -> Check:
    """Whether the kernel supports mounting ``fstype`` (registered, or loadable as a module)."""
    if fstype in _read_filesystems():
        return Check(name, True, f"{fstype} listed in /proc/filesystems")
    if module:
        module_dir = Path("/lib/modules") / platform.release() / "kernel" / module
        if module_dir.exists():
            return Check(name, True, f"{fstype} not loaded yet but module present ({module_dir})")
    return Check(name, False, f"{fstype} not in /proc/filesystems and no kernel module found")


def _read_filesystems() -> set[str]:
    text = _read_text(PROC / "filesystems") or ""
    return {line.split()[-1] for line in text.splitlines() if line.strip()}


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


# ----------------------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class _CgroupHierarchy:
    v1: dict[str, Mount]  # v1 controller -> its hierarchy mount
    v2: Mount | None  # the (first) cgroup2 mount
    v2_controllers: frozenset[str]

    @classmethod
    def from_mounts(cls, mounts: list[Mount]) -> _CgroupHierarchy:
        v1: dict[str, Mount] = {}
        v2: Mount | None = None
        for mount in mounts:
            if mount.fstype == "cgroup":
                for option in mount.super_options & _KNOWN_V1_CONTROLLERS:
                    v1.setdefault(option, mount)
            elif mount.fstype == "cgroup2" and v2 is None:
                v2 = mount
        controllers: frozenset[str] = frozenset()
        if v2 is not None:
            text = _read_text(Path(v2.mount_point) / "cgroup.controllers") or ""
            controllers = frozenset(text.split())
        return cls(v1, v2, controllers)

    @property
    def version(self) -> str:
        if self.v1 and self.v2 is not None:
            return "hybrid"
        if self.v1:
            return "v1"
        if self.v2 is not None:
            return "v2"
        return "none"

    def controllers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name in CGROUP_CONTROLLERS:
            if name in self.v1:
                found[name] = "v1"
            elif name in self.v2_controllers:
                found[name] = "v2"
        return found

    def describe(self) -> str:
        parts = []
        if self.v1:
            parts.append(f"v1 controllers: {', '.join(sorted(self.v1))}")
        if self.v2 is not None:
            listed = ", ".join(sorted(self.v2_controllers)) or "no controllers"
            parts.append(f"cgroup2 at {self.v2.mount_point} ({listed})")
        return f"{self.version}: " + ("; ".join(parts) if parts else "no cgroup filesystem mounted")

    def writable(self, controller: str) -> tuple[bool, str]:
        """Whether squall could create its group at the root of ``controller``'s hierarchy."""
        if controller in self.v1:
            mount = self.v1[controller]
            return _writable_dir(controller, mount, Path(mount.mount_point), "v1")
        if self.v2 is not None and controller in self.v2_controllers:
            root = Path(self.v2.mount_point)
            subtree = set((_read_text(root / "cgroup.subtree_control") or "").split())
            if controller not in subtree:
                return False, (
                    f"no {controller} cgroup controller writable: {controller} is available in "
                    f"{root} but not enabled in cgroup.subtree_control"
                )
            return _writable_dir(controller, self.v2, root, "v2")
        return False, f"no {controller} cgroup controller mounted"


def _writable_dir(controller: str, mount: Mount, path: Path, version: str) -> tuple[bool, str]:
    missing = f"no {controller} cgroup controller writable"
    if mount.read_only:
        return False, f"{missing}: {path} ({version}) is mounted read-only"
    if not os.access(path, os.W_OK | os.X_OK):
        return False, f"{missing}: {path} ({version}) is not writable by euid {os.geteuid()}"
    return True, f"{path} ({version}) writable"


# ----------------------------------------------------------------------------- forked probes


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _run_in_child(probe: Callable[[], int]) -> int | None:
    """Run ``probe`` in a forked child and return its result: 0 for success or an errno.

    Returns None when the child could not be forked, crashed, or timed out.
    """
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # child: never return into the caller's code
        code = _CHILD_CRASHED
        try:
            code = min(max(probe(), 0), _CHILD_CRASHED)
        finally:
            os._exit(code)
    return _wait_child(pid)


def _wait_child(pid: int) -> int | None:
    deadline = time.monotonic() + _CHILD_TIMEOUT_S
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                return None if code < 0 or code == _CHILD_CRASHED else code
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            time.sleep(0.001)
    except ChildProcessError:  # someone else reaped it (e.g. a SIGCHLD handler)
        return None


def _errno_name(code: int | None) -> str:
    if code is None:
        return "probe process failed"
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def _unshare_probe(flag: int) -> Callable[[], int]:
    native = getattr(os, "unshare", None)  # Python 3.12+
    libc = None if native else _libc()

    def probe() -> int:
        if native is not None:
            try:
                native(flag)
            except OSError as exc:
                return exc.errno or errno.EPERM
            return 0
        if libc is None or not hasattr(libc, "unshare"):
            return errno.ENOSYS
        if libc.unshare(ctypes.c_int(flag)) != 0:
            return ctypes.get_errno()
        return 0

    return probe


def _check_namespace(name: str, flag: int) -> Check:
    """Whether a child can unshare namespace ``name`` directly (as the sandbox would)."""
    result = _run_in_child(_unshare_probe(flag))
    extra = _userns_sysctls() if name == "user" else ""
    if result == 0:
        return Check(f"ns.{name}", True, f"unshare({name}) works{extra}")
    user_flag = NAMESPACES["user"]
    if result == errno.EPERM and _run_in_child(_unshare_probe(flag | user_flag)) == 0:
        extra = " (possible only inside a new user namespace)"
    return Check(
        f"ns.{name}", False, f"cannot create {name} namespaces: {_errno_name(result)}{extra}"
    )


def _userns_sysctls() -> str:
    """Sysctls that restrict user namespaces, for the detail of the ns.user check."""
    values = []
    for path in (
        PROC / "sys/user/max_user_namespaces",
        PROC / "sys/kernel/unprivileged_userns_clone",
        PROC / "sys/kernel/apparmor_restrict_unprivileged_userns",
    ):
        text = _read_text(path)
        if text is not None:
            values.append(f"{path.name}={text.strip()}")
    return f" ({', '.join(values)})" if values else ""


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_filter_probe(libc: ctypes.CDLL) -> Callable[[], int]:
    """Install an allow-everything seccomp filter (in the child), as the sandbox would."""
    instructions = (_SockFilter * 1)(_SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW))
    program = _SockFprog(1, instructions)
    ulong = ctypes.c_ulong

    def probe() -> int:
        if libc.prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), ulong(1), ulong(0), ulong(0), ulong(0)):
            return ctypes.get_errno()
        addr = ulong(ctypes.addressof(program))
        if libc.prctl(
            ctypes.c_int(PR_SET_SECCOMP), ulong(SECCOMP_MODE_FILTER), addr, ulong(0), ulong(0)
        ):
            return ctypes.get_errno()
        return 0

    return probe


def _seccomp_status() -> str | None:
    """The Seccomp field of /proc/self/status (None if the kernel lacks CONFIG_SECCOMP)."""
    for line in (_read_text(PROC / "self" / "status") or "").splitlines():
        if line.startswith("Seccomp:"):
            return line.split(":", 1)[1].strip()
    return None


def _check_seccomp() -> Check:
    status = _seccomp_status()
    actions = _read_text(PROC / "sys/kernel/seccomp/actions_avail")
    libc = _libc()
    if status is None or libc is None or not hasattr(libc, "prctl"):
        return Check("seccomp", False, "kernel built without seccomp (no Seccomp in /proc status)")
    mode = libc.prctl(ctypes.c_int(PR_GET_SECCOMP), 0, 0, 0, 0)  # read-only query
    if mode < 0:
        failure = _errno_name(ctypes.get_errno())
        return Check("seccomp", False, f"prctl(PR_GET_SECCOMP) failed: {failure}")
    if actions is None:
        return Check("seccomp", False, "kernel lacks seccomp filter mode (no actions_avail)")
    result = _run_in_child(_seccomp_filter_probe(libc))
    current = {"0": "none", "1": "strict", "2": "filter"}.get(status, status)
    detail = f"filters install (current mode {current}; actions: {actions.strip()})"
    if result != 0:
        return Check("seccomp", False, f"installing a filter failed: {_errno_name(result)}")
    return Check("seccomp", True, detail)


def _pivot_root_probe(libc: ctypes.CDLL, number: int) -> Callable[[], int]:
    """Call pivot_root on paths that do not exist: ENOENT proves the syscall is usable."""
    missing = f"/nonexistent-squall-doctor-{os.getpid()}".encode()

    def probe() -> int:
        if libc.syscall(ctypes.c_long(number), missing, missing) == 0:
            return 0
        return ctypes.get_errno()

    return probe


def _check_pivot_root() -> Check:
    number = _PIVOT_ROOT_SYSCALL.get(platform.machine())
    libc = _libc()
    if number is None or libc is None or not hasattr(libc, "syscall"):
        return Check("pivot_root", False, f"unknown pivot_root syscall on {platform.machine()}")
    result = _run_in_child(_pivot_root_probe(libc, number))
    if result in (0, errno.ENOENT, errno.EINVAL, errno.EBUSY):
        return Check("pivot_root", True, "pivot_root syscall available")
    if result == errno.EPERM:
        return Check("pivot_root", False, "pivot_root not permitted (needs CAP_SYS_ADMIN)")
    return Check("pivot_root", False, f"pivot_root unavailable: {_errno_name(result)}")
