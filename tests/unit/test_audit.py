"""Audit records: redaction of secrets and the batching writer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from squall.core.context import Principal
from squall.edge.audit import HIDDEN, AuditLog, redact
from squall.edge.protocols.model import service_model
from squall.store import open_store

ROOT = Principal("000000000000", "arn:aws:iam::000000000000:root", "000000000000", "Root", "test")


def test_redact_drops_blobs_and_camel_cases_names() -> None:
    shape = service_model("lambda").operation_model("CreateFunction").input_shape
    params = {
        "FunctionName": "f",
        "Code": {"ZipFile": b"PK\x03\x04 secret code"},
        "Environment": {"Variables": {"A": "1"}},
        "MemorySize": 256,
    }
    redacted = redact(shape, params)
    assert redacted["functionName"] == "f"
    assert redacted["memorySize"] == 256
    assert "zipFile" not in json.dumps(redacted)
    assert b"secret" not in json.dumps(redacted).encode()


def test_redact_hides_sensitive_members() -> None:
    shape = service_model("iam").operation_model("CreateLoginProfile").input_shape
    redacted = redact(shape, {"UserName": "alice", "Password": "hunter2"})
    assert redacted == {"userName": "alice", "password": HIDDEN}


def test_records_are_batched_into_the_store(tmp_path: Path) -> None:
    store = open_store(tmp_path)

    async def scenario() -> None:
        audit = AuditLog(store, flush_interval=0.05)
        await audit.start()
        for index in range(30):
            event = audit.new_event(
                principal=ROOT,
                event_source="sts.amazonaws.com",
                event_name="GetCallerIdentity",
                region="us-east-1",
                source_ip="127.0.0.1",
                user_agent="test",
                request_id=f"r{index}",
                read_only=True,
                recipient_account="000000000000",
            )
            audit.record(event)
        await asyncio.sleep(0.3)
        count = store.conn.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
        assert count == 30  # written by the flusher, before shutdown
        await audit.stop()

    asyncio.run(scenario())
    rows = store.conn.execute("SELECT record FROM audit_events ORDER BY seq").fetchall()
    assert [json.loads(row[0])["requestID"] for row in rows] == [f"r{i}" for i in range(30)]
    store.close()
