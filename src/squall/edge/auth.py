"""Who signed a request: SigV4 verification against the stored access keys.

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
from squall.services.iam.keys import AccessKeys, root_principal

from .sigv4 import SignatureInfo, SigV4Error, verify

log = logging.getLogger(__name__)

_INVALID_TOKEN = "The security token included in the request is invalid."


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
        signature: SignatureInfo | None,
        *,
        family: str,
        allows_anonymous: bool,
        signing_name: str = "",
    ) -> Identity:
        """The caller of a request, or the family's 4xx error. `family`: query, json or s3."""
        if signature is None:
            if allows_anonymous:
                return Identity(ANONYMOUS, self.default_region, None)
            raise _missing(family)
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
            principal = (
                key.principal
                if key
                else root_principal(_account_for(signature.access_key_id), signature.access_key_id)
            )
            return Identity(principal, signature.region, signature)
        if key is None:
            raise _unknown_key(family, signature.access_key_id)
        try:
            verify(request, signature, key.secret_access_key, now=datetime.now(UTC))
        except SigV4Error as exc:
            raise rejected(family, exc, presigned=signature.presigned) from None
        return Identity(key.principal, signature.region, signature, key.secret_access_key)


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
