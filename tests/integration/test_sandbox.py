"""Real sandboxes: escape attempts, limits, errors, runtimes and the pool.

One `SandboxManager` (one zygote per interpreter) serves the module; its event loop runs in a
background thread (`LoopThread`). The manager's cgroups live under a parent group of their own
(`squall-test-<pid>`), so that starting it cannot sweep away a running server's sandboxes and
vice versa. Tests that need isolation (namespaces, pivot_root, cgroups, the uid drop) need root
and skip without it.

Network: the only address other than loopback that any test names is TEST-NET-1 (192.0.2.1),
and the handler tries it only after checking that its network namespace has no interface but
`lo`, so no packet can leave the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.core.config import Settings
from squall.sandbox.cgroups import CgroupDriver, detect_driver
from squall.sandbox.manager import PIDS_LIMIT, SandboxManager
from squall.sandbox.pool import PoolCounts, SandboxPool
from squall.sandbox.results import SandboxInitError
from squall.sandbox.rootfs import root_binds
from squall.sandbox.runtimes import PYTHON_RUNTIMES, interpreter_for, zygote_key
from squall.sandbox.spec import FunctionSpec
from tests.support.sandboxes import (
    HOST_RUNTIME,
    Harness,
    LoopThread,
    document,
    function_spec,
    request_id,
    write_function,
)
from tests.support.servers import squall_process

IS_ROOT = os.geteuid() == 0
NEEDS_ROOT = "needs root: namespaces, pivot_root, cgroups and the uid drop"
MIB = 1024 * 1024


# --------------------------------------------------------------------------- fixtures


def _driver(parent: str) -> CgroupDriver | None:
    return detect_driver(parent=parent) if IS_ROOT else None


def _remove_driver(driver: CgroupDriver | None) -> None:
    if driver is None:
        return
    driver.cleanup_stale()
    for parent in driver.parents:
        with contextlib.suppress(OSError):
            os.rmdir(parent)


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stands for squall's data dir: the manager's run dir lives in it, next to a secret."""
    directory = tmp_path_factory.mktemp("squall-data")
    (directory / "secret.txt").write_text("host secret\n")
    return directory


@pytest.fixture(scope="module")
def sandboxes(loop_thread: LoopThread, data_dir: Path) -> Iterator[Harness]:
    driver = _driver(f"squall-test-{os.getpid()}")
    manager = SandboxManager(data_dir / "run", cgroups=driver if driver is not None else False)
    loop_thread.run(manager.start())
    try:
        yield Harness(loop_thread, manager)
    finally:
        loop_thread.run(manager.stop())
        _remove_driver(driver)


@pytest.fixture
def isolated(sandboxes: Harness) -> Harness:
    """The module's manager, for tests that only mean something with every protection on."""
    if not IS_ROOT:
        pytest.skip(NEEDS_ROOT)
    assert sandboxes.manager.isolate
    assert sandboxes.manager.cgroups is not None, sandboxes.manager.degraded
    assert sandboxes.manager.seccomp
    assert sandboxes.manager.degraded == []
    return sandboxes


def function(
    tmp_path: Path, code: str, *, files: dict[str, str | bytes] | None = None, **fields: Any
) -> FunctionSpec:
    """A function whose `app.py` is `code` (plus `files`), in a fresh directory."""
    directory = tmp_path / f"fn-{uuid.uuid4().hex[:8]}"
    write_function(directory, {"app.py": code, **(files or {})})
    return function_spec(directory, **fields)


def alive(harness: Harness, spec: FunctionSpec) -> None:
    """A new sandbox of `spec` starts and answers (the host is fine)."""
    result = harness.call(spec, {"ping": True})
    assert result.error_type is None, result.payload
    assert document(result) == {"pong": True}


PING = """
def handler(event, context):
    return {"pong": event.get("ping", False)}
"""


# --------------------------------------------------------------------------- escapes


SHADOW = """
def handler(event, context):
    try:
        with open("/etc/shadow") as handle:
            return {"contents": handle.read()}
    except OSError as exc:
        return {"error": type(exc).__name__}
"""


def test_etc_shadow_cannot_be_read(isolated: Harness, tmp_path: Path) -> None:
    assert os.path.exists("/etc/shadow")  # on the host, so the attempt means something
    result = isolated.call(function(tmp_path, SHADOW))
    assert result.error_type is None, result.payload
    assert document(result) in ({"error": "FileNotFoundError"}, {"error": "PermissionError"})


PROCESSES = """
import os

def handler(event, context):
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
        try:
            os.kill(event["host_pid"], 0)
            host = "signalled"
        except ProcessLookupError:
            host = "no such process"
        except PermissionError:
            host = "permission denied"
        return {"pid": os.getpid(), "child": child, "pids": pids, "host": host}
    finally:
        os.close(write_end)
        os.waitpid(child, 0)
"""


def test_proc_shows_only_the_sandbox_processes(isolated: Harness, tmp_path: Path) -> None:
    result = isolated.call(function(tmp_path, PROCESSES), {"host_pid": os.getpid()})
    assert result.error_type is None, result.payload
    seen = document(result)
    # pid 1 is the sandbox's init, the runtime its child
    assert seen["pid"] == 2
    assert seen["pids"] == [1, 2, seen["child"]]
    assert seen["host"] == "no such process"


ORPHANS = """
import os, subprocess, time

def handler(event, context):
    # the shell exits at once; its background child is orphaned to the sandbox's pid 1
    subprocess.run(["/bin/sh", "-c", "sleep 0.01 &"], check=True)
    time.sleep(0.2)
    states = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with open(f"/proc/{name}/stat") as handle:
                states[name] = handle.read().rsplit(")", 1)[1].split()[0]
    return {"zombies": sorted(int(pid) for pid, state in states.items() if state == "Z")}
"""


def test_orphans_are_reaped(isolated: Harness, tmp_path: Path) -> None:
    """Zombies would pile up and eat the pids limit one invocation at a time."""
    sandbox = isolated.create(function(tmp_path, ORPHANS))
    try:
        for _ in range(3):
            result = isolated.invoke(sandbox)
            assert result.error_type is None, result.payload
            assert document(result) == {"zombies": []}
    finally:
        isolated.destroy(sandbox)


LISTING = """
import os

def handler(event, context):
    seen = {}
    for path in event["paths"]:
        if os.path.isdir(path):
            seen[path] = sorted(os.listdir(path))
        else:
            seen[path] = os.path.exists(path)
    return seen
"""


def _bound_children(path: str, sources: list[str]) -> list[str]:
    """Names under `path` that a sandbox sees because a bind source lies below it."""
    prefix = path.rstrip("/") + "/"
    return sorted({s[len(prefix) :].split("/")[0] for s in sources if s.startswith(prefix)})


def test_host_directories_are_invisible(isolated: Harness, tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "mine.txt").write_text("the test's own file\n")
    probes = [str(data_dir), str(data_dir / "secret.txt"), str(tmp_path), "/root", "/home"]
    result = isolated.call(function(tmp_path, LISTING), {"paths": probes})
    assert result.error_type is None, result.payload
    seen = document(result)
    assert seen[str(data_dir)] is False
    assert seen[str(data_dir / "secret.txt")] is False
    assert seen[str(tmp_path)] is False
    # /root and /home hold nothing but the way to what the root binds on purpose (on a host
    # whose interpreter lives under /root/.pyenv, that directory and nothing else of /root)
    sources = [entry["source"] for entry in root_binds()[0]]
    for path in ("/root", "/home"):
        expected = _bound_children(path, sources)
        assert seen[path] == (expected if expected else False), path
        if os.path.isdir(path):
            hidden = set(os.listdir(path)) - set(expected)
            assert hidden.isdisjoint(seen[path] or [])


READ_ONLY = """
import errno, os

def attempt(action):
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return "written"

def handler(event, context):
    return {
        "/var/task/new.txt": attempt(lambda: open("/var/task/new.txt", "w").close()),
        # world-writable on the host: only the read-only mount stands in the way
        "/var/task/writable.txt": attempt(lambda: open("/var/task/writable.txt", "a").close()),
        "/var/task/dir": attempt(lambda: os.mkdir("/var/task/dir")),
        "/new.txt": attempt(lambda: open("/new.txt", "w").close()),
        "/newdir": attempt(lambda: os.mkdir("/newdir")),
        "/tmp/ok.txt": attempt(lambda: open("/tmp/ok.txt", "w").close()),
    }
"""


def test_task_root_and_root_are_read_only(isolated: Harness, tmp_path: Path) -> None:
    spec = function(tmp_path, READ_ONLY, files={"writable.txt": "as shipped\n"})
    writable = Path(spec.code_dir) / "writable.txt"
    writable.chmod(0o666)
    result = isolated.call(spec)
    assert result.error_type is None, result.payload
    assert document(result) == {
        "/var/task/new.txt": "EROFS",
        "/var/task/writable.txt": "EROFS",
        "/var/task/dir": "EROFS",
        "/new.txt": "EROFS",
        "/newdir": "EROFS",
        "/tmp/ok.txt": "written",
    }
    assert sorted(os.listdir(spec.code_dir)) == ["app.py", "writable.txt"]
    assert writable.read_text() == "as shipped\n"


WRITER = """
import os

def handler(event, context):
    if event.get("write"):
        with open("/tmp/secret", "w") as handle:
            handle.write(os.environ["SECRET"])
    with open("/tmp/secret") as handle:
        return {"secret": handle.read() == os.environ["SECRET"]}
"""

SNOOPER = """
import os

def handler(event, context):
    secret = event["secret"].encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    if secret in handle.read():
                        found.append(name)
            except OSError:
                pass
    return {
        "tmp": sorted(os.listdir("/tmp")),
        "tmp_secret": os.path.exists("/tmp/secret"),
        "environ": found,
        "env": os.environ.get("SECRET"),
        "pids": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
    }
"""


def test_functions_see_neither_tmp_nor_environment_of_others(
    isolated: Harness, tmp_path: Path
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    writer = isolated.create(function(tmp_path, WRITER, environment={"SECRET": secret}))
    try:
        wrote = isolated.invoke(writer, {"write": True})
        assert document(wrote) == {"secret": True}
        snooped = isolated.call(function(tmp_path, SNOOPER), {"secret": secret})
        assert snooped.error_type is None, snooped.payload
        # /tmp is empty but for the read-only mount points of host paths that squall binds
        # at their own paths when they live under /tmp (a venv in /tmp, as in a CI clone)
        bound_under_tmp = sorted(
            {
                Path(bind["source"]).relative_to("/tmp").parts[0]
                for bind in isolated.manager.root_binds()
                if bind["source"].startswith("/tmp/")
            }
        )
        assert document(snooped) == {
            "tmp": bound_under_tmp,
            "tmp_secret": False,
            "environ": [],
            "env": None,
            "pids": [1, 2],
        }
        # the writer's /tmp is still its own
        assert document(isolated.invoke(writer)) == {"secret": True}
    finally:
        isolated.destroy(writer)


FORK_BOMB = """
import os

def handler(event, context):
    read_end, write_end = os.pipe()
    children = []
    failure = None
    while len(children) < 4 * event["limit"]:
        try:
            pid = os.fork()
        except OSError as exc:
            failure = exc.errno
            break
        if pid == 0:
            os.close(write_end)
            os.read(read_end, 1)  # until the parent closes its end
            os._exit(0)
        children.append(pid)
    os.close(write_end)
    for pid in children:
        os.waitpid(pid, 0)
    os.close(read_end)
    return {"forked": len(children), "errno": failure}
"""


def test_fork_bomb_is_contained_by_the_pids_limit(isolated: Harness, tmp_path: Path) -> None:
    spec = function(tmp_path, FORK_BOMB, memory_mb=1024, timeout_s=30)
    sandbox = isolated.create(spec)
    try:
        result = isolated.invoke(sandbox, {"limit": PIDS_LIMIT})
        assert result.error_type is None, result.payload
        outcome = document(result)
        assert outcome["errno"] == errno.EAGAIN
        assert 0 < outcome["forked"] < PIDS_LIMIT
        # the sandbox itself survives its own fork bomb, and so does the host
        again = isolated.invoke(sandbox, {"limit": 1})
        assert document(again) == {"forked": 4, "errno": None}
    finally:
        isolated.destroy(sandbox)
    assert subprocess.run(["true"], check=False).returncode == 0
    alive(isolated, function(tmp_path, PING))


ALLOCATE = """
hold = []

def handler(event, context):
    for _ in range(event["mb"] // 8):
        hold.append(b"x" * (8 * 1024 * 1024))  # written, not just reserved
    return {"allocated_mb": len(hold) * 8}
"""


def test_allocating_past_the_memory_limit_is_out_of_memory(
    isolated: Harness, tmp_path: Path
) -> None:
    spec = function(tmp_path, ALLOCATE, memory_mb=128, timeout_s=20)
    sandbox = isolated.create(spec)
    rid = request_id()
    result = isolated.invoke(sandbox, {"mb": 512}, request=rid)
    assert result.error_type == "Runtime.OutOfMemory"
    error = document(result)
    assert error["errorType"] == "Runtime.OutOfMemory"
    assert "Runtime exited with error: signal: killed" in error["errorMessage"]
    assert error["errorMessage"] == (
        f"RequestId: {rid} Error: Runtime exited with error: signal: killed"
    )
    assert 100 <= result.max_memory_mb <= 129  # the cgroup's peak, read before its removal
    assert sandbox.dead
    retry = isolated.call(spec, {"mb": 16})
    assert retry.error_type is None, retry.payload
    assert document(retry) == {"allocated_mb": 16}


FILL_TMP = """
import errno, os

def handler(event, context):
    chunk = b"x" * (1024 * 1024)
    written = 0
    fd = os.open("/tmp/fill", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while written < 64 * 1024 * 1024:
            written += os.write(fd, chunk)
    except OSError as exc:
        return {"errno": errno.errorcode.get(exc.errno), "written": written}
    finally:
        os.close(fd)
    return {"errno": None, "written": written}
"""


def test_filling_tmp_stops_at_ephemeral_storage(isolated: Harness, tmp_path: Path) -> None:
    result = isolated.call(function(tmp_path, FILL_TMP, ephemeral_mb=16, timeout_s=10))
    assert result.error_type is None, result.payload
    outcome = document(result)
    assert outcome["errno"] == "ENOSPC"
    assert 15 * MIB <= outcome["written"] <= 16 * MIB


NETWORK = """
import errno, socket, time

def outcome(address):
    began = time.monotonic()
    try:
        socket.create_connection(address, timeout=1).close()
        result = "connected"
    except OSError as exc:
        result = errno.errorcode.get(exc.errno, type(exc).__name__)
    return result, time.monotonic() - began

def handler(event, context):
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        return {"interfaces": interfaces}  # never try an outside address then
    outside, outside_s = outcome(("192.0.2.1", 80))  # TEST-NET-1
    host_loopback, _ = outcome(("127.0.0.1", event["host_port"]))
    return {
        "interfaces": interfaces,
        "outside": outside,
        "outside_s": outside_s,
        "host_loopback": host_loopback,
    }
"""


def test_network_is_loopback_only(isolated: Harness, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # the host's loopback
        port = listener.getsockname()[1]
        result = isolated.call(function(tmp_path, NETWORK), {"host_port": port})
    assert result.error_type is None, result.payload
    outcome = document(result)
    assert outcome["interfaces"] == ["lo"]
    assert outcome["outside"] == "ENETUNREACH"
    assert outcome["outside_s"] < 0.5  # refused at once, not timed out
    assert outcome["host_loopback"] == "ECONNREFUSED"  # the sandbox's lo is its own


SYSCALLS = """
import ctypes, errno, os, subprocess, threading

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17
SYS_CLONE = {"x86_64": 56, "aarch64": 220}[os.uname().machine]
SYS_CLONE3 = 435

def call(function, *args):
    ctypes.set_errno(0)
    result = function(*args)
    return [result, errno.errorcode.get(ctypes.get_errno(), "0")]

def clone(flags):
    ctypes.set_errno(0)
    number, zero = ctypes.c_long(SYS_CLONE), ctypes.c_ulong(0)
    pid = libc.syscall(number, ctypes.c_ulong(flags | SIGCHLD), zero, zero, zero, zero)
    if pid == 0:
        os._exit(0)  # the child of a clone that should not have happened
    if pid > 0:
        os.waitpid(pid, 0)
        return "created"
    return errno.errorcode.get(ctypes.get_errno(), "0")

def handler(event, context):
    # clone3 with a struct clone_args too short to be valid: EINVAL if it ever got through
    args = ctypes.create_string_buffer(8)
    out = {
        "unshare_user": call(libc.unshare, CLONE_NEWUSER),
        "unshare_mount": call(libc.unshare, CLONE_NEWNS),
        "clone_user": clone(CLONE_NEWUSER),
        "clone_user_net": clone(CLONE_NEWUSER | CLONE_NEWNET),
        "clone_plain": clone(0),
        "clone3": call(libc.syscall, ctypes.c_long(SYS_CLONE3), args, ctypes.c_size_t(8)),
        "mount": call(libc.mount, b"none", b"/tmp", b"tmpfs", ctypes.c_ulong(0), None),
        "ptrace": call(libc.ptrace, ctypes.c_long(0), 0, None, None),  # PTRACE_TRACEME
    }
    # what uses clone3 first falls back to clone: threads and subprocesses still work
    box = []
    thread = threading.Thread(target=box.append, args=("thread ran",))
    thread.start()
    thread.join()
    out["thread"] = box[0]
    out["subprocess"] = subprocess.run(["/bin/true"], check=False).returncode
    for name, action in (("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0))):
        try:
            action()
            out[name] = "done"
        except OSError as exc:
            out[name] = errno.errorcode[exc.errno]
    with open("/proc/self/status") as handle:
        status = dict(line.rstrip("\\n").split(":\\t", 1) for line in handle if ":\\t" in line)
    for field in ("Seccomp", "NoNewPrivs", "CapEff", "Uid", "Gid", "Groups"):
        out[field] = status.get(field, "").strip()
    return out
"""


def test_seccomp_and_privileges(isolated: Harness, tmp_path: Path) -> None:
    result = isolated.call(function(tmp_path, SYSCALLS))
    assert result.error_type is None, result.payload
    assert document(result) == {
        "unshare_user": [-1, "EPERM"],
        "unshare_mount": [-1, "EPERM"],
        "clone_user": "EPERM",
        "clone_user_net": "EPERM",
        "clone_plain": "created",
        "clone3": [-1, "ENOSYS"],
        "mount": [-1, "EPERM"],
        "ptrace": [-1, "EPERM"],
        "setuid": "EPERM",
        "setgid": "EPERM",
        "thread": "thread ran",
        "subprocess": 0,
        "Seccomp": "2",
        "NoNewPrivs": "1",
        "CapEff": "0000000000000000",
        "Uid": "993\t993\t993\t993",
        "Gid": "990\t990\t990\t990",
        "Groups": "",
    }


# --------------------------------------------------------------------------- limits and errors


SLEEPER = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"""


def test_timeout_kills_the_sandbox(sandboxes: Harness, tmp_path: Path) -> None:
    spec = function(tmp_path, SLEEPER, timeout_s=1)
    sandbox = sandboxes.create(spec)
    rid = request_id()
    began = time.monotonic()
    result = sandboxes.invoke(sandbox, {"sleep": 5}, request=rid)
    elapsed = time.monotonic() - began
    assert result.error_type == "Sandbox.Timedout"
    assert document(result) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds",
    }
    assert 0.9 < elapsed < 3
    assert sandbox.dead
    if sandbox.cgroup is not None:
        assert not sandbox.cgroup.exists()
    assert sandbox not in sandboxes.manager.sandboxes
    retry = sandboxes.call(spec, {"sleep": 0})
    assert retry.error_type is None, retry.payload
    assert document(retry) == {"slept": 0}


@pytest.mark.parametrize(
    ("statement", "reason", "logged"),
    [
        ("os._exit(3)", "Runtime exited with error: exit status 3", None),
        ("sys.exit(2)", "Runtime exited with error: exit status 2", None),
        ("sys.exit('giving up')", "Runtime exited with error: exit status 1", "giving up"),
        ("sys.exit()", "Runtime exited without providing a reason", None),
        ("os.kill(os.getpid(), 15)", "Runtime exited with error: signal: terminated", None),
        ("os.abort()", "Runtime exited with error: signal: aborted", None),
    ],
)
def test_crash_is_a_runtime_exit_error(
    sandboxes: Harness, tmp_path: Path, statement: str, reason: str, logged: str | None
) -> None:
    code = f"import os, sys\n\ndef handler(event, context):\n    {statement}\n"
    sandbox = sandboxes.create(function(tmp_path, code))
    rid = request_id()
    result = sandboxes.invoke(sandbox, request=rid)
    assert result.error_type == "Runtime.ExitError"
    assert document(result) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {rid} Error: {reason}",
    }
    if logged is not None:
        assert logged in result.logs
    assert sandbox.dead
    assert sandbox not in sandboxes.manager.sandboxes


def _syntax_error_message(source: str) -> str:
    try:
        compile(source, "/var/task/app.py", "exec")
    except SyntaxError as exc:
        return f"Syntax error in module 'app': {exc}"
    raise AssertionError("the source compiles")


BAD_SYNTAX = "def handler(event, context)\n    return 1\n"
INIT_ERRORS = [
    pytest.param(
        "missing.handler",
        "def handler(event, context):\n    return 1\n",
        "Runtime.ImportModuleError",
        "Unable to import module 'missing': No module named 'missing'",
        id="ImportModuleError",
    ),
    pytest.param(
        "app.handler",
        "import not_installed_anywhere\n",
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'not_installed_anywhere'",
        id="ImportModuleError-dependency",
    ),
    pytest.param(
        "app.nothere",
        "def handler(event, context):\n    return 1\n",
        "Runtime.HandlerNotFound",
        "Handler 'nothere' missing on module 'app'",
        id="HandlerNotFound",
    ),
    pytest.param(
        "app.handler",
        BAD_SYNTAX,
        "Runtime.UserCodeSyntaxError",
        _syntax_error_message(BAD_SYNTAX),
        id="UserCodeSyntaxError",
    ),
    pytest.param(
        "nodot",
        "def handler(event, context):\n    return 1\n",
        "Runtime.MalformedHandlerName",
        "Bad handler 'nodot': not enough values to unpack (expected 2, got 1)",
        id="MalformedHandlerName",
    ),
    pytest.param(
        "app.handler",
        "raise RuntimeError('init failed')\n",
        "RuntimeError",
        "init failed",
        id="exception-during-import",
    ),
]


@pytest.mark.parametrize(("handler", "code", "error_type", "message"), INIT_ERRORS)
def test_init_errors(
    sandboxes: Harness, tmp_path: Path, handler: str, code: str, error_type: str, message: str
) -> None:
    before = len(sandboxes.manager.sandboxes)
    spec = function(tmp_path, code, handler=handler)
    with pytest.raises(SandboxInitError) as caught:
        sandboxes.create(spec)
    error = caught.value
    assert error.error_type == error_type
    assert error.message == message
    payload = json.loads(error.payload)
    assert payload["errorType"] == error_type
    assert payload["errorMessage"] == message
    assert isinstance(payload["stackTrace"], list)
    reported = [line for line in error.logs if line.startswith("[ERROR]")]
    assert reported and reported[0].startswith(f"[ERROR] {error_type}: {message}")
    assert any("LAMBDA_WARNING: Unhandled exception." in line for line in error.logs)
    assert len(sandboxes.manager.sandboxes) == before  # nothing left behind


RAISER = """
def handler(event, context):
    print("about to fail")
    raise ValueError("bad value: " + event["what"])
"""


def test_handler_exception_is_a_function_error(sandboxes: Harness, tmp_path: Path) -> None:
    spec = function(tmp_path, RAISER)
    task_root = "/var/task" if sandboxes.manager.isolate else spec.code_dir
    sandbox = sandboxes.create(spec)
    try:
        rid = request_id()
        result = sandboxes.invoke(sandbox, {"what": "spam"}, request=rid)
        assert result.error_type == "ValueError"
        error = document(result)
        assert set(error) == {"errorMessage", "errorType", "requestId", "stackTrace"}
        assert error["errorMessage"] == "bad value: spam"
        assert error["errorType"] == "ValueError"
        assert error["requestId"] == rid
        assert len(error["stackTrace"]) == 1
        frame = error["stackTrace"][0]
        assert frame.startswith(f'  File "{task_root}/app.py", line 3, in handler\n')
        assert 'raise ValueError("bad value: " + event["what"])' in frame
        assert result.logs[0] == "about to fail"
        tracebacks = [line for line in result.logs if "Traceback" in line]
        assert len(tracebacks) == 1  # the whole traceback is one log event
        event = tracebacks[0]
        assert event.startswith("[ERROR] ValueError: bad value: spam\nTraceback")
        assert 'raise ValueError("bad value: " + event["what"])' in event
        # the sandbox lives on after a function error
        assert not sandbox.dead
        assert document(sandboxes.invoke(sandbox, {"what": "eggs"}))["errorMessage"] == (
            "bad value: eggs"
        )
    finally:
        sandboxes.destroy(sandbox)


CONTEXT = """
import os

count = 0

def handler(event, context):
    global count
    count += 1
    print(f"invocation {count}")
    return {
        "count": count,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "cwd": os.getcwd(),
        "env": {name: os.environ.get(name) for name in event["names"]},
    }
"""

ENV_NAMES = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "MY_SETTING",
    "SQUALL_GUEST_CONFIG",
]


def test_state_context_and_environment(sandboxes: Harness, tmp_path: Path) -> None:
    spec = function(
        tmp_path,
        CONTEXT,
        memory_mb=256,
        timeout_s=5,
        environment={"MY_SETTING": "on"},
        region="eu-west-1",
    )
    sandbox = sandboxes.create(spec)
    task_root = "/var/task" if sandboxes.manager.isolate else spec.code_dir
    try:
        seen = []
        for n in range(3):
            rid = request_id()
            trace = f"Root=1-5e1b4151-{n:024d}"
            result = sandboxes.invoke(sandbox, {"names": ENV_NAMES}, request=rid, trace_id=trace)
            assert result.error_type is None, result.payload
            assert result.logs == [f"invocation {n + 1}"]
            got = document(result)
            assert got["aws_request_id"] == rid
            assert got["env"]["_X_AMZN_TRACE_ID"] == trace
            assert 4000 < got["remaining_ms"] <= 5000
            seen.append(got)
        assert [got["count"] for got in seen] == [1, 2, 3]  # module state persists when warm
        assert not sandbox.dead and sandbox in sandboxes.manager.sandboxes
        got = seen[0]
        assert got["function_name"] == spec.name
        assert got["function_version"] == "$LATEST"
        assert got["memory_limit_in_mb"] == "256"
        assert got["invoked_function_arn"] == spec.arn
        assert got["log_group_name"] == f"/aws/lambda/{spec.name}"
        assert got["log_stream_name"] == sandbox.log_stream
        assert got["cwd"] == task_root
        env = dict(got["env"])
        env.pop("_X_AMZN_TRACE_ID")
        assert env == {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": sandbox.log_stream,
            "AWS_REGION": "eu-west-1",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{HOST_RUNTIME}",
            "LAMBDA_TASK_ROOT": task_root,
            "_HANDLER": "app.handler",
            "MY_SETTING": "on",
            "SQUALL_GUEST_CONFIG": None,
        }
    finally:
        sandboxes.destroy(sandbox)


def test_max_memory_grows_with_allocations(isolated: Harness, tmp_path: Path) -> None:
    sandbox = isolated.create(function(tmp_path, ALLOCATE, memory_mb=256, timeout_s=10))
    try:
        idle = isolated.invoke(sandbox, {"mb": 0})
        assert idle.error_type is None, idle.payload
        assert 1 <= idle.max_memory_mb < 128
        grown = isolated.invoke(sandbox, {"mb": 56})
        assert document(grown) == {"allocated_mb": 56}
        assert grown.max_memory_mb >= 56
        assert grown.max_memory_mb >= idle.max_memory_mb + 50
        assert grown.max_memory_mb < 256
    finally:
        isolated.destroy(sandbox)


# --------------------------------------------------------------------------- runtimes


CURL_BOOTSTRAP = """#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
HEADERS=/tmp/headers
while true; do
  EVENT=$(curl -sS --noproxy '*' -D "$HEADERS" "$API/next")
  REQUEST_ID=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$HEADERS" | cut -d: -f2 | tr -d ' \\r')
  echo "handling $REQUEST_ID"
  curl -sS --noproxy '*' -o /dev/null -X POST "$API/$REQUEST_ID/response" \\
    -d "{\\"echo\\": $EVENT, \\"requestId\\": \\"$REQUEST_ID\\"}"
done
"""


def test_custom_runtime_shell_bootstrap_with_curl(isolated: Harness, tmp_path: Path) -> None:
    # /usr is bound read-only into the sandbox as it is on the host
    if not os.access("/usr/bin/curl", os.X_OK):
        pytest.skip("no /usr/bin/curl, so none inside the sandbox either")
    directory = write_function(tmp_path / "custom", {"bootstrap": CURL_BOOTSTRAP})
    spec = function_spec(
        directory, runtime="provided.al2023", handler="function.handler", timeout_s=10
    )
    sandbox = isolated.create(spec)
    try:
        for n in range(2):
            rid = request_id()
            result = isolated.invoke(sandbox, {"n": n}, request=rid)
            assert result.error_type is None, (result.payload, result.logs)
            assert document(result) == {"echo": {"n": n}, "requestId": rid}
            assert f"handling {rid}" in result.logs
    finally:
        isolated.destroy(sandbox)


VISIBLE = """
import os

def handler(event, context):
    return {path: os.path.exists(path) for path in event["paths"]}
"""


def test_custom_runtime_awslambdaric(isolated: Harness, tmp_path: Path) -> None:
    """awslambdaric, vendored into the package as a user deploys it, runs unmodified."""
    distributions = ("awslambdaric", "simplejson", "snapshot-restore-py")
    try:
        files = [f for name in distributions for f in importlib.metadata.files(name) or []]
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("awslambdaric (a test dependency) is not installed")
    directory = write_function(
        tmp_path / "ric",
        {
            # the interpreter's real path: its installation is bound into every sandbox
            "bootstrap": f"#!/bin/sh\nexec {os.path.realpath(sys.executable)} "
            "-m awslambdaric app.handler\n",
            "app.py": "def handler(event, context):\n    return {'ric': event}\n",
        },
    )
    for file in files:  # what `pip install --target` would have put in the package
        if ".dist-info" in str(file) or file.suffix == ".pyc":
            continue
        target = directory / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file.locate(), target)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (directory / "bootstrap").chmod(0o755)
    spec = function_spec(directory, runtime="provided.al2023", timeout_s=10)
    sandbox = isolated.create(spec)
    try:
        result = isolated.invoke(sandbox, {"n": 1})
        assert result.error_type is None, (result.payload, result.logs)
        assert document(result) == {"ric": {"n": 1}}
    finally:
        isolated.destroy(sandbox)


STS = """
import os
import boto3

def handler(event, context):
    identity = boto3.client("sts").get_caller_identity()
    return {
        "Account": identity["Account"],
        "Arn": identity["Arn"],
        "endpoint": os.environ["AWS_ENDPOINT_URL"],
    }
"""


def test_boto3_in_a_function_reaches_squall(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    server_dir = tmp_path_factory.mktemp("squall-server")
    with squall_process(server_dir) as server:
        api_socket = Settings(data_dir=server_dir).api_socket
        assert api_socket.exists()
        driver = _driver(f"squall-test-{os.getpid()}-api")
        manager = SandboxManager(
            tmp_path / "run",
            cgroups=driver if driver is not None else False,
            endpoint_url=server.endpoint,
            api_socket=str(api_socket),
        )
        loop_thread.run(manager.start())
        harness = Harness(loop_thread, manager)
        try:
            spec = function(
                tmp_path,
                STS,
                memory_mb=1024,
                timeout_s=20,
                environment={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
            )
            result = harness.call(spec)
        finally:
            loop_thread.run(manager.stop())
            _remove_driver(driver)
    assert result.error_type is None, (result.payload, result.logs)
    got = document(result)
    assert got["Account"] == "000000000000"
    assert got["Arn"] == "arn:aws:iam::000000000000:root"
    if IS_ROOT:
        assert got["endpoint"] == "http://127.0.0.1:4566"  # the relay inside the sandbox
    else:
        assert got["endpoint"] == server.endpoint


VERSION = """
import importlib, os, sys

def handler(event, context):
    stdlib = os.path.dirname(os.__file__)
    out = {
        "version": list(sys.version_info[:2]),
        "stdlib": stdlib,
        "stdlib_visible": os.path.isdir(stdlib),
    }
    # modules the zygote did not load come from the interpreter's own library; boto3 is
    # importable without packaging it, as on Lambda
    for name in ("csv", "fractions", "sqlite3", "boto3"):
        try:
            importlib.import_module(name)
            out[name] = "ok"
        except Exception as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    try:  # loads botocore's data files (no request is made)
        sys.modules["boto3"].client("sts", region_name="us-east-1")
        out["boto3.client"] = "ok"
    except Exception as exc:
        out["boto3.client"] = f"{type(exc).__name__}: {exc}"
    return out
"""


@pytest.mark.parametrize("runtime", PYTHON_RUNTIMES)
def test_python_runtime_runs_on_its_own_interpreter(
    sandboxes: Harness, tmp_path: Path, runtime: str
) -> None:
    interpreter = interpreter_for(runtime)
    if not interpreter.exact:
        pytest.skip(f"no {runtime} on this host's PATH (it would fall back to {HOST_RUNTIME})")
    result = sandboxes.call(function(tmp_path, VERSION, runtime=runtime, timeout_s=10))
    assert result.error_type is None, (result.payload, result.logs)
    got = document(result)
    assert "python{}.{}".format(*got["version"]) == runtime  # the real interpreter runs it
    modules = {name: got[name] for name in ("csv", "fractions", "sqlite3", "boto3", "boto3.client")}
    if runtime == HOST_RUNTIME:
        assert modules == dict.fromkeys(modules, "ok")
        return
    # known gaps for interpreters other than squall's own: xfail, saying which
    problems = []
    if not got["stdlib_visible"]:
        # then only what the zygote imported before forking works
        problems.append(
            f"{got['stdlib']} is not bound into the sandbox: SandboxManager.start() computes "
            "root_binds() for sys.executable only, and _zygote() adds just the runtime-site "
            f"links for {interpreter.executable}"
        )
    else:
        assert all(modules[name] == "ok" for name in ("csv", "fractions", "sqlite3")), modules
        if modules["boto3"] != "ok":
            problems.append(
                "boto3 does not import on this interpreter from the host's runtime packages "
                f"(rootfs.runtime_site links squall's own): {modules['boto3']}"
            )
        elif modules["boto3.client"] != "ok":
            problems.append(
                "botocore finds no data files: the runtime-site links live under the "
                "manager's run dir, hidden by the sandbox's own /tmp when that dir is under "
                f"/tmp: {modules['boto3.client']}"
            )
    if problems:
        pytest.xfail("; ".join(problems))
    assert modules == dict.fromkeys(modules, "ok")


# --------------------------------------------------------------------------- the pool


@pytest.fixture
def pool(sandboxes: Harness) -> Iterator[SandboxPool]:
    pool = SandboxPool(sandboxes.manager, keep_alive_s=600)
    yield pool
    sandboxes.run(pool.stop())


def test_pool_reuses_the_warm_sandbox(sandboxes: Harness, pool: SandboxPool, tmp_path: Path):
    spec = function(tmp_path, PING)
    first, cold = sandboxes.run(pool.acquire(spec))
    assert cold
    assert pool.counts(spec.key) == PoolCounts(idle=0, busy=1)
    assert document(sandboxes.invoke(first, {"ping": True})) == {"pong": True}
    sandboxes.run(pool.release(first))
    assert pool.counts(spec.key) == PoolCounts(idle=1, busy=0)
    second, cold = sandboxes.run(pool.acquire(spec))
    assert not cold
    assert second is first
    assert second.pid == first.pid
    sandboxes.run(pool.release(second))


def test_pool_concurrent_acquires_get_two_sandboxes(
    sandboxes: Harness, pool: SandboxPool, tmp_path: Path
) -> None:
    spec = function(tmp_path, PING)

    async def both() -> list[Any]:
        return list(await asyncio.gather(pool.acquire(spec), pool.acquire(spec)))

    (one, cold_one), (two, cold_two) = sandboxes.run(both())
    assert cold_one and cold_two
    assert one is not two and one.pid != two.pid
    assert pool.counts(spec.key) == PoolCounts(idle=0, busy=2)
    for sandbox in (one, two):
        sandboxes.run(pool.release(sandbox))
    assert pool.counts(spec.key) == PoolCounts(idle=2, busy=0)


def test_pool_destroys_a_dead_sandbox_on_release(
    sandboxes: Harness, pool: SandboxPool, tmp_path: Path
) -> None:
    spec = function(tmp_path, SLEEPER, timeout_s=0.3)
    sandbox, _ = sandboxes.run(pool.acquire(spec))
    assert sandboxes.invoke(sandbox, {"sleep": 2}).error_type == "Sandbox.Timedout"
    sandboxes.run(pool.release(sandbox))
    assert pool.counts(spec.key) == PoolCounts(idle=0, busy=0)
    fresh, cold = sandboxes.run(pool.acquire(spec))
    assert cold and fresh is not sandbox
    sandboxes.run(pool.release(fresh))


def test_pool_keep_alive_reaps_idle_sandboxes(
    sandboxes: Harness, pool: SandboxPool, tmp_path: Path
) -> None:
    pool.keep_alive_s = 0.2
    spec = function(tmp_path, PING)
    sandbox, _ = sandboxes.run(pool.acquire(spec))
    sandboxes.run(pool.release(sandbox))
    assert sandboxes.run(pool.reap()) == 0  # still fresh
    time.sleep(0.3)
    assert sandboxes.run(pool.reap()) == 1
    assert sandbox.dead
    assert pool.counts(spec.key) == PoolCounts(idle=0, busy=0)
    assert sandbox not in sandboxes.manager.sandboxes
    if sandbox.cgroup is not None:
        assert not sandbox.cgroup.exists()


def test_pool_drain_destroys_one_versions_idle_sandboxes(
    sandboxes: Harness, pool: SandboxPool, tmp_path: Path
) -> None:
    old = function(tmp_path, PING, version="1")
    other = function(tmp_path, PING, version="2")
    drained, _ = sandboxes.run(pool.acquire(old))
    kept, _ = sandboxes.run(pool.acquire(other))
    busy, _ = sandboxes.run(pool.acquire(old))
    sandboxes.run(pool.release(drained))
    sandboxes.run(pool.release(kept))
    sandboxes.run(pool.drain(old.key))
    assert drained.dead
    assert not kept.dead and not busy.dead  # another version's, and one in use
    assert pool.counts(old.key) == PoolCounts(idle=0, busy=1)
    assert pool.counts(other.key) == PoolCounts(idle=1, busy=0)
    sandboxes.run(pool.release(busy))


def test_pool_memory_budget_evicts_least_recently_used(isolated: Harness, tmp_path: Path) -> None:
    pool = SandboxPool(isolated.manager, keep_alive_s=600)
    try:
        older = function(tmp_path, ALLOCATE, memory_mb=256)
        newer = function(tmp_path, ALLOCATE, memory_mb=256)
        first, _ = isolated.run(pool.acquire(older))
        second, _ = isolated.run(pool.acquire(newer))
        for sandbox in (first, second):
            assert isolated.invoke(sandbox, {"mb": 16}).error_type is None
        isolated.run(pool.release(first))
        time.sleep(0.01)
        isolated.run(pool.release(second))
        held_first, held_second = first.memory_bytes(), second.memory_bytes()
        assert held_first > 16 * MIB and held_second > 16 * MIB
        assert sandboxes_reaped(isolated, pool) == 0  # no budget: nothing goes
        # room for the newer one and half the older: the older (least recently used) goes
        pool.memory_budget_bytes = held_second + held_first // 2
        assert sandboxes_reaped(isolated, pool) == 1
        assert first.dead and not second.dead
        assert pool.counts(older.key) == PoolCounts(idle=0, busy=0)
        assert pool.counts(newer.key) == PoolCounts(idle=1, busy=0)
    finally:
        isolated.run(pool.stop())


def sandboxes_reaped(harness: Harness, pool: SandboxPool) -> int:
    return harness.run(pool.reap())


def test_no_sandbox_outlives_its_test(sandboxes: Harness) -> None:
    """Every test above destroyed what it made (the pool fixtures drained theirs)."""
    assert sandboxes.manager.sandboxes == []


# --------------------------------------------------------------------------- standbys

STANDBY_PROBE = """
import os

def handler(event, context):
    return {"pid": os.getpid(), "tmp": sorted(os.listdir("/tmp"))}
"""


def _standbys(harness: Harness, spec: FunctionSpec) -> list[Any]:
    async def waiting() -> list[Any]:
        key = zygote_key(spec.runtime)
        for _ in range(200):  # refills run in the background
            ready = list(harness.manager._standbys.get(key, []))
            if ready:
                return ready
            await asyncio.sleep(0.01)
        return []

    return harness.loop.run(waiting())


def test_cold_starts_take_a_standby_already_in_its_cgroup(
    isolated: Harness, tmp_path: Path
) -> None:
    spec = function(tmp_path, STANDBY_PROBE, memory_mb=256)
    isolated.call(spec)  # the runtime's zygote exists and keeps a standby
    waiting = _standbys(isolated, spec)
    assert waiting, "no standby was cloned ahead of need"
    standby = waiting[0]
    sandbox = isolated.create(spec)
    try:
        assert sandbox.pid == standby.pid  # the standby became this sandbox
        assert sandbox.cgroup is standby.cgroup
        limit = Path(sandbox.cgroup.dirs[0]) / "memory.limit_in_bytes"
        if limit.exists():  # the function's MemorySize replaced the standby's
            assert int(limit.read_text()) == 256 * 1024 * 1024
        result = isolated.invoke(sandbox, {})
        assert result.error_type is None, result.payload
        assert document(result)["tmp"] == sorted(
            {
                Path(bind["source"]).relative_to("/tmp").parts[0]
                for bind in isolated.manager.root_binds()
                if bind["source"].startswith("/tmp/")
            }
        )
    finally:
        isolated.destroy(sandbox)
    assert _standbys(isolated, spec), "the standby taken was not replaced"


INIT_PROBE = """
import os

def handler(event, context):
    fields = {}
    with open("/proc/1/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("Uid", "Gid", "Seccomp", "NoNewPrivs", "CapEff"):
                fields[name] = value.strip()
    return {"pid": os.getpid(), "init": fields}
"""


def test_the_init_of_a_standby_is_confined_like_the_runtime(
    isolated: Harness, tmp_path: Path
) -> None:
    """A standby forks its init (pid 1) ahead of need; the init then runs with the
    runtime's uid, no capabilities and the seccomp filter, as one split later would."""
    spec = function(tmp_path, INIT_PROBE)
    isolated.call(spec)  # the runtime's zygote exists and keeps a standby
    standby = _standbys(isolated, spec)[0]
    sandbox = isolated.create(spec)
    try:
        assert sandbox.pid == standby.pid
        result = isolated.invoke(sandbox, {})
        assert result.error_type is None, result.payload
        seen = document(result)
        assert seen["pid"] == 2
        assert seen["init"] == {
            "Uid": "993\t993\t993\t993",
            "Gid": "990\t990\t990\t990",
            "CapEff": "0000000000000000",
            "NoNewPrivs": "1",
            "Seccomp": "2",
        }
    finally:
        isolated.destroy(sandbox)


def test_a_standby_that_dies_is_replaced(isolated: Harness, tmp_path: Path) -> None:
    spec = function(tmp_path, STANDBY_PROBE)
    isolated.call(spec)
    standby = _standbys(isolated, spec)[0]
    os.kill(standby.pid, signal.SIGKILL)

    async def replaced() -> bool:
        for _ in range(300):
            if standby.pid not in isolated.manager._standby_pids:
                return True
            await asyncio.sleep(0.01)
        return False

    assert isolated.loop.run(replaced())
    alive(isolated, function(tmp_path, PING))  # cold starts still work


CHATTY = """
def handler(event, context):
    for n in range(event["lines"]):
        print(n)
    return {"done": True}
"""


def test_log_lines_per_invocation_are_bounded(sandboxes: Harness, tmp_path: Path) -> None:
    from squall.sandbox.sandbox import MAX_LOG_LINES

    result = sandboxes.call(function(tmp_path, CHATTY), {"lines": MAX_LOG_LINES + 500})
    assert result.error_type is None, result.payload
    assert len(result.logs) == MAX_LOG_LINES + 1
    assert result.logs[0] == "0"
    assert result.logs[-1] == "[squall] 500 more log lines were dropped"
