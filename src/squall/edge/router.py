"""Which service (and protocol) a request is for, the way AWS clients address them.

In order: the smithy RPC v2 path, the `X-Amz-Target` prefix, the SigV4 credential scope's
service name, S3 virtual-host names, the first path segment of REST services, and the query
protocol's `Action`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

from botocore.model import ServiceModel

from squall.core.http import HttpRequest
from squall.services.base import Handler, Service

from .protocols import PROTOCOLS, Protocol
from .protocols.model import service_model
from .protocols.routes import first_literal_segments

REST_PROTOCOLS = ("rest-json", "rest-xml")
S3_HOST_MARKERS = (".s3.", ".s3-")


@dataclass(slots=True)
class Endpoint:
    """A service as the edge sees it: model, handlers and how it is addressed."""

    service: Service
    model: ServiceModel
    handlers: dict[str, Handler]
    protocols: tuple[str, ...]
    target_prefixes: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.model.service_name

    @property
    def signing_name(self) -> str:
        return self.model.metadata.get("signingName") or self.model.metadata["endpointPrefix"]

    @property
    def event_source(self) -> str:
        return f"{self.model.metadata['endpointPrefix']}.amazonaws.com"

    @property
    def primary_protocol(self) -> Protocol:
        return PROTOCOLS[self.protocols[0]]


def make_endpoint(service: Service) -> Endpoint:
    model = service_model(service.name)
    listed = model.metadata.get("protocols") or [model.metadata["protocol"]]
    protocols = tuple(p for p in [*listed, *service.extra_protocols] if p in PROTOCOLS)
    prefixes = {p for p in (model.metadata.get("targetPrefix"), service.json_target_prefix) if p}
    return Endpoint(service, model, service.handlers(), protocols, prefixes)


class Router:
    def __init__(self, services: list[Service], *, s3_hosts: tuple[str, ...] = ()) -> None:
        self.endpoints = {service.name: make_endpoint(service) for service in services}
        self._by_prefix: dict[str, Endpoint] = {}
        self._by_signing: dict[str, list[Endpoint]] = {}
        self._by_segment: dict[str, Endpoint] = {}
        self._catch_all: Endpoint | None = None
        for endpoint in self.endpoints.values():
            for prefix in endpoint.target_prefixes:
                self._by_prefix[prefix] = endpoint
            self._by_signing.setdefault(endpoint.signing_name, []).append(endpoint)
            if any(p in REST_PROTOCOLS for p in endpoint.protocols):
                for segment in first_literal_segments(endpoint.name):
                    self._by_segment.setdefault(segment, endpoint)
                if endpoint.name == "s3":
                    self._catch_all = endpoint
        self._s3_hosts = s3_hosts

    def resolve(self, request: HttpRequest, signing_name: str | None) -> Endpoint | None:
        if request.path.startswith("/service/") and "smithy-protocol" in request.headers:
            parts = request.path.split("/")
            if len(parts) > 2 and parts[2] in self._by_prefix:
                return self._by_prefix[parts[2]]
        target = request.headers.get("x-amz-target")
        if target:
            prefix = target.rpartition(".")[0]
            if prefix in self._by_prefix:
                return self._by_prefix[prefix]
        if signing_name is not None:
            candidates = self._by_signing.get(signing_name, [])
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                return self._by_path(request) or candidates[0]
            return None
        if self._catch_all is not None and self.bucket_from_host(request.host) is not None:
            return self._catch_all
        return self._by_path(request) or self._by_action(request)

    def _by_path(self, request: HttpRequest) -> Endpoint | None:
        segment = request.raw_path.lstrip("/").split("/", 1)[0]
        if segment in self._by_segment:
            return self._by_segment[segment]
        if request.query_value("Action") is None and _form_action(request) is None:
            return self._catch_all
        return None

    def _by_action(self, request: HttpRequest) -> Endpoint | None:
        action = request.query_value("Action") or _form_action(request)
        if action:
            for endpoint in self.endpoints.values():
                if "query" in endpoint.protocols and action in endpoint.model.operation_names:
                    return endpoint
        return None

    def bucket_from_host(self, host: str) -> str | None:
        """The bucket of a virtual-host S3 address: `bucket.s3.<domain>` or `bucket.localhost`."""
        name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
        for marker in S3_HOST_MARKERS:
            if marker in name:
                bucket = name.split(marker, 1)[0]
                return bucket or None
        for suffix in (".localhost", *self._s3_hosts):
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return None

    def protocol_for(self, request: HttpRequest, endpoint: Endpoint) -> Protocol:
        """The protocol the request is written in, among those the service speaks."""
        wanted: str | None = None
        if request.headers.get("smithy-protocol") == "rpc-v2-cbor":
            wanted = "smithy-rpc-v2-cbor"
        elif "x-amz-target" in request.headers:
            wanted = "json"
        elif request.content_type == "application/x-www-form-urlencoded" or (
            request.query_value("Action") is not None
        ):
            wanted = "query"
        if wanted in endpoint.protocols:
            return PROTOCOLS[wanted]
        for name in endpoint.protocols:
            if name in REST_PROTOCOLS:
                return PROTOCOLS[name]
        return endpoint.primary_protocol

    def rewrite_virtual_host(self, request: HttpRequest, endpoint: Endpoint) -> None:
        """Turn a virtual-host-style S3 request into its path-style equivalent."""
        if endpoint.name != "s3":
            return
        bucket = self.bucket_from_host(request.host)
        if bucket is not None:
            request.raw_path = "/" + quote(bucket) + request.raw_path


def _form_action(request: HttpRequest) -> str | None:
    """The query protocol's `Action` sent in a form body."""
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    for key, value in _form_pairs(request.body):
        if key == "Action":
            return value
    return None


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return []
