"""GetMetricStatistics and GetMetricData: stored buckets grouped into periods, statistics,
metric math, ordering and pages."""

from __future__ import annotations

import base64
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import invalid_combination, invalid_next_token, invalid_value, validation
from .expressions import ExpressionError, TimeSeries, Value, evaluate
from .metrics import MetricStore
from .stats import Aggregate, Statistic, needs_samples, parse_statistic

HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
MAX_DATAPOINTS = 1440
DEFAULT_MAX_DATAPOINTS = 100_800
MAX_QUERIES = 500
_QUERY_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")


def valid_period(period: int) -> bool:
    return period in HIGH_RESOLUTION_PERIODS or (period > 0 and period % 60 == 0)


def aligned_start(start: float, period: int, now: float) -> int:
    """Where the first period begins: the start rounded down as CloudWatch rounds it (to the
    period under a minute, else to the minute, 5 minutes or the hour as the data ages)."""
    if period < 60:
        granularity = period
    elif start >= now - 15 * 86400:
        granularity = 60
    elif start >= now - 63 * 86400:
        granularity = 300
    else:
        granularity = 3600
    return int(start // granularity) * granularity


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _check_range(start: float, end: float) -> None:
    if start >= end:
        raise invalid_value("The parameter StartTime must be less than the parameter EndTime.")


async def get_metric_statistics(
    metrics: MetricStore, account: str, region: str, request: dict[str, Any]
) -> dict[str, Any]:
    start, end = epoch(request["StartTime"]), epoch(request["EndTime"])
    period = request["Period"]
    statistics = request.get("Statistics") or []
    extended = request.get("ExtendedStatistics") or []
    if not valid_period(period):
        raise invalid_value("The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60.")
    _check_range(start, end)
    if not statistics and not extended:
        raise invalid_combination(
            "Must specify either Statistics or ExtendedStatistics, but not both."
        )
    computed: dict[str, Statistic] = {}
    for name in [*statistics, *extended]:
        statistic = parse_statistic(name)
        if statistic is None or (name in extended and not needs_samples(name)):
            raise invalid_value(f"The value {name} for parameter ExtendedStatistics is invalid.")
        computed[name] = statistic
    first = aligned_start(start, period, time.time())
    wanted = math.ceil((end - first) / period)
    if wanted > MAX_DATAPOINTS:
        raise invalid_combination(
            f"You have requested up to {wanted:,} datapoints, which exceeds the limit of "
            f"{MAX_DATAPOINTS:,}. You may reduce the datapoints requested by increasing Period, "
            "or decreasing the time range."
        )
    name = request["MetricName"]
    dimensions = {d["Name"]: d["Value"] for d in request.get("Dimensions") or []}
    series = metrics.find(account, region, request["Namespace"], name, dimensions)
    if series is None:
        return {"Label": name, "Datapoints": []}
    points = await metrics.points(
        [series], first, end, unit=request.get("Unit"), samples=bool(extended)
    )
    periods: dict[tuple[int, str], Aggregate] = {}
    for point in points:
        key = ((point.ts - first) // period, point.unit)
        if key in periods:
            periods[key].merge(point.aggregate, with_samples=bool(extended))
        else:
            periods[key] = point.aggregate
    datapoints = []
    for (index, unit), aggregate in sorted(periods.items()):
        datapoint: dict[str, Any] = {"Timestamp": timestamp(first + index * period)}
        for statistic in statistics:
            datapoint[statistic] = computed[statistic](aggregate)
        values = {e: computed[e](aggregate) for e in extended}
        if extended:
            datapoint["ExtendedStatistics"] = {e: v for e, v in values.items() if v is not None}
        datapoint["Unit"] = unit
        datapoints.append(datapoint)
    return {"Label": name, "Datapoints": datapoints}


# ---------------------------------------------------------------------- GetMetricData


async def get_metric_data(
    metrics: MetricStore, account: str, region: str, request: dict[str, Any]
) -> dict[str, Any]:
    start, end = epoch(request["StartTime"]), epoch(request["EndTime"])
    queries: list[dict[str, Any]] = request["MetricDataQueries"]
    _check_queries(queries)
    _check_range(start, end)
    offset = decode_token(request.get("NextToken"))
    now = time.time()
    series: dict[str, TimeSeries] = {}
    labels: dict[str, str] = {}
    for position, query in enumerate(queries, start=1):
        stat = query.get("MetricStat")
        if stat is None:
            labels[query["Id"]] = query.get("Label") or query["Id"]
            continue
        metric = stat["Metric"]
        labels[query["Id"]] = query.get("Label") or metric.get("MetricName", query["Id"])
        series[query["Id"]] = await _metric_stat(
            metrics,
            (account, region),
            stat,
            f"MetricDataQueries.member.{position}",
            (start, end, now),
        )
    values = _Evaluator(queries, series, labels).run()
    descending = request.get("ScanBy", "TimestampDescending") == "TimestampDescending"
    results = []
    for query in queries:
        if query.get("ReturnData", True) is False:
            continue
        stamps = sorted(values[query["Id"]], reverse=descending)
        results.append((query["Id"], stamps, values[query["Id"]]))
    limit = request.get("MaxDatapoints") or DEFAULT_MAX_DATAPOINTS
    output = []
    seen = 0
    for query_id, stamps, points in results:
        low = min(max(offset - seen, 0), len(stamps))
        high = min(max(offset + limit - seen, 0), len(stamps))
        seen += len(stamps)
        output.append(
            {
                "Id": query_id,
                "Label": labels[query_id],
                "Timestamps": [timestamp(ts) for ts in stamps[low:high]],
                "Values": [points[ts] for ts in stamps[low:high]],
                "StatusCode": "Complete",
            }
        )
    response: dict[str, Any] = {"MetricDataResults": output, "Messages": []}
    if offset + limit < seen:
        response["NextToken"] = encode_token(offset + limit)
    return response


def _check_queries(queries: list[dict[str, Any]]) -> None:
    if not queries:
        raise validation("The parameter MetricDataQueries must not be empty.")
    if len(queries) > MAX_QUERIES:
        raise validation(
            f"The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
        )
    ids: set[str] = set()
    for position, query in enumerate(queries, start=1):
        prefix = f"MetricDataQueries.member.{position}"
        query_id = query["Id"]
        if not _QUERY_ID.fullmatch(query_id):
            raise validation(
                f"The value {query_id} for parameter {prefix}.Id is invalid: it must start with "
                "a lowercase letter and hold only letters, digits and underscores."
            )
        if query_id in ids:
            raise validation(f"The value {query_id} for parameter {prefix}.Id is not unique.")
        ids.add(query_id)
        if ("MetricStat" in query) == ("Expression" in query):
            raise validation(
                f"The parameter {prefix} must specify either MetricStat or Expression, "
                "but not both."
            )


async def _metric_stat(
    metrics: MetricStore,
    scope: tuple[str, str],
    stat: dict[str, Any],
    prefix: str,
    window: tuple[float, float, float],
) -> TimeSeries:
    """One MetricStat query's series; `window` is (start, end, now)."""
    account, region = scope
    start, end, now = window
    metric = stat["Metric"]
    if "Namespace" not in metric or "MetricName" not in metric:
        raise validation(f"The parameter {prefix}.MetricStat.Metric must name a metric.")
    period = stat["Period"]
    if not valid_period(period):
        raise validation(
            f"The parameter {prefix}.MetricStat.Period must be 1, 5, 10, 20, 30, or a multiple "
            "of 60."
        )
    statistic = parse_statistic(stat["Stat"])
    if statistic is None:
        raise validation(
            f"The value {stat['Stat']} for parameter {prefix}.MetricStat.Stat is invalid."
        )
    dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions") or []}
    found = metrics.find(account, region, metric["Namespace"], metric["MetricName"], dimensions)
    if found is None:
        return {}
    first = aligned_start(start, period, now)
    samples = needs_samples(stat["Stat"])
    points = await metrics.points([found], first, end, unit=stat.get("Unit"), samples=samples)
    periods: dict[int, Aggregate] = {}
    for point in points:
        ts = first + (point.ts - first) // period * period
        if ts in periods:
            periods[ts].merge(point.aggregate, with_samples=samples)
        else:
            periods[ts] = point.aggregate
    result: TimeSeries = {}
    for ts, aggregate in periods.items():
        value = statistic(aggregate)
        if value is not None and math.isfinite(value):
            result[ts] = value
    return result


class _Evaluator:
    """Every query's time series: MetricStat ones as fetched, expressions evaluated in
    dependency order."""

    def __init__(
        self,
        queries: list[dict[str, Any]],
        series: dict[str, TimeSeries],
        labels: dict[str, str],
    ) -> None:
        self.queries = {q["Id"]: q for q in queries}
        self.series = series
        self.labels = labels
        self.values: dict[str, TimeSeries] = dict(series)
        self.evaluating: set[str] = set()

    def run(self) -> dict[str, TimeSeries]:
        for query_id, query in self.queries.items():
            if "Expression" in query:
                self.resolve_series(query_id)
        return self.values

    def resolve_series(self, query_id: str) -> TimeSeries:
        if query_id in self.values:
            return self.values[query_id]
        query = self.queries[query_id]
        if query_id in self.evaluating:
            raise validation(f"Error in expression {query_id}: circular reference.")
        self.evaluating.add(query_id)
        try:
            value = evaluate(query["Expression"], self.resolve, self.matching)
        except ExpressionError as error:
            raise validation(f"Error in expression {query_id}: {error}") from None
        finally:
            self.evaluating.discard(query_id)
        self.values[query_id] = self._as_series(query_id, value)
        return self.values[query_id]

    def resolve(self, name: str) -> Value:
        if name not in self.queries:
            raise ExpressionError(f"Unknown metric or expression {name}.")
        return self.resolve_series(name)

    def matching(self, search: str | None) -> list[TimeSeries]:
        return [
            points
            for query_id, points in self.series.items()
            if search is None or search in self.labels[query_id]
        ]

    def _as_series(self, query_id: str, value: Value) -> TimeSeries:
        if isinstance(value, dict):
            return value
        if isinstance(value, list):
            if len(value) == 1:
                return value[0]
            raise validation(
                f"Error in expression {query_id}: it must return a single time series."
            )
        stamps = {ts for points in self.series.values() for ts in points}
        return dict.fromkeys(stamps, value) if math.isfinite(value) else {}


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = orjson.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise invalid_next_token() from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid_next_token()
    return offset
