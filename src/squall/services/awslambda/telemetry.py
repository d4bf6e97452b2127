"""What the Lambda service reports about its functions: log lines to CloudWatch Logs, and the
`AWS/Lambda` metrics (plus functions' own Embedded Metric Format lines) to CloudWatch.

The other services are reached only through the callables the server wires in here; each of
them only queues, so reporting never slows an invocation down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from squall.sandbox.spec import FunctionSpec

log = logging.getLogger(__name__)

NAMESPACE = "AWS/Lambda"
MAX_EVENT = 256 * 1024  # CloudWatch Logs' event size: longer lines are truncated
MAX_EMF = MAX_EVENT
MAX_EMF_LINES = 100  # per invocation
MAX_EMF_PENDING = 10_000

# (account, region, log group, log stream, [(timestamp ms, message)])
LogIngest = Callable[[str, str, str, str, list[tuple[int, str]]], None]
# (account, region, namespace, metric name, dimensions, value, unit)
MetricRecorder = Callable[[str, str, str, str, dict[str, str], float, str], None]
# (account, region, log line) -> datums recorded
EmfRecorder = Callable[[str, str, str], int]


def arn_scope(arn: str) -> tuple[str, str]:
    """(account, region) of a function ARN."""
    parts = arn.split(":", 5)
    return parts[4], parts[3]


class Telemetry:
    def __init__(
        self,
        ingest: LogIngest | None = None,
        record: MetricRecorder | None = None,
        record_emf: EmfRecorder | None = None,
    ) -> None:
        self._ingest = ingest
        self._record = record
        self._record_emf = record_emf
        self._emf_worker = ThreadPoolExecutor(1, thread_name_prefix="squall-emf")
        self._emf_lock = threading.Lock()
        self._emf_pending = 0

    def close(self) -> None:
        """Finish the EMF lines already queued (called when the Lambda service stops)."""
        self._emf_worker.shutdown(wait=True)

    def function_logs(self, spec: FunctionSpec, stream: str, events: list[tuple[int, str]]) -> None:
        """An invocation's lines (START, the function's output, END, REPORT), timestamped."""
        account, region = arn_scope(spec.arn)
        if self._ingest is not None:
            stream = stream or _init_stream(spec)
            events = [(ts, line[:MAX_EVENT]) for ts, line in events]
            self._ingest(account, region, spec.log_group_name, stream, events)
        if self._record_emf is not None:
            lines = [line for _, line in events]
            emf = [x for x in lines if x.startswith("{") and '"_aws"' in x and len(x) <= MAX_EMF]
            if emf:
                self._queue_emf(account, region, emf[:MAX_EMF_LINES])

    def _queue_emf(self, account: str, region: str, lines: list[str]) -> None:
        """Parse EMF lines on a worker thread: a big line must not hold up the event loop."""
        with self._emf_lock:
            if self._emf_pending + len(lines) > MAX_EMF_PENDING:
                log.warning("dropping %d EMF lines: the metrics worker is behind", len(lines))
                return
            self._emf_pending += len(lines)
        self._emf_worker.submit(self._parse_emf, account, region, lines)

    def _parse_emf(self, account: str, region: str, lines: list[str]) -> None:
        assert self._record_emf is not None
        try:
            for line in lines:
                try:
                    self._record_emf(account, region, line)
                except Exception:
                    log.debug("not an EMF line: %.80s", line, exc_info=True)
        finally:
            with self._emf_lock:
                self._emf_pending -= len(lines)

    def invocation(
        self,
        arn: str,
        name: str,
        qualifier: str | None,
        executed_version: str,
        *,
        duration_ms: float,
        error: bool,
        concurrent: int,
        alias: bool = False,
    ) -> None:
        """One finished invocation (sync or async)."""
        if self._record is None:
            return
        for dimensions in _dimension_sets(name, qualifier, executed_version, alias=alias):
            self._metric(arn, "Invocations", dimensions, 1, "Count")
            self._metric(arn, "Errors", dimensions, 1 if error else 0, "Count")
            self._metric(arn, "Duration", dimensions, duration_ms, "Milliseconds")
            self._metric(arn, "ConcurrentExecutions", dimensions, concurrent, "Count")

    def throttle(self, arn: str, name: str, qualifier: str | None) -> None:
        if self._record is None:
            return
        for dimensions in _dimension_sets(name, qualifier, None):
            self._metric(arn, "Throttles", dimensions, 1, "Count")

    def count(
        self,
        arn: str,
        name: str,
        qualifier: str | None,
        metric: str,
        value: float,
        *,
        unit: str = "Count",
    ) -> None:
        """An asynchronous-invocation metric (AsyncEventAge, DestinationDeliveryFailures, ...)."""
        if self._record is None:
            return
        for dimensions in _dimension_sets(name, qualifier, None):
            self._metric(arn, metric, dimensions, value, unit)

    def _metric(
        self, arn: str, metric: str, dimensions: dict[str, str], value: float, unit: str
    ) -> None:
        account, region = arn_scope(arn)
        assert self._record is not None
        try:
            self._record(account, region, NAMESPACE, metric, dimensions, float(value), unit)
        except Exception:
            log.exception("recording %s failed", metric)


def _dimension_sets(
    name: str, qualifier: str | None, executed_version: str | None, *, alias: bool = False
) -> list[dict[str, str]]:
    """As Lambda publishes them: across all functions, per function, per function:qualifier,
    and for calls through an alias also per version the alias picked."""
    sets: list[dict[str, str]] = [{}, {"FunctionName": name}]
    if qualifier:
        resource = f"{name}:{qualifier}"
        sets.append({"FunctionName": name, "Resource": resource})
        if alias and executed_version:
            sets.append(
                {"FunctionName": name, "Resource": resource, "ExecutedVersion": executed_version}
            )
    return sets


def _init_stream(spec: FunctionSpec) -> str:
    """A stream for lines of a sandbox that never started (a failed init)."""
    day = time.strftime("%Y/%m/%d", time.gmtime())
    return f"{day}/[{spec.version}]init-failures"
