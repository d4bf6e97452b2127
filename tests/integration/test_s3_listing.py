"""Listing objects through boto3 against a running server: ListObjects (v1) and ListObjectsV2 with
prefix, delimiter, common prefixes, max-keys, markers and continuation tokens (paginators over
more than a thousand keys), start-after, encoding-type=url, and ListObjectVersions on an
unversioned bucket."""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import botocore.exceptions
import pytest

from tests.support.aws import client
from tests.support.lambdas import unique

TREE = ["a.txt", "dir1/x", "dir1/y", "dir2/sub/z", "dir2/w", "z.txt"]
MANY = 1100  # more than one default page of 1,000


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3", s3={"addressing_style": "path"})


def filled_bucket(s3: Any, keys: list[str]) -> str:
    name = unique("list")
    s3.create_bucket(Bucket=name)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=name, Key=key, Body=key.encode()), keys))
    return name


@pytest.fixture(scope="module")
def tree(s3: Any) -> str:
    return filled_bucket(s3, TREE)


@pytest.fixture(scope="module")
def many(s3: Any) -> str:
    return filled_bucket(s3, [f"k/{i:05d}" for i in range(MANY)])


def keys_of(page: dict[str, Any]) -> list[str]:
    return [item["Key"] for item in page.get("Contents", [])]


def prefixes_of(page: dict[str, Any]) -> list[str]:
    return [item["Prefix"] for item in page.get("CommonPrefixes", [])]


def fails(call: Callable[..., Any], **params: Any) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**params)
    answer = caught.value.response
    return answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]


# --------------------------------------------------------------------------- ListObjectsV2


def test_v2_lists_everything_in_order_with_object_fields(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree)
    assert keys_of(page) == TREE
    assert page["KeyCount"] == len(TREE)
    assert page["IsTruncated"] is False
    assert page["Name"] == tree
    assert page["MaxKeys"] == 1000
    first = page["Contents"][0]
    assert first["Size"] == len(b"a.txt")
    assert first["ETag"] == f'"{hashlib.md5(b"a.txt").hexdigest()}"'
    assert first["StorageClass"] == "STANDARD"
    assert first["LastModified"].tzinfo is not None
    assert "Owner" not in first  # v2 returns owners only with FetchOwner


def test_v2_fetch_owner(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, FetchOwner=True, MaxKeys=1)
    assert page["Contents"][0]["Owner"]["ID"]


def test_v2_prefix(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, Prefix="dir1/")
    assert keys_of(page) == ["dir1/x", "dir1/y"]
    assert page["Prefix"] == "dir1/"
    assert keys_of(s3.list_objects_v2(Bucket=tree, Prefix="dir")) == [
        "dir1/x",
        "dir1/y",
        "dir2/sub/z",
        "dir2/w",
    ]
    nothing = s3.list_objects_v2(Bucket=tree, Prefix="nothing/")
    assert nothing["KeyCount"] == 0
    assert "Contents" not in nothing


def test_v2_delimiter_rolls_up_common_prefixes(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, Delimiter="/")
    assert keys_of(page) == ["a.txt", "z.txt"]
    assert prefixes_of(page) == ["dir1/", "dir2/"]
    assert page["KeyCount"] == 4  # keys and common prefixes both count
    assert page["Delimiter"] == "/"

    nested = s3.list_objects_v2(Bucket=tree, Delimiter="/", Prefix="dir2/")
    assert keys_of(nested) == ["dir2/w"]
    assert prefixes_of(nested) == ["dir2/sub/"]


def test_v2_other_delimiters(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, Delimiter=".")
    assert prefixes_of(page) == ["a.", "z."]
    assert keys_of(page) == ["dir1/x", "dir1/y", "dir2/sub/z", "dir2/w"]


def test_v2_max_keys_and_continuation_tokens(s3: Any, tree: str) -> None:
    first = s3.list_objects_v2(Bucket=tree, MaxKeys=2)
    assert keys_of(first) == TREE[:2]
    assert first["IsTruncated"] is True
    assert first["KeyCount"] == 2
    assert first["MaxKeys"] == 2
    token = first["NextContinuationToken"]
    second = s3.list_objects_v2(Bucket=tree, MaxKeys=2, ContinuationToken=token)
    assert second["ContinuationToken"] == token
    assert keys_of(second) == TREE[2:4]
    third = s3.list_objects_v2(
        Bucket=tree, MaxKeys=2, ContinuationToken=second["NextContinuationToken"]
    )
    assert keys_of(third) == TREE[4:]
    assert third["IsTruncated"] is False
    assert "NextContinuationToken" not in third


def test_v2_max_keys_counts_common_prefixes(s3: Any, tree: str) -> None:
    first = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=3)
    assert (keys_of(first), prefixes_of(first)) == (["a.txt"], ["dir1/", "dir2/"])
    assert first["IsTruncated"] is True
    rest = s3.list_objects_v2(
        Bucket=tree, Delimiter="/", MaxKeys=3, ContinuationToken=first["NextContinuationToken"]
    )
    assert (keys_of(rest), prefixes_of(rest)) == (["z.txt"], [])
    assert rest["IsTruncated"] is False


def test_v2_max_keys_zero(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, MaxKeys=0)
    assert page["KeyCount"] == 0
    assert "Contents" not in page


def test_v2_start_after(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, StartAfter="dir1/x")
    assert keys_of(page) == TREE[2:]
    assert page["StartAfter"] == "dir1/x"
    between = s3.list_objects_v2(Bucket=tree, StartAfter="b")  # need not be a key
    assert keys_of(between) == TREE[1:]
    assert keys_of(s3.list_objects_v2(Bucket=tree, StartAfter="zzz")) == []


@pytest.mark.parametrize("delimiter", [None, "/"])
def test_v2_paging_one_at_a_time_sees_everything_once(
    s3: Any, tree: str, delimiter: str | None
) -> None:
    extra = {"Delimiter": delimiter} if delimiter else {}
    whole = s3.list_objects_v2(Bucket=tree, **extra)
    keys: list[str] = []
    prefixes: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=tree, PaginationConfig={"PageSize": 1}, **extra
    ):
        keys += keys_of(page)
        prefixes += prefixes_of(page)
    assert keys == keys_of(whole)
    assert prefixes == prefixes_of(whole)


def test_paginators_over_more_than_a_thousand_keys(s3: Any, many: str) -> None:
    expected = [f"k/{i:05d}" for i in range(MANY)]
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=many))
    assert [page["KeyCount"] for page in pages] == [1000, MANY - 1000]
    assert pages[0]["IsTruncated"] is True
    assert [key for page in pages for key in keys_of(page)] == expected

    pages = list(s3.get_paginator("list_objects").paginate(Bucket=many))  # v1: markers
    assert [len(keys_of(page)) for page in pages] == [1000, MANY - 1000]
    assert [key for page in pages for key in keys_of(page)] == expected

    page = s3.list_objects_v2(Bucket=many, MaxKeys=5000)  # more than 1,000 is capped
    assert page["KeyCount"] == 1000
    assert page["IsTruncated"] is True


def test_listing_a_missing_bucket_is_no_such_bucket(s3: Any) -> None:
    assert fails(s3.list_objects_v2, Bucket=unique("missing")) == ("NoSuchBucket", 404)
    assert fails(s3.list_objects, Bucket=unique("missing")) == ("NoSuchBucket", 404)


# --------------------------------------------------------------------------- ListObjects (v1)


def test_v1_lists_with_owner_and_prefix_and_delimiter(s3: Any, tree: str) -> None:
    page = s3.list_objects(Bucket=tree)
    assert keys_of(page) == TREE
    assert page["IsTruncated"] is False
    assert page["Contents"][0]["Owner"]["ID"]
    rolled = s3.list_objects(Bucket=tree, Delimiter="/", Prefix="dir2/")
    assert keys_of(rolled) == ["dir2/w"]
    assert prefixes_of(rolled) == ["dir2/sub/"]


def test_v1_marker_without_delimiter_has_no_next_marker(s3: Any, tree: str) -> None:
    first = s3.list_objects(Bucket=tree, MaxKeys=2)
    assert keys_of(first) == TREE[:2]
    assert first["IsTruncated"] is True
    assert "NextMarker" not in first  # only sent with a delimiter; clients use the last key
    second = s3.list_objects(Bucket=tree, MaxKeys=2, Marker=keys_of(first)[-1])
    assert second["Marker"] == "dir1/x"
    assert keys_of(second) == TREE[2:4]


def test_v1_next_marker_with_delimiter(s3: Any, tree: str) -> None:
    first = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2)
    assert (keys_of(first), prefixes_of(first)) == (["a.txt"], ["dir1/"])
    assert first["IsTruncated"] is True
    assert first["NextMarker"] == "dir1/"
    second = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2, Marker=first["NextMarker"])
    assert (keys_of(second), prefixes_of(second)) == (["z.txt"], ["dir2/"])
    assert second["IsTruncated"] is False


@pytest.mark.parametrize("delimiter", [None, "/"])
def test_v1_paging_one_at_a_time_sees_everything_once(
    s3: Any, tree: str, delimiter: str | None
) -> None:
    extra = {"Delimiter": delimiter} if delimiter else {}
    whole = s3.list_objects(Bucket=tree, **extra)
    keys: list[str] = []
    prefixes: list[str] = []
    for page in s3.get_paginator("list_objects").paginate(
        Bucket=tree, PaginationConfig={"PageSize": 1}, **extra
    ):
        keys += keys_of(page)
        prefixes += prefixes_of(page)
    assert keys == keys_of(whole)
    assert prefixes == prefixes_of(whole)


# --------------------------------------------------------------------------- encoding-type=url

ENCODED_KEYS = ["enc dir/plain", "enc dir/sub/x", "enc dir/ü+plus & space.txt"]  # UTF-8 order


@pytest.fixture(scope="module")
def encoded(s3: Any) -> str:
    return filled_bucket(s3, ENCODED_KEYS)


def check_encoded(raw: str, decoded: str) -> None:
    assert unquote_plus(raw) == decoded, raw
    assert " " not in raw and "ü" not in raw, raw
    if "+" in decoded:
        assert "%2B" in raw, raw


def test_v2_encoding_type_url_encodes_keys_and_prefixes(s3: Any, encoded: str) -> None:
    # boto3 decodes only when it chose the encoding itself, so this shows the wire form
    page = s3.list_objects_v2(Bucket=encoded, EncodingType="url", Prefix="enc dir/", Delimiter="/")
    assert page["EncodingType"] == "url"
    raw_keys = keys_of(page)
    assert len(raw_keys) == 2
    for raw, decoded in zip(raw_keys, [ENCODED_KEYS[0], ENCODED_KEYS[2]], strict=True):
        check_encoded(raw, decoded)
    check_encoded(page["Prefix"], "enc dir/")
    check_encoded(prefixes_of(page)[0], "enc dir/sub/")


def test_v1_encoding_type_url(s3: Any, encoded: str) -> None:
    page = s3.list_objects(Bucket=encoded, EncodingType="url", Marker="enc dir/plain")
    raw_keys = keys_of(page)
    for raw, decoded in zip(raw_keys, ENCODED_KEYS[1:], strict=True):
        check_encoded(raw, decoded)
    check_encoded(page["Marker"], "enc dir/plain")


def test_boto3_default_listing_decodes_awkward_keys(s3: Any, encoded: str) -> None:
    assert keys_of(s3.list_objects_v2(Bucket=encoded)) == ENCODED_KEYS
    assert keys_of(s3.list_objects(Bucket=encoded)) == ENCODED_KEYS


def test_invalid_encoding_type_is_invalid_argument(endpoint: str, encoded: str) -> None:
    unchecked = client(endpoint, "s3", parameter_validation=False, s3={"addressing_style": "path"})
    assert fails(unchecked.list_objects_v2, Bucket=encoded, EncodingType="base64") == (
        "InvalidArgument",
        400,
    )


# --------------------------------------------------------------------------- versions


def test_list_object_versions_of_an_unversioned_bucket_reports_null(s3: Any, tree: str) -> None:
    page = s3.list_object_versions(Bucket=tree)
    versions = page["Versions"]
    assert [item["Key"] for item in versions] == TREE
    for item in versions:
        assert item["VersionId"] == "null"
        assert item["IsLatest"] is True
        assert item["ETag"] == f'"{hashlib.md5(item["Key"].encode()).hexdigest()}"'
        assert item["Size"] == len(item["Key"].encode())
    assert "DeleteMarkers" not in page
    prefixed = s3.list_object_versions(Bucket=tree, Prefix="dir2/", Delimiter="/")
    assert [item["Key"] for item in prefixed["Versions"]] == ["dir2/w"]
    assert prefixes_of(prefixed) == ["dir2/sub/"]


def test_unversioned_bucket_objects_answer_to_version_null(s3: Any, tree: str) -> None:
    got = s3.get_object(Bucket=tree, Key="a.txt", VersionId="null")
    assert got["Body"].read() == b"a.txt"
