"""What every part of the Lambda API shares: the registry, code store, engine, and lookups."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from squall.core.config import DEFAULT_ACCOUNT, Settings
from squall.core.context import RequestContext
from squall.core.errors import ServiceError
from squall.core.http import HttpRequest, HttpResponse
from squall.engine.async_queue import AsyncQueue, QueuedEvent, Reschedule
from squall.engine.concurrency import ConcurrencyLimiter
from squall.engine.invoker import Invoker
from squall.sandbox.manager import SandboxManager
from squall.sandbox.pool import SandboxPool
from squall.sandbox.spec import FunctionSpec
from squall.services.base import Request, Service
from squall.services.iam.keys import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY
from squall.store import BlobStore, Store

from .code import CodeStore, opt_key
from .configuration import log_group
from .errors import invalid, not_found
from .names import LATEST, FunctionRef, parse_function
from .objects import ObjectSource
from .registry import Function, Registry, Version
from .targets import LambdaTargets
from .telemetry import Telemetry

log = logging.getLogger(__name__)

CODE_URL_TTL_S = 600
DEFAULT_PAGE = 50


class LambdaCore(Service):
    """The state behind the Lambda API; the operation mixins in this package extend it."""

    name = "lambda"
    data_events = frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"})

    def __init__(
        self,
        settings: Settings,
        store: Store,
        blobs: BlobStore,
        *,
        manager: SandboxManager | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = Registry(store)
        self.code = CodeStore(blobs, settings.data_dir / "lambda")
        self.manager = manager or SandboxManager(
            settings.run_dir / "sandboxes",
            endpoint_url=settings.endpoint_url,
            api_socket=str(settings.api_socket),
        )
        self.pool = SandboxPool(self.manager, keep_alive_s=settings.keep_alive_s)
        self.limiter = ConcurrencyLimiter(settings.concurrency_limit)
        self.telemetry = telemetry or Telemetry()
        self.invoker = Invoker(self.pool, self.limiter, self.telemetry.function_logs)
        self.queue = AsyncQueue(store)
        self.retry_delay_s = settings.async_retry_delay_s
        # where `Code.S3Bucket`/`S3Key` packages are read from; the server sets it once the
        # object store exists (None: such requests are refused)
        self.objects: ObjectSource | None = None
        # what event sources (S3 notifications) invoke functions through
        self.targets = LambdaTargets(self)
        self._url_secret = secrets.token_bytes(32)
        for function in self.registry.functions.values():
            if function.reserved is not None:
                self.limiter.set_reserved(function.arn, function.reserved)
        self._provisioners: dict[tuple[str, str, str, str], asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        removed = await asyncio.to_thread(self.code.collect, self._extracted_in_use())
        if removed:
            log.info("removed %d unused extracted packages", removed)
        await self.manager.start()
        await self.pool.start()
        self.queue.start(self.deliver)
        for function in list(self.registry.functions.values()):
            for qualifier in function.provisioned:
                self.provision(function, qualifier)

    def _extracted_in_use(self) -> set[str]:
        """Names of the extracted code and /opt trees some version still uses."""
        keep: set[str] = set()
        for function in self.registry.functions.values():
            for version in function.versions.values():
                keep.add(version.code)
                if version.layers:
                    keep.add(opt_key(version.layers))
        return keep

    async def stop(self) -> None:
        for task in list(self._provisioners.values()):
            task.cancel()
        await self.queue.stop()
        await self.pool.stop()
        await self.manager.stop()
        await asyncio.to_thread(self.telemetry.close)

    async def deliver(self, event: QueuedEvent) -> Reschedule | None:
        """Deliver one queued asynchronous invocation (the invoke mixin implements it)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lookups

    def ref_of(
        self, ctx: RequestContext, request: Request, *, qualified: bool = True
    ) -> FunctionRef:
        """The function a request's `FunctionName` (and `Qualifier`) names."""
        ref = parse_function(
            request["FunctionName"], ctx.account_id, ctx.region, request.get("Qualifier")
        )
        if ref.qualifier and not qualified:
            raise invalid("Unsupported qualifier for this operation.")
        if ref.account != ctx.account_id:
            # cross-account access needs IAM and resource policies: refused until those exist
            raise ServiceError(
                "AccessDeniedException",
                f"User: {ctx.principal.arn} is not authorized to perform: "
                f"lambda:{ctx.operation} on resource: {ref.qualified_arn()} because no "
                f"resource-based policy allows the lambda:{ctx.operation} action",
                status=403,
            )
        return ref

    def function_of(self, ref: FunctionRef) -> Function:
        function = self.registry.function(ref.key)
        if function is None:
            raise not_found(f"Function not found: {ref.arn}")
        return function

    def version_of(self, function: Function, ref: FunctionRef, qualifier: str | None) -> Version:
        """The version a qualifier names: a number, `$LATEST`, or an alias's main version."""
        qualifier = qualifier or LATEST
        version = function.versions.get(qualifier)
        if version is not None:
            return version
        alias = function.aliases.get(qualifier)
        if alias is not None:
            return function.versions[alias["FunctionVersion"]]
        raise not_found(f"Function not found: {ref.qualified_arn(qualifier)}")

    @staticmethod
    def alias_name(function: Function, ref: FunctionRef) -> str | None:
        """The alias a request's qualifier names, if it names one."""
        return ref.qualifier if ref.qualifier in function.aliases else None

    def spec_for(self, function: Function, version: Version) -> FunctionSpec:
        """The sandbox spec of a version, cached until the version changes."""
        spec = version.spec
        if spec is not None:
            return spec
        config = version.config
        environment = dict((config.get("Environment") or {}).get("Variables") or {})
        if function.account == DEFAULT_ACCOUNT:
            # the execution role's credentials; IAM roles replace these later
            environment["AWS_ACCESS_KEY_ID"] = DEFAULT_ACCESS_KEY_ID
            environment["AWS_SECRET_ACCESS_KEY"] = DEFAULT_SECRET_ACCESS_KEY
        opt = self.code.opt_dir(version.layers)
        logging_config = config.get("LoggingConfig") or {}
        spec = FunctionSpec(
            name=function.name,
            version=version.number,
            arn=function.arn,
            runtime=config["Runtime"],
            handler=config["Handler"],
            code_dir=str(self.code.extract(version.code)),
            memory_mb=config["MemorySize"],
            timeout_s=float(config["Timeout"]),
            environment=environment,
            opt_dir=str(opt) if opt is not None else None,
            ephemeral_mb=(config.get("EphemeralStorage") or {}).get("Size", 512),
            region=function.region,
            log_group=log_group(config, function.name),
            revision=config["RevisionId"],
            log_format=logging_config.get("LogFormat") or "Text",
            application_log_level=logging_config.get("ApplicationLogLevel") or "INFO",
            system_log_level=logging_config.get("SystemLogLevel"),
        )
        version.spec = spec
        return spec

    async def prepare(self, version: Version) -> None:
        """Extract a version's code and layers ahead of its first invoke (off the loop)."""
        await asyncio.to_thread(self.code.extract, version.code)
        if version.layers:
            await asyncio.to_thread(self.code.opt_dir, version.layers)

    async def retire(self, version: Version) -> None:
        """A version's code or configuration changed: its sandboxes never serve again."""
        spec = version.spec
        version.spec = None
        if spec is not None:
            await self.pool.retire(spec.key)

    # ------------------------------------------------------------------ provisioned concurrency

    def provision(self, function: Function, qualifier: str) -> None:
        """(Re)apply a qualifier's provisioned concurrency: one task per qualifier at a time."""
        key = (*function.key, qualifier)
        previous = self._provisioners.pop(key, None)
        if previous is not None:
            previous.cancel()
        config = function.provisioned.get(qualifier)
        if config is None:
            return
        task = asyncio.create_task(self._provision(function, qualifier, config))
        self._provisioners[key] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._provisioners.get(key) is done:
                del self._provisioners[key]

        task.add_done_callback(forget)

    def unprovision(self, function: Function, qualifier: str, config: dict[str, Any]) -> None:
        """A provisioned config went away: stop its task and drop the floor it set."""
        task = self._provisioners.pop((*function.key, qualifier), None)
        if task is not None:
            task.cancel()
        if config.get("_key"):
            self.pool.set_floor(config["_key"], 0)

    async def _provision(self, function: Function, qualifier: str, config: dict[str, Any]) -> None:
        def current() -> bool:
            return (
                self.registry.function(function.key) is function
                and function.provisioned.get(qualifier) is config
            )

        ref = FunctionRef(function.account, function.region, function.name)
        try:
            version = self.version_of(function, ref, qualifier)
            await self.prepare(version)
            if not current():
                return
            spec = self.spec_for(function, version)
            if config.get("_key") and config["_key"] != spec.key:
                self.pool.set_floor(config["_key"], 0)  # the alias moved to another version
            config["_key"] = spec.key
            wanted = int(config["RequestedProvisionedConcurrentExecutions"])
            self.pool.set_floor(spec.key, wanted)
            while sum(dataclasses.astuple(self.pool.counts(spec.key))) < wanted:
                await self.pool.add_idle(spec)
                if not current():
                    return  # its floor is dropped by unprovision; keep-alive reaps the rest
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "provisioned concurrency for %s:%s failed: %s", function.name, qualifier, exc
            )
            config["Status"] = "FAILED"
            config["StatusReason"] = str(exc)
            return
        config["Status"] = "READY"

    def provisioned_counts(self, config: dict[str, Any]) -> int:
        key = config.get("_key")
        if not key:
            return 0
        return sum(dataclasses.astuple(self.pool.counts(key)))

    # ------------------------------------------------------------------ code downloads

    def code_url(self, endpoint_url: str, digest: str) -> str:
        """A URL that downloads a stored zip for the next ten minutes (`Code.Location`)."""
        expires = int(time.time()) + CODE_URL_TTL_S
        signature = self._sign(digest, expires)
        return f"{endpoint_url}/_squall/lambda/code/{digest}?expires={expires}&sig={signature}"

    def _sign(self, digest: str, expires: int) -> str:
        message = f"{digest}:{expires}".encode()
        return hmac.new(self._url_secret, message, hashlib.sha256).hexdigest()

    async def internal(self, request: HttpRequest, path: str) -> HttpResponse | None:
        """`GET /_squall/lambda/code/<sha256>?expires=&sig=`: a package download."""
        parts = path.split("/")
        if request.method not in ("GET", "HEAD") or len(parts) != 2 or parts[0] != "code":
            return None
        digest = parts[1]
        try:
            expires = int(request.query_value("expires") or "0")
        except ValueError:
            expires = 0
        expected = self._sign(digest, expires)
        given = request.query_value("sig") or ""
        if expires < time.time() or not hmac.compare_digest(expected, given):
            return _plain(403, b"Request has expired or its signature does not match.")
        with contextlib.suppress(ValueError):
            location: Path = self.code.zip_path(digest)
            if location.is_file():
                body = (
                    b""
                    if request.method == "HEAD"
                    else await asyncio.to_thread(location.read_bytes)
                )
                return HttpResponse(
                    200,
                    [
                        ("Content-Type", "application/zip"),
                        ("Content-Length", str(location.stat().st_size)),
                    ],
                    body,
                )
        return _plain(404, b"No such package.")


def _plain(status: int, body: bytes) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "text/plain")], body)


def paginate(
    entries: list[Any], marker: str | None, max_items: int | None
) -> tuple[list[Any], str | None]:
    """A page of `entries` from an opaque marker (the index to resume at), and the next one."""
    start = 0
    if marker:
        try:
            start = int(marker)
        except ValueError:
            raise invalid(f"Invalid marker: {marker}") from None
    size = max_items or DEFAULT_PAGE
    page = entries[start : start + size]
    following = start + size
    return page, (str(following) if following < len(entries) else None)
