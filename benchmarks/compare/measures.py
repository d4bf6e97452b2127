"""The figures, taken the same way from every system.

The control plane (creating functions, buckets, notifications) goes through boto3 clients built
by `client()`, identical for every system. Latency and throughput are taken with requests that
botocore signs once up front (SigV4, as boto3 signs them) and a keep-alive HTTP/1.1 client sends
again and again, so that the figures measure the server rather than client-side signing; one
row repeats the warm invoke through a plain boto3 `invoke` call to show what an SDK user sees.
Every loop is bounded both in count and in time, so that a slow peer cannot stall the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import statistics
import subprocess
import sys
import time
import uuid
import zipfile
from typing import Any

from benchmarks.compare.systems import REPO, Running, mem_available_mb

REGION = "us-east-1"
ROLE = "arn:aws:iam::000000000000:role/bench"
FULL_CPU_MB = 1769  # one vCPU, as on Lambda: the figures show overhead, not a CPU quota
KIB = 1024

SILENT = "def handler(event, context):\n    return event\n"
PRINTS = "def handler(event, context):\n    print('a line from the handler')\n    return event\n"
MEMORY_HOG = (  # bytes * n writes every page, so they are all charged to the function
    "def handler(event, context):\n"
    "    block = b'x' * (300 * 1024 * 1024)\n"
    "    return {'allocated': len(block)}\n"
)
SLEEPER = (
    "import time\n\ndef handler(event, context):\n    time.sleep(5)\n    return {'slept': 5}\n"
)

Request = tuple[str, str, bytes, dict[str, str]]


# ---- clients


def client(endpoint: str, service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, read_timeout=120, connect_timeout=5),
    )


def package(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def deploy(lam: Any, name: str, source: str, memory_mb: int = 128, timeout_s: int = 30) -> None:
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": package(source)},
        MemorySize=memory_mb,
        Timeout=timeout_s,
    )
    wait_active(lam, name)


def wait_active(lam: Any, name: str, timeout: float = 60) -> None:
    """Poll until the function's State is Active (or absent: a system without states)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = lam.get_function_configuration(FunctionName=name).get("State")
        if state in (None, "Active"):
            return
        if state == "Failed":
            raise RuntimeError(f"function {name} failed to become active")
        time.sleep(0.02)
    raise TimeoutError(f"function {name} still not active after {timeout} s")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def signed_invoke(port: int, name: str, body: bytes = b'{"n":1}') -> Request:
    from benchmarks.invoke import signed_invoke as sign

    return sign(port, name, body)


# ---- latency and throughput


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "count": len(seconds),
        "p50_ms": statistics.median(seconds) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def sequential(port: int, request: Request, count: int, max_seconds: float) -> list[float]:
    """Send `request` up to `count` times over one keep-alive connection, for at most
    `max_seconds`; the latency of each, in seconds. Raises on any answer but 200."""
    method, path, body, headers = request
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds
    try:
        while len(latencies) < count and time.perf_counter() < deadline:
            began = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            latencies.append(time.perf_counter() - began)
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}: {data[:200]!r}")
    finally:
        conn.close()
    return latencies


def latency(port: int, request: Request, count: int, max_seconds: float) -> dict[str, float]:
    sequential(port, request, max(5, count // 10), max_seconds / 5)  # warm-up
    return summary(sequential(port, request, count, max_seconds))


async def _client_loop(port: int, raw: bytes, deadline: float, tally: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            writer.write(raw)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await asyncio.wait_for(reader.readexactly(length), 120)
            tally["ok" if head[9:12] == b"200" else "errors"] += 1
    finally:
        writer.close()


async def _hammer(port: int, raw: bytes, clients: int, seconds: float) -> dict[str, float]:
    tally = {"ok": 0, "errors": 0}
    began = time.perf_counter()
    await asyncio.gather(*(_client_loop(port, raw, began + seconds, tally) for _ in range(clients)))
    elapsed = time.perf_counter() - began
    return {"per_s": tally["ok"] / elapsed, "errors": tally["errors"], "seconds": elapsed}


def throughput(port: int, request: Request, clients: int, seconds: float) -> dict[str, float]:
    """Completed requests per second from `clients` keep-alive connections at once, over
    `seconds` (one uvloop client process: its own CPU stays small), after a warm-up of a
    quarter of that (a system that scales out pays its cold starts there)."""
    import uvloop

    from benchmarks.load import raw_request

    raw = raw_request(port, *request)
    uvloop.run(_hammer(port, raw, clients, max(0.5, seconds / 4)))
    return uvloop.run(_hammer(port, raw, clients, seconds))


def ensure_bucket(endpoint: str, bucket: str) -> None:
    s3 = client(endpoint, "s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)


# ---- Lambda figures


def warm_up_server(running: Running) -> None:
    """One function deployed and invoked, so that what a system starts on its first invoke
    (squall: the runtime's zygote) is not billed to the first "new function" measured."""
    lam = client(running.endpoint, "lambda")
    name = unique("first")
    deploy(lam, name, SILENT)
    lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()


def cold_invokes(running: Running, count: int) -> dict[str, float]:
    """The first invoke of `count` new functions (128 MB), each on a fresh connection."""
    warm_up_server(running)
    lam = client(running.endpoint, "lambda")
    names = [unique("cold") for _ in range(count)]
    for name in names:
        deploy(lam, name, SILENT)
    latencies = []
    for name in names:
        latencies.append(sequential(running.port, signed_invoke(running.port, name), 1, 120)[0])
        time.sleep(0.05)  # a pause, as between real cold starts
    return summary(latencies)


def warm_invokes(running: Running, count: int, max_seconds: float) -> dict[str, Any]:
    lam = client(running.endpoint, "lambda")
    figures: dict[str, Any] = {}
    for key, source in (("warm_invoke", SILENT), ("warm_invoke_print", PRINTS)):
        name = unique("warm")
        deploy(lam, name, source, FULL_CPU_MB)
        figures[key] = latency(running.port, signed_invoke(running.port, name), count, max_seconds)
    name = unique("warm")
    deploy(lam, name, SILENT, FULL_CPU_MB)
    calls = []
    deadline = time.perf_counter() + max_seconds / 2
    lam.invoke(FunctionName=name, Payload=b'{"n":1}')["Payload"].read()
    while len(calls) < count // 5 and time.perf_counter() < deadline:
        began = time.perf_counter()
        lam.invoke(FunctionName=name, Payload=b'{"n":1}')["Payload"].read()
        calls.append(time.perf_counter() - began)
    figures["warm_invoke_boto3"] = summary(calls)
    return figures


def invoke_throughput(
    running: Running, clients: tuple[int, ...], seconds: float
) -> dict[str, dict[str, float]]:
    lam = client(running.endpoint, "lambda")
    name = unique("load")
    deploy(lam, name, SILENT, FULL_CPU_MB)
    request = signed_invoke(running.port, name)
    return {str(n): throughput(running.port, request, n, seconds) for n in clients}


def idle_density(running: Running, count: int) -> dict[str, Any]:
    """Memory per idle warm function: `count` new functions invoked once each, then left
    idle; the drop of the host's MemAvailable (which sees kernel memory too: namespaces, page
    tables), and the growth of the server's process tree (PSS) for comparison."""
    lam = client(running.endpoint, "lambda")
    names = [unique("idle") for _ in range(count)]
    for name in names:
        deploy(lam, name, SILENT)
    time.sleep(1)
    before_available, before_tree = mem_available_mb(), running.memory()
    for name in names:
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        response["Payload"].read()
        if response.get("FunctionError"):
            raise RuntimeError(f"idle function {name} failed")
    time.sleep(2)
    after_available, after_tree = mem_available_mb(), running.memory()
    added = after_tree["processes"] - before_tree["processes"]
    per_function = (before_available - after_available) / count
    figures = {
        "functions": count,
        "host_mb_per_function": per_function,
        "tree_pss_mb_per_function": (after_tree["pss_mb"] - before_tree["pss_mb"]) / count,
        "processes_added": added,
        "keeps_a_process": added >= count // 2,
    }
    if figures["keeps_a_process"] and per_function > 0:
        figures["per_gib"] = 1024 / per_function
    return figures


def limits(running: Running) -> dict[str, Any]:
    """A function that writes 300 MB with MemorySize=128 and one that sleeps 5 s with
    Timeout=1: enforced when the invoke reports an error (a timeout saying so) in time."""
    lam = client(running.endpoint, "lambda")
    figures: dict[str, Any] = {}
    for key, source, memory, timeout, in_time in (
        ("memory", MEMORY_HOG, 128, 30, 15.0),
        ("timeout", SLEEPER, FULL_CPU_MB, 1, 3.0),
    ):
        name = unique(key)
        deploy(lam, name, source, memory, timeout)
        began = time.perf_counter()
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        payload = response["Payload"].read()
        elapsed = time.perf_counter() - began
        error = response.get("FunctionError")
        right = b"timed out" in payload.lower() if key == "timeout" else b"allocated" not in payload
        figures[key] = {
            "enforced": bool(error) and right and elapsed < in_time,
            "seconds": elapsed,
            "function_error": error,
            "payload": payload[:200].decode(errors="replace"),
        }
    return figures


# ---- S3 figures


def s3_objects(running: Running, count: int, max_seconds: float, bucket: str = "bench") -> dict:
    """1 KB PutObject and GetObject over one keep-alive connection (signed up front with an
    unsigned payload, as SDKs sign over TLS)."""
    from benchmarks.s3 import signed

    if running.name != "floor":
        ensure_bucket(running.endpoint, bucket)
    body = bytes(range(256)) * 4
    put = signed(running.port, "PUT", f"/{bucket}/small/object-0", body)
    get = signed(running.port, "GET", f"/{bucket}/small/object-0")
    return {
        "s3_put_1kb": latency(running.port, put, count, max_seconds),
        "s3_get_1kb": latency(running.port, get, count, max_seconds),
    }


def put_to_handler(running: Running, events: int, pause: float = 0.05) -> dict[str, Any]:
    """A function subscribed to s3:ObjectCreated:* prints time.time() first thing; PUT 1 KB
    objects one at a time and read the handler's start times back from CloudWatch Logs."""
    from benchmarks.s3 import BUCKET, EVENTS_BUCKET, _notified_function, handler_starts, signed

    port = running.port
    name = unique("notified")
    try:
        ensure_bucket(running.endpoint, BUCKET)
        _notified_function(port, name)
    except Exception as exc:
        return {"unsupported": f"setting up the notification failed: {exc}"[:300]}
    body = bytes(range(256)) * 4
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def put(key: str) -> float:
        method, path, data, headers = signed(port, "PUT", f"/{EVENTS_BUCKET}/{key}", body)
        sent = time.time()
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"PUT answered {response.status}")
        return sent

    put("warm-up")
    try:
        handler_starts(port, name, {"warm-up"}, timeout=20)
    except (TimeoutError, Exception) as exc:
        conn.close()
        return {"unsupported": f"no handler start seen for a PUT within 20 s ({exc})"[:300]}
    sent = {}
    for index in range(events):
        key = f"event-{index:05d}"
        sent[key] = put(key)
        time.sleep(pause)
    conn.close()
    starts = handler_starts(port, name, set(sent), timeout=60)
    return summary([starts[key] - when for key, when in sent.items()])


# ---- the floor's own


def fork_floor(count: int) -> dict[str, float]:
    """A fork of a warm, boto3-sized Python process answering one byte over a pipe (in a fresh
    interpreter, so the harness's own heap and threads are not what is forked)."""
    code = (
        "import json; from benchmarks.sandbox import fork_floor; "
        f"print(json.dumps(fork_floor({count})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    return {"count": figures["samples"], "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"]}
