"""What the Lambda service reports about its functions: log lines to CloudWatch Logs, and the
`AWS/Lambda` metrics (plus functions' own Embedded Metric Format lines) to CloudWatch.

The other services are reached only through the callables the server wires in here; each of
them only queues, so reporting never slows an invocation down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from squall.sandbox.spec import FunctionSpec

log = logging.getLogger(__name__)

NAMESPACE = "AWS/Lambda"

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

    def function_logs(self, spec: FunctionSpec, stream: str, lines: list[str]) -> None:
        """An invocation's lines (START, the function's output, END, REPORT)."""
        account, region = arn_scope(spec.arn)
        if self._ingest is not None:
            now = int(time.time() * 1000)
            stream = stream or _init_stream(spec)
            self._ingest(account, region, spec.log_group_name, stream, [(now, x) for x in lines])
        if self._record_emf is not None:
            for line in lines:
                if line.startswith("{") and '"_aws"' in line:
                    try:
                        self._record_emf(account, region, line)
                    except Exception:
                        log.debug("not an EMF line from %s", spec.name, exc_info=True)

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
    ) -> None:
        """One finished invocation (sync or async)."""
        if self._record is None:
            return
        for dimensions in _dimension_sets(name, qualifier, executed_version):
            self._metric(arn, "Invocations", dimensions, 1, "Count")
            self._metric(arn, "Errors", dimensions, 1 if error else 0, "Count")
            self._metric(arn, "Duration", dimensions, duration_ms, "Milliseconds")
            self._metric(arn, "ConcurrentExecutions", dimensions, concurrent, "Count")

    def throttle(self, arn: str, name: str, qualifier: str | None) -> None:
        if self._record is None:
            return
        for dimensions in _dimension_sets(name, qualifier, None):
            self._metric(arn, "Throttles", dimensions, 1, "Count")

    def count(self, arn: str, name: str, metric: str, value: float, unit: str = "Count") -> None:
        """A function-level metric such as AsyncEventAge or DestinationDeliveryFailures."""
        if self._record is not None:
            self._metric(arn, metric, {"FunctionName": name}, value, unit)

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
    name: str, qualifier: str | None, executed_version: str | None
) -> list[dict[str, str]]:
    sets = [{"FunctionName": name}]
    if qualifier:
        sets.append({"FunctionName": name, "Resource": f"{name}:{qualifier}"})
    if executed_version:
        sets.append({"FunctionName": name, "ExecutedVersion": executed_version})
    return sets


def _init_stream(spec: FunctionSpec) -> str:
    """A stream for lines of a sandbox that never started (a failed init)."""
    day = time.strftime("%Y/%m/%d", time.gmtime())
    return f"{day}/[{spec.version}]init-failures"
