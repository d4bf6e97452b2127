"""The durable queue behind asynchronous invocations (Invoke with ``InvocationType=Event``).

The queue stores and schedules; it does not decide what a delivery means. The caller's
``dispatch`` coroutine gets each due event and answers ``None`` (done: the event is deleted) or
a :class:`Reschedule` (deliver it again at ``at``, with the attempt count and context it
gives). A ``dispatch`` that raises is logged and the event is retried ``failure_delay_s`` later
with its attempt count unchanged: an event leaves the queue only when ``dispatch`` says so.

Delivery is at-least-once. Every event is a row in SQLite, committed before :meth:`put`
returns (:meth:`add` writes it inside the caller's open transaction instead, and nothing is
dispatched while a transaction is open on the connection); an event whose dispatch was under
way when the process died (or when :meth:`stop` gave up waiting for it) is still in the table
and is delivered again on the next start.

In memory the queue keeps only each pending event's id and due time (a dict, plus a heap of
``(not_before, id)`` whose stale entries are skipped lazily); payloads are read from the table
when an event is dispatched, so a large backlog does not pin its payloads in memory.

All SQL runs on ``Store.conn`` from the event-loop thread; each statement touches one row.
The public surface (:class:`QueuedEvent`, :class:`Reschedule`, :data:`Dispatch` and
:class:`AsyncQueue`) says nothing about SQLite, so a message broker can take its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from squall.store import Store

__all__ = ["AsyncQueue", "Dispatch", "QueuedEvent", "Reschedule"]

log = logging.getLogger(__name__)

COMPONENT = "engine.async_queue"
# how often the scheduler looks again while a transaction is open on the store's connection
TRANSACTION_POLL_S = 0.01
MIGRATIONS = [
    """
    CREATE TABLE async_events (
        id TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        qualifier TEXT,
        payload BLOB NOT NULL,
        received_at REAL NOT NULL,
        not_before REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        context TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX async_events_by_not_before ON async_events (not_before);
    """,
]


@dataclass
class QueuedEvent:
    id: str  # the invocation's request id (unique)
    target: str  # what to invoke (e.g. an unqualified function ARN)
    qualifier: str | None
    payload: bytes
    received_at: float  # epoch seconds the event was accepted
    not_before: float  # epoch seconds; due when now >= not_before
    attempts: int = 0  # delivery attempts made so far (dispatch bumps it via Reschedule)
    # JSON-able extras (client context, destination chain)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reschedule:
    at: float  # epoch seconds
    attempts: int
    context: dict[str, Any] | None = None  # replaces the event's context when given


Dispatch = Callable[[QueuedEvent], Awaitable[Reschedule | None]]
"""Deliver one event; ``None`` means done (delete it), a :class:`Reschedule` means try again."""


class AsyncQueue:
    """A durable queue of :class:`QueuedEvent` dispatched when due, at most ``max_in_flight``
    at a time and never the same event twice at once.

    ``idle_poll_s`` caps how long the scheduler sleeps between looks at the queue;
    ``failure_delay_s`` is how long an event waits after its dispatch raised; ``clock`` gives
    epoch seconds (the time base of ``not_before`` and :attr:`Reschedule.at`).
    """

    def __init__(
        self,
        store: Store,
        *,
        max_in_flight: int = 64,
        idle_poll_s: float = 1.0,
        failure_delay_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._store = store
        self._max_in_flight = max_in_flight
        self._idle_poll_s = idle_poll_s
        self._failure_delay_s = failure_delay_s
        self._clock = clock
        # every event not yet done (in flight included): id -> not_before
        self._due: dict[str, float] = {}
        # (not_before, id); an entry is stale unless it matches self._due
        self._heap: list[tuple[float, str]] = []
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._scheduler: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._idle_waiters: list[asyncio.Future[None]] = []
        store.migrate(COMPONENT, MIGRATIONS)
        self._load()

    # -- public interface ---------------------------------------------------------------------

    def add(self, event: QueuedEvent) -> None:
        """Store ``event`` and schedule it; synchronous, for callers inside a transaction.

        The row is written in :meth:`Store.transaction`, so inside a transaction the caller
        has open on ``Store.conn`` it is a savepoint of that transaction: the event becomes
        durable when the caller commits, and vanishes if the caller rolls back (the scheduler
        then finds no row and forgets the id). Outside a transaction it is committed before
        this returns. Nothing is dispatched while ``Store.conn`` has a transaction open, so an
        uncommitted event is never delivered.

        Raises ``ValueError`` if an event with the same id is already queued.
        """
        if event.id in self._due:
            raise ValueError(f"event {event.id!r} is already queued")
        context = orjson.dumps(event.context).decode()
        with self._store.transaction() as conn:
            if conn.execute("SELECT 1 FROM async_events WHERE id = ?", (event.id,)).fetchone():
                raise ValueError(f"event {event.id!r} is already queued")
            conn.execute(
                "INSERT INTO async_events (id, target, qualifier, payload, received_at,"
                " not_before, attempts, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.target,
                    event.qualifier,
                    bytes(event.payload),
                    float(event.received_at),
                    float(event.not_before),
                    int(event.attempts),
                    context,
                ),
            )
        self._set_due(event.id, float(event.not_before))
        self._notify()

    async def put(self, event: QueuedEvent) -> None:
        """Store ``event``; it is committed (durable) when this returns, unless the caller has
        a transaction open on ``Store.conn`` (see :meth:`add`).

        Raises ``ValueError`` if an event with the same id is already queued.
        """
        self.add(event)

    def start(self, dispatch: Dispatch) -> None:
        """Start the scheduler on the running loop; every stored event becomes pending."""
        if self._scheduler is not None:
            raise RuntimeError("the async queue is already running")
        loop = asyncio.get_running_loop()
        self._load()
        self._stopping = False
        self._wake = asyncio.Event()
        self._scheduler = loop.create_task(self._schedule(dispatch), name="async-queue")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop dispatching; wait up to ``timeout`` for dispatches under way, then cancel them.

        An event is deleted only when its dispatch returned ``None``: cancelled ones stay
        queued and are delivered again by the next start.
        """
        self._stopping = True
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            self._notify()
            await asyncio.gather(scheduler, return_exceptions=True)
        running = list(self._in_flight.values())
        if running:
            _, late = await asyncio.wait(running, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "async queue stopped with %d dispatch(es) unfinished; they stay queued",
                    len(late),
                )
                await asyncio.wait(late)
        self._wake = None
        self._check_idle()

    def pending(self) -> int:
        """Events not yet done (queued or in flight)."""
        return len(self._due)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending or in flight; False if ``timeout`` passed first."""
        if self._is_idle():
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return self._is_idle()
        finally:
            if waiter in self._idle_waiters:
                self._idle_waiters.remove(waiter)
        return True

    # -- scheduling ---------------------------------------------------------------------------

    async def _schedule(self, dispatch: Dispatch) -> None:
        wake = self._wake
        assert wake is not None
        while not self._stopping:
            wake.clear()
            try:
                delay = self._launch_due(dispatch)
            except Exception:
                log.exception("async queue: scheduling failed")
                delay = self._idle_poll_s
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)

    def _launch_due(self, dispatch: Dispatch) -> float:
        """Start every due event there is room for; return how long to sleep."""
        if self._store.conn.in_transaction:
            # someone awaits inside a transaction: what it added may yet roll back
            return TRANSACTION_POLL_S
        now = self._clock()
        heap = self._heap
        while heap and len(self._in_flight) < self._max_in_flight:
            not_before, event_id = heap[0]
            if self._due.get(event_id) != not_before or event_id in self._in_flight:
                heapq.heappop(heap)  # stale: rescheduled, done, or already running
                continue
            if not_before > now:
                return max(0.0, min(self._idle_poll_s, not_before - now))
            heapq.heappop(heap)
            self._in_flight[event_id] = asyncio.get_running_loop().create_task(
                self._deliver(event_id, dispatch), name=f"async-event-{event_id}"
            )
        # nothing queued, or no room: a put or a completion wakes the scheduler
        return self._idle_poll_s

    async def _deliver(self, event_id: str, dispatch: Dispatch) -> None:
        settled = False
        try:
            if self._store.conn.in_transaction:
                # the row may belong to a transaction that has not committed: look again soon
                self._set_due(event_id, self._clock() + TRANSACTION_POLL_S)
                settled = True
                return
            event = self._fetch(event_id)
            if event is None:  # the row is gone: nothing to deliver
                self._forget(event_id)
                settled = True
                return
            try:
                outcome = await dispatch(event)
                if outcome is not None and not isinstance(outcome, Reschedule):
                    raise TypeError(
                        f"dispatch returned {type(outcome).__name__}, not Reschedule or None"
                    )
            except Exception:
                log.exception(
                    "async event %s: dispatch failed; retrying in %gs",
                    event_id,
                    self._failure_delay_s,
                )
                outcome = Reschedule(
                    at=self._clock() + self._failure_delay_s, attempts=event.attempts
                )
            settled = self._settle(event_id, outcome)
        except Exception:
            log.exception("async event %s: delivery failed", event_id)
        finally:
            self._in_flight.pop(event_id, None)
            if not settled and event_id in self._due:
                # the outcome is unknown or could not be saved: the row is still there, so
                # deliver it again later (on cancellation by stop(), the next start does)
                self._set_due(event_id, self._clock() + self._failure_delay_s)
            self._notify()

    # -- storage ------------------------------------------------------------------------------

    def _load(self) -> None:
        rows = self._store.conn.execute("SELECT id, not_before FROM async_events").fetchall()
        self._due = {str(event_id): float(not_before) for event_id, not_before in rows}
        self._heap = [(not_before, event_id) for event_id, not_before in self._due.items()]
        heapq.heapify(self._heap)

    def _fetch(self, event_id: str) -> QueuedEvent | None:
        row = self._store.conn.execute(
            "SELECT target, qualifier, payload, received_at, not_before, attempts, context"
            " FROM async_events WHERE id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        target, qualifier, payload, received_at, not_before, attempts, context = row
        return QueuedEvent(
            id=event_id,
            target=target,
            qualifier=qualifier,
            payload=bytes(payload),
            received_at=received_at,
            not_before=not_before,
            attempts=attempts,
            context=orjson.loads(context) if context else {},
        )

    def _settle(self, event_id: str, outcome: Reschedule | None) -> bool:
        """Record a dispatch's outcome; False (logged) if it could not be saved."""
        try:
            with self._store.transaction() as conn:
                if outcome is None:
                    conn.execute("DELETE FROM async_events WHERE id = ?", (event_id,))
                elif outcome.context is None:
                    conn.execute(
                        "UPDATE async_events SET not_before = ?, attempts = ? WHERE id = ?",
                        (float(outcome.at), int(outcome.attempts), event_id),
                    )
                else:
                    conn.execute(
                        "UPDATE async_events SET not_before = ?, attempts = ?, context = ?"
                        " WHERE id = ?",
                        (
                            float(outcome.at),
                            int(outcome.attempts),
                            orjson.dumps(outcome.context).decode(),
                            event_id,
                        ),
                    )
        except Exception:
            log.exception("async event %s: could not record the dispatch's outcome", event_id)
            return False
        if outcome is None:
            self._forget(event_id)
        else:
            self._set_due(event_id, float(outcome.at))
        return True

    # -- in-memory state ----------------------------------------------------------------------

    def _set_due(self, event_id: str, not_before: float) -> None:
        self._due[event_id] = not_before
        heapq.heappush(self._heap, (not_before, event_id))

    def _forget(self, event_id: str) -> None:
        self._due.pop(event_id, None)

    def _notify(self) -> None:
        """Wake the scheduler and release idle waiters after a change."""
        if self._wake is not None:
            self._wake.set()
        self._check_idle()

    def _is_idle(self) -> bool:
        return not self._due and not self._in_flight

    def _check_idle(self) -> None:
        if self._is_idle():
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()
