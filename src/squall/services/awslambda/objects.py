"""Deployment packages read from an object store: `Code.S3Bucket` / `S3Key` / `S3ObjectVersion`
of CreateFunction, UpdateFunctionCode and PublishLayerVersion.

The object store is another service, reached through the :class:`ObjectSource` protocol (the
S3 service implements it; the server wires it in as ``LambdaService.objects``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Any, Protocol

from squall.core.errors import ServiceError

from .code import MAX_UNZIPPED_BYTES, unzipped_too_large
from .errors import invalid

__all__ = ["ObjectSource", "read_package", "wants_object"]


class ObjectSource(Protocol):
    """Objects Lambda reads its packages from (implemented by the S3 service)."""

    def read_object(
        self,
        account_id: str,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        max_bytes: int | None = None,
    ) -> bytes | Awaitable[bytes]:
        """The bytes of an object (its current version when `version_id` is None), read on
        behalf of `account_id` (or an awaitable of them, to read off the event loop). Raises
        :class:`ServiceError` with S3's code and message (`NoSuchBucket`, `NoSuchKey`,
        `NoSuchVersion`, `AccessDenied`, ...), and `EntityTooLarge` for an object larger than
        `max_bytes` (which is then not read)."""
        ...


def wants_object(code: dict[str, Any]) -> bool:
    """Whether a `Code` / `Content` member names a package in the object store."""
    return bool(code.get("S3Bucket") or code.get("S3Key") or code.get("S3ObjectVersion"))


async def read_package(
    objects: ObjectSource | None, account_id: str, code: dict[str, Any]
) -> bytes:
    """The package a `Code` / `Content` member names in the object store, with S3's failures
    answered as Lambda answers them."""
    bucket = code.get("S3Bucket")
    key = code.get("S3Key")
    if not bucket or not key:
        raise invalid("Please provide both S3Bucket and S3Key to read the code from S3.")
    if objects is None:
        raise invalid(
            "squall cannot read S3Bucket/S3Key: no object store is connected to the Lambda "
            "service. Pass the package as ZipFile instead."
        )
    try:
        data: Any = objects.read_object(
            account_id,
            bucket,
            key,
            code.get("S3ObjectVersion"),
            max_bytes=MAX_UNZIPPED_BYTES,  # a larger zip cannot unzip to less
        )
        if inspect.isawaitable(data):
            data = await data
    except ServiceError as error:
        if error.code == "EntityTooLarge":
            raise unzipped_too_large() from None
        raise invalid(
            f"Error occurred while GetObject. S3 Error Code: {error.code}. "
            f"S3 Error Message: {error.message}"
        ) from None
    return bytes(data)
