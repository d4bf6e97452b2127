"""A seccomp filter that denies the syscalls function code must never make.

Runs inside sandboxes on the runtime's interpreter (Python 3.9+, stdlib only): keep it free of
newer syntax at runtime.

The filter is a classic BPF program over ``struct seccomp_data`` (nr, arch, ip, args):

1. a foreign ABI is refused: ``arch`` must be the native ``AUDIT_ARCH_*`` (so i386 syscalls
   made through ``int 0x80`` on x86_64 cannot bypass the list), and on x86_64 the x32 ABI
   (syscall numbers with bit 30 set) is refused too;
2. ``personality`` is allowed only to query (0xffffffff) or to set the default PER_LINUX (0):
   anything else could, e.g., turn off address-space randomisation for later execs;
3. when ``unshare`` is denied, so are the namespaces ``clone`` could make instead: a ``clone``
   whose flags (``args[0]``) ask for a new namespace fails with EPERM, and ``clone3`` fails with
   ENOSYS (its flags are in memory a filter cannot read; on ENOSYS glibc, Go and Rust fall back
   to ``clone``, as under Docker's default profile);
4. each denied syscall number fails with EPERM; everything else is allowed.

Denied calls return EPERM rather than killing the process, so runtimes and libraries that probe
for a feature (``unshare``, ``userfaultfd``, ...) degrade as they would in an unprivileged
container.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Sequence

__all__ = [
    "CLONE_NAMESPACE_FLAGS",
    "DENIED",
    "SYSCALLS",
    "available",
    "build_filter",
    "install",
    "supported_machine",
]

DENIED: tuple[str, ...] = (
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "setns",
    "unshare",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "acct",
    "quotactl",
    "syslog",
    "iopl",
    "ioperm",
    "clock_settime",
    "clock_adjtime",
    "settimeofday",
    "adjtimex",
    "lookup_dcookie",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "personality",
    "nfsservctl",
    "vhangup",
    "pidfd_getfd",
)

# Syscall numbers of the names above (plus seccomp, clone and clone3), per architecture. A name
# missing from an architecture's table does not exist there (x86_64 has no plain umount; aarch64
# has no umount, iopl or ioperm) and is skipped when building that architecture's filter.
_X86_64: dict[str, int] = {  # arch/x86/entry/syscalls/syscall_64.tbl
    "clone": 56,
    "ptrace": 101,
    "syslog": 103,
    "personality": 135,
    "vhangup": 153,
    "pivot_root": 155,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "seccomp": 317,
    "kexec_file_load": 320,
    "bpf": 321,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "userfaultfd": 323,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
}

_AARCH64: dict[str, int] = {  # include/uapi/asm-generic/unistd.h
    "lookup_dcookie": 18,
    "umount2": 39,
    "mount": 40,
    "pivot_root": 41,
    "nfsservctl": 42,
    "chroot": 51,
    "vhangup": 58,
    "quotactl": 60,
    "acct": 89,
    "personality": 92,
    "unshare": 97,
    "kexec_load": 104,
    "init_module": 105,
    "delete_module": 106,
    "clock_settime": 112,
    "syslog": 116,
    "ptrace": 117,
    "reboot": 142,
    "settimeofday": 170,
    "adjtimex": 171,
    "add_key": 217,
    "request_key": 218,
    "keyctl": 219,
    "swapon": 224,
    "swapoff": 225,
    "clone": 220,
    "perf_event_open": 241,
    "name_to_handle_at": 264,
    "open_by_handle_at": 265,
    "clock_adjtime": 266,
    "setns": 268,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "finit_module": 273,
    "seccomp": 277,
    "bpf": 280,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "userfaultfd": 282,
    "kexec_file_load": 294,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
}

SYSCALLS: dict[str, dict[str, int]] = {"x86_64": _X86_64, "aarch64": _AARCH64}
"""machine -> syscall name -> number."""

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
_X32_SYSCALL_BIT = 0x40000000

# BPF opcodes (linux/filter.h, linux/bpf_common.h)
_BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
_BPF_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K
_BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K
BPF_MAXINSNS = 4096
_MAX_JUMP = 255

# struct seccomp_data offsets
_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0_LOW = 16  # low 32 bits of args[0] (both supported architectures are little-endian)

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
_RET_EPERM = SECCOMP_RET_ERRNO | errno.EPERM
_RET_ENOSYS = SECCOMP_RET_ERRNO | errno.ENOSYS

# clone() flags that make namespaces (CLONE_NEWTIME is clone3/unshare only)
_CLONE_NEWNS = 0x00020000
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
CLONE_NAMESPACE_FLAGS = (
    _CLONE_NEWNS
    | _CLONE_NEWCGROUP
    | _CLONE_NEWUTS
    | _CLONE_NEWIPC
    | _CLONE_NEWUSER
    | _CLONE_NEWPID
    | _CLONE_NEWNET
)

_PERSONALITY_QUERY = 0xFFFFFFFF
_PER_LINUX = 0

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1

_INSN = struct.Struct("=HBBI")  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}


def supported_machine(machine: str | None = None) -> str | None:
    """The table key for ``machine`` (default: this process's ABI), or None if unsupported."""
    if machine is None:
        if struct.calcsize("P") != 8:  # a 32-bit interpreter on a 64-bit kernel: other ABI
            return None
        machine = platform.machine()
    machine = _MACHINE_ALIASES.get(machine, machine)
    return machine if machine in SYSCALLS else None


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return _INSN.pack(code, jt, jf, k)


def build_filter(denied: Sequence[str] = DENIED, machine: str | None = None) -> bytes:
    """The BPF program (an array of ``struct sock_filter``) denying ``denied`` on ``machine``.

    ``machine`` defaults to this process's architecture; names that do not exist there are
    skipped. Raises ValueError for an unsupported architecture or a program over 4096
    instructions.
    """
    arch = supported_machine(machine)
    if arch is None:
        raise ValueError(
            f"seccomp filter: unsupported architecture {machine or platform.machine()}"
        )
    table = SYSCALLS[arch]
    numbers = sorted({table[name] for name in denied if name in table})

    program: list[bytes] = [
        _insn(_BPF_LD_W_ABS, _OFFSET_ARCH),
        _insn(_BPF_JEQ_K, _AUDIT_ARCH[arch], jt=1, jf=0),
        _insn(_BPF_RET_K, _RET_EPERM),
        _insn(_BPF_LD_W_ABS, _OFFSET_NR),
    ]
    if arch == "x86_64":
        program += [
            _insn(_BPF_JGE_K, _X32_SYSCALL_BIT, jt=0, jf=1),
            _insn(_BPF_RET_K, _RET_EPERM),
        ]
    personality = table["personality"]
    if personality in numbers:
        numbers.remove(personality)
        program += [
            _insn(_BPF_JEQ_K, personality, jt=0, jf=5),  # not personality: on to the list
            _insn(_BPF_LD_W_ABS, _OFFSET_ARG0_LOW),
            _insn(_BPF_JEQ_K, _PER_LINUX, jt=2, jf=0),
            _insn(_BPF_JEQ_K, _PERSONALITY_QUERY, jt=1, jf=0),
            _insn(_BPF_RET_K, _RET_EPERM),
            _insn(_BPF_RET_K, SECCOMP_RET_ALLOW),
        ]
    if "unshare" in denied and "clone" in table:
        program += [
            _insn(_BPF_JEQ_K, table["clone"], jt=0, jf=4),  # not clone: on
            _insn(_BPF_LD_W_ABS, _OFFSET_ARG0_LOW),  # the flags (namespace bits are low)
            _insn(_BPF_JSET_K, CLONE_NAMESPACE_FLAGS, jt=0, jf=1),
            _insn(_BPF_RET_K, _RET_EPERM),
            _insn(_BPF_RET_K, SECCOMP_RET_ALLOW),
        ]
        if "clone3" in table:
            program += [
                _insn(_BPF_JEQ_K, table["clone3"], jt=0, jf=1),
                _insn(_BPF_RET_K, _RET_ENOSYS),
            ]
    if len(numbers) <= _MAX_JUMP:
        # One comparison each, all jumping to a shared deny after the final allow.
        for i, nr in enumerate(numbers):
            program.append(_insn(_BPF_JEQ_K, nr, jt=len(numbers) - i, jf=0))
        program += [_insn(_BPF_RET_K, SECCOMP_RET_ALLOW), _insn(_BPF_RET_K, _RET_EPERM)]
    else:  # too far to jump: a deny right after each comparison
        for nr in numbers:
            program += [_insn(_BPF_JEQ_K, nr, jt=0, jf=1), _insn(_BPF_RET_K, _RET_EPERM)]
        program.append(_insn(_BPF_RET_K, SECCOMP_RET_ALLOW))
    if len(program) > BPF_MAXINSNS:
        raise ValueError(f"seccomp filter too long: {len(program)} > {BPF_MAXINSNS} instructions")
    return b"".join(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def install(denied: Sequence[str] = DENIED) -> None:
    """Set no_new_privs and install the filter for every thread of this process.

    Uses ``seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC)``: with TSYNC the kernel
    applies the filter to all threads at once, so a thread the runtime started earlier cannot
    escape it (without it only the calling thread and its future children would be filtered).
    On kernels without the seccomp syscall (< 3.17) it falls back to
    ``prctl(PR_SET_SECCOMP)``, but only in a single-threaded process. The filter is permanent
    and inherited across fork and exec. Raises OSError when anything fails.
    """
    machine = supported_machine()
    if machine is None:
        raise OSError(errno.ENOSYS, f"seccomp: unsupported architecture {platform.machine()}")
    code = build_filter(denied, machine)
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // _INSN.size, ctypes.addressof(buffer))
    libc = _libc()
    ulong = ctypes.c_ulong

    if libc.prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), ulong(1), ulong(0), ulong(0), ulong(0)):
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(err)}")

    result = libc.syscall(
        ctypes.c_long(SYSCALLS[machine]["seccomp"]),
        ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(prog),
    )
    if result == 0:
        return
    if result > 0:  # TSYNC names the thread that could not be synchronised
        raise OSError(
            errno.EBUSY,
            f"seccomp: thread {result} has a different filter; cannot synchronise all threads",
        )
    err = ctypes.get_errno()
    if err != errno.ENOSYS:
        raise OSError(err, f"seccomp: installing the filter failed: {os.strerror(err)}")
    if not _single_threaded():
        raise OSError(err, "seccomp: no seccomp() syscall and the process has several threads")
    if libc.prctl(
        ctypes.c_int(PR_SET_SECCOMP),
        ulong(SECCOMP_MODE_FILTER),
        ulong(ctypes.addressof(prog)),
        ulong(0),
        ulong(0),
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: prctl(PR_SET_SECCOMP) failed: {os.strerror(err)}")


def available() -> bool:
    """Whether :func:`install` can work here: a supported ABI and a kernel with filter mode.

    Nothing is installed; this only reads /proc.
    """
    if supported_machine() is None:
        return False
    try:
        with open("/proc/self/status") as status:
            if not any(line.startswith("Seccomp:") for line in status):
                return False
        with open("/proc/sys/kernel/seccomp/actions_avail") as actions:
            avail = actions.read().split()
    except OSError:
        return False
    if "errno" not in avail or "allow" not in avail:
        return False
    try:
        libc = _libc()
    except OSError:
        return False
    return hasattr(libc, "prctl") and hasattr(libc, "syscall")
