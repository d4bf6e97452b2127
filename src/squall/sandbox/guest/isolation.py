"""Linux isolation for one sandbox, applied by the sandbox's own process before user code runs.

Runs inside the forked sandbox on the runtime's interpreter (Python 3.9+, stdlib only).
The steps, in order (see `enter`):

1. join the sandbox's cgroup(s) (the host created them and passed the `cgroup.procs` files);
2. (done by the zygote's `fork_into_namespaces`) the process starts in new mount, pid, net,
   ipc and uts namespaces, as pid 1 of its pid namespace;
3. build a new root on a tmpfs: read-only binds of the system directories, the interpreter and
   the runtime's packages at their host paths, the function code at /var/task, the layers at
   /opt, a private tmpfs /tmp sized by EphemeralStorage, a fresh /proc, a minimal /dev and
   /etc; then `pivot_root` into it and detach the old root, so no other host path is visible;
4. bring up `lo` in the empty network namespace, set the hostname;
5. drop to an unprivileged uid/gid with no supplementary groups, set no_new_privs and install
   the seccomp filter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import platform
import signal
import socket
import struct
from collections.abc import Sequence
from typing import Any

from . import seccomp

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "user": CLONE_NEWUSER,
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
# The same library through PyDLL: calls keep the GIL, as os.fork's own fork() does.
_libc_gil = ctypes.PyDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


class IsolationError(OSError):
    """A step of the isolation failed; the sandbox must not run user code."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise IsolationError(code, f"{what}: {os.strerror(code)}")


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    _check(
        _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)),
        f"mount {target}",
    )


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise IsolationError(errno.ENOSYS, f"pivot_root: unsupported machine {platform.machine()}")
    _check(_libc.syscall(number, _bytes(new_root), _bytes(put_old)), "pivot_root")


def fork_into_namespaces(flags: int) -> int:
    """fork(), with the child in new namespaces: in a new pid namespace it is pid 1 at once.

    The raw clone syscall wrapped in CPython's own before/after-fork steps, as `os.fork`
    does; it saves the intermediate process that `unshare` + `fork` would need (about 1.5 ms
    of every cold start). Returns 0 in the child and the child's host pid in the parent.
    """
    number = _SYS_CLONE.get(platform.machine())
    if not flags or number is None:
        if flags:
            unshare(flags)  # only reached off x86_64/aarch64: namespaces for the caller itself
        return os.fork()
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = _libc_gil.syscall(number, ctypes.c_ulong(flags | signal.SIGCHLD), 0, 0, 0, 0)
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    code = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise IsolationError(code, f"clone: {os.strerror(code)}")
    return pid


def join_cgroup(procs_files: Sequence[str]) -> None:
    pid = str(os.getpid())
    for path in procs_files:
        with open(path, "w") as handle:
            handle.write(pid)


def bring_up_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def set_hostname(name: str) -> None:
    encoded = name.encode()
    _check(_libc.sethostname(encoded, len(encoded)), "sethostname")


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def namespace_flags(names: Sequence[str]) -> int:
    flags = 0
    for name in names:
        flags |= NAMESPACE_FLAGS[name]
    return flags


# --------------------------------------------------------------------------- the new root

_ETC_FILES = {
    "passwd": (
        "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:{uid}:{gid}::/tmp:/sbin/nologin\n"
    ),
    "group": "root:x:0:\nsbx_user1051:x:{gid}:\n",
    "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "resolv.conf": "nameserver 127.0.0.1\n",
}

_DEVICES = ("null", "zero", "full", "random", "urandom")


def prepare_template(template: dict[str, Any]) -> None:
    """Build, once per zygote, the part of every sandbox's root that is the same for all.

    The zygote moves into a mount namespace of its own and mounts a read-only tmpfs at
    `template["root_dir"]` holding the read-only binds (system directories, the interpreter,
    the runtime packages, squall's guest code, the API socket), the symlinks, a minimal /dev
    and /etc, and empty mount points for the per-sandbox parts. A sandbox cloned with a new
    mount namespace starts with a copy of all of it, so its own root needs only a handful of
    mounts (see `build_root`).
    """
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = template["root_dir"]
    _mkdirs(root)
    mount("squall-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m")
    for directory in ("/tmp", "/var/task", "/opt", "/proc"):
        _mkdirs(root + directory)
    for entry in template.get("binds", []):
        target = entry.get("target", entry["source"])
        if not _under_tmp(target):
            _bind(root, entry["source"], target, entry.get("readonly", True))
    for link in template.get("symlinks", []):
        _symlink(root, link["target"], link["path"])
    _make_dev(root)
    _make_etc(root, template, int(template.get("uid", 993)), int(template.get("gid", 990)))
    mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build_root(root: str, spec: dict[str, Any]) -> None:
    """Mount the per-sandbox parts on the zygote's template root and pivot into it.

    /tmp (a private tmpfs sized by EphemeralStorage, then the binds of host paths that live
    under /tmp, which would otherwise be hidden by it), /var/task and /opt read-only, /proc.
    """
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    tmp = root + "/tmp"
    size_mb = int(spec.get("tmp_size_mb", 512))
    mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={size_mb}m")
    for entry in spec.get("binds", []):
        target = entry.get("target", entry["source"])
        if _under_tmp(target):
            _bind(root, entry["source"], target, entry.get("readonly", True))
    _bind(root, spec["task_dir"], "/var/task", True)
    opt_dir = spec.get("opt_dir")
    if opt_dir:
        _bind(root, opt_dir, "/opt", True)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    pivot_root(".", ".")
    _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")


def _under_tmp(path: str) -> bool:
    return path == "/tmp" or path.startswith("/tmp/")


def _mkdirs(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _bind(root: str, source: str, target: str, readonly: bool) -> None:
    destination = root + target
    if os.path.isdir(source):
        if not os.path.isdir(destination):
            _mkdirs(destination)
    elif not os.path.exists(destination):
        _mkdirs(os.path.dirname(destination))
        open(destination, "w").close()
    # not MS_REC: mounts below the source stay out (a recursive bind's read-only remount
    # would cover only its top mount, leaving submounts writable)
    mount(source, destination, None, MS_BIND)
    if readonly:
        mount(None, destination, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _symlink(root: str, target: str, path: str) -> None:
    _mkdirs(os.path.dirname(root + path))
    os.symlink(target, root + path)


def _make_dev(root: str) -> None:
    dev = root + "/dev"
    _mkdirs(dev)
    mount("squall-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name in _DEVICES:
        _bind(root, "/dev/" + name, "/dev/" + name, False)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{dev}/{name}")
    mount(None, dev, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)


def _make_etc(root: str, spec: dict[str, Any], uid: int, gid: int) -> None:
    etc = root + "/etc"
    _mkdirs(etc)
    for name, text in _ETC_FILES.items():
        with open(f"{etc}/{name}", "w") as handle:
            handle.write(text.format(uid=uid, gid=gid))
    for source in spec.get("etc_binds", ["/etc/ssl", "/etc/localtime", "/etc/ld.so.cache"]):
        if os.path.exists(source):
            _bind(root, os.path.realpath(source), source, True)


def enter(spec: dict[str, Any]) -> None:
    """Finish isolating a process that `fork_into_namespaces` made; returns inside the new root.

    Joins the cgroup before anything else runs, then builds the root, brings up `lo`, sets
    the hostname, drops privileges and installs the seccomp filter.
    """
    if spec.get("cgroup_procs"):
        join_cgroup(spec["cgroup_procs"])
    names: list[str] = list(spec.get("namespaces", []))
    if "mount" in names:
        build_root(spec["root_dir"], spec)
    if "net" in names:
        bring_up_loopback()
    if "uts" in names:
        set_hostname(spec.get("hostname", "sandbox"))
    if spec.get("uid") is not None and os.getuid() == 0:
        drop_privileges(int(spec["uid"]), int(spec.get("gid", spec["uid"])))
    if spec.get("seccomp"):
        seccomp.install()
