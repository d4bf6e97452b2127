"""Opaque paging tokens: a small JSON document, base64url-encoded."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from .errors import invalid

# SQLite's integers: a token's numbers outside them would fail in the query (OverflowError).
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def decode(token: str) -> dict[str, Any]:
    """The state a token carries; InvalidParameterException for anything squall did not issue."""
    try:
        state = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        state = None
    if not isinstance(state, dict) or any(
        type(value) is int and not INT64_MIN <= value <= INT64_MAX for value in state.values()
    ):
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
    # ASCII digits (int() rejects some that isdigit() accepts, such as "²"), and numbers within
    # SQLite's integers (20 digits reach past them)
    if (
        direction not in ("f", "b")
        or len(digits) != 40
        or not (digits.isascii() and digits.isdigit())
        or int(digits[:20]) - _OFFSET > INT64_MAX
        or int(digits[20:]) > INT64_MAX
    ):
        raise invalid("The specified nextToken is invalid.")
    return direction, int(digits[:20]) - _OFFSET, int(digits[20:])
