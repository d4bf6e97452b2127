"""Matching REST requests (method, path, query, headers) to operations by their `requestUri`.

Several operations can share one template (S3's `PUT /{Bucket}/{Key+}` is PutObject, CopyObject,
UploadPart and UploadPartCopy). They differ in required members bound to the query string or
headers (`uploadId`, `x-amz-copy-source`), as S3 itself tells them apart: among the routes whose
path and query literals match, the one whose required query and header members are all present,
and most numerous, wins; deprecated duplicates lose ties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote

from botocore.model import OperationModel

from .model import service_model

_LITERAL, _LABEL, _GREEDY = 0, 1, 2

Score = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Route:
    operation_name: str
    method: str
    segments: tuple[tuple[int, str], ...]
    query_literals: tuple[tuple[str, str | None], ...]
    score: Score
    # Required members bound to the query string (wire names) and headers (lower-case names).
    required_query: tuple[str, ...] = ()
    required_headers: tuple[str, ...] = ()
    deprecated: bool = False

    def match(self, parts: list[str], query: Mapping[str, str]) -> dict[str, str] | None:
        for key, value in self.query_literals:
            if key not in query or (value is not None and query[key] != value):
                return None
        return match_segments(self.segments, parts)

    def satisfied(self, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
        """Whether the request carries every required query and header member of the route."""
        return all(name in query for name in self.required_query) and all(
            name in headers for name in self.required_headers
        )

    def rank(self, query: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, ...]:
        requirements = len(self.required_query) + len(self.required_headers)
        satisfied = self.satisfied(query, headers)
        return (
            *self.score,
            int(satisfied),
            requirements if satisfied else -requirements,
            int(not self.deprecated),
        )


def match_segments(
    segments: tuple[tuple[int, str], ...], parts: list[str]
) -> dict[str, str] | None:
    """Labels of a path (split on "/", still percent-encoded) against a template, or None."""
    labels: dict[str, str] = {}
    index = 0
    for kind, text in segments:
        if kind == _GREEDY:
            rest = parts[index:]
            if not rest or rest == [""]:
                return None
            labels[text] = unquote("/".join(rest))
            return labels
        if index >= len(parts):
            return None
        part = parts[index]
        if kind == _LITERAL:
            if part != text:
                return None
        elif part == "":
            return None
        else:
            labels[text] = unquote(part)
        index += 1
    remaining = parts[index:]
    if remaining and remaining != [""]:
        return None
    return labels


def compile_route(operation: OperationModel) -> Route:
    method = operation.http.get("method", "POST").upper()
    uri = operation.http.get("requestUri", "/")
    path, _, query = uri.partition("?")
    segments: list[tuple[int, str]] = []
    for part in path.strip("/").split("/") if path.strip("/") else []:
        if part.startswith("{") and part.endswith("+}"):
            segments.append((_GREEDY, part[1:-2]))
        elif part.startswith("{") and part.endswith("}"):
            segments.append((_LABEL, part[1:-1]))
        else:
            segments.append((_LITERAL, part))
    literals: list[tuple[str, str | None]] = []
    id_bonus = 0
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        if key == "x-id":
            id_bonus = 1
            continue
        literals.append((key, value if eq else None))
    literal_count = sum(1 for kind, _ in segments if kind == _LITERAL)
    greedy = any(kind == _GREEDY for kind, _ in segments)
    score = (len(literals), literal_count, 0 if greedy else 1, len(segments) * 2 + id_bonus)
    required_query, required_headers = _required_located(operation)
    return Route(
        operation.name,
        method,
        tuple(segments),
        tuple(literals),
        score,
        required_query,
        required_headers,
        bool(operation.deprecated),
    )


def _required_located(operation: OperationModel) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Wire names of the required input members bound to the query string and to headers."""
    shape = operation.input_shape
    if shape is None:
        return (), ()
    query: list[str] = []
    headers: list[str] = []
    for name in shape.required_members:  # type: ignore[attr-defined]
        member = shape.members[name]  # type: ignore[attr-defined]
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "querystring" and member.type_name != "map":
            query.append(wire)
        elif location == "header":
            headers.append(wire.lower())
    return tuple(query), tuple(headers)


@cache
def routes_for(service_name: str) -> dict[str, tuple[Route, ...]]:
    """The service's routes by method, most specific template first."""
    model = service_model(service_name)
    by_method: dict[str, list[Route]] = {}
    for name in model.operation_names:
        route = compile_route(model.operation_model(name))
        by_method.setdefault(route.method, []).append(route)
    return {
        method: tuple(sorted(routes, key=lambda r: r.score, reverse=True))
        for method, routes in by_method.items()
    }


@cache
def route_of(service_name: str, operation_name: str) -> Route:
    """The route of one operation."""
    return compile_route(service_model(service_name).operation_model(operation_name))


def path_parts(raw_path: str) -> list[str]:
    return raw_path.split("/")[1:] if raw_path.startswith("/") else raw_path.split("/")


@cache
def _route_index(
    service_name: str,
) -> dict[str, tuple[dict[str, tuple[Route, ...]], tuple[Route, ...]]]:
    """Per method: the routes that can match a path by its first segment (routes whose first
    segment is that literal, and those starting with a label), and those starting with a label
    alone; each in the order of `routes_for`."""
    index = {}
    for method, routes in routes_for(service_name).items():
        open_routes = tuple(r for r in routes if not _starts_with_literal(r))
        literals = {r.segments[0][1] for r in routes if _starts_with_literal(r)}
        by_first = {
            literal: tuple(
                r for r in routes if not _starts_with_literal(r) or r.segments[0][1] == literal
            )
            for literal in literals
        }
        index[method] = (by_first, open_routes)
    return index


def _starts_with_literal(route: Route) -> bool:
    return bool(route.segments) and route.segments[0][0] == _LITERAL


def _candidates(service_name: str, method: str, parts: list[str]) -> tuple[Route, ...]:
    entry = _route_index(service_name).get(method)
    if entry is None:
        return ()
    by_first, open_routes = entry
    return by_first.get(parts[0], open_routes) if parts else open_routes


def find_route(
    service_name: str,
    method: str,
    raw_path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
) -> tuple[Route, dict[str, str]] | None:
    """The best route for a request and its path labels, or None when no template matches."""
    parts = path_parts(raw_path)
    present_headers: Mapping[str, str] = headers or {}
    best: tuple[tuple[int, ...], Route, dict[str, str]] | None = None
    for route in _candidates(service_name, method, parts):
        if best is not None and route.score < best[1].score:
            break  # routes are sorted by score: nothing further can win
        labels = route.match(parts, query)
        if labels is None:
            continue
        rank = route.rank(query, present_headers)
        if best is None or rank > best[0]:
            best = (rank, route, labels)
    return (best[1], best[2]) if best else None


def first_literal_segments(service_name: str) -> set[str]:
    """Literal first path segments of a service's routes (to recognise its unsigned requests)."""
    found = set()
    for routes in routes_for(service_name).values():
        for route in routes:
            if route.segments and route.segments[0][0] == _LITERAL:
                found.add(route.segments[0][1])
    return found
