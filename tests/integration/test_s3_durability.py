"""Storage that does not lose data, proved against real `squall server` processes: objects
survive a restart; a SIGKILL keeps every answered write and leaves uploads in flight either
absent or whole, never partial; concurrent writers to one key end with exactly one complete
winner that readers only ever see whole."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.aws import ACCESS_KEY, REGION, SECRET_KEY, client
from tests.support.lambdas import unique
from tests.support.servers import RunningServer, squall_process

MIB = 1024 * 1024


def s3_of(server: RunningServer) -> Any:
    return client(server.endpoint, "s3", s3={"addressing_style": "path"})


def etag_of(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def missing(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        return True
    return False


def body_of(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def killed(server: RunningServer) -> None:
    """SIGKILL the server: no shutdown hooks, no flushing."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(timeout=10)


class _UnsignedPayloadAuth(S3SigV4Auth):
    def payload(self, request: AWSRequest) -> str:
        return "UNSIGNED-PAYLOAD"


class GeneratedBody:
    """`count` copies of `block`, produced while being sent (never whole in memory).

    Once `signal_at` bytes have gone out it sets `progress` and holds the rest back until
    `release` is set, so the upload is certainly still in flight when the test acts."""

    def __init__(self, block: bytes, count: int, signal_at: int) -> None:
        self.block, self.count, self.signal_at = block, count, signal_at
        self.progress = threading.Event()
        self.release = threading.Event()

    def __len__(self) -> int:
        return len(self.block) * self.count

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for _ in range(self.count):
            yield self.block
            sent += len(self.block)
            if sent >= self.signal_at and not self.progress.is_set():
                self.progress.set()
                self.release.wait(60)


def streaming_put(endpoint: str, path: str, body: GeneratedBody) -> threading.Thread:
    """Start a streaming PUT signed with UNSIGNED-PAYLOAD, in a thread; failures are expected
    (the server is about to die) and ignored."""
    headers = {"Content-Length": str(len(body))}
    request = AWSRequest(method="PUT", url=endpoint + path, data=b"", headers=headers)
    _UnsignedPayloadAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    signed = dict(request.prepare().headers)

    def send() -> None:
        with contextlib.suppress(requests.RequestException):
            requests.put(endpoint + path, data=body, headers=signed, timeout=60)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def multipart(s3: Any, bucket: str, key: str, parts: list[bytes]) -> str:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        done.append({"PartNumber": number, "ETag": answer["ETag"]})
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )["ETag"]


# --------------------------------------------------------------------------- restarts


def test_objects_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    small = b"small object"
    large = os.urandom(3 * MIB)
    parts = [os.urandom(5 * MIB), b"tail"]
    with squall_process(data_dir) as server:
        s3 = s3_of(server)
        s3.create_bucket(Bucket="keep")
        s3.put_object(
            Bucket="keep",
            Key="dir/small.txt",
            Body=small,
            ContentType="text/plain",
            Metadata={"kept": "yes"},
            Tagging="t=1",
        )
        s3.put_object(Bucket="keep", Key="large.bin", Body=large)
        mpu_etag = multipart(s3, "keep", "multi.bin", parts)
        s3.put_object(Bucket="keep", Key="deleted", Body=b"gone")
        s3.delete_object(Bucket="keep", Key="deleted")
        pending = s3.create_multipart_upload(Bucket="keep", Key="pending")["UploadId"]
        s3.upload_part(Bucket="keep", Key="pending", UploadId=pending, PartNumber=1, Body=b"p")

    with squall_process(data_dir) as server:
        s3 = s3_of(server)
        assert "keep" in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
        got = s3.get_object(Bucket="keep", Key="dir/small.txt")
        assert got["Body"].read() == small
        assert got["ContentType"] == "text/plain"
        assert got["Metadata"] == {"kept": "yes"}
        assert got["TagCount"] == 1
        assert body_of(s3, "keep", "large.bin") == large
        multi = s3.get_object(Bucket="keep", Key="multi.bin")
        assert multi["Body"].read() == b"".join(parts)
        assert multi["ETag"] == mpu_etag
        assert missing(s3, "keep", "deleted")
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket="keep")["Contents"]]
        assert keys == ["dir/small.txt", "large.bin", "multi.bin"]
        # the upload in progress survives too, and can be completed
        listed = s3.list_parts(Bucket="keep", Key="pending", UploadId=pending)["Parts"]
        assert [part["PartNumber"] for part in listed] == [1]
        s3.complete_multipart_upload(
            Bucket="keep",
            Key="pending",
            UploadId=pending,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": listed[0]["ETag"]}]},
        )
        assert body_of(s3, "keep", "pending") == b"p"


def test_sigkill_keeps_answered_writes_and_never_leaves_a_partial_object(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    old_body = b"the version before the crash"
    answered = {"a.txt": b"answered a", "b.bin": os.urandom(2 * MIB)}
    parts = [os.urandom(5 * MIB), os.urandom(100)]
    block = os.urandom(MIB)
    overwrite = GeneratedBody(block, 200, signal_at=32 * MIB)
    fresh = GeneratedBody(block[::-1], 200, signal_at=32 * MIB)

    with squall_process(data_dir) as server:
        s3 = s3_of(server)
        s3.create_bucket(Bucket="crash")
        s3.put_object(Bucket="crash", Key="big", Body=old_body)
        for key, data in answered.items():
            s3.put_object(Bucket="crash", Key=key, Body=data)
        mpu_etag = multipart(s3, "crash", "multi.bin", parts)
        s3.put_object(Bucket="crash", Key="removed", Body=b"x")
        s3.delete_object(Bucket="crash", Key="removed")

        threads = [
            streaming_put(server.endpoint, "/crash/big", overwrite),
            streaming_put(server.endpoint, "/crash/fresh", fresh),
        ]
        for body in (overwrite, fresh):
            assert body.progress.wait(60), "the server stopped reading the upload"
        killed(server)
        for body in (overwrite, fresh):
            body.release.set()
        for thread in threads:
            thread.join(timeout=30)

    with squall_process(data_dir) as server:
        s3 = s3_of(server)
        for key, data in answered.items():
            got = s3.get_object(Bucket="crash", Key=key)
            assert got["Body"].read() == data, key
            assert got["ETag"] == etag_of(data)
        multi = s3.get_object(Bucket="crash", Key="multi.bin")
        assert (multi["Body"].read(), multi["ETag"]) == (b"".join(parts), mpu_etag)
        assert missing(s3, "crash", "removed")

        # the interrupted overwrite left the previous version whole
        big = s3.get_object(Bucket="crash", Key="big")
        assert big["ContentLength"] == len(old_body)
        assert big["Body"].read() == old_body
        assert big["ETag"] == etag_of(old_body)
        # the interrupted new key is absent, not partial
        assert missing(s3, "crash", "fresh")
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket="crash")["Contents"]]
        assert keys == ["a.txt", "b.bin", "big", "multi.bin"]

        # and the key takes a new write
        s3.put_object(Bucket="crash", Key="fresh", Body=b"after the crash")
        assert body_of(s3, "crash", "fresh") == b"after the crash"


def test_sigkill_right_after_a_multipart_complete_keeps_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"end"]
    with squall_process(data_dir) as server:
        s3 = s3_of(server)
        s3.create_bucket(Bucket="mpu")
        etag = multipart(s3, "mpu", "whole.bin", parts)
        killed(server)
    with squall_process(data_dir) as server:
        got = s3_of(server).get_object(Bucket="mpu", Key="whole.bin")
        assert got["ETag"] == etag
        assert hashlib.sha256(got["Body"].read()).digest() == (
            hashlib.sha256(b"".join(parts)).digest()
        )


# --------------------------------------------------------------------------- concurrency


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3", s3={"addressing_style": "path"})


def test_concurrent_writers_to_one_key_leave_one_complete_winner(s3: Any, endpoint: str) -> None:
    bucket = unique("race")
    s3.create_bucket(Bucket=bucket)
    bodies = [bytes([n]) * ((1 + n % 3) * MIB + n * 1000) for n in range(8)]
    by_etag = {etag_of(body): body for body in bodies}
    start = threading.Barrier(len(bodies) + 1)
    stop_reading = threading.Event()
    seen: list[tuple[str, bytes]] = []

    def write(body: bytes) -> str:
        writer = client(endpoint, "s3", s3={"addressing_style": "path"})
        start.wait(timeout=30)
        return writer.put_object(Bucket=bucket, Key="contested", Body=body)["ETag"]

    def read() -> None:
        reader = client(endpoint, "s3", s3={"addressing_style": "path"})
        start.wait(timeout=30)
        while not stop_reading.is_set():
            try:
                got = reader.get_object(Bucket=bucket, Key="contested")
            except reader.exceptions.NoSuchKey:
                continue
            seen.append((got["ETag"], got["Body"].read()))

    with concurrent.futures.ThreadPoolExecutor(len(bodies) + 1) as pool:
        reader = pool.submit(read)
        writers = [pool.submit(write, body) for body in bodies]
        etags = [writer.result(timeout=60) for writer in writers]
        stop_reading.set()
        reader.result(timeout=60)

    assert sorted(etags) == sorted(by_etag)  # every writer was answered with its own ETag
    final = s3.get_object(Bucket=bucket, Key="contested")
    data = final["Body"].read()
    assert final["ETag"] in by_etag
    assert data == by_etag[final["ETag"]]
    assert final["ContentLength"] == len(data)
    for etag, body in seen:  # readers only ever saw whole bodies, each under its own ETag
        assert body == by_etag.get(etag), f"read a body that does not match ETag {etag}"
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(item["Key"], item["ETag"], item["Size"]) for item in listed] == [
        ("contested", final["ETag"], len(data))
    ]
