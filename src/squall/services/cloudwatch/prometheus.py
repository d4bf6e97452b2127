"""The Prometheus text exposition (format 0.0.4) of squall's metrics, served at `GET /metrics`.

Lambda functions get their own families, derived from the `AWS/Lambda` series the Lambda
service records (running totals since the data dir was created):

- counters `squall_lambda_{invocations,errors,throttles,dead_letter_errors,
  destination_delivery_failures}_total` and the summaries `squall_lambda_duration_ms` and
  `squall_lambda_async_event_age_ms` (`_sum` and `_count`), labelled with `account`, `region`
  and `function` (every call of the function), and once more with `resource` for the calls of
  each alias or version (`f:live`, `f:3`), like CloudWatch's `FunctionName` and
  `FunctionName, Resource` dimension sets: sum over `{resource=""}` to count each call once;
- the gauge `squall_lambda_concurrent_executions` per function: the last value recorded, or 0
  once nothing was recorded for `GAUGE_STALE_S` seconds.

Custom namespaces (anything not `AWS/...`) appear as `squall_metric` (the last value),
`squall_metric_sum` and `squall_metric_count`, labelled with the namespace, the metric name and
its dimensions.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable

from .metrics import Series

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAMBDA = "AWS/Lambda"
GAUGE_STALE_S = 60.0

COUNTERS = {
    "Invocations": ("squall_lambda_invocations_total", "Invocations of a Lambda function."),
    "Errors": ("squall_lambda_errors_total", "Invocations that ended in a function error."),
    "Throttles": ("squall_lambda_throttles_total", "Invocation requests that were throttled."),
    "DeadLetterErrors": (
        "squall_lambda_dead_letter_errors_total",
        "Failed events that could not be sent to the dead-letter queue.",
    ),
    "DestinationDeliveryFailures": (
        "squall_lambda_destination_delivery_failures_total",
        "Events that could not be delivered to a destination.",
    ),
}
SUMMARIES = {
    "Duration": ("squall_lambda_duration_ms", "Time spent running function code (ms)."),
    "AsyncEventAge": (
        "squall_lambda_async_event_age_ms",
        "Time from queuing an event to invoking the function with it (ms).",
    ),
}
GAUGES = {
    "ConcurrentExecutions": (
        "squall_lambda_concurrent_executions",
        "Instances of a function processing events.",
    ),
}
RESERVED_LABELS = frozenset({"account", "region", "namespace", "name"})
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Labels = tuple[tuple[str, str], ...]


def text_exposition(series: Iterable[Series], now: float) -> str:
    """Every family, as the text Prometheus scrapes."""
    lambdas: list[Series] = []
    custom: list[Series] = []
    for item in series:
        if item.namespace == LAMBDA:
            lambdas.append(item)
        elif not item.namespace.startswith("AWS/"):
            custom.append(item)
    lines: list[str] = []
    _lambda_families(lambdas, now, lines)
    _custom_families(custom, lines)
    return "\n".join(lines) + "\n" if lines else ""


def _lambda_families(series: list[Series], now: float, lines: list[str]) -> None:
    # metric name → labels → (count, sum)
    totals: dict[str, dict[Labels, tuple[float, float]]] = defaultdict(dict)
    gauges: dict[str, dict[Labels, float]] = defaultdict(dict)
    for item in series:
        dimensions = dict(item.dimensions)
        function = dimensions.get("FunctionName")
        if function is None:
            continue
        labels: Labels = (
            ("account", item.account),
            ("region", item.region),
            ("function", function),
        )
        if set(dimensions) == {"FunctionName"}:
            totals[item.name][labels] = (item.count, item.total)
            if item.name in GAUGES:
                fresh = now - item.last_time <= GAUGE_STALE_S
                gauges[item.name][labels] = item.last_value if fresh else 0.0
        elif set(dimensions) == {"FunctionName", "Resource"}:
            labels = (*labels, ("resource", dimensions["Resource"]))
            totals[item.name][labels] = (item.count, item.total)
    for metric, (family, help_text) in COUNTERS.items():
        samples = totals.get(metric)
        if samples:
            _header(lines, family, help_text, "counter")
            for labels, (_, total) in sorted(samples.items()):
                lines.append(_sample(family, labels, total))
    for metric, (family, help_text) in SUMMARIES.items():
        samples = totals.get(metric)
        if samples:
            _header(lines, family, help_text, "summary")
            for labels, (count, total) in sorted(samples.items()):
                lines.append(_sample(f"{family}_sum", labels, total))
                lines.append(_sample(f"{family}_count", labels, count))
    for metric, (family, help_text) in GAUGES.items():
        values = gauges.get(metric)
        if values:
            _header(lines, family, help_text, "gauge")
            for labels, value in sorted(values.items()):
                lines.append(_sample(family, labels, value))


def _custom_families(series: list[Series], lines: list[str]) -> None:
    if not series:
        return
    rows = sorted(((_custom_labels(item), item) for item in series), key=lambda row: row[0])
    families = (
        ("squall_metric", "The last value published to a custom metric.", "gauge"),
        ("squall_metric_sum", "The sum of the values published to a custom metric.", "gauge"),
        ("squall_metric_count", "The number of values published to a custom metric.", "counter"),
    )
    for family, help_text, kind in families:
        _header(lines, family, help_text, kind)
        for labels, item in rows:
            value = {
                "squall_metric": item.last_value,
                "squall_metric_sum": item.total,
                "squall_metric_count": item.count,
            }[family]
            lines.append(_sample(family, labels, value))


def _custom_labels(item: Series) -> Labels:
    labels = [
        ("account", item.account),
        ("region", item.region),
        ("namespace", item.namespace),
        ("name", item.name),
    ]
    taken = set(RESERVED_LABELS)
    for name, value in item.dimensions:
        label = label_name(name)
        if label in taken:
            label = f"dim_{label}"
        if label in taken:
            continue
        taken.add(label)
        labels.append((label, value))
    return tuple(labels)


def label_name(name: str) -> str:
    """A dimension name as a Prometheus label name."""
    label = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
        label = f"dim_{label}"
    return label


def _header(lines: list[str], family: str, help_text: str, kind: str) -> None:
    lines.append(f"# HELP {family} {help_text}")
    lines.append(f"# TYPE {family} {kind}")


def _sample(family: str, labels: Labels, value: float) -> str:
    rendered = ",".join(f'{name}="{escape(text)}"' for name, text in labels)
    return f"{family}{{{rendered}}} {format_value(value)}"


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
