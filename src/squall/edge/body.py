"""Request bodies read as they arrive, for operations that take payloads larger than memory."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from hashlib import sha256
from typing import Any

from squall.core.errors import ServiceError
from squall.core.http import RequestBody

from .aws_chunked import AwsChunkedDecoder, ChunkedError

Receive = Callable[[], Awaitable[dict[str, Any]]]


class StreamedBody(RequestBody):
    """The body of one request, pulled from the ASGI `receive` channel as the consumer iterates.

    `decoder` removes aws-chunked framing (checking chunk signatures); `expected_sha256` is a
    hex `x-amz-content-sha256` to check once the whole body has been seen.
    """

    def __init__(
        self,
        receive: Receive,
        *,
        declared_length: int | None,
        decoder: AwsChunkedDecoder | None = None,
        expected_sha256: str | None = None,
        trailer_names: tuple[str, ...] = (),
    ) -> None:
        self.trailers: dict[str, str] = {}
        self.trailer_names = trailer_names
        self._receive = receive
        self._declared_length = declared_length
        self._decoder = decoder
        self._expected_sha256 = expected_sha256
        self._started = False

    @property
    def declared_length(self) -> int | None:
        return self._declared_length

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("a request body can be read only once")
        self._started = True
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        hasher = sha256() if self._expected_sha256 is not None else None
        decoder = self._decoder
        more = True
        while more:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ServiceError(
                    "IncompleteBody",
                    "The client closed the connection before the request body was complete.",
                    status=400,
                )
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if hasher is not None:
                hasher.update(chunk)  # a hex hash covers the body as sent, framing included
            if decoder is not None:
                chunk = _decoded(decoder, chunk)
            if chunk:
                yield chunk
        if decoder is not None:
            _decoded(decoder, None)
            self.trailers = dict(decoder.trailers)
        if hasher is not None and not hmac.compare_digest(
            hasher.hexdigest(), (self._expected_sha256 or "").lower()
        ):
            raise ServiceError(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                status=400,
            )


def _decoded(decoder: AwsChunkedDecoder, chunk: bytes | None) -> bytes:
    try:
        if chunk is None:
            decoder.finish()
            return b""
        return decoder.feed(chunk)
    except ChunkedError as exc:
        raise chunked_error(exc) from None


def chunked_error(exc: ChunkedError) -> ServiceError:
    """A malformed or wrongly signed aws-chunked body, as S3 answers it."""
    status = 403 if exc.code == "SignatureDoesNotMatch" else 400
    return ServiceError(exc.code, exc.message, status=status)
