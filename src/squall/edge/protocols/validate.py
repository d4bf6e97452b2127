"""Input validation against the constraints of botocore's models.

Messages follow AWS's own wording, e.g. "1 validation error detected: Value 'x y' at
'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: ...".
Members of structures inside lists are addressed as `items.1.member.name`. A list of scalars, or
a map's keys or values, that break their shape's constraints are reported once for the whole
collection, listing all of that shape's constraints:

    Value '[a, b]' at 'names' failed to satisfy constraint: Member must satisfy constraint:
    [Member must have length less than or equal to 64, ...]
    Value '{k=v}' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: [...]
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from botocore.model import Shape

_NUMBERS = ("integer", "long", "float", "double", "short", "byte", "bigInteger", "bigDecimal")


def validate(shape: Shape | None, value: dict[str, Any]) -> list[str]:
    """All constraint violations of `value` (a parsed input structure), in member order."""
    if shape is None:
        return []
    problems: list[str] = []
    _check(shape, value, "", problems)
    return problems


def validation_message(problems: list[str]) -> str:
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(problems)


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if isinstance(value, dict):
            _check_structure(shape, value, path, problems)
        return
    described = _described(shape, value, path)
    problems.extend(f"{described} failed to satisfy constraint: {v}" for v in _broken(shape, value))
    if kind == "list" and isinstance(value, list):
        _check_items(shape, value, path, described, problems)
    elif kind == "map" and isinstance(value, dict):
        _check_entries(shape, value, path, described, problems)


def _check_structure(shape: Shape, value: dict[str, Any], path: str, problems: list[str]) -> None:
    members = shape.members  # type: ignore[attr-defined]
    for name in shape.required_members:  # type: ignore[attr-defined]
        if value.get(name) is None:
            problems.append(
                f"Value null at '{_join(path, name)}' failed to satisfy constraint: "
                "Member must not be null"
            )
    for name, member in members.items():
        item = value.get(name)
        if item is not None:
            _check(member, item, _join(path, name), problems)


def _check_items(
    shape: Shape, items: list[Any], path: str, described: str, problems: list[str]
) -> None:
    member = shape.member  # type: ignore[attr-defined]
    if member.type_name == "structure":
        for index, item in enumerate(items):
            _check(member, item, f"{path}.{index + 1}.member", problems)
    elif any(_broken(member, item) for item in items if item is not None):
        problems.append(
            f"{described} failed to satisfy constraint: "
            f"Member must satisfy constraint: [{', '.join(_constraints(member))}]"
        )


def _check_entries(
    shape: Shape, entries: dict[str, Any], path: str, described: str, problems: list[str]
) -> None:
    key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
    if any(_broken(key_shape, key) for key in entries):
        problems.append(
            f"{described} failed to satisfy constraint: "
            f"Map keys must satisfy constraint: [{', '.join(_constraints(key_shape))}]"
        )
    if value_shape.type_name == "structure":
        for key, item in entries.items():
            _check(value_shape, item, f"{path}.{key}.value", problems)
    elif any(_broken(value_shape, item) for item in entries.values() if item is not None):
        problems.append(
            f"{described} failed to satisfy constraint: "
            f"Map value must satisfy constraint: [{', '.join(_constraints(value_shape))}]"
        )


def _constraints(shape: Shape) -> list[str]:
    """AWS's wording of every constraint of a shape, in the order AWS lists them."""
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if shape.type_name in _NUMBERS:
        bounds = [("less than or equal to", high), ("greater than or equal to", low)]
        return [f"Member must have value {text} {n}" for text, n in bounds if n is not None]
    bounds = [("less than or equal to", high), ("greater than or equal to", low)]
    found = [f"Member must have length {text} {n}" for text, n in bounds if n is not None]
    pattern = shape.metadata.get("pattern")
    if pattern and shape.type_name == "string":
        found.append(f"Member must satisfy regular expression pattern: {pattern}")
    enum = getattr(shape, "enum", None)
    if enum:
        found.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    return found


def _broken(shape: Shape, value: Any) -> list[str]:
    """The constraints of `shape` itself (not of its members) that `value` breaks."""
    kind = shape.type_name
    if kind in _NUMBERS:
        return _broken_range(shape, value)
    if kind == "string" and isinstance(value, str):
        return _broken_length(shape, len(value)) + _broken_string(shape, value)
    if kind in ("list", "map", "blob") and isinstance(value, list | dict | bytes | bytearray):
        return _broken_length(shape, len(value))
    return []


def _broken_length(shape: Shape, length: int) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    found = []
    if low is not None and length < low:
        found.append(f"Member must have length greater than or equal to {low}")
    if high is not None and length > high:
        found.append(f"Member must have length less than or equal to {high}")
    return found


def _broken_string(shape: Shape, value: str) -> list[str]:
    found = []
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        found.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    pattern = shape.metadata.get("pattern")
    compiled = _compiled(pattern) if pattern else None
    if compiled is not None and compiled.fullmatch(value) is None:
        found.append(f"Member must satisfy regular expression pattern: {pattern}")
    return found


def _broken_range(shape: Shape, value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    found = []
    if low is not None and value < low:
        found.append(f"Member must have value greater than or equal to {low}")
    if high is not None and value > high:
        found.append(f"Member must have value less than or equal to {high}")
    return found


def _described(shape: Shape, value: Any, path: str) -> str:
    """`Value '<value>' at '<path>'`, or `Value at '<path>'` for sensitive or binary values."""
    if _sensitive(shape) or isinstance(value, bytes | bytearray):
        return f"Value at '{path}'"
    return f"Value '{_java_text(value)}' at '{path}'"


def _sensitive(shape: Shape) -> bool:
    if shape.metadata.get("sensitive"):
        return True
    if shape.type_name == "list":
        return bool(shape.member.metadata.get("sensitive"))  # type: ignore[attr-defined]
    if shape.type_name == "map":
        return bool(
            shape.key.metadata.get("sensitive")  # type: ignore[attr-defined]
            or shape.value.metadata.get("sensitive")  # type: ignore[attr-defined]
        )
    return False


def _java_text(value: Any) -> str:
    """A value as AWS's (Java) services print it: `[a, b]` for lists, `{k=v}` for maps."""
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _join(path: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{path}.{name}" if path else name


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """Model patterns are Java regexes; the few that Python cannot compile are not enforced.

    Java's `\\w`, `\\d` and `\\s` match ASCII only, hence `re.ASCII`.
    """
    try:
        return re.compile(pattern, re.DOTALL | re.ASCII)
    except re.error:
        return None
