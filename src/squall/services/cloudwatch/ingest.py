"""PutMetricData: every datum is checked as CloudWatch checks it, then all are recorded."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

from squall.core.errors import ServiceError

from .errors import invalid_combination, invalid_value, missing
from .metrics import MetricStore

MAX_DATUMS = 1000
MAX_DIMENSIONS = 30
MAX_VALUES = 150
VALUE_LIMIT = 2.0**360
MAX_AGE_S = 14 * 86400
MAX_AHEAD_S = 2 * 3600


def put_metric_data(
    metrics: MetricStore, account: str, region: str, request: dict[str, Any]
) -> None:
    namespace = request["Namespace"]
    data = request.get("MetricData") or []
    if namespace.startswith("AWS/"):
        raise invalid_value(f"The value {namespace} for parameter Namespace is invalid.")
    if not data and not request.get("EntityMetricData"):
        raise missing("The parameter MetricData is required.")
    if len(data) > MAX_DATUMS:
        raise invalid_value(
            f"The collection MetricData must not have a size greater than {MAX_DATUMS}."
        )
    now = time.time()
    problems: list[ServiceError] = []
    for index, datum in enumerate(data, start=1):
        problems.extend(check_datum(datum, f"MetricData.member.{index}", now))
    if problems:
        code = problems[0].code
        raise ServiceError(
            code, "\n".join(p.message for p in problems if p.code == code), status=400
        )
    for datum in data:
        _record(metrics, (account, region, namespace), datum, now)


def check_datum(datum: dict[str, Any], prefix: str, now: float) -> list[ServiceError]:
    problems: list[ServiceError] = []
    dimensions = datum.get("Dimensions") or []
    if len(dimensions) > MAX_DIMENSIONS:
        problems.append(
            invalid_value(
                f"The collection {prefix}.Dimensions must not have a size greater than "
                f"{MAX_DIMENSIONS}."
            )
        )
    names = [d["Name"] for d in dimensions]
    if len(set(names)) != len(names):
        problems.append(invalid_value(f"The parameter {prefix}.Dimensions has duplicate names."))
    given = [m for m in ("Value", "StatisticValues", "Values") if m in datum]
    if len(given) > 1:
        problems.append(
            invalid_combination(
                f"The parameters {prefix}.{given[0]} and {prefix}.{given[1]} are mutually "
                "exclusive and you have specified both."
            )
        )
    elif not given:
        problems.append(
            invalid_combination(
                f"At least one of the parameters {prefix}.Value, {prefix}.StatisticValues or "
                f"{prefix}.Values must be specified."
            )
        )
    if "Value" in datum and not _valid_number(datum["Value"]):
        problems.append(_bad(datum["Value"], f"{prefix}.Value"))
    problems.extend(_check_values(datum, prefix))
    statistics = datum.get("StatisticValues")
    if statistics is not None:
        for member in ("SampleCount", "Sum", "Minimum", "Maximum"):
            if not _valid_number(statistics[member]):
                problems.append(_bad(statistics[member], f"{prefix}.StatisticValues.{member}"))
        if statistics["SampleCount"] <= 0:
            problems.append(
                invalid_value(
                    f"The parameter {prefix}.StatisticValues.SampleCount must be greater than 0."
                )
            )
        if statistics["Minimum"] > statistics["Maximum"]:
            problems.append(
                invalid_value(
                    f"The parameter {prefix}.StatisticValues.Minimum must not be greater than "
                    f"{prefix}.StatisticValues.Maximum."
                )
            )
    resolution = datum.get("StorageResolution", 60)
    if resolution not in (1, 60):
        problems.append(_bad(resolution, f"{prefix}.StorageResolution"))
    stamp = datum.get("Timestamp")
    if isinstance(stamp, datetime):
        at = stamp.timestamp()
        if at < now - MAX_AGE_S:
            problems.append(
                invalid_value(
                    f"The parameter {prefix}.Timestamp must specify a time within the past two "
                    "weeks."
                )
            )
        elif at > now + MAX_AHEAD_S:
            problems.append(
                invalid_value(
                    f"The parameter {prefix}.Timestamp must specify a time no more than two "
                    "hours in the future."
                )
            )
    return problems


def _check_values(datum: dict[str, Any], prefix: str) -> list[ServiceError]:
    problems: list[ServiceError] = []
    values = datum.get("Values")
    counts = datum.get("Counts")
    if counts is not None and values is None:
        problems.append(
            invalid_combination(f"The parameter {prefix}.Counts must be used with {prefix}.Values.")
        )
    if values is None:
        return problems
    if len(values) > MAX_VALUES:
        problems.append(
            invalid_value(
                f"The collection {prefix}.Values must not have a size greater than {MAX_VALUES}."
            )
        )
    if counts is not None and len(counts) != len(values):
        problems.append(
            invalid_value(
                f"The parameters {prefix}.Values and {prefix}.Counts must be of the same size."
            )
        )
    for position, value in enumerate(values, start=1):
        if not _valid_number(value):
            problems.append(_bad(value, f"{prefix}.Values.member.{position}"))
    for position, count in enumerate(counts or [], start=1):
        if not _valid_number(count) or count < 0:
            problems.append(_bad(count, f"{prefix}.Counts.member.{position}"))
    return problems


def _valid_number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and abs(value) <= VALUE_LIMIT


def _bad(value: Any, parameter: str) -> ServiceError:
    return invalid_value(f"The value {value} for parameter {parameter} is invalid.")


def _record(
    metrics: MetricStore, scope: tuple[str, str, str], datum: dict[str, Any], now: float
) -> None:
    account, region, namespace = scope
    name = datum["MetricName"]
    dimensions = {d["Name"]: d["Value"] for d in datum.get("Dimensions") or []}
    unit = datum.get("Unit", "None")
    stamp = datum.get("Timestamp")
    at = stamp.timestamp() if isinstance(stamp, datetime) else now
    resolution = datum.get("StorageResolution", 60)
    if "Value" in datum:
        metrics.record(
            account,
            region,
            namespace,
            name,
            dimensions,
            float(datum["Value"]),
            unit,
            at,
            resolution=resolution,
        )
    elif "Values" in datum:
        counts = datum.get("Counts")
        metrics.record_values(
            account,
            region,
            namespace,
            name,
            dimensions,
            values=[float(v) for v in datum["Values"]],
            counts=[float(c) for c in counts] if counts else None,
            unit=unit,
            timestamp=at,
            resolution=resolution,
        )
    else:
        stats = datum["StatisticValues"]
        metrics.record_statistics(
            account,
            region,
            namespace,
            name,
            dimensions,
            count=float(stats["SampleCount"]),
            total=float(stats["Sum"]),
            minimum=float(stats["Minimum"]),
            maximum=float(stats["Maximum"]),
            unit=unit,
            timestamp=at,
            resolution=resolution,
        )
