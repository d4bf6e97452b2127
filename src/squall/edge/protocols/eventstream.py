"""AWS event-stream output (`application/vnd.amazon.eventstream`), as botocore reads it.

A message is a prelude (total length and headers length, both uint32 big-endian, then the
CRC32 of those 8 bytes), the headers, the payload and the CRC32 of everything before it. A
header is its name's length (uint8), the name, a value type byte and the value; squall sends
string values only (type 7: a uint16 big-endian length, then UTF-8).

An output's event-stream member is a structure with the `eventstream` trait whose members are
the event types (`event` trait) and the modeled exceptions (`exception` trait). Operations
hand over an async iterator of `{member_name: value}` dicts; `encode_events` turns it into
the frames of the response body.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from botocore.model import Shape

from squall.core.errors import InternalFailure, ServiceError

from .documents import encode

CONTENT_TYPE = "application/vnd.amazon.eventstream"

BodyEncoder = Callable[[Shape, Any], bytes]
"""Encodes a structure's value as an event body document (JSON for rest-json)."""

log = logging.getLogger("squall.edge")

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_NAME_LENGTH = struct.Struct(">B")
_STRING_VALUE = struct.Struct(">BH")
_STRING = 7
# What botocore's parser accepts; a larger message would fail on the client.
_MAX_HEADERS_LENGTH = 128 * 1024
_MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string `headers` and `payload`."""
    encoded = b"".join(_encode_header(name, value) for name, value in headers.items())
    if len(encoded) > _MAX_HEADERS_LENGTH:
        raise ValueError(f"event headers of {len(encoded)} bytes exceed {_MAX_HEADERS_LENGTH}")
    if len(payload) > _MAX_PAYLOAD_LENGTH:
        raise ValueError(f"event payload of {len(payload)} bytes exceeds {_MAX_PAYLOAD_LENGTH}")
    total = _PRELUDE.size + _CRC.size + len(encoded) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(encoded))
    message = b"".join((prelude, _crc(prelude), encoded, payload))
    return message + _crc(message)


def encode_event(
    shape: Shape,
    event: Mapping[str, Any],
    *,
    encode_body: BodyEncoder | None = None,
    body_type: str = "application/json",
) -> bytes:
    """The message for `event`, `{member_name: value}` naming one member of the event-stream
    structure `shape`: an event, or a modeled exception. Bodies are JSON unless `encode_body`
    (with its `body_type`) says otherwise."""
    if len(event) != 1:
        raise ValueError(f"an event names exactly one member of {shape.name}, got {list(event)}")
    ((name, value),) = event.items()
    member = shape.members.get(name)  # type: ignore[attr-defined]
    if member is None:
        raise ValueError(f"{name!r} is not a member of the event stream {shape.name}")
    value = value or {}
    body_encoder = encode_body or _json_body
    if member.metadata.get("exception"):
        headers = {":message-type": "exception", ":exception-type": name}
        headers[":content-type"] = body_type
        return encode_message(headers, body_encoder(member, value))
    headers = {":message-type": "event", ":event-type": name}
    headers.update(_event_headers(member, value))
    content_type, payload = _event_payload(member, value, body_encoder, body_type)
    headers[":content-type"] = content_type
    return encode_message(headers, payload)


def encode_error_event(code: str, message: str) -> bytes:
    """An unmodeled error ending a stream; boto3 raises it as `EventStreamError`."""
    headers = {":message-type": "error", ":error-code": code, ":error-message": message}
    return encode_message(headers, b"")


async def encode_events(
    shape: Shape,
    events: AsyncIterable[Mapping[str, Any]],
    *,
    encode_body: BodyEncoder | None = None,
    body_type: str = "application/json",
) -> AsyncIterator[bytes]:
    """The frames of an event-stream body. The response has started by the time an event
    fails, so a failure ends the stream with an error message rather than an HTTP error."""
    try:
        async for event in events:
            yield encode_event(shape, event, encode_body=encode_body, body_type=body_type)
    except ServiceError as error:
        yield encode_error_event(error.code, error.message)
    except Exception:
        log.exception("event stream of %s failed", shape.name)
        failure = InternalFailure()
        yield encode_error_event(failure.code, failure.message)


def _event_headers(member: Shape, value: Mapping[str, Any]) -> dict[str, str]:
    """The event's members bound to headers (`eventheader`)."""
    headers: dict[str, str] = {}
    for name, item_shape in member.members.items():  # type: ignore[attr-defined]
        item = value.get(name)
        if item is None or not item_shape.serialization.get("eventheader"):
            continue
        if item_shape.type_name != "string":
            raise NotImplementedError(
                f"event header {member.name}.{name} is a {item_shape.type_name}: "
                "squall sends string event headers only"
            )
        headers[name] = str(item)
    return headers


def _event_payload(
    member: Shape, value: Mapping[str, Any], encode_body: BodyEncoder, body_type: str
) -> tuple[str, bytes]:
    """The content type and payload of an event: its `eventpayload` member, or else a document
    of its members not bound to headers."""
    members: dict[str, Shape] = member.members  # type: ignore[attr-defined]
    for name, item_shape in members.items():
        if item_shape.serialization.get("eventpayload"):
            return _explicit_payload(item_shape, value.get(name), encode_body, body_type)
    body = {
        name: item
        for name, item in value.items()
        if name in members and not members[name].serialization.get("eventheader")
    }
    return body_type, encode_body(member, body)


def _explicit_payload(
    shape: Shape, item: Any, encode_body: BodyEncoder, body_type: str
) -> tuple[str, bytes]:
    if shape.type_name == "blob":
        data = b"" if item is None else item
        return "application/octet-stream", data.encode() if isinstance(data, str) else bytes(data)
    if shape.type_name == "string":
        return "text/plain", ("" if item is None else str(item)).encode()
    return body_type, encode_body(shape, {} if item is None else item)


def _json_body(shape: Shape, value: Any) -> bytes:
    return orjson.dumps(encode(shape, value))


def _encode_header(name: str, value: str) -> bytes:
    raw_name = name.encode()
    raw_value = value.encode()
    if not raw_name or len(raw_name) > 0xFF:
        raise ValueError(f"event header name {name!r} must be 1 to 255 bytes")
    if len(raw_value) > 0xFFFF:
        raise ValueError(f"event header {name!r} is longer than 65535 bytes")
    return b"".join(
        (
            _NAME_LENGTH.pack(len(raw_name)),
            raw_name,
            _STRING_VALUE.pack(_STRING, len(raw_value)),
            raw_value,
        )
    )


def _crc(data: bytes) -> bytes:
    return _CRC.pack(zlib.crc32(data))
