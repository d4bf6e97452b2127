"""A host-side driver for the guest runtimes, as real processes (no isolation).

`GuestProcess` starts `python -m squall.sandbox.guest.<module>` with one end of a socketpair
passed as an inherited fd and stdout+stderr on one pipe (as in a sandbox), and speaks the wire
protocol to it. Log lines are read from the pipe by the caller's thread only (no reader thread):
whatever a reply finds in the pipe was written before the reply was sent.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import squall
from squall.sandbox.guest import wire

SOURCE_ROOT = str(Path(squall.__file__).resolve().parent.parent)
PYTHON_RUNTIME = "squall.sandbox.guest.python_runtime"
RUNTIME_API = "squall.sandbox.guest.runtime_api"

# `[LEVEL]\t2024-01-01T00:00:00.000Z\t<request id>\t<message>`
LOG_LINE = re.compile(
    r"^\[(?P<level>[A-Z]+)\]\t(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\t"
    r"(?P<request_id>[^\t]*)\t(?P<message>.*)$"
)


def function_config(
    task_root: Path | str,
    handler: str = "app.handler",
    *,
    function_name: str = "fn",
    runtime: str = "python3.11",
    memory_mb: int = 256,
    timeout_s: float = 3.0,
    variables: dict[str, str] | None = None,
    opt_root: Path | str | None = None,
) -> dict[str, Any]:
    """A guest config such as the host computes it, for a function whose code is in task_root."""
    region = "us-east-1"
    arn = f"arn:aws:lambda:{region}:000000000000:function:{function_name}"
    log_group = f"/aws/lambda/{function_name}"
    log_stream = "2024/01/01/[$LATEST]" + uuid.uuid4().hex
    environment = {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": handler,
        "TZ": ":UTC",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
    }
    environment.update(variables or {})
    config: dict[str, Any] = {
        "sandbox_id": "sbx-" + uuid.uuid4().hex[:12],
        "function_name": function_name,
        "function_version": "$LATEST",
        "function_arn": arn,
        "handler": handler,
        "runtime": runtime,
        "memory_mb": memory_mb,
        "timeout_s": timeout_s,
        "environment": environment,
        "task_root": str(task_root),
        "log_group": log_group,
        "log_stream": log_stream,
        "isolation": {},
    }
    if opt_root is not None:
        config["opt_root"] = str(opt_root)
    return config


def write_files(root: Path, files: dict[str, str], executable: tuple[str, ...] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name in executable:
            path.chmod(0o755)
    return root


@dataclass
class Reply:
    kind: int
    meta: dict[str, Any]
    payload: bytes

    @property
    def name(self) -> str:
        return wire.KIND_NAMES.get(self.kind, str(self.kind))

    def json(self) -> Any:
        return json.loads(self.payload)


class GuestProcess:
    def __init__(
        self,
        module: str,
        config: dict[str, Any],
        args: list[str] | tuple[str, ...] = (),
        timeout: float = 10.0,
        python: str | None = None,
    ):
        """`python` runs the guest on another interpreter, with squall's source on its path."""
        self.timeout = timeout
        self.config = config
        host_end, guest_end = socket.socketpair()
        read_fd, write_fd = os.pipe()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SQUALL_GUEST_CONFIG": json.dumps(config),
            "SQUALL_GUEST_FD": str(guest_end.fileno()),
        }
        if python is not None:
            env["PYTHONPATH"] = SOURCE_ROOT
        try:
            self.process = subprocess.Popen(
                [python or sys.executable, "-m", module, *args],
                env=env,
                pass_fds=(guest_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
            )
        finally:
            guest_end.close()
            os.close(write_fd)
        self.sock = host_end
        self.sock.settimeout(timeout)
        self._log_fd = read_fd
        os.set_blocking(read_fd, False)
        self._log_buffer = b""
        self._log_raw = bytearray()
        self._log_lines: list[str] = []
        self._log_eof = False

    # -- frames -----------------------------------------------------------------------------------

    def send(self, kind: int, meta: dict[str, Any] | None = None, payload: bytes = b"") -> None:
        wire.send(self.sock, kind, meta, payload)

    def recv(self, timeout: float | None = None) -> Reply:
        """The next frame from the guest, draining the log pipe while waiting."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no frame from the guest; logs so far: {self.logs()}")
            watched = [self.sock] + ([] if self._log_eof else [self._log_fd])
            readable, _, _ = select.select(watched, [], [], remaining)
            if self._log_fd in readable:
                self._read_logs()
            if self.sock in readable:
                kind, meta, payload = wire.recv(self.sock)
                return Reply(kind, meta, payload)

    def wait_ready(self) -> Reply:
        return self.recv()

    def send_invoke(
        self,
        event: Any = None,
        *,
        payload: bytes | None = None,
        request_id: str | None = None,
        deadline_ms: int | None = None,
        timeout_s: float = 3.0,
        invoked_function_arn: str | None = None,
        client_context: Any = None,
        identity: Any = None,
        trace_id: str | None = None,
    ) -> str:
        request_id = request_id or str(uuid.uuid4())
        meta: dict[str, Any] = {
            "requestId": request_id,
            "deadlineMs": deadline_ms or int(time.time() * 1000 + timeout_s * 1000),
            "invokedFunctionArn": invoked_function_arn or self.config["function_arn"],
            "clientContext": client_context,
            "identity": identity,
        }
        if trace_id:
            meta["traceId"] = trace_id
        if payload is None:
            payload = json.dumps({} if event is None else event).encode()
        self.send(wire.INVOKE, meta, payload)
        return request_id

    def invoke(self, event: Any = None, **kwargs: Any) -> Reply:
        self.send_invoke(event, **kwargs)
        return self.recv()

    def shutdown(self, timeout: float | None = None) -> int:
        self.send(wire.SHUTDOWN)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float | None = None) -> int:
        code = self.process.wait(self.timeout if timeout is None else timeout)
        self._read_logs(until_eof=True)
        return code

    # -- logs -------------------------------------------------------------------------------------

    def _read_logs(self, until_eof: bool = False, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._log_eof:
            try:
                chunk = os.read(self._log_fd, 65536)
            except BlockingIOError:
                if not until_eof or time.monotonic() > deadline:
                    return
                select.select([self._log_fd], [], [], max(0.0, deadline - time.monotonic()))
                continue
            if not chunk:
                self._log_eof = True
                break
            self._log_raw += chunk
            self._log_buffer += chunk
            *lines, self._log_buffer = self._log_buffer.split(b"\n")
            self._log_lines.extend(line.decode("utf-8", "replace") for line in lines)
        if self._log_eof and self._log_buffer:
            self._log_lines.append(self._log_buffer.decode("utf-8", "replace"))
            self._log_buffer = b""

    def logs(self) -> list[str]:
        """The complete log lines written so far (what is already in the pipe)."""
        self._read_logs()
        return list(self._log_lines)

    def raw_logs(self) -> str:
        """Everything read from the log pipe so far, an unterminated last line included."""
        self._read_logs()
        return self._log_raw.decode("utf-8", "replace")

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.logs():
                if regex.search(line):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._log_eof:
                raise AssertionError(f"no log line matches {pattern!r}: {self._log_lines}")
            select.select([self._log_fd], [], [], min(remaining, 0.1))

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Ask the guest to stop (so that a runtime API guest stops its bootstrap), then kill."""
        if self.process.poll() is None:
            try:
                self.send(wire.SHUTDOWN)
                self.process.wait(2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.sock.close()
        if self._log_fd >= 0:
            os.close(self._log_fd)
            self._log_fd = -1
            self._log_eof = True

    def __enter__(self) -> GuestProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def find_interpreters(minors: range = range(9, 14)) -> dict[str, str]:
    """The Python 3.9-3.13 interpreters on this machine ("3.9" -> path), for running the guest on
    each: on PATH as python3.X, or installed by pyenv."""
    found: dict[str, str] = {}
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for minor in minors:
        version = f"3.{minor}"
        candidates = [shutil.which(f"python{version}") or ""]
        candidates += sorted(
            (str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}")),
            reverse=True,
        )
        for candidate in candidates:
            if candidate and _reports_version(candidate, version):
                found[version] = candidate
                break
    return found


def _reports_version(python: str, version: str) -> bool:
    try:
        result = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == version


def round_trips(guest: GuestProcess, count: int = 1000, payload: bytes = b"{}") -> list[float]:
    """Seconds from sending INVOKE to having its reply, for `count` invocations in a row (the
    host side kept minimal: one prebuilt frame, one recv)."""
    samples = []
    deadline_ms = int(time.time() * 1000) + 600_000
    for number in range(count):
        frame = wire.encode(
            wire.INVOKE,
            {
                "requestId": f"bench-{number}",
                "deadlineMs": deadline_ms,
                "invokedFunctionArn": guest.config["function_arn"],
            },
            payload,
        )
        began = time.perf_counter()
        guest.sock.sendall(frame)
        kind, _, _ = wire.recv(guest.sock)
        samples.append(time.perf_counter() - began)
        if kind != wire.RESULT:
            raise AssertionError(f"invocation {number} answered {wire.KIND_NAMES.get(kind)}")
    return samples
