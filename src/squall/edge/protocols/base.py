"""What every wire protocol provides to the edge."""

from __future__ import annotations

import base64
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from botocore.model import OperationModel, ServiceModel

from squall.core.errors import ServiceError
from squall.core.http import HttpRequest, HttpResponse

from .model import error_shape

# Largest body a compressed request may inflate to (the edge's default body limit).
MAX_INFLATED_BYTES = 64 * 1024 * 1024
_NOT_GZIP = "The request body is not valid gzip."


class Protocol(ABC):
    """Parses requests and serializes responses and errors for one AWS protocol."""

    name: str

    @abstractmethod
    def resolve_operation(self, request: HttpRequest, model: ServiceModel) -> OperationModel:
        """The operation a request addresses; raises the protocol's unknown-operation error."""

    @abstractmethod
    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]:
        """The operation's input as Python values; raises `malformed` errors for bad input."""

    @abstractmethod
    def serialize(
        self,
        request: HttpRequest,
        operation: OperationModel,
        output: dict[str, Any],
        request_id: str,
    ) -> HttpResponse:
        """The HTTP response carrying an operation's output."""

    @abstractmethod
    def serialize_error(
        self,
        request: HttpRequest,
        model: ServiceModel,
        error: ServiceError,
        request_id: str,
    ) -> HttpResponse:
        """The HTTP response carrying an error, in this protocol's format."""

    def malformed(self, message: str) -> ServiceError:
        """The error for a body or parameter that cannot be decoded."""
        return ServiceError("SerializationException", message, status=400)

    def malformed_parameter(self, message: str) -> ServiceError:
        """The error for a URI, query string or header value that cannot be decoded."""
        return self.malformed(message)

    def unknown_operation(self, name: str) -> ServiceError:
        return ServiceError("UnknownOperationException", f"Unknown operation {name}", status=400)


def inflate(
    request: HttpRequest, operation: OperationModel, malformed: Callable[[str], ServiceError]
) -> None:
    """Decompress a gzip body sent to an operation that accepts compressed requests.

    Operations with botocore's `requestcompression` trait (CloudWatch's PutMetricData) get their
    bodies gzipped by SDKs above a size threshold, marked `Content-Encoding: gzip`. Elsewhere the
    encoding is left alone: for S3 it describes the object, not the request.
    """
    encodings = [
        part.strip().lower() for part in request.headers.get("content-encoding", "").split(",")
    ]
    if "gzip" not in encodings or not operation.request_compression:
        return
    inflater = zlib.decompressobj(wbits=31)
    try:
        body = inflater.decompress(request.body, MAX_INFLATED_BYTES)
    except zlib.error:
        raise malformed(_NOT_GZIP) from None
    if inflater.unconsumed_tail:
        raise ServiceError(
            "RequestEntityTooLarge",
            f"Request must be smaller than {MAX_INFLATED_BYTES} bytes once decompressed.",
            status=413,
        )
    if not inflater.eof:
        raise malformed(_NOT_GZIP)
    request.body = body
    remaining = [part for part in encodings if part and part != "gzip"]
    if remaining:
        request.headers["content-encoding"] = ",".join(remaining)
    else:
        request.headers.pop("content-encoding", None)


def status_of(model: ServiceModel, error: ServiceError) -> int:
    if error.status is not None:
        return error.status
    shape = error_shape(model, error.code)
    if shape is not None:
        return int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
    return 400 if error.sender_fault else 500


def error_code(model: ServiceModel, error: ServiceError) -> str:
    """The code on the wire: an error shape's `error.code` when the model renames it."""
    shape = error_shape(model, error.code)
    if shape is not None and shape.name == error.code:
        return shape.metadata.get("error", {}).get("code", error.code)
    return error.code


def type_and_headers(model: ServiceModel, error: ServiceError) -> tuple[str, list[tuple[str, str]]]:
    """The `__type` of a JSON or CBOR error document and the headers that go with it.

    A service that was once `query` (`awsQueryCompatible`) names the error shape in `__type` and
    carries its query-era code, with the fault, in `x-amzn-query-error`; clients take the code
    from there.
    """
    code = error_code(model, error)
    if "awsQueryCompatible" not in model.metadata:
        return code, []
    shape = error_shape(model, error.code)
    fault = "Sender" if error.sender_fault else "Receiver"
    return (shape.name if shape is not None else code), [("x-amzn-query-error", f"{code};{fault}")]


def message_key(model: ServiceModel, code: str, default: str = "message") -> str:
    """Whether the error shape spells its message member `message` or `Message`."""
    shape = error_shape(model, code)
    if shape is not None:
        for name in shape.members:  # type: ignore[attr-defined]
            if name.lower() == "message":
                return name
    return default


_PRINTABLE_ASCII = re.compile(r"[\t\x20-\x7e]*")


def wire_safe(text: str) -> str:
    """A header value as it can travel: printable ASCII as is, anything else (non-ASCII, line
    breaks) as an RFC 2047 encoded word, the way S3 returns non-ASCII metadata."""
    if _PRINTABLE_ASCII.fullmatch(text):
        return text
    return f"=?UTF-8?B?{base64.b64encode(text.encode()).decode()}?="


def error_headers(error: ServiceError) -> list[tuple[str, str]]:
    """The extra response headers a handler attached to an error, safe for the wire."""
    return [(name, wire_safe(str(value))) for name, value in error.headers.items()]


def error_fields(error: ServiceError) -> dict[str, Any]:
    return {key: value for key, value in error.fields.items() if value is not None}
