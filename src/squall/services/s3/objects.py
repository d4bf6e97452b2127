"""Object operations: put, get, head, delete (one and many), copy, tagging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from squall.core.context import RequestContext
from squall.core.http import RESPONSE_STATUS
from squall.services.base import operation

from . import errors
from .common import MAX_PUT_SIZE, S3Base, quoted, whole_seconds
from .conditions import check_preconditions, check_write_preconditions, content_range, parse_range
from .files import open_span, read_all, read_range, read_spans
from .ingest import copy_into, receive, wanted_algorithms
from .names import validate_key
from .store import Bucket, StoredObject

# The headers S3 stores with an object and returns on GET/HEAD (input member = output member).
CONTENT_MEMBERS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
    "WebsiteRedirectLocation",
)
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
MAX_TAGS = 10
MAX_DELETE_KEYS = 1000
MAX_PART_NUMBER = 10_000
_INLINE_GET_BYTES = 256 * 1024
# what CopyObject's COPY directive does not take from the source (tags follow their own)
_NOT_COPIED = frozenset({"Tags", "Checksums", "ChecksumType", "PartsCount"})
_SELF_COPY = (
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes."
)


class ObjectOperations(S3Base):
    # -- writing ------------------------------------------------------------------------------

    @operation("PutObject")
    async def put_object(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        key = request["Key"]
        validate_key(key)
        tags = parse_tagging(request.get("Tagging"))
        self._check_write(bucket.name, key, request)
        received = await receive(self.files, request, limit=MAX_PUT_SIZE)
        meta = content_meta(request)
        meta["Checksums"] = received.checksums
        if tags:
            meta["Tags"] = tags
        etag = quoted(received.md5_hex)
        self.commit_object(
            ctx,
            bucket,
            StoredObject(
                bucket.name,
                key,
                received.size,
                etag,
                time.time(),
                [(received.file, received.size)],
                meta,
            ),
            "ObjectCreated:Put",
            request,
        )
        output: dict[str, Any] = {"ETag": etag}
        output.update(checksum_members(received.checksums))
        if received.checksums:
            output["ChecksumType"] = "FULL_OBJECT"
        return output

    def _check_write(self, bucket: str, key: str, request: dict[str, Any]) -> None:
        if request.get("IfMatch") is None and request.get("IfNoneMatch") is None:
            return
        current = self.store.object(bucket, key)
        check_write_preconditions(
            if_match=request.get("IfMatch"),
            if_none_match=request.get("IfNoneMatch"),
            current_etag=current.etag if current else None,
            key=key,
        )

    def commit_object(
        self,
        ctx: RequestContext,
        bucket: Bucket,
        obj: StoredObject,
        event_name: str,
        request: dict[str, Any],
        *,
        also: Callable[[], None] | None = None,
        discard_on_failure: bool = True,
    ) -> None:
        """Make `obj` the key's object and queue its notifications in one transaction (with
        `also`, more changes that belong to it); then delete the files of the object it
        replaced. Conditional writes are checked again here, where no write can interleave."""
        try:
            with self.store.transaction():
                # the bucket as it is now: deleted (or re-created by another account) while the
                # body arrived is NoSuchBucket, and its notification configuration is current
                current = self.store.bucket(bucket.name)
                if current is None or current.account != bucket.account:
                    raise errors.no_such_bucket(bucket.name)
                self._check_write(bucket.name, obj.key, request)
                if also is not None:
                    also()
                previous = self.store.put_object(obj)
                self.notify(ctx, current, event_name, obj.key, size=obj.size, etag=obj.etag)
        except BaseException:
            if discard_on_failure:
                self.forget_files([name for name, _ in obj.segments])
            raise
        self.forget_files([name for name, _ in previous.segments] if previous else [])

    @operation("CopyObject")
    async def copy_object(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        key = request["Key"]
        validate_key(key)
        source, source_version = self.copy_source(ctx, request)
        directive = request.get("MetadataDirective") or "COPY"
        tagging_directive = request.get("TaggingDirective") or "COPY"
        if (
            source.bucket == bucket.name
            and source.key == key
            and directive == "COPY"
            and not request.get("StorageClass")
        ):
            raise errors.invalid_request(_SELF_COPY)
        if directive == "REPLACE":
            meta = content_meta(request)
        else:
            # the copy is one new part: the source's multipart attributes do not carry over
            meta = {k: v for k, v in source.meta.items() if k not in _NOT_COPIED}
        if tagging_directive == "REPLACE":
            tags = parse_tagging(request.get("Tagging"))
            if tags:
                meta["Tags"] = tags
        elif source.meta.get("Tags"):
            meta["Tags"] = source.meta["Tags"]
        self._check_write(bucket.name, key, request)
        algorithms = wanted_algorithms(request, None) or list(source.meta.get("Checksums") or {})
        spans = open_span(self.files, source.segments, 0, source.size - 1)
        received = await copy_into(self.files, spans, algorithms)
        meta["Checksums"] = received.checksums
        etag = quoted(received.md5_hex)
        now = time.time()
        self.commit_object(
            ctx,
            bucket,
            StoredObject(
                bucket.name, key, received.size, etag, now, [(received.file, received.size)], meta
            ),
            "ObjectCreated:Copy",
            request,
        )
        result: dict[str, Any] = {"ETag": etag, "LastModified": whole_seconds(now)}
        result.update(checksum_members(received.checksums))
        output: dict[str, Any] = {"CopyObjectResult": result}
        if source_version is not None:
            output["CopySourceVersionId"] = source_version
        return output

    def copy_source(
        self, ctx: RequestContext, request: dict[str, Any]
    ) -> tuple[StoredObject, str | None]:
        """The object named by `CopySource` ("bucket/key[?versionId=...]", URL-encoded), after
        the CopySourceIf* conditions."""
        text = request["CopySource"]
        path, _, query = text.partition("?")
        version = dict(parse_qsl(query)).get("versionId") if query else None
        source_bucket, _, source_key = unquote(path).lstrip("/").partition("/")
        if not source_bucket or not source_key:
            raise errors.invalid_argument(
                "Invalid copy source object key", "x-amz-copy-source", text
            )
        bucket = self.owned_bucket(ctx, source_bucket)
        source = self.store.object(bucket.name, source_key)
        if source is None or (version not in (None, "null")):
            raise errors.no_such_key(source_key)
        check_preconditions(
            if_match=request.get("CopySourceIfMatch"),
            if_none_match=request.get("CopySourceIfNoneMatch"),
            if_modified_since=request.get("CopySourceIfModifiedSince"),
            if_unmodified_since=request.get("CopySourceIfUnmodifiedSince"),
            etag=source.etag,
            last_modified=source.modified,
            method="COPY",
        )
        return source, version

    # -- reading ------------------------------------------------------------------------------

    @operation("GetObject")
    def get_object(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        return self._read(ctx, request, with_body=True)

    @operation("HeadObject")
    def head_object(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        return self._read(ctx, request, with_body=False)

    def _read(
        self, ctx: RequestContext, request: dict[str, Any], *, with_body: bool
    ) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        key = request["Key"]
        obj = self.store.object(bucket.name, key)
        version = request.get("VersionId")
        if obj is None or version not in (None, "null"):
            if version not in (None, "null"):
                raise errors.s3_error(
                    "NoSuchVersion",
                    "The specified version does not exist.",
                    404,
                    Key=key,
                    VersionId=version,
                )
            raise errors.no_such_key(key)
        check_preconditions(
            if_match=request.get("IfMatch"),
            if_none_match=request.get("IfNoneMatch"),
            if_modified_since=request.get("IfModifiedSince"),
            if_unmodified_since=request.get("IfUnmodifiedSince"),
            etag=obj.etag,
            last_modified=obj.modified,
            method="GET" if with_body else "HEAD",
        )
        output = object_headers(obj)
        span: tuple[int, int] | None = None
        part_number = request.get("PartNumber")
        if part_number is not None:
            if request.get("Range"):
                raise errors.invalid_request(
                    "Cannot specify both Range header and partNumber query parameter"
                )
            span = _part_span(obj, part_number)
            output["PartsCount"] = len(obj.segments) if obj.meta.get("PartsCount") else 1
        elif request.get("Range"):
            span = parse_range(request["Range"], obj.size)
        for member in (*CONTENT_MEMBERS, "Expires"):
            override = request.get(f"Response{member}")
            if override is not None:
                output[member] = override
        if request.get("ChecksumMode") == "ENABLED" and span is None:
            output.update(checksum_members(obj.meta.get("Checksums") or {}))
            if obj.meta.get("Checksums"):
                output["ChecksumType"] = obj.meta.get("ChecksumType", "FULL_OBJECT")
        start, end = span if span is not None else (0, obj.size - 1)
        length = max(0, end - start + 1)
        output["ContentLength"] = length
        if span is not None:
            output["ContentRange"] = content_range(start, end, obj.size)
            output[RESPONSE_STATUS] = 206
        if with_body and length:
            if length <= _INLINE_GET_BYTES and len(obj.segments) == 1 and span is None:
                output["Body"] = read_all(self.files, obj.segments)
            else:
                output["Body"] = read_range(self.files, obj.segments, start, end)
        return output

    async def read_object(
        self,
        account_id: str,
        bucket_name: str,
        key: str,
        version_id: str | None = None,
        *,
        max_bytes: int | None = None,
    ) -> bytes:
        """A whole object's bytes, for another service (Lambda code from S3), read on a worker
        thread; an object over `max_bytes` is refused before it is read."""
        bucket = self.store.bucket(bucket_name)
        if bucket is None:
            raise errors.no_such_bucket(bucket_name)
        if bucket.account != account_id:
            raise errors.access_denied()
        obj = self.store.object(bucket_name, key)
        if obj is None or version_id not in (None, "null"):
            raise errors.no_such_key(key)
        if max_bytes is not None and obj.size > max_bytes:
            raise errors.entity_too_large(obj.size, max_bytes)
        spans = open_span(self.files, obj.segments, 0, obj.size - 1)
        return await asyncio.to_thread(read_spans, spans)

    # -- deleting -----------------------------------------------------------------------------

    @operation("DeleteObject")
    def delete_object(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        version = request.get("VersionId")
        if version not in (None, "null"):
            # no such version in an unversioned bucket: the object itself must stay
            raise errors.invalid_argument("Invalid version id specified", "versionId", version)
        self._delete(ctx, bucket, request["Key"])
        output: dict[str, Any] = {}
        if version is not None:
            output["VersionId"] = version
        return output

    def _delete(self, ctx: RequestContext, bucket: Bucket, key: str) -> None:
        with self.store.transaction():
            previous = self.store.delete_object(bucket.name, key)
            if previous is not None:
                self.notify(ctx, bucket, "ObjectRemoved:Delete", key)
        if previous is not None:
            self.forget_files([name for name, _ in previous.segments])

    @operation("DeleteObjects")
    def delete_objects(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        delete = request.get("Delete") or {}
        entries = delete.get("Objects") or []
        if not entries or len(entries) > MAX_DELETE_KEYS:
            raise errors.malformed_xml()
        deleted: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            key = entry.get("Key", "")
            version = entry.get("VersionId")
            if version not in (None, "null"):
                failed.append(
                    {
                        "Key": key,
                        "VersionId": version,
                        "Code": "NoSuchVersion",
                        "Message": "The specified version does not exist.",
                    }
                )
                continue
            self._delete(ctx, bucket, key)
            item = {"Key": key}
            if version is not None:
                item["VersionId"] = version
            deleted.append(item)
        output: dict[str, Any] = {}
        if not delete.get("Quiet") and deleted:
            output["Deleted"] = deleted
        if failed:
            output["Errors"] = failed
        return output

    # -- tagging ------------------------------------------------------------------------------

    @operation("GetObjectTagging")
    def get_object_tagging(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        obj = self._object(ctx, request)
        tags = obj.meta.get("Tags") or {}
        return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}

    @operation("PutObjectTagging")
    def put_object_tagging(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        obj = self._object(ctx, request)
        tag_set = (request.get("Tagging") or {}).get("TagSet") or []
        tags = check_tags([(tag.get("Key", ""), tag.get("Value", "")) for tag in tag_set])
        meta = dict(obj.meta)
        if tags:
            meta["Tags"] = tags
        else:
            meta.pop("Tags", None)
        self.store.set_object_meta(obj.bucket, obj.key, meta)
        return {}

    @operation("DeleteObjectTagging")
    def delete_object_tagging(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        obj = self._object(ctx, request)
        meta = dict(obj.meta)
        meta.pop("Tags", None)
        self.store.set_object_meta(obj.bucket, obj.key, meta)
        return {}

    def _object(self, ctx: RequestContext, request: dict[str, Any]) -> StoredObject:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        obj = self.store.object(bucket.name, request["Key"])
        if obj is None or request.get("VersionId") not in (None, "null"):
            raise errors.no_such_key(request["Key"])
        return obj


# ------------------------------------------------------------------------------- helpers


def content_meta(request: dict[str, Any]) -> dict[str, Any]:
    """The content headers and user metadata a write request sets on its object."""
    meta: dict[str, Any] = {}
    for member in CONTENT_MEMBERS:
        value = request.get(member)
        if value is not None:
            meta[member] = value
    meta.setdefault("ContentType", DEFAULT_CONTENT_TYPE)
    expires = request.get("Expires")
    if expires is not None:
        meta["Expires"] = expires.timestamp()
    if request.get("Metadata"):
        meta["Metadata"] = {k.lower(): v for k, v in request["Metadata"].items()}
    if request.get("StorageClass"):
        meta["StorageClass"] = request["StorageClass"]
    return meta


def object_headers(obj: StoredObject) -> dict[str, Any]:
    """The GetObject/HeadObject output members describing a stored object."""
    meta = obj.meta
    output: dict[str, Any] = {
        "AcceptRanges": "bytes",
        "ETag": obj.etag,
        "LastModified": whole_seconds(obj.modified),
    }
    for member in CONTENT_MEMBERS:
        if meta.get(member) is not None:
            output[member] = meta[member]
    if meta.get("Expires") is not None:
        output["Expires"] = whole_seconds(meta["Expires"])
    if meta.get("Metadata"):
        output["Metadata"] = meta["Metadata"]
    if meta.get("Tags"):
        output["TagCount"] = len(meta["Tags"])
    if meta.get("StorageClass") and meta["StorageClass"] != "STANDARD":
        output["StorageClass"] = meta["StorageClass"]
    return output


def checksum_members(values: dict[str, str]) -> dict[str, str]:
    return {f"Checksum{name}": value for name, value in values.items()}


def parse_tagging(text: str | None) -> dict[str, str]:
    """The `x-amz-tagging` header ("k1=v1&k2=v2") as a tag dict, checked."""
    if not text:
        return {}
    return check_tags(parse_qsl(text, keep_blank_values=True))


def check_tags(pairs: list[tuple[str, str]]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise errors.invalid_tag("Cannot provide multiple Tags with the same key")
        if not key or len(key) > 128:
            raise errors.invalid_tag("The TagKey you have provided is invalid")
        if len(value) > 256:
            raise errors.invalid_tag("The TagValue you have provided is invalid")
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise errors.s3_error("BadRequest", "Object tags cannot be greater than 10", 400)
    return tags


def _part_span(obj: StoredObject, part_number: int) -> tuple[int, int] | None:
    """The bytes of part `part_number`; None for the whole of an empty object (no range)."""
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise errors.invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive",
            "partNumber",
            part_number,
        )
    parts = len(obj.segments) if obj.meta.get("PartsCount") else 1
    if part_number > parts:
        raise errors.invalid_part_number()
    if obj.size == 0:
        return None  # no Content-Range can name bytes of an empty object
    if parts == 1:
        return 0, obj.size - 1
    start = sum(size for _, size in obj.segments[: part_number - 1])
    return start, start + obj.segments[part_number - 1][1] - 1
