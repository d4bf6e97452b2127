"""XML bodies for the query and rest-xml protocols: shape-driven writing and reading."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from botocore.model import Shape

from .documents import DecodeError
from .values import (
    WireValueError,
    b64decode,
    b64encode,
    epoch_seconds,
    format_scalar_text,
    iso8601,
    parse_bool,
    parse_integer,
    parse_timestamp,
    rfc822,
)


def write_element(shape: Shape, value: Any, name: str, out: list[str], xmlns: str = "") -> None:
    """Append `<name>value</name>` for `value` of `shape` to `out`."""
    kind = shape.type_name
    if kind == "structure":
        _write_structure(shape, value, name, out, xmlns)
    elif kind == "list":
        out.append(f"<{name}>")
        write_list_items(shape, value, shape.member.serialization.get("name", "member"), out)  # type: ignore[attr-defined]
        out.append(f"</{name}>")
    elif kind == "map":
        out.append(f"<{name}>")
        write_map_entries(shape, value, out, wrap="entry")
        out.append(f"</{name}>")
    else:
        out.append(f"<{name}>{escape(scalar_text(shape, value))}</{name}>")


def write_members(shape: Shape, value: dict[str, Any], out: list[str]) -> None:
    """Append the child elements of a structure (not its own start and end tags)."""
    for member_name, member in shape.members.items():  # type: ignore[attr-defined]
        item = value.get(member_name)
        if item is None or member.serialization.get("xmlAttribute"):
            continue
        location = member.serialization.get("location")
        if location in ("header", "headers", "statusCode", "uri", "querystring"):
            continue
        wire = member.serialization.get("name", member_name)
        if member.type_name == "list" and member.serialization.get("flattened"):
            write_list_items(member, item, member.member.serialization.get("name", wire), out)  # type: ignore[attr-defined]
        elif member.type_name == "map" and member.serialization.get("flattened"):
            write_map_entries(member, item, out, wrap=wire)
        else:
            write_element(member, item, wire, out)


def write_list_items(shape: Shape, items: list[Any], tag: str, out: list[str]) -> None:
    member = shape.member  # type: ignore[attr-defined]
    for item in items:
        write_element(member, item, tag, out)


def write_map_entries(shape: Shape, entries: dict[str, Any], out: list[str], wrap: str) -> None:
    key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
    key_tag = key_shape.serialization.get("name", "key")
    value_tag = value_shape.serialization.get("name", "value")
    for key, item in entries.items():
        out.append(f"<{wrap}>")
        write_element(key_shape, key, key_tag, out)
        write_element(value_shape, item, value_tag, out)
        out.append(f"</{wrap}>")


def _write_structure(
    shape: Shape, value: dict[str, Any], name: str, out: list[str], xmlns: str
) -> None:
    attributes = ""
    namespace = shape.serialization.get("xmlNamespace")
    if isinstance(namespace, dict):
        prefix = namespace.get("prefix")
        uri = namespace.get("uri", "")
        attributes += f" xmlns:{prefix}={quoteattr(uri)}" if prefix else f" xmlns={quoteattr(uri)}"
    elif xmlns:
        attributes += f" xmlns={quoteattr(xmlns)}"
    for member_name, member in shape.members.items():  # type: ignore[attr-defined]
        if member.serialization.get("xmlAttribute") and value.get(member_name) is not None:
            wire = member.serialization.get("name", member_name)
            attributes += f" {wire}={quoteattr(scalar_text(member, value[member_name]))}"
    out.append(f"<{name}{attributes}>")
    write_members(shape, value, out)
    out.append(f"</{name}>")


def scalar_text(shape: Shape, value: Any, *, timestamp_format: str = "iso8601") -> str:
    kind = shape.type_name
    if kind == "blob":
        return b64encode(value)
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", timestamp_format)
        if fmt == "rfc822":
            return rfc822(value)
        if fmt == "unixTimestamp":
            return format_scalar_text(epoch_seconds(value))
        return iso8601(value)
    return format_scalar_text(value)


def parse_scalar_text(shape: Shape, text: str, path: str) -> Any:
    """Decode a scalar from its text form (XML, query strings, headers)."""
    kind = shape.type_name
    try:
        if kind in ("integer", "long", "short", "byte", "bigInteger"):
            return parse_integer(kind, text)
        if kind in ("float", "double", "bigDecimal"):
            return float(text)
        if kind == "boolean":
            return parse_bool(text)
        if kind == "blob":
            return b64decode(text)
        if kind == "timestamp":
            return parse_timestamp(text)
    except (ValueError, WireValueError):
        raise DecodeError(path, f"Invalid value for {kind}") from None
    return text


def local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_xml(body: bytes) -> ET.Element:
    """Parse an XML document; expat rejects entity expansion attacks and external entities."""
    parser = ET.XMLParser()
    parser.feed(body)
    return parser.close()


def read_element(shape: Shape, element: ET.Element, path: str = "") -> Any:
    """Decode an element's content as `shape`."""
    kind = shape.type_name
    if kind == "structure":
        return _read_structure(shape, element, path)
    if kind == "list":
        member = shape.member  # type: ignore[attr-defined]
        return [read_element(member, child, f"{path}.{i + 1}") for i, child in enumerate(element)]
    if kind == "map":
        return _read_map(shape, list(element), path)
    return parse_scalar_text(shape, element.text or "", path)


def _read_structure(shape: Shape, element: ET.Element, path: str) -> dict[str, Any]:
    children: dict[str, list[ET.Element]] = {}
    for child in element:
        children.setdefault(local_name(child.tag), []).append(child)
    result: dict[str, Any] = {}
    for member_name, member in shape.members.items():  # type: ignore[attr-defined]
        wire = member.serialization.get("name", member_name)
        member_path = f"{path}.{member_name}" if path else member_name
        if member.serialization.get("xmlAttribute"):
            attribute = _attribute(element, wire)
            if attribute is not None:
                result[member_name] = parse_scalar_text(member, attribute, member_path)
            continue
        if member.type_name == "list" and member.serialization.get("flattened"):
            tag = member.member.serialization.get("name", wire)  # type: ignore[attr-defined]
            found = children.get(tag) or children.get(wire)
            if found:
                inner = member.member  # type: ignore[attr-defined]
                result[member_name] = [read_element(inner, child, member_path) for child in found]
            continue
        if member.type_name == "map" and member.serialization.get("flattened"):
            if wire in children:
                result[member_name] = _read_map(member, children[wire], member_path)
            continue
        if wire in children:
            result[member_name] = read_element(member, children[wire][0], member_path)
    return result


def _read_map(shape: Shape, entries: list[ET.Element], path: str) -> dict[str, Any]:
    key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
    key_tag = key_shape.serialization.get("name", "key")
    value_tag = value_shape.serialization.get("name", "value")
    result: dict[str, Any] = {}
    for entry in entries:
        key_element = value_element = None
        for child in entry:
            tag = local_name(child.tag)
            if tag == key_tag:
                key_element = child
            elif tag == value_tag:
                value_element = child
        if key_element is None or value_element is None:
            raise DecodeError(path, "Map entry without key or value")
        key = key_element.text or ""
        result[key] = read_element(value_shape, value_element, f"{path}.{key}")
    return result


def _attribute(element: ET.Element, wire: str) -> str | None:
    if ":" in wire:
        local = wire.split(":", 1)[1]
        for name, value in element.attrib.items():
            if local_name(name) == local:
                return value
        return None
    return element.attrib.get(wire)
