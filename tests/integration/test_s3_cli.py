"""The AWS CLI's `aws s3` (mb, cp, sync, ls, rm, rb, presign) and `aws s3api` commands against a
running server, unmodified, with the results checked through boto3."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.aws import aws_cli, cli_json, client
from tests.support.lambdas import unique

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3", s3={"addressing_style": "path"})


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique("cli")
    s3.create_bucket(Bucket=name)
    return name


def ok(endpoint: str, *args: str) -> str:
    """Run the CLI; its stdout, after checking it succeeded."""
    result = aws_cli(endpoint, *args)
    assert result.returncode == 0, f"aws {' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def keys_in(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def body_of(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_mb_ls_rb(s3: Any, endpoint: str) -> None:
    name = unique("cli")
    assert ok(endpoint, "s3", "mb", f"s3://{name}").strip() == f"make_bucket: {name}"
    s3.head_bucket(Bucket=name)
    listing = ok(endpoint, "s3", "ls")
    assert re.search(rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {re.escape(name)}$", listing, re.M)
    assert ok(endpoint, "s3", "rb", f"s3://{name}").strip() == f"remove_bucket: {name}"
    assert name not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]


def test_cp_up_and_down(s3: Any, endpoint: str, bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "hello world.txt"
    source.write_text("hello from the cli\n")
    out = ok(endpoint, "s3", "cp", str(source), f"s3://{bucket}/docs/hello world.txt")
    assert re.search(
        rf"^upload: .*hello world\.txt to s3://{bucket}/docs/hello world\.txt$", out, re.M
    )
    head = s3.head_object(Bucket=bucket, Key="docs/hello world.txt")
    assert head["ContentType"] == "text/plain"  # the CLI guesses it from the name
    assert body_of(s3, bucket, "docs/hello world.txt") == b"hello from the cli\n"

    target = tmp_path / "back.txt"
    ok(endpoint, "s3", "cp", f"s3://{bucket}/docs/hello world.txt", str(target))
    assert target.read_text() == "hello from the cli\n"

    ok(
        endpoint,
        "s3",
        "cp",
        f"s3://{bucket}/docs/hello world.txt",
        f"s3://{bucket}/copies/hello.txt",
        "--metadata",
        "origin=cli",
        "--metadata-directive",
        "REPLACE",
    )
    assert s3.head_object(Bucket=bucket, Key="copies/hello.txt")["Metadata"] == {"origin": "cli"}


def test_cp_of_a_large_file_is_a_multipart_upload(
    s3: Any, endpoint: str, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(12 * MIB)
    source = tmp_path / "large.bin"
    source.write_bytes(data)
    ok(endpoint, "s3", "cp", str(source), f"s3://{bucket}/large.bin")
    head = s3.head_object(Bucket=bucket, Key="large.bin")
    assert head["ContentLength"] == len(data)
    assert re.fullmatch(r'"[0-9a-f]{32}-2"', head["ETag"]), head["ETag"]  # 8 MiB parts
    target = tmp_path / "large.back"
    ok(endpoint, "s3", "cp", f"s3://{bucket}/large.bin", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_sync_ls_and_rm(s3: Any, endpoint: str, bucket: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "nested" / "deeper").mkdir(parents=True)
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "with space.css").write_text("body {}")
    (site / "nested" / "page.html").write_text("<p>page</p>")
    (site / "nested" / "deeper" / "data.json").write_text("{}")
    expected = [
        "site/index.html",
        "site/nested/deeper/data.json",
        "site/nested/page.html",
        "site/with space.css",
    ]

    out = ok(endpoint, "s3", "sync", str(site), f"s3://{bucket}/site/")
    assert out.count("upload: ") == 4
    assert keys_in(s3, bucket) == expected
    assert body_of(s3, bucket, "site/nested/page.html") == b"<p>page</p>"

    # a second sync uploads only what changed
    (site / "index.html").write_text("<h1>home, changed</h1>")
    (site / "new.txt").write_text("new")
    out = ok(endpoint, "s3", "sync", str(site), f"s3://{bucket}/site/")
    assert sorted(re.findall(r"upload: \S+ to s3://\S+/site/(\S+)", out)) == [
        "index.html",
        "new.txt",
    ]
    assert body_of(s3, bucket, "site/index.html") == b"<h1>home, changed</h1>"

    listing = ok(endpoint, "s3", "ls", f"s3://{bucket}/site/")
    assert re.search(r"^\s+PRE nested/$", listing, re.M), listing
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+22 index\.html$", listing, re.M), listing
    recursive = ok(endpoint, "s3", "ls", "--recursive", f"s3://{bucket}/")
    assert "site/nested/deeper/data.json" in recursive

    # and back down
    copy = tmp_path / "copy"
    ok(endpoint, "s3", "sync", f"s3://{bucket}/site/", str(copy))
    assert (copy / "nested" / "deeper" / "data.json").read_text() == "{}"
    assert (copy / "with space.css").read_text() == "body {}"

    # sync --delete removes what is gone locally
    (site / "new.txt").unlink()
    out = ok(endpoint, "s3", "sync", "--delete", str(site), f"s3://{bucket}/site/")
    assert f"delete: s3://{bucket}/site/new.txt" in out
    assert "site/new.txt" not in keys_in(s3, bucket)

    ok(endpoint, "s3", "rm", f"s3://{bucket}/site/index.html")
    assert "site/index.html" not in keys_in(s3, bucket)
    out = ok(endpoint, "s3", "rm", "--recursive", f"s3://{bucket}/site/nested/")
    assert out.count("delete: ") == 2
    assert keys_in(s3, bucket) == ["site/with space.css"]
    ok(endpoint, "s3", "rb", "--force", f"s3://{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_s3api_commands(s3: Any, endpoint: str, tmp_path: Path) -> None:
    name = unique("cli")
    created = cli_json(
        aws_cli(
            endpoint,
            "s3api",
            "create-bucket",
            "--bucket",
            name,
            "--create-bucket-configuration",
            "LocationConstraint=eu-west-1",
        )
    )
    assert created["Location"]
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    body = tmp_path / "body.json"
    body.write_text('{"hello": "s3api"}')
    put = cli_json(
        aws_cli(
            endpoint,
            "s3api",
            "put-object",
            "--bucket",
            name,
            "--key",
            "data/body.json",
            "--body",
            str(body),
            "--content-type",
            "application/json",
            "--metadata",
            "source=s3api",
            "--tagging",
            "kind=test",
        )
    )
    assert put["ETag"] == f'"{hashlib.md5(body.read_bytes()).hexdigest()}"'

    head = cli_json(
        aws_cli(endpoint, "s3api", "head-object", "--bucket", name, "--key", "data/body.json")
    )
    assert head["ContentLength"] == len(body.read_bytes())
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"source": "s3api"}

    listed = cli_json(aws_cli(endpoint, "s3api", "list-objects-v2", "--bucket", name))
    assert [item["Key"] for item in listed["Contents"]] == ["data/body.json"]

    outfile = tmp_path / "out.json"
    got = cli_json(
        aws_cli(
            endpoint,
            "s3api",
            "get-object",
            "--bucket",
            name,
            "--key",
            "data/body.json",
            str(outfile),
        )
    )
    assert got["ETag"] == put["ETag"]
    assert outfile.read_text() == '{"hello": "s3api"}'
    tags = s3.get_object_tagging(Bucket=name, Key="data/body.json")["TagSet"]
    assert tags == [{"Key": "kind", "Value": "test"}]

    ok(endpoint, "s3api", "delete-object", "--bucket", name, "--key", "data/body.json")
    assert keys_in(s3, name) == []


def test_cli_reports_s3_errors(endpoint: str, bucket: str) -> None:
    missing = aws_cli(
        endpoint, "s3api", "get-object", "--bucket", bucket, "--key", "nope", "/dev/null"
    )
    assert missing.returncode != 0
    assert "NoSuchKey" in missing.stderr


def test_presign_url_from_the_cli(s3: Any, endpoint: str, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"shared by url")
    url = ok(endpoint, "s3", "presign", f"s3://{bucket}/shared.txt", "--expires-in", "120")
    answer = requests.get(url.strip(), timeout=30)
    assert (answer.status_code, answer.content) == (200, b"shared by url")
