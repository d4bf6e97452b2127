"""S3: 1 KB PUT and GET, streaming a large object, and PUT → handler start.

The real `squall server` is started on a free loopback port with a temporary data dir, on the
same disk as the floors' files. Figures:
- 1 KB objects: PutObject and GetObject over one keep-alive connection (p50/p99, ops/s) and
  from 8 connections at once (each its own key; `benchmarks/load.py`'s uvloop client), with
  requests signed up front (SigV4 with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, as SDKs send
  over TLS), so the figures measure the server rather than client-side signing; a boto3 run
  shows what an SDK user sees. Two floors from the same run: the bare ASGI app under the same
  uvicorn stack (the HTTP floor of every request) and a durable 1 KB write to the same disk
  (temporary file, fsync, rename, fsync of the directory: what a PUT that survives `kill -9`
  costs at least, before any metadata);
- a large object (1 GiB; 256 MiB with --quick) streamed up with one PutObject (the client
  `sendfile`s a file) and down with one GetObject (the client writes a file and fsyncs it),
  next to the floor: a plain copy of the same file on the same disk (1 MiB reads and writes,
  then fsync; the best of three); boto3's managed transfers (`upload_file`: multipart, 8 MiB
  parts, 10 threads; `download_file`: ranged GETs) for comparison;
- PUT → handler start: a function subscribed to the bucket's `s3:ObjectCreated:*` events
  prints `time.time()` as the first thing its handler does; the benchmark PUTs 1 KB objects
  one at a time (20 ms apart, so each event finds the function warm and idle; a request
  after an idle pause costs more than a back-to-back one, on this VM even a bare health check),
  notes the wall-clock time each PUT was sent and answered, and reads the handler's times back
  from CloudWatch Logs. The function gets 1,769 MB (a full vCPU) as in the invoke benchmark.
  The same PUTs, paced the same, to a bucket without notifications show what a notification
  adds to the PUT itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import re
import socket
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from benchmarks.edge import drive, machine, start_floor, start_squall
from benchmarks.invoke import FULL_CPU_MB, summary
from benchmarks.load import _connection, raw_request, requests_per_second

REGION = "us-east-1"
ACCOUNT = "000000000000"
BUCKET = "bench"
EVENTS_BUCKET = "bench-events"
KIB = 1024
MIB = 1024 * 1024
CHUNK = MIB
CONNECTIONS = 8

NOTIFIED_HANDLER = """\
import time

def handler(event, context):
    started = time.time()
    key = event["Records"][0]["s3"]["object"]["key"]
    print(f"HANDLER_START {key} {started:.6f}")
"""
START_LINE = re.compile(r"HANDLER_START (\S+) ([0-9.]+)")


# ---- clients and signing


def _client(port: int, service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


def signed(
    port: int, method: str, path: str, body: bytes = b"", length: int | None = None
) -> tuple[str, str, bytes, dict[str, str]]:
    """A request signed once, up front, with an unsigned payload (any body of its length)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    class UnsignedPayload(S3SigV4Auth):
        def _should_sha256_sign_payload(self, request: Any) -> bool:
            return False

    headers = {"Content-Length": str(len(body) if length is None else length)}
    if method == "PUT":
        headers["Content-Type"] = "application/octet-stream"
    request = AWSRequest(method=method, url=f"http://127.0.0.1:{port}{path}", headers=headers)
    UnsignedPayload(Credentials("test", "test"), "s3", REGION).add_auth(request)
    return method, path, body, dict(request.headers.items())


def _spread(port: int, requests: list[tuple], per_connection: int) -> float:
    """Requests per second with one connection per request, each sending its own."""
    import uvloop

    async def hammer() -> float:
        latencies: list[float] = []
        began = time.perf_counter()
        await asyncio.gather(
            *(
                _connection(port, raw_request(port, *request), per_connection, latencies)
                for request in requests
            )
        )
        return len(latencies) / (time.perf_counter() - began)

    return uvloop.run(hammer())


# ---- 1 KB objects


def durable_write_floor(directory: Path, body: bytes, count: int) -> dict[str, float]:
    """Write `body` durably `count` times: temp file, fsync, rename, fsync the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    latencies = []
    for index in range(count):
        began = time.perf_counter()
        temp = directory / f".tmp-{index}"
        with open(temp, "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temp, directory / f"object-{index % 100}")
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        latencies.append(time.perf_counter() - began)
    return {**summary(latencies), "ops_per_s": count / sum(latencies)}


def small_objects(port: int, count: int) -> dict[str, Any]:
    body = random.Random(1).randbytes(KIB)
    put = signed(port, "PUT", f"/{BUCKET}/small/object-0", body)
    get = signed(port, "GET", f"/{BUCKET}/small/object-0")
    figures: dict[str, Any] = {}
    drive(port, put, 100)  # warm-up (and the object GET reads)
    latencies = drive(port, put, count)
    figures["put"] = {**summary(latencies), "sequential_ops_per_s": count / sum(latencies)}
    drive(port, get, 100)
    latencies = drive(port, get, count)
    figures["get"] = {**summary(latencies), "sequential_ops_per_s": count / sum(latencies)}
    per_connection = max(50, count // CONNECTIONS)
    puts = [
        signed(port, "PUT", f"/{BUCKET}/small/object-{index}", body) for index in range(CONNECTIONS)
    ]
    figures["put"][f"{CONNECTIONS}_connections_ops_per_s"] = _spread(port, puts, per_connection)
    figures["get"][f"{CONNECTIONS}_connections_ops_per_s"] = requests_per_second(
        port, get, CONNECTIONS, per_connection
    )
    s3 = _client(port, "s3")
    calls = max(100, count // 10)
    s3.put_object(Bucket=BUCKET, Key="small/boto3", Body=body)
    s3.get_object(Bucket=BUCKET, Key="small/boto3")["Body"].read()
    for operation in ("put", "get"):
        latencies = []
        for _ in range(calls):
            began = time.perf_counter()
            if operation == "put":
                s3.put_object(Bucket=BUCKET, Key="small/boto3", Body=body)
            else:
                s3.get_object(Bucket=BUCKET, Key="small/boto3")["Body"].read()
            latencies.append(time.perf_counter() - began)
        figures[f"boto3_{operation}"] = {**summary(latencies), "ops_per_s": calls / sum(latencies)}
    return figures


# ---- a large object, streamed


def make_source(path: Path, size: int) -> str:
    """A file of `size` pseudo-random bytes (a 1 MiB block, varied per MiB); its MD5 hex."""
    block = bytearray(random.Random(2).randbytes(CHUNK))
    md5 = hashlib.md5()
    with open(path, "wb") as file:
        for index in range(size // CHUNK):
            block[:8] = index.to_bytes(8, "big")
            file.write(block)
            md5.update(block)
        file.flush()
        os.fsync(file.fileno())  # no writeback of it left to compete with what is measured
    return md5.hexdigest()


def copy_floor(source: Path, target: Path) -> float:
    """A plain copy on the same disk: 1 MiB reads and writes, then fsync; seconds."""
    began = time.perf_counter()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    elapsed = time.perf_counter() - began
    target.unlink()
    return elapsed


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, the headers (lower-cased) and whatever of the body came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("connection closed before the response head")
        data += more
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


def stream_up(port: int, source: Path, key: str) -> tuple[float, str]:
    """One PutObject whose body the client `sendfile`s; (seconds, the ETag answered)."""
    size = source.stat().st_size
    method, path, _, headers = signed(port, "PUT", f"/{BUCKET}/{key}", length=size)
    with socket.create_connection(("127.0.0.1", port)) as sock, open(source, "rb") as file:
        began = time.perf_counter()
        sock.sendall(raw_request(port, method, path, b"", headers))
        sock.sendfile(file)
        status, answer, rest = _read_head(sock)
        elapsed = time.perf_counter() - began
    if status != 200:
        raise RuntimeError(f"PUT of {size} bytes answered {status}: {rest[:300]!r}")
    return elapsed, answer.get("etag", "").strip('"')


def stream_down(port: int, key: str, target: Path) -> tuple[float, int]:
    """One GetObject written to `target` and fsync'd; (seconds, bytes)."""
    method, path, _, headers = signed(port, "GET", f"/{BUCKET}/{key}")
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with socket.create_connection(("127.0.0.1", port)) as sock, open(target, "wb") as file:
        began = time.perf_counter()
        sock.sendall(raw_request(port, method, path, b"", headers))
        status, answer, rest = _read_head(sock)
        if status != 200 or "content-length" not in answer:
            raise RuntimeError(f"GET answered {status} {answer}: {rest[:300]!r}")
        remaining = int(answer["content-length"]) - len(rest)
        file.write(rest)
        while remaining > 0:
            received = sock.recv_into(view, min(CHUNK, remaining))
            if not received:
                raise ConnectionError(f"connection closed with {remaining} bytes to go")
            file.write(view[:received])
            remaining -= received
        file.flush()
        os.fsync(file.fileno())
        elapsed = time.perf_counter() - began
    return elapsed, int(answer["content-length"])


def same_edges(first: Path, second: Path) -> bool:
    """The first and last MiB of two files of the same size are equal."""
    if first.stat().st_size != second.stat().st_size:
        return False
    with open(first, "rb") as a, open(second, "rb") as b:
        if a.read(CHUNK) != b.read(CHUNK):
            return False
        a.seek(-CHUNK, os.SEEK_END)
        b.seek(-CHUNK, os.SEEK_END)
        return a.read() == b.read()


def large_object(port: int, workdir: Path, size: int) -> dict[str, Any]:
    source, target = workdir / "source.bin", workdir / "download.bin"
    md5 = make_source(source, size)
    mb = size / 1e6
    copy_seconds = min(copy_floor(source, workdir / "copy.bin") for _ in range(3))
    up_seconds, etag = stream_up(port, source, "large/object")
    if etag != md5:
        raise RuntimeError(f"PUT answered ETag {etag}, the file's MD5 is {md5}")
    down_seconds, length = stream_down(port, "large/object", target)
    if length != size or not same_edges(source, target):
        raise RuntimeError("the downloaded object differs from the uploaded file")
    target.unlink()
    s3 = _client(port, "s3")
    s3.delete_object(Bucket=BUCKET, Key="large/object")
    began = time.perf_counter()
    s3.upload_file(str(source), BUCKET, "large/boto3")
    boto3_up = time.perf_counter() - began
    began = time.perf_counter()
    s3.download_file(BUCKET, "large/boto3", str(target))
    boto3_down = time.perf_counter() - began
    if not same_edges(source, target):
        raise RuntimeError("boto3's download differs from the uploaded file")
    target.unlink()
    source.unlink()
    s3.delete_object(Bucket=BUCKET, Key="large/boto3")
    floor = mb / copy_seconds
    return {
        "bytes": size,
        "floor_copy_mb_per_s": floor,
        "put_mb_per_s": mb / up_seconds,
        "get_mb_per_s": mb / down_seconds,
        "boto3_upload_file_mb_per_s": mb / boto3_up,
        "boto3_download_file_mb_per_s": mb / boto3_down,
        "ratios": {
            "put_over_copy": mb / up_seconds / floor,
            "get_over_copy": mb / down_seconds / floor,
        },
    }


# ---- PUT → handler start


def _notified_function(port: int, name: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", NOTIFIED_HANDLER)
    lam, s3 = _client(port, "lambda"), _client(port, "s3")
    arn = lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=f"arn:aws:iam::{ACCOUNT}:role/bench",
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
        MemorySize=FULL_CPU_MB,
    )["FunctionArn"]
    lam.add_permission(
        FunctionName=name,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=f"arn:aws:s3:::{EVENTS_BUCKET}",
    )
    s3.create_bucket(Bucket=EVENTS_BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=EVENTS_BUCKET,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )


def handler_starts(port: int, name: str, wanted: set[str], timeout: float = 60) -> dict:
    """key → the handler's start time, read from the function's log group."""
    logs = _client(port, "logs")
    starts: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=f"/aws/lambda/{name}", filterPattern="HANDLER_START"
            )
            for page in pages:
                for event in page["events"]:
                    match = START_LINE.search(event["message"])
                    if match:
                        starts[match.group(1)] = float(match.group(2))
        except logs.exceptions.ResourceNotFoundException:
            pass
        if wanted <= starts.keys():
            return starts
        time.sleep(0.2)
    missing = sorted(wanted - starts.keys())
    raise TimeoutError(f"{len(missing)} handler starts never logged, e.g. {missing[:5]}")


def put_to_handler(port: int, count: int, pause: float = 0.02) -> dict[str, Any]:
    import http.client

    name = "bench-notified"
    _notified_function(port, name)
    body = random.Random(3).randbytes(KIB)
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def put(key: str, bucket: str = EVENTS_BUCKET) -> tuple[float, float]:
        method, path, data, headers = signed(port, "PUT", f"/{bucket}/{key}", body)
        sent = time.time()
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        response.read()
        answered = time.time()
        if response.status != 200:
            raise RuntimeError(f"PUT answered {response.status}")
        return sent, answered

    put("warm-up")  # the cold start
    handler_starts(port, name, {"warm-up"})
    times = {}
    for index in range(count):
        key = f"event-{index:05d}"
        times[key] = put(key)
        time.sleep(pause)
    control = []  # the same PUTs, paced the same, to a bucket without notifications
    for index in range(count):
        sent, answered = put(f"control/event-{index:05d}", BUCKET)
        control.append(answered - sent)
        time.sleep(pause)
    conn.close()
    starts = handler_starts(port, name, set(times))
    from_sent = [starts[key] - sent for key, (sent, _) in times.items()]
    from_answer = [starts[key] - answered for key, (_, answered) in times.items()]
    put_latency = [answered - sent for sent, answered in times.values()]
    return {
        "events": count,
        "from_put_sent": summary(from_sent),
        "from_put_answered": {**summary(from_answer), "min_ms": min(from_answer) * 1000},
        "put": summary(put_latency),
        "put_without_notification": summary(control),
    }


def run(quick: bool = False) -> dict[str, Any]:
    count = 1000 if quick else 5000
    size = (256 if quick else 1024) * MIB
    events = 50 if quick else 200
    results: dict[str, Any] = {
        "machine": machine(),
        "load_average_at_start": os.getloadavg()[0],  # other work on the machine skews figures
        "requests": count,
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process, port = start_floor(workdir)
        try:
            floor_request = ("PUT", "/", random.Random(1).randbytes(KIB), {})
            drive(port, floor_request, 200)
            floor = summary(drive(port, floor_request, count))
        finally:
            process.terminate()
            process.wait()
        results["floor_http"] = floor
        results["floor_durable_write_1kb"] = durable_write_floor(
            workdir / "floor-writes", random.Random(1).randbytes(KIB), count
        )
        process, port = start_squall(workdir)
        try:
            _client(port, "s3").create_bucket(Bucket=BUCKET)
            results["object_1kb"] = small_objects(port, count)
            results["large_object"] = large_object(port, workdir, size)
            results["put_to_handler_start"] = put_to_handler(port, events)
        finally:
            process.terminate()
            process.wait()
    small = results["object_1kb"]
    results["ratios"] = {
        "put_p50_over_http_floor_p50": small["put"]["p50_ms"] / floor["p50_ms"],
        "get_p50_over_http_floor_p50": small["get"]["p50_ms"] / floor["p50_ms"],
        "put_p50_over_durable_write_p50": small["put"]["p50_ms"]
        / results["floor_durable_write_1kb"]["p50_ms"],
    }
    return results
