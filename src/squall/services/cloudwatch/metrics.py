"""The metric store: datapoints aggregated in memory, persisted by a writer thread.

A metric (a *series*) is (account, region, namespace, metric name, dimensions sorted by name).
Recording only updates in-memory buckets under a lock: a bucket is (series, storage resolution,
bucket start, unit) → `Aggregate` (sample count, sum, min, max and samples for percentiles).
High-resolution data (StorageResolution 1) gets 1-second buckets, everything else 1-minute
buckets, as CloudWatch stores them. Each series also keeps running totals and its last value
(for the Prometheus exposition) and the time it was last published to (for ListMetrics).

A single writer thread merges the pending buckets into `cw_points` every `flush_interval`
seconds, on stop, and before every read, so reads see everything recorded before them. Reads
run on that same thread after the flush. Older data is rolled up as CloudWatch does: 1-second
buckets into 1-minute ones after 3 hours, 1-minute into 5-minute after 15 days, 5-minute into
hourly after 63 days, and hourly buckets are dropped after 455 days.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import NamedTuple

import orjson

from squall.store import Store

from .stats import Aggregate

log = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE cw_series (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        dimensions TEXT NOT NULL,
        last_seen REAL NOT NULL,
        count REAL NOT NULL,
        total REAL NOT NULL,
        last_value REAL NOT NULL,
        last_time REAL NOT NULL
    );
    CREATE TABLE cw_points (
        series INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        resolution INTEGER NOT NULL,
        unit TEXT NOT NULL,
        count REAL NOT NULL,
        total REAL NOT NULL,
        minimum REAL NOT NULL,
        maximum REAL NOT NULL,
        samples BLOB,
        PRIMARY KEY (series, ts, resolution, unit)
    ) WITHOUT ROWID;
    CREATE INDEX cw_points_age ON cw_points (resolution, ts)
    """,
]

HIGH_RESOLUTION = 1
STANDARD_RESOLUTION = 60
# (resolution, age in seconds after which it is rolled up, resolution it is rolled up into)
ROLLUPS = ((1, 3 * 3600, 60), (60, 15 * 86400, 300), (300, 63 * 86400, 3600))
RETENTION_S = 455 * 86400
ROLLUP_BATCH = 5000

Dimensions = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, str, str, str, Dimensions]
BucketKey = tuple[int, int, int, str]  # series id, bucket start, resolution, unit


def dimension_key(dimensions: dict[str, str]) -> Dimensions:
    return tuple(sorted(dimensions.items()))


@dataclass(slots=True, eq=False)
class Series:
    """One metric, with its running totals since it was first recorded."""

    id: int
    account: str
    region: str
    namespace: str
    name: str
    dimensions: Dimensions
    last_seen: float = 0.0  # when data was last published to it (wall clock)
    count: float = 0.0
    total: float = 0.0
    last_value: float = 0.0
    last_time: float = 0.0  # the timestamp of the last value

    @property
    def key(self) -> SeriesKey:
        return (self.account, self.region, self.namespace, self.name, self.dimensions)

    def row(self) -> tuple[object, ...]:
        return (
            self.id,
            self.account,
            self.region,
            self.namespace,
            self.name,
            orjson.dumps(self.dimensions).decode(),
            self.last_seen,
            self.count,
            self.total,
            self.last_value,
            self.last_time,
        )


class Point(NamedTuple):
    series: int
    ts: int
    unit: str
    aggregate: Aggregate


class MetricStore:
    """Records metrics without blocking and answers range reads from SQLite."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 1.0,
        rollup_interval: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        store.migrate("cloudwatch.metrics", MIGRATIONS)
        self._clock = clock
        self._flush_interval = flush_interval
        self._rollup_interval = rollup_interval
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, Series] = {}
        self._pending: dict[BucketKey, Aggregate] = {}
        self._dirty: dict[int, Series] = {}
        self._next_id = 1
        for row in store.conn.execute("SELECT * FROM cw_series"):
            dimensions = tuple((name, value) for name, value in orjson.loads(row[5]))
            series = Series(*row[:5], dimensions, *row[6:])
            self._series[series.key] = series
            self._next_id = max(self._next_id, series.id + 1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="squall-metrics")
        self._local = threading.local()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ recording

    def record(  # noqa: PLR0917 (the positional signature other services call)
        self,
        account: str,
        region: str,
        namespace: str,
        name: str,
        dimensions: dict[str, str],
        value: float,
        unit: str = "None",
        timestamp: float | None = None,
        *,
        resolution: int = STANDARD_RESOLUTION,
    ) -> None:
        """One value. Cheap: an in-memory update under a lock; never touches the database."""
        now = self._clock()
        at = now if timestamp is None else timestamp
        with self._lock:
            series = self._touch((account, region, namespace, name, dimension_key(dimensions)), now)
            self._bucket(series.id, at, resolution, unit).add(value)
            series.count += 1
            series.total += value
            if at >= series.last_time:
                series.last_value, series.last_time = value, at

    def record_values(
        self,
        account: str,
        region: str,
        namespace: str,
        name: str,
        dimensions: dict[str, str],
        *,
        values: Sequence[float],
        counts: Sequence[float] | None = None,
        unit: str = "None",
        timestamp: float | None = None,
        resolution: int = STANDARD_RESOLUTION,
    ) -> None:
        """Several values at one timestamp, each seen `counts[i]` times (default once)."""
        now = self._clock()
        at = now if timestamp is None else timestamp
        weights = counts if counts else [1.0] * len(values)
        with self._lock:
            series = self._touch((account, region, namespace, name, dimension_key(dimensions)), now)
            bucket = self._bucket(series.id, at, resolution, unit)
            for value, weight in zip(values, weights, strict=True):
                if weight > 0:
                    bucket.add(value, weight)
                    series.count += weight
                    series.total += value * weight
            if values and at >= series.last_time:
                series.last_value, series.last_time = values[-1], at

    def record_statistics(
        self,
        account: str,
        region: str,
        namespace: str,
        name: str,
        dimensions: dict[str, str],
        *,
        count: float,
        total: float,
        minimum: float,
        maximum: float,
        unit: str = "None",
        timestamp: float | None = None,
        resolution: int = STANDARD_RESOLUTION,
    ) -> None:
        """A statistic set (sample count, sum, minimum, maximum) at one timestamp."""
        now = self._clock()
        at = now if timestamp is None else timestamp
        with self._lock:
            series = self._touch((account, region, namespace, name, dimension_key(dimensions)), now)
            self._bucket(series.id, at, resolution, unit).add_statistics(
                count, total, minimum, maximum
            )
            series.count += count
            series.total += total
            if count > 0 and at >= series.last_time:
                series.last_value, series.last_time = total / count, at

    def _touch(self, key: SeriesKey, now: float) -> Series:
        series = self._series.get(key)
        if series is None:
            series = Series(self._next_id, *key)
            self._next_id += 1
            self._series[key] = series
        series.last_seen = now
        self._dirty[series.id] = series
        return series

    def _bucket(self, series: int, at: float, resolution: int, unit: str) -> Aggregate:
        resolution = HIGH_RESOLUTION if resolution == HIGH_RESOLUTION else STANDARD_RESOLUTION
        start = int(at // resolution) * resolution
        key = (series, start, resolution, unit)
        bucket = self._pending.get(key)
        if bucket is None:
            bucket = self._pending[key] = Aggregate()
        return bucket

    # ------------------------------------------------------------------ looking up

    def find(
        self, account: str, region: str, namespace: str, name: str, dimensions: dict[str, str]
    ) -> Series | None:
        return self._series.get((account, region, namespace, name, dimension_key(dimensions)))

    def in_region(self, account: str, region: str) -> list[Series]:
        with self._lock:
            return [s for s in self._series.values() if s.account == account and s.region == region]

    def snapshot(self) -> list[Series]:
        """Copies of every series with its totals, consistent with each other."""
        with self._lock:
            return [replace(series) for series in self._series.values()]

    async def points(
        self,
        series: Sequence[Series],
        start: float,
        end: float,
        *,
        unit: str | None = None,
        samples: bool = False,
    ) -> list[Point]:
        """Every stored bucket of `series` starting in [start, end), recorded data included."""
        try:
            await self.flush()
        except Exception:  # answer from what is stored; the flusher keeps retrying the rest
            log.exception("writing metrics before a read failed")
        ids = [s.id for s in series]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._read, ids, start, end, unit, samples
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="squall-metrics-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("writing the last metrics failed; they are lost")
        finally:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._close)
            self._executor.shutdown(wait=True)

    async def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
            dirty, self._dirty = self._dirty, {}
            rows = [series.row() for series in dirty.values()]
        if not batch and not rows:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._write, batch, rows)
        except Exception:
            with self._lock:  # kept for the next flush; merging is order-independent
                for key, aggregate in batch.items():
                    pending = self._pending.get(key)
                    if pending is None:
                        self._pending[key] = aggregate
                    else:
                        pending.merge(aggregate)
                for series in dirty.values():
                    self._dirty.setdefault(series.id, series)
            raise

    async def roll_up(self) -> None:
        """Roll old buckets up into coarser ones and drop what is past retention."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._roll_up, self._clock())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_rollup = loop.time() + min(self._rollup_interval, 30.0)
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self.flush()
                if loop.time() >= next_rollup:
                    next_rollup = loop.time() + self._rollup_interval
                    await self.roll_up()
            except Exception:
                log.exception("writing metrics failed; will retry")
                await asyncio.sleep(1)

    # ------------------------------------------------------------------ writer thread

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._store.connect()
            self._local.conn = conn
        return conn

    def _close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _write(self, batch: dict[BucketKey, Aggregate], rows: list[tuple[object, ...]]) -> None:
        conn = self._connection()
        with self._store.transaction(conn):
            conn.executemany(
                "INSERT INTO cw_series VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,"
                " count = excluded.count, total = excluded.total,"
                " last_value = excluded.last_value, last_time = excluded.last_time",
                rows,
            )
            for key, aggregate in batch.items():
                try:
                    with self._store.transaction(conn):  # a savepoint: one bad bucket only
                        _merge_into(conn, key, aggregate)
                except (OverflowError, ValueError, sqlite3.IntegrityError):
                    log.warning("dropping a metric bucket that cannot be stored: %r", key)

    def _read(
        self, ids: list[int], start: float, end: float, unit: str | None, samples: bool
    ) -> list[Point]:
        conn = self._connection()
        sql = (
            "SELECT series, ts, unit, count, total, minimum, maximum, "
            + ("samples" if samples else "NULL")
            + " FROM cw_points WHERE series = ? AND ts >= ? AND ts < ?"
            + (" AND unit = ?" if unit is not None else "")
            + " ORDER BY ts"
        )
        found: list[Point] = []
        for series in ids:
            params: tuple[object, ...] = (series, start, end)
            if unit is not None:
                params = (*params, unit)
            for row in conn.execute(sql, params):
                found.append(Point(row[0], row[1], row[2], Aggregate.from_row(*row[3:])))
        return found

    def _roll_up(self, now: float) -> None:
        conn = self._connection()
        for source, age, target in ROLLUPS:
            while True:
                rows = conn.execute(
                    "SELECT series, ts, unit, count, total, minimum, maximum, samples"
                    " FROM cw_points WHERE resolution = ? AND ts < ? LIMIT ?",
                    (source, now - age, ROLLUP_BATCH),
                ).fetchall()
                if not rows:
                    break
                merged: dict[BucketKey, Aggregate] = {}
                for series, ts, unit, *stats in rows:
                    key = (series, ts // target * target, target, unit)
                    aggregate = Aggregate.from_row(*stats)
                    if key in merged:
                        merged[key].merge(aggregate)
                    else:
                        merged[key] = aggregate
                with self._store.transaction(conn):
                    conn.executemany(
                        "DELETE FROM cw_points WHERE series = ? AND ts = ? AND resolution = ?"
                        " AND unit = ?",
                        [(series, ts, source, unit) for series, ts, unit, *_ in rows],
                    )
                    for key, aggregate in merged.items():
                        _merge_into(conn, key, aggregate)
        with self._store.transaction(conn):
            conn.execute("DELETE FROM cw_points WHERE ts < ?", (now - RETENTION_S,))


def _merge_into(conn: sqlite3.Connection, key: BucketKey, aggregate: Aggregate) -> None:
    if aggregate.count <= 0:
        return
    row = conn.execute(
        "SELECT count, total, minimum, maximum, samples FROM cw_points"
        " WHERE series = ? AND ts = ? AND resolution = ? AND unit = ?",
        key,
    ).fetchone()
    if row is not None:
        stored = Aggregate.from_row(*row)
        stored.merge(aggregate)
        aggregate = stored
    conn.execute(
        "INSERT OR REPLACE INTO cw_points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            *key,
            aggregate.count,
            aggregate.total,
            aggregate.minimum,
            aggregate.maximum,
            aggregate.pack_samples(),
        ),
    )
