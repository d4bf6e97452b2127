"""The framed protocol between the host and a sandbox over a unix socketpair.

This module runs on both sides, including inside sandboxes on any supported Python (3.9+):
keep it free of newer syntax at runtime and of non-stdlib imports.

A frame is a 5-byte header, `>IB` (body length, kind), then the body. Bodies of the kinds
that carry a payload are `>I` meta length, meta (JSON object), then the raw payload bytes.

host → sandbox:  INVOKE  meta {requestId, deadlineMs, invokedFunctionArn, clientContext?,
                                identity?, traceId?}, payload = the event bytes
                 SHUTDOWN (no body)
sandbox → host:  READY       meta {initDurationMs}
                 INIT_ERROR  meta {errorType, errorMessage, stackTrace?}, payload = error JSON
                 RESULT      meta {requestId}, payload = the response bytes
                 ERROR       meta {requestId, errorType}, payload = error JSON
                               ({errorMessage, errorType, requestId, stackTrace})
"""

from __future__ import annotations

import json
import signal
import socket
import struct
from typing import Any

HEADER = struct.Struct(">IB")
META_LENGTH = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024

INVOKE = 1
SHUTDOWN = 2
READY = 10
INIT_ERROR = 11
RESULT = 12
ERROR = 13

KIND_NAMES = {
    INVOKE: "INVOKE",
    SHUTDOWN: "SHUTDOWN",
    READY: "READY",
    INIT_ERROR: "INIT_ERROR",
    RESULT: "RESULT",
    ERROR: "ERROR",
}


class WireError(Exception):
    """The peer closed the socket or sent something that is not a frame."""


def encode(kind: int, meta: dict[str, Any] | None = None, payload: bytes = b"") -> bytes:
    if meta is None and not payload:
        return HEADER.pack(0, kind)
    meta_bytes = json.dumps(meta or {}, separators=(",", ":")).encode()
    body_length = META_LENGTH.size + len(meta_bytes) + len(payload)
    return b"".join(
        (HEADER.pack(body_length, kind), META_LENGTH.pack(len(meta_bytes)), meta_bytes, payload)
    )


def decode_body(body: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a body into (meta, payload)."""
    if not body:
        return {}, b""
    if len(body) < META_LENGTH.size:
        raise WireError("frame body shorter than its meta length")
    (meta_length,) = META_LENGTH.unpack_from(body)
    end = META_LENGTH.size + meta_length
    if end > len(body):
        raise WireError("meta length past the end of the frame")
    meta = json.loads(body[META_LENGTH.size : end]) if meta_length else {}
    return meta, body[end:]


def send(
    sock: socket.socket, kind: int, meta: dict[str, Any] | None = None, payload: bytes = b""
) -> None:
    sock.sendall(encode(kind, meta, payload))


def recv(sock: socket.socket) -> tuple[int, dict[str, Any], bytes]:
    """Block until one whole frame arrives: (kind, meta, payload)."""
    header = _recv_exactly(sock, HEADER.size)
    length, kind = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise WireError(f"frame of {length} bytes is over the limit")
    body = _recv_exactly(sock, length) if length else b""
    meta, payload = decode_body(body)
    return kind, meta, payload


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if count == 0:
            raise WireError("connection closed")
        got += count
    return bytes(buffer)


_SIGNAL_NAMES = {
    signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt",
    signal.SIGQUIT: "quit",
    signal.SIGILL: "illegal instruction",
    signal.SIGTRAP: "trace/breakpoint trap",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGKILL: "killed",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGPIPE: "broken pipe",
    signal.SIGALRM: "alarm clock",
    signal.SIGTERM: "terminated",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
    signal.SIGSYS: "bad system call",
}


def exit_description(returncode: int) -> str:
    """What Lambda says of a runtime process that ended with this Popen returncode."""
    if returncode == 0:
        return "Runtime exited without providing a reason"
    if returncode < 0:
        number = -returncode
        try:
            name = _SIGNAL_NAMES.get(signal.Signals(number)) or f"signal {number}"
        except ValueError:
            name = f"signal {number}"
        return f"Runtime exited with error: signal: {name}"
    return f"Runtime exited with error: exit status {returncode}"
