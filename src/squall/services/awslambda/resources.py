"""A function's settings around its versions: tags, concurrency (reserved and provisioned),
asynchronous invocation settings, and its resource-based policy."""

from __future__ import annotations

import datetime
import re
import time
from typing import Any

import orjson

from squall.core.context import RequestContext
from squall.core.errors import ServiceError
from squall.services.base import Request, Response, operation

from .core import LambdaCore, paginate
from .errors import check_revision, invalid, not_found
from .names import LATEST, FunctionRef, parse_function
from .policy import add_statement, new_statement, remove_statement
from .registry import Function, new_revision, timestamp

DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_EVENT_AGE_S = 21600
_DESTINATION = re.compile(r"^arn:aws[a-zA-Z-]*:(lambda|sqs|sns|events|s3):[a-z0-9-]*:\d{12}:.+$")


class ResourcesApi(LambdaCore):
    # ------------------------------------------------------------------ tags

    def _tagged(self, ctx: RequestContext, resource: str) -> Function:
        ref = parse_function(resource, ctx.account_id, ctx.region)
        if ref.qualifier:
            raise invalid("Tags are supported only on the function, not on a version or alias.")
        return self.function_of(ref)

    @operation("TagResource")
    def tag_resource(self, ctx: RequestContext, request: Request) -> Response:
        function = self._tagged(ctx, request["Resource"])
        tags = {**function.tags, **request["Tags"]}
        if len(tags) > 50:
            raise invalid("Number of tags exceeds resource tag limit.")
        function.tags = tags
        self.registry.save(function)
        return {}

    @operation("UntagResource")
    def untag_resource(self, ctx: RequestContext, request: Request) -> Response:
        function = self._tagged(ctx, request["Resource"])
        for key in request["TagKeys"]:
            function.tags.pop(key, None)
        self.registry.save(function)
        return {}

    @operation("ListTags")
    def list_tags(self, ctx: RequestContext, request: Request) -> Response:
        return {"Tags": dict(self._tagged(ctx, request["Resource"]).tags)}

    # ------------------------------------------------------------------ reserved concurrency

    @operation("PutFunctionConcurrency")
    def put_function_concurrency(self, ctx: RequestContext, request: Request) -> Response:
        function = self.function_of(self.ref_of(ctx, request, qualified=False))
        count = request["ReservedConcurrentExecutions"]
        if count > self.limiter.available_for_reservation(function.arn):
            raise invalid(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                "UnreservedConcurrentExecution below its minimum value of "
                f"[{self.limiter.min_unreserved}]."
            )
        function.reserved = count
        self.registry.save(function)
        self.limiter.set_reserved(function.arn, count)
        return {"ReservedConcurrentExecutions": count}

    @operation("GetFunctionConcurrency")
    def get_function_concurrency(self, ctx: RequestContext, request: Request) -> Response:
        function = self.function_of(self.ref_of(ctx, request, qualified=False))
        if function.reserved is None:
            return {}
        return {"ReservedConcurrentExecutions": function.reserved}

    @operation("DeleteFunctionConcurrency")
    def delete_function_concurrency(self, ctx: RequestContext, request: Request) -> Response:
        function = self.function_of(self.ref_of(ctx, request, qualified=False))
        function.reserved = None
        self.registry.save(function)
        self.limiter.set_reserved(function.arn, None)
        return {}

    # ------------------------------------------------------------------ provisioned concurrency

    def _provisioned_target(self, ctx: RequestContext, request: Request) -> tuple[Function, str]:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        qualifier = ref.qualifier or LATEST
        if qualifier == LATEST:
            raise invalid(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        self.version_of(function, ref, qualifier)
        return function, qualifier

    @operation("PutProvisionedConcurrencyConfig")
    def put_provisioned_concurrency_config(self, ctx: RequestContext, request: Request) -> Response:
        function, qualifier = self._provisioned_target(ctx, request)
        requested = request["ProvisionedConcurrentExecutions"]
        limit = function.reserved if function.reserved is not None else self.limiter.account_limit
        if requested > limit:
            raise invalid(
                f"Requested Provisioned Concurrency ({requested}) should not be greater than the "
                f"function's concurrency limit ({limit})."
            )
        config: dict[str, Any] = {
            "RequestedProvisionedConcurrentExecutions": requested,
            "Status": "IN_PROGRESS",
            "LastModified": timestamp(),
        }
        previous = function.provisioned.get(qualifier)
        if previous is not None and previous.get("_key"):
            config["_key"] = previous["_key"]  # the new task moves or resizes that floor
        function.provisioned[qualifier] = config
        self.registry.save(function)
        self.provision(function, qualifier)
        return self._provisioned(function, qualifier)

    @operation("GetProvisionedConcurrencyConfig")
    def get_provisioned_concurrency_config(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        if (ref.qualifier or LATEST) not in function.provisioned:
            raise _no_provisioned()
        return self._provisioned(function, ref.qualifier or LATEST)

    @operation("DeleteProvisionedConcurrencyConfig")
    async def delete_provisioned_concurrency_config(
        self, ctx: RequestContext, request: Request
    ) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        qualifier = ref.qualifier or LATEST
        config = function.provisioned.pop(qualifier, None)
        if config is None:
            raise _no_provisioned()
        self.registry.save(function)
        self.unprovision(function, qualifier, config)
        return {}

    @operation("ListProvisionedConcurrencyConfigs")
    def list_provisioned_concurrency_configs(
        self, ctx: RequestContext, request: Request
    ) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        entries = [
            {"FunctionArn": ref.qualified_arn(q), **self._provisioned(function, q)}
            for q in sorted(function.provisioned)
        ]
        page, marker = paginate(entries, request.get("Marker"), request.get("MaxItems"))
        result: Response = {"ProvisionedConcurrencyConfigs": page}
        if marker:
            result["NextMarker"] = marker
        return result

    def _provisioned(self, function: Function, qualifier: str) -> dict[str, Any]:
        config = function.provisioned[qualifier]
        requested = config["RequestedProvisionedConcurrentExecutions"]
        allocated = min(requested, self.provisioned_counts(config))
        status = config.get("Status", "IN_PROGRESS")
        if status == "READY" and allocated < requested:
            status = "IN_PROGRESS"
        result = {
            "RequestedProvisionedConcurrentExecutions": requested,
            "AllocatedProvisionedConcurrentExecutions": allocated,
            "AvailableProvisionedConcurrentExecutions": allocated,
            "Status": status,
            "LastModified": config["LastModified"],
        }
        if config.get("StatusReason"):
            result["StatusReason"] = config["StatusReason"]
        return result

    # ------------------------------------------------------------------ asynchronous settings

    def _event_invoke_target(
        self, ctx: RequestContext, request: Request
    ) -> tuple[Function, FunctionRef, str]:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        qualifier = ref.qualifier or LATEST
        self.version_of(function, ref, qualifier)
        return function, ref, qualifier

    @operation("PutFunctionEventInvokeConfig")
    def put_function_event_invoke_config(self, ctx: RequestContext, request: Request) -> Response:
        function, ref, qualifier = self._event_invoke_target(ctx, request)
        self._check_destinations(function, request)
        config = _event_invoke_settings(request, {})
        function.event_invoke[qualifier] = config
        self.registry.save(function)
        return _event_invoke(ref, qualifier, config)

    @operation("UpdateFunctionEventInvokeConfig")
    def update_function_event_invoke_config(
        self, ctx: RequestContext, request: Request
    ) -> Response:
        function, ref, qualifier = self._event_invoke_target(ctx, request)
        self._check_destinations(function, request)
        config = _event_invoke_settings(request, function.event_invoke.get(qualifier, {}))
        function.event_invoke[qualifier] = config
        self.registry.save(function)
        return _event_invoke(ref, qualifier, config)

    @operation("GetFunctionEventInvokeConfig")
    def get_function_event_invoke_config(self, ctx: RequestContext, request: Request) -> Response:
        function, ref, qualifier = self._event_invoke_target(ctx, request)
        config = function.event_invoke.get(qualifier)
        if config is None:
            raise _no_event_invoke(ref, qualifier)
        return _event_invoke(ref, qualifier, config)

    @operation("DeleteFunctionEventInvokeConfig")
    def delete_function_event_invoke_config(
        self, ctx: RequestContext, request: Request
    ) -> Response:
        function, ref, qualifier = self._event_invoke_target(ctx, request)
        if function.event_invoke.pop(qualifier, None) is None:
            raise _no_event_invoke(ref, qualifier)
        self.registry.save(function)
        return {}

    @operation("ListFunctionEventInvokeConfigs")
    def list_function_event_invoke_configs(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        entries = [
            _event_invoke(ref, q, config) for q, config in sorted(function.event_invoke.items())
        ]
        page, marker = paginate(entries, request.get("Marker"), request.get("MaxItems"))
        result: Response = {"FunctionEventInvokeConfigs": page}
        if marker:
            result["NextMarker"] = marker
        return result

    def _check_destinations(self, function: Function, request: Request) -> None:
        """Settings must say something; a function destination must exist and not be itself."""
        members = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
        if not any(member in request for member in members):
            raise invalid("You must specify at least one of error handling or destination setting.")
        for kind in ("OnSuccess", "OnFailure"):
            target = ((request.get("DestinationConfig") or {}).get(kind) or {}).get("Destination")
            if not target or ":function:" not in target:
                continue
            if not _DESTINATION.match(target):
                raise invalid(f"The destination ARN {target} is invalid.")
            destination = parse_function(target, function.account, function.region)
            if destination.key == function.key:
                raise invalid("You can't specify the function as a destination for itself.")
            if self.registry.function(destination.key) is None:
                raise invalid(f"The destination ARN {target} is invalid.")

    # ------------------------------------------------------------------ resource policy

    @operation("AddPermission")
    def add_permission(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        if ref.qualifier:
            self.version_of(function, ref, ref.qualifier)
        latest = function.latest
        check_revision(request.get("RevisionId"), latest.config["RevisionId"])
        statement = new_statement(ref.qualified_arn(), request)
        qualifier = ref.qualifier or ""
        function.policies[qualifier] = add_statement(function.policies.get(qualifier), statement)
        self._bump_revision(function)
        self.registry.save(function)
        return {"Statement": orjson.dumps(statement).decode()}

    @operation("RemovePermission")
    def remove_permission(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        check_revision(request.get("RevisionId"), function.latest.config["RevisionId"])
        qualifier = ref.qualifier or ""
        remaining = remove_statement(function.policies.get(qualifier), request["StatementId"])
        if remaining is None:
            function.policies.pop(qualifier, None)
        else:
            function.policies[qualifier] = remaining
        self._bump_revision(function)
        self.registry.save(function)
        return {}

    @operation("GetPolicy")
    def get_policy(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        policy = function.policies.get(ref.qualifier or "")
        if policy is None:
            raise not_found("The resource you requested does not exist.")
        return {
            "Policy": orjson.dumps(policy).decode(),
            "RevisionId": function.latest.config["RevisionId"],
        }

    def _bump_revision(self, function: Function) -> None:
        # the policy is part of the function's state: its RevisionId moves with it
        function.latest.config["RevisionId"] = new_revision()


def _no_provisioned() -> ServiceError:
    return ServiceError(
        "ProvisionedConcurrencyConfigNotFoundException",
        "No Provisioned Concurrency Config found for this function",
        status=404,
    )


def _no_event_invoke(ref: FunctionRef, qualifier: str) -> ServiceError:
    return not_found(
        f"The function {ref.qualified_arn(qualifier)} doesn't have an EventInvokeConfig"
    )


def _event_invoke_settings(request: Request, current: dict[str, Any]) -> dict[str, Any]:
    config = dict(current)
    for member in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if member in request:
            config[member] = request[member]
    if "DestinationConfig" in request:
        destinations: dict[str, Any] = dict(config.get("DestinationConfig") or {})
        for kind in ("OnSuccess", "OnFailure"):
            if kind in request["DestinationConfig"]:
                target = (request["DestinationConfig"][kind] or {}).get("Destination")
                if target and not _DESTINATION.match(target):
                    raise invalid(f"The destination ARN {target} is invalid.")
                destinations[kind] = {"Destination": target} if target else {}
        config["DestinationConfig"] = destinations
    config["LastModified"] = time.time()
    return config


def _event_invoke(ref: FunctionRef, qualifier: str, config: dict[str, Any]) -> dict[str, Any]:
    destinations = config.get("DestinationConfig") or {}
    settings = {
        member: config[member]
        for member in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds")
        if member in config
    }
    return {
        "FunctionArn": ref.qualified_arn(qualifier),
        **settings,
        "DestinationConfig": {
            "OnSuccess": destinations.get("OnSuccess") or {},
            "OnFailure": destinations.get("OnFailure") or {},
        },
        "LastModified": datetime.datetime.fromtimestamp(config["LastModified"], datetime.UTC),
    }
