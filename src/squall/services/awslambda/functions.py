"""Functions and their versions: create, read, list, update, publish, delete."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from squall.core.context import RequestContext
from squall.services.base import Request, Response, operation

from .code import MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES, CodeInfo, check_unzipped_total
from .configuration import (
    DEFAULTS,
    apply_settings,
    check_settings,
    render,
    same_code_and_settings,
)
from .core import LambdaCore, paginate
from .errors import check_revision, conflict, invalid, not_found
from .names import LATEST, parse_layer_version_arn
from .objects import read_package, wants_object
from .registry import Function, Version, new_revision, timestamp

MAX_FUNCTIONS_PAGE = 50


class FunctionsApi(LambdaCore):
    # ------------------------------------------------------------------ create

    @operation("CreateFunction")
    async def create_function(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        if self.registry.function(ref.key) is not None:
            raise conflict(f"Function already exist: {ref.name}")
        check_settings(request)
        if not request.get("Runtime") or not request.get("Handler"):
            raise invalid(
                "Runtime and Handler are mandatory parameters for functions created with "
                "deployment packages."
            )
        code = await self._ingest(ctx, request.get("Code") or {})
        layers = self._layers(request.get("Layers") or [])
        check_unzipped_total([code.unzipped_size, *(info.unzipped_size for info in layers)])
        config: dict[str, Any] = copy.deepcopy(DEFAULTS)
        apply_settings(config, request)
        config.update(
            Version=LATEST,
            CodeSha256=code.sha256_b64,
            CodeSize=code.size,
            LastModified=timestamp(),
            RevisionId=new_revision(),
        )
        version = Version(config=config, code=code.sha256_hex)
        self._set_layers(version, request.get("Layers") or [], layers)
        await self.prepare(version)
        if self.registry.function(ref.key) is not None:  # created meanwhile
            raise conflict(f"Function already exist: {ref.name}")
        function = Function(ref.account, ref.region, ref.name, versions={LATEST: version})
        function.tags = dict(request.get("Tags") or {})
        self.registry.save(function)
        if request.get("Publish"):
            version = self._publish(function, description=None)
            self.registry.save(function)
            return render(function, version)
        return render(function, version)

    async def _ingest(self, ctx: RequestContext, code: dict[str, Any]) -> CodeInfo:
        """The package a `Code` / `Content` member gives (inline or in the object store),
        validated and stored."""
        if code.get("ZipFile"):
            return await asyncio.to_thread(self.code.ingest, code["ZipFile"])
        if wants_object(code):
            data = await read_package(self.objects, ctx.account_id, code)
            return await asyncio.to_thread(self.code.ingest, data, zipped_limit=False)
        if code.get("ImageUri"):
            raise invalid(
                "squall runs .zip deployment packages; container images are not supported."
            )
        raise invalid("Please provide a source for function code.")

    def _layers(self, arns: list[str]) -> list[CodeInfo]:
        infos = []
        for arn in arns:
            account, region, name, number = parse_layer_version_arn(arn)
            layer = self.registry.layers.get((account, region, name))
            version = layer.versions.get(number) if layer else None
            if version is None:
                raise invalid(f"Layer version {arn} does not exist.")
            infos.append(self.code.info(version["_code"]))
        return infos

    def _set_layers(self, version: Version, arns: list[str], infos: list[CodeInfo]) -> None:
        version.layers = [info.sha256_hex for info in infos]
        if arns:
            version.config["Layers"] = [
                {"Arn": arn, "CodeSize": info.size} for arn, info in zip(arns, infos, strict=True)
            ]
        else:
            version.config.pop("Layers", None)

    # ------------------------------------------------------------------ read

    @operation("GetFunction")
    def get_function(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        version = self.version_of(function, ref, ref.qualifier)
        result: Response = {
            "Configuration": render(
                function,
                version,
                qualified=ref.qualifier is not None,
                alias=self.alias_name(function, ref),
            ),
            "Code": {
                "RepositoryType": "S3",
                "Location": self.code_url(ctx.endpoint_url, version.code),
            },
        }
        if function.tags and not ref.qualifier:
            result["Tags"] = dict(function.tags)
        if function.reserved is not None:
            result["Concurrency"] = {"ReservedConcurrentExecutions": function.reserved}
        return result

    @operation("GetFunctionConfiguration")
    def get_function_configuration(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        version = self.version_of(function, ref, ref.qualifier)
        return render(
            function,
            version,
            qualified=ref.qualifier is not None,
            alias=self.alias_name(function, ref),
        )

    @operation("ListFunctions")
    def list_functions(self, ctx: RequestContext, request: Request) -> Response:
        every_version = request.get("FunctionVersion") == "ALL"
        entries: list[dict[str, Any]] = []
        for function in self.registry.in_region(ctx.account_id, ctx.region):
            if every_version:
                entries.append(render(function, function.latest, qualified=True, listing=True))
                entries.extend(render(function, v, listing=True) for v in function.published())
            else:
                entries.append(render(function, function.latest, listing=True))
        # Lambda answers at most 50 functions per call, whatever MaxItems asks for
        max_items = min(request.get("MaxItems") or MAX_FUNCTIONS_PAGE, MAX_FUNCTIONS_PAGE)
        page, marker = paginate(entries, request.get("Marker"), max_items)
        result: Response = {"Functions": page}
        if marker:
            result["NextMarker"] = marker
        return result

    @operation("ListVersionsByFunction")
    def list_versions_by_function(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        entries = [render(function, function.latest, qualified=True, listing=True)]
        entries.extend(render(function, v, listing=True) for v in function.published())
        max_items = min(request.get("MaxItems") or MAX_FUNCTIONS_PAGE, MAX_FUNCTIONS_PAGE)
        page, marker = paginate(entries, request.get("Marker"), max_items)
        result: Response = {"Versions": page}
        if marker:
            result["NextMarker"] = marker
        return result

    @operation("GetAccountSettings")
    def get_account_settings(self, ctx: RequestContext, request: Request) -> Response:
        functions = self.registry.in_region(ctx.account_id, ctx.region)
        total = sum(v.config.get("CodeSize", 0) for f in functions for v in f.versions.values())
        return {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
                "CodeSizeZipped": MAX_ZIPPED_BYTES,
                "ConcurrentExecutions": self.limiter.account_limit,
                "UnreservedConcurrentExecutions": self.limiter.unreserved_limit(
                    ctx.region, ctx.account_id
                ),
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": len(functions)},
        }

    # ------------------------------------------------------------------ update

    @operation("UpdateFunctionConfiguration")
    async def update_function_configuration(
        self, ctx: RequestContext, request: Request
    ) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        latest = function.latest
        check_revision(request.get("RevisionId"), latest.config["RevisionId"])
        check_settings(request)
        updated = Version(config=copy.deepcopy(latest.config), code=latest.code)
        updated.layers = list(latest.layers)
        apply_settings(updated.config, request)
        if "Layers" in request:
            infos = await asyncio.to_thread(self._layers, request["Layers"] or [])
            own = await asyncio.to_thread(self.code.info, latest.code)
            check_unzipped_total([own.unzipped_size, *(i.unzipped_size for i in infos)])
            self._set_layers(updated, request["Layers"] or [], infos)
            await self.prepare(updated)
        return await self._replace_latest(function, latest, updated)

    @operation("UpdateFunctionCode")
    async def update_function_code(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        latest = function.latest
        check_revision(request.get("RevisionId"), latest.config["RevisionId"])
        check_settings({"Architectures": request.get("Architectures")})
        code = await self._ingest(ctx, request)
        layer_infos = [await asyncio.to_thread(self.code.info, h) for h in latest.layers]
        check_unzipped_total([code.unzipped_size, *(i.unzipped_size for i in layer_infos)])
        updated = Version(config=copy.deepcopy(latest.config), code=code.sha256_hex)
        updated.layers = list(latest.layers)
        updated.config.update(CodeSha256=code.sha256_b64, CodeSize=code.size)
        if request.get("Architectures"):
            updated.config["Architectures"] = request["Architectures"]
        if request.get("DryRun"):
            return render(function, updated)
        await self.prepare(updated)
        result = await self._replace_latest(function, latest, updated)
        if request.get("Publish"):
            version = self._publish(function, description=None)
            self.registry.save(function)
            return render(function, version)
        return result

    async def _replace_latest(
        self, function: Function, seen: Version, updated: Version
    ) -> Response:
        """Install `updated` as $LATEST, unless $LATEST changed (or the function went) while
        this update waited for its package: then the caller must retry on the new state."""
        if self.registry.function(function.key) is not function or function.latest is not seen:
            raise conflict(
                "The operation cannot be performed at this time. An update is in progress for "
                f"resource: {function.arn}"
            )
        updated.config["LastModified"] = timestamp()
        updated.config["RevisionId"] = new_revision()
        function.versions[LATEST] = updated
        self.registry.save(function)
        await self.retire(seen)
        return render(function, updated)

    # ------------------------------------------------------------------ versions

    @operation("PublishVersion")
    def publish_version(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request, qualified=False)
        function = self.function_of(ref)
        latest = function.latest
        sha = request.get("CodeSha256")
        if sha and sha != latest.config["CodeSha256"]:
            raise invalid(
                f"CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST "
                f"({latest.config['CodeSha256']}). Please try again with the CodeSHA256 in $LATEST."
            )
        check_revision(request.get("RevisionId"), latest.config["RevisionId"])
        version = self._publish(function, description=request.get("Description"))
        self.registry.save(function)
        return render(function, version)

    def _publish(self, function: Function, description: str | None) -> Version:
        """Snapshot $LATEST as the next version, unless the newest version already is it."""
        latest = function.latest
        published = function.published()
        if published and same_code_and_settings(latest, published[-1]):
            return published[-1]
        number = str(function.next_version)
        function.next_version += 1
        config = copy.deepcopy(latest.config)
        config.update(Version=number, RevisionId=new_revision(), LastModified=timestamp())
        if description is not None:
            config["Description"] = description
        version = Version(config=config, code=latest.code, layers=list(latest.layers))
        function.versions[number] = version
        # publishing changes $LATEST's revision too; its sandboxes stay (same code and settings)
        latest.config["RevisionId"] = new_revision()
        return version

    # ------------------------------------------------------------------ delete

    @operation("DeleteFunction")
    async def delete_function(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        if ref.qualifier is None:
            self.registry.delete(function)
            self.limiter.set_reserved(function.arn, None)
            for qualifier, config in function.provisioned.items():
                self.unprovision(function, qualifier, config)
            for version in function.versions.values():
                await self.retire(version)
            return {"StatusCode": 204}
        if ref.qualifier == LATEST:
            raise invalid("$LATEST version cannot be deleted without deleting the function.")
        version = function.versions.get(ref.qualifier)
        if version is None:
            if ref.qualifier in function.aliases:
                raise invalid("Deletion of aliases is not supported by DeleteFunction.")
            raise not_found(f"Function not found: {ref.qualified_arn()}")
        using = sorted(
            name for name, alias in function.aliases.items() if _alias_uses(alias, ref.qualifier)
        )
        if using:
            raise conflict(
                "Unable to delete version because the following aliases reference it: "
                f"[{', '.join(using)}]"
            )
        del function.versions[ref.qualifier]
        provisioned = function.provisioned.pop(ref.qualifier, None)
        if provisioned is not None:
            self.unprovision(function, ref.qualifier, provisioned)
        function.event_invoke.pop(ref.qualifier, None)
        function.policies.pop(ref.qualifier, None)
        self.registry.save(function)
        await self.retire(version)
        return {"StatusCode": 204}


def _alias_uses(alias: dict[str, Any], number: str) -> bool:
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return alias["FunctionVersion"] == number or number in weights
