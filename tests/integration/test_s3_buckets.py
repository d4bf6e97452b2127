"""S3 buckets through boto3 against a running server: create (name rules, already owned), head,
delete (not empty, missing), list, GetBucketLocation, and path-style and virtual-host-style
addressing, with S3's error codes and statuses (botocore's `s3` model and the S3 API reference
are the contract)."""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import botocore.exceptions
import pytest

from tests.support.aws import REGION, client, signed_request
from tests.support.lambdas import unique

OWNED_MESSAGE = "Your previous request to create the named bucket succeeded and you already own it."


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3", s3={"addressing_style": "path"})


def new_bucket(s3: Any, **extra: Any) -> str:
    name = unique("bkt")
    s3.create_bucket(Bucket=name, **extra)
    return name


def fails(call: Callable[..., Any], **params: Any) -> tuple[str, int, dict[str, Any]]:
    """(error code, HTTP status, the parsed Error) of a call that must fail."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**params)
    answer = caught.value.response
    return answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]


@contextlib.contextmanager
def localhost_subdomains() -> Iterator[None]:
    """Resolve `<anything>.localhost` to 127.0.0.1 in this process, as browsers and systemd do
    (this machine's resolver does not)."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    with mock.patch("socket.getaddrinfo", resolve):
        yield


# --------------------------------------------------------------------------- create


def test_create_bucket_answers_its_location(s3: Any) -> None:
    name = unique("bkt")
    answer = s3.create_bucket(Bucket=name)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["Location"] == f"/{name}"
    s3.head_bucket(Bucket=name)


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # shorter than 3
        "a" * 64,  # longer than 63
        "UPPER-case-bucket",
        "under_score_bucket",
        "-leading-hyphen",
        "trailing-hyphen-",
        "double..dots",
        "dot.-hyphen",
        "192.168.5.4",  # formatted as an IP address
        "xn--punycode-prefix",
        "sthree-reserved-prefix",
        "reserved-suffix-s3alias",
        "reserved-suffix--ol-s3",
    ],
)
def test_invalid_bucket_names_are_rejected(s3: Any, name: str) -> None:
    code, status, error = fails(s3.create_bucket, Bucket=name)
    assert (code, status) == ("InvalidBucketName", 400)
    assert error["Message"] == "The specified bucket is not valid."
    assert error["BucketName"] == name


@pytest.mark.parametrize(
    "make_name",
    [
        lambda: f"abc-{unique('h')}-9",  # letters, digits, hyphens
        lambda: f"a.{unique('dotted')}.b",  # dots between labels
        lambda: (unique("long") + "x" * 63)[:63],  # exactly 63 characters
    ],
    ids=["hyphens", "dots", "63-characters"],
)
def test_valid_bucket_names_are_accepted(s3: Any, make_name: Callable[[], str]) -> None:
    name = make_name()
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)


def test_creating_an_owned_bucket_again_outside_us_east_1_is_already_owned_by_you(
    s3: Any,
) -> None:
    config = {"LocationConstraint": "eu-west-1"}
    name = new_bucket(s3, CreateBucketConfiguration=config)
    code, status, error = fails(s3.create_bucket, Bucket=name, CreateBucketConfiguration=config)
    assert (code, status) == ("BucketAlreadyOwnedByYou", 409)
    assert error["Message"] == OWNED_MESSAGE
    assert error["BucketName"] == name


def test_creating_an_owned_bucket_again_in_us_east_1_keeps_it(s3: Any) -> None:
    """S3 answers 200 in us-east-1 for legacy compatibility, BucketAlreadyOwnedByYou elsewhere;
    either way the bucket and its objects are untouched."""
    name = new_bucket(s3)
    s3.put_object(Bucket=name, Key="kept", Body=b"still here")
    try:
        s3.create_bucket(Bucket=name)
    except botocore.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert s3.get_object(Bucket=name, Key="kept")["Body"].read() == b"still here"


def test_explicit_us_east_1_location_constraint_is_invalid(s3: Any) -> None:
    code, status, _ = fails(
        s3.create_bucket,
        Bucket=unique("bkt"),
        CreateBucketConfiguration={"LocationConstraint": "us-east-1"},
    )
    assert (code, status) == ("InvalidLocationConstraint", 400)


# --------------------------------------------------------------------------- head, location


def test_head_bucket_answers_200_with_its_region(s3: Any) -> None:
    name = new_bucket(s3)
    answer = s3.head_bucket(Bucket=name)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == REGION


def test_head_of_a_missing_bucket_is_404(s3: Any) -> None:
    code, status, _ = fails(s3.head_bucket, Bucket=unique("missing"))
    assert (code, status) == ("404", 404)


def test_location_of_a_us_east_1_bucket_is_null(s3: Any) -> None:
    name = new_bucket(s3)
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None


def test_location_constraint_is_reported_back(s3: Any) -> None:
    name = new_bucket(s3, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    headers = s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amz-bucket-region"] == "eu-west-1"


def test_location_of_a_missing_bucket_is_no_such_bucket(s3: Any) -> None:
    code, status, _ = fails(s3.get_bucket_location, Bucket=unique("missing"))
    assert (code, status) == ("NoSuchBucket", 404)


# --------------------------------------------------------------------------- delete, list


def test_delete_empty_bucket_answers_204_and_it_is_gone(s3: Any) -> None:
    name = new_bucket(s3)
    answer = s3.delete_bucket(Bucket=name)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert fails(s3.head_bucket, Bucket=name)[:2] == ("404", 404)
    assert name not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]


def test_delete_bucket_with_objects_is_bucket_not_empty(s3: Any) -> None:
    name = new_bucket(s3)
    s3.put_object(Bucket=name, Key="a/b.txt", Body=b"x")
    code, status, error = fails(s3.delete_bucket, Bucket=name)
    assert (code, status) == ("BucketNotEmpty", 409)
    assert error["Message"] == "The bucket you tried to delete is not empty"
    assert error["BucketName"] == name
    s3.delete_object(Bucket=name, Key="a/b.txt")
    s3.delete_bucket(Bucket=name)


def test_delete_missing_bucket_is_no_such_bucket(s3: Any) -> None:
    name = unique("missing")
    code, status, error = fails(s3.delete_bucket, Bucket=name)
    assert (code, status) == ("NoSuchBucket", 404)
    assert error["Message"] == "The specified bucket does not exist"
    assert error["BucketName"] == name


def test_deleted_bucket_name_can_be_created_again(s3: Any) -> None:
    name = new_bucket(s3)
    s3.put_object(Bucket=name, Key="old", Body=b"old")
    s3.delete_object(Bucket=name, Key="old")
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0


def test_list_buckets_shows_created_buckets_with_creation_dates(s3: Any) -> None:
    names = [new_bucket(s3) for _ in range(3)]
    answer = s3.list_buckets()
    listed = {bucket["Name"]: bucket for bucket in answer["Buckets"]}
    for name in names:
        assert name in listed
        assert listed[name]["CreationDate"].tzinfo is not None
    all_names = [bucket["Name"] for bucket in answer["Buckets"]]
    assert all_names == sorted(all_names)
    assert answer["Owner"]["ID"]


# --------------------------------------------------------------------------- addressing


def test_virtual_host_style_addressing_through_boto3(s3: Any, endpoint: str) -> None:
    port = urlsplit(endpoint).port
    virtual = client(f"http://localhost:{port}", "s3", s3={"addressing_style": "virtual"})
    urls: list[str] = []
    virtual.meta.events.register("before-send.s3", lambda request, **_: urls.append(request.url))
    name = unique("vhost")
    with localhost_subdomains():
        virtual.create_bucket(Bucket=name)
        virtual.put_object(Bucket=name, Key="dir/hello world.txt", Body=b"virtual")
        body = virtual.get_object(Bucket=name, Key="dir/hello world.txt")["Body"].read()
        listed = virtual.list_objects_v2(Bucket=name)["Contents"]
    assert body == b"virtual"
    assert [item["Key"] for item in listed] == ["dir/hello world.txt"]
    assert urls and all(urlsplit(url).hostname == f"{name}.localhost" for url in urls)
    # the same bucket and object, path-style
    assert s3.get_object(Bucket=name, Key="dir/hello world.txt")["Body"].read() == b"virtual"


def test_virtual_host_style_addressing_by_host_header(s3: Any, endpoint: str) -> None:
    name = new_bucket(s3)
    s3.put_object(Bucket=name, Key="k.txt", Body=b"by host header")
    host = {"Host": f"{name}.localhost:{urlsplit(endpoint).port}"}
    got = signed_request(endpoint, "s3", "GET", "/k.txt", headers=host)
    assert got.status_code == 200, got.text
    assert got.content == b"by host header"
    put = signed_request(endpoint, "s3", "PUT", "/new.txt", body=b"put by host", headers=host)
    assert put.status_code == 200, put.text
    assert s3.get_object(Bucket=name, Key="new.txt")["Body"].read() == b"put by host"
    listing = signed_request(endpoint, "s3", "GET", "/?list-type=2", headers=host)
    assert listing.status_code == 200, listing.text
    assert "<Key>k.txt</Key>" in listing.text
    assert "<Key>new.txt</Key>" in listing.text


def test_path_style_addressing_by_raw_request(s3: Any, endpoint: str) -> None:
    name = new_bucket(s3)
    put = signed_request(endpoint, "s3", "PUT", f"/{name}/raw.txt", body=b"path style")
    assert put.status_code == 200, put.text
    assert put.headers["ETag"] == f'"{hashlib.md5(b"path style").hexdigest()}"'
    got = signed_request(endpoint, "s3", "GET", f"/{name}/raw.txt")
    assert (got.status_code, got.content) == (200, b"path style")
