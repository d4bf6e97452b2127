"""Conversion between wire documents (JSON or CBOR values) and Python values, driven by shapes.

Operations see Python values: `bytes` for blobs, aware `datetime` for timestamps, `int`,
`float`, `bool`, `str`, `list` and `dict`. Unknown members are dropped, as AWS does.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from botocore.model import Shape, StructureShape

from .values import (
    WireValueError,
    b64decode,
    b64encode,
    check_integer,
    format_timestamp,
    parse_timestamp,
)


class DecodeError(Exception):
    """A wire value whose type does not fit its shape."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{message} at '{path}'" if path else message)
        self.path = path


_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def decode(shape: Shape, value: Any, *, native_binary: bool = False, path: str = "") -> Any:
    """Decode `value` as `shape`. With `native_binary` (CBOR), blobs and timestamps arrive typed."""
    kind = shape.type_name
    if shape.metadata.get("document"):
        return value  # a document member is free-form JSON: handed over as is
    if kind == "structure":
        if not isinstance(value, dict):
            raise DecodeError(path, "Expected an object")
        return _decode_structure(shape, value, native_binary, path)  # type: ignore[arg-type]
    if kind == "list":
        if not isinstance(value, list):
            raise DecodeError(path, "Expected a list")
        member = shape.member  # type: ignore[attr-defined]
        return [
            decode(member, item, native_binary=native_binary, path=f"{path}.{i + 1}")
            for i, item in enumerate(value)
            if item is not None or shape.metadata.get("sparse")
        ]
    if kind == "map":
        if not isinstance(value, dict):
            raise DecodeError(path, "Expected a map")
        item_shape = shape.value  # type: ignore[attr-defined]
        return {
            str(key): decode(item_shape, item, native_binary=native_binary, path=f"{path}.{key}")
            for key, item in value.items()
            if item is not None
        }
    return decode_scalar(shape, value, native_binary=native_binary, path=path)


def _decode_structure(
    shape: StructureShape, value: dict[str, Any], native_binary: bool, path: str
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, member in shape.members.items():
        wire = member.serialization.get("name", name)
        item = value.get(wire)
        if item is None:
            continue
        member_path = f"{path}.{_lower_first(name)}" if path else _lower_first(name)
        result[name] = decode(member, item, native_binary=native_binary, path=member_path)
    return result


def decode_scalar(shape: Shape, value: Any, *, native_binary: bool = False, path: str = "") -> Any:
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            raise DecodeError(path, "Expected a string")
        return value
    if kind in ("integer", "long", "short", "byte", "bigInteger"):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise DecodeError(path, "Expected an integer")
        try:
            return check_integer(kind, value)
        except WireValueError as exc:
            raise DecodeError(path, f"Integer out of range for {kind}") from exc
    if kind in ("float", "double", "bigDecimal"):
        if isinstance(value, str) and value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError(path, "Expected a number")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise DecodeError(path, "Expected a boolean")
        return value
    if kind == "blob":
        if native_binary and isinstance(value, bytes | bytearray):
            return bytes(value)
        if not isinstance(value, str):
            raise DecodeError(path, "Expected base64-encoded binary data")
        try:
            return b64decode(value)
        except WireValueError as exc:
            raise DecodeError(path, "Invalid base64-encoded binary data") from exc
    if kind == "timestamp":
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise DecodeError(path, "Expected a timestamp")
        try:
            return parse_timestamp(value)
        except WireValueError as exc:
            raise DecodeError(path, "Invalid timestamp") from exc
    return value  # document and anything newer: passed through untouched


def encode(
    shape: Shape,
    value: Any,
    *,
    native_binary: bool = False,
    timestamp_format: str = "unixTimestamp",
) -> Any:
    """Encode a Python value for a JSON (or, with `native_binary`, CBOR) document."""
    kind = shape.type_name
    if shape.metadata.get("document"):
        return value
    if kind == "structure":
        result: dict[str, Any] = {}
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            item = value.get(name)
            if item is None:
                continue
            wire = member.serialization.get("name", name)
            result[wire] = encode(
                member, item, native_binary=native_binary, timestamp_format=timestamp_format
            )
        return result
    if kind == "list":
        member = shape.member  # type: ignore[attr-defined]
        return [
            encode(member, item, native_binary=native_binary, timestamp_format=timestamp_format)
            for item in value
        ]
    if kind == "map":
        item_shape = shape.value  # type: ignore[attr-defined]
        return {
            str(key): encode(
                item_shape, item, native_binary=native_binary, timestamp_format=timestamp_format
            )
            for key, item in value.items()
        }
    return encode_scalar(
        shape, value, native_binary=native_binary, timestamp_format=timestamp_format
    )


def encode_scalar(
    shape: Shape,
    value: Any,
    *,
    native_binary: bool = False,
    timestamp_format: str = "unixTimestamp",
) -> Any:
    kind = shape.type_name
    if kind == "blob":
        if native_binary:
            return value.encode() if isinstance(value, str) else bytes(value)
        return b64encode(value)
    if kind == "timestamp":
        if native_binary:
            return value if isinstance(value, datetime) else parse_timestamp(value)
        fmt = shape.serialization.get("timestampFormat", timestamp_format)
        return format_timestamp(value, fmt)
    if kind in ("float", "double") and isinstance(value, float) and not math.isfinite(value):
        if native_binary:
            return value  # CBOR has NaN and the infinities; JSON spells them as strings
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if kind == "string" and not isinstance(value, str):
        return str(value)
    return value


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]
