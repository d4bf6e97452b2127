"""S3's errors, with the codes, statuses, messages and extra fields S3 itself sends."""

from __future__ import annotations

from typing import Any

from squall.core.errors import ServiceError


def s3_error(code: str, message: str, status: int = 400, **fields: Any) -> ServiceError:
    return ServiceError(code, message, status=status, fields=fields)


def no_such_bucket(bucket: str) -> ServiceError:
    return s3_error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=bucket)


def no_such_key(key: str) -> ServiceError:
    return s3_error("NoSuchKey", "The specified key does not exist.", 404, Key=key)


def no_such_upload(upload_id: str) -> ServiceError:
    return s3_error(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        404,
        UploadId=upload_id,
    )


def invalid_argument(message: str, name: str | None = None, value: Any = None) -> ServiceError:
    fields: dict[str, Any] = {}
    if name is not None:
        fields = {"ArgumentName": name, "ArgumentValue": value}
    return s3_error("InvalidArgument", message, 400, **fields)


def invalid_request(message: str) -> ServiceError:
    return s3_error("InvalidRequest", message, 400)


def invalid_bucket_name(bucket: str) -> ServiceError:
    return s3_error(
        "InvalidBucketName", "The specified bucket is not valid.", 400, BucketName=bucket
    )


def bucket_already_owned_by_you(bucket: str) -> ServiceError:
    return s3_error(
        "BucketAlreadyOwnedByYou",
        "Your previous request to create the named bucket succeeded and you already own it.",
        409,
        BucketName=bucket,
    )


def bucket_already_exists(bucket: str) -> ServiceError:
    return s3_error(
        "BucketAlreadyExists",
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again.",
        409,
        BucketName=bucket,
    )


def bucket_not_empty(bucket: str) -> ServiceError:
    return s3_error(
        "BucketNotEmpty",
        "The bucket you tried to delete is not empty",
        409,
        BucketName=bucket,
    )


def invalid_range(size: int, requested: str) -> ServiceError:
    return ServiceError(
        "InvalidRange",
        "The requested range is not satisfiable",
        status=416,
        fields={"ActualObjectSize": size, "RangeRequested": requested},
        headers={"Content-Range": f"bytes */{size}"},
    )


def precondition_failed(condition: str) -> ServiceError:
    return s3_error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        412,
        Condition=condition,
    )


def not_modified(etag: str, last_modified: str) -> ServiceError:
    """304: S3 sends no body, only the validators."""
    return ServiceError(
        "NotModified",
        "Not Modified",
        status=304,
        headers={"ETag": etag, "Last-Modified": last_modified},
    )


def bad_digest(
    message: str = "The Content-MD5 you specified did not match what we received.",
) -> ServiceError:
    return s3_error("BadDigest", message, 400)


def invalid_digest() -> ServiceError:
    return s3_error("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)


def entity_too_large(size: int, limit: int) -> ServiceError:
    return s3_error(
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size",
        400,
        ProposedSize=size,
        MaxSizeAllowed=limit,
    )


def entity_too_small(size: int, minimum: int) -> ServiceError:
    return s3_error(
        "EntityTooSmall",
        "Your proposed upload is smaller than the minimum allowed size",
        400,
        ProposedSize=size,
        MinSizeAllowed=minimum,
    )


def incomplete_body() -> ServiceError:
    return s3_error(
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header",
        400,
    )


def invalid_part(part_number: int, etag: str | None = None) -> ServiceError:
    return s3_error(
        "InvalidPart",
        "One or more of the specified parts could not be found.  The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
        400,
        PartNumber=part_number,
        ETag=etag,
    )


def invalid_part_order() -> ServiceError:
    return s3_error(
        "InvalidPartOrder",
        "The list of parts was not in ascending order. Parts must be ordered by part number.",
        400,
    )


def malformed_xml() -> ServiceError:
    return s3_error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def invalid_tag(message: str) -> ServiceError:
    return s3_error("InvalidTag", message, 400)


def key_too_long(size: int) -> ServiceError:
    return s3_error("KeyTooLongError", "Your key is too long", 400, Size=size, MaxSizeAllowed=1024)


def access_denied(message: str = "Access Denied") -> ServiceError:
    return s3_error("AccessDenied", message, 403)


def invalid_uri() -> ServiceError:
    return s3_error("InvalidURI", "Couldn't parse the specified URI.", 400)


def invalid_part_number() -> ServiceError:
    return s3_error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416)


def not_implemented(header: str) -> ServiceError:
    return s3_error(
        "NotImplemented",
        "A header you provided implies functionality that is not implemented",
        501,
        Header=header,
    )
