"""The `smithy-rpc-v2-cbor` protocol: POST /service/{Service}/operation/{Operation}, CBOR bodies."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import cbor2
from botocore.model import OperationModel, ServiceModel

from squall.core.errors import ServiceError
from squall.core.http import HttpRequest, HttpResponse

from .base import (
    Protocol,
    error_fields,
    error_headers,
    inflate,
    message_key,
    status_of,
    type_and_headers,
)
from .documents import DecodeError, decode, encode

CONTENT_TYPE = "application/cbor"


class CborProtocol(Protocol):
    name = "smithy-rpc-v2-cbor"

    def resolve_operation(self, request: HttpRequest, model: ServiceModel) -> OperationModel:
        parts = request.path.split("/")
        # "", "service", <service>, "operation", <operation>
        if len(parts) != 5 or parts[1] != "service" or parts[3] != "operation":
            raise self.unknown_operation(request.path)
        name = parts[4]
        if name not in model.operation_names or request.method != "POST":
            raise self.unknown_operation(name)
        return model.operation_model(name)

    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]:
        inflate(request, operation, self.malformed)
        if not request.body:
            return {}
        try:
            document = cbor2.loads(request.body)
        except Exception:  # cbor2 raises several types for corrupt input
            raise self.malformed("The request body is not valid CBOR.") from None
        if not isinstance(document, dict):
            raise self.malformed("The request body must be a CBOR map.")
        if operation.input_shape is None:
            return {}
        try:
            return decode(operation.input_shape, document, native_binary=True)
        except DecodeError as exc:
            raise self.malformed(str(exc)) from None

    def serialize(
        self,
        request: HttpRequest,
        operation: OperationModel,
        output: dict[str, Any],
        request_id: str,
    ) -> HttpResponse:
        document: dict[str, Any] = {}
        if operation.output_shape is not None and output:
            document = encode(operation.output_shape, output, native_binary=True)
        return HttpResponse(200, _headers(request_id), _dumps(document))

    def serialize_error(
        self,
        request: HttpRequest,
        model: ServiceModel,
        error: ServiceError,
        request_id: str,
    ) -> HttpResponse:
        wire_type, extra = type_and_headers(model, error)
        document: dict[str, Any] = {
            "__type": wire_type,
            message_key(model, error.code): error.message,
        }
        document.update(error_fields(error))
        headers = _headers(request_id) + extra
        headers.extend(error_headers(error))
        return HttpResponse(status_of(model, error), headers, _dumps(document))


def _headers(request_id: str) -> list[tuple[str, str]]:
    return [
        ("Content-Type", CONTENT_TYPE),
        ("smithy-protocol", "rpc-v2-cbor"),
        ("x-amzn-RequestId", request_id),
    ]


def _dumps(document: dict[str, Any]) -> bytes:
    return cbor2.dumps(document, datetime_as_timestamp=True, timezone=UTC, default=_fallback)


def _fallback(encoder: Any, value: Any) -> None:
    encoder.encode(str(value))
