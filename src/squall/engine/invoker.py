"""One invocation: a concurrency unit, a warm or cold sandbox, the run, and its log lines.

This is the hot path of a synchronous Invoke. It touches no database: the caller hands in the
version's `FunctionSpec` (cached by the service), concurrency is counted in memory, and the
log lines go to a sink that only queues them.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from squall.sandbox.pool import SandboxPool
from squall.sandbox.results import InvokeResult, SandboxInitError
from squall.sandbox.spec import FunctionSpec

from .concurrency import ConcurrencyLimiter, Throttled

log = logging.getLogger(__name__)

TAIL_BYTES = 4096

# (spec, log stream, [(timestamp ms, line)]): called on the event loop; must only queue them
LogSink = Callable[[FunctionSpec, str, list[tuple[int, str]]], None]


@dataclass(frozen=True, slots=True)
class Invocation:
    spec: FunctionSpec
    function: str  # the concurrency key: the unqualified function ARN
    request_id: str
    payload: bytes
    invoked_arn: str = ""
    client_context: str | None = None
    identity: str | None = None
    trace_id: str | None = None


@dataclass(slots=True)
class Outcome:
    result: InvokeResult
    cold: bool
    lines: list[str] = field(default_factory=list)
    concurrent: int = 1  # invocations of the function running when this one started

    @property
    def function_error(self) -> str | None:
        """`X-Amz-Function-Error`: Lambda reports every function failure as `Unhandled`."""
        return None if self.result.ok else "Unhandled"

    def tail(self) -> str:
        """`X-Amz-Log-Result`: the last 4 KB of this invocation's log, base64."""
        text = "".join(f"{line}\n" for line in self.lines).encode()
        return base64.b64encode(text[-TAIL_BYTES:]).decode()


class Invoker:
    def __init__(
        self, pool: SandboxPool, limiter: ConcurrencyLimiter, log_sink: LogSink | None = None
    ) -> None:
        self.pool = pool
        self.limiter = limiter
        self.log_sink = log_sink

    async def invoke(self, call: Invocation) -> Outcome | Throttled:
        """Run `call` unless the function is at its concurrency limit.

        Function failures (errors, timeouts, crashes, a failed init) are outcomes; a sandbox
        that cannot be started at all raises `SandboxUnavailable`.
        """
        throttled = self.limiter.try_acquire(call.function)
        if throttled is not None:
            return throttled
        concurrent = self.limiter.in_flight(call.function)
        try:
            outcome = await self._run(call)
        finally:
            self.limiter.release(call.function)
        outcome.concurrent = concurrent
        return outcome

    async def _run(self, call: Invocation) -> Outcome:
        spec = call.spec
        began_ms = int(time.time() * 1000)
        try:
            sandbox, cold = await self.pool.acquire(spec)
        except SandboxInitError as exc:
            return self._init_failed(call, exc, began_ms)
        try:
            result = await sandbox.invoke(
                call.request_id,
                call.payload,
                client_context=call.client_context,
                identity=call.identity,
                trace_id=call.trace_id,
                invoked_arn=call.invoked_arn or spec.arn,
            )
        finally:
            await self.pool.release(sandbox)
        if cold:
            result.init_duration_ms = sandbox.init_duration_ms
        if spec.log_format.upper() == "JSON":
            lines = json_platform_lines(spec, result, cold=cold, began=began_ms / 1000)
        else:
            lines = [init_start_line(spec)] if cold else []
            lines.extend(result.early_logs)
            lines.append(f"START RequestId: {call.request_id} Version: {spec.version}")
            lines.extend(result.logs)
            if not result.ok and result.error_type and _is_platform_error(result.error_type):
                lines.append(_platform_error_line(result))
            lines.append(f"END RequestId: {call.request_id}")
            lines.append(report_line(spec, result))
        self._ship(spec, sandbox.log_stream, _stamped(lines, began_ms, call.request_id))
        return Outcome(result, cold, lines)

    def _init_failed(self, call: Invocation, exc: SandboxInitError, began_ms: int) -> Outcome:
        spec = call.spec
        result = InvokeResult(
            request_id=call.request_id, payload=exc.payload, error_type=exc.error_type
        )
        lines = [*exc.logs]
        lines.append(f"INIT_REPORT Phase: init\tStatus: error\tError Type: {exc.error_type}")
        lines.append(f"START RequestId: {call.request_id} Version: {spec.version}")
        lines.append(f"END RequestId: {call.request_id}")
        lines.append(report_line(spec, result))
        self._ship(spec, "", _stamped(lines, began_ms, call.request_id))
        return Outcome(result, True, lines)

    def _ship(self, spec: FunctionSpec, stream: str, events: list[tuple[int, str]]) -> None:
        if self.log_sink is None:
            return
        try:
            self.log_sink(spec, stream, events)
        except Exception:
            log.exception("log sink failed for %s", spec.name)


def _stamped(lines: list[str], began_ms: int, request_id: str) -> list[tuple[int, str]]:
    """Timestamps for an invocation's lines: what precedes its start (init output, START) at
    the time it began, the rest at the time it ended (the sandbox reports them together)."""
    ended_ms = max(began_ms, int(time.time() * 1000))
    started = next(
        (i for i, line in enumerate(lines) if request_id in line and "start" in line.lower()),
        -1,
    )
    return [(began_ms if i <= started else ended_ms, line) for i, line in enumerate(lines)]


def report_line(spec: FunctionSpec, result: InvokeResult) -> str:
    """The REPORT line as Lambda writes it (Init Duration only on a cold start)."""
    duration = result.duration_ms
    fields = [
        f"REPORT RequestId: {result.request_id}",
        f"Duration: {duration:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration))} ms",
        f"Memory Size: {spec.memory_mb} MB",
        f"Max Memory Used: {result.max_memory_mb} MB",
    ]
    if result.init_duration_ms is not None:
        fields.append(f"Init Duration: {result.init_duration_ms:.2f} ms")
    if result.error_type == "Sandbox.Timedout":
        fields.append("Status: timeout")
    return "\t".join(fields)


_QUIET_SYSTEM_LEVELS = ("WARN", "ERROR", "FATAL")


def init_start_line(spec: FunctionSpec) -> str:
    return (
        f"INIT_START Runtime Version: {spec.runtime}\tRuntime Version ARN: "
        f"{runtime_version_arn(spec)}"
    )


def runtime_version_arn(spec: FunctionSpec) -> str:
    return f"arn:aws:lambda:{spec.region}::runtime:squall-{spec.runtime}"


def json_platform_lines(
    spec: FunctionSpec, result: InvokeResult, *, cold: bool, began: float | None = None
) -> list[str]:
    """An invocation's lines in the JSON log format: the runtime's own (JSON) lines between
    `platform.start` and `platform.report` records, which SystemLogLevel WARN and above hide."""
    records = (spec.system_log_level or "INFO").upper() not in _QUIET_SYSTEM_LEVELS
    lines: list[str] = []
    now = time.time()
    began = now if began is None else began
    if records and cold:
        initial = {
            "initializationType": "on-demand",
            "phase": "init",
            "runtimeVersion": spec.runtime,
            "runtimeVersionArn": runtime_version_arn(spec),
        }
        lines.append(_platform(began, "platform.initStart", initial))
    lines.extend(result.early_logs)
    if records:
        lines.append(
            _platform(
                began, "platform.start", {"requestId": result.request_id, "version": spec.version}
            )
        )
    lines.extend(result.logs)
    if records:
        metrics = {
            "durationMs": round(result.duration_ms, 3),
            "billedDurationMs": max(1, math.ceil(result.duration_ms)),
            "memorySizeMB": spec.memory_mb,
            "maxMemoryUsedMB": result.max_memory_mb,
        }
        if result.init_duration_ms is not None:
            metrics["initDurationMs"] = round(result.init_duration_ms, 3)
        status = "success"
        if result.error_type == "Sandbox.Timedout":
            status = "timeout"
        elif not result.ok:
            status = "error"
        record = {"requestId": result.request_id, "metrics": metrics, "status": status}
        lines.append(_platform(now, "platform.report", record))
    return lines


def _platform(at: float, kind: str, record: dict[str, object]) -> str:
    # the time a record describes is carried by its log event's timestamp too
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    return orjson.dumps({"time": stamp, "type": kind, "record": record}).decode()


def _is_platform_error(error_type: str) -> bool:
    return error_type.startswith(("Sandbox.", "Runtime.ExitError", "Runtime.OutOfMemory"))


def _platform_error_line(result: InvokeResult) -> str:
    try:
        message = str(orjson.loads(result.payload).get("errorMessage", ""))
    except (orjson.JSONDecodeError, AttributeError):
        message = ""
    return f"{message}\n{result.error_type}" if message else str(result.error_type)
