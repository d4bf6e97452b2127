"""Tests for squall.sandbox.guest.seccomp: filters run in forked children, never in pytest."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import re
import socket
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from squall.sandbox.guest import seccomp

MACHINE = seccomp.supported_machine()
needs_seccomp = pytest.mark.skipif(
    MACHINE is None or not seccomp.available(),
    reason=f"seccomp filters unsupported here ({platform.machine()})",
)

_INSN = struct.Struct("=HBBI")
_BPF_RET_K = 0x06


# ----------------------------------------------------------------------------- build_filter


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    return [_INSN.unpack_from(program, i) for i in range(0, len(program), _INSN.size)]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_build_filter_shape(machine: str) -> None:
    program = seccomp.build_filter(machine=machine)
    assert len(program) % 8 == 0
    insns = decode(program)
    assert 0 < len(insns) < seccomp.BPF_MAXINSNS
    assert len(insns) < 80  # a short linear list
    # arch check first, every path ends in a return
    assert insns[0] == (0x20, 0, 0, 4)
    assert insns[-1][0] == _BPF_RET_K
    returns = {k for code, _, _, k in insns if code == _BPF_RET_K}
    # ENOSYS: clone3, whose namespace flags a filter cannot read (glibc falls back to clone)
    assert returns == {
        seccomp.SECCOMP_RET_ALLOW,
        seccomp.SECCOMP_RET_ERRNO | errno.EPERM,
        seccomp.SECCOMP_RET_ERRNO | errno.ENOSYS,
    }
    # every jump lands inside the program
    for index, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:
            assert index + 1 + max(jt, jf) < len(insns)


def test_build_filter_each_denied_number_appears() -> None:
    for machine, table in seccomp.SYSCALLS.items():
        compared = {k for code, _, _, k in decode(seccomp.build_filter(machine=machine))}
        for name in seccomp.DENIED:
            if name in table:
                assert table[name] in compared, (machine, name)


def test_build_filter_skips_unknown_names() -> None:
    base = seccomp.build_filter(["mount"], machine="x86_64")
    assert seccomp.build_filter(["mount", "no_such_syscall", "iopl_typo"], "x86_64") == base
    # iopl exists on x86_64 but not on aarch64
    assert seccomp.build_filter(["mount", "iopl"], "aarch64") == seccomp.build_filter(
        ["mount"], "aarch64"
    )
    assert len(seccomp.build_filter(["mount", "iopl"], "x86_64")) == len(base) + 8
    # nothing denied: just the arch (and x32) checks
    assert len(decode(seccomp.build_filter([], "x86_64"))) == 8


def test_build_filter_aliases_and_unsupported() -> None:
    assert seccomp.build_filter(machine="amd64") == seccomp.build_filter(machine="x86_64")
    assert seccomp.build_filter(machine="arm64") == seccomp.build_filter(machine="aarch64")
    with pytest.raises(ValueError, match="unsupported"):
        seccomp.build_filter(machine="sparc")


def test_build_filter_long_list_stays_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(seccomp.SYSCALLS["x86_64"])
    table.update({f"fake{i}": 1000 + i for i in range(400)})
    monkeypatch.setitem(seccomp.SYSCALLS, "x86_64", table)
    insns = decode(seccomp.build_filter(list(table), "x86_64"))
    assert len(insns) < seccomp.BPF_MAXINSNS
    for index, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:
            assert index + 1 + max(jt, jf) < len(insns)
    table.update({f"fake{i}": 1000 + i for i in range(3000)})
    with pytest.raises(ValueError, match="too long"):
        seccomp.build_filter(list(table), "x86_64")


def _header_numbers(path: Path) -> dict[str, int]:
    text = path.read_text()
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", text)
    }


@pytest.mark.parametrize(
    ("machine", "headers"),
    [
        (
            "x86_64",
            ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"],
        ),
        # arm64 uses the generic syscall table
        ("aarch64", ["/usr/include/asm-generic/unistd.h"]),
    ],
)
def test_table_matches_kernel_header(machine: str, headers: list[str]) -> None:
    header = next((Path(h) for h in headers if Path(h).exists()), None)
    if header is None:
        pytest.skip(f"no kernel header for {machine} ({', '.join(headers)})")
    numbers = _header_numbers(header)
    table = seccomp.SYSCALLS[machine]
    assert {name: numbers.get(name) for name in table} == table
    # and nothing in DENIED that the header defines is missing from the table
    assert [n for n in seccomp.DENIED if n in numbers and n not in table] == []


# ----------------------------------------------------------------------------- install


def in_child(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` in a forked child; its dict result comes back as JSON through a pipe."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            try:
                result = body()
            except BaseException as exc:
                result = {"exception": repr(exc)}
            os.write(write_fd, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        data = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    return json.loads(data)


def _errno_of(result: int) -> int:
    return 0 if result == 0 else ctypes.get_errno()


def probe_denied() -> dict[str, int]:
    """Denied calls, with arguments that fail harmlessly (not EPERM) when unfiltered."""
    libc = ctypes.CDLL(None, use_errno=True)
    table = seccomp.SYSCALLS[seccomp.supported_machine() or ""]
    missing = f"/nonexistent-squall-seccomp-{os.getpid()}".encode()
    results = {
        "mount": _errno_of(libc.mount(b"none", missing, b"squall-no-such-fs", 0, None)),
        "unshare": _errno_of(libc.unshare(0)),  # a no-op when allowed
        # PTRACE_ATTACH to a pid that does not exist
        "ptrace": _errno_of(libc.ptrace(16, 0x3FFFFFFF, None, None)),
        # bpf() with an invalid command
        "bpf": _errno_of(libc.syscall(ctypes.c_long(table["bpf"]), 0xFFFF, None, 0)),
        # personality(ADDR_NO_RANDOMIZE) is denied, a query is not
        "personality_set": _errno_of(
            -1 if libc.personality(ctypes.c_ulong(0x0040000)) == -1 else 0
        ),
        "personality_query": _errno_of(
            -1 if libc.personality(ctypes.c_ulong(0xFFFFFFFF)) == -1 else 0
        ),
    }
    if seccomp.supported_machine() == "x86_64":  # x32 getpid: ENOSYS when unfiltered
        results["x32_getpid"] = _errno_of(libc.syscall(ctypes.c_long(0x40000000 | 39)))
    return results


def probe_allowed() -> dict[str, Any]:
    out: dict[str, Any] = {"pid": os.getpid() > 0}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f")
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, b"hello")
        os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        out["read"] = os.read(fd, 10).decode()
        os.close(fd)
    left, right = socket.socketpair(socket.AF_UNIX)
    left.sendall(b"ping")
    out["socketpair"] = right.recv(4).decode()
    left.close()
    right.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        out["socket"] = sock.fileno() >= 0
    child = os.fork()
    if child == 0:
        os._exit(7)
    out["fork"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Seccomp:"):
            out["mode"] = line.split()[1]
    return out


@needs_seccomp
def test_install_denies_dangerous_syscalls() -> None:
    def body() -> dict[str, Any]:
        seccomp.install()
        return {"denied": probe_denied(), "allowed": probe_allowed()}

    result = in_child(body)
    assert "exception" not in result, result
    denied = result["denied"]
    for name in ("mount", "unshare", "ptrace", "bpf", "personality_set"):
        assert denied[name] == errno.EPERM, (name, denied)
    assert denied["personality_query"] == 0
    if MACHINE == "x86_64":
        assert denied["x32_getpid"] == errno.EPERM
    assert result["allowed"] == {
        "pid": True,
        "read": "hello",
        "socketpair": "ping",
        "socket": True,
        "fork": 7,
        "mode": "2",
    }


@needs_seccomp
def test_probes_are_not_eperm_without_filter() -> None:
    """The control: unfiltered, the same calls fail for other reasons (or succeed)."""
    result = in_child(lambda: {"denied": probe_denied()})
    denied = result["denied"]
    for name in ("mount", "ptrace", "bpf", "personality_query"):
        assert denied[name] != errno.EPERM or os.geteuid() != 0, (name, denied)
    assert denied["unshare"] == 0 or os.geteuid() != 0
    if MACHINE == "x86_64":
        assert denied["x32_getpid"] in (errno.ENOSYS, 0)


@needs_seccomp
def test_install_covers_threads() -> None:
    """TSYNC: a thread started before install() is filtered too."""

    def body() -> dict[str, Any]:
        import threading

        go, done = threading.Event(), threading.Event()
        seen: dict[str, int] = {}

        def worker() -> None:
            go.wait(5)
            libc = ctypes.CDLL(None, use_errno=True)
            seen["unshare"] = _errno_of(libc.unshare(0))
            done.set()

        thread = threading.Thread(target=worker)
        thread.start()
        seccomp.install()
        go.set()
        done.wait(5)
        thread.join(5)
        return seen

    assert in_child(body) == {"unshare": errno.EPERM}


@needs_seccomp
def test_install_custom_list() -> None:
    def body() -> dict[str, Any]:
        seccomp.install(["unshare"])
        denied = probe_denied()
        return {"unshare": denied["unshare"], "mount": denied["mount"]}

    result = in_child(body)
    assert result["unshare"] == errno.EPERM
    assert result["mount"] != errno.EPERM or os.geteuid() != 0


def seccomp_status() -> str:
    lines = Path("/proc/self/status").read_text().splitlines()
    return next((line for line in lines if line.startswith("Seccomp")), "")


def test_available_is_a_bool_and_installs_nothing() -> None:
    before = seccomp_status()
    assert isinstance(seccomp.available(), bool)
    assert seccomp_status() == before
