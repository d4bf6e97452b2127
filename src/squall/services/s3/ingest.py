"""Taking an object's bytes in: a request body (or a copy source) streamed into a new file
while its MD5 and checksums are computed, with S3's checks on what arrived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Any

from squall.core.http import RequestBody

from . import checksums, errors
from .files import FileWriter, ObjectFiles

_BATCH = 1024 * 1024  # bytes hashed and written per worker-thread step
_INLINE = 64 * 1024


@dataclass(slots=True)
class Received:
    """A body written to a durable file: its name, size, MD5 and checksums."""

    file: str
    size: int
    md5_hex: str
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> base64 value


def wanted_algorithms(request: dict[str, Any], body: Any) -> list[str]:
    """The checksum algorithms a request asks for: named, sent as a header, or as trailers."""
    names: list[str] = []
    named = checksums.checksum_from_request(request)
    if named is not None:
        names.append(named[0])
    if isinstance(body, RequestBody):
        for trailer in body.trailer_names:
            name = checksums.algorithm_of_header(trailer)
            if name and name not in names:
                checksums.require_supported(name)
                names.append(name)
    return names


async def receive(
    files: ObjectFiles,
    request: dict[str, Any],
    *,
    limit: int,
    also: str | None = None,
) -> Received:
    """Stream the request's `Body` into a new durable file and check it against the request's
    Content-MD5 and checksums (sent as headers or trailers). Nothing is kept on failure.
    `also` names one more algorithm to compute (a multipart upload's, for its parts)."""
    body = request.get("Body")
    algorithms = wanted_algorithms(request, body)
    if also is not None and also not in algorithms:
        algorithms.append(also)
    declared = request.get("ContentLength")
    if declared is not None and declared > limit:
        raise errors.entity_too_large(declared, limit)
    digests = checksums.Digests(algorithms)
    writer = files.writer()
    try:
        await _pump(body, writer, digests, limit)
        if request.get("ContentMD5") is not None:
            digests.verify_content_md5(request["ContentMD5"])
        for name, value, trailer in _supplied(request, body, algorithms):
            digests.verify(name, value, trailer=trailer)
        computed = {name: digests.value(name) for name in algorithms}
        if declared is not None and writer.size != declared:
            raise errors.incomplete_body()
        name = await asyncio.to_thread(writer.commit)
    except BaseException:
        writer.abort()
        raise
    return Received(name, writer.size, digests.md5_hex(), computed)


async def copy_into(
    files: ObjectFiles, spans: list[tuple[Any, int, int]], algorithms: list[str]
) -> Received:
    """Copy already opened byte spans `(file, offset, length)` into a new durable file; the
    spans are closed whatever happens."""
    writer: FileWriter | None = None
    try:
        digests = checksums.Digests(algorithms)
        writer = files.writer()
        name = await asyncio.to_thread(_copy, spans, writer, digests)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        for handle, _, _ in spans:
            handle.close()
    computed = {algorithm: digests.value(algorithm) for algorithm in algorithms}
    return Received(name, writer.size, digests.md5_hex(), computed)


def _copy(spans: list[tuple[Any, int, int]], writer: FileWriter, digests: checksums.Digests) -> str:
    for handle, offset, length in spans:
        handle.seek(offset)
        left = length
        while left > 0:
            chunk = handle.read(min(_BATCH, left))
            if not chunk:
                raise OSError("object file is shorter than its metadata says")
            left -= len(chunk)
            digests.update(chunk)
            writer.write(chunk)
    return writer.commit()


async def _pump(
    body: bytes | AsyncIterable[bytes] | None,
    writer: FileWriter,
    digests: checksums.Digests,
    limit: int,
) -> None:
    if body is None:
        return
    if isinstance(body, bytes | bytearray | memoryview):
        if len(body) > limit:
            raise errors.entity_too_large(len(body), limit)
        _absorb(writer, digests, body)
        return
    pending: asyncio.Future[None] | None = None
    buffer = bytearray()
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                raise errors.entity_too_large(size, limit)
            buffer += chunk
            if len(buffer) >= _BATCH:
                if pending is not None:
                    await pending
                # hash and write this batch on a worker while the next one arrives
                pending = asyncio.ensure_future(
                    asyncio.to_thread(_absorb, writer, digests, bytes(buffer))
                )
                buffer.clear()
        if pending is not None:
            await pending
            pending = None
        if len(buffer) > _INLINE:
            await asyncio.to_thread(_absorb, writer, digests, bytes(buffer))
        elif buffer:
            _absorb(writer, digests, buffer)
    finally:
        if pending is not None:
            with contextlib.suppress(BaseException):
                await pending


def _absorb(writer: FileWriter, digests: checksums.Digests, data: bytes | memoryview) -> None:
    digests.update(data)
    writer.write(data)


def _supplied(
    request: dict[str, Any], body: Any, algorithms: list[str]
) -> list[tuple[str, str, bool]]:
    """(algorithm, value, came as a trailer) for each checksum value the client sent."""
    trailers: dict[str, str] = getattr(body, "trailers", None) or {}
    found = []
    for name in algorithms:
        value = request.get(f"Checksum{name}")
        if value is not None:
            found.append((name, value, False))
        elif checksums.header_name(name) in trailers:
            found.append((name, trailers[checksums.header_name(name)], True))
    return found
