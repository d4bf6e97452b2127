"""Tests for squall.services.s3.names: bucket-name rules and key validation."""

from __future__ import annotations

import pytest

from squall.core.errors import ServiceError
from squall.services.s3.names import is_valid_bucket_name, validate_bucket_name, validate_key

VALID = [
    "abc",
    "a" * 63,
    "my-bucket",
    "my.bucket.name",
    "0bucket9",
    "123",
    "bucket-1.example-2",
    "a.b.c",
    "1.2.3",  # only four-part dotted numbers look like an IP address
    "1.2.3.4.5",
    "xn-bucket",  # only the exact `xn--` prefix is reserved
    "sthree",
    "bucket-s3alias-not-at-end",
    "mrap.bucket",
]

INVALID = [
    "",
    "ab",
    "a" * 64,
    "MyBucket",
    "my_bucket",
    "my bucket",
    "-bucket",
    "bucket-",
    ".bucket",
    "bucket.",
    "my..bucket",
    "my.-bucket",
    "my-.bucket",
    "192.168.5.4",
    "10.0.0.1",
    "xn--bucket",
    "sthree-bucket",
    "sthree-configurator",
    "amzn-s3-demo-bucket",
    "bucket-s3alias",
    "bucket--ol-s3",
    "bucket.mrap",
    "bucket--x-s3",
    "bucket--table-s3",
    "bucket!",
    "bücket",
    "bucket/key",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_bucket_names(name: str) -> None:
    assert is_valid_bucket_name(name)
    validate_bucket_name(name)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_bucket_names(name: str) -> None:
    assert not is_valid_bucket_name(name)
    with pytest.raises(ServiceError) as caught:
        validate_bucket_name(name)
    error = caught.value
    assert error.code == "InvalidBucketName"
    assert error.status == 400
    assert error.message == "The specified bucket is not valid."
    assert error.fields == {"BucketName": name}


@pytest.mark.parametrize(
    "key",
    ["a", "folder/file.txt", " ", "a" * 1024, "é" * 512, "🎉" * 256, "x/../y", "\x00", "a//b"],
)
def test_valid_keys(key: str) -> None:
    validate_key(key)


def test_key_too_long_counts_utf8_bytes() -> None:
    validate_key("é" * 512)  # 1024 bytes
    with pytest.raises(ServiceError) as caught:
        validate_key("é" * 512 + "a")
    assert caught.value.code == "KeyTooLongError"
    assert caught.value.status == 400
    assert caught.value.fields == {"Size": 1025, "MaxSizeAllowed": 1024}

    with pytest.raises(ServiceError) as caught:
        validate_key("a" * 1025)
    assert caught.value.fields["Size"] == 1025

    with pytest.raises(ServiceError) as caught:
        validate_key("🎉" * 257)
    assert caught.value.fields["Size"] == 1028


def test_empty_key_is_invalid_argument() -> None:
    with pytest.raises(ServiceError) as caught:
        validate_key("")
    assert caught.value.code == "InvalidArgument"
    assert caught.value.status == 400


def test_key_with_unpaired_surrogate_is_invalid_uri() -> None:
    with pytest.raises(ServiceError) as caught:
        validate_key("bad\udcff")
    assert caught.value.code == "InvalidURI"
    assert caught.value.status == 400
