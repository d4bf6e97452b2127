"""S3 URLs presigned by boto3 with its default configuration against a running server.

In us-east-1 boto3 presigns S3 URLs with SigV2 (`?AWSAccessKeyId=..&Signature=..&Expires=..`)
unless `signature_version="s3v4"` is set: squall verifies them, with their expiry, and still
verifies SigV4 presigned URLs. SigV2 in the Authorization header is refused as S3 refuses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.exceptions
import pytest
import requests

from squall.core.config import Settings
from squall.core.http import HttpRequest
from squall.server import build_app
from tests.support.aws import client
from tests.support.lambdas import unique
from tests.support.servers import squall_process

AWKWARD_KEY = "dir/a b+c~ü!'()*&=.txt"


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3")


@pytest.fixture(scope="module")
def presigner(endpoint: str) -> Any:
    """boto3 with its default configuration: SigV2 presigned URLs in us-east-1."""
    return client(endpoint, "s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique("presign2")
    s3.create_bucket(Bucket=name)
    return name


def presign(presigner: Any, operation: str, expires: int = 300, **params: Any) -> str:
    url = presigner.generate_presigned_url(operation, Params=params, ExpiresIn=expires)
    assert "AWSAccessKeyId=" in url and "Signature=" in url and "X-Amz-" not in url
    return url


def error_code(response: requests.Response) -> str:
    text = response.text
    start = text.find("<Code>")
    return text[start + 6 : text.find("</Code>")] if start >= 0 else ""


# --------------------------------------------------------------------------- accepted


def test_presigned_get_serves_the_object(s3: Any, presigner: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello, presigned world")
    url = presign(presigner, "get_object", Bucket=bucket, Key="hello.txt")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == b"hello, presigned world"


def test_presigned_get_of_an_awkward_key_with_response_overrides(
    s3: Any, presigner: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key=AWKWARD_KEY, Body=b"awkward")
    url = presign(
        presigner,
        "get_object",
        Bucket=bucket,
        Key=AWKWARD_KEY,
        ResponseContentType="text/plain",
        ResponseContentDisposition='attachment; filename="x y.txt"',
    )
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == b"awkward"


def test_presigned_put_uploads_the_body(s3: Any, presigner: Any, bucket: str) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    url = presign(presigner, "put_object", Bucket=bucket, Key="upload.bin")
    response = requests.put(url, data=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="upload.bin")["Body"].read() == body


def test_presigned_put_is_streamed_past_the_body_limit(tmp_path: Path) -> None:
    # bodies read whole are capped at max_body_bytes; a presigned PutObject is streamed instead
    limit = 1024
    body = os.urandom(64 * limit)

    async def scenario() -> tuple[list[int], bytes]:
        app = build_app(Settings(data_dir=tmp_path / "data", max_body_bytes=limit))
        presigner = client("http://127.0.0.1:4566", "s3")
        for hook in app.on_startup:
            await hook()
        try:
            statuses, got = [], b""
            for method, operation, params, payload in [
                ("PUT", "create_bucket", {"Bucket": "streamed"}, b""),
                ("PUT", "put_object", {"Bucket": "streamed", "Key": "big"}, body),
                ("GET", "get_object", {"Bucket": "streamed", "Key": "big"}, b""),
            ]:
                url = urlsplit(presign(presigner, operation, **params))
                request = HttpRequest(
                    method=method,
                    raw_path=url.path,
                    query_string=url.query,
                    headers={"host": url.netloc, "content-length": str(len(payload))},
                    query=parse_qsl(url.query, keep_blank_values=True),
                )
                chunks = [payload[i : i + limit] for i in range(0, len(payload), limit)] or [b""]

                async def receive(chunks: list[bytes] = chunks) -> dict[str, Any]:
                    chunk = chunks.pop(0)
                    return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

                response = await app.handle(request, receive)
                statuses.append(response.status)
                got = response.body
                if response.stream is not None:
                    got += b"".join([chunk async for chunk in response.stream])
            return statuses, got
        finally:
            for hook in app.on_shutdown:
                await hook()

    statuses, got = asyncio.run(scenario())
    assert statuses == [200, 200, 200]
    assert got == body


def test_presigned_put_with_a_signed_content_type(s3: Any, presigner: Any, bucket: str) -> None:
    url = presign(presigner, "put_object", Bucket=bucket, Key="page.html", ContentType="text/html")
    good = requests.put(url, data=b"<p>hi</p>", headers={"Content-Type": "text/html"}, timeout=10)
    assert good.status_code == 200, good.text
    head = s3.head_object(Bucket=bucket, Key="page.html")
    assert head["ContentType"] == "text/html"
    other = requests.put(url, data=b"<p>hi</p>", headers={"Content-Type": "image/png"}, timeout=10)
    assert other.status_code == 403
    assert error_code(other) == "SignatureDoesNotMatch"


def test_presigned_head_and_delete(s3: Any, presigner: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="doomed", Body=b"12345")
    head = requests.head(presign(presigner, "head_object", Bucket=bucket, Key="doomed"), timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "5"
    url = presign(presigner, "delete_object", Bucket=bucket, Key="doomed")
    deleted = requests.delete(url, timeout=10)
    assert deleted.status_code == 204, deleted.text
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3.head_object(Bucket=bucket, Key="doomed")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_presigned_bucket_listing(s3: Any, presigner: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="listed", Body=b"")
    response = requests.get(presign(presigner, "list_objects", Bucket=bucket), timeout=10)
    assert response.status_code == 200, response.text
    assert "<Key>listed</Key>" in response.text


def test_presigned_virtual_host_style(s3: Any, endpoint: str, bucket: str) -> None:
    # boto3 addresses `<bucket>.localhost:<port>`; the proxy setting delivers it to squall
    port = urlsplit(endpoint).port
    virtual = client(f"http://localhost:{port}", "s3", s3={"addressing_style": "virtual"})
    s3.put_object(Bucket=bucket, Key="v/key.txt", Body=b"virtual")
    url = presign(virtual, "get_object", Bucket=bucket, Key="v/key.txt")
    assert urlsplit(url).hostname == f"{bucket}.localhost"
    response = requests.get(url, proxies={"http": endpoint}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == b"virtual"
    # the same signature does not name the object under another bucket's host name
    other = url.replace(f"{bucket}.localhost", f"x{bucket}.localhost")
    refused = requests.get(other, proxies={"http": endpoint}, timeout=10)
    assert refused.status_code == 403
    assert error_code(refused) == "SignatureDoesNotMatch"


def test_sigv4_presigned_urls_still_work(s3: Any, endpoint: str, bucket: str) -> None:
    v4 = client(endpoint, "s3", signature_version="s3v4")
    put = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "v4"})
    assert "X-Amz-Signature=" in put
    assert requests.put(put, data=b"four", timeout=10).status_code == 200
    get = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v4"})
    response = requests.get(get, timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == b"four"


# --------------------------------------------------------------------------- refused


def test_expired_url_is_access_denied(s3: Any, presigner: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="brief", Body=b"gone soon")
    url = presign(presigner, "get_object", expires=1, Bucket=bucket, Key="brief")
    time.sleep(2.1)
    response = requests.get(url, timeout=10)
    assert response.status_code == 403
    assert error_code(response) == "AccessDenied"
    assert "Request has expired" in response.text


def test_tampered_signature_is_refused(s3: Any, presigner: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="guarded", Body=b"secret")
    url = presign(presigner, "get_object", Bucket=bucket, Key="guarded")
    signature = url.split("Signature=", 1)[1].split("&", 1)[0]
    tampered = url.replace(f"Signature={signature}", f"Signature=AAAA{signature[4:]}")
    assert tampered != url
    response = requests.get(tampered, timeout=10)
    assert response.status_code == 403
    assert error_code(response) == "SignatureDoesNotMatch"
    assert "<StringToSign>GET\n" in response.text


def test_url_is_only_good_for_its_own_key_and_method(s3: Any, presigner: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="mine", Body=b"mine")
    s3.put_object(Bucket=bucket, Key="yours", Body=b"yours")
    url = presign(presigner, "get_object", Bucket=bucket, Key="mine")
    other_key = requests.get(url.replace("/mine?", "/yours?"), timeout=10)
    assert other_key.status_code == 403
    assert error_code(other_key) == "SignatureDoesNotMatch"
    assert requests.delete(url, timeout=10).status_code == 403
    assert s3.get_object(Bucket=bucket, Key="mine")["Body"].read() == b"mine"


def test_wrong_secret_and_unknown_key(endpoint: str, bucket: str) -> None:
    wrong = client(endpoint, "s3", secret_key="not-the-secret")
    response = requests.get(presign(wrong, "list_objects", Bucket=bucket), timeout=10)
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")
    unknown = client(endpoint, "s3", access_key="AKIDUNKNOWN", secret_key="x")
    response = requests.get(presign(unknown, "list_objects", Bucket=bucket), timeout=10)
    assert (response.status_code, error_code(response)) == (403, "InvalidAccessKeyId")


def test_sigv2_authorization_header_is_refused_clearly(endpoint: str, bucket: str) -> None:
    v2 = client(endpoint, "s3", signature_version="s3")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        v2.list_objects(Bucket=bucket)
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidRequest"
    assert "Please use AWS4-HMAC-SHA256." in error["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# --------------------------------------------------------------------------- --auth any


def test_auth_any_accepts_sigv2_like_sigv4(tmp_path: Path) -> None:
    with squall_process(tmp_path / "data", "--auth", "any") as server:
        s3 = client(server.endpoint, "s3")
        s3.create_bucket(Bucket="anybucket")
        s3.put_object(Bucket="anybucket", Key="k", Body=b"any")
        # any key id (one that names no other account) with any secret, even past its expiry
        sloppy = client(server.endpoint, "s3", access_key="AKIDANYTHING", secret_key="whatever")
        url = presign(sloppy, "get_object", expires=1, Bucket="anybucket", Key="k")
        time.sleep(1.1)
        response = requests.get(url, timeout=10)
        assert response.status_code == 200, response.text
        assert response.content == b"any"
        header_v2 = client(server.endpoint, "s3", signature_version="s3")
        assert header_v2.get_object(Bucket="anybucket", Key="k")["Body"].read() == b"any"
