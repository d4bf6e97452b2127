"""Tests for squall.edge.sigv2: S3 URLs presigned with SigV2 by botocore, verified by squall."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.auth import HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from squall.core.context import Principal
from squall.core.errors import ServiceError
from squall.core.http import HttpRequest
from squall.edge.auth import Authenticator
from squall.edge.sigv2 import SigV2Error, SigV2Signature, parse_sigv2, verify_presigned
from squall.services.iam.keys import AccessKey

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:4566"
AWKWARD_KEY = "dir/a b+c~ü!'()*.txt"


# --------------------------------------------------------------------------- helpers


def to_http(method: str, url: str, headers: dict[str, str] | None = None) -> HttpRequest:
    """What a client puts on the wire, as squall's HttpRequest."""
    parts = urlsplit(url)
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    lowered.setdefault("host", parts.netloc)
    return HttpRequest(
        method=method,
        raw_path=parts.path or "/",
        query_string=parts.query,
        headers=lowered,
        query=parse_qsl(parts.query, keep_blank_values=True),
    )


def presigner(endpoint: str = ENDPOINT, **s3: object) -> object:
    """A boto3 S3 client with the default configuration (SigV2 presigning in us-east-1)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(s3=s3 or None),  # type: ignore[arg-type]
    )


def presign(operation: str, params: dict[str, object], **kwargs: object) -> str:
    url = presigner(**kwargs).generate_presigned_url(operation, Params=params)  # type: ignore[attr-defined]
    assert "AWSAccessKeyId=" in url and "X-Amz-" not in url
    return url


def hmacv1_signed(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    credentials: Credentials | None = None,
    expires: int = 3600,
) -> HttpRequest:
    """Sign with botocore's HmacV1QueryAuth directly and convert the URL it makes."""
    request = AWSRequest(method=method, url=ENDPOINT + path, headers=headers or {})
    HmacV1QueryAuth(credentials or Credentials(AKID, SECRET), expires=expires).add_auth(request)
    return to_http(method, request.url)


def check(request: HttpRequest, secret: str = SECRET, **kwargs: object) -> SigV2Signature:
    info = parse_sigv2(request)
    assert info is not None and info.presigned
    verify_presigned(request, info, secret, **kwargs)  # type: ignore[arg-type]
    return info


def error_of(request: HttpRequest, secret: str = SECRET, **kwargs: object) -> SigV2Error:
    with pytest.raises(SigV2Error) as caught:
        check(request, secret, **kwargs)
    return caught.value


def with_query(request: HttpRequest, name: str, value: str | None) -> HttpRequest:
    """`request` with query parameter `name` set to `value` (appended if new, dropped if None)."""
    parts, found = [], False
    for part in request.query_string.split("&"):
        if part.partition("=")[0] == name:
            found = True
            if value is not None:
                parts.append(f"{name}={value}")
        else:
            parts.append(part)
    if not found and value is not None:
        parts.append(f"{name}={value}")
    request.query_string = "&".join(parts)
    request.query = parse_qsl(request.query_string, keep_blank_values=True)
    return request


# --------------------------------------------------------------------------- accepted


def test_botocore_hmacv1_query_auth_verifies() -> None:
    info = check(hmacv1_signed("GET", "/bucket/key"))
    assert info.access_key_id == AKID
    assert info.service == "s3"
    assert info.expires is not None and int(info.expires) > time.time()


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE"])
def test_every_object_method_verifies(method: str) -> None:
    check(hmacv1_signed(method, "/bucket/some/key.txt"))


@pytest.mark.parametrize(
    ("operation", "method"),
    [("get_object", "GET"), ("put_object", "PUT"), ("head_object", "HEAD")],
)
def test_boto3_presigned_object_urls_verify(operation: str, method: str) -> None:
    url = presign(operation, {"Bucket": "bucket", "Key": AWKWARD_KEY})
    check(to_http(method, url))


def test_boto3_presigned_delete_verifies() -> None:
    url = presign("delete_object", {"Bucket": "bucket", "Key": "k", "VersionId": "v 1+2"})
    check(to_http("DELETE", url))


def test_response_overrides_and_version_id_are_signed_sub_resources() -> None:
    url = presign(
        "get_object",
        {
            "Bucket": "bucket",
            "Key": AWKWARD_KEY,
            "ResponseContentType": "text/plain; charset=utf-8",
            "ResponseContentDisposition": 'attachment; filename="a b.txt"',
            "VersionId": "3/L4kqtJl40Nr8X8gdRQBpUMLUo",
        },
    )
    request = to_http("GET", url)
    check(request)
    tampered = with_query(to_http("GET", url), "response-content-type", "text%2Fhtml")
    assert error_of(tampered).kind == "mismatch"
    other_version = with_query(to_http("GET", url), "versionId", "other")
    assert error_of(other_version).kind == "mismatch"


@pytest.mark.parametrize(
    ("operation", "params", "method"),
    [
        ("get_object_tagging", {"Bucket": "bucket", "Key": "k"}, "GET"),
        ("get_object_acl", {"Bucket": "bucket", "Key": "k"}, "GET"),
        ("upload_part", {"Bucket": "b", "Key": "k", "UploadId": "u/1+2=", "PartNumber": 3}, "PUT"),
        ("list_objects", {"Bucket": "bucket"}, "GET"),
        ("list_objects", {"Bucket": "bucket", "Prefix": "a b/"}, "GET"),
        ("get_bucket_acl", {"Bucket": "bucket"}, "GET"),
        ("list_buckets", {}, "GET"),
    ],
)
def test_bucket_and_sub_resource_requests_verify(
    operation: str, params: dict[str, object], method: str
) -> None:
    check(to_http(method, presign(operation, params)))


def test_adding_a_sub_resource_breaks_the_signature() -> None:
    url = presign("get_object", {"Bucket": "bucket", "Key": "k"})
    check(to_http("GET", url))
    assert error_of(to_http("GET", url + "&acl")).kind == "mismatch"
    assert error_of(to_http("GET", url + "&tagging=")).kind == "mismatch"


def test_other_query_parameters_are_not_signed_as_in_s3() -> None:
    url = presign("get_object", {"Bucket": "bucket", "Key": "k"})
    check(to_http("GET", url + "&x-id=GetObject&cache-buster=1"))


def test_presigned_put_with_content_type_and_metadata_from_the_query() -> None:
    params = {
        "Bucket": "bucket",
        "Key": "k",
        "ContentType": "text/plain",
        "Metadata": {"colour": "blue"},
        "ACL": "private",
    }
    url = presign("put_object", params)
    assert "x-amz-meta-colour=blue" in url and "content-type=text%2Fplain" in url
    # the headers botocore moved to the query may be sent, or not
    check(to_http("PUT", url))
    check(to_http("PUT", url, {"Content-Type": "text/plain", "x-amz-meta-colour": "blue"}))
    # but not with other values
    assert error_of(to_http("PUT", url, {"Content-Type": "image/png"})).kind == "mismatch"
    assert error_of(to_http("PUT", url, {"x-amz-meta-colour": "red"})).kind == "mismatch"
    assert error_of(with_query(to_http("PUT", url), "x-amz-acl", "public-read")).kind == "mismatch"


def test_unsigned_content_type_or_amz_header_breaks_the_signature() -> None:
    url = presign("put_object", {"Bucket": "bucket", "Key": "k"})
    check(to_http("PUT", url))
    assert error_of(to_http("PUT", url, {"Content-Type": "text/html"})).kind == "mismatch"
    assert error_of(to_http("PUT", url, {"x-amz-acl": "public-read"})).kind == "mismatch"


def test_content_md5_header_is_signed() -> None:
    request = hmacv1_signed("PUT", "/bucket/k", headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})
    check(request)
    request.headers["content-md5"] = "rL0Y20zC+Fzt72VPzMSk2A=="
    assert error_of(request).kind == "mismatch"


def test_session_token_in_the_query_is_signed() -> None:
    credentials = Credentials(AKID, SECRET, "session-token/+=")
    request = hmacv1_signed("GET", "/bucket/k", credentials=credentials)
    assert "x-amz-security-token" in request.query_string
    check(request)
    assert error_of(with_query(request, "x-amz-security-token", "other")).kind == "mismatch"


def test_virtual_host_style_signs_the_bucket_in_the_path() -> None:
    client = {"addressing_style": "virtual"}
    url = presigner("http://s3.localhost.test:4566", **client).generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "bucket", "Key": AWKWARD_KEY}
    )
    request = to_http("GET", url)
    assert request.host.startswith("bucket.") and not request.raw_path.startswith("/bucket")
    check(request, bucket="bucket")
    assert error_of(to_http("GET", url)).kind == "mismatch"  # not the path-style resource
    assert error_of(to_http("GET", url), bucket="other").kind == "mismatch"


@pytest.mark.parametrize("operation", ["list_objects", "get_bucket_acl", "get_bucket_tagging"])
def test_virtual_host_style_bucket_requests(operation: str) -> None:
    client = presigner("http://s3.localhost.test:4566", addressing_style="virtual")
    url = client.generate_presigned_url(operation, Params={"Bucket": "bucket"})  # type: ignore[attr-defined]
    request = to_http("GET", url)
    assert request.raw_path == "/"
    check(request, bucket="bucket")


def test_a_path_style_signature_is_not_good_for_another_bucket_by_host() -> None:
    # signed for bucket "bucket", key "k" (path style) ...
    url = presign("get_object", {"Bucket": "bucket", "Key": "k"})
    check(to_http("GET", url))
    # ... sent to bucket "other" by Host, the path now naming the key "bucket/k" there
    assert error_of(to_http("GET", url), bucket="other").kind == "mismatch"


def test_plus_read_as_a_space_in_the_signature_still_verifies() -> None:
    for _ in range(50):  # find a signature with a "+" in it
        request = hmacv1_signed("GET", f"/bucket/k{time.monotonic_ns()}")
        info = parse_sigv2(request)
        assert info is not None
        if "+" in info.signature:
            spaced = SigV2Signature(
                info.access_key_id,
                info.signature.replace("+", " "),
                presigned=True,
                expires=info.expires,
            )
            verify_presigned(request, spaced, SECRET)
            return
    pytest.skip("no signature with a '+' came up")


# --------------------------------------------------------------------------- refused


def test_wrong_secret_is_a_mismatch_naming_the_string_to_sign() -> None:
    request = hmacv1_signed("GET", "/bucket/key")
    error = error_of(request, "not-the-secret")
    assert error.kind == "mismatch"
    expires = request.query_value("Expires")
    assert error.fields["StringToSign"] == f"GET\n\n\n{expires}\n/bucket/key"
    assert error.fields["AWSAccessKeyId"] == AKID
    assert error.fields["SignatureProvided"] == request.query_value("Signature")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: setattr(r, "method", "DELETE"),
        lambda r: setattr(r, "raw_path", "/bucket/other"),
        lambda r: setattr(r, "raw_path", "/other/key"),
        lambda r: with_query(r, "Expires", str(int(r.query_value("Expires")) + 1)),
        lambda r: with_query(r, "Signature", "AAAA" + r.query_value("Signature")[4:]),
        lambda r: with_query(r, "Signature", "not base64!"),
        lambda r: with_query(r, "Signature", ""),
    ],
    ids=["method", "key", "bucket", "expires", "signature", "garbage", "empty"],
)
def test_tampered_requests_are_refused(tamper: object) -> None:
    request = hmacv1_signed("GET", "/bucket/key")
    check(request)
    tamper(request)  # type: ignore[operator]
    assert error_of(request).kind == "mismatch"


def test_expired_url_is_refused_before_the_signature_is_checked() -> None:
    request = hmacv1_signed("GET", "/bucket/key", expires=60)
    expires = int(request.query_value("Expires") or 0)
    check(request, now=datetime.fromtimestamp(expires, UTC))  # the last good second
    error = error_of(request, now=datetime.fromtimestamp(expires + 1, UTC))
    assert (error.kind, error.message) == ("expired", "Request has expired")
    assert set(error.fields) == {"Expires", "ServerTime"}
    # even with a wrong secret, the expiry is what is reported
    late = datetime.fromtimestamp(expires + 1, UTC)
    assert error_of(request, "wrong", now=late).kind == "expired"


@pytest.mark.parametrize(("value", "kind"), [(None, "malformed"), ("soon", "malformed")])
def test_missing_or_malformed_expires(value: str | None, kind: str) -> None:
    request = with_query(hmacv1_signed("GET", "/bucket/key"), "Expires", value)
    assert error_of(request).kind == kind


# --------------------------------------------------------------------------- parsing


def test_requests_without_sigv2_are_left_alone() -> None:
    assert parse_sigv2(to_http("GET", f"{ENDPOINT}/bucket/key")) is None
    assert parse_sigv2(to_http("GET", f"{ENDPOINT}/bucket/key?AWSAccessKeyId=x")) is None
    v4 = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    ).generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert parse_sigv2(to_http("GET", v4)) is None
    v4_header = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/s3/aws4_request"
    }
    assert parse_sigv2(to_http("GET", f"{ENDPOINT}/b/k", v4_header)) is None


def test_query_protocol_sigv2_is_not_s3s() -> None:
    url = f"{ENDPOINT}/?Action=ListQueues&AWSAccessKeyId=x&SignatureVersion=2&Signature=abc"
    assert parse_sigv2(to_http("GET", url)) is None


def test_header_form_is_recognised() -> None:
    request = to_http("GET", f"{ENDPOINT}/b/k", {"Authorization": "AWS AKIDEXAMPLE:c2lnbmF0dXJl"})
    info = parse_sigv2(request)
    assert info == SigV2Signature(AKID, "c2lnbmF0dXJl", presigned=False)


@pytest.mark.parametrize(
    "extra",
    [
        {"headers": {"Authorization": "AWS AKIDEXAMPLE:c2lnbmF0dXJl"}},
        {"query": "&X-Amz-Credential=x%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"},
    ],
)
def test_only_one_auth_mechanism(extra: dict[str, object]) -> None:
    url = presign("get_object", {"Bucket": "bucket", "Key": "k"}) + str(extra.get("query", ""))
    request = to_http("GET", url, extra.get("headers"))  # type: ignore[arg-type]
    with pytest.raises(SigV2Error) as caught:
        parse_sigv2(request)
    assert caught.value.kind == "malformed"
    assert "Only one auth mechanism" in caught.value.message


# --------------------------------------------------------------------------- the authenticator


class FakeKeys:
    def __init__(self) -> None:
        principal = Principal(
            account_id="111122223333",
            arn="arn:aws:iam::111122223333:user/alice",
            user_id="AIDAALICE",
            type="IAMUser",
            access_key_id=AKID,
        )
        self.key = AccessKey(AKID, SECRET, principal)

    def lookup(self, access_key_id: str) -> AccessKey | None:
        return self.key if access_key_id == AKID else None


def authenticate(request: HttpRequest, *, mode: str = "sigv4", family: str = "s3") -> object:
    authenticator = Authenticator(FakeKeys(), mode=mode, default_region="eu-west-3")  # type: ignore[arg-type]
    return authenticator.authenticate(
        request, parse_sigv2(request), family=family, allows_anonymous=False
    )


def service_error(request: HttpRequest, **kwargs: object) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        authenticate(request, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_authenticated_identity_is_the_keys_principal_in_the_default_region() -> None:
    identity = authenticate(hmacv1_signed("GET", "/bucket/key"))
    assert identity.principal.arn == "arn:aws:iam::111122223333:user/alice"  # type: ignore[attr-defined]
    assert identity.region == "eu-west-3"  # type: ignore[attr-defined]
    assert identity.signature is None  # type: ignore[attr-defined]


def test_authenticator_errors_are_s3s() -> None:
    expired = hmacv1_signed("GET", "/bucket/key", expires=-10)
    error = service_error(expired)
    assert (error.code, error.status, error.message) == ("AccessDenied", 403, "Request has expired")
    bad = hmacv1_signed("GET", "/bucket/key", credentials=Credentials(AKID, "wrong"))
    error = service_error(bad)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.fields["StringToSign"].startswith("GET\n")
    unknown = hmacv1_signed("GET", "/bucket/key", credentials=Credentials("AKIDUNKNOWN", "x"))
    error = service_error(unknown)
    assert (error.code, error.status) == ("InvalidAccessKeyId", 403)
    no_expiry = with_query(hmacv1_signed("GET", "/bucket/key"), "Expires", None)
    assert service_error(no_expiry).code == "AccessDenied"


def test_header_form_is_refused_as_s3_refuses_it_where_only_sigv4_is_accepted() -> None:
    request = to_http("GET", f"{ENDPOINT}/b/k", {"Authorization": f"AWS {AKID}:c2lnbmF0dXJl"})
    error = service_error(request)
    assert (error.code, error.status) == ("InvalidRequest", 400)
    assert "Please use AWS4-HMAC-SHA256." in error.message


def test_auth_any_accepts_sigv2_without_checking_it() -> None:
    stale = hmacv1_signed("GET", "/bucket/key", credentials=Credentials("123456789012", "x"))
    identity = authenticate(with_query(stale, "Signature", "AAAA"), mode="any")
    assert identity.principal.account_id == "123456789012"  # type: ignore[attr-defined]
    header = to_http("GET", f"{ENDPOINT}/b/k", {"Authorization": f"AWS {AKID}:c2lnbmF0dXJl"})
    identity = authenticate(header, mode="any")
    assert identity.principal.arn == "arn:aws:iam::111122223333:user/alice"  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["sigv4", "any"])
def test_sigv2_is_only_for_s3(mode: str) -> None:
    error = service_error(hmacv1_signed("GET", "/"), mode=mode, family="json")
    assert error.code == "IncompleteSignatureException"
    assert "only accepted by S3" in error.message
