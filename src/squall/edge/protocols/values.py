"""Scalar encodings shared by the protocols: timestamps, blobs, booleans."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime


class WireValueError(Exception):
    """A wire value that does not decode as its shape's type."""


def parse_timestamp(value: str | int | float) -> datetime:
    """Accept epoch seconds, ISO 8601 and RFC 822 forms, as AWS servers do."""
    if isinstance(value, bool):
        raise WireValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise WireValueError(f"not a timestamp: {value!r}")
        return datetime.fromtimestamp(value, UTC)
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as exc:
            raise WireValueError(f"not a timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_datetime(value: datetime | int | float | str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_timestamp(value)


def iso8601(value: datetime | int | float | str) -> str:
    moment = as_datetime(value).astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def rfc822(value: datetime | int | float | str) -> str:
    return format_datetime(as_datetime(value).astimezone(UTC), usegmt=True)


def epoch_seconds(value: datetime | int | float | str) -> int | float:
    seconds = as_datetime(value).timestamp()
    return int(seconds) if seconds == int(seconds) else round(seconds, 3)


def format_timestamp(value: datetime | int | float | str, fmt: str) -> str | int | float:
    if fmt == "iso8601":
        return iso8601(value)
    if fmt == "rfc822":
        return rfc822(value)
    return epoch_seconds(value)


def b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireValueError("invalid base64") from exc


def b64encode(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode("ascii")


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise WireValueError(f"not a boolean: {text!r}")


def format_scalar_text(value: object) -> str:
    """Text of a scalar in XML bodies, query strings and headers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    return str(value)
