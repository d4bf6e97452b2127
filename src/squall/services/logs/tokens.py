"""Opaque paging tokens: a small JSON document, base64url-encoded."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from .errors import invalid


def encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def decode(token: str) -> dict[str, Any]:
    """The state a token carries; InvalidParameterException for anything squall did not issue."""
    try:
        state = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        state = None
    if not isinstance(state, dict):
        raise invalid("The specified nextToken is invalid.")
    return state


def position(state: dict[str, Any]) -> tuple[int, int]:
    """An event position `(timestamp, seq)` from a decoded token."""
    ts, seq = state.get("t"), state.get("s")
    if type(ts) is not int or type(seq) is not int:
        raise invalid("The specified nextToken is invalid.")
    return ts, seq


# GetLogEvents' tokens look like AWS's: a direction ("f" or "b") and digits.
_OFFSET = 1 << 62  # timestamps may be anything the ingest path was given; keep digits positive


def stream_token(direction: str, ts: int, seq: int) -> str:
    return f"{direction}/{ts + _OFFSET:020d}{seq:020d}"


def parse_stream_token(token: str) -> tuple[str, int, int]:
    direction, _, digits = token.partition("/")
    if direction not in ("f", "b") or len(digits) != 40 or not digits.isdigit():
        raise invalid("The specified nextToken is invalid.")
    return direction, int(digits[:20]) - _OFFSET, int(digits[20:])
