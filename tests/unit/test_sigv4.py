"""Tests for squall.edge.sigv4: requests signed by real botocore signers and boto3 clients."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from squall.core.http import HttpRequest
from squall.edge.sigv4 import (
    ChunkSigner,
    SignatureInfo,
    SigV4Error,
    parse_signature,
    require_signature,
    seed_signature_context,
    signing_key,
    verify,
)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:4566"
CREDS = Credentials(AKID, SECRET)
SPECIAL_KEY = "dir/a b+c~ü.txt"
LAMBDA_PATH = (
    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations"
)


# --------------------------------------------------------------------------- helpers


def to_http(
    method: str, url: str, headers: dict[str, str], body: bytes | str | None
) -> HttpRequest:
    """Turn what a client puts on the wire into squall's HttpRequest."""
    parts = urlsplit(url)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    lowered.setdefault("host", parts.netloc)
    if isinstance(body, str):
        body = body.encode()
    return HttpRequest(
        method=method,
        raw_path=parts.path or "/",
        query_string=parts.query,
        headers=lowered,
        body=body or b"",
        query=parse_qsl(parts.query, keep_blank_values=True),
    )


def signed(
    method: str,
    path: str,
    *,
    service: str,
    signer: type[SigV4Auth] = SigV4Auth,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    context: dict[str, object] | None = None,
    region: str = "us-east-1",
    credentials: Credentials = CREDS,
    expires: int | None = None,
) -> HttpRequest:
    """Sign a request with a botocore signer, prepare it and convert it to an HttpRequest."""
    request = AWSRequest(
        method=method, url=ENDPOINT + path, data=body, headers=headers or {}, params=params or {}
    )
    request.context.update(context or {})
    if expires is not None:
        signer(credentials, service, region, expires=expires).add_auth(request)  # type: ignore[call-arg]
    else:
        signer(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    return to_http(prepared.method, prepared.url, dict(prepared.headers.items()), prepared.body)


def sts_request(**kwargs: object) -> HttpRequest:
    return signed(
        "POST",
        "/",
        service="sts",
        body=b"Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        **kwargs,  # type: ignore[arg-type]
    )


def check(request: HttpRequest, secret: str = SECRET, **kwargs: object) -> SignatureInfo:
    info = parse_signature(request)
    assert info is not None
    verify(request, info, secret, **kwargs)  # type: ignore[arg-type]
    return info


def error_of(request: HttpRequest, secret: str = SECRET, **kwargs: object) -> SigV4Error:
    with pytest.raises(SigV4Error) as caught:
        check(request, secret, **kwargs)
    return caught.value


def replace_query(request: HttpRequest, name: str, value: str) -> HttpRequest:
    parts = []
    for part in request.query_string.split("&"):
        key = part.partition("=")[0]
        parts.append(f"{key}={value}" if key == name else part)
    request.query_string = "&".join(parts)
    return request


def s3_presigner(**config: object) -> object:
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(**config),  # type: ignore[arg-type]
    )


def presigned_get(url: str) -> HttpRequest:
    return to_http("GET", url, {}, b"")


# --------------------------------------------------------------------------- header auth


def test_sts_form_post_verifies() -> None:
    info = check(sts_request())
    assert info.access_key_id == AKID
    assert (info.date, info.region, info.service) == (
        info.amz_date.strftime("%Y%m%d"),
        "us-east-1",
        "sts",
    )
    assert info.signed_headers == ("content-type", "host", "x-amz-date")
    assert not info.presigned and info.expires is None and info.content_sha256 is None
    assert info.amz_date.tzinfo is not None


def test_session_token_is_reported() -> None:
    creds = Credentials(AKID, SECRET, "FQoGZXIvYXdzE+token/with=chars")
    info = check(sts_request(credentials=creds))
    assert info.security_token == "FQoGZXIvYXdzE+token/with=chars"
    assert "x-amz-security-token" in info.signed_headers


def test_lambda_path_with_colons_is_double_encoded_and_verifies() -> None:
    request = signed("POST", LAMBDA_PATH, service="lambda", body=b'{"x": 1}')
    info = check(request)
    assert info.service == "lambda"


def test_lambda_signed_with_single_encoding_is_also_accepted() -> None:
    # Some SDKs do not double-encode; S3SigV4Auth signs the path exactly as sent.
    request = signed("POST", LAMBDA_PATH, service="lambda", signer=S3SigV4Auth, body=b"{}")
    check(request)


def test_non_s3_path_is_normalised_like_botocore() -> None:
    request = signed("GET", "/a/./b/../c//d/", service="execute-api")
    assert request.raw_path == "/a/./b/../c//d/"
    check(request)


@pytest.mark.parametrize(
    "key", [SPECIAL_KEY, "a/../b//c/./d", "x=y&z;(1)!*'@$,.txt", "%41 literal percent", "ü/ß/€"]
)
def test_s3_special_keys_with_hex_payload(key: str) -> None:
    body = b"hello world"
    request = signed(
        "PUT", "/bucket/" + quote(key, safe="/~"), service="s3", signer=S3SigV4Auth, body=body
    )
    info = check(request)
    assert info.content_sha256 == hashlib.sha256(body).hexdigest()


def test_s3_unsigned_payload() -> None:
    context = {"client_config": Config(s3={"payload_signing_enabled": False})}
    request = signed(
        "PUT",
        "/bucket/" + quote(SPECIAL_KEY, safe="/~"),
        service="s3",
        signer=S3SigV4Auth,
        body=b"data",
        context=context,
    )
    info = check(request)
    assert info.content_sha256 == "UNSIGNED-PAYLOAD"
    request.body = b"anything else"  # the body is not covered by UNSIGNED-PAYLOAD
    check(request)


def test_s3_query_parameters_with_special_characters() -> None:
    request = signed(
        "GET",
        "/bucket?list-type=2&prefix=a%20b%2Bc%2F%C3%BC&delimiter=%2F&encoding-type=url",
        service="s3",
        signer=S3SigV4Auth,
    )
    check(request)


def test_valueless_query_parameter() -> None:
    request = signed("POST", "/bucket/key?uploads", service="s3", signer=S3SigV4Auth)
    assert request.query_string == "uploads"
    check(request)


def test_form_style_plus_in_params_verifies() -> None:
    # AWSRequest.params are sent with urlencode ("+" for spaces) but signed with %20.
    request = signed(
        "GET",
        "/path",
        service="execute-api",
        params={"q": "a b", "plus": "1+2", "tilde": "~x", "slash": "a/b", "empty": ""},
    )
    assert "q=a+b" in request.query_string
    check(request)


def test_header_values_are_trimmed_and_collapsed() -> None:
    request = signed(
        "GET", "/", service="execute-api", headers={"X-Custom": "  a   b \t c  ", "X-Other": "v"}
    )
    info = check(request)
    assert "x-custom" in info.signed_headers
    assert request.headers["x-custom"] == "  a   b \t c  "


def test_date_header_fallback() -> None:
    request = signed(
        "GET", "/", service="execute-api", headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT"}
    )
    assert "x-amz-date" not in request.headers
    info = check(request, now=datetime.now(UTC))
    assert "date" in info.signed_headers


def test_unsigned_requests_parse_to_none() -> None:
    assert parse_signature(HttpRequest("GET", "/")) is None
    with pytest.raises(SigV4Error) as caught:
        require_signature(HttpRequest("GET", "/"))
    assert caught.value.kind == "missing"
    assert parse_signature(HttpRequest("GET", "/b", "prefix=X-Amz-Date&max-keys=1")) is None
    assert parse_signature(HttpRequest("GET", "/b", "X-Amz-Date=20240101T000000Z")) is None


# --------------------------------------------------------------------------- failures


def test_wrong_secret_is_mismatch() -> None:
    error = error_of(sts_request(), "not-the-secret")
    assert error.kind == "mismatch"
    assert error.message.startswith("The request signature we calculated does not match")


def test_tampered_sts_body_is_mismatch() -> None:
    request = sts_request()
    request.body = b"Action=GetCallerIdentity&Version=2011-06-16"
    assert error_of(request).kind == "mismatch"


def test_tampered_s3_body_is_payload_mismatch() -> None:
    request = signed("PUT", "/bucket/key", service="s3", signer=S3SigV4Auth, body=b"original")
    request.body = b"tampered"
    error = error_of(request)
    assert error.kind == "payload-mismatch"
    verify(request, parse_signature(request), SECRET, check_payload=False)  # type: ignore[arg-type]


def test_tampered_content_sha256_header_is_mismatch() -> None:
    request = signed("PUT", "/bucket/key", service="s3", signer=S3SigV4Auth, body=b"original")
    request.body = b"tampered"
    request.headers["x-amz-content-sha256"] = hashlib.sha256(b"tampered").hexdigest()
    assert error_of(request).kind == "mismatch"


def test_tampered_query_parameter_is_mismatch() -> None:
    request = signed("GET", "/bucket?prefix=a&max-keys=10", service="s3", signer=S3SigV4Auth)
    check(request)
    request.query_string = "prefix=a&max-keys=1000"
    assert error_of(request).kind == "mismatch"


def test_tampered_path_and_method_are_mismatch() -> None:
    request = signed("GET", "/bucket/key", service="s3", signer=S3SigV4Auth)
    request.raw_path = "/bucket/other"
    assert error_of(request).kind == "mismatch"
    request = signed("GET", "/bucket/key", service="s3", signer=S3SigV4Auth)
    request.method = "DELETE"
    assert error_of(request).kind == "mismatch"


def test_missing_signed_header_is_mismatch() -> None:
    request = sts_request()
    del request.headers["content-type"]
    error = error_of(request)
    assert error.kind == "mismatch"
    assert "content-type" in error.message


def test_changed_signed_header_is_mismatch() -> None:
    request = sts_request()
    request.headers["host"] = "evil.example.com"
    assert error_of(request).kind == "mismatch"


@pytest.mark.parametrize("minutes", [16, 60 * 24])
def test_old_request_is_skew(minutes: int) -> None:
    request = sts_request()
    info = parse_signature(request)
    assert info is not None
    now = info.amz_date + timedelta(minutes=minutes)
    with pytest.raises(SigV4Error) as caught:
        verify(request, info, SECRET, now=now)
    assert caught.value.kind == "skew"
    stamp = info.amz_date.strftime("%Y%m%dT%H%M%SZ")
    limit = (now - timedelta(minutes=15)).strftime("%Y%m%dT%H%M%SZ")
    assert caught.value.message == (
        f"Signature expired: {stamp} is now earlier than {limit} "
        f"({now.strftime('%Y%m%dT%H%M%SZ')} - 15 min.)"
    )


def test_future_request_is_skew() -> None:
    request = sts_request()
    info = parse_signature(request)
    assert info is not None
    with pytest.raises(SigV4Error) as caught:
        verify(request, info, SECRET, now=info.amz_date - timedelta(minutes=16))
    assert caught.value.kind == "skew"
    assert caught.value.message.startswith("Signature not yet current: ")
    # Inside the window both ways is fine, and the window is configurable.
    verify(request, info, SECRET, now=info.amz_date - timedelta(minutes=14))
    verify(request, info, SECRET, now=info.amz_date.replace(tzinfo=None))  # naive means UTC
    verify(request, info, SECRET, now=info.amz_date + timedelta(minutes=14))
    with pytest.raises(SigV4Error):
        verify(
            request,
            info,
            SECRET,
            now=info.amz_date + timedelta(minutes=6),
            max_skew=timedelta(minutes=5),
        )


HEX = "a" * 64
SCOPE = "AKID/{date}/us-east-1/sts/aws4_request"


def _v4(credential: str = SCOPE, signed_headers: str = "host", signature: str = HEX) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed_headers}, "
        f"Signature={signature}"
    )


MALFORMED_AUTHORIZATIONS = [
    "",
    "AWS4-HMAC-SHA256",
    "AWS4-HMAC-SHA256 ",
    "AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
    _v4().replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
    "Bearer abc.def.ghi",
    f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host",
    f"AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature={HEX}",
    f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature",
    _v4("AKID/{date}/us-east-1/sts"),
    _v4("AKID/{date}/us-east-1/sts/aws5_request"),
    _v4("AKID/2024-1-1/us-east-1/sts/aws4_request"),
    _v4("AKID//us-east-1/sts/aws4_request"),
    _v4("AKID/19990101/us-east-1/sts/aws4_request"),
    _v4(signed_headers="host;;x"),
    _v4(signed_headers=""),
    _v4(signature="xyz"),
    _v4(signature="é" * 64),
    _v4(signature="A" * 63),
]


@pytest.mark.parametrize("authorization", MALFORMED_AUTHORIZATIONS)
def test_malformed_authorization(authorization: str) -> None:
    request = sts_request()
    date = request.headers["x-amz-date"][:8]
    request.headers["authorization"] = authorization.replace("{date}", date)
    error = error_of(request)
    assert error.kind == "malformed", error
    assert error.message


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-amz-date", "2024-01-01T00:00:00Z"),
        ("x-amz-date", "20241301T000000Z"),
        ("x-amz-date", ""),
        ("x-amz-content-sha256", "not-a-hash"),
    ],
)
def test_malformed_dates_and_payload_hash(header: str, value: str) -> None:
    request = signed("GET", "/bucket/key", service="s3", signer=S3SigV4Auth)
    request.headers[header] = value
    assert error_of(request).kind == "malformed"


def test_missing_date_is_malformed() -> None:
    request = sts_request()
    del request.headers["x-amz-date"]
    error = error_of(request)
    assert error.kind == "malformed"
    assert "X-Amz-Date" in error.message


def test_garbled_date_header_is_malformed() -> None:
    request = signed(
        "GET", "/", service="execute-api", headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT"}
    )
    request.headers["date"] = "yesterday-ish"
    assert error_of(request).kind == "malformed"


def test_header_and_query_auth_together_is_malformed() -> None:
    request = sts_request()
    request.query_string = "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    assert error_of(request).kind == "malformed"


def test_mutated_authorization_headers_only_raise_sigv4_errors() -> None:
    original = sts_request()
    authorization = original.headers["authorization"]
    rng = random.Random(1234)
    alphabet = (
        "=,/; \t\x00é" + "AWS4-HMAC-SHA256 Credential SignedHeaders Signature 0123456789abcdef"
    )
    variants = [authorization[:cut] for cut in range(len(authorization))]
    for _ in range(500):
        chars = list(authorization)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(chars))
            action = rng.choice(("replace", "delete", "insert"))
            if action == "replace":
                chars[position] = rng.choice(alphabet)
            elif action == "delete":
                del chars[position]
            else:
                chars.insert(position, rng.choice(alphabet))
        variants.append("".join(chars))
    for variant in variants:
        request = sts_request()
        request.headers["authorization"] = variant
        try:
            check(request)
        except SigV4Error as error:
            assert error.kind in {"malformed", "mismatch"}, (variant, error)


# --------------------------------------------------------------------------- presigned URLs


def test_boto3_presigned_url_with_special_key_verifies() -> None:
    client = s3_presigner(signature_version="s3v4")
    url = client.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object",
        Params={
            "Bucket": "b",
            "Key": SPECIAL_KEY,
            "ResponseContentDisposition": 'attachment; filename="x y+z.txt"',
            "ResponseContentType": "text/plain; charset=utf-8",
        },
        ExpiresIn=600,
    )
    request = presigned_get(url)
    assert request.raw_path == "/b/dir/a%20b%2Bc~%C3%BC.txt"
    info = check(request)
    assert info.presigned and info.expires == 600 and info.service == "s3"
    assert info.signed_headers == ("host",)


def test_boto3_presigned_put_verifies_whatever_the_body() -> None:
    client = s3_presigner(signature_version="s3v4")
    url = client.generate_presigned_url(  # type: ignore[attr-defined]
        "put_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
    )
    request = to_http("PUT", url, {}, b"some uploaded bytes")
    check(request)


def test_boto3_default_presign_in_us_east_1_is_sigv2_and_rejected() -> None:
    # Without signature_version="s3v4", botocore presigns S3 URLs in us-east-1 with SigV2.
    url = s3_presigner().generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "b", "Key": "k"}
    )
    assert "AWSAccessKeyId=" in url
    with pytest.raises(SigV4Error) as caught:
        parse_signature(presigned_get(url))
    assert caught.value.kind == "malformed"


def test_generic_query_auth_signs_the_body_hash() -> None:
    request = signed(
        "GET",
        "/",
        service="sts",
        signer=SigV4QueryAuth,
        expires=900,
        params={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
    )
    info = check(request)
    assert info.presigned and info.service == "sts" and info.expires == 900
    assert "authorization" not in request.headers


def test_s3_query_auth_with_token_and_headers() -> None:
    creds = Credentials(AKID, SECRET, "session+token/==")
    request = signed(
        "GET",
        "/bucket/" + quote(SPECIAL_KEY, safe="/~"),
        service="s3",
        signer=S3SigV4QueryAuth,
        expires=3600,
        credentials=creds,
        headers={"X-Amz-Meta-Thing": "  v  a  l  "},
    )
    info = check(request)
    assert info.security_token == "session+token/=="
    assert "x-amz-meta-thing" in info.signed_headers


def test_presigned_url_expired() -> None:
    url = s3_presigner(signature_version="s3v4").generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
    )
    request = presigned_get(url)
    info = parse_signature(request)
    assert info is not None
    verify(request, info, SECRET, now=info.amz_date + timedelta(seconds=60))
    with pytest.raises(SigV4Error) as caught:
        verify(request, info, SECRET, now=info.amz_date + timedelta(seconds=61))
    assert caught.value.kind == "expired"
    assert caught.value.message == "Request has expired"


def test_presigned_url_from_the_future_is_skew() -> None:
    url = s3_presigner(signature_version="s3v4").generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=604800
    )
    request = presigned_get(url)
    info = parse_signature(request)
    assert info is not None
    with pytest.raises(SigV4Error) as caught:
        verify(request, info, SECRET, now=info.amz_date - timedelta(minutes=20))
    assert caught.value.kind == "skew"
    # A week-long URL stays valid long after the 15-minute skew window.
    verify(request, info, SECRET, now=info.amz_date + timedelta(days=6))


def test_presigned_url_tampering() -> None:
    client = s3_presigner(signature_version="s3v4")
    url = client.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object",
        Params={"Bucket": "b", "Key": "k", "ResponseContentType": "text/plain"},
    )
    request = replace_query(presigned_get(url), "response-content-type", "text%2Fhtml")
    assert error_of(request).kind == "mismatch"
    request = replace_query(presigned_get(url), "X-Amz-Expires", "7200")
    assert error_of(request).kind == "mismatch"
    request = presigned_get(url)
    request.query_string += "&extra=1"
    assert error_of(request).kind == "mismatch"
    request = presigned_get(url)
    request.raw_path = "/b/other"
    assert error_of(request).kind == "mismatch"
    assert error_of(presigned_get(url), "wrong-secret").kind == "mismatch"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Amz-Expires", "0"),
        ("X-Amz-Expires", "604801"),
        ("X-Amz-Expires", "-5"),
        ("X-Amz-Expires", "soon"),
        ("X-Amz-Algorithm", "AWS4-ECDSA-P256-SHA256"),
        ("X-Amz-Credential", "AKID%2F20240101%2Fus-east-1"),
        ("X-Amz-Date", "yesterday"),
        ("X-Amz-SignedHeaders", ""),
        ("X-Amz-Signature", "zz"),
    ],
)
def test_presigned_url_malformed(name: str, value: str) -> None:
    url = s3_presigner(signature_version="s3v4").generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "b", "Key": "k"}
    )
    request = replace_query(presigned_get(url), name, value)
    assert error_of(request).kind == "malformed"


@pytest.mark.parametrize(
    "name",
    ["X-Amz-Algorithm", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"],
)
def test_presigned_url_missing_parameter_is_malformed(name: str) -> None:
    url = s3_presigner(signature_version="s3v4").generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "b", "Key": "k"}
    )
    request = presigned_get(url)
    request.query_string = "&".join(
        part for part in request.query_string.split("&") if not part.startswith(name + "=")
    )
    assert error_of(request).kind == "malformed"


# --------------------------------------------------------------------------- keys and chunks


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def test_signing_key_matches_the_documented_derivation_and_is_cached() -> None:
    expected = _hmac(
        _hmac(_hmac(_hmac(b"AWS4" + SECRET.encode(), "20120215"), "us-east-1"), "iam"),
        "aws4_request",
    )
    assert signing_key(SECRET, "20120215", "us-east-1", "iam") == expected
    # The example from the AWS documentation on deriving a signing key.
    assert signing_key(SECRET, "20120215", "us-east-1", "iam").hex() == (
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    )
    hits = signing_key.cache_info().hits
    signing_key(SECRET, "20120215", "us-east-1", "iam")
    assert signing_key.cache_info().hits == hits + 1


def test_seed_signature_context() -> None:
    request = signed(
        "PUT",
        "/bucket/key",
        service="s3",
        headers={"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
    )
    info = check(request)
    signer = seed_signature_context(info, SECRET)
    assert isinstance(signer, ChunkSigner)
    assert signer.seed_signature == info.signature
    assert signer.amz_date == request.headers["x-amz-date"]
    assert signer.scope == f"{info.date}/us-east-1/s3/aws4_request"
    empty = hashlib.sha256(b"").hexdigest()
    text = "\n".join(
        ("AWS4-HMAC-SHA256-PAYLOAD", signer.amz_date, signer.scope, info.signature, empty, empty)
    )
    key = signing_key(SECRET, info.date, "us-east-1", "s3")
    assert (
        signer.chunk_signature(info.signature, empty)
        == hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    )


# --------------------------------------------------------------------------- real clients


class _CaptureHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _capture(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        request = HttpRequest(self.command, path, query, headers, body, query=parse_qsl(query))
        self.server.captured.append(request)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("ETag", '"0123456789abcdef"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _capture

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def capture_endpoint() -> Iterator[tuple[str, list[HttpRequest]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CaptureHandler)
    server.captured = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.captured  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _call(
    endpoint: str, captured: list[HttpRequest], service: str, operation: str, **params: object
) -> HttpRequest:
    client = boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )
    captured.clear()
    # The capture server's replies are not valid service responses; only the request matters.
    with contextlib.suppress(Exception):
        getattr(client, operation)(**params)
    assert captured, f"{service}.{operation} sent nothing"
    return captured[0]


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        ("sts", "get_caller_identity", {}),
        (
            "lambda",
            "invoke",
            {"FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:f", "Payload": b"{}"},
        ),
        ("lambda", "get_function", {"FunctionName": "my-func", "Qualifier": "$LATEST"}),
        ("s3", "put_object", {"Bucket": "bucket", "Key": SPECIAL_KEY, "Body": b"payload bytes"}),
        ("s3", "list_objects_v2", {"Bucket": "bucket", "Prefix": "a b+c/ü", "Delimiter": "/"}),
        ("sqs", "list_queues", {"QueueNamePrefix": "q"}),
        ("dynamodb", "list_tables", {}),
    ],
)
def test_real_clients_on_the_wire(
    capture_endpoint: tuple[str, list[HttpRequest]],
    service: str,
    operation: str,
    params: dict[str, object],
) -> None:
    request = _call(*capture_endpoint, service, operation, **params)
    info = check(request)
    assert info.access_key_id == AKID
    assert error_of(request, "wrong").kind == "mismatch"
