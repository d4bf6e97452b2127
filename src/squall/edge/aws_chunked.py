"""Incremental decoder for `Content-Encoding: aws-chunked` request bodies.

Two framings are accepted, both ending in a zero-size chunk and an optional trailer section:

* unsigned (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, what boto3 sends over TLS):
  `<hex-size>\\r\\n<data>\\r\\n ... 0\\r\\n<name>:<value>\\r\\n\\r\\n`
* signed (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`):
  `<hex-size>;chunk-signature=<sig>\\r\\n<data>\\r\\n ... 0;chunk-signature=<sig>\\r\\n`
  followed by the trailer lines, an `x-amz-trailer-signature:<sig>` line (with `-TRAILER`)
  and the closing `\\r\\n`.

Signed chunks are verified through a `ChunkVerifier` (see `chunk_verifier`); their data is held
back until the chunk's signature has been checked, so `feed` only ever returns verified bytes.
"""

from __future__ import annotations

import hmac
from hashlib import sha256
from typing import Protocol

from squall.edge.sigv4 import EMPTY_SHA256, SignatureInfo, seed_signature_context

__all__ = [
    "AwsChunkedDecoder",
    "ChunkVerifier",
    "ChunkedError",
    "chunk_verifier",
    "decode_aws_chunked",
    "decoder_for",
]

SIGNED_STREAMING = frozenset(
    {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"}
)
_MAX_LINE = 4096
_MAX_TRAILER_BYTES = 16 * 1024
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

_HEADER, _DATA, _DATA_END, _TRAILER, _DONE, _FAILED = range(6)


class ChunkedError(Exception):
    """A malformed or wrongly signed aws-chunked body; `code` is the S3 error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ChunkedError({self.code!r}, {self.message!r})"


class ChunkVerifier(Protocol):
    """Computes the expected chunk and trailer signatures (`sigv4.ChunkSigner` is one)."""

    @property
    def seed_signature(self) -> str: ...

    def chunk_signature(self, previous: str, chunk_sha256: str) -> str: ...

    def trailer_signature(self, previous: str, trailer_sha256: str) -> str: ...


def chunk_verifier(info: SignatureInfo, secret_key: str) -> ChunkVerifier:
    """The verifier for the chunk signatures of a request whose headers verified as `info`."""
    return seed_signature_context(info, secret_key)


def decoder_for(
    info: SignatureInfo | None,
    secret_key: str | None,
    *,
    max_chunk_size: int = 16 * 1024 * 1024,
    decoded_content_length: int | None = None,
) -> AwsChunkedDecoder:
    """A decoder for a request's aws-chunked body.

    Chunk signatures are checked when `info` declares a signed streaming payload
    (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]); otherwise they are ignored.
    """
    verifier = None
    if info is not None and secret_key is not None and info.content_sha256 in SIGNED_STREAMING:
        verifier = chunk_verifier(info, secret_key)
    return AwsChunkedDecoder(
        verifier=verifier,
        max_chunk_size=max_chunk_size,
        decoded_content_length=decoded_content_length,
    )


class AwsChunkedDecoder:
    """Decodes an aws-chunked body fed in pieces of any size.

    `feed` returns the payload bytes decoded so far and raises `ChunkedError` on malformed
    input or a bad chunk signature (after which the decoder stays failed); `finish` raises if
    the stream ended early. `trailers` (lower-case names) and `decoded_length` are complete
    after `finish`. When `decoded_content_length` (the x-amz-decoded-content-length header) is
    given, a payload of any other length is rejected.
    """

    def __init__(
        self,
        *,
        verifier: ChunkVerifier | None = None,
        max_chunk_size: int = 16 * 1024 * 1024,
        decoded_content_length: int | None = None,
    ) -> None:
        self.trailers: dict[str, str] = {}
        self.decoded_length = 0
        self._verifier = verifier
        self._max_chunk_size = max_chunk_size
        self._expected_length = decoded_content_length
        self._state = _HEADER
        self._line = bytearray()
        self._remaining = 0
        self._previous = verifier.seed_signature if verifier is not None else ""
        self._chunk_signature: str | None = None
        self._hasher = sha256()
        self._held: list[memoryview] = []
        self._trailer_signature: str | None = None
        self._trailer_bytes = 0
        self._error: ChunkedError | None = None

    @property
    def done(self) -> bool:
        """True once the final chunk and the trailer section have been read."""
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """Consume `data`; return the payload bytes it completed (possibly empty)."""
        if self._error is not None:
            raise self._error
        try:
            return self._feed(bytes(data))
        except ChunkedError as error:
            self._fail(error)
            raise

    def finish(self) -> None:
        """Declare the end of the input; raise `ChunkedError` if the body is incomplete."""
        if self._error is not None:
            raise self._error
        if self._state != _DONE:
            self._fail(ChunkedError("IncompleteBody", "The request body terminated unexpectedly."))
        if self._expected_length is not None and self.decoded_length != self._expected_length:
            self._fail(
                ChunkedError(
                    "IncompleteBody",
                    f"The decoded body has {self.decoded_length} bytes but "
                    f"x-amz-decoded-content-length declared {self._expected_length}.",
                )
            )

    def _fail(self, error: ChunkedError) -> None:
        self._error = error
        self._state = _FAILED
        self._held.clear()
        raise error

    def _feed(self, data: bytes) -> bytes:
        out: list[memoryview] = []
        view = memoryview(data)
        pos, size = 0, len(data)
        while pos < size:
            if self._state == _DATA:
                pos = self._take_data(view, pos, out)
            elif self._state == _DONE:
                raise ChunkedError("InvalidRequest", "Unexpected data after the final chunk.")
            else:
                pos = self._take_line(data, pos, out)
        return b"".join(out)

    def _take_data(self, view: memoryview, pos: int, out: list[memoryview]) -> int:
        end = min(pos + self._remaining, len(view))
        piece = view[pos:end]
        self._remaining -= end - pos
        self.decoded_length += end - pos
        if self._expected_length is not None and self.decoded_length > self._expected_length:
            raise ChunkedError(
                "IncompleteBody",
                f"The decoded body exceeds x-amz-decoded-content-length "
                f"({self._expected_length} bytes).",
            )
        if self._verifier is None:
            out.append(piece)
        else:
            self._hasher.update(piece)
            self._held.append(piece)
        if self._remaining == 0:
            self._state = _DATA_END
        return end

    def _take_line(self, data: bytes, pos: int, out: list[memoryview]) -> int:
        newline = data.find(b"\n", pos)
        end = len(data) if newline < 0 else newline + 1
        if len(self._line) + end - pos > _MAX_LINE:
            raise self._line_error()
        self._line += data[pos:end]
        if newline < 0:
            return end
        line = bytes(self._line)
        self._line.clear()
        if not line.endswith(b"\r\n"):
            raise ChunkedError("InvalidRequest", "aws-chunked lines must end with CRLF.")
        self._on_line(line[:-2], out)
        return end

    def _line_error(self) -> ChunkedError:
        if self._state == _TRAILER:
            return ChunkedError("MalformedTrailerError", "A trailer line is too long.")
        if self._state == _DATA_END:
            return ChunkedError("InvalidRequest", "Chunk data is not followed by CRLF.")
        return ChunkedError("InvalidChunkSizeError", "A chunk header line is too long.")

    def _on_line(self, line: bytes, out: list[memoryview]) -> None:
        if self._state == _HEADER:
            self._on_chunk_header(line)
        elif self._state == _DATA_END:
            if line:
                raise ChunkedError("InvalidRequest", "Chunk data is not followed by CRLF.")
            self._end_chunk(out)
        else:
            self._on_trailer_line(line)

    def _on_chunk_header(self, line: bytes) -> None:
        size_text, _, extensions = line.partition(b";")
        size_text = size_text.strip()
        if not size_text or len(size_text) > 16 or not _HEX_DIGITS.issuperset(size_text):
            raise ChunkedError(
                "InvalidChunkSizeError",
                f"Invalid chunk size {size_text[:32]!r} in aws-chunked body.",
            )
        size = int(size_text, 16)
        if size > self._max_chunk_size:
            raise ChunkedError(
                "InvalidChunkSizeError",
                f"Chunk of {size} bytes exceeds the maximum of {self._max_chunk_size}.",
            )
        self._chunk_signature = _chunk_signature(extensions)
        if self._verifier is not None and self._chunk_signature is None:
            raise ChunkedError("SignatureDoesNotMatch", "The chunk is missing its chunk-signature.")
        if size == 0:
            self._verify_chunk(EMPTY_SHA256)
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _DATA

    def _end_chunk(self, out: list[memoryview]) -> None:
        if self._verifier is not None:
            self._verify_chunk(self._hasher.hexdigest())
            self._hasher = sha256()
            out.extend(self._held)
            self._held.clear()
        self._state = _HEADER

    def _verify_chunk(self, chunk_sha256: str) -> None:
        if self._verifier is None or self._chunk_signature is None:
            return
        expected = self._verifier.chunk_signature(self._previous, chunk_sha256)
        if not hmac.compare_digest(expected.encode(), self._chunk_signature.encode()):
            raise ChunkedError(
                "SignatureDoesNotMatch",
                "The chunk signature we calculated does not match the signature you provided.",
            )
        self._previous = expected

    def _on_trailer_line(self, line: bytes) -> None:
        if not line:
            self._verify_trailers()
            self._state = _DONE
            return
        self._trailer_bytes += len(line)
        if self._trailer_bytes > _MAX_TRAILER_BYTES:
            raise ChunkedError("MalformedTrailerError", "The trailer section is too large.")
        if self._trailer_signature is not None:
            raise ChunkedError(
                "MalformedTrailerError", "x-amz-trailer-signature must be the last trailer."
            )
        name, sep, value = line.decode("utf-8", "replace").partition(":")
        name = name.strip().lower()
        if not sep or not name:
            raise ChunkedError("MalformedTrailerError", f"Invalid trailer line {line[:64]!r}.")
        value = " ".join(value.split())
        if name == _TRAILER_SIGNATURE:
            self._trailer_signature = value
        else:
            self.trailers[name] = value

    def _verify_trailers(self) -> None:
        if self._verifier is None or (not self.trailers and self._trailer_signature is None):
            return
        if self._trailer_signature is None:
            raise ChunkedError("SignatureDoesNotMatch", "The trailer is missing its signature.")
        canonical = "".join(f"{name}:{self.trailers[name]}\n" for name in sorted(self.trailers))
        trailer_hash = sha256(canonical.encode()).hexdigest()
        expected = self._verifier.trailer_signature(self._previous, trailer_hash)
        if not hmac.compare_digest(expected.encode(), self._trailer_signature.encode()):
            raise ChunkedError(
                "SignatureDoesNotMatch",
                "The trailer signature we calculated does not match the signature you provided.",
            )


def _chunk_signature(extensions: bytes) -> str | None:
    """The chunk-signature value among `;name=value` chunk extensions, if any."""
    if not extensions:
        return None
    for extension in extensions.split(b";"):
        name, _, value = extension.partition(b"=")
        if name.strip() == b"chunk-signature":
            return value.strip().decode("ascii", "replace")
    return None


def decode_aws_chunked(
    body: bytes, *, verifier: ChunkVerifier | None = None
) -> tuple[bytes, dict[str, str]]:
    """Decode a complete aws-chunked body into (payload, trailers)."""
    decoder = AwsChunkedDecoder(verifier=verifier)
    payload = decoder.feed(body)
    decoder.finish()
    return payload, decoder.trailers
