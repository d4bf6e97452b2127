"""Plain HTTP request and response values passed between the edge and the protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass(slots=True)
class HttpRequest:
    """One HTTP request as received.

    `headers` maps lower-case names to values; repeated headers are joined with "," (as SigV4
    canonicalises them). `query` holds the decoded query pairs in order; `query_string` the raw
    text after "?". `raw_path` is the path exactly as sent (percent-encoded), `path` its decoding.
    """

    method: str
    raw_path: str
    query_string: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_ip: str = "127.0.0.1"
    query: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def host(self) -> str:
        return self.headers.get("host", "")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def query_value(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class HttpResponse:
    """A response to send. `stream`, when set, is sent after `body` as the rest of the payload."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    label: str = ""  # what was served, for the request log; never sent

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None
