"""Who signed a request: SigV4 verification against the stored access keys (and, for S3 only,
SigV2 presigned URLs, which boto3 makes by default in us-east-1).

Errors use each service family's own codes: query services say `InvalidClientTokenId` and
`SignatureDoesNotMatch`, JSON services `UnrecognizedClientException` and
`InvalidSignatureException`, S3 `InvalidAccessKeyId` and `SignatureDoesNotMatch`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from squall.core.config import DEFAULT_ACCOUNT
from squall.core.context import ANONYMOUS, Principal
from squall.core.errors import ServiceError
from squall.core.http import HttpRequest
from squall.services.iam.keys import AccessKey, AccessKeys, root_principal

from .sigv2 import SigV2Error, SigV2Signature, verify_presigned
from .sigv4 import SignatureInfo, SigV4Error, verify

log = logging.getLogger(__name__)

_INVALID_TOKEN = "The security token included in the request is invalid."
_SIGV4_ONLY = (
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
)


@dataclass(frozen=True, slots=True)
class Identity:
    principal: Principal
    region: str
    signature: SignatureInfo | None
    secret_key: str | None = None


class Authenticator:
    def __init__(self, keys: AccessKeys, *, mode: str, default_region: str) -> None:
        self.keys = keys
        self.mode = mode
        self.default_region = default_region

    def authenticate(
        self,
        request: HttpRequest,
        signature: SignatureInfo | SigV2Signature | None,
        *,
        family: str,
        allows_anonymous: bool,
        signing_name: str = "",
        check_payload: bool = True,
        host_bucket: str | None = None,
    ) -> Identity:
        """The caller of a request, or the family's 4xx error. `family`: query, json or s3.
        `host_bucket`: the bucket a virtual-host-style S3 request names in its Host (SigV2
        signs it as part of the path)."""
        if signature is None:
            if allows_anonymous:
                return Identity(ANONYMOUS, self.default_region, None)
            raise _missing(family)
        if isinstance(signature, SigV2Signature):
            return self._authenticate_v2(request, signature, family, host_bucket)
        if "host" not in signature.signed_headers:
            raise rejected(
                family,
                SigV4Error(
                    "malformed", "'Host' must be a 'SignedHeader' in the AWS Authorization."
                ),
                presigned=signature.presigned,
            )
        if signing_name and signature.service != signing_name:
            raise rejected(
                family,
                SigV4Error(
                    "mismatch", f"Credential should be scoped to correct service: '{signing_name}'."
                ),
                presigned=signature.presigned,
            )
        key = self.keys.lookup(signature.access_key_id)
        if self.mode == "any":
            principal = _any_principal(key, signature.access_key_id)
            return Identity(principal, signature.region, signature)
        if key is None:
            raise _unknown_key(family, signature.access_key_id)
        try:
            verify(
                request,
                signature,
                key.secret_access_key,
                now=datetime.now(UTC),
                check_payload=check_payload,
            )
        except SigV4Error as exc:
            raise rejected(family, exc, presigned=signature.presigned) from None
        return Identity(key.principal, signature.region, signature, key.secret_access_key)

    def _authenticate_v2(
        self, request: HttpRequest, signature: SigV2Signature, family: str, bucket: str | None
    ) -> Identity:
        """SigV2: presigned S3 URLs are verified (or, with `--auth any`, accepted like SigV4
        requests); the Authorization header form is refused as S3 refuses it where only SigV4
        is accepted, unless signatures are not checked at all."""
        if family != "s3":
            raise rejected(
                family,
                SigV4Error(
                    "malformed",
                    "Signature Version 2 is only accepted by S3; please use AWS4-HMAC-SHA256.",
                ),
            )
        if not signature.presigned and self.mode != "any":
            raise ServiceError("InvalidRequest", _SIGV4_ONLY, status=400)
        key = self.keys.lookup(signature.access_key_id)
        if self.mode == "any":
            principal = _any_principal(key, signature.access_key_id)
            return Identity(principal, self.default_region, None)
        if key is None:
            raise _unknown_key(family, signature.access_key_id)
        try:
            verify_presigned(
                request, signature, key.secret_access_key, now=datetime.now(UTC), bucket=bucket
            )
        except SigV2Error as exc:
            code = "SignatureDoesNotMatch" if exc.kind == "mismatch" else "AccessDenied"
            raise ServiceError(code, exc.message, status=403, fields=exc.fields) from None
        return Identity(key.principal, self.default_region, None)


def _any_principal(key: AccessKey | None, access_key_id: str) -> Principal:
    """With `--auth any`: the key's principal, or the root of the account the key id names."""
    return key.principal if key else root_principal(_account_for(access_key_id), access_key_id)


def _account_for(access_key_id: str) -> str:
    """With `--auth any`, a 12-digit access key id names its account, as LocalStack users expect."""
    return (
        access_key_id if access_key_id.isdigit() and len(access_key_id) == 12 else DEFAULT_ACCOUNT
    )


def _missing(family: str) -> ServiceError:
    if family == "s3":
        return ServiceError("AccessDenied", "Access Denied", status=403)
    if family == "query":
        return ServiceError(
            "MissingAuthenticationToken", "Request is missing Authentication Token", status=403
        )
    return ServiceError(
        "MissingAuthenticationTokenException", "Missing Authentication Token", status=403
    )


def _unknown_key(family: str, access_key_id: str) -> ServiceError:
    if family == "s3":
        return ServiceError(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            status=403,
            fields={"AWSAccessKeyId": access_key_id},
        )
    if family == "query":
        return ServiceError("InvalidClientTokenId", _INVALID_TOKEN, status=403)
    return ServiceError("UnrecognizedClientException", _INVALID_TOKEN, status=403)


def rejected(family: str, error: SigV4Error, *, presigned: bool = False) -> ServiceError:
    kind, message = error.kind, error.message
    if kind == "payload-mismatch":
        return ServiceError("XAmzContentSHA256Mismatch", message, status=400)
    if family == "s3":
        malformed = (
            "AuthorizationQueryParametersError" if presigned else "AuthorizationHeaderMalformed"
        )
        codes = {
            "malformed": (malformed, 400),
            "skew": ("RequestTimeTooSkewed", 403),
            "expired": ("AccessDenied", 403),
        }
        code, status = codes.get(kind, ("SignatureDoesNotMatch", 403))
        return ServiceError(code, message, status=status)
    if family == "query":
        code = "IncompleteSignature" if kind == "malformed" else "SignatureDoesNotMatch"
        return ServiceError(code, message, status=403)
    code = "IncompleteSignatureException" if kind == "malformed" else "InvalidSignatureException"
    return ServiceError(code, message, status=403)


def family_of(service_name: str, protocol: str) -> str:
    if service_name == "s3":
        return "s3"
    return "query" if protocol in ("query", "rest-xml") else "json"
