"""What a service is: a named botocore model plus handlers for its operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from squall.core.context import RequestContext
from squall.core.errors import ServiceError
from squall.core.http import HttpRequest, HttpResponse

Request = dict[str, Any]
Response = dict[str, Any]
Handler = Callable[[RequestContext, Request], Response | Awaitable[Response]]

_OPERATION_ATTR = "__squall_operation__"


def operation(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method as the handler of the AWS operation `name`."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        setattr(method, _OPERATION_ATTR, name)
        return method

    return mark


class Service:
    """Base of every service. Subclasses set `name` and mark handlers with `@operation`.

    A handler takes `(ctx, request)` (the parsed, validated input) and returns the output dict,
    or an awaitable of it; it raises `ServiceError` for AWS errors. Handlers never see HTTP.
    """

    name: ClassVar[str]
    # Protocols this service accepts beyond those its model lists (AWS added some later).
    extra_protocols: ClassVar[tuple[str, ...]] = ()
    # X-Amz-Target prefix for the json protocol when the model does not name one.
    json_target_prefix: ClassVar[str | None] = None
    # Whether unsigned requests reach the handlers (as anonymous callers).
    allows_anonymous: ClassVar[bool] = False
    # Operations CloudTrail counts as data events: audited without their parameters, which
    # are data (log events, payloads) rather than configuration.
    data_events: ClassVar[frozenset[str]] = frozenset()
    # Operations whose blob payload reaches the handler as a `RequestBody` stream, read as it
    # arrives (S3's PutObject), instead of bytes read whole before the call.
    streamed_input: ClassVar[frozenset[str]] = frozenset()

    def handlers(self) -> dict[str, Handler]:
        found: dict[str, Handler] = {}
        for attribute in dir(type(self)):
            member = getattr(type(self), attribute, None)
            name = getattr(member, _OPERATION_ATTR, None)
            if name:
                found[name] = getattr(self, attribute)
        return found

    def validation_error(self, message: str, protocol: str) -> ServiceError:
        """The error this service answers for input that breaks the model's constraints."""
        code = "ValidationError" if protocol == "query" else "ValidationException"
        return ServiceError(code, message, status=400)

    async def internal(self, request: HttpRequest, path: str) -> HttpResponse | None:
        """Serve `/_squall/<service>/<path>`: squall's own URLs that are not AWS operations
        (such as a function package's download link). None: no such URL."""
        return None

    async def start(self) -> None:
        """Start background work; called once when the server starts."""

    async def stop(self) -> None:
        """Stop background work and flush; called once when the server stops."""
