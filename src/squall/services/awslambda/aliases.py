"""Aliases: named pointers at a version, optionally splitting traffic with a second one."""

from __future__ import annotations

import random
from typing import Any

from squall.core.context import RequestContext
from squall.services.base import Request, Response, operation

from .core import LambdaCore, paginate
from .errors import check_revision, conflict, invalid, not_found
from .names import ALIAS_NAME, LATEST, FunctionRef
from .registry import Function, new_revision


class AliasesApi(LambdaCore):
    @operation("CreateAlias")
    def create_alias(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        name = request["Name"]
        if not ALIAS_NAME.match(name):
            raise invalid(f"Invalid alias name: {name}")
        if name in function.aliases:
            raise conflict(f"Alias already exists: {ref.qualified_arn(name)}")
        alias: dict[str, Any] = {"Name": name, "Description": request.get("Description", "")}
        self._point(function, ref, alias, request["FunctionVersion"], request.get("RoutingConfig"))
        alias["RevisionId"] = new_revision()
        function.aliases[name] = alias
        self.registry.save(function)
        return _render(ref, alias)

    @operation("GetAlias")
    def get_alias(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        return _render(ref, self._alias(self.function_of(ref), ref, request["Name"]))

    @operation("UpdateAlias")
    def update_alias(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        alias = dict(self._alias(function, ref, request["Name"]))
        check_revision(request.get("RevisionId"), alias["RevisionId"])
        if "Description" in request:
            alias["Description"] = request["Description"]
        routing = request.get("RoutingConfig", alias.get("RoutingConfig"))
        self._point(
            function, ref, alias, request.get("FunctionVersion", alias["FunctionVersion"]), routing
        )
        alias["RevisionId"] = new_revision()
        function.aliases[alias["Name"]] = alias
        self.registry.save(function)
        if alias["Name"] in function.provisioned:
            self.provision(function, alias["Name"])  # follow the alias to its version
        return _render(ref, alias)

    @operation("DeleteAlias")
    def delete_alias(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        name = request["Name"]
        if function.aliases.pop(name, None) is not None:
            provisioned = function.provisioned.pop(name, None)
            function.event_invoke.pop(name, None)
            function.policies.pop(name, None)
            self.registry.save(function)
            if provisioned is not None:
                self.unprovision(function, name, provisioned)
        return {}

    @operation("ListAliases")
    def list_aliases(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        wanted = request.get("FunctionVersion")
        aliases = [
            _render(ref, alias)
            for _, alias in sorted(function.aliases.items())
            if wanted is None or alias["FunctionVersion"] == wanted
        ]
        page, marker = paginate(aliases, request.get("Marker"), request.get("MaxItems"))
        result: Response = {"Aliases": page}
        if marker:
            result["NextMarker"] = marker
        return result

    def _alias(self, function: Function, ref: FunctionRef, name: str) -> dict[str, Any]:
        alias = function.aliases.get(name)
        if alias is None:
            raise not_found(f"Cannot find alias arn: {ref.qualified_arn(name)}")
        return alias

    def _point(
        self,
        function: Function,
        ref: FunctionRef,
        alias: dict[str, Any],
        number: str,
        routing: dict[str, Any] | None,
    ) -> None:
        if number not in function.versions:
            raise not_found(f"Function not found: {ref.qualified_arn(number)}")
        weights = (routing or {}).get("AdditionalVersionWeights") or {}
        if len(weights) > 1:
            raise invalid("Number of items in AdditionalVersionWeights cannot be greater than 1")
        for other, weight in weights.items():
            if other not in function.versions or other == LATEST:
                raise invalid(f"Invalid function version {other}.")
            if other == number:
                raise invalid(
                    f"Invalid function version {other}. Function version {other} is already "
                    "included in routing configuration."
                )
            if not 0.0 <= weight <= 1.0:
                raise invalid(f"Invalid weight {weight} for version {other}.")
        if weights and number == LATEST:
            raise invalid("$LATEST is not supported for an alias pointing to more than 1 version")
        alias["FunctionVersion"] = number
        if weights:
            alias["RoutingConfig"] = {"AdditionalVersionWeights": dict(weights)}
        else:
            alias.pop("RoutingConfig", None)


def pick_version(alias: dict[str, Any]) -> str:
    """The version one invocation through `alias` runs: the weighted one with its chance."""
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    draw = random.random()
    for number, weight in weights.items():
        if draw < weight:
            return number
        draw -= weight
    return alias["FunctionVersion"]


def _render(ref: FunctionRef, alias: dict[str, Any]) -> dict[str, Any]:
    return {"AliasArn": ref.qualified_arn(alias["Name"]), **alias}
