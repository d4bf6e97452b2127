"""Scalar encodings shared by the protocols: timestamps, blobs, booleans."""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime


class WireValueError(Exception):
    """A wire value that does not decode as its shape's type."""


def parse_timestamp(value: str | int | float) -> datetime:
    """Accept epoch seconds, ISO 8601 and RFC 822 forms, as AWS servers do."""
    if isinstance(value, bool):
        raise WireValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return _from_epoch(value)
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return _from_epoch(seconds)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as exc:
            raise WireValueError(f"not a timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _from_epoch(seconds: int | float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):  # NaN, infinities, beyond year 1..9999
        raise WireValueError(f"timestamp out of range: {seconds!r}") from None


_INTEGER_BITS = {"byte": 8, "short": 16, "integer": 32, "long": 64}
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


def check_integer(kind: str, value: int) -> int:
    """`value` if it fits the model type `kind` (a signed 8/16/32/64-bit or big integer)."""
    bits = _INTEGER_BITS.get(kind)
    if bits is not None and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise WireValueError(f"{value} is out of range for {kind}")
    return value


def parse_integer(kind: str, text: str) -> int:
    """An integer from its text form: optional sign and decimal digits only."""
    stripped = text.strip()
    if not _INTEGER_TEXT.fullmatch(stripped) or len(stripped) > 40:
        raise WireValueError(f"not an integer: {text!r}")
    return check_integer(kind, int(stripped))


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
