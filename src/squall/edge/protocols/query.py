"""The `query` protocol: form-encoded `Action=...&Version=...` requests, XML responses."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.model import OperationModel, ServiceModel, Shape

from squall.core.errors import ServiceError
from squall.core.http import HttpRequest, HttpResponse

from .base import Protocol, error_code, error_fields, error_headers, inflate, status_of
from .documents import DecodeError
from .xml import parse_scalar_text, write_members

CONTENT_TYPE = "text/xml"


class QueryProtocol(Protocol):
    name = "query"

    def resolve_operation(self, request: HttpRequest, model: ServiceModel) -> OperationModel:
        params = self._params(request)
        action = params.get("Action")
        if not action:
            raise ServiceError("MissingAction", "Missing Action", status=400)
        if action not in model.operation_names:
            version = params.get("Version", model.api_version)
            raise ServiceError(
                "InvalidAction",
                f"Could not find operation {action} for version {version}",
                status=400,
            )
        return model.operation_model(action)

    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]:
        inflate(request, operation, self.malformed)
        shape = operation.input_shape
        if shape is None:
            return {}
        params = self._params(request)
        try:
            return _decode_structure(shape, _FlatParams(params), "") or {}
        except DecodeError as exc:
            raise self.malformed(str(exc)) from None

    def serialize(
        self,
        request: HttpRequest,
        operation: OperationModel,
        output: dict[str, Any],
        request_id: str,
    ) -> HttpResponse:
        name = operation.name
        namespace = operation.service_model.metadata.get("xmlNamespace", "")
        out = [f'<{name}Response xmlns="{escape(namespace)}">']
        shape = operation.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
            out.append(f"<{wrapper}>")
            write_members(shape, output, out)
            out.append(f"</{wrapper}>")
        out.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>")
        out.append(f"</{name}Response>")
        return HttpResponse(200, _headers(request_id), "".join(out).encode())

    def serialize_error(
        self,
        request: HttpRequest,
        model: ServiceModel,
        error: ServiceError,
        request_id: str,
    ) -> HttpResponse:
        namespace = model.metadata.get("xmlNamespace", "")
        fault = "Sender" if error.sender_fault else "Receiver"
        out = [
            f'<ErrorResponse xmlns="{escape(namespace)}"><Error>',
            f"<Type>{fault}</Type><Code>{escape(error_code(model, error))}</Code>",
            f"<Message>{escape(error.message)}</Message>",
        ]
        for key, value in error_fields(error).items():
            out.append(f"<{key}>{escape(str(value))}</{key}>")
        out.append(f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        headers = _headers(request_id) + error_headers(error)
        return HttpResponse(status_of(model, error), headers, "".join(out).encode())

    def malformed(self, message: str) -> ServiceError:
        return ServiceError("MalformedInput", message, status=400)

    @staticmethod
    def _params(request: HttpRequest) -> dict[str, str]:
        # Form semantics for the URL too (a GET or presigned URL): "+" is a space.
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if request.body and request.method == "POST":
            try:
                text = request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise ServiceError(
                    "MalformedQueryString", "The request body is not valid UTF-8.", status=400
                ) from None
            params.update(parse_qsl(text, keep_blank_values=True))
        return params


def _headers(request_id: str) -> list[tuple[str, str]]:
    return [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", request_id)]


class _FlatParams:
    """Flattened query parameters with O(1) "is anything under this prefix" checks."""

    def __init__(self, params: dict[str, str]) -> None:
        self.values = params
        self.prefixes: set[str] = set()
        for key in params:
            parts = key.split(".")
            for end in range(1, len(parts) + 1):
                self.prefixes.add(".".join(parts[:end]))

    def has(self, prefix: str) -> bool:
        return prefix in self.prefixes


_MISSING = object()


def _decode(shape: Shape, params: _FlatParams, prefix: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _decode_structure(shape, params, prefix)
    if kind == "list":
        return _decode_list(shape, params, prefix)
    if kind == "map":
        return _decode_map(shape, params, prefix)
    if prefix not in params.values:
        return _MISSING
    return parse_scalar_text(shape, params.values[prefix], prefix)


def _decode_structure(shape: Shape, params: _FlatParams, prefix: str) -> Any:
    if prefix and not params.has(prefix):
        return _MISSING
    result: dict[str, Any] = {}
    for name, member in shape.members.items():  # type: ignore[attr-defined]
        wire = member.serialization.get("name", name)
        value = _decode(member, params, f"{prefix}.{wire}" if prefix else wire)
        if value is not _MISSING:
            result[name] = value
    return result


def _decode_list(shape: Shape, params: _FlatParams, prefix: str) -> Any:
    member = shape.member  # type: ignore[attr-defined]
    base = _list_items_prefix(shape, member, prefix)
    if params.values.get(prefix) == "":
        return []
    if not params.has(base):
        return _MISSING
    items = []
    index = 1
    while params.has(f"{base}.{index}"):
        item = _decode(member, params, f"{base}.{index}")
        items.append(item if item is not _MISSING else None)
        index += 1
    return items


def _list_items_prefix(shape: Shape, member: Shape, prefix: str) -> str:
    """Where a list's items are numbered: `List.member.N`, or for a flattened list `List.N`,
    renamed `Item.N` when the member has its own name (as botocore serializes them)."""
    if not shape.serialization.get("flattened"):
        return f"{prefix}.{member.serialization.get('name', 'member')}"
    name = member.serialization.get("name")
    if not name:
        return prefix
    head, _, _ = prefix.rpartition(".")
    return f"{head}.{name}" if head else name


def _decode_map(shape: Shape, params: _FlatParams, prefix: str) -> Any:
    if not params.has(prefix):
        return _MISSING
    base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
    key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
    key_tag = key_shape.serialization.get("name", "key")
    value_tag = value_shape.serialization.get("name", "value")
    result: dict[str, Any] = {}
    index = 1
    while params.has(f"{base}.{index}"):
        key = params.values.get(f"{base}.{index}.{key_tag}")
        value = _decode(value_shape, params, f"{base}.{index}.{value_tag}")
        if key is not None and value is not _MISSING:
            result[key] = value
        index += 1
    return result
