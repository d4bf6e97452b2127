"""A light HTTP/1.1 load generator: one uvloop process, N keep-alive connections.

Each connection sends pre-built request bytes one after another (no pipelining) and reads
each response whole (headers, then Content-Length bytes). The client's own cost per request
is a few tens of microseconds, so on a small machine it measures the server rather than
the client, unlike one Python `http.client` process per connection.
"""

from __future__ import annotations

import asyncio
import time

import uvloop


def raw_request(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    if not any(name.lower() == "host" for name in headers):
        lines.append(f"Host: 127.0.0.1:{port}")  # as http.client sends it (and SigV4 signs it)
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if not any(name.lower() == "content-length" for name in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connection(port: int, request: bytes, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if status != 200:
                raise RuntimeError(f"unexpected status {status}: {head[:200]!r}")
    finally:
        writer.close()


async def _hammer(port: int, request: bytes, connections: int, per_connection: int) -> float:
    latencies: list[float] = []
    began = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, request, per_connection, latencies) for _ in range(connections))
    )
    return len(latencies) / (time.perf_counter() - began)


def requests_per_second(
    port: int,
    request: tuple[str, str, bytes, dict[str, str]],
    connections: int,
    per_connection: int,
) -> float:
    """Completed requests per second with `connections` clients sending at once."""
    raw = raw_request(port, *request)
    return uvloop.run(_hammer(port, raw, connections, per_connection))
