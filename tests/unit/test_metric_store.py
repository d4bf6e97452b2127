"""The metric store: in-memory aggregation, statistics and percentiles, the writer thread's
flushes, durability across a reopen, roll-ups, and the metric math GetMetricData uses."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from squall.services.cloudwatch.expressions import ExpressionError, evaluate
from squall.services.cloudwatch.metrics import MetricStore, Point
from squall.services.cloudwatch.stats import (
    MAX_SAMPLES,
    Aggregate,
    fold,
    parse_statistic,
    percentile,
)
from squall.store import Store, open_store

MINUTE = 1_699_999_980  # a minute boundary (a multiple of 60), 2023-11-14
DIMS = {"FunctionName": "f"}


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())  # type: ignore[arg-type]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_store(path: Path, clock: Clock | None = None, **options: Any) -> tuple[Store, MetricStore]:
    store = open_store(path)
    return store, MetricStore(store, clock=clock or Clock(MINUTE + 30), **options)


async def read(metrics: MetricStore, name: str = "Duration", **options: Any) -> list[Point]:
    series = metrics.find("a", "r", "NS", name, DIMS)
    assert series is not None
    return await metrics.points([series], 0, 4e9, **options)


# --------------------------------------------------------------------------- statistics


def test_aggregate_statistics() -> None:
    aggregate = Aggregate()
    for value in (4.0, 1.0, 2.5):
        aggregate.add(value)
    aggregate.add(10.0, weight=2)
    assert (aggregate.count, aggregate.total) == (5.0, 27.5)
    assert (aggregate.minimum, aggregate.maximum, aggregate.average) == (1.0, 10.0, 5.5)
    assert aggregate.complete
    stats = {name: parse_statistic(name) for name in ("SampleCount", "Sum", "Minimum")}
    assert {n: s(aggregate) for n, s in stats.items() if s} == {
        "SampleCount": 5.0,
        "Sum": 27.5,
        "Minimum": 1.0,
    }


def test_percentiles_are_nearest_rank() -> None:
    aggregate = Aggregate()
    for value in range(1, 101):
        aggregate.add(float(value))
    answers = {
        name: statistic(aggregate)
        for name in ("p0", "p50", "p90", "p99", "p99.5", "p100", "P75")
        if (statistic := parse_statistic(name)) is not None
    }
    assert answers == {
        "p0": 1.0,
        "p50": 50.0,
        "p90": 90.0,
        "p99": 99.0,
        "p99.5": 100.0,
        "p100": 100.0,
        "P75": 75.0,
    }
    assert percentile({}, 0.5) is None
    assert percentile({5.0: 3.0, 1.0: 1.0}, 0.25) == 1.0
    assert percentile({5.0: 3.0, 1.0: 1.0}, 0.26) == 5.0


def test_trimmed_means() -> None:
    aggregate = Aggregate()
    for value in range(1, 11):
        aggregate.add(float(value))
    tm90, middle, iqm = (parse_statistic(n) for n in ("tm90", "TM(10%:90%)", "IQM"))
    assert tm90 is not None and middle is not None and iqm is not None
    assert tm90(aggregate) == pytest.approx(5.0)  # 1..9
    assert middle(aggregate) == pytest.approx(5.5)  # 2..9
    assert iqm(aggregate) == pytest.approx(5.5)  # 3..8 (ranks 2.5..7.5)


@pytest.mark.parametrize(
    "name", ["p101", "p", "p-1", "Median", "tm0", "tm101", "TM(90%:10%)", "sum", "p99.5.5"]
)
def test_unknown_statistics(name: str) -> None:
    assert parse_statistic(name) is None


def test_statistic_sets_hide_their_values_unless_all_equal() -> None:
    mixed = Aggregate()
    mixed.add_statistics(4, 10, 1, 4)
    p50 = parse_statistic("p50")
    assert p50 is not None
    assert not mixed.complete
    assert p50(mixed) is None
    same = Aggregate()
    same.add_statistics(3, 6, 2, 2)
    same.add(8.0)
    assert same.complete
    assert p50(same) == 2.0
    mixed.merge(same)
    assert (mixed.count, mixed.total) == (8.0, 24.0)
    assert p50(mixed) is None


def test_many_distinct_values_are_folded_with_bounded_error() -> None:
    rng = random.Random(7)
    values = [rng.uniform(1, 10_000) for _ in range(20_000)]
    aggregate = Aggregate()
    for value in values:
        aggregate.add(value)
    assert len(aggregate.samples) <= MAX_SAMPLES
    assert aggregate.count == 20_000
    assert aggregate.complete
    assert aggregate.total == pytest.approx(math.fsum(values))
    ordered = sorted(values)
    for point in (0.5, 0.9, 0.99):
        exact = ordered[math.ceil(point * len(ordered)) - 1]
        assert percentile(aggregate.samples, point) == pytest.approx(exact, rel=0.02)
    folded = fold(aggregate.samples)
    assert fold(folded) == folded  # idempotent: folded values stay in their bins
    negative = fold({-5.0: 1.0, 0.0: 2.0, 5.0: 1.0})
    assert sorted(negative) == [pytest.approx(-5.0, rel=0.01), 0.0, pytest.approx(5.0, rel=0.01)]


def test_samples_survive_packing() -> None:
    aggregate = Aggregate()
    aggregate.add(1.5, 2)
    aggregate.add(-3.25)
    again = Aggregate.from_row(
        aggregate.count,
        aggregate.total,
        aggregate.minimum,
        aggregate.maximum,
        aggregate.pack_samples(),
    )
    assert again.samples == {1.5: 2.0, -3.25: 1.0}
    assert Aggregate.from_row(1, 1, 1, 1, None).samples == {}


# --------------------------------------------------------------------------- the store


def test_recording_aggregates_per_bucket(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, metrics = new_store(tmp_path)
        for second in (0, 10, 59):
            at = MINUTE + second
            metrics.record("a", "r", "NS", "Duration", DIMS, float(second), "Milliseconds", at)
        metrics.record("a", "r", "NS", "Duration", DIMS, 100.0, "Milliseconds", MINUTE + 60)
        metrics.record("a", "r", "NS", "Duration", DIMS, 7.0, "Count", MINUTE + 1)
        metrics.record("a", "r", "NS", "Duration", {"FunctionName": "g"}, 1.0, "Count")
        points = await read(metrics)
        summary = [
            (p.ts, p.unit, p.aggregate.count, p.aggregate.total, p.aggregate.maximum)
            for p in sorted(points, key=lambda p: (p.ts, p.unit))
        ]
        assert summary == [
            (MINUTE, "Count", 1.0, 7.0, 7.0),
            (MINUTE, "Milliseconds", 3.0, 69.0, 59.0),
            (MINUTE + 60, "Milliseconds", 1.0, 100.0, 100.0),
        ]
        assert [p.ts for p in await read(metrics, unit="Count")] == [MINUTE]
        assert [p.aggregate.samples for p in await read(metrics, unit="Count")] == [{}]
        assert [p.aggregate.samples for p in await read(metrics, unit="Count", samples=True)] == [
            {7.0: 1.0}
        ]
        await metrics.stop()

    run(scenario)


def test_high_resolution_buckets_are_seconds(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, metrics = new_store(tmp_path)
        for offset in (0.2, 0.7, 1.1, 45.0):
            at = MINUTE + offset
            metrics.record("a", "r", "NS", "Duration", DIMS, 1.0, "None", at, resolution=1)
        metrics.record("a", "r", "NS", "Duration", DIMS, 1.0, "None", MINUTE + 30)
        stamps = sorted((p.ts, p.aggregate.count) for p in await read(metrics))
        assert stamps == [(MINUTE, 1.0), (MINUTE, 2.0), (MINUTE + 1, 1.0), (MINUTE + 45, 1.0)]
        await metrics.stop()

    run(scenario)


def test_values_counts_and_statistic_sets(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, metrics = new_store(tmp_path)
        scope = ("a", "r", "NS", "Duration", DIMS)
        metrics.record_values(
            *scope, values=[1.0, 2.0, 3.0], counts=[1.0, 0.0, 2.0], timestamp=MINUTE
        )
        metrics.record_statistics(*scope, count=2, total=8, minimum=4, maximum=4, timestamp=MINUTE)
        [point] = await read(metrics, samples=True)
        assert (point.aggregate.count, point.aggregate.total) == (5.0, 15.0)
        assert point.aggregate.samples == {1.0: 1.0, 3.0: 2.0, 4.0: 2.0}
        [series] = metrics.snapshot()
        assert (series.count, series.total, series.last_value) == (5.0, 15.0, 4.0)
        await metrics.stop()

    run(scenario)


def test_reads_see_what_was_just_recorded(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, metrics = new_store(tmp_path, flush_interval=3600)
        await metrics.start()
        metrics.record("a", "r", "NS", "Duration", DIMS, 5.0, "None", MINUTE)
        assert [p.aggregate.total for p in await read(metrics)] == [5.0]
        metrics.record("a", "r", "NS", "Duration", DIMS, 6.0, "None", MINUTE)
        assert [p.aggregate.total for p in await read(metrics)] == [11.0]  # merged in the row
        await metrics.stop()

    run(scenario)


def test_the_flusher_writes_in_the_background(tmp_path: Path) -> None:
    async def scenario() -> None:
        store, metrics = new_store(tmp_path, flush_interval=0.05)
        await metrics.start()
        metrics.record("a", "r", "NS", "Duration", DIMS, 5.0, "None", MINUTE)
        other = store.connect()
        for _ in range(100):
            if other.execute("SELECT count(*) FROM cw_points").fetchone()[0]:
                break
            await asyncio.sleep(0.02)
        assert other.execute("SELECT total FROM cw_points").fetchall() == [(5.0,)]
        other.close()
        await metrics.stop()

    run(scenario)


def test_durable_across_a_reopen(tmp_path: Path) -> None:
    async def first() -> None:
        store, metrics = new_store(tmp_path, flush_interval=3600)
        await metrics.start()
        for value in (1.0, 2.0, 3.0):
            metrics.record("a", "r", "NS", "Duration", DIMS, value, "Milliseconds", MINUTE)
        metrics.record("a", "r", "NS", "Other", {}, 9.0)
        await metrics.stop()  # flushes
        store.close()

    async def second() -> None:
        store, metrics = new_store(tmp_path)
        series = {s.name: s for s in metrics.snapshot()}
        assert set(series) == {"Duration", "Other"}
        duration = series["Duration"]
        assert (duration.count, duration.total, duration.last_value) == (3.0, 6.0, 3.0)
        assert duration.dimensions == (("FunctionName", "f"),)
        assert duration.last_seen == MINUTE + 30
        [point] = await read(metrics, samples=True)
        assert point.aggregate.samples == {1.0: 1.0, 2.0: 1.0, 3.0: 1.0}
        metrics.record("a", "r", "NS", "Duration", DIMS, 4.0, "Milliseconds", MINUTE)
        [point] = await read(metrics)
        assert point.aggregate.count == 4.0
        fresh = metrics.find("a", "r", "NS", "Brand new", {})
        assert fresh is None
        metrics.record("a", "r", "NS", "Brand new", {}, 1.0)
        ids = [s.id for s in metrics.snapshot()]
        assert len(set(ids)) == 3  # ids continue after the stored ones
        await metrics.stop()
        store.close()

    run(first)
    run(second)


def test_a_failed_write_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        _, metrics = new_store(tmp_path)
        real = metrics._write
        calls = []

        def failing_once(*args: Any) -> None:
            calls.append(args)
            if len(calls) == 1:
                raise OSError("disk full")
            real(*args)

        monkeypatch.setattr(metrics, "_write", failing_once)
        metrics.record("a", "r", "NS", "Duration", DIMS, 5.0, "None", MINUTE)
        with pytest.raises(OSError):
            await metrics.flush()
        metrics.record("a", "r", "NS", "Duration", DIMS, 6.0, "None", MINUTE)
        [point] = await read(metrics)
        assert (point.aggregate.count, point.aggregate.total) == (2.0, 11.0)
        await metrics.stop()

    run(scenario)


def test_roll_ups_keep_the_statistics(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = Clock(MINUTE)
        store, metrics = new_store(tmp_path, clock=clock)
        for second in range(0, 120, 10):
            at = MINUTE + second
            metrics.record(
                "a", "r", "NS", "Duration", DIMS, float(second), "None", at, resolution=1
            )
        await metrics.flush()

        async def stored() -> list[tuple[int, float, float]]:
            await metrics.roll_up()
            rows = store.conn.execute("SELECT ts, resolution, count FROM cw_points ORDER BY ts")
            return [tuple(row) for row in rows]

        assert len(await stored()) == 12  # younger than 3 hours: untouched
        clock.now = MINUTE + 4 * 3600
        assert await stored() == [(MINUTE, 60, 6.0), (MINUTE + 60, 60, 6.0)]
        clock.now = MINUTE + 16 * 86400
        assert await stored() == [(MINUTE // 300 * 300, 300, 12.0)]  # both minutes in one
        points = await read(metrics, samples=True)
        assert math.fsum(p.aggregate.count for p in points) == 12.0
        assert math.fsum(p.aggregate.total for p in points) == sum(range(0, 120, 10))
        assert len({v for p in points for v in p.aggregate.samples}) == 12
        clock.now = MINUTE + 456 * 86400
        assert await stored() == []
        await metrics.stop()

    run(scenario)


def test_recording_is_thread_safe_and_cheap(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, metrics = new_store(tmp_path)

        def hammer(worker: int) -> None:
            for i in range(5000):
                dims = {"FunctionName": f"f{worker % 2}"}
                metrics.record("a", "r", "NS", "Invocations", dims, 1.0, "Count", MINUTE + i % 120)

        started = time.perf_counter()
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        assert elapsed < 5  # 20,000 records; typically well under 0.2 s
        totals = {dict(s.dimensions)["FunctionName"]: s.count for s in metrics.snapshot()}
        assert totals == {"f0": 10000.0, "f1": 10000.0}
        series = metrics.find("a", "r", "NS", "Invocations", {"FunctionName": "f0"})
        assert series is not None
        points = await metrics.points([series], 0, 4e9)
        assert math.fsum(p.aggregate.count for p in points) == 10000.0
        assert sorted({p.ts for p in points}) == [MINUTE, MINUTE + 60]
        await metrics.stop()

    run(scenario)


def test_series_are_scoped_by_account_and_region(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, metrics = new_store(tmp_path)
        metrics.record("a", "r", "NS", "M", {"x": "1", "y": "2"}, 1.0)
        metrics.record("b", "r", "NS", "M", {"y": "2", "x": "1"}, 1.0)
        metrics.record("a", "other", "NS", "M", {"x": "1", "y": "2"}, 1.0)
        assert [s.account for s in metrics.in_region("a", "r")] == ["a"]
        assert metrics.find("a", "r", "NS", "M", {"y": "2", "x": "1"}) is not None
        assert metrics.find("a", "r", "NS", "M", {"x": "1"}) is None
        await metrics.stop()

    run(scenario)


# --------------------------------------------------------------------------- metric math


def math_of(expression: str, **series: dict[int, float]) -> Any:
    def resolve(name: str) -> Any:
        if name not in series:
            raise ExpressionError(f"unknown {name}")
        return series[name]

    return evaluate(expression, resolve, lambda search: list(series.values()))


def test_expressions() -> None:
    a = {1: 2.0, 2: 4.0, 3: 6.0}
    b = {1: 1.0, 3: 0.0}
    assert math_of("a + b", a=a, b=b) == {1: 3.0, 3: 6.0}
    assert math_of("a / b", a=a, b=b) == {1: 2.0}  # division by zero drops the point
    assert math_of("-a * 2 + 1", a=a) == {1: -3.0, 2: -7.0, 3: -11.0}
    assert math_of("(a - 1) / 2", a=a) == {1: 0.5, 2: 1.5, 3: 2.5}
    assert math_of("SUM([a, b])", a=a, b=b) == {1: 3.0, 2: 4.0, 3: 6.0}
    assert math_of("AVG([a, b])", a=a, b=b) == {1: 1.5, 2: 4.0, 3: 3.0}
    assert math_of("MAX([a, b])", a=a, b=b) == {1: 2.0, 2: 4.0, 3: 6.0}
    assert math_of("MIN(a)", a=a) == 2.0
    assert math_of("avg(a) * 2", a=a) == 8.0
    assert math_of("ABS(b - 1)", b=b) == {1: 0.0, 3: 1.0}
    assert math_of("SUM(METRICS())", a=a, b=b) == {1: 3.0, 2: 4.0, 3: 6.0}
    assert math_of("1.5e1 + .5") == 15.5


@pytest.mark.parametrize("expression", ["", "a +", "(a", "a b", "FOO(a)", "a $ b", "c", "[a,]"])
def test_bad_expressions(expression: str) -> None:
    with pytest.raises(ExpressionError):
        math_of(expression, a={1: 1.0})
