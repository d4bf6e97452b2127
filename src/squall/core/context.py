"""Who is calling, where, and for which request: passed to every operation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller (the `userIdentity` of CloudTrail)."""

    account_id: str
    arn: str
    user_id: str
    type: str  # "Root", "IAMUser", "AssumedRole", "AWSService" or "Anonymous"
    access_key_id: str = ""


ANONYMOUS = Principal(account_id="", arn="", user_id="anonymous", type="Anonymous")


@dataclass(slots=True)
class RequestContext:
    """What an operation knows about the request besides its parameters."""

    request_id: str
    service: str
    operation: str
    region: str
    principal: Principal
    source_ip: str = "127.0.0.1"
    user_agent: str = ""
    endpoint_url: str = "http://127.0.0.1:4566"

    @property
    def account_id(self) -> str:
        return self.principal.account_id
