"""The STS service (`sts`, query protocol; also JSON as AWS accepts it)."""

from __future__ import annotations

from squall.core.context import RequestContext
from squall.services.base import Request, Response, Service, operation


class StsService(Service):
    name = "sts"
    extra_protocols = ("json",)
    json_target_prefix = "AWSSecurityTokenServiceV20110615"

    @operation("GetCallerIdentity")
    def get_caller_identity(self, ctx: RequestContext, request: Request) -> Response:
        principal = ctx.principal
        return {"UserId": principal.user_id, "Account": principal.account_id, "Arn": principal.arn}
