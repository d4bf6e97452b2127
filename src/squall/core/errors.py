"""Typed AWS errors that operations raise and the protocol layer serializes."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error returned to the caller in the wire format of the service's protocol.

    `code` is the AWS error code (`ResourceNotFoundException`, `NoSuchKey`, ...). `status` is the
    HTTP status; when None, the protocol layer takes it from the error shape in the service model,
    falling back to 400. `fields` are extra members of the error shape (for example S3's `Key`
    or Lambda's `Type`); `headers` extra response headers (for example `Retry-After`).
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        sender_fault: bool = True,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender_fault = sender_fault
        self.fields = fields or {}
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"ServiceError({self.code!r}, {self.message!r}, status={self.status!r})"


class InternalFailure(ServiceError):
    """An unexpected failure inside squall; the caller sees a 500 in its protocol's format."""

    def __init__(self, message: str = "An internal error occurred.") -> None:
        super().__init__("InternalFailure", message, status=500, sender_fault=False)
