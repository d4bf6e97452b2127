"""Server-side verification of AWS Signature Version 4 (header and presigned-URL forms).

`parse_signature` pulls the signature material out of a request, `verify` recomputes the
signature with the caller's secret key and raises `SigV4Error` when anything is off. The
canonical request is rebuilt the way botocore builds it; where SDKs differ (URI encoding for
S3 versus other services, "+" in query strings, payload hash of presigned URLs) every plausible
variant is tried, cheapest and most likely first, and the request is accepted on any match.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from hashlib import sha256
from urllib.parse import quote, quote_from_bytes, unquote, unquote_to_bytes

from squall.core.http import HttpRequest

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "ChunkSigner",
    "SigV4Error",
    "SignatureInfo",
    "parse_signature",
    "require_signature",
    "seed_signature_context",
    "signing_key",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOADS = frozenset(
    {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
)
_LITERAL_PAYLOADS = STREAMING_PAYLOADS | {UNSIGNED_PAYLOAD}
_MAX_EXPIRES = 604800
_QUERY_SAFE = "-_.~"

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_SCOPE_DATE = re.compile(r"\d{8}", re.ASCII)

_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_PRESIGN_REQUIRED = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
)
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
_V2_PARAMS = frozenset({"AWSAccessKeyId", "Signature"})


class SigV4Error(Exception):
    """Why a request's signature was rejected.

    `kind` is one of "missing", "malformed", "mismatch", "skew", "expired" and
    "payload-mismatch"; `message` is AWS-like text for the client.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"SigV4Error({self.kind!r}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """The signature material of one request, as parsed by `parse_signature`."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: datetime
    presigned: bool
    expires: int | None
    content_sha256: str | None
    security_token: str | None

    @property
    def scope(self) -> str:
        """The credential scope without the access key: date/region/service/aws4_request."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"

    @property
    def amz_date_text(self) -> str:
        """The request timestamp in the basic ISO 8601 form used in the string to sign."""
        return _timestamp(self.amz_date)


@dataclass(frozen=True, slots=True)
class ChunkSigner:
    """Computes the chained signatures of an `aws-chunked` body signed with SigV4.

    `seed_signature` is the request's own signature; each chunk is signed over the previous
    chunk's signature, and the trailer chunk over the final (empty) chunk's signature.
    """

    key: bytes
    amz_date: str
    scope: str
    seed_signature: str

    def chunk_signature(self, previous: str, chunk_sha256: str) -> str:
        """The signature of a data chunk whose sha256 hex digest is `chunk_sha256`."""
        text = (
            f"AWS4-HMAC-SHA256-PAYLOAD\n{self.amz_date}\n{self.scope}\n"
            f"{previous}\n{EMPTY_SHA256}\n{chunk_sha256}"
        )
        return hmac.new(self.key, text.encode(), sha256).hexdigest()

    def trailer_signature(self, previous: str, trailer_sha256: str) -> str:
        """The signature of the trailer chunk whose canonical text hashes to `trailer_sha256`."""
        text = (
            f"AWS4-HMAC-SHA256-TRAILER\n{self.amz_date}\n{self.scope}\n{previous}\n{trailer_sha256}"
        )
        return hmac.new(self.key, text.encode(), sha256).hexdigest()


@lru_cache(maxsize=1024)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key for one secret and credential scope (cached)."""
    key = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), sha256).digest()
    key = hmac.new(key, region.encode(), sha256).digest()
    key = hmac.new(key, service.encode(), sha256).digest()
    return hmac.new(key, b"aws4_request", sha256).digest()


def seed_signature_context(info: SignatureInfo, secret_key: str) -> ChunkSigner:
    """The chunk signer for an `aws-chunked` body of a request already verified with `info`."""
    key = signing_key(secret_key, info.date, info.region, info.service)
    return ChunkSigner(key, info.amz_date_text, info.scope, info.signature)


# --------------------------------------------------------------------------- parsing


def parse_signature(request: HttpRequest) -> SignatureInfo | None:
    """Extract the SigV4 material of `request`, or None when it carries no signature at all.

    Raises `SigV4Error("malformed")` when an Authorization header or X-Amz-* query
    authentication is present but unusable, including other signature algorithms.
    """
    authorization = request.headers.get("authorization")
    params = _auth_query_params(request.query_string)
    presigned = any(name in params for name in _PRESIGN_PARAMS)
    if authorization is not None:
        if presigned:
            raise SigV4Error(
                "malformed",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be "
                "specified",
            )
        return _parse_header_auth(request, authorization)
    if presigned:
        return _parse_query_auth(request, params)
    if "AWSAccessKeyId" in params and "Signature" in params:
        raise SigV4Error(
            "malformed",
            "Signature Version 2 query authentication is not supported; "
            "please use AWS4-HMAC-SHA256.",
        )
    return None


def require_signature(request: HttpRequest) -> SignatureInfo:
    """Like `parse_signature`, but an unsigned request raises `SigV4Error("missing")`."""
    info = parse_signature(request)
    if info is None:
        raise SigV4Error("missing", "Request is missing Authentication Token")
    return info


def _auth_query_params(query_string: str) -> dict[str, str]:
    """The first value of each authentication-related query parameter (decoded)."""
    if not query_string or ("X-Amz-" not in query_string and "AWSAccessKeyId" not in query_string):
        return {}
    params: dict[str, str] = {}
    for part in query_string.split("&"):
        key, _, value = part.partition("=")
        name = unquote(key)
        if name not in params and (name.startswith("X-Amz-") or name in _V2_PARAMS):
            params[name] = unquote(value)
    return params


def _parse_header_auth(request: HttpRequest, authorization: str) -> SignatureInfo:
    algorithm, _, rest = authorization.strip().partition(" ")
    _check_algorithm(algorithm)
    fields = _auth_fields(rest)
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if name not in fields]
    if missing:
        required = " ".join(
            f"Authorization header requires '{name}' parameter." for name in missing
        )
        raise SigV4Error("malformed", f"{required} Authorization={authorization}")
    access_key, date, region, service = _parse_credential(fields["Credential"])
    amz_date = _header_date(request, authorization)
    _check_scope_date(date, amz_date)
    return SignatureInfo(
        access_key_id=access_key,
        date=date,
        region=region,
        service=service,
        signed_headers=_parse_signed_headers(fields["SignedHeaders"]),
        signature=_parse_hex_signature(fields["Signature"]),
        amz_date=amz_date,
        presigned=False,
        expires=None,
        content_sha256=_content_sha256(request.headers.get("x-amz-content-sha256")),
        security_token=request.headers.get("x-amz-security-token"),
    )


def _check_algorithm(algorithm: str) -> None:
    if algorithm == ALGORITHM:
        return
    if algorithm == "AWS":
        detail = "Signature Version 2 (AWS access-key:signature) is not supported"
    elif algorithm.startswith("AWS4-ECDSA"):
        detail = f"Signature Version 4A ({algorithm}) is not supported"
    elif algorithm:
        detail = f"Unsupported authorization type {algorithm!r}"
    else:
        detail = "Empty authorization header"
    raise SigV4Error("malformed", f"{detail}; please use {ALGORITHM}.")


def _auth_fields(rest: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if not name:
            continue
        if not sep:
            raise SigV4Error(
                "malformed",
                f"Authorization header requires every component to be a key=value pair, "
                f"got {name!r}.",
            )
        fields.setdefault(name, value.strip())
    return fields


def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise SigV4Error(
            "malformed",
            f"Credential should be of the form "
            f"<access-key>/<date>/<region>/<service>/aws4_request, got {credential!r}.",
        )
    access_key, date, region, service, terminator = parts
    if terminator != "aws4_request":
        raise SigV4Error(
            "malformed",
            f"Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{terminator}'.",
        )
    if not _SCOPE_DATE.fullmatch(date):
        raise SigV4Error("malformed", f"Invalid credential date {date!r}; expected YYYYMMDD.")
    return access_key, date, region, service


def _parse_signed_headers(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(";"))
    if not all(names):
        raise SigV4Error("malformed", f"Invalid SignedHeaders list {text!r}.")
    return names


def _parse_hex_signature(text: str) -> str:
    if not _HEX64.fullmatch(text):
        raise SigV4Error("malformed", "The signature must be 64 hexadecimal characters.")
    return text.lower()


def _parse_amz_date(text: str) -> datetime:
    if _AMZ_DATE.fullmatch(text):
        try:
            return datetime(
                int(text[0:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[9:11]),
                int(text[11:13]),
                int(text[13:15]),
                tzinfo=UTC,
            )
        except ValueError:
            pass
    raise SigV4Error(
        "malformed",
        f"X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\", got {text!r}.",
    )


def _header_date(request: HttpRequest, authorization: str) -> datetime:
    amz_date = request.headers.get("x-amz-date")
    if amz_date is not None:
        return _parse_amz_date(amz_date.strip())
    http_date = request.headers.get("date")
    if http_date is None:
        raise SigV4Error(
            "malformed",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
            f"header. Authorization={authorization}",
        )
    try:
        parsed = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        raise SigV4Error("malformed", f"Invalid Date header {http_date!r}.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _check_scope_date(date: str, amz_date: datetime) -> None:
    expected = f"{amz_date.year:04d}{amz_date.month:02d}{amz_date.day:02d}"
    if date != expected:
        raise SigV4Error(
            "malformed",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{expected}', from '{_timestamp(amz_date)}'.",
        )


def _content_sha256(value: str | None) -> str | None:
    if value is None or value in _LITERAL_PAYLOADS or _HEX64.fullmatch(value):
        return value
    raise SigV4Error(
        "malformed",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
    )


def _parse_query_auth(request: HttpRequest, params: dict[str, str]) -> SignatureInfo:
    required = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date")
    if any(name not in params for name in required) or "X-Amz-SignedHeaders" not in params:
        raise SigV4Error("malformed", _PRESIGN_REQUIRED)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise SigV4Error("malformed", f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    access_key, date, region, service = _parse_credential(params["X-Amz-Credential"])
    amz_date = _parse_amz_date(params["X-Amz-Date"])
    _check_scope_date(date, amz_date)
    content_sha256 = request.headers.get("x-amz-content-sha256")
    if content_sha256 is None:
        content_sha256 = params.get("X-Amz-Content-Sha256")
    return SignatureInfo(
        access_key_id=access_key,
        date=date,
        region=region,
        service=service,
        signed_headers=_parse_signed_headers(params["X-Amz-SignedHeaders"]),
        signature=_parse_hex_signature(params["X-Amz-Signature"]),
        amz_date=amz_date,
        presigned=True,
        expires=_parse_expires(params.get("X-Amz-Expires")),
        content_sha256=_content_sha256(content_sha256),
        security_token=params.get("X-Amz-Security-Token"),
    )


def _parse_expires(text: str | None) -> int:
    if text is None:
        raise SigV4Error("malformed", _PRESIGN_REQUIRED)
    if not text.isascii() or not text.isdigit():
        raise SigV4Error("malformed", f"X-Amz-Expires should be a number, got {text!r}.")
    expires = int(text)
    if expires < 1:
        raise SigV4Error("malformed", "X-Amz-Expires must be non-negative and non-zero.")
    if expires > _MAX_EXPIRES:
        raise SigV4Error(
            "malformed",
            f"X-Amz-Expires must be less than a week (in seconds) that is {_MAX_EXPIRES}",
        )
    return expires


# --------------------------------------------------------------------------- verification


def verify(
    request: HttpRequest,
    info: SignatureInfo,
    secret_key: str,
    *,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
    check_payload: bool = True,
) -> None:
    """Check `request`'s signature `info` against `secret_key`; raise `SigV4Error` if invalid.

    Time checks come first ("skew", "expired"), then the signature ("mismatch"), then, for a
    hex x-amz-content-sha256 header on a body that is not aws-chunked, the body hash
    ("payload-mismatch"). Pass `check_payload=False` when the body is streamed and will be
    hashed by the caller.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    _check_time(info, now, max_skew)
    headers_block = _canonical_headers(request, info.signed_headers)
    key = signing_key(secret_key, info.date, info.region, info.service)
    prefix = f"{ALGORITHM}\n{info.amz_date_text}\n{info.scope}\n"
    method = request.method.upper()
    signed = ";".join(info.signed_headers)
    body_hash = _BodyHash(request.body)
    expected = info.signature.encode()
    for uri in _uri_variants(request.raw_path, info.service):
        for query in _query_variants(request.query_string, info.presigned):
            for payload in _payload_variants(info, body_hash):
                canonical = f"{method}\n{uri}\n{query}\n{headers_block}\n{signed}\n{payload}"
                digest = sha256(canonical.encode()).hexdigest()
                computed = hmac.new(key, (prefix + digest).encode(), sha256).hexdigest()
                if hmac.compare_digest(computed.encode(), expected):
                    if check_payload:
                        _check_payload(request, info, body_hash)
                    return
    raise SigV4Error("mismatch", _MISMATCH_MESSAGE)


def _timestamp(moment: datetime) -> str:
    """Basic ISO 8601 UTC form, e.g. 20240101T000000Z."""
    m = moment.astimezone(UTC)
    return f"{m.year:04d}{m.month:02d}{m.day:02d}T{m.hour:02d}{m.minute:02d}{m.second:02d}Z"


def _check_time(info: SignatureInfo, now: datetime, max_skew: timedelta) -> None:
    minutes = f"{int(max_skew.total_seconds() // 60)} min."
    if info.amz_date - now > max_skew:
        raise SigV4Error(
            "skew",
            f"Signature not yet current: {_timestamp(info.amz_date)} is still later than "
            f"{_timestamp(now + max_skew)} ({_timestamp(now)} + {minutes})",
        )
    if info.presigned:
        if now > info.amz_date + timedelta(seconds=info.expires or 0):
            raise SigV4Error("expired", "Request has expired")
        return
    if now - info.amz_date > max_skew:
        raise SigV4Error(
            "skew",
            f"Signature expired: {_timestamp(info.amz_date)} is now earlier than "
            f"{_timestamp(now - max_skew)} ({_timestamp(now)} - {minutes})",
        )


def _canonical_headers(request: HttpRequest, names: tuple[str, ...]) -> str:
    """One "name:value\\n" line per signed header, values trimmed with whitespace collapsed."""
    lines = []
    headers = request.headers
    for name in names:
        value = headers.get(name)
        if value is None:
            raise SigV4Error("mismatch", f"{_MISMATCH_MESSAGE} (signed header {name!r} is missing)")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    return "".join(lines)


def _uri_variants(raw_path: str, service: str) -> Iterator[str]:
    """The service's expected canonical URI first, then the other SDK conventions."""
    raw = raw_path or "/"
    double = quote(_remove_dot_segments(raw), safe="/~")
    seen = {raw, double}
    if service == "s3":
        # S3 keys are taken literally: "a/../b" and "a//b" name other objects than "b", so a
        # signature is only good for the path exactly as signed (raw, or single-encoded)
        yield raw
        single = quote_from_bytes(unquote_to_bytes(raw), safe="/~")
        if single != raw:
            yield single
        return
    else:
        yield double
        if raw != double:
            yield raw
    single = quote_from_bytes(unquote_to_bytes(raw), safe="/~")
    if single not in seen:
        yield single


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal that also drops empty segments, as AWS SDKs do."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and segments else ""
    return lead + "/".join(segments) + trail


def _query_variants(query_string: str, presigned: bool) -> Iterator[str]:
    """The AWS-canonical query first; then "+" read as a space; then botocore's raw sort."""
    if not query_string:
        yield ""
        return
    parts = [part.partition("=") for part in query_string.split("&")]
    if presigned:
        parts = [p for p in parts if unquote(p[0]) != "X-Amz-Signature"]
    primary = _encode_query(parts, plus_is_space=False)
    yield primary
    seen = {primary}
    if "+" in query_string:
        spaced = _encode_query(parts, plus_is_space=True)
        if spaced not in seen:
            seen.add(spaced)
            yield spaced
    raw = "&".join(f"{k}={v}" for k, v in sorted((p[0], p[2]) for p in parts))
    if raw not in seen:
        yield raw


def _encode_query(parts: list[tuple[str, str, str]], *, plus_is_space: bool) -> str:
    pairs = []
    for key, _, value in parts:
        if not key and not value:
            continue
        if plus_is_space:
            pairs.append((_aws_quote(key.replace("+", " ")), _aws_quote(value.replace("+", " "))))
        else:
            pairs.append((_aws_quote(key), _aws_quote(value)))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def _aws_quote(text: str) -> str:
    """Decode any percent-escapes, then percent-encode everything but A-Za-z0-9-_.~ ."""
    if "%" in text:
        return quote_from_bytes(unquote_to_bytes(text), safe=_QUERY_SAFE)
    return quote(text, safe=_QUERY_SAFE)


class _BodyHash:
    """The body's sha256 hex digest, computed at most once and only when needed."""

    __slots__ = ("_body", "_hex")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._hex: str | None = None

    @property
    def hex(self) -> str:
        if self._hex is None:
            self._hex = sha256(self._body).hexdigest() if self._body else EMPTY_SHA256
        return self._hex


def _payload_variants(info: SignatureInfo, body_hash: _BodyHash) -> Iterator[str]:
    if not info.presigned:
        yield info.content_sha256 if info.content_sha256 is not None else body_hash.hex
        return
    if info.content_sha256 is not None:
        yield info.content_sha256
        return
    # S3 presigned URLs sign UNSIGNED-PAYLOAD; botocore's generic presigner hashes the body.
    if info.service == "s3":
        yield UNSIGNED_PAYLOAD
        yield body_hash.hex
    else:
        yield body_hash.hex
        yield UNSIGNED_PAYLOAD


def _check_payload(request: HttpRequest, info: SignatureInfo, body_hash: _BodyHash) -> None:
    declared = info.content_sha256
    if declared is None or declared in _LITERAL_PAYLOADS:
        return
    # a hex hash always covers the body as received, aws-chunked framing included
    if not hmac.compare_digest(declared.lower(), body_hash.hex):
        raise SigV4Error(
            "payload-mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
