"""What every wire protocol provides to the edge."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from botocore.model import OperationModel, ServiceModel

from squall.core.errors import ServiceError
from squall.core.http import HttpRequest, HttpResponse

from .model import error_shape


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

    def unknown_operation(self, name: str) -> ServiceError:
        return ServiceError("UnknownOperationException", f"Unknown operation {name}", status=400)


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


def message_key(model: ServiceModel, code: str, default: str = "message") -> str:
    """Whether the error shape spells its message member `message` or `Message`."""
    shape = error_shape(model, code)
    if shape is not None:
        for name in shape.members:  # type: ignore[attr-defined]
            if name.lower() == "message":
                return name
    return default


def error_fields(error: ServiceError) -> dict[str, Any]:
    return {key: value for key, value in error.fields.items() if value is not None}
