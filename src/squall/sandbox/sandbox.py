"""One running sandbox, seen from the host: its socket, its log pipe, its cgroup, its process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from .cgroups import Cgroup
from .guest import wire
from .results import InvokeResult, SandboxInitError
from .spec import FunctionSpec

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MAX_LOG_LINES = 10_000  # per invocation (and while idle); the rest are counted, not kept


class SandboxDied(Exception):
    pass


class Sandbox:
    """A forked, isolated process serving one function version, one invocation at a time."""

    def __init__(
        self,
        sandbox_id: str,
        *,
        spec: FunctionSpec,
        pid: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        log_fd: int,
        cgroup: Cgroup | None,
        log_stream: str,
        on_destroyed: Callable[[Sandbox], None],
    ) -> None:
        self.id = sandbox_id
        self.spec = spec
        self.pid = pid
        self.cgroup = cgroup
        self.log_stream = log_stream
        self.created = time.monotonic()
        self.last_used = self.created
        self.init_duration_ms: float | None = None
        self.invocations = 0
        self.busy = False
        self.dead = False
        self.exit_status: int | None = None
        self._reader = reader
        self._writer = writer
        self._log_fd = log_fd
        self._partial = b""
        self._logs: list[str] = []
        self._early: list[str] = []
        self._dropped = 0
        self._exited = asyncio.Event()
        self._on_destroyed = on_destroyed
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)
        os.set_blocking(log_fd, False)
        asyncio.get_running_loop().add_reader(log_fd, self._read_logs)

    # ------------------------------------------------------------------ start-up

    async def wait_ready(self, timeout: float) -> None:
        """Wait for the function's init; raises SandboxInitError when it fails."""
        try:
            kind, meta, payload = await asyncio.wait_for(self._recv(), timeout)
        except TimeoutError:
            await self.destroy()
            raise SandboxInitError(
                "Sandbox.Timedout",
                f"Init timed out after {timeout:.2f} seconds",
                logs=self.take_logs(),
            ) from None
        except SandboxDied:
            status = await self._exit_status()
            error_type = _exit_error_type(self, status)  # before destroy() removes the cgroup
            await self.destroy()
            raise SandboxInitError(
                error_type,
                exit_message(status),
                logs=self.take_logs(),
            ) from None
        if kind == wire.READY:
            self.init_duration_ms = float(meta.get("initDurationMs", 0.0))
            return
        await self.destroy()
        if kind == wire.INIT_ERROR:
            raise SandboxInitError(
                meta.get("errorType", "Runtime.Unknown"),
                meta.get("errorMessage", ""),
                payload,
                logs=self.take_logs(),
            )
        raise SandboxInitError("Runtime.Unknown", f"unexpected frame {kind} during init")

    # ------------------------------------------------------------------ invocations

    async def invoke(
        self,
        request_id: str,
        payload: bytes,
        *,
        client_context: str | None = None,
        identity: str | None = None,
        trace_id: str | None = None,
        invoked_arn: str | None = None,
    ) -> InvokeResult:
        """Run one invocation. Function errors, timeouts and crashes come back as results."""
        if self.dead:
            raise SandboxDied(self.id)
        self.busy = True
        # what the function printed before this invocation (at init, or after the last one)
        self._early = self.take_logs()
        timeout = self.spec.timeout_s
        meta: dict[str, Any] = {
            "requestId": request_id,
            "deadlineMs": int((time.time() + timeout) * 1000),
            "invokedFunctionArn": invoked_arn or self.spec.arn,
        }
        if client_context:
            meta["clientContext"] = client_context
        if identity:
            meta["identity"] = identity
        if trace_id:
            meta["traceId"] = trace_id
        began = time.perf_counter()
        try:
            self._writer.write(wire.encode(wire.INVOKE, meta, payload))
            # asyncio.timeout runs the exchange in this task (wait_for would wrap it in another)
            async with asyncio.timeout(timeout):
                kind, reply, body = await self._exchange(len(payload))
            if reply.get("requestId", request_id) != request_id:
                raise SandboxDied(f"{self.id}: answer for another request")
        except TimeoutError:
            peak_mb = self.max_memory_mb()  # read before kill() removes the cgroup
            await self.kill()
            return self._failed(
                request_id,
                began,
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
                peak_mb,
            )
        except (SandboxDied, ConnectionError):
            status = await self._exit_status()
            # the OOM count and the peak are the cgroup's: read them before kill() removes it
            error_type = _exit_error_type(self, status)
            peak_mb = self.max_memory_mb()
            await self.kill()
            return self._failed(
                request_id,
                began,
                error_type,
                f"RequestId: {request_id} Error: {exit_message(status)}",
                peak_mb,
            )
        except asyncio.CancelledError:
            # the reply (if any) is still on its way: the sandbox can never serve again, or the
            # next invocation would read this one's answer. The pool destroys it on release.
            self.dead = True
            self._signal_kill()
            raise
        finally:
            self.busy = False
        self.invocations += 1
        self.last_used = time.monotonic()
        result = InvokeResult(
            request_id=request_id,
            payload=body,
            duration_ms=(time.perf_counter() - began) * 1000,
            max_memory_mb=self.max_memory_mb(),
        )
        if kind == wire.ERROR:
            result.error_type = reply.get("errorType", "Unhandled")
        self._drain_logs(final=True)
        result.logs = self.take_logs()
        result.early_logs = self._early
        return result

    def _failed(
        self, request_id: str, began: float, error_type: str, message: str, max_memory_mb: int
    ) -> InvokeResult:
        self._drain_logs(final=True)
        document = {"errorType": error_type, "errorMessage": message}
        return InvokeResult(
            request_id=request_id,
            payload=json.dumps(document).encode(),
            error_type=error_type,
            duration_ms=(time.perf_counter() - began) * 1000,
            max_memory_mb=max_memory_mb,
            logs=self.take_logs(),
            early_logs=self._early,
        )

    async def _exchange(self, sent: int) -> tuple[int, dict[str, Any], bytes]:
        if sent > 65536:
            await self._writer.drain()
        return await self._recv()

    async def _recv(self) -> tuple[int, dict[str, Any], bytes]:
        """The next frame; anything that is not a well-formed frame ends the sandbox."""
        try:
            header = await self._reader.readexactly(wire.HEADER.size)
            length, kind = wire.HEADER.unpack(header)
            if length > wire.MAX_FRAME:
                raise wire.WireError(f"frame of {length} bytes is over the limit")
            body = await self._reader.readexactly(length) if length else b""
            meta, payload = wire.decode_body(body)
            if not isinstance(meta, dict):
                raise wire.WireError("frame meta is not an object")
        except (asyncio.IncompleteReadError, ConnectionError, wire.WireError, ValueError) as exc:
            self.dead = True
            raise SandboxDied(self.id) from exc
        return kind, meta, payload

    # ------------------------------------------------------------------ logs

    def _read_logs(self) -> None:
        self._drain_logs(final=False)

    def _drain_logs(self, *, final: bool) -> None:
        while True:
            try:
                chunk = os.read(self._log_fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                with contextlib.suppress(ValueError, OSError):
                    asyncio.get_running_loop().remove_reader(self._log_fd)
                final = True
                break
            self._partial += chunk
            *lines, self._partial = self._partial.split(b"\n")
            self._keep(lines)
        if final and self._partial:
            self._keep([self._partial])
            self._partial = b""

    def _keep(self, lines: list[bytes]) -> None:
        """Keep log lines up to a bound between takes; a chatty function cannot fill memory."""
        room = MAX_LOG_LINES - len(self._logs)
        if room <= 0:
            self._dropped += len(lines)
            return
        self._logs.extend(_log_text(line) for line in lines[:room])
        self._dropped += max(0, len(lines) - room)

    def take_logs(self) -> list[str]:
        logs, self._logs = self._logs, []
        if self._dropped:
            logs.append(f"[squall] {self._dropped} more log lines were dropped")
            self._dropped = 0
        return logs

    # ------------------------------------------------------------------ lifecycle

    def max_memory_mb(self) -> int:
        peak = 0
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                peak = self.cgroup.memory_peak()
        if not peak:
            peak = max(_vm_field(pid, "VmHWM:") for pid in _with_children(self.pid))
        return max(1, math.ceil(peak / MIB))

    def memory_bytes(self) -> int:
        """Memory the sandbox holds now (its cgroup's usage, else its resident set)."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                return self.cgroup.memory_current()
        return sum(_vm_field(pid, "VmRSS:") for pid in _with_children(self.pid))

    def exited(self, status: int) -> None:
        self.exit_status = status
        self.dead = True
        self._exited.set()

    async def _exit_status(self) -> int | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exited.wait(), 0.5)
        return self.exit_status

    async def kill(self) -> None:
        await self.destroy()

    async def destroy(self) -> None:
        """Kill the sandbox if it still runs and release everything it holds; idempotent."""
        if self._log_fd < 0:
            return
        self.dead = True
        try:
            self._signal_kill()
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._log_fd)
            self._drain_logs(final=True)
            os.close(self._log_fd)
            self._log_fd = -1
            self._writer.close()
            if self.cgroup is not None:
                try:
                    await asyncio.to_thread(self.cgroup.destroy)
                except OSError as exc:
                    log.warning("sandbox %s: cgroup not removed: %s", self.id, exc)
        finally:
            self._log_fd = -1
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            self._on_destroyed(self)

    def _signal_kill(self) -> None:
        """SIGKILL the sandbox's pid 1 (and so its pid namespace), through a pidfd taken when
        the sandbox started, so that a recycled pid is never hit."""
        if self.exit_status is not None:
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)


def _log_text(line: bytes) -> str:
    return line.decode("utf-8", "replace").replace("\r", "\n")


def _with_children(pid: int) -> list[int]:
    """`pid` and its children: in a pid namespace the sandbox's pid is its init, and the
    runtime is that init's child."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [pid, *(int(child) for child in children.read().split())]
    except (OSError, ValueError):
        return [pid]


def _vm_field(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def exit_message(status: int | None) -> str:
    """Lambda's words for a runtime that ended ("Runtime exited with error: exit status 1",
    "... signal: killed", "Runtime exited without providing a reason"); None: killed."""
    return wire.exit_description(-signal.SIGKILL if status is None else status)


def _exit_error_type(sandbox: Sandbox, status: int | None) -> str:
    if sandbox.cgroup is not None:
        with contextlib.suppress(OSError):
            if sandbox.cgroup.oom_kills() > 0:
                return "Runtime.OutOfMemory"
    return "Runtime.ExitError"
