"""The edge: one ASGI application in front of every service.

HTTP → service router → SigV4 auth → protocol parse (botocore models) → validation →
operation → serialize → audit record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

import orjson
from botocore.model import OperationModel

from squall import __version__
from squall.core.config import DEFAULT_ACCOUNT, Settings
from squall.core.context import ANONYMOUS, RequestContext
from squall.core.errors import InternalFailure, ServiceError
from squall.core.http import HttpRequest, HttpResponse

from .audit import AuditLog, redact
from .auth import Authenticator, Identity, family_of, rejected
from .aws_chunked import AwsChunkedDecoder, ChunkedError, decoder_for
from .body import StreamedBody, chunked_error
from .protocols import Protocol
from .protocols.model import is_read_only
from .protocols.validate import validate, validation_message
from .router import Endpoint, Router
from .sigv2 import SigV2Signature, parse_sigv2
from .sigv4 import SignatureInfo, SigV4Error, parse_signature

log = logging.getLogger("squall.edge")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


class RequestTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected before its request was read whole: nothing is served."""


class _BodyTracker:
    """Passes `receive` through, noting whether the request body has been read to its end."""

    __slots__ = ("_receive", "complete")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.complete = False

    async def receive(self) -> dict[str, Any]:
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self.complete = True
        return message


class EdgeApp:
    """The ASGI application. Start-up and shutdown hooks run on the ASGI lifespan events."""

    def __init__(
        self,
        settings: Settings,
        router: Router,
        authenticator: Authenticator,
        audit: AuditLog,
        *,
        on_startup: list[Hook] | None = None,
        on_shutdown: list[Hook] | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.authenticator = authenticator
        self.audit = audit
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []
        self.started = time.time()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        log.exception("shutdown hook failed")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        request = _request_from_scope(scope)
        if _header_bytes(scope) > self.settings.max_header_bytes:
            response = self._edge_error(
                request,
                ServiceError(
                    "RequestHeaderSectionTooLarge",
                    f"Your request header section exceeds the maximum allowed size of "
                    f"{self.settings.max_header_bytes} bytes.",
                    status=431,
                ),
            )
        else:
            body = _BodyTracker(receive)
            try:
                response = await self.handle(request, body.receive)
            except ClientGone:
                return
            if not body.complete:
                # answered before the body was read (a streamed upload refused up front): the
                # rest of it may still come, or never (Expect: 100-continue), so the connection
                # cannot carry another request
                response.headers.append(("Connection", "close"))
        await _send_response(send, receive, response)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s %s -> %d %s %.2fms",
                request.client_ip,
                request.method,
                request.raw_path,
                response.status,
                response.label,
                (time.perf_counter() - began) * 1000,
            )

    async def handle(self, request: HttpRequest, receive: Receive | None = None) -> HttpResponse:
        """Serve one request and return the response. With `receive`, the body has not been
        read yet: it is read whole here, or handed to the operation as a stream when the
        operation takes one (raises `ClientGone` if the client leaves first)."""
        internal = request.raw_path.startswith("/_squall/")
        if not internal and request.raw_path == "/metrics" and _unsigned(request):
            # Prometheus scrapes the bare path; an S3 bucket named "metrics" is always signed
            request.raw_path = "/_squall/cloudwatch/metrics"
            internal = True
        signature: SignatureInfo | SigV2Signature | None = None
        signature_error: SigV4Error | None = None
        if not internal:
            try:
                signature = parse_sigv2(request) or parse_signature(request)
            except SigV4Error as exc:
                signature_error = exc
        stream_from: Receive | None = None
        if receive is not None:
            if signature is not None and self._streams_body(request, signature):
                stream_from = receive
            else:
                try:
                    request.body = await _read_body(receive, self.settings.max_body_bytes)
                except RequestTooLarge:
                    return self._edge_error(request, _too_large(self.settings.max_body_bytes))
        if internal:
            return await self._internal(request)
        request_id = str(uuid.uuid4())
        signing_name = signature.service if signature else None
        endpoint = self.router.resolve(request, signing_name)
        if endpoint is None:
            return _unroutable(request, signing_name, request_id, self.router)
        protocol = self.router.protocol_for(request, endpoint)
        call = _Call(request, endpoint, protocol, request_id)
        family = family_of(endpoint.name, protocol.name)
        try:
            if signature_error is not None:
                presigned = request.query_value("X-Amz-Credential") is not None
                raise rejected(family, signature_error, presigned=presigned)
            call.identity = self.authenticator.authenticate(
                request,
                signature,
                family=family,
                allows_anonymous=endpoint.service.allows_anonymous,
                signing_name=endpoint.signing_name,
                check_payload=stream_from is None,
                host_bucket=(
                    self.router.bucket_from_host(request.host)
                    if isinstance(signature, SigV2Signature)
                    else None
                ),
            )
            response = await self._dispatch(call, stream_from)
        except ServiceError as error:
            call.error = error
            response = protocol.serialize_error(request, endpoint.model, error, request_id)
        except Exception:
            log.exception("unexpected failure in %s", call.describe())
            call.error = InternalFailure()
            response = protocol.serialize_error(request, endpoint.model, call.error, request_id)
        self._audit(call)
        response.label = call.describe()
        return response

    def _streams_body(
        self, request: HttpRequest, signature: SignatureInfo | SigV2Signature
    ) -> bool:
        """Whether the request is for an operation that reads its body as a stream. Only
        requests whose signature does not cover the body bytes themselves qualify (presigned,
        or carrying x-amz-content-sha256): any other must be read whole to be verified."""
        if not signature.presigned and "x-amz-content-sha256" not in request.headers:
            return False
        endpoint = self.router.resolve(request, signature.service)
        if endpoint is None or not endpoint.service.streamed_input:
            return False
        probe = dataclasses.replace(request)
        self.router.rewrite_virtual_host(probe, endpoint)
        try:
            operation = self.router.protocol_for(probe, endpoint).resolve_operation(
                probe, endpoint.model
            )
        except ServiceError:
            return False
        return operation.name in endpoint.service.streamed_input

    async def _dispatch(self, call: _Call, stream_from: Receive | None = None) -> HttpResponse:
        request, endpoint, protocol = call.request, call.endpoint, call.protocol
        self.router.rewrite_virtual_host(request, endpoint)
        if stream_from is None:
            _decode_chunked_body(request, call.identity)
        else:
            request.stream = _streamed_body(request, call.identity, stream_from)
        call.operation = operation = protocol.resolve_operation(request, endpoint.model)
        call.params = params = protocol.parse(request, operation)
        problems = validate(operation.input_shape, params)
        if problems:
            raise endpoint.service.validation_error(validation_message(problems), protocol.name)
        handler = endpoint.handlers.get(operation.name)
        if handler is None:
            raise ServiceError(
                "NotImplemented",
                f"squall does not implement {endpoint.name}:{operation.name} yet.",
                status=501,
            )
        identity = call.identity
        assert identity is not None
        ctx = RequestContext(
            request_id=call.request_id,
            service=endpoint.name,
            operation=operation.name,
            region=identity.region,
            principal=identity.principal,
            source_ip=request.client_ip,
            user_agent=request.headers.get("user-agent", ""),
            endpoint_url=_endpoint_url(request, self.settings),
        )
        result = handler(ctx, params)
        if inspect.isawaitable(result):
            result = await result
        call.output = result or {}
        return protocol.serialize(request, operation, call.output, call.request_id)

    def _audit(self, call: _Call) -> None:
        operation = call.operation or _try_resolve(call)
        if operation is None:
            return
        identity = call.identity
        principal = identity.principal if identity else ANONYMOUS
        region = identity.region if identity else self.settings.region
        event = self.audit.new_event(
            principal=principal,
            event_source=call.endpoint.event_source,
            event_name=operation.name,
            region=region,
            source_ip=call.request.client_ip,
            user_agent=call.request.headers.get("user-agent", ""),
            request_id=call.request_id,
            read_only=is_read_only(operation),
            recipient_account=principal.account_id or DEFAULT_ACCOUNT,
        )
        data_event = operation.name in call.endpoint.service.data_events
        if call.params is not None and not data_event:
            event["requestParameters"] = redact(operation.input_shape, call.params) or None
        if call.error is not None:
            event["errorCode"] = call.error.code
            event["errorMessage"] = call.error.message
        elif call.output and not event["readOnly"] and not data_event:
            event["responseElements"] = redact(operation.output_shape, call.output) or None
        self.audit.record(event)

    async def _internal(self, request: HttpRequest) -> HttpResponse:
        if request.raw_path == "/_squall/health" and request.method in ("GET", "HEAD"):
            document = {
                "status": "running",
                "version": __version__,
                "services": dict.fromkeys(sorted(self.router.endpoints), "running"),
                "uptime_seconds": round(time.time() - self.started, 3),
            }
            return _json_response(200, document)
        service, _, rest = request.raw_path.removeprefix("/_squall/").partition("/")
        endpoint = self.router.endpoints.get(service)
        if endpoint is not None:
            response = await endpoint.service.internal(request, rest)
            if response is not None:
                return response
        return _json_response(404, {"message": f"Unknown squall endpoint {request.raw_path}"})

    def _edge_error(self, request: HttpRequest, error: ServiceError) -> HttpResponse:
        """An error raised before routing, in the best protocol we can tell from the request."""
        request_id = str(uuid.uuid4())
        try:
            signature = parse_signature(request)
        except SigV4Error:
            signature = None
        endpoint = self.router.resolve(request, signature.service if signature else None)
        if endpoint is None:
            return _generic_error(request, error, request_id)
        protocol = self.router.protocol_for(request, endpoint)
        return protocol.serialize_error(request, endpoint.model, error, request_id)


class _Call:
    """The state of one API call, as the audit record needs it."""

    __slots__ = (
        "endpoint",
        "error",
        "identity",
        "operation",
        "output",
        "params",
        "protocol",
        "request",
        "request_id",
    )

    def __init__(
        self, request: HttpRequest, endpoint: Endpoint, protocol: Protocol, request_id: str
    ) -> None:
        self.request = request
        self.endpoint = endpoint
        self.protocol = protocol
        self.request_id = request_id
        self.identity: Identity | None = None
        self.operation: OperationModel | None = None
        self.params: dict[str, Any] | None = None
        self.output: dict[str, Any] | None = None
        self.error: ServiceError | None = None

    def describe(self) -> str:
        name = self.operation.name if self.operation else "?"
        error = f" {self.error.code}" if self.error else ""
        return f"{self.endpoint.name}.{name}{error}"


def _try_resolve(call: _Call) -> OperationModel | None:
    try:
        return call.protocol.resolve_operation(call.request, call.endpoint.model)
    except Exception:
        return None


def _decode_chunked_body(request: HttpRequest, identity: Identity | None) -> None:
    """Decode an `aws-chunked` body (verifying chunk signatures) and lift its trailers."""
    if not _is_chunked(request.headers):
        return
    decoder = _chunked_decoder(request.headers, identity)
    try:
        body = decoder.feed(request.body)
        decoder.finish()
    except ChunkedError as exc:
        raise chunked_error(exc) from None
    request.body = body
    _drop_aws_chunked(request.headers)
    request.headers["content-length"] = str(len(body))
    for name, value in decoder.trailers.items():
        request.headers[name] = value


def _streamed_body(
    request: HttpRequest, identity: Identity | None, receive: Receive
) -> StreamedBody:
    """The body of a streamed request, with aws-chunked framing lifted off as it is read and
    a hex payload hash checked at its end (when the signature was verified)."""
    headers = request.headers
    if not _is_chunked(headers):
        content_sha = headers.get("x-amz-content-sha256", "")
        verified = identity is not None and identity.secret_key is not None
        expected = content_sha if verified and _is_hex_sha256(content_sha) else None
        declared = _int_header(headers.get("content-length"))
        return StreamedBody(receive, declared_length=declared, expected_sha256=expected)
    decoder = _chunked_decoder(headers, identity)
    decoded_length = _int_header(headers.get("x-amz-decoded-content-length"))
    _drop_aws_chunked(headers)
    if decoded_length is not None:
        headers["content-length"] = str(decoded_length)
    else:
        headers.pop("content-length", None)
    announced = tuple(
        name.strip().lower() for name in headers.get("x-amz-trailer", "").split(",") if name.strip()
    )
    return StreamedBody(
        receive, declared_length=decoded_length, decoder=decoder, trailer_names=announced
    )


def _is_chunked(headers: dict[str, str]) -> bool:
    encoding = headers.get("content-encoding", "")
    return "aws-chunked" in encoding or headers.get("x-amz-content-sha256", "").startswith(
        "STREAMING-"
    )


def _chunked_decoder(headers: dict[str, str], identity: Identity | None) -> AwsChunkedDecoder:
    """The decoder for a request's aws-chunked body, checking its chunk signatures when the
    request's signature was verified."""
    return decoder_for(
        identity.signature if identity else None,
        identity.secret_key if identity else None,
        decoded_content_length=_int_header(headers.get("x-amz-decoded-content-length")),
    )


def _drop_aws_chunked(headers: dict[str, str]) -> None:
    """Remove `aws-chunked` from Content-Encoding once the framing is gone (the rest, such as
    gzip, describes the payload)."""
    encoding = headers.get("content-encoding", "")
    remaining = [part.strip() for part in encoding.split(",") if part.strip() != "aws-chunked"]
    if remaining:
        headers["content-encoding"] = ",".join(remaining)
    else:
        headers.pop("content-encoding", None)


def _int_header(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _is_hex_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def _too_large(limit: int) -> ServiceError:
    return ServiceError(
        "RequestEntityTooLarge", f"Request must be smaller than {limit} bytes.", status=413
    )


def _unsigned(request: HttpRequest) -> bool:
    return (
        "authorization" not in request.headers
        and request.query_value("X-Amz-Signature") is None
        and request.query_value("Signature") is None
    )


def _request_from_scope(scope: Scope) -> HttpRequest:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        value = _header_text(raw_value)
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    path = path.split("?", 1)[0]
    query_string = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    return HttpRequest(
        method=scope["method"],
        raw_path=path,
        query_string=query_string,
        headers=headers,
        client_ip=client[0] if client else "127.0.0.1",
        query=_parse_query(query_string),
    )


def _header_text(raw: bytes) -> str:
    """Header values as SDKs sign them: UTF-8, with latin-1 for bytes that are not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _parse_query(query_string: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query_string.split("&") if query_string else []:
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def _header_bytes(scope: Scope) -> int:
    return sum(len(name) + len(value) + 4 for name, value in scope["headers"])


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge
        if chunk:
            chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_response(send: Send, receive: Receive, response: HttpResponse) -> None:
    headers = [
        (name.encode("latin-1", "replace"), value.encode("latin-1", "replace"))
        for name, value in response.headers
    ]
    if (
        response.stream is None
        and response.status not in (204, 304)
        and response.header("content-length") is None
    ):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if response.stream is None:
        await send({"type": "http.response.body", "body": response.body})
        return
    await _send_stream(send, receive, response)


async def _send_stream(send: Send, receive: Receive, response: HttpResponse) -> None:
    """Stream a body until it ends or the client goes away (the server does not tell a
    sender that its client left: a long stream such as a live tail would run on)."""
    stream = response.stream
    assert stream is not None

    async def pump() -> None:
        await send({"type": "http.response.body", "body": response.body, "more_body": True})
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    sending = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({sending, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, watching):
            task.cancel()
        await asyncio.gather(sending, watching, return_exceptions=True)
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
    if sending in done:
        sending.result()  # a failure while streaming is the server's to log


def _endpoint_url(request: HttpRequest, settings: Settings) -> str:
    host = request.host
    return f"http://{host}" if host else settings.endpoint_url


def _json_response(status: int, document: dict[str, Any]) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], orjson.dumps(document))


def _unroutable(
    request: HttpRequest, signing_name: str | None, request_id: str, router: Router
) -> HttpResponse:
    available = ", ".join(sorted(router.endpoints))
    if signing_name:
        message = f"squall does not provide the '{signing_name}' service (available: {available})."
    else:
        message = (
            "squall could not tell which service this request is for: sign it with SigV4 "
            f"(available services: {available})."
        )
    error = ServiceError("UnknownService", message, status=400 if signing_name else 404)
    return _generic_error(request, error, request_id)


def _generic_error(request: HttpRequest, error: ServiceError, request_id: str) -> HttpResponse:
    """An AWS-style error for a request no service claimed: JSON for JSON clients, else XML."""
    status = error.status or 400
    wants_json = "x-amz-target" in request.headers or "json" in request.content_type
    if wants_json:
        body = orjson.dumps({"__type": error.code, "message": error.message})
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", error.code),
        ]
        return HttpResponse(status, headers, body)
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    return HttpResponse(
        status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    )
