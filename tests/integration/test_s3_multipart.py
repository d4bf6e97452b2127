"""Multipart uploads through boto3 against a running server: create, upload part, upload part
copy (with ranges), complete (ETag md5-of-md5s-N), abort, ListParts, ListMultipartUploads, and
S3's errors (EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from tests.support.aws import client
from tests.support.lambdas import unique

MIB = 1024 * 1024
MIN_PART = 5 * MIB


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3", s3={"addressing_style": "path"})


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique("mpu")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def big_part() -> bytes:
    return os.urandom(MIN_PART)


def fails(call: Callable[..., Any], **params: Any) -> tuple[str, int, dict[str, Any]]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**params)
    answer = caught.value.response
    return answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def start(s3: Any, bucket: str, key: str = "mpu.bin", **extra: Any) -> str:
    return s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]


def upload(s3: Any, bucket: str, upload_id: str, parts: list[bytes], key: str = "mpu.bin") -> list:
    """Upload `parts` as parts 1..N; the list CompleteMultipartUpload takes."""
    done = []
    for number, data in enumerate(parts, start=1):
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        assert answer["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        done.append({"PartNumber": number, "ETag": answer["ETag"]})
    return done


def complete(s3: Any, bucket: str, upload_id: str, parts: list, key: str = "mpu.bin") -> dict:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


# --------------------------------------------------------------------------- the happy path


def test_create_upload_complete(s3: Any, bucket: str, big_part: bytes) -> None:
    created = s3.create_multipart_upload(
        Bucket=bucket, Key="mpu.bin", ContentType="application/x-parts", Metadata={"m": "1"}
    )
    assert created["Bucket"] == bucket
    assert created["Key"] == "mpu.bin"
    upload_id = created["UploadId"]
    parts = [big_part, b"the last part may be small"]
    done = complete(s3, bucket, upload_id, upload(s3, bucket, upload_id, parts))
    assert done["ETag"] == multipart_etag(parts)
    assert done["Bucket"] == bucket
    assert done["Key"] == "mpu.bin"
    assert done["Location"]

    got = s3.get_object(Bucket=bucket, Key="mpu.bin")
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == multipart_etag(parts)
    assert got["ContentLength"] == sum(map(len, parts))
    assert got["ContentType"] == "application/x-parts"
    assert got["Metadata"] == {"m": "1"}
    # the upload is gone once completed
    assert upload_id not in [u["UploadId"] for u in list_uploads(s3, bucket)]


def test_single_small_part_is_allowed(s3: Any, bucket: str) -> None:
    upload_id = start(s3, bucket)
    done = complete(s3, bucket, upload_id, upload(s3, bucket, upload_id, [b"only part"]))
    assert done["ETag"] == multipart_etag([b"only part"])
    assert s3.get_object(Bucket=bucket, Key="mpu.bin")["Body"].read() == b"only part"


def test_completing_a_subset_of_parts_keeps_only_those(
    s3: Any, bucket: str, big_part: bytes
) -> None:
    upload_id = start(s3, bucket)
    done = upload(s3, bucket, upload_id, [big_part, b"second", b"third"])
    complete(s3, bucket, upload_id, [done[0], done[2]])
    body = s3.get_object(Bucket=bucket, Key="mpu.bin")["Body"].read()
    assert body == big_part + b"third"


def test_uploading_a_part_again_replaces_it(s3: Any, bucket: str) -> None:
    upload_id = start(s3, bucket)
    upload(s3, bucket, upload_id, [b"first try"])
    final = upload(s3, bucket, upload_id, [b"second try"])
    parts = s3.list_parts(Bucket=bucket, Key="mpu.bin", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [
        (1, final[0]["ETag"], len(b"second try"))
    ]
    complete(s3, bucket, upload_id, final)
    assert s3.get_object(Bucket=bucket, Key="mpu.bin")["Body"].read() == b"second try"


def test_upload_part_copy_with_ranges(s3: Any, bucket: str, big_part: bytes) -> None:
    source = big_part + b"0123456789"
    s3.put_object(Bucket=bucket, Key="source.bin", Body=source)
    upload_id = start(s3, bucket, "copied.bin")

    def copy_part(number: int, first: int, last: int) -> str:
        answer = s3.upload_part_copy(
            Bucket=bucket,
            Key="copied.bin",
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": "source.bin"},
            CopySourceRange=f"bytes={first}-{last}",
        )
        assert answer["CopyPartResult"]["LastModified"].tzinfo is not None
        return answer["CopyPartResult"]["ETag"]

    first = copy_part(1, 0, MIN_PART - 1)
    assert first == f'"{hashlib.md5(big_part).hexdigest()}"'
    last = copy_part(2, MIN_PART + 2, MIN_PART + 5)  # the last part may be small
    assert last == f'"{hashlib.md5(b"2345").hexdigest()}"'
    parts = [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": last}]
    done = complete(s3, bucket, upload_id, parts, key="copied.bin")
    assert done["ETag"] == multipart_etag([big_part, b"2345"])
    assert s3.get_object(Bucket=bucket, Key="copied.bin")["Body"].read() == big_part + b"2345"


def test_upload_part_copy_of_a_whole_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="whole", Body=b"whole object")
    upload_id = start(s3, bucket, "dst")
    answer = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "whole"},
    )
    complete(
        s3, bucket, upload_id, [{"PartNumber": 1, "ETag": answer["CopyPartResult"]["ETag"]}], "dst"
    )
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"whole object"


def test_upload_part_copy_with_an_unsatisfiable_range(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="small", Body=b"tiny")
    upload_id = start(s3, bucket)
    code, status, _ = fails(
        s3.upload_part_copy,
        Bucket=bucket,
        Key="mpu.bin",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "small"},
        CopySourceRange="bytes=10-20",
    )
    # S3: "Range specified is not valid for source object of size: 4"
    assert (code, status) == ("InvalidArgument", 400)


# --------------------------------------------------------------------------- listing


def list_uploads(s3: Any, bucket: str, **extra: Any) -> list[dict[str, Any]]:
    return s3.list_multipart_uploads(Bucket=bucket, **extra).get("Uploads", [])


def test_list_parts(s3: Any, bucket: str, big_part: bytes) -> None:
    upload_id = start(s3, bucket)
    done = upload(s3, bucket, upload_id, [big_part, b"two", b"three"])
    answer = s3.list_parts(Bucket=bucket, Key="mpu.bin", UploadId=upload_id)
    assert answer["UploadId"] == upload_id
    assert answer["Key"] == "mpu.bin"
    assert answer["IsTruncated"] is False
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in answer["Parts"]] == [
        (1, done[0]["ETag"], MIN_PART),
        (2, done[1]["ETag"], 3),
        (3, done[2]["ETag"], 5),
    ]
    assert all(p["LastModified"].tzinfo is not None for p in answer["Parts"])

    first = s3.list_parts(Bucket=bucket, Key="mpu.bin", UploadId=upload_id, MaxParts=2)
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    assert first["IsTruncated"] is True
    assert first["NextPartNumberMarker"] == 2
    rest = s3.list_parts(
        Bucket=bucket, Key="mpu.bin", UploadId=upload_id, PartNumberMarker=2, MaxParts=2
    )
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]
    assert rest["IsTruncated"] is False


def test_list_multipart_uploads(s3: Any, bucket: str) -> None:
    ids = {key: start(s3, bucket, key) for key in ("logs/a", "logs/b", "other/c")}
    uploads = list_uploads(s3, bucket)
    assert sorted((u["Key"], u["UploadId"]) for u in uploads) == sorted(
        (key, upload_id) for key, upload_id in ids.items()
    )
    assert all(u["Initiated"].tzinfo is not None for u in uploads)
    assert [u["Key"] for u in list_uploads(s3, bucket, Prefix="logs/")] == ["logs/a", "logs/b"]
    rolled = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["logs/", "other/"]

    s3.abort_multipart_upload(Bucket=bucket, Key="logs/a", UploadId=ids["logs/a"])
    assert [u["Key"] for u in list_uploads(s3, bucket)] == ["logs/b", "other/c"]


def test_in_progress_uploads_are_not_objects(s3: Any, bucket: str) -> None:
    upload_id = start(s3, bucket)
    upload(s3, bucket, upload_id, [b"part"])
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert fails(s3.head_object, Bucket=bucket, Key="mpu.bin")[:2] == ("404", 404)


# --------------------------------------------------------------------------- abort, errors


def test_abort_discards_the_upload(s3: Any, bucket: str) -> None:
    upload_id = start(s3, bucket)
    upload(s3, bucket, upload_id, [b"doomed"])
    answer = s3.abort_multipart_upload(Bucket=bucket, Key="mpu.bin", UploadId=upload_id)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    for call, extra in (
        (s3.list_parts, {}),
        (s3.upload_part, {"PartNumber": 1, "Body": b"late"}),
        (
            s3.complete_multipart_upload,
            {"MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": '"x"'}]}},
        ),
    ):
        code, status, error = fails(call, Bucket=bucket, Key="mpu.bin", UploadId=upload_id, **extra)
        assert (code, status) == ("NoSuchUpload", 404)
        assert error["Message"].startswith("The specified upload does not exist.")
    assert fails(s3.head_object, Bucket=bucket, Key="mpu.bin")[:2] == ("404", 404)


def test_unknown_upload_id_is_no_such_upload(s3: Any, bucket: str) -> None:
    code, status, _ = fails(
        s3.upload_part, Bucket=bucket, Key="k", UploadId="not-an-upload", PartNumber=1, Body=b"x"
    )
    assert (code, status) == ("NoSuchUpload", 404)


def test_small_non_last_part_is_entity_too_small(s3: Any, bucket: str) -> None:
    upload_id = start(s3, bucket)
    done = upload(s3, bucket, upload_id, [b"a" * 1024, b"b" * 1024])
    code, status, error = fails(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=done)
    assert (code, status) == ("EntityTooSmall", 400)
    assert error["Message"] == "Your proposed upload is smaller than the minimum allowed size"
    # the upload is still there to be fixed
    assert s3.list_parts(Bucket=bucket, Key="mpu.bin", UploadId=upload_id)["Parts"]


def test_wrong_part_etag_is_invalid_part(s3: Any, bucket: str) -> None:
    upload_id = start(s3, bucket)
    upload(s3, bucket, upload_id, [b"part"])
    wrong = [{"PartNumber": 1, "ETag": f'"{hashlib.md5(b"other").hexdigest()}"'}]
    code, status, _ = fails(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=wrong)
    assert (code, status) == ("InvalidPart", 400)


def test_missing_part_is_invalid_part(s3: Any, bucket: str, big_part: bytes) -> None:
    upload_id = start(s3, bucket)
    done = upload(s3, bucket, upload_id, [big_part])
    parts = [*done, {"PartNumber": 2, "ETag": f'"{hashlib.md5(b"never").hexdigest()}"'}]
    code, status, _ = fails(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=parts)
    assert (code, status) == ("InvalidPart", 400)


def test_parts_out_of_order_are_invalid_part_order(s3: Any, bucket: str, big_part: bytes) -> None:
    upload_id = start(s3, bucket)
    done = upload(s3, bucket, upload_id, [big_part, big_part])
    code, status, error = fails(
        complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=[done[1], done[0]]
    )
    assert (code, status) == ("InvalidPartOrder", 400)
    assert error["Message"] == (
        "The list of parts was not in ascending order. Parts must be ordered by part number."
    )


def test_part_number_out_of_range_is_invalid_argument(s3: Any, bucket: str) -> None:
    unchecked = client(
        s3.meta.endpoint_url, "s3", parameter_validation=False, s3={"addressing_style": "path"}
    )
    upload_id = start(s3, bucket)
    for number in (0, 10001):
        code, status, _ = fails(
            unchecked.upload_part,
            Bucket=bucket,
            Key="mpu.bin",
            UploadId=upload_id,
            PartNumber=number,
            Body=b"x",
        )
        assert (code, status) == ("InvalidArgument", 400)


def test_multipart_upload_in_a_missing_bucket_is_no_such_bucket(s3: Any) -> None:
    code, status, _ = fails(s3.create_multipart_upload, Bucket=unique("missing"), Key="k")
    assert (code, status) == ("NoSuchBucket", 404)


# --------------------------------------------------------------------------- review regressions


def test_get_by_part_number(s3: Any, bucket: str, big_part: bytes) -> None:
    upload_id = start(s3, bucket)
    complete(s3, bucket, upload_id, upload(s3, bucket, upload_id, [big_part, b"tail"]))
    second = s3.get_object(Bucket=bucket, Key="mpu.bin", PartNumber=2)
    assert second["Body"].read() == b"tail"
    assert second["PartsCount"] == 2
    assert second["ContentRange"] == f"bytes {MIN_PART}-{MIN_PART + 3}/{MIN_PART + 4}"
    unchecked = client(
        s3.meta.endpoint_url, "s3", parameter_validation=False, s3={"addressing_style": "path"}
    )
    for number in (0, -1, 10001):  # once answered with the wrong part (Python's negative index)
        code, status, _ = fails(
            unchecked.get_object, Bucket=bucket, Key="mpu.bin", PartNumber=number
        )
        assert (code, status) == ("InvalidArgument", 400)
    code, status, _ = fails(s3.get_object, Bucket=bucket, Key="mpu.bin", PartNumber=3)
    assert (code, status) == ("InvalidPartNumber", 416)
    code, status, _ = fails(
        s3.get_object, Bucket=bucket, Key="mpu.bin", PartNumber=1, Range="bytes=0-1"
    )
    assert (code, status) == ("InvalidRequest", 400)


def test_part_number_one_of_an_empty_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty", PartNumber=1)
    assert got["Body"].read() == b""
    assert "ContentRange" not in got  # once "bytes 0--1/0"
    assert got["PartsCount"] == 1


def test_list_multipart_uploads_pages_through_uploads_of_one_key(s3: Any, bucket: str) -> None:
    ids = [start(s3, bucket, "same") for _ in range(5)] + [start(s3, bucket, "z")]
    seen: list[str] = []
    markers: dict[str, str] = {}
    while True:
        page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, **markers)
        seen += [u["UploadId"] for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert seen == ids  # each once, in initiation order within a key


def test_list_multipart_uploads_counts_common_prefixes_and_resumes_after_them(
    s3: Any, bucket: str
) -> None:
    for key in ("a/1", "a/2", "b/1", "c"):
        start(s3, bucket, key)
    first = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/", MaxUploads=1)
    assert [p["Prefix"] for p in first["CommonPrefixes"]] == ["a/"]
    assert first["IsTruncated"] is True and first["NextKeyMarker"] == "a/"
    rest = s3.list_multipart_uploads(
        Bucket=bucket, Delimiter="/", KeyMarker=first["NextKeyMarker"], UploadIdMarker=""
    )
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["b/"]
    assert [u["Key"] for u in rest["Uploads"]] == ["c"]


def test_negative_list_limits_are_invalid_argument(s3: Any, bucket: str) -> None:
    unchecked = client(
        s3.meta.endpoint_url, "s3", parameter_validation=False, s3={"addressing_style": "path"}
    )
    upload_id = start(s3, bucket)
    code, status, _ = fails(unchecked.list_multipart_uploads, Bucket=bucket, MaxUploads=-1)
    assert (code, status) == ("InvalidArgument", 400)
    code, status, _ = fails(
        unchecked.list_parts, Bucket=bucket, Key="mpu.bin", UploadId=upload_id, MaxParts=-1
    )
    assert (code, status) == ("InvalidArgument", 400)


def test_complete_with_a_wrong_part_checksum_is_invalid_part(s3: Any, bucket: str) -> None:
    upload_id = start(s3, bucket, ChecksumAlgorithm="CRC32")
    part = s3.upload_part(
        Bucket=bucket, Key="mpu.bin", UploadId=upload_id, PartNumber=1, Body=b"x" * 10
    )
    wrong = {"PartNumber": 1, "ETag": part["ETag"], "ChecksumCRC32": "AAAAAA=="}
    code, status, _ = fails(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=[wrong])
    assert (code, status) == ("InvalidPart", 400)
    right = {**wrong, "ChecksumCRC32": part["ChecksumCRC32"]}
    assert complete(s3, bucket, upload_id, [right])["ChecksumCRC32"].endswith("-1")


def test_parts_sent_with_another_checksum_still_get_the_uploads(s3: Any, bucket: str) -> None:
    # boto3 adds its default CRC32 to every UploadPart; the upload asked for SHA256, and the
    # completed object must still carry it
    upload_id = start(s3, bucket, ChecksumAlgorithm="SHA256")
    part = s3.upload_part(
        Bucket=bucket,
        Key="mpu.bin",
        UploadId=upload_id,
        PartNumber=1,
        Body=b"data",
        ChecksumAlgorithm="CRC32",
    )
    assert "ChecksumSHA256" in part
    done = complete(s3, bucket, upload_id, [{"PartNumber": 1, "ETag": part["ETag"]}])
    assert done["ChecksumSHA256"].endswith("-1")


def test_copy_of_a_multipart_object_has_a_full_object_checksum(
    s3: Any, bucket: str, big_part: bytes
) -> None:
    upload_id = start(s3, bucket, ChecksumAlgorithm="CRC32")
    parts = []
    for number, data in enumerate([big_part, b"tail"], start=1):
        answer = s3.upload_part(
            Bucket=bucket,
            Key="mpu.bin",
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    complete(s3, bucket, upload_id, parts)
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mpu.bin"})
    head = s3.head_object(Bucket=bucket, Key="copy", ChecksumMode="ENABLED")
    assert head["ChecksumType"] == "FULL_OBJECT"  # once COMPOSITE, left over from the source
    assert "-" not in head["ChecksumCRC32"]
