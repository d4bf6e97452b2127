"""Layers: versioned zips that functions mount, in order, under /opt."""

from __future__ import annotations

from typing import Any

from squall.core.context import RequestContext
from squall.services.base import Request, Response, operation

from .core import LambdaCore, paginate
from .errors import not_found
from .functions import FunctionsApi
from .names import layer_arn, parse_layer_name, parse_layer_version_arn
from .registry import Layer, timestamp

_LAYER_MEMBERS = ("Description", "CompatibleRuntimes", "CompatibleArchitectures", "LicenseInfo")


class LayersApi(FunctionsApi, LambdaCore):
    @operation("PublishLayerVersion")
    async def publish_layer_version(self, ctx: RequestContext, request: Request) -> Response:
        account, region, name = parse_layer_name(request["LayerName"], ctx.account_id, ctx.region)
        code = await self._ingest(ctx, request.get("Content") or {})
        layer = self.registry.layers.get((account, region, name)) or Layer(account, region, name)
        number = layer.next_version
        layer.next_version += 1
        version: dict[str, Any] = {
            "_code": code.sha256_hex,
            "Version": number,
            "CreatedDate": timestamp(),
            "Description": request.get("Description", ""),
            "Content": {"CodeSha256": code.sha256_b64, "CodeSize": code.size},
        }
        for member in _LAYER_MEMBERS[1:]:
            if request.get(member):
                version[member] = request[member]
        layer.versions[number] = version
        self.registry.save_layer(layer)
        return self._render_layer(ctx, layer, number)

    @operation("GetLayerVersion")
    def get_layer_version(self, ctx: RequestContext, request: Request) -> Response:
        account, region, name = parse_layer_name(request["LayerName"], ctx.account_id, ctx.region)
        return self._layer_version(ctx, (account, region, name), request["VersionNumber"])

    @operation("GetLayerVersionByArn")
    def get_layer_version_by_arn(self, ctx: RequestContext, request: Request) -> Response:
        account, region, name, number = parse_layer_version_arn(request["Arn"])
        return self._layer_version(ctx, (account, region, name), number)

    def _layer_version(
        self, ctx: RequestContext, key: tuple[str, str, str], number: int
    ) -> Response:
        layer = self.registry.layers.get(key)
        if layer is None or number not in layer.versions:
            raise not_found("The resource you requested does not exist.")
        return self._render_layer(ctx, layer, number)

    @operation("DeleteLayerVersion")
    def delete_layer_version(self, ctx: RequestContext, request: Request) -> Response:
        account, region, name = parse_layer_name(request["LayerName"], ctx.account_id, ctx.region)
        layer = self.registry.layers.get((account, region, name))
        if layer is not None and layer.versions.pop(request["VersionNumber"], None) is not None:
            self.registry.save_layer(layer)
        return {}

    @operation("ListLayerVersions")
    def list_layer_versions(self, ctx: RequestContext, request: Request) -> Response:
        account, region, name = parse_layer_name(request["LayerName"], ctx.account_id, ctx.region)
        layer = self.registry.layers.get((account, region, name))
        entries = []
        if layer is not None:
            for number in sorted(layer.versions, reverse=True):
                if _matches(layer.versions[number], request):
                    entries.append(self._list_item(layer, number))
        page, marker = paginate(entries, request.get("Marker"), request.get("MaxItems"))
        result: Response = {"LayerVersions": page}
        if marker:
            result["NextMarker"] = marker
        return result

    @operation("ListLayers")
    def list_layers(self, ctx: RequestContext, request: Request) -> Response:
        entries = []
        for key in sorted(self.registry.layers):
            layer = self.registry.layers[key]
            if key[:2] != (ctx.account_id, ctx.region):
                continue
            matching = [n for n in layer.versions if _matches(layer.versions[n], request)]
            if matching:
                entries.append(
                    {
                        "LayerName": layer.name,
                        "LayerArn": layer.arn,
                        "LatestMatchingVersion": self._list_item(layer, max(matching)),
                    }
                )
        page, marker = paginate(entries, request.get("Marker"), request.get("MaxItems"))
        result: Response = {"Layers": page}
        if marker:
            result["NextMarker"] = marker
        return result

    def _list_item(self, layer: Layer, number: int) -> dict[str, Any]:
        version = layer.versions[number]
        item = {
            "LayerVersionArn": layer_arn(layer.account, layer.region, layer.name, number),
            "Version": number,
            "CreatedDate": version["CreatedDate"],
        }
        item.update({m: version[m] for m in _LAYER_MEMBERS if m in version})
        return item

    def _render_layer(self, ctx: RequestContext, layer: Layer, number: int) -> Response:
        version = layer.versions[number]
        result = self._list_item(layer, number)
        result["LayerArn"] = layer.arn
        result["Content"] = {
            "Location": self.code_url(ctx.endpoint_url, version["_code"]),
            **version["Content"],
        }
        return result


def _matches(version: dict[str, Any], request: Request) -> bool:
    runtime = request.get("CompatibleRuntime")
    architecture = request.get("CompatibleArchitecture")
    if runtime and runtime not in version.get("CompatibleRuntimes", []):
        return False
    return not (architecture and architecture not in version.get("CompatibleArchitectures", []))
