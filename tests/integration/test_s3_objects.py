"""S3 objects through boto3 (and raw signed requests where an SDK would hide the wire) against a
running server: put/get/head/delete, batch delete, copy with metadata directives, ranges,
conditional reads and writes, metadata and content headers, ETags, checksums (headers and
aws-chunked trailers), presigned URLs, tagging, S3's errors, awkward keys, empty and large
objects through boto3's managed transfers."""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.exceptions
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.aws import ACCESS_KEY, REGION, SECRET_KEY, client, signed_request
from tests.support.lambdas import unique

MIB = 1024 * 1024
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
COPY_TO_ITSELF = (
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes."
)
HTTP_DATE = "%a, %d %b %Y %H:%M:%S GMT"


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3", s3={"addressing_style": "path"})


@pytest.fixture(scope="module")
def presigner(endpoint: str) -> Any:
    """boto3 presigns with SigV2 in us-east-1 unless told otherwise; query-string SigV4 here."""
    return client(endpoint, "s3", signature_version="s3v4", s3={"addressing_style": "path"})


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique("obj")
    s3.create_bucket(Bucket=name)
    return name


def fails(call: Callable[..., Any], **params: Any) -> tuple[str, int, dict[str, Any]]:
    """(error code, HTTP status, the parsed Error) of a call that must fail."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**params)
    answer = caught.value.response
    return answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]


def etag_of(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def body_of(s3: Any, bucket: str, key: str, **extra: Any) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()


def headers_of(answer: dict[str, Any]) -> dict[str, str]:
    return answer["ResponseMetadata"]["HTTPHeaders"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def checksum(algorithm: str, data: bytes) -> str:
    """The base64 value S3 reports in x-amz-checksum-<algorithm>."""
    if algorithm == "CRC32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algorithm == "CRC32C":
        return b64(crc32c(data).to_bytes(4, "big"))
    return b64(hashlib.new(algorithm.lower(), data).digest())


class _PresetPayloadAuth(S3SigV4Auth):
    """SigV4 for S3 with a fixed x-amz-content-sha256 (STREAMING-..., UNSIGNED-PAYLOAD)."""

    def __init__(self, payload_hash: str) -> None:
        super().__init__(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION)
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


def aws_chunked_put(
    endpoint: str,
    path: str,
    chunks: list[bytes],
    trailer: tuple[str, str],
    extra_headers: dict[str, str] | None = None,
) -> requests.Response:
    """PUT as SDKs do over TLS: Content-Encoding aws-chunked, unsigned payload, a checksum
    trailer after the last chunk."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks if chunk)
    body += b"0\r\n%s:%s\r\n\r\n" % (trailer[0].encode(), trailer[1].encode())
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(sum(len(chunk) for chunk in chunks)),
        "x-amz-trailer": trailer[0],
        "Content-Length": str(len(body)),
        **(extra_headers or {}),
    }
    request = AWSRequest(method="PUT", url=endpoint + path, data=body, headers=headers)
    _PresetPayloadAuth("STREAMING-UNSIGNED-PAYLOAD-TRAILER").add_auth(request)
    prepared = request.prepare()
    return requests.put(prepared.url, data=body, headers=dict(prepared.headers), timeout=30)


# --------------------------------------------------------------------------- basic round trip


def test_put_get_head_delete_round_trip(s3: Any, bucket: str) -> None:
    data = b"hello, squall\n" * 100
    put = s3.put_object(Bucket=bucket, Key="greeting.txt", Body=data)
    assert put["ETag"] == etag_of(data)

    got = s3.get_object(Bucket=bucket, Key="greeting.txt")
    assert got["Body"].read() == data
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["ETag"] == etag_of(data)
    assert got["ContentLength"] == len(data)
    assert got["ContentType"] == "binary/octet-stream"  # S3's default
    assert got["AcceptRanges"] == "bytes"
    assert isinstance(got["LastModified"], datetime.datetime)
    assert headers_of(got)["x-amz-request-id"]

    head = s3.head_object(Bucket=bucket, Key="greeting.txt")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == etag_of(data)
    assert head["LastModified"] == got["LastModified"]

    deleted = s3.delete_object(Bucket=bucket, Key="greeting.txt")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    code, status, error = fails(s3.get_object, Bucket=bucket, Key="greeting.txt")
    assert (code, status) == ("NoSuchKey", 404)
    assert error["Key"] == "greeting.txt"


def test_put_replaces_the_whole_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version, longer", Metadata={"v": "1"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second"
    assert got["Metadata"] == {}


def test_delete_of_a_missing_key_is_204(s3: Any, bucket: str) -> None:
    answer = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_empty_object(s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == f'"{EMPTY_MD5}"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0
    assert s3.head_object(Bucket=bucket, Key="empty")["ContentLength"] == 0
    code, status, _ = fails(s3.get_object, Bucket=bucket, Key="empty", Range="bytes=0-0")
    assert (code, status) == ("InvalidRange", 416)


@pytest.mark.parametrize(
    "data",
    [b"a", b"\x00\xff" * 1000, os.urandom(3 * MIB + 17)],
    ids=["one-byte", "binary", "3MiB-random"],
)
def test_etag_is_the_quoted_md5_hex(s3: Any, bucket: str, data: bytes) -> None:
    assert s3.put_object(Bucket=bucket, Key="e", Body=data)["ETag"] == etag_of(data)
    assert s3.head_object(Bucket=bucket, Key="e")["ETag"] == etag_of(data)
    assert body_of(s3, bucket, "e") == data


# --------------------------------------------------------------------------- batch delete


def test_delete_objects_reports_every_key_even_missing_ones(s3: Any, bucket: str) -> None:
    for key in ("a", "b/c", "d e"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    answer = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": k} for k in ("a", "b/c", "d e", "missing")]},
    )
    assert sorted(item["Key"] for item in answer["Deleted"]) == ["a", "b/c", "d e", "missing"]
    assert "Errors" not in answer
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_quiet_reports_nothing(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    answer = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "x"}, {"Key": "y"}], "Quiet": True}
    )
    assert "Deleted" not in answer
    assert "Errors" not in answer
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_in_a_missing_bucket_is_no_such_bucket(s3: Any) -> None:
    code, status, _ = fails(
        s3.delete_objects, Bucket=unique("missing"), Delete={"Objects": [{"Key": "x"}]}
    )
    assert (code, status) == ("NoSuchBucket", 404)


# --------------------------------------------------------------------------- copy


def put_described(s3: Any, bucket: str, key: str, data: bytes = b"source body") -> None:
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType="text/csv",
        Metadata={"origin": "source", "n": "1"},
        CacheControl="max-age=10",
    )


def test_copy_object_copies_body_and_metadata_by_default(s3: Any, bucket: str) -> None:
    put_described(s3, bucket, "src.csv")
    answer = s3.copy_object(
        Bucket=bucket, Key="dst.csv", CopySource={"Bucket": bucket, "Key": "src.csv"}
    )
    assert answer["CopyObjectResult"]["ETag"] == etag_of(b"source body")
    assert isinstance(answer["CopyObjectResult"]["LastModified"], datetime.datetime)
    got = s3.get_object(Bucket=bucket, Key="dst.csv")
    assert got["Body"].read() == b"source body"
    assert got["ContentType"] == "text/csv"
    assert got["Metadata"] == {"origin": "source", "n": "1"}
    assert got["CacheControl"] == "max-age=10"


def test_copy_object_with_copy_directive_ignores_new_metadata(s3: Any, bucket: str) -> None:
    put_described(s3, bucket, "src")
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="COPY",
        Metadata={"ignored": "yes"},
    )
    assert s3.head_object(Bucket=bucket, Key="dst")["Metadata"] == {"origin": "source", "n": "1"}


def test_copy_object_with_replace_directive_takes_new_metadata(s3: Any, bucket: str) -> None:
    put_described(s3, bucket, "src")
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"origin": "replaced"},
        ContentType="application/json",
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"origin": "replaced"}
    assert head["ContentType"] == "application/json"
    assert "CacheControl" not in head
    assert body_of(s3, bucket, "dst") == b"source body"
    # the source is untouched
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"origin": "source", "n": "1"}


def test_copy_object_to_itself_without_changes_is_invalid_request(s3: Any, bucket: str) -> None:
    put_described(s3, bucket, "self")
    code, status, error = fails(
        s3.copy_object, Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"}
    )
    assert (code, status) == ("InvalidRequest", 400)
    assert error["Message"] == COPY_TO_ITSELF


def test_copy_object_to_itself_replacing_metadata_is_allowed(s3: Any, bucket: str) -> None:
    put_described(s3, bucket, "self")
    s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource={"Bucket": bucket, "Key": "self"},
        MetadataDirective="REPLACE",
        Metadata={"origin": "rewritten"},
    )
    head = s3.head_object(Bucket=bucket, Key="self")
    assert head["Metadata"] == {"origin": "rewritten"}
    assert body_of(s3, bucket, "self") == b"source body"


def test_copy_between_buckets_with_an_awkward_key(s3: Any, bucket: str) -> None:
    other = unique("obj")
    s3.create_bucket(Bucket=other)
    key = "dir/ünï cödé+plus&amp=?.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"awkward")
    s3.copy_object(Bucket=other, Key=key, CopySource={"Bucket": bucket, "Key": key})
    assert body_of(s3, other, key) == b"awkward"


def test_copy_from_a_missing_source(s3: Any, bucket: str) -> None:
    code, status, _ = fails(
        s3.copy_object, Bucket=bucket, Key="d", CopySource={"Bucket": bucket, "Key": "nope"}
    )
    assert (code, status) == ("NoSuchKey", 404)
    code, status, _ = fails(
        s3.copy_object,
        Bucket=bucket,
        Key="d",
        CopySource={"Bucket": unique("missing"), "Key": "nope"},
    )
    assert (code, status) == ("NoSuchBucket", 404)


# --------------------------------------------------------------------------- ranges

RANGE_BODY = bytes(range(100))


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, 99),
        ("bytes=-5", 95, 99),
        ("bytes=90-200", 90, 99),  # an end past the object is cut to its last byte
        ("bytes=42-42", 42, 42),
    ],
)
def test_range_get_is_206_with_content_range(
    s3: Any, bucket: str, header: str, first: int, last: int
) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {first}-{last}/100"
    assert got["ContentLength"] == last - first + 1
    assert got["Body"].read() == RANGE_BODY[first : last + 1]
    assert got["ETag"] == etag_of(RANGE_BODY)


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=500-600"])
def test_unsatisfiable_range_is_416_invalid_range(s3: Any, bucket: str, header: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    code, status, error = fails(s3.get_object, Bucket=bucket, Key="r", Range=header)
    assert (code, status) == ("InvalidRange", 416)
    assert error["Message"] == "The requested range is not satisfiable"


def test_malformed_range_is_ignored(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=abc")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == RANGE_BODY


def test_range_on_head_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    head = s3.head_object(Bucket=bucket, Key="r", Range="bytes=0-9")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == 10
    assert head["ContentRange"] == "bytes 0-9/100"


# --------------------------------------------------------------------------- conditions


@pytest.fixture
def stored(s3: Any, bucket: str) -> tuple[str, str, datetime.datetime]:
    """(bucket, the object's ETag, its Last-Modified) of an object named "c"."""
    s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    head = s3.head_object(Bucket=bucket, Key="c")
    return bucket, head["ETag"], head["LastModified"]


HOUR = datetime.timedelta(hours=1)


def condition_cases(etag: str, modified: datetime.datetime) -> list[tuple[dict[str, Any], str]]:
    """(conditions, outcome) as RFC 7232 and the S3 GetObject reference define them."""
    return [
        ({"IfMatch": etag}, "200"),
        ({"IfMatch": '"0123456789abcdef0123456789abcdef"'}, "412"),
        ({"IfNoneMatch": etag}, "304"),
        ({"IfNoneMatch": '"0123456789abcdef0123456789abcdef"'}, "200"),
        ({"IfModifiedSince": modified + HOUR}, "304"),
        ({"IfModifiedSince": modified}, "304"),
        ({"IfModifiedSince": modified - HOUR}, "200"),
        ({"IfUnmodifiedSince": modified - HOUR}, "412"),
        ({"IfUnmodifiedSince": modified + HOUR}, "200"),
        # If-Match true and If-Unmodified-Since false: 200
        ({"IfMatch": etag, "IfUnmodifiedSince": modified - HOUR}, "200"),
        # If-None-Match false and If-Modified-Since true: 304
        ({"IfNoneMatch": etag, "IfModifiedSince": modified - HOUR}, "304"),
    ]


def test_conditional_get_answers_200_304_or_412(s3: Any, stored: tuple) -> None:
    bucket, etag, modified = stored
    for conditions, outcome in condition_cases(etag, modified):
        if outcome == "200":
            got = s3.get_object(Bucket=bucket, Key="c", **conditions)
            assert got["Body"].read() == b"conditional", conditions
            continue
        code, status, error = fails(s3.get_object, Bucket=bucket, Key="c", **conditions)
        if outcome == "304":
            assert (code, status) == ("304", 304), conditions
        else:
            assert (code, status) == ("PreconditionFailed", 412), conditions
            assert error["Message"] == (
                "At least one of the pre-conditions you specified did not hold"
            )


def test_conditional_head_answers_200_304_or_412(s3: Any, stored: tuple) -> None:
    bucket, etag, modified = stored
    for conditions, outcome in condition_cases(etag, modified):
        if outcome == "200":
            s3.head_object(Bucket=bucket, Key="c", **conditions)
            continue
        code, status, _ = fails(s3.head_object, Bucket=bucket, Key="c", **conditions)
        assert (code, status) == (outcome, int(outcome)), conditions


def test_not_modified_carries_the_validators(endpoint: str, stored: tuple) -> None:
    bucket, etag, _ = stored
    answer = signed_request(endpoint, "s3", "GET", f"/{bucket}/c", headers={"If-None-Match": etag})
    assert answer.status_code == 304
    assert answer.content == b""
    assert answer.headers["ETag"] == etag
    assert "Last-Modified" in answer.headers


def test_put_if_none_match_star_creates_only_once(s3: Any, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    assert first["ETag"] == etag_of(b"first")
    code, status, _ = fails(
        s3.put_object, Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*"
    )
    assert (code, status) == ("PreconditionFailed", 412)
    assert body_of(s3, bucket, "once") == b"first"


# --------------------------------------------------------------------------- metadata, headers


def test_user_metadata_and_content_headers_round_trip(s3: Any, bucket: str) -> None:
    data = gzip.compress(b"compressed text " * 50)
    expires = datetime.datetime(2037, 1, 1, tzinfo=datetime.UTC)
    s3.put_object(
        Bucket=bucket,
        Key="report.txt",
        Body=data,
        Metadata={"color": "blue", "Mixed-Case": "Value With Spaces"},
        ContentType="text/plain; charset=utf-8",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="report.txt"',
        ContentLanguage="en-GB",
        CacheControl="no-cache, max-age=0",
        Expires=expires,
    )
    for answer in (
        s3.get_object(Bucket=bucket, Key="report.txt"),
        s3.head_object(Bucket=bucket, Key="report.txt"),
    ):
        assert answer["Metadata"] == {"color": "blue", "mixed-case": "Value With Spaces"}
        assert answer["ContentType"] == "text/plain; charset=utf-8"
        assert answer["ContentEncoding"] == "gzip"
        assert answer["ContentDisposition"] == 'attachment; filename="report.txt"'
        assert answer["ContentLanguage"] == "en-GB"
        assert answer["CacheControl"] == "no-cache, max-age=0"
        headers = headers_of(answer)
        assert headers["expires"] == "Thu, 01 Jan 2037 00:00:00 GMT"
        assert headers["x-amz-meta-color"] == "blue"
    assert body_of(s3, bucket, "report.txt") == data  # stored as sent, not decoded


def test_response_header_overrides_on_get(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/octet-stream",
        ResponseContentDisposition="attachment",
        ResponseCacheControl="no-store",
    )
    assert got["ContentType"] == "application/octet-stream"
    assert got["ContentDisposition"] == "attachment"
    assert got["CacheControl"] == "no-store"


# --------------------------------------------------------------------------- checksums


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_checksum_algorithm_is_validated_stored_and_returned(
    s3: Any, bucket: str, algorithm: str
) -> None:
    data = os.urandom(100_000)
    expected = checksum(algorithm, data)
    put = s3.put_object(Bucket=bucket, Key="sum", Body=data, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"] == expected
    head = s3.head_object(Bucket=bucket, Key="sum", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected
    got = s3.get_object(Bucket=bucket, Key="sum", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == expected
    assert got["Body"].read() == data  # botocore validates the checksum while reading


def test_crc32c_checksum_value_is_validated_and_returned(s3: Any, bucket: str) -> None:
    data = b"crc32c please " * 1000
    expected = checksum("CRC32C", data)
    assert crc32c(b"123456789") == 0xE3069283  # the helper itself
    put = s3.put_object(Bucket=bucket, Key="c", Body=data, ChecksumCRC32C=expected)
    assert put["ChecksumCRC32C"] == expected
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == expected


def test_default_boto3_checksum_is_crc32_and_only_returned_when_asked(s3: Any, bucket: str) -> None:
    data = b"default checksum"
    s3.put_object(Bucket=bucket, Key="d", Body=data)  # boto3 sends CRC32 unless told otherwise
    assert s3.head_object(Bucket=bucket, Key="d", ChecksumMode="ENABLED")[
        "ChecksumCRC32"
    ] == checksum("CRC32", data)
    assert "ChecksumCRC32" not in s3.head_object(Bucket=bucket, Key="d")


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_wrong_checksum_is_bad_digest_and_stores_nothing(
    s3: Any, bucket: str, algorithm: str
) -> None:
    wrong = checksum(algorithm, b"something else")
    code, status, error = fails(
        s3.put_object, Bucket=bucket, Key="bad", Body=b"payload", **{f"Checksum{algorithm}": wrong}
    )
    assert (code, status) == ("BadDigest", 400)
    assert "did not match" in error["Message"]
    assert fails(s3.head_object, Bucket=bucket, Key="bad")[:2] == ("404", 404)


def test_wrong_content_md5_is_bad_digest(s3: Any, bucket: str) -> None:
    wrong = b64(hashlib.md5(b"other").digest())
    code, status, error = fails(
        s3.put_object, Bucket=bucket, Key="bad", Body=b"payload", ContentMD5=wrong
    )
    assert (code, status) == ("BadDigest", 400)
    assert error["Message"] == "The Content-MD5 you specified did not match what we received."
    right = b64(hashlib.md5(b"payload").digest())
    s3.put_object(Bucket=bucket, Key="good", Body=b"payload", ContentMD5=right)


def test_malformed_content_md5_is_invalid_digest(s3: Any, bucket: str) -> None:
    code, status, _ = fails(
        s3.put_object, Bucket=bucket, Key="bad", Body=b"payload", ContentMD5="not-an-md5"
    )
    assert (code, status) == ("InvalidDigest", 400)


def test_aws_chunked_upload_with_checksum_trailer(s3: Any, endpoint: str, bucket: str) -> None:
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024), b"tail"]
    data = b"".join(chunks)
    answer = aws_chunked_put(
        endpoint,
        f"/{bucket}/chunked.bin",
        chunks,
        ("x-amz-checksum-crc32", checksum("CRC32", data)),
        {"x-amz-sdk-checksum-algorithm": "CRC32", "Content-Type": "application/x-test"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == etag_of(data)
    assert answer.headers["x-amz-checksum-crc32"] == checksum("CRC32", data)
    head = s3.head_object(Bucket=bucket, Key="chunked.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ChecksumCRC32"] == checksum("CRC32", data)
    assert head["ContentType"] == "application/x-test"
    assert "aws-chunked" not in head.get("ContentEncoding", "")
    assert body_of(s3, bucket, "chunked.bin") == data


def test_aws_chunked_upload_with_a_wrong_trailer_is_bad_digest(
    s3: Any, endpoint: str, bucket: str
) -> None:
    answer = aws_chunked_put(
        endpoint,
        f"/{bucket}/chunked.bin",
        [b"some data"],
        ("x-amz-checksum-sha256", checksum("SHA256", b"other data")),
    )
    assert answer.status_code == 400
    assert "<Code>BadDigest</Code>" in answer.text
    assert fails(s3.head_object, Bucket=bucket, Key="chunked.bin")[:2] == ("404", 404)


def test_unsigned_payload_put(s3: Any, endpoint: str, bucket: str) -> None:
    request = AWSRequest(
        method="PUT", url=f"{endpoint}/{bucket}/unsigned", data=b"unsigned body", headers={}
    )
    _PresetPayloadAuth("UNSIGNED-PAYLOAD").add_auth(request)
    prepared = request.prepare()
    answer = requests.put(
        prepared.url, data=b"unsigned body", headers=dict(prepared.headers), timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert body_of(s3, bucket, "unsigned") == b"unsigned body"


def test_signed_payload_that_does_not_match_is_rejected(endpoint: str, bucket: str) -> None:
    request = AWSRequest(method="PUT", url=f"{endpoint}/{bucket}/k", data=b"one", headers={})
    _PresetPayloadAuth(hashlib.sha256(b"another").hexdigest()).add_auth(request)
    prepared = request.prepare()
    answer = requests.put(prepared.url, data=b"one", headers=dict(prepared.headers), timeout=30)
    assert answer.status_code == 400
    assert "<Code>XAmzContentSHA256Mismatch</Code>" in answer.text


# --------------------------------------------------------------------------- presigned URLs


def test_presigned_get_and_put(s3: Any, presigner: Any, bucket: str) -> None:
    put_url = presigner.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "pre/signed.txt"}, ExpiresIn=300
    )
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in put_url
    put = requests.put(put_url, data=b"uploaded by url", timeout=30)
    assert put.status_code == 200, put.text
    assert put.headers["ETag"] == etag_of(b"uploaded by url")

    get_url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "pre/signed.txt"}, ExpiresIn=300
    )
    got = requests.get(get_url, timeout=30)
    assert (got.status_code, got.content) == (200, b"uploaded by url")
    assert body_of(s3, bucket, "pre/signed.txt") == b"uploaded by url"


def test_presigned_get_of_a_missing_key_is_no_such_key(
    s3: Any, presigner: Any, bucket: str
) -> None:
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"})
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 404
    assert "<Code>NoSuchKey</Code>" in answer.text


def test_expired_presigned_url_is_access_denied(s3: Any, presigner: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="old", Body=b"x")
    two_hours_ago = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - 2 * HOUR
    with mock.patch("botocore.auth.get_current_datetime", return_value=two_hours_ago):
        url = presigner.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "old"}, ExpiresIn=60
        )
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text
    assert "Request has expired" in answer.text


def test_presigned_url_with_a_tampered_signature_is_signature_does_not_match(
    s3: Any, presigner: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    tampered = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "0" * 64, url)
    answer = requests.get(tampered, timeout=30)
    assert answer.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in answer.text


def test_presigned_get_with_boto3_defaults(s3: Any, bucket: str) -> None:
    """What a default boto3 client in us-east-1 hands out: a SigV2 query-string URL."""
    s3.put_object(Bucket=bucket, Key="v2", Body=b"default presign")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v2"})
    answer = requests.get(url, timeout=30)
    assert (answer.status_code, answer.content) == (200, b"default presign"), answer.text


# --------------------------------------------------------------------------- tagging


def tags_of(s3: Any, bucket: str, key: str) -> dict[str, str]:
    tag_set = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def test_object_tagging_lifecycle(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="project=squall&team=s3%20core")
    assert tags_of(s3, bucket, "t") == {"project": "squall", "team": "s3 core"}
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2

    s3.put_object_tagging(
        Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "only", "Value": "one"}]}
    )
    assert tags_of(s3, bucket, "t") == {"only": "one"}
    assert headers_of(s3.get_object(Bucket=bucket, Key="t"))["x-amz-tagging-count"] == "1"

    deleted = s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert tags_of(s3, bucket, "t") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="t")


def test_copy_keeps_tags_unless_replaced(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=1")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "t"})
    assert tags_of(s3, bucket, "copied") == {"a": "1"}
    s3.copy_object(
        Bucket=bucket,
        Key="retagged",
        CopySource={"Bucket": bucket, "Key": "t"},
        TaggingDirective="REPLACE",
        Tagging="b=2",
    )
    assert tags_of(s3, bucket, "retagged") == {"b": "2"}


def test_tagging_a_missing_key_is_no_such_key(s3: Any, bucket: str) -> None:
    assert fails(s3.get_object_tagging, Bucket=bucket, Key="nope")[:2] == ("NoSuchKey", 404)
    code, status, _ = fails(
        s3.put_object_tagging, Bucket=bucket, Key="nope", Tagging={"TagSet": []}
    )
    assert (code, status) == ("NoSuchKey", 404)


def test_too_many_tags_is_bad_request(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    tag_set = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    code, status, _ = fails(
        s3.put_object_tagging, Bucket=bucket, Key="t", Tagging={"TagSet": tag_set}
    )
    assert (code, status) == ("BadRequest", 400)


# --------------------------------------------------------------------------- errors


def test_missing_key_and_bucket_errors(s3: Any, bucket: str) -> None:
    code, status, error = fails(s3.get_object, Bucket=bucket, Key="nope/key.txt")
    assert (code, status) == ("NoSuchKey", 404)
    assert error["Message"] == "The specified key does not exist."
    assert error["Key"] == "nope/key.txt"
    assert fails(s3.head_object, Bucket=bucket, Key="nope")[:2] == ("404", 404)

    missing = unique("missing")
    code, status, error = fails(s3.get_object, Bucket=missing, Key="k")
    assert (code, status) == ("NoSuchBucket", 404)
    assert error["BucketName"] == missing
    assert fails(s3.put_object, Bucket=missing, Key="k", Body=b"x")[:2] == ("NoSuchBucket", 404)


def test_errors_are_s3_xml_documents(endpoint: str, bucket: str) -> None:
    answer = signed_request(endpoint, "s3", "GET", f"/{bucket}/missing-key")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/xml")
    text = answer.text
    assert text.startswith("<?xml")
    assert re.search(
        r"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist\.</Message>"
        r"<Key>missing-key</Key>.*<RequestId>[^<]+</RequestId>.*</Error>",
        text,
        re.DOTALL,
    ), text
    assert answer.headers["x-amz-request-id"] in text


def test_wrong_secret_is_signature_does_not_match(endpoint: str, bucket: str) -> None:
    bad = client(endpoint, "s3", secret_key="not-the-secret", s3={"addressing_style": "path"})
    for call, params in (
        (bad.put_object, {"Bucket": bucket, "Key": "k", "Body": b"x"}),
        (bad.list_objects_v2, {"Bucket": bucket}),
    ):
        code, status, _ = fails(call, **params)
        assert (code, status) == ("SignatureDoesNotMatch", 403)
    code, status, _ = fails(bad.head_object, Bucket=bucket, Key="k")
    assert (code, status) == ("403", 403)


def test_anonymous_request_is_access_denied(s3: Any, endpoint: str, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    answer = requests.get(f"{endpoint}/{bucket}/private", timeout=30)
    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text


def test_key_longer_than_1024_bytes_is_rejected(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"x")
    assert body_of(s3, bucket, "k" * 1024) == b"x"
    code, status, _ = fails(s3.put_object, Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert (code, status) == ("KeyTooLongError", 400)


# --------------------------------------------------------------------------- awkward keys

AWKWARD_KEYS = [
    "plain.txt",
    "with space.txt",
    "ünïcödé/日本語/鍵.txt",
    "emoji 🎉.bin",
    "special !$&'()*+,;=:@.txt",
    "percent%20literal%2F",
    "tilde~caret^grave`",
    "question?mark",
    "hash#tag",
    "a/b//c/",
    "brackets[]{}<>|",
    'quote"s',
    "back\\slash",
    "trailing space ",
]


def test_awkward_keys_round_trip_and_list(s3: Any, bucket: str) -> None:
    for key in AWKWARD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in AWKWARD_KEYS:
        assert body_of(s3, bucket, key) == key.encode(), key
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(key.encode())
    listed = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(AWKWARD_KEYS, key=lambda key: key.encode())  # UTF-8 binary order
    for key in AWKWARD_KEYS:
        s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# --------------------------------------------------------------------------- managed transfers


def test_upload_file_and_download_file_of_20mb(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(20 * MIB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    s3.upload_file(str(source), bucket, "big/file.bin")  # 8 MiB parts: multipart, 3 parts

    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["ContentLength"] == len(data)
    assert re.fullmatch(r'"[0-9a-f]{32}-3"', head["ETag"]), head["ETag"]

    target = tmp_path / "back.bin"
    s3.download_file(bucket, "big/file.bin", str(target))  # ranged GETs in parallel
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_upload_fileobj_and_download_fileobj_of_20mb(s3: Any, bucket: str) -> None:
    data = os.urandom(20 * MIB + 12345)
    s3.upload_fileobj(io.BytesIO(data), bucket, "big/obj.bin")
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big/obj.bin", out)
    assert out.getvalue() == data
    small = io.BytesIO()
    s3.upload_fileobj(io.BytesIO(b"small"), bucket, "small.bin")
    s3.download_fileobj(bucket, "small.bin", small)
    assert small.getvalue() == b"small"


def test_two_checksum_headers_are_invalid_request(s3: Any, endpoint: str, bucket: str) -> None:
    answer = signed_request(
        endpoint,
        "s3",
        "PUT",
        f"/{bucket}/two-sums",
        body=b"x",
        headers={
            "x-amz-checksum-crc32": checksum("CRC32", b"x"),
            "x-amz-checksum-sha256": checksum("SHA256", b"x"),
        },
    )
    assert answer.status_code == 400
    assert "<Code>InvalidRequest</Code>" in answer.text
    assert fails(s3.head_object, Bucket=bucket, Key="two-sums")[:2] == ("404", 404)


def test_deleting_another_version_keeps_the_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="kept", Body=b"data")
    code, status, _ = fails(s3.delete_object, Bucket=bucket, Key="kept", VersionId="3HL4kqtJlcpX")
    assert (code, status) == ("InvalidArgument", 400)
    assert body_of(s3, bucket, "kept") == b"data"  # once deleted by this request
    s3.delete_object(Bucket=bucket, Key="kept", VersionId="null")
    assert fails(s3.head_object, Bucket=bucket, Key="kept")[:2] == ("404", 404)
