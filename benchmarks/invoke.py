"""Lambda Invoke through the HTTP API: warm latency, cold starts, throughput.

The real `squall server` is started on a free loopback port with one function (a handler that
returns its event). A keep-alive HTTP/1.1 client sends pre-signed Invoke requests, so the
figures measure the server and the sandbox, not client-side signing:
- warm: sequential invokes over one connection (p50/p99), next to the HTTP floor (a bare ASGI
  app under the same uvicorn stack) measured in the same run: the ratio is what squall adds;
- cold: the first invoke of freshly created functions (a new sandbox each time);
- throughput: invokes/s from 1, 8 and 64 connections at once (`benchmarks/load.py`: one
  uvloop client process, so the client's own CPU stays small on a 2-core box).

The function gets 1,769 MB (one full vCPU, as on Lambda) so that the figures show squall's
overhead rather than the CPU quota of a small function; the warm figure is also taken at
128 MB, whose CFS quota (128/1769 of a CPU per 20 ms period) caps one sandbox's rate.
"""

from __future__ import annotations

import http.client
import io
import statistics
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from benchmarks.edge import drive, machine, start_floor, start_squall
from benchmarks.load import requests_per_second

HANDLER = "def handler(event, context):\n    return event\n"
CLIENTS = (1, 8, 64)
FULL_CPU_MB = 1769


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return buffer.getvalue()


def _lambda(port: int) -> Any:
    import boto3

    return boto3.client(
        "lambda",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def create_function(port: int, name: str, memory_mb: int = 128) -> None:
    _lambda(port).create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/bench",
        Handler="app.handler",
        Code={"ZipFile": _zip()},
        MemorySize=memory_mb,
    )


def signed_invoke(port: int, name: str, body: bytes = b'{"n":1}') -> tuple[str, str, bytes, dict]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    path = f"/2015-03-31/functions/{name}/invocations"
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}{path}", data=body)
    SigV4Auth(Credentials("test", "test"), "lambda", "us-east-1").add_auth(request)
    return "POST", path, body, dict(request.prepare().headers)


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "count": len(seconds),
        "p50_ms": statistics.median(seconds) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
    }


def cold_starts(port: int, count: int) -> list[float]:
    """The first invoke of `count` new functions, each over a fresh keep-alive connection."""
    names = [f"cold-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for name in names:
        create_function(port, name)
    latencies = []
    for name in names:
        method, path, body, headers = signed_invoke(port, name)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.connect()
        began = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - began)
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"cold invoke answered {response.status}")
        time.sleep(0.02)  # let the zygote refill its standby, as between real cold starts
    return latencies


def run(quick: bool = False) -> dict[str, Any]:
    count = 1000 if quick else 5000
    cold_count = 10 if quick else 40
    results: dict[str, Any] = {"machine": machine(), "invokes": count}
    floor_request = ("POST", "/", b'{"n":1}', {"Content-Type": "application/json"})
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process, port = start_floor(workdir)
        try:
            drive(port, floor_request, 200)
            floor = summary(drive(port, floor_request, count))
        finally:
            process.terminate()
            process.wait()
        process, port = start_squall(workdir)
        try:
            create_function(port, "bench-small")
            small = signed_invoke(port, "bench-small")
            drive(port, small, 200)  # the cold start and warm-up
            warm_small = summary(drive(port, small, count))
            create_function(port, "bench", FULL_CPU_MB)
            request = signed_invoke(port, "bench")
            drive(port, request, 200)
            warm = summary(drive(port, request, count))
            throughput = {}
            for clients in CLIENTS:
                per_client = max(50, 2 * count // clients)
                requests_per_second(port, request, clients, 10)  # scale out first: cold starts
                throughput[f"{clients}_clients_rps"] = requests_per_second(
                    port, request, clients, per_client
                )
            cold = summary(cold_starts(port, cold_count))
        finally:
            process.terminate()
            process.wait()
    results["floor_http"] = floor
    results["warm_invoke"] = warm
    results["warm_invoke_128mb"] = warm_small
    results["cold_invoke"] = cold
    results["throughput"] = throughput
    results["ratios"] = {
        "warm_p50_over_floor_p50": warm["p50_ms"] / floor["p50_ms"],
        "warm_p50_added_ms": warm["p50_ms"] - floor["p50_ms"],
    }
    return results
