"""Server-side verification of S3's Signature Version 2 query-string authentication.

boto3 presigns S3 URLs with SigV2 unless told otherwise (`?AWSAccessKeyId=..&Signature=..&
Expires=..`): `parse_sigv2` recognises such a request, and `verify_presigned` recomputes its
HMAC-SHA1 signature the way botocore's `HmacV1QueryAuth` computes it. The header form
(`Authorization: AWS key:signature`) is recognised too, so that the edge can answer it the way
S3 does where only SigV4 is accepted; squall never verifies it.

What is signed: "VERB\\nContent-MD5\\nContent-Type\\nExpires\\n", the x-amz-* headers (one
"name:value\\n" each, sorted), and the resource: the path with the bucket in it (for a
virtual-host request "/bucket" + path), then the S3 sub-resources of the query. botocore moves
the Content-Type, Content-MD5 and x-amz-* headers it signed into the query string, so a value
missing from the headers is taken from the query.
"""

from __future__ import annotations

import binascii
import hmac
from base64 import b64decode
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha1
from typing import ClassVar
from urllib.parse import quote, quote_from_bytes, unquote, unquote_to_bytes

from squall.core.http import HttpRequest

from .sigv4 import SigV4Error

__all__ = ["SUBRESOURCES", "SigV2Error", "SigV2Signature", "parse_sigv2", "verify_presigned"]

# The query parameters that are part of the signed resource: botocore's HmacV1Auth list, a
# superset of the one in S3's SigV2 documentation.
SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)

_V2_PARAMS = frozenset({"AWSAccessKeyId", "Signature", "Expires", "SignatureVersion"})
_V4_PARAMS = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"})
_CONTENT_HEADERS = frozenset({"content-md5", "content-type"})

_ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)
_REQUIRED = (
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
)
_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


class SigV2Error(SigV4Error):
    """Why a SigV2 presigned request was rejected: `kind` is "malformed", "expired" or
    "mismatch"; `fields` are the extra members of S3's error document."""

    def __init__(self, kind: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(kind, message)
        self.fields = fields or {}


@dataclass(frozen=True, slots=True)
class SigV2Signature:
    """The SigV2 material of one request, as parsed by `parse_sigv2`.

    `presigned` is False for the `Authorization: AWS key:signature` header form. `expires` is
    the Expires parameter as sent (checked by `verify_presigned`); `query_headers` the signed
    headers botocore moved into the query string (x-amz-*, content-type, content-md5; lower-case
    names). SigV2 only ever signs for S3, hence the fixed `service`.
    """

    service: ClassVar[str] = "s3"

    access_key_id: str
    signature: str
    presigned: bool
    expires: str | None = None
    query_headers: dict[str, str] = field(default_factory=dict)


def parse_sigv2(request: HttpRequest) -> SigV2Signature | None:
    """The SigV2 material of `request`, or None when it is not signed with SigV2 for S3.

    A SigV2 query-protocol request (SignatureVersion=2, as old EC2 or SQS SDKs send it) is not
    S3's and is left to `sigv4.parse_signature`, which refuses it. Raises `SigV2Error
    ("malformed")` when SigV2 query authentication is combined with another mechanism.
    """
    authorization = request.headers.get("authorization")
    query = request.query_string
    if "AWSAccessKeyId" not in query or "Signature" not in query:
        if authorization is not None and authorization.startswith("AWS "):
            access_key, _, signature = authorization[4:].strip().partition(":")
            return SigV2Signature(access_key.strip(), signature.strip(), presigned=False)
        return None
    params: dict[str, str] = {}
    query_headers: dict[str, str] = {}
    other_mechanism = authorization is not None
    for part in query.split("&"):
        key, _, value = part.partition("=")
        name = unquote(key)
        if name in _V2_PARAMS:
            params.setdefault(name, unquote(value))
        elif name in _V4_PARAMS:
            other_mechanism = True
        else:
            lowered = name.lower()
            if lowered.startswith("x-amz-") or lowered in _CONTENT_HEADERS:
                query_headers.setdefault(lowered, unquote(value))
    if "AWSAccessKeyId" not in params or "Signature" not in params:
        return None
    if "SignatureVersion" in params:
        return None
    if other_mechanism:
        raise SigV2Error("malformed", _ONE_MECHANISM)
    return SigV2Signature(
        params["AWSAccessKeyId"],
        params["Signature"],
        presigned=True,
        expires=params.get("Expires"),
        query_headers=query_headers,
    )


def verify_presigned(
    request: HttpRequest,
    info: SigV2Signature,
    secret_key: str,
    *,
    now: datetime | None = None,
    bucket: str | None = None,
) -> None:
    """Check the SigV2 presigned `request` against `secret_key`; raise `SigV2Error` if invalid.

    `bucket` is the bucket named by the Host header of a virtual-host-style request (None for
    path style): it is part of the signed resource. The expiry is checked before the signature.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    expires = _check_expires(info.expires, now)
    provided = _decode_signature(info.signature)
    headers = request.headers
    prefix = (
        f"{request.method.upper()}\n"
        f"{_standard(headers, info, 'content-md5')}\n"
        f"{_standard(headers, info, 'content-type')}\n"
        f"{expires}\n"
        f"{_amz_headers(headers, info.query_headers)}"
    )
    key = secret_key.encode()
    first = ""
    for resource in _resources(request, bucket):
        string_to_sign = prefix + resource
        first = first or string_to_sign
        digest = hmac.new(key, string_to_sign.encode(), sha1).digest()
        if provided is not None and hmac.compare_digest(digest, provided):
            return
    raise SigV2Error(
        "mismatch",
        _MISMATCH_MESSAGE,
        {
            "AWSAccessKeyId": info.access_key_id,
            "StringToSign": first,
            "SignatureProvided": info.signature,
        },
    )


def _check_expires(text: str | None, now: datetime) -> str:
    if text is None:
        raise SigV2Error("malformed", _REQUIRED)
    if not text.isascii() or not text.isdigit():
        raise SigV2Error("malformed", f"Invalid date (should be seconds since epoch): {text}")
    if now.timestamp() > int(text):
        expired_at = _iso(datetime.fromtimestamp(int(text), UTC))
        raise SigV2Error(
            "expired", "Request has expired", {"Expires": expired_at, "ServerTime": _iso(now)}
        )
    return text


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode_signature(text: str) -> bytes | None:
    try:
        # a "+" that a form decoder turned into a space is still a "+"
        return b64decode(text.replace(" ", "+"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _standard(headers: dict[str, str], info: SigV2Signature, name: str) -> str:
    """Content-MD5 or Content-Type: the header, else the value botocore moved to the query."""
    value = headers.get(name)
    if value is None:
        value = info.query_headers.get(name, "")
    return value.strip()


def _amz_headers(headers: dict[str, str], query_headers: dict[str, str]) -> str:
    """The x-amz-* lines: headers first, then those only carried in the query string."""
    found = {name: value.strip() for name, value in headers.items() if name.startswith("x-amz-")}
    for name, value in query_headers.items():
        if name.startswith("x-amz-"):
            found.setdefault(name, value.strip())
    return "".join(f"{name}:{found[name]}\n" for name in sorted(found))


def _resources(request: HttpRequest, bucket: str | None) -> list[str]:
    """The canonical resources to try: the path as sent, then single-encoded; for a bucket-level
    request both with and without the trailing "/" (botocore signs "/bucket/")."""
    raw = request.raw_path or "/"
    paths = [raw]
    single = quote_from_bytes(unquote_to_bytes(raw), safe="/~")
    if single != raw:
        paths.append(single)
    subresources = _subresources(request.query_string)
    resources = []
    for path in paths:
        if bucket is not None:
            full = f"/{quote(bucket)}{path}"
            resources.append(full + subresources)
            if path == "/":
                resources.append(full[:-1] + subresources)
        else:
            resources.append(path + subresources)
            if path.count("/") == 1 and len(path) > 1:
                resources.append(f"{path}/{subresources}")
    return resources


def _subresources(query_string: str) -> str:
    """The S3 sub-resources of the query as "?name[=value]&...", sorted by name (stably, as
    botocore sorts), values decoded; "" when there are none."""
    if not query_string:
        return ""
    found: list[tuple[str, str]] = []
    for part in query_string.split("&"):
        name, equals, value = part.partition("=")
        if name in SUBRESOURCES:
            found.append((name, f"{name}={unquote(value)}" if equals else name))
    if not found:
        return ""
    found.sort(key=lambda item: item[0])
    return "?" + "&".join(text for _, text in found)
