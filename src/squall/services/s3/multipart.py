"""Multipart uploads: create, upload part (and part copy), complete, abort, list.

Parts are durable files from the moment UploadPart answers; completing an upload makes the
object out of the part files themselves (its segments), so no byte is copied again.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from squall.core.context import RequestContext
from squall.services.base import operation

from . import checksums, errors
from .common import MAX_PUT_SIZE, S3Base, as_datetime, owner, quoted, whole_seconds
from .conditions import parse_copy_source_range
from .files import open_span
from .ingest import Received, copy_into, receive
from .names import validate_key
from .objects import checksum_members, content_meta, parse_tagging
from .store import Part, StoredObject, Upload

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
DEFAULT_MAX_LIST = 1000


class MultipartOperations(S3Base):
    @operation("CreateMultipartUpload")
    def create_multipart_upload(
        self, ctx: RequestContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        key = request["Key"]
        validate_key(key)
        meta = content_meta(request)
        tags = parse_tagging(request.get("Tagging"))
        if tags:
            meta["Tags"] = tags
        algorithm = request.get("ChecksumAlgorithm")
        if algorithm:
            algorithm = checksums.normalize(algorithm)
            checksums.require_supported(algorithm)
            meta["ChecksumAlgorithm"] = algorithm
        kind = checksums.resolve_checksum_type(algorithm, request.get("ChecksumType"))
        if kind:
            meta["ChecksumType"] = kind
        upload_id = uuid.uuid4().hex + uuid.uuid4().hex
        self.store.create_upload(Upload(upload_id, bucket.name, key, time.time(), meta))
        output: dict[str, Any] = {"Bucket": bucket.name, "Key": key, "UploadId": upload_id}
        if algorithm:
            output["ChecksumAlgorithm"] = algorithm
            output["ChecksumType"] = kind
        return output

    def _upload(self, ctx: RequestContext, request: dict[str, Any]) -> Upload:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        upload = self.store.upload(request["UploadId"])
        if upload is None or upload.bucket != bucket.name or upload.key != request["Key"]:
            raise errors.no_such_upload(request["UploadId"])
        return upload

    @operation("UploadPart")
    async def upload_part(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        upload = self._upload(ctx, request)
        number = _part_number(request)
        # the upload's algorithm is computed for every part, whatever else the client sends,
        # so that the completed object gets its checksum
        received = await receive(
            self.files, request, limit=MAX_PUT_SIZE, also=upload.meta.get("ChecksumAlgorithm")
        )
        part = self._record_part(upload, number, received)
        output: dict[str, Any] = {"ETag": part.etag}
        output.update(checksum_members(received.checksums))
        return output

    @operation("UploadPartCopy")
    async def upload_part_copy(
        self, ctx: RequestContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        upload = self._upload(ctx, request)
        number = _part_number(request)
        source, source_version = self.copy_source(ctx, request)  # type: ignore[attr-defined]
        start, end = 0, source.size - 1
        if request.get("CopySourceRange"):
            span = parse_copy_source_range(request["CopySourceRange"], source.size)
            start, end = span
        spans = open_span(self.files, source.segments, start, end) if end >= start else []
        algorithm = upload.meta.get("ChecksumAlgorithm")
        received = await copy_into(self.files, spans, [algorithm] if algorithm else [])
        part = self._record_part(upload, number, received)
        result: dict[str, Any] = {
            "ETag": part.etag,
            "LastModified": whole_seconds(part.modified),
        }
        result.update(checksum_members(received.checksums))
        output: dict[str, Any] = {"CopyPartResult": result}
        if source_version is not None:
            output["CopySourceVersionId"] = source_version
        return output

    def _record_part(self, upload: Upload, number: int, received: Received) -> Part:
        algorithm = upload.meta.get("ChecksumAlgorithm")
        part = Part(
            number,
            received.size,
            quoted(received.md5_hex),
            time.time(),
            received.file,
            received.checksums.get(algorithm) if algorithm else None,
        )
        if self.store.upload(upload.id) is None:  # aborted or completed meanwhile
            self.forget_files([received.file])
            raise errors.no_such_upload(upload.id)
        previous = self.store.put_part(upload.id, part)
        if previous is not None:
            self.forget_files([previous.file])
        return part

    @operation("CompleteMultipartUpload")
    def complete_multipart_upload(
        self, ctx: RequestContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        upload = self._upload(ctx, request)
        bucket = self.owned_bucket(ctx, request["Bucket"])
        listed = (request.get("MultipartUpload") or {}).get("Parts") or []
        if not listed:
            raise errors.malformed_xml()
        stored = {part.number: part for part in self.store.parts(upload.id)}
        chosen: list[Part] = []
        previous_number = 0
        for index, entry in enumerate(listed):
            number = entry.get("PartNumber", 0)
            if number <= previous_number:
                raise errors.invalid_part_order()
            previous_number = number
            part = stored.get(number)
            etag = entry.get("ETag")
            if part is None or etag is None or etag.strip('"') != part.etag.strip('"'):
                raise errors.invalid_part(number, etag)
            if not _checksum_agrees(entry, upload.meta.get("ChecksumAlgorithm"), part):
                raise errors.invalid_part(number, etag)
            if index < len(listed) - 1 and part.size < MIN_PART_SIZE:
                raise errors.entity_too_small(part.size, MIN_PART_SIZE)
            chosen.append(part)
        meta = dict(upload.meta)
        algorithm = meta.pop("ChecksumAlgorithm", None)
        meta["PartsCount"] = len(chosen)
        values: dict[str, str] = {}
        kind = meta.get("ChecksumType")
        if algorithm and all(part.checksum for part in chosen):
            if kind == checksums.FULL_OBJECT:
                values[algorithm] = checksums.full_object(
                    algorithm, [(part.checksum or "", part.size) for part in chosen]
                )
            else:
                values[algorithm] = checksums.composite(
                    algorithm, [part.checksum or "" for part in chosen]
                )
        meta["Checksums"] = values
        etag = checksums.multipart_etag([part.etag.strip('"') for part in chosen])
        size = sum(part.size for part in chosen)
        obj = StoredObject(
            bucket.name,
            upload.key,
            size,
            etag,
            time.time(),
            [(part.file, part.size) for part in chosen],
            meta,
        )
        used = {part.file for part in chosen}
        unused = [part.file for part in stored.values() if part.file not in used]
        self.commit_object(  # type: ignore[attr-defined]
            ctx,
            bucket,
            obj,
            "ObjectCreated:CompleteMultipartUpload",
            request,
            also=lambda: self.store.delete_upload(upload.id),
            discard_on_failure=False,  # the parts stay with the upload
        )
        self.forget_files(unused)
        output: dict[str, Any] = {
            "Location": f"{ctx.endpoint_url}/{bucket.name}/{upload.key}",
            "Bucket": bucket.name,
            "Key": upload.key,
            "ETag": etag,
        }
        if values:
            output.update(checksum_members(values))
            output["ChecksumType"] = kind
        return output

    @operation("AbortMultipartUpload")
    def abort_multipart_upload(
        self, ctx: RequestContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        upload = self._upload(ctx, request)
        parts = self.store.delete_upload(upload.id)
        self.forget_files([part.file for part in parts])
        return {}

    @operation("ListParts")
    def list_parts(self, ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        upload = self._upload(ctx, request)
        marker = request.get("PartNumberMarker") or 0
        limit = _limit(request.get("MaxParts"), "max-parts")
        found = self.store.parts(upload.id, after=marker, limit=limit + 1)
        page = found[:limit]
        algorithm = upload.meta.get("ChecksumAlgorithm")
        parts = []
        for part in page:
            item: dict[str, Any] = {
                "PartNumber": part.number,
                "LastModified": whole_seconds(part.modified),
                "ETag": part.etag,
                "Size": part.size,
            }
            if algorithm and part.checksum:
                item[f"Checksum{algorithm}"] = part.checksum
            parts.append(item)
        account = self.owned_bucket(ctx, request["Bucket"]).account
        output: dict[str, Any] = {
            "Bucket": upload.bucket,
            "Key": upload.key,
            "UploadId": upload.id,
            "PartNumberMarker": marker,
            "MaxParts": limit,
            "IsTruncated": len(found) > limit,
            "Parts": parts,
            "Initiator": _initiator(account),
            "Owner": owner(account),
            "StorageClass": "STANDARD",
        }
        if page:
            output["NextPartNumberMarker"] = page[-1].number
        if algorithm:
            output["ChecksumAlgorithm"] = algorithm
            output["ChecksumType"] = upload.meta.get("ChecksumType", checksums.COMPOSITE)
        return output

    @operation("ListMultipartUploads")
    def list_multipart_uploads(
        self, ctx: RequestContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        bucket = self.owned_bucket(ctx, request["Bucket"])
        prefix = request.get("Prefix") or ""
        delimiter = request.get("Delimiter") or ""
        key_marker = request.get("KeyMarker") or ""
        id_marker = request.get("UploadIdMarker") or ""
        limit = _limit(request.get("MaxUploads"), "max-uploads")
        uploads: list[dict[str, Any]] = []
        prefixes: list[str] = []
        truncated = False
        next_key = next_id = ""
        listed = [
            upload for upload in self.store.uploads(bucket.name) if upload.key.startswith(prefix)
        ]
        for upload in _after_markers(listed, key_marker, id_marker) if limit else []:
            common = None
            if delimiter:
                cut = upload.key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = upload.key[: cut + len(delimiter)]
                    if common in prefixes or common <= key_marker:
                        continue  # listed already, on this page or an earlier one
            if len(uploads) + len(prefixes) >= limit:
                truncated = True
                break
            if common is not None:
                prefixes.append(common)
                next_key, next_id = common, ""
                continue
            next_key, next_id = upload.key, upload.id
            uploads.append(
                {
                    "UploadId": upload.id,
                    "Key": upload.key,
                    "Initiated": as_datetime(upload.initiated),
                    "StorageClass": "STANDARD",
                    "Owner": owner(bucket.account),
                    "Initiator": _initiator(bucket.account),
                }
            )
        output: dict[str, Any] = {
            "Bucket": bucket.name,
            "KeyMarker": key_marker,
            "UploadIdMarker": id_marker,
            "MaxUploads": limit,
            "IsTruncated": truncated,
            "Uploads": uploads,
        }
        if prefix:
            output["Prefix"] = prefix
        if delimiter:
            output["Delimiter"] = delimiter
            output["CommonPrefixes"] = [{"Prefix": p} for p in prefixes]
        if truncated:
            output["NextKeyMarker"] = next_key
            output["NextUploadIdMarker"] = next_id
        return output


def _part_number(request: dict[str, Any]) -> int:
    number = request.get("PartNumber")
    if number is None or not 1 <= number <= MAX_PARTS:
        raise errors.invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive",
            "partNumber",
            number,
        )
    return number


def _limit(value: int | None, name: str) -> int:
    """MaxParts / MaxUploads: 1000 when absent, at most 1000, never negative."""
    if value is None:
        return DEFAULT_MAX_LIST
    if value < 0:
        raise errors.invalid_argument(
            f"Argument {name} must be an integer between 0 and 2147483647", name, value
        )
    return min(value, DEFAULT_MAX_LIST)


def _after_markers(uploads: list[Upload], key_marker: str, id_marker: str) -> list[Upload]:
    """The uploads (in listing order: key, then initiation) after the markers: those of later
    keys, and with an upload-id marker those of the marker's key that follow that upload."""
    if not key_marker:
        return uploads
    later = [upload for upload in uploads if upload.key > key_marker]
    if not id_marker:
        return later
    same = [upload.id for upload in uploads if upload.key == key_marker]
    if id_marker not in same:
        return later
    rest = [upload for upload in uploads if upload.key == key_marker]
    return rest[same.index(id_marker) + 1 :] + later


def _checksum_agrees(entry: dict[str, Any], algorithm: str | None, part: Part) -> bool:
    """Whether a CompleteMultipartUpload part entry's checksum (if it sends one for the
    upload's algorithm) is the part's."""
    if algorithm is None or part.checksum is None:
        return True
    sent = entry.get(f"Checksum{algorithm}")
    return sent is None or sent.strip() == part.checksum


def _initiator(account: str) -> dict[str, str]:
    return {"ID": f"arn:aws:iam::{account}:root", "DisplayName": "squall"}
