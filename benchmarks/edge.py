"""Edge throughput and latency: STS GetCallerIdentity against the machine's HTTP floor.

Three servers are started on free loopback ports, one after another, on this machine:
- floor: a bare ASGI app under the same uvicorn/httptools/uvloop stack, answering 200 at once;
- squall: the real `squall server`, answering signed GetCallerIdentity requests.
A keep-alive HTTP/1.1 client sends the same requests sequentially (latency) and from several
connections at once (throughput). Requests are signed once up front so that the figures
measure the server, not client-side signing; a boto3 run shows what an SDK user sees.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FLOOR_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/xml"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@dataclass
class Figures:
    requests: int
    p50_ms: float
    p99_ms: float
    sequential_rps: float
    concurrent_rps: float
    connections: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(port: int, path: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def start_floor(workdir: Path) -> tuple[subprocess.Popen, int]:
    (workdir / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "floor_app:app",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=workdir,
    )
    wait_up(port, "/")
    return process, port


def start_squall(workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "squall",
            "server",
            "--port",
            str(port),
            "--data-dir",
            str(workdir / "data"),
            "--log-level",
            "warning",
        ],
    )
    wait_up(port, "/_squall/health")
    return process, port


def signed_identity_request(port: int) -> tuple[str, str, bytes, dict[str, str]]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    request = AWSRequest(
        method="POST",
        url=f"http://127.0.0.1:{port}/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials("test", "test"), "sts", "us-east-1").add_auth(request)
    headers = dict(request.prepare().headers)
    return "POST", "/", body, headers


def drive(port: int, request: tuple[str, str, bytes, dict[str, str]], count: int) -> list[float]:
    """Send `count` requests over one keep-alive connection; the latency of each, in seconds."""
    method, path, body, headers = request
    conn = http.client.HTTPConnection("127.0.0.1", port)
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - began)
        if response.status != 200:
            raise RuntimeError(f"unexpected status {response.status}")
    conn.close()
    return latencies


def concurrent_rps(port: int, request: tuple, connections: int, per_connection: int) -> float:
    """Requests per second from `connections` client processes at once (no shared GIL)."""
    code = (
        "import sys, pickle; from benchmarks.edge import drive; "
        "port, request, count = pickle.loads(sys.stdin.buffer.read()); drive(port, request, count)"
    )
    import pickle

    payload = pickle.dumps((port, request, per_connection))
    began = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        for _ in range(connections)
    ]
    threads = [threading.Thread(target=w.communicate, args=(payload,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if any(w.returncode for w in workers):
        raise RuntimeError("a load worker failed")
    return connections * per_connection / elapsed


def measure(port: int, request: tuple, count: int, connections: int) -> Figures:
    drive(port, request, min(200, count))  # warm-up
    latencies = drive(port, request, count)
    ordered = sorted(latencies)
    return Figures(
        requests=count,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=ordered[int(len(ordered) * 0.99) - 1] * 1000,
        sequential_rps=count / sum(latencies),
        concurrent_rps=concurrent_rps(port, request, connections, count // connections),
        connections=connections,
    )


def boto3_rps(port: int, count: int) -> float:
    import boto3

    sts = boto3.client(
        "sts",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    sts.get_caller_identity()
    began = time.perf_counter()
    for _ in range(count):
        sts.get_caller_identity()
    return count / (time.perf_counter() - began)


def run(quick: bool = False) -> dict:
    count = 2000 if quick else 10000
    connections = 4
    results: dict = {"machine": machine(), "requests": count}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        process, port = start_floor(workdir)
        try:
            floor = measure(
                port, ("POST", "/", b"Action=x", {"Content-Type": "text/plain"}), count, connections
            )
        finally:
            process.terminate()
            process.wait()
        process, port = start_squall(workdir)
        try:
            squall = measure(port, signed_identity_request(port), count, connections)
            results["boto3_get_caller_identity_rps"] = boto3_rps(port, count // 10)
        finally:
            process.terminate()
            process.wait()
    results["floor"] = floor.__dict__
    results["squall_get_caller_identity"] = squall.__dict__
    results["ratios"] = {
        "p50_latency_squall_over_floor": squall.p50_ms / floor.p50_ms,
        "sequential_rps_squall_over_floor": squall.sequential_rps / floor.sequential_rps,
        "concurrent_rps_squall_over_floor": squall.concurrent_rps / floor.concurrent_rps,
    }
    return results


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"
