"""The Lambda Runtime API (2018-06-01) for custom runtimes (provided.al2023, provided.al2).

Runs inside sandboxes on whatever Python the sandbox has (3.9+): stdlib only, no newer syntax at
runtime.

`serve_runtime_api(config, sock)` serves the Runtime API over HTTP on host:port, starts the
function's bootstrap as a child process with AWS_LAMBDA_RUNTIME_API pointing at it (stdout and
stderr are the sandbox's), and bridges it to the host over `sock` (see `wire`):

- the first `GET /runtime/invocation/next` ends init: READY {initDurationMs} goes to the host;
  each `next` then waits for an INVOKE frame and hands it over with Lambda's headers.
- `POST /runtime/invocation/{id}/response` -> RESULT, `.../error` -> ERROR (the body as sent;
  the type from the Lambda-Runtime-Function-Error-Type header, else the body's errorType, else
  "Unhandled"), `POST /runtime/init/error` -> INIT_ERROR and the sandbox is done.
- answers as Lambda's Runtime API does: 202 {"status":"OK"}; 400 InvalidRequestID
  ("Invalid request ID") for an id that is not the invocation in progress; 403
  InvalidStateTransition for a call the runtime's state does not allow (a second response for
  one invocation, a response before `next`, init/error after init).
- the bootstrap exiting: before READY -> INIT_ERROR Runtime.ExitError; with invocations in
  progress or queued -> ERROR Runtime.ExitError for each; then `serve_runtime_api` returns (the
  host sees the socket's end). No bootstrap to run -> INIT_ERROR Runtime.InvalidEntrypoint.
- SHUTDOWN or the socket's end -> SIGTERM to the bootstrap's process group, SIGKILL after
  `shutdown_grace_s`, return.

Error documents for failures of the runtime itself are `{"errorType", "errorMessage"}` with
Lambda's messages ("RequestId: <id> Error: Runtime exited with error: exit status 1"); when no
invocation is known (init), the "RequestId: <id> Error: " prefix is left out.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from squall.sandbox.guest import wire
from squall.sandbox.guest.config import GuestConfig, load_process_args, option
from squall.sandbox.guest.wire import exit_description

API_PREFIX = "/2018-06-01/runtime"
DEFAULT_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
DEFAULT_LANG = "en_US.UTF-8"
DEFAULT_TZ = ":UTC"
# Lambda gives a runtime without extensions 300 ms between SIGTERM and SIGKILL at shutdown.
SHUTDOWN_GRACE_S = 0.3

# Runtime states, named as Lambda's Runtime API names them in its errors.
STARTED = "Started"
READY = "Ready"
RUNNING = "Running"
RESPONSE_SENT = "RuntimeResponseSentState"
INIT_ERROR = "InitError"

# Go's names of signals, which Lambda's "Runtime exited with error: signal: ..." uses.


def _with_request_id(request_id: str | None, message: str) -> str:
    return f"RequestId: {request_id} Error: {message}" if request_id else message


def _runtime_error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class _Bridge:
    """The state shared by the HTTP handlers, the host reader and the bootstrap's watcher."""

    def __init__(self, config: GuestConfig, sock: socket.socket, started: float):
        self.config = config
        self.sock = sock
        self.started = started
        self.cond = threading.Condition()
        self.send_lock = threading.Lock()
        self.state = STARTED
        self.pending: collections.deque[tuple[dict[str, Any], bytes]] = collections.deque()
        self.current: str | None = None  # the invocation handed out, awaiting its response
        self.finish: str | None = None  # "shutdown", "exit" or "init_error"
        self.init_reported = False  # READY or INIT_ERROR sent

    def send(self, kind: int, meta: dict[str, Any] | None = None, payload: bytes = b"") -> None:
        with self.send_lock:
            try:
                wire.send(self.sock, kind, meta, payload)
            except OSError:
                self.end("shutdown")

    def end(self, reason: str) -> None:
        with self.cond:
            if self.finish is None:
                self.finish = reason
            self.cond.notify_all()

    def read_host(self) -> None:
        while True:
            try:
                kind, meta, payload = wire.recv(self.sock)
            except (wire.WireError, OSError, ValueError):
                self.end("shutdown")
                return
            if kind == wire.SHUTDOWN:
                self.end("shutdown")
                return
            if kind == wire.INVOKE:
                with self.cond:
                    self.pending.append((meta, payload))
                    self.cond.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    bridge: _Bridge


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:
        """Silent: the sandbox's stderr is the function's log."""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing ---------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]] | tuple[()] = (),
        content_type: str = "application/json",
    ) -> None:
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Date: " + self.date_time_string(),
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self.wfile.write(head + body)

    def _error(self, status: int, error_type: str, message: str) -> None:
        body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
        self._reply(status, body)

    def _state_error(self, current: str, target: str) -> None:
        self._error(
            403,
            "InvalidStateTransition",
            f"State transition from {current} to {target} failed for runtime. "
            "Error: State transition is not allowed",
        )

    def _not_found(self) -> None:
        self._reply(404, b"404 page not found\n", content_type="text/plain; charset=utf-8")

    # -- routes -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == API_PREFIX + "/invocation/next":
            self._next()
        else:
            self._not_found()

    def do_POST(self) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0]
        if path == API_PREFIX + "/init/error":
            self._init_error(body)
            return
        prefix = API_PREFIX + "/invocation/"
        if path.startswith(prefix):
            request_id, _, action = path[len(prefix) :].partition("/")
            if request_id and action == "response":
                self._response(request_id, body)
                return
            if request_id and action == "error":
                self._invocation_error(request_id, body)
                return
        self._not_found()

    def _next(self) -> None:
        bridge = self.server.bridge
        with bridge.cond:
            if bridge.finish is not None:
                self.close_connection = True
                return
            if bridge.state == STARTED:
                bridge.state = READY
                bridge.init_reported = True
                init_ms = (time.perf_counter() - bridge.started) * 1000.0
                bridge.send(wire.READY, {"initDurationMs": round(init_ms, 3)})
            if bridge.state != RUNNING:
                bridge.state = READY
            # as on Lambda, `next` while an invocation awaits its response is no error: it waits
            # (here until that invocation is answered, then for the next one)
            while (not bridge.pending or bridge.state == RUNNING) and bridge.finish is None:
                bridge.cond.wait()
            if bridge.finish is not None:
                self.close_connection = True
                return
            meta, payload = bridge.pending.popleft()
            request_id = str(meta.get("requestId") or "")
            bridge.current = request_id
            bridge.state = RUNNING
        deadline = meta.get("deadlineMs") or int(
            time.time() * 1000 + bridge.config.timeout_s * 1000
        )
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(int(deadline))),
            (
                "Lambda-Runtime-Invoked-Function-Arn",
                meta.get("invokedFunctionArn") or bridge.config.function_arn,
            ),
        ]
        for key, header in (
            ("traceId", "Lambda-Runtime-Trace-Id"),
            ("clientContext", "Lambda-Runtime-Client-Context"),
            ("identity", "Lambda-Runtime-Cognito-Identity"),
            ("tenantId", "Lambda-Runtime-Aws-Tenant-Id"),
        ):
            value = meta.get(key)
            if value:
                headers.append((header, _header_value(value)))
        self._reply(200, payload or b"{}", headers)

    def _response(self, request_id: str, body: bytes) -> None:
        bridge = self.server.bridge
        with bridge.cond:
            if bridge.state != RUNNING:
                self._state_error(bridge.state, "InvocationResponse")
                return
            if request_id != bridge.current:
                self._error(400, "InvalidRequestID", "Invalid request ID")
                return
            bridge.send(wire.RESULT, {"requestId": request_id}, body)
            bridge.current = None
            bridge.state = RESPONSE_SENT
            bridge.cond.notify_all()
        self._reply(202, b'{"status":"OK"}')

    def _invocation_error(self, request_id: str, body: bytes) -> None:
        bridge = self.server.bridge
        with bridge.cond:
            if bridge.state != RUNNING:
                self._state_error(bridge.state, "InvocationErrorResponse")
                return
            if request_id != bridge.current:
                self._error(400, "InvalidRequestID", "Invalid request ID")
                return
            error_type = _error_type(self.headers.get("Lambda-Runtime-Function-Error-Type"), body)
            bridge.send(wire.ERROR, {"requestId": request_id, "errorType": error_type}, body)
            bridge.current = None
            bridge.state = RESPONSE_SENT
            bridge.cond.notify_all()
        self._reply(202, b'{"status":"OK"}')

    def _init_error(self, body: bytes) -> None:
        bridge = self.server.bridge
        with bridge.cond:
            if bridge.state != STARTED or bridge.init_reported:
                self._state_error(bridge.state, INIT_ERROR)
                return
            error_type = _error_type(self.headers.get("Lambda-Runtime-Function-Error-Type"), body)
            document = _json_object(body)
            meta: dict[str, Any] = {
                "errorType": error_type,
                "errorMessage": str(document.get("errorMessage") or ""),
            }
            if isinstance(document.get("stackTrace"), list):
                meta["stackTrace"] = document["stackTrace"]
            bridge.state = INIT_ERROR
            bridge.init_reported = True
            bridge.send(wire.INIT_ERROR, meta, body)
        self._reply(202, b'{"status":"OK"}')
        bridge.end("init_error")


def _header_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("\r", " ").replace("\n", " ")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _error_type(header: str | None, body: bytes) -> str:
    if header:
        return header
    error_type = _json_object(body).get("errorType")
    return error_type if isinstance(error_type, str) and error_type else "Unhandled"


def _find_bootstrap(config: GuestConfig) -> list[str] | None:
    for path in (
        os.path.join(config.task_root, "bootstrap"),
        os.path.join(config.opt_root, "bootstrap"),
    ):
        if os.path.isfile(path):
            return [path]
    return None


def _terminate(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the bootstrap's process group, SIGKILL after the grace period."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    _signal_group(process, signal.SIGKILL)  # and whatever it left running
    process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)


def serve_runtime_api(
    config: GuestConfig,
    sock: socket.socket,
    bootstrap: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 9001,
    *,
    shutdown_grace_s: float = SHUTDOWN_GRACE_S,
) -> None:
    """Run the custom runtime's bootstrap against a Runtime API bridged to the host over sock
    (port 0 picks a free port; AWS_LAMBDA_RUNTIME_API names the one bound)."""
    started = time.perf_counter()
    bridge = _Bridge(config, sock, started)

    command = bootstrap or _find_bootstrap(config)
    if not command:
        candidates = " ".join(
            os.path.join(root, "bootstrap") for root in (config.task_root, config.opt_root)
        )
        message = f"Couldn't find valid bootstrap(s): [{candidates}]"
        bridge.send(
            wire.INIT_ERROR,
            {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": message},
            _runtime_error("Runtime.InvalidEntrypoint", message),
        )
        return

    server = _Server((host, port), _Handler)
    server.bridge = bridge
    bound_host, bound_port = server.server_address[:2]
    server_thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    server_thread.start()

    environment = dict(config.environment)
    environment.setdefault("PATH", DEFAULT_PATH)
    environment.setdefault("LANG", DEFAULT_LANG)
    environment.setdefault("TZ", DEFAULT_TZ)
    environment["AWS_LAMBDA_RUNTIME_API"] = f"{bound_host}:{bound_port}"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        process = subprocess.Popen(
            command,
            env=environment,
            cwd=config.task_root,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        message = f"fork/exec {command[0]}: {reason}"
        bridge.send(
            wire.INIT_ERROR,
            {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": message},
            _runtime_error("Runtime.InvalidEntrypoint", message),
        )
        server.shutdown()
        server.server_close()
        return

    returncode: list[int] = []

    def watch_bootstrap() -> None:
        returncode.append(process.wait())
        bridge.end("exit")

    threading.Thread(target=watch_bootstrap, daemon=True).start()
    threading.Thread(target=bridge.read_host, daemon=True).start()

    try:
        with bridge.cond:
            while bridge.finish is None:
                bridge.cond.wait()
            reason = bridge.finish
        if reason == "exit":
            _report_exit(bridge, returncode[0])
    finally:
        server.shutdown()
        server.server_close()
        _terminate(process, shutdown_grace_s)


def _report_exit(bridge: _Bridge, returncode: int) -> None:
    """The bootstrap ended on its own: fail whatever was waiting for it."""
    description = exit_description(returncode)
    with bridge.cond:
        waiting = [bridge.current] if bridge.current is not None else []
        waiting += [str(meta.get("requestId") or "") for meta, _ in bridge.pending]
        bridge.pending.clear()
        bridge.current = None
        init_reported = bridge.init_reported
        bridge.init_reported = True
    if not init_reported:
        message = _with_request_id(waiting[0] if waiting else None, description)
        bridge.send(
            wire.INIT_ERROR,
            {"errorType": "Runtime.ExitError", "errorMessage": message},
            _runtime_error("Runtime.ExitError", message),
        )
        return
    for request_id in waiting:
        message = _with_request_id(request_id, description)
        bridge.send(
            wire.ERROR,
            {"requestId": request_id, "errorType": "Runtime.ExitError"},
            _runtime_error("Runtime.ExitError", message),
        )


def main(argv: list[str] | None = None) -> None:
    """`python -m squall.sandbox.guest.runtime_api [--config JSON|@PATH] [--fd N]
    [--host H] [--port P] [--bootstrap JSON-LIST]`."""
    args = sys.argv[1:] if argv is None else argv
    config, sock = load_process_args(args)
    bootstrap_text = option(args, "bootstrap")
    bootstrap = json.loads(bootstrap_text) if bootstrap_text else None
    try:
        serve_runtime_api(
            config,
            sock,
            bootstrap=bootstrap,
            host=option(args, "host") or "127.0.0.1",
            port=int(option(args, "port") or 9001),
        )
    finally:
        sock.close()


if __name__ == "__main__":
    main()
