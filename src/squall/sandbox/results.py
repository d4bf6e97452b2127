"""Outcomes of invocations and of sandbox start-up, as the engine reports them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class InvokeResult:
    request_id: str
    payload: bytes
    error_type: str | None = None  # set when the function failed (X-Amz-Function-Error)
    duration_ms: float = 0.0
    init_duration_ms: float | None = None  # only on the invocation that started the sandbox
    max_memory_mb: int = 0
    logs: list[str] = field(default_factory=list)
    # lines printed before the invocation began: during init, or between invocations
    early_logs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_type is None


class SandboxInitError(Exception):
    """The function could not initialise (import error, bad handler, crash during init)."""

    def __init__(
        self, error_type: str, message: str, payload: bytes = b"", logs: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.payload = payload or error_document(error_type, message)
        self.logs = logs or []


class SandboxUnavailable(Exception):
    """No sandbox could be started (zygote or isolation failure): a platform fault."""


def error_document(error_type: str, message: str, request_id: str = "") -> bytes:
    document = {"errorType": error_type, "errorMessage": message}
    if request_id:
        document["requestId"] = request_id
    return json.dumps(document).encode()
