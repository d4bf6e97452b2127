"""Inside a sandbox's private network: relay 127.0.0.1:4566 to the platform's API socket.

The sandbox sees only `lo`. squall's API is reachable through a unix socket bound into the
sandbox; this relay accepts TCP connections on the loopback port that `AWS_ENDPOINT_URL`
names and pumps bytes to and from that socket, so boto3 in a function reaches squall and
nothing else. Runs in daemon threads of the sandbox process (Python 3.9+, stdlib only).
"""

from __future__ import annotations

import contextlib
import socket
import threading

BUFFER = 65536


_started: dict[tuple[str, int], socket.socket] = {}


def start(listen: tuple[str, int], target: str) -> socket.socket:
    """Listen on `listen` and relay each connection to the unix socket `target` (a path,
    resolved when a connection arrives). Starting the same address again is a no-op: a
    standby starts its relay ahead of need."""
    if listen in _started:
        return _started[listen]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(listen)
    server.listen(64)
    thread = threading.Thread(
        target=_accept, args=(server, target), name="squall-relay", daemon=True
    )
    thread.start()
    _started[listen] = server
    return server


def _accept(server: socket.socket, target: str) -> None:
    while True:
        try:
            client, _ = server.accept()
        except OSError:
            return
        try:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(target)
        except OSError:
            client.close()
            continue
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(BUFFER)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
