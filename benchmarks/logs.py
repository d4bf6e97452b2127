"""CloudWatch Logs: ingestion throughput and FilterLogEvents latency over a million events.

- ingest: `LogsService.ingest` (the path Lambda's log lines take: 20 lines a call, spread over
  5 groups and 50 streams) until every event is committed, next to the floor: a raw
  `executemany` of the same rows into the same table, in transactions of the same size;
- PutLogEvents through boto3 against `squall server` (7,000 events, ~1 MB, a call), which includes
  boto3's own serialization, the edge's parsing and validation and the audit record;
- FilterLogEvents over one group of 1,000,000 events (50 streams, Lambda-like lines), with a
  term that ~1% of the messages contain and one that none contains, every page of the answer:
  in-process (the handler) and over HTTP (raw signed requests against `squall server`), next
  to two floors: a plain Python scan of the messages held in a list, and the bare SQL scan.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.edge import machine, start_squall

ACCOUNT, REGION = "000000000000", "us-east-1"
GROUP = "/aws/lambda/bench"
RARE, ABSENT = "ERROR", "NoSuchTerm"
LINES_PER_CALL = 20
BATCH = 50_000
PUT_BATCH = 7_000  # events of ~120 bytes: the most under PutLogEvents' 1 MB


def messages(count: int, seed: int = 7) -> list[str]:
    """Lambda-like lines; about 1% carry RARE."""
    rng = random.Random(seed)
    request_id = str(uuid.UUID(int=rng.getrandbits(128)))
    lines = []
    for index in range(count):
        if index % 500 == 0:
            request_id = str(uuid.UUID(int=rng.getrandbits(128)))
        level = RARE if rng.random() < 0.01 else "INFO"
        lines.append(
            f"2024-06-01T12:00:00.{index % 1000:03d}Z\t{request_id}\t{level}\tprocessed order"
            f" {index} for customer c{rng.randrange(10_000)} in {rng.random() * 50:.2f} ms"
        )
    return lines


def stream_name(index: int) -> str:
    return f"2024/06/01/[$LATEST]{index:032x}"


def _ctx() -> Any:
    from squall.core.context import Principal, RequestContext

    root = Principal(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, "Root", "test")
    return RequestContext("bench", "logs", "FilterLogEvents", REGION, root)


# ---- ingestion


def ingest_throughput(workdir: Path, lines: list[str]) -> dict[str, float]:
    from squall.core.config import Settings
    from squall.services.logs.service import LogsService
    from squall.store import open_store

    now = int(time.time() * 1000)
    calls = []
    for number, start in enumerate(range(0, len(lines), LINES_PER_CALL)):
        group = f"{GROUP}-{number % 5}"
        stream = stream_name(number % 50)
        chunk = lines[start : start + LINES_PER_CALL]
        calls.append((group, stream, [(now + start + i, line) for i, line in enumerate(chunk)]))
    store = open_store(workdir / "ingest")
    service = LogsService(Settings(data_dir=workdir / "ingest"), store)
    figures: dict[str, float] = {}

    async def scenario() -> None:
        await service.start()
        began = time.perf_counter()
        for group, stream, events in calls:
            service.ingest(ACCOUNT, REGION, group, stream, events)
        queued = time.perf_counter() - began
        await service.flush()
        stored = time.perf_counter() - began
        await service.stop()
        figures["ingest_call_us"] = queued / len(calls) * 1e6
        figures["events_per_s"] = len(lines) / stored

    asyncio.run(scenario())
    (count,) = store.conn.execute("SELECT count(*) FROM logs_events").fetchone()
    assert count == len(lines), (count, len(lines))
    store.close()
    figures["floor_executemany_events_per_s"] = executemany_floor(workdir / "floor", calls)
    figures["ratio_to_floor"] = figures["events_per_s"] / figures["floor_executemany_events_per_s"]
    return figures


def executemany_floor(path: Path, calls: list[tuple[str, str, list[tuple[int, str]]]]) -> float:
    """The same rows, prebuilt, inserted with `executemany` in transactions of BATCH rows."""
    from squall.services.logs.store import LogStore
    from squall.store import open_store

    store = open_store(path)
    LogStore(store)
    groups = {name: index for index, name in enumerate(sorted({c[0] for c in calls}))}
    streams = {name: index for index, name in enumerate(sorted({c[1] for c in calls}))}
    rows, seq = [], 0
    for group, stream, events in calls:
        for ts, message in events:
            seq += 1
            rows.append((groups[group], ts, seq, streams[stream], ts, message))
    began = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        with store.transaction() as conn:
            conn.executemany(
                "INSERT INTO logs_events (group_id, ts, seq, stream_id, ingested, message)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows[start : start + BATCH],
            )
    elapsed = time.perf_counter() - began
    store.close()
    return len(rows) / elapsed


# ---- FilterLogEvents


def populate(data_dir: Path, lines: list[str]) -> int:
    """One group holding `lines` over the last hour, in 50 streams; the group's id."""
    from squall.services.logs.store import Append, LogStore
    from squall.store import open_store

    store = open_store(data_dir)
    logs = LogStore(store)
    now = int(time.time() * 1000)
    step = 3_600_000 / len(lines)
    for start in range(0, len(lines), BATCH):
        items = []
        for offset in range(0, min(BATCH, len(lines) - start), 1000):
            first = start + offset
            chunk = lines[first : first + 1000]
            events = [(now - 3_600_000 + int((first + i) * step), m) for i, m in enumerate(chunk)]
            items.append(
                Append(ACCOUNT, REGION, GROUP, stream_name(first // 1000 % 50), now, events)
            )
        with store.transaction() as conn:
            logs.append(conn, items, create=True, now=now)
    group_id = logs.require_group(store.conn, ACCOUNT, REGION, GROUP).id
    store.close()
    return group_id


def in_process_filter(data_dir: Path, term: str, repeats: int) -> dict[str, float]:
    from squall.core.config import Settings
    from squall.services.logs.service import LogsService
    from squall.store import open_store

    store = open_store(data_dir)
    service = LogsService(Settings(data_dir=data_dir), store)
    ctx = _ctx()
    timings, found, pages = [], 0, 0

    async def scenario() -> None:
        nonlocal found, pages
        for attempt in range(repeats + 1):  # the first one warms up: not counted
            request: dict[str, Any] = {"logGroupName": GROUP, "filterPattern": term}
            began = time.perf_counter()
            found = pages = 0
            while True:
                answer = await service.filter_log_events(ctx, request)
                found, pages = found + len(answer["events"]), pages + 1
                if "nextToken" not in answer:
                    break
                request = {**request, "nextToken": answer["nextToken"]}
            if attempt:
                timings.append(time.perf_counter() - began)
        await service.stop()

    asyncio.run(scenario())
    store.close()
    return {"median_s": statistics.median(timings), "matches": found, "pages": pages}


def _signed(port: int, target: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=f"http://127.0.0.1:{port}/",
        data=data,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"Logs_20140328.{target}",
        },
    )
    SigV4Auth(Credentials("test", "test"), "logs", REGION).add_auth(request)
    return data, dict(request.prepare().headers)


def http_filter(port: int, term: str, repeats: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    timings, found, pages, first_page = [], 0, 0, []
    for attempt in range(repeats + 1):  # the first one warms up: not counted
        body: dict[str, Any] = {"logGroupName": GROUP, "filterPattern": term}
        began = time.perf_counter()
        found = pages = 0
        while True:
            data, headers = _signed(port, "FilterLogEvents", body)
            conn.request("POST", "/", body=data, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"FilterLogEvents answered {response.status}: {answer}")
            if pages == 0:
                first_page.append(time.perf_counter() - began)
            found, pages = found + len(answer["events"]), pages + 1
            if "nextToken" not in answer:
                break
            body = {**body, "nextToken": answer["nextToken"]}
        if attempt:
            timings.append(time.perf_counter() - began)
        else:
            first_page.clear()
    conn.close()
    return {
        "median_s": statistics.median(timings),
        "first_page_median_s": statistics.median(first_page),
        "matches": found,
        "pages": pages,
    }


def python_scan_floor(lines: list[str], term: str) -> float:
    began = time.perf_counter()
    found = [line for line in lines if term in line]
    elapsed = time.perf_counter() - began
    assert found is not None
    return elapsed


def sql_scan_floor(data_dir: Path, group_id: int, term: str) -> float:
    from squall.store import open_store

    store = open_store(data_dir)
    began = time.perf_counter()
    store.conn.execute(
        "SELECT count(*) FROM logs_events WHERE group_id = ? AND message GLOB ?",
        (group_id, f"*{term}*"),
    ).fetchone()
    elapsed = time.perf_counter() - began
    store.close()
    return elapsed


def put_log_events_throughput(port: int, calls: int, lines: list[str]) -> float:
    import boto3

    logs = boto3.client(
        "logs",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    logs.create_log_group(logGroupName="/bench/put")
    logs.create_log_stream(logGroupName="/bench/put", logStreamName="s")
    now = int(time.time() * 1000)
    batches = [
        [{"timestamp": now, "message": line} for line in lines[i * PUT_BATCH : (i + 1) * PUT_BATCH]]
        for i in range(calls)
    ]
    began = time.perf_counter()
    for batch in batches:
        logs.put_log_events(logGroupName="/bench/put", logStreamName="s", logEvents=batch)
    return calls * PUT_BATCH / (time.perf_counter() - began)


def run(quick: bool = False) -> dict[str, Any]:
    count = 200_000 if quick else 1_000_000
    repeats = 2 if quick else 5
    lines = messages(count)
    results: dict[str, Any] = {"machine": machine(), "events": count}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results["ingest"] = ingest_throughput(workdir, lines)
        data_dir = workdir / "data"  # where start_squall keeps its store
        began = time.perf_counter()
        group_id = populate(data_dir, lines)
        results["populate_s"] = time.perf_counter() - began
        filters: dict[str, Any] = {}
        for label, term in (("rare_1pct", RARE), ("absent", ABSENT)):
            filters[label] = {
                "in_process": in_process_filter(data_dir, term, repeats),
                "floor_python_scan_s": python_scan_floor(lines, term),
                "floor_sql_scan_s": sql_scan_floor(data_dir, group_id, term),
            }
        process, port = start_squall(workdir)
        try:
            for label, term in (("rare_1pct", RARE), ("absent", ABSENT)):
                filters[label]["http"] = http_filter(port, term, repeats)
            results["put_log_events_boto3_events_per_s"] = put_log_events_throughput(
                port, 3 if quick else 10, lines
            )
        finally:
            process.terminate()
            process.wait()
        results["filter"] = filters
    return results


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2))
