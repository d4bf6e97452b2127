"""Plain HTTP request and response values passed between the edge and the protocols."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote

# An output key a handler may set to answer with another status than the operation's usual
# one (S3's 206 Partial Content); never serialized.
RESPONSE_STATUS = "$status"


class RequestBody(ABC):
    """A request body read as it arrives, for operations whose payload can be larger than
    memory (S3's PutObject). Iterating yields the payload bytes (transfer framings such as
    aws-chunked already removed, signatures checked); an error in the body (a bad chunk
    signature, a hash mismatch, a short body) raises the service's `ServiceError` from the
    iteration, after all data before it. `trailers` (lower-case names) are complete once the
    iteration has ended; `trailer_names` are those the client announced (x-amz-trailer). A body
    can be iterated once."""

    trailers: dict[str, str]
    trailer_names: tuple[str, ...] = ()

    @property
    @abstractmethod
    def declared_length(self) -> int | None:
        """The payload length the client announced, if it did."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...


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
    # set instead of `body` for an operation that reads its payload as a stream
    stream: RequestBody | None = None

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
