"""The one thread that writes logs, the ingestion queue that feeds it, and retention.

Every write (API calls, queued platform logs, purges) runs on a single writer thread with its
own connection, so the event loop never waits for SQLite's write lock. `ingest` only appends to
a queue; a flusher task hands the queue to the writer every `flush_interval` seconds (sooner
when `batch_events` events are waiting), one transaction per batch: short enough not to hold
SQLite's write lock for long (other services write from the event loop and wait for it), long
enough to keep ingestion over 100,000 events/s. `stop` flushes whatever is
still queued. A sweeper task deletes, in batches of `sweep_batch` events (each its own
transaction, so API writes interleave), the events of deleted groups and streams and those older
than their group's retention: at start, every `retention_interval` seconds and on `wake_sweeper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .names import now_ms
from .store import Append, LogStore

log = logging.getLogger(__name__)

T = TypeVar("T")


class LogWriter:
    def __init__(
        self,
        logs: LogStore,
        *,
        flush_interval: float = 0.15,
        batch_events: int = 4_000,  # ~25 ms in a transaction (20,000: ~130 ms)
        max_pending_events: int = 5_000_000,
        retention_interval: float = 300.0,
        sweep_batch: int = 5_000,
    ) -> None:
        self.logs = logs
        self.flush_interval = flush_interval
        self.batch_events = batch_events
        self.max_pending_events = max_pending_events
        self.retention_interval = retention_interval
        self.sweep_batch = sweep_batch
        self._pending: deque[Append] = deque()
        self._pending_events = 0
        self._dropped = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="squall-logs-write")
        self._local = threading.local()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._wake_requested = False
        self._sweep_wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    # ---- the ingestion path

    def ingest(
        self, account: str, region: str, group: str, stream: str, events: list[tuple[int, str]]
    ) -> None:
        """Queue `(timestamp ms, message)` events for a stream; never blocks, never raises for
        a full queue (events beyond `max_pending_events` are dropped and logged). The group and
        the stream are created on first use. The list is handed over: do not change it after."""
        if not events:
            return
        if self._pending_events >= self.max_pending_events:
            self._dropped += len(events)
            if self._dropped == len(events):
                log.warning("log ingestion queue is full; dropping events")
            return
        self._pending.append(Append(account, region, group, stream, now_ms(), events))
        self._pending_events += len(events)
        if self._pending_events >= self.batch_events and not self._wake_requested:
            self._wake_requested = True
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._wake.set)

    async def flush(self) -> None:
        """Write everything queued so far (one flush at a time; a batch handed to the writer is
        written even if the caller is cancelled meanwhile)."""
        loop = asyncio.get_running_loop()
        async with self._flush_lock:
            while self._pending:
                batch, count = [], 0
                while self._pending and count < self.batch_events:
                    item = self._pending.popleft()
                    batch.append(item)
                    count += len(item.events)
                self._pending_events = max(0, self._pending_events - count) if self._pending else 0
                write = loop.run_in_executor(self._executor, self._write_queued, batch)
                await asyncio.shield(write)
        if self._dropped:
            log.warning("dropped %d log events: the ingestion queue was full", self._dropped)
            self._dropped = 0

    def _write_queued(self, batch: list[Append]) -> None:
        try:
            self._append(batch, create=True)
        except Exception:
            log.exception("writing %d queued log batches failed; retrying one by one", len(batch))
            for item in batch:
                try:
                    self._append([item], create=True)
                except Exception:
                    log.exception("dropping %d log events for %s", len(item.events), item.group)

    def _append(self, items: Sequence[Append], *, create: bool) -> None:
        conn = self._connection()
        with self.logs.store.transaction(conn):
            self.logs.append(conn, items, create=create, now=now_ms())

    # ---- writes for the API

    async def call(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """Run `write(conn)` on the writer thread, in a transaction committed before return."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_transaction, write)

    def _in_transaction(self, write: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        with self.logs.store.transaction(conn):
            return write(conn)

    async def put(self, item: Append) -> int:
        """Store a PutLogEvents batch (committed on return); the stream's new token."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, lambda: self._append([item], create=False))
        return item.token

    # ---- retention

    def wake_sweeper(self) -> None:
        self._sweep_wake.set()

    async def sweep(self) -> None:
        """Delete, batch by batch, every event that is due for deletion now."""
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(self._executor, self._sweep_step):
            await asyncio.sleep(0)

    def _sweep_step(self) -> bool:
        conn = self._connection()
        with self.logs.store.transaction(conn):
            return self.logs.purge_step(conn, now_ms(), self.sweep_batch)

    # ---- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._flush_forever(), name="squall-logs-flusher"),
            asyncio.create_task(self._sweep_forever(), name="squall-logs-sweeper"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.flush()
        finally:
            self._executor.submit(self._close)
            self._executor.shutdown(wait=True)

    async def _flush_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            self._wake_requested = False
            try:
                await self.flush()
            except Exception:
                log.exception("flushing queued log events failed")
                await asyncio.sleep(1)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("deleting expired log events failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_wake.wait(), self.retention_interval)
            self._sweep_wake.clear()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.logs.store.connect()
        return conn

    def _close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
