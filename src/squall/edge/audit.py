"""CloudTrail-shaped records of every API call, written to the store in batches.

`record()` only appends to a queue; a single writer thread turns batches into rows, so the
request path never waits on the database. Records are flushed on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.model import Shape

from squall.core.context import Principal
from squall.store import Store

log = logging.getLogger(__name__)

EVENT_VERSION = "1.09"
HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"

MIGRATIONS = [
    """
    CREATE TABLE audit_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        event_time REAL NOT NULL,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        event_source TEXT NOT NULL,
        event_name TEXT NOT NULL,
        read_only INTEGER NOT NULL,
        record BLOB NOT NULL
    )
    """,
    "CREATE INDEX audit_events_time ON audit_events (account_id, event_time)",
]


def redact(shape: Shape | None, value: Any) -> Any:
    """Parameters as CloudTrail shows them: camelCase names, no blobs, no secrets."""
    if shape is None or value is None:
        return value
    if shape.metadata.get("sensitive"):
        return HIDDEN
    kind = shape.type_name
    if kind == "structure":
        result = {}
        for name, item in value.items():
            member = shape.members.get(name)  # type: ignore[attr-defined]
            if member is None or item is None or member.type_name == "blob":
                continue
            if member.serialization.get("eventstream"):
                continue  # a stream of events being sent: not a parameter to record
            result[name[:1].lower() + name[1:]] = redact(member, item)
        return result
    if kind == "list":
        return [redact(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {key: redact(shape.value, item) for key, item in value.items()}  # type: ignore[attr-defined]
    if kind == "blob":
        return None
    return value


def user_identity(principal: Principal) -> dict[str, str]:
    identity = {"type": principal.type, "principalId": principal.user_id}
    if principal.arn:
        identity["arn"] = principal.arn
    if principal.account_id:
        identity["accountId"] = principal.account_id
    if principal.access_key_id:
        identity["accessKeyId"] = principal.access_key_id
    return identity


class AuditLog:
    """Queues audit records and writes them to the store off the request path."""

    def __init__(
        self, store: Store, *, flush_interval: float = 0.2, batch_size: int = 1000
    ) -> None:
        self._store = store
        store.migrate("audit", MIGRATIONS)
        self._pending: deque[dict[str, Any]] = deque()
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="squall-audit")
        self._local = threading.local()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def record(self, event: dict[str, Any]) -> None:
        self._pending.append(event)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    def new_event(
        self,
        *,
        principal: Principal,
        event_source: str,
        event_name: str,
        region: str,
        source_ip: str,
        user_agent: str,
        request_id: str,
        read_only: bool,
        recipient_account: str,
    ) -> dict[str, Any]:
        return {
            "eventVersion": EVENT_VERSION,
            "userIdentity": user_identity(principal),
            # eventTime and eventID are filled in by the writer thread, off the request path
            "eventTime": None,
            "_epoch": time.time(),
            "eventSource": event_source,
            "eventName": event_name,
            "awsRegion": region,
            "sourceIPAddress": source_ip,
            "userAgent": user_agent,
            "requestParameters": None,
            "responseElements": None,
            "requestID": request_id,
            "eventID": None,
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": recipient_account,
            "eventCategory": "Management",
        }

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="squall-audit-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        self._writer.shutdown(wait=True)

    async def flush(self) -> None:
        while self._pending:
            batch = [
                self._pending.popleft() for _ in range(min(len(self._pending), self._batch_size))
            ]
            try:
                await asyncio.get_running_loop().run_in_executor(self._writer, self._write, batch)
            except Exception:
                self._pending.extendleft(reversed(batch))  # kept, in order, for the next try
                raise

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing audit records failed; will retry")
                await asyncio.sleep(1)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        conn = self._connection()
        for event in batch:
            epoch = event.get("_epoch") or time.time()
            event["eventTime"] = event["eventTime"] or datetime.fromtimestamp(epoch, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            event["eventID"] = event["eventID"] or str(uuid.uuid4())
        rows = [
            (
                event["eventID"],
                event.pop("_epoch", time.time()),
                event["recipientAccountId"],
                event["awsRegion"],
                event["eventSource"],
                event["eventName"],
                int(event["readOnly"]),
                orjson.dumps(event, default=str),
            )
            for event in batch
        ]
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO audit_events (event_id, event_time, account_id, region, event_source,"
                " event_name, read_only, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._store.connect()
            self._local.conn = conn
        return conn
