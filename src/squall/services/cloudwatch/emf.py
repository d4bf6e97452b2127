"""Embedded Metric Format: metrics carried in structured log lines.

A line is an EMF document when it is a JSON object whose `_aws` member holds a `Timestamp`
(milliseconds since the epoch) and `CloudWatchMetrics`, a list of metric directives:

    {"_aws": {"Timestamp": 1700000000000, "CloudWatchMetrics": [{
        "Namespace": "ServerlessAirline",
        "Dimensions": [["service"]],
        "Metrics": [{"Name": "SuccessfulBooking", "Unit": "Count", "StorageResolution": 60}]}]},
     "service": "booking", "SuccessfulBooking": [1.0]}

Each dimension set names root members holding the dimension values (strings); each metric
names the root member holding its value: a number or an array of up to 100 numbers. One datum
comes out per metric and dimension set (an empty set gives the metric without dimensions).
As in CloudWatch Logs, a malformed directive, dimension set or metric is skipped and the rest
of the document still counts; a line that is not an EMF document gives nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

MAX_DIMENSIONS = 30
MAX_METRICS = 100
MAX_VALUES = 100
MAX_DIMENSION_VALUE = 1024
MAX_NAME = 255
LIMIT = 2.0**360  # CloudWatch rejects values beyond ±2^360

UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
        "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
        "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
        "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Datum:
    """One metric's values under one dimension set."""

    namespace: str
    name: str
    dimensions: dict[str, str]
    values: tuple[float, ...]
    unit: str
    timestamp: float  # seconds since the epoch
    storage_resolution: int = 60


def parse_line(line: str) -> list[Datum]:
    """The datums of one log line in Embedded Metric Format; [] for any other line."""
    if '"_aws"' not in line:
        return []
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        return []
    return parse_document(document)


MAX_AGE_S = 14 * 86400
MAX_AHEAD_S = 2 * 3600


def recordable(datum: Datum, now: float) -> bool:
    """What PutMetricData would take: not older than two weeks nor two hours ahead."""
    return now - MAX_AGE_S <= datum.timestamp <= now + MAX_AHEAD_S


def parse_document(document: Any) -> list[Datum]:
    if not isinstance(document, dict):
        return []
    metadata = document.get("_aws")
    if not isinstance(metadata, dict):
        return []
    timestamp = metadata.get("Timestamp")
    directives = metadata.get("CloudWatchMetrics")
    if not _is_number(timestamp) or not isinstance(directives, list):
        return []
    seconds = float(timestamp) / 1000
    datums: list[Datum] = []
    for directive in directives:
        datums.extend(_directive(document, directive, seconds))
    return datums


def _directive(document: dict[str, Any], directive: Any, timestamp: float) -> list[Datum]:
    if not isinstance(directive, dict):
        return []
    namespace = directive.get("Namespace")
    if not _valid_name(namespace) or namespace.startswith(("AWS/", ":")):
        return []
    metrics = directive.get("Metrics")
    if not isinstance(metrics, list) or len(metrics) > MAX_METRICS:
        return []
    dimension_sets = directive.get("Dimensions", [[]])
    if not isinstance(dimension_sets, list):
        return []
    resolved = [d for d in (_dimensions(document, s) for s in dimension_sets) if d is not None]
    datums: list[Datum] = []
    for metric in metrics:
        parsed = _metric(document, metric)
        if parsed is None:
            continue
        name, values, unit, resolution = parsed
        for dimensions in resolved:
            datums.append(
                Datum(namespace, name, dict(dimensions), values, unit, timestamp, resolution)
            )
    return datums


def _dimensions(document: dict[str, Any], keys: Any) -> dict[str, str] | None:
    if not isinstance(keys, list) or len(keys) > MAX_DIMENSIONS:
        return None
    dimensions: dict[str, str] = {}
    for key in keys:
        if not _valid_name(key):
            return None
        value = document.get(key)
        if not isinstance(value, str) or not value or len(value) > MAX_DIMENSION_VALUE:
            return None
        dimensions[key] = value
    return dimensions


def _metric(
    document: dict[str, Any], metric: Any
) -> tuple[str, tuple[float, ...], str, int] | None:
    if not isinstance(metric, dict):
        return None
    name = metric.get("Name")
    if not _valid_name(name):
        return None
    target = document.get(name)
    if _is_number(target):
        values: tuple[float, ...] = (float(target),)
    elif isinstance(target, list) and 0 < len(target) <= MAX_VALUES:
        if not all(_is_number(v) for v in target):
            return None
        values = tuple(float(v) for v in target)
    else:
        return None
    if any(abs(v) > LIMIT for v in values):
        return None
    unit = metric.get("Unit", "None")
    if not isinstance(unit, str) or unit not in UNITS:
        unit = "None"
    resolution = 1 if metric.get("StorageResolution") == 1 else 60
    return name, values, unit, resolution


def _valid_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
