"""Input validation against the constraints of botocore's models.

Messages follow AWS's own wording, e.g. "1 validation error detected: Value 'x y' at
'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: ...".
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from botocore.model import Shape


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
        _check_structure(shape, value, path, problems)
    elif kind == "list":
        _check_length(shape, len(value), value, path, problems, counted=True)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}.{index + 1}.member", problems)  # type: ignore[attr-defined]
    elif kind == "map":
        _check_length(shape, len(value), value, path, problems, counted=True)
        for key, item in value.items():
            _check(shape.key, key, f"{path}.{key}.key", problems)  # type: ignore[attr-defined]
            _check(shape.value, item, f"{path}.{key}.value", problems)  # type: ignore[attr-defined]
    elif kind == "string":
        _check_string(shape, value, path, problems)
    elif kind == "blob":
        if isinstance(value, bytes | bytearray):
            _check_length(shape, len(value), None, path, problems, counted=False)
    elif kind in ("integer", "long", "float", "double", "short", "byte"):
        _check_range(shape, value, path, problems)


def _check_structure(shape: Shape, value: dict[str, Any], path: str, problems: list[str]) -> None:
    members = shape.members  # type: ignore[attr-defined]
    for name in shape.required_members:  # type: ignore[attr-defined]
        if value.get(name) is None:
            problems.append(
                f"Value null at '{_join(path, name)}' failed to satisfy constraint: "
                "Member must not be null"
            )
    for name, item in value.items():
        member = members.get(name)
        if member is not None and item is not None:
            _check(member, item, _join(path, name), problems)


def _check_string(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, str):
        return
    _check_length(shape, len(value), value, path, problems, counted=False)
    enum = shape.enum  # type: ignore[attr-defined]
    if enum and value not in enum:
        problems.append(
            f"{_described(shape, value, path)} failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(enum)}]"
        )
    pattern = shape.metadata.get("pattern")
    if pattern:
        compiled = _compiled(pattern)
        if compiled is not None and compiled.fullmatch(value) is None:
            problems.append(
                f"{_described(shape, value, path)} failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )


def _check_length(
    shape: Shape, length: int, value: Any, path: str, problems: list[str], *, counted: bool
) -> None:
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    if low is not None and length < low:
        problems.append(
            f"{_described(shape, value, path)} failed to satisfy constraint: "
            f"Member must have length greater than or equal to {low}"
        )
    if high is not None and length > high:
        problems.append(
            f"{_described(shape, value, path)} failed to satisfy constraint: "
            f"Member must have length less than or equal to {high}"
        )


def _check_range(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    if low is not None and value < low:
        problems.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {low}"
        )
    if high is not None and value > high:
        problems.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value less than or equal to {high}"
        )


def _described(shape: Shape, value: Any, path: str) -> str:
    if value is None or shape.metadata.get("sensitive"):
        return f"Value at '{path}'"
    if isinstance(value, list | dict):
        return f"Value '{value}' at '{path}'"
    return f"Value '{value}' at '{path}'"


def _join(path: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{path}.{name}" if path else name


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """Model patterns are Java regexes; the few that Python cannot compile are not enforced."""
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:
        return None
