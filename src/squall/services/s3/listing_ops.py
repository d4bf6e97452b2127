"""Listing operations: ListObjects (v1), ListObjectsV2 and ListObjectVersions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from squall.core.context import RequestContext
from squall.services.base import operation

from . import errors
from .common import S3Base, as_datetime, owner
from .listing import (
    Page,
    decode_token,
    encode_token,
    list_page,
    url_encode,
    validate_encoding_type,
)
from .store import StoredObject

MAX_KEYS = 1000


class ListingOperations(S3Base):
    def _page(self, bucket: str, *, prefix: str, delimiter: str, max_keys: int, after: str) -> Page:
        def fetch(start: str, fetch_prefix: str, limit: int) -> list[StoredObject]:
            return self.store.objects_after(bucket, start, fetch_prefix, limit)

        return list_page(fetch, prefix=prefix, delimiter=delimiter, max_keys=max_keys, after=after)

    @operation("ListObjects")
    def list_objects(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        prefix, delimiter, encode = _common(request)
        marker = request.get("Marker") or ""
        max_keys = _max_keys(request)
        page = self._page(
            bucket.name, prefix=prefix, delimiter=delimiter, max_keys=max_keys, after=marker
        )
        output: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": encode(prefix),
            "Marker": encode(marker),
            "MaxKeys": max_keys,
            "IsTruncated": page.truncated,
            "Contents": [_entry(obj, encode, bucket.account, True) for obj in page.entries],
            "CommonPrefixes": [{"Prefix": encode(p)} for p in page.common_prefixes],
        }
        if delimiter:
            output["Delimiter"] = encode(delimiter)
        if page.truncated and delimiter:
            output["NextMarker"] = encode(page.next_after)
        if request.get("EncodingType"):
            output["EncodingType"] = request["EncodingType"]
        return output

    @operation("ListObjectsV2")
    def list_objects_v2(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        prefix, delimiter, encode = _common(request)
        token = request.get("ContinuationToken")
        start_after = request.get("StartAfter") or ""
        after = decode_token(token) if token else start_after
        max_keys = _max_keys(request)
        page = self._page(
            bucket.name, prefix=prefix, delimiter=delimiter, max_keys=max_keys, after=after
        )
        fetch_owner = bool(request.get("FetchOwner"))
        output: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": encode(prefix),
            "MaxKeys": max_keys,
            "KeyCount": len(page.entries) + len(page.common_prefixes),
            "IsTruncated": page.truncated,
            "Contents": [_entry(obj, encode, bucket.account, fetch_owner) for obj in page.entries],
            "CommonPrefixes": [{"Prefix": encode(p)} for p in page.common_prefixes],
        }
        if delimiter:
            output["Delimiter"] = encode(delimiter)
        if token:
            output["ContinuationToken"] = token
        if start_after:
            output["StartAfter"] = encode(start_after)
        if page.truncated:
            output["NextContinuationToken"] = encode_token(page.next_after)
        if request.get("EncodingType"):
            output["EncodingType"] = request["EncodingType"]
        return output

    @operation("ListObjectVersions")
    def list_object_versions(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        prefix, delimiter, encode = _common(request)
        key_marker = request.get("KeyMarker") or ""
        version_marker = request.get("VersionIdMarker") or ""
        if version_marker and not key_marker:
            raise errors.invalid_argument(
                "A version-id marker cannot be specified without a key marker.",
                "version-id-marker",
                version_marker,
            )
        max_keys = _max_keys(request)
        page = self._page(
            bucket.name, prefix=prefix, delimiter=delimiter, max_keys=max_keys, after=key_marker
        )
        versions = []
        for obj in page.entries:
            entry = _entry(obj, encode, bucket.account, True)
            entry["VersionId"] = "null"
            entry["IsLatest"] = True
            versions.append(entry)
        output: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": encode(prefix),
            "KeyMarker": encode(key_marker),
            "VersionIdMarker": version_marker,
            "MaxKeys": max_keys,
            "IsTruncated": page.truncated,
            "Versions": versions,
            "CommonPrefixes": [{"Prefix": encode(p)} for p in page.common_prefixes],
        }
        if delimiter:
            output["Delimiter"] = encode(delimiter)
        if page.truncated:
            output["NextKeyMarker"] = encode(page.next_after)
            output["NextVersionIdMarker"] = "null"
        if request.get("EncodingType"):
            output["EncodingType"] = request["EncodingType"]
        return output


def _common(request: dict[str, Any]) -> tuple[str, str, Callable[[str], str]]:
    encoding = request.get("EncodingType")
    validate_encoding_type(encoding)
    encode: Callable[[str], str] = url_encode if encoding == "url" else _same
    return request.get("Prefix") or "", request.get("Delimiter") or "", encode


def _same(value: str) -> str:
    return value


def _max_keys(request: dict[str, Any]) -> int:
    value = request.get("MaxKeys")
    if value is None:
        return MAX_KEYS
    if value < 0:
        raise errors.invalid_argument(
            "Argument maxKeys must be an integer between 0 and 2147483647", "maxKeys", value
        )
    return min(value, MAX_KEYS)


def _entry(
    obj: StoredObject, encode: Callable[[str], str], account: str, with_owner: bool
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Key": encode(obj.key),
        "LastModified": as_datetime(obj.modified),
        "ETag": obj.etag,
        "Size": obj.size,
        "StorageClass": obj.meta.get("StorageClass") or "STANDARD",
    }
    if obj.meta.get("Checksums"):
        entry["ChecksumAlgorithm"] = list(obj.meta["Checksums"])
        entry["ChecksumType"] = obj.meta.get("ChecksumType", "FULL_OBJECT")
    if with_owner:
        entry["Owner"] = owner(account)
    return entry
