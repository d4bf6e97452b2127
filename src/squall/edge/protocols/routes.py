"""Matching REST requests (method, path, query) to operations by their `requestUri` templates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote

from botocore.model import OperationModel

from .model import service_model

_LITERAL, _LABEL, _GREEDY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Route:
    operation_name: str
    method: str
    segments: tuple[tuple[int, str], ...]
    query_literals: tuple[tuple[str, str | None], ...]
    score: tuple[int, int, int, int]

    def match(self, parts: list[str], query: dict[str, str]) -> dict[str, str] | None:
        for key, value in self.query_literals:
            if key not in query or (value is not None and query[key] != value):
                return None
        return match_segments(self.segments, parts)


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
    return Route(operation.name, method, tuple(segments), tuple(literals), score)


@cache
def routes_for(service_name: str) -> dict[str, tuple[Route, ...]]:
    """The service's routes by method, most specific first."""
    model = service_model(service_name)
    by_method: dict[str, list[Route]] = {}
    for name in model.operation_names:
        route = compile_route(model.operation_model(name))
        by_method.setdefault(route.method, []).append(route)
    return {
        method: tuple(sorted(routes, key=lambda r: r.score, reverse=True))
        for method, routes in by_method.items()
    }


def find_route(
    service_name: str, method: str, raw_path: str, query: dict[str, str]
) -> tuple[Route, dict[str, str]] | None:
    parts = raw_path.split("/")[1:] if raw_path.startswith("/") else raw_path.split("/")
    for route in routes_for(service_name).get(method, ()):
        labels = route.match(parts, query)
        if labels is not None:
            return route, labels
    return None


def first_literal_segments(service_name: str) -> set[str]:
    """Literal first path segments of a service's routes (to recognise its unsigned requests)."""
    found = set()
    for routes in routes_for(service_name).values():
        for route in routes:
            if route.segments and route.segments[0][0] == _LITERAL:
                found.add(route.segments[0][1])
    return found
