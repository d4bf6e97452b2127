"""Invoke (synchronous, asynchronous, dry run), InvokeWithResponseStream and InvokeAsync, and the
delivery of queued asynchronous invocations with retries and destinations."""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from squall.core.context import RequestContext
from squall.core.errors import ServiceError
from squall.engine.async_queue import QueuedEvent, Reschedule
from squall.engine.concurrency import Throttled
from squall.engine.invoker import Invocation, Outcome
from squall.sandbox.results import SandboxUnavailable
from squall.services.base import Request, Response, operation

from .aliases import pick_version
from .core import LambdaCore
from .names import LATEST, FunctionRef, parse_function
from .registry import Function, Version
from .resources import DEFAULT_EVENT_AGE_S, DEFAULT_RETRY_ATTEMPTS

log = logging.getLogger(__name__)

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_SYNC_RESPONSE = 6291556  # Lambda's response limit is 100 bytes over the request's
MAX_ASYNC_PAYLOAD = 1024 * 1024
MAX_CLIENT_CONTEXT = 3583
STREAM_CHUNK = 64 * 1024
THROTTLE_RETRY_S = 1.0
MAX_THROTTLE_RETRY_S = 60.0
MAX_STREAM_RESPONSE = 20 * 1024 * 1024


class InvokeApi(LambdaCore):
    # ------------------------------------------------------------------ Invoke

    @operation("Invoke")
    async def invoke(self, ctx: RequestContext, request: Request) -> Response:
        kind = request.get("InvocationType") or "RequestResponse"
        payload = request.get("Payload") or b""
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        if kind == "Event":
            _check_event_size(payload)
            _check_json(payload)
            self._target(function, ref)  # the function and qualifier must exist
            await self.enqueue(ctx.request_id, function, ref.qualifier, payload, {})
            return {"StatusCode": 202, "Payload": b""}
        outcome, executed = await self._run_sync(ctx, request, function, ref, "InvokeFunction")
        if outcome is None:
            return {"StatusCode": 204, "Payload": b""}
        result: Response = {
            "StatusCode": 200,
            "Payload": outcome.result.payload,
            "ExecutedVersion": executed,
        }
        if outcome.function_error:
            result["FunctionError"] = outcome.function_error
        if request.get("LogType") == "Tail":
            result["LogResult"] = outcome.tail()
        return result

    @operation("InvokeWithResponseStream")
    async def invoke_with_response_stream(self, ctx: RequestContext, request: Request) -> Response:
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        outcome, executed = await self._run_sync(
            ctx,
            request,
            function,
            ref,
            "InvokeWithResponseStream",
            response_limit=MAX_STREAM_RESPONSE,
        )
        if outcome is None:
            return {"StatusCode": 204, "ExecutedVersion": executed}
        tail = outcome.tail() if request.get("LogType") == "Tail" else None
        return {
            "StatusCode": 200,
            "ExecutedVersion": executed,
            "EventStream": _stream_events(outcome, tail),
        }

    async def _run_sync(
        self,
        ctx: RequestContext,
        request: Request,
        function: Function,
        ref: FunctionRef,
        operation_name: str,
        *,
        response_limit: int = MAX_SYNC_RESPONSE,
    ) -> tuple[Outcome | None, str]:
        """A synchronous call (None for a dry run) and the version it ran (or would run)."""
        version, executed = self._target(function, ref)
        if (request.get("InvocationType") or "RequestResponse") == "DryRun":
            return None, executed
        payload = request.get("Payload") or b""
        _check_size(payload, MAX_SYNC_PAYLOAD, operation_name)
        _check_json(payload)
        outcome = await self._run(
            ctx.request_id,
            function,
            version,
            ref,
            payload,
            client_context=_client_context(request.get("ClientContext")),
            response_limit=response_limit,
        )
        return outcome, executed

    @operation("InvokeAsync")
    async def invoke_async(self, ctx: RequestContext, request: Request) -> Response:
        payload = request.get("InvokeArgs") or b""
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        ref = self.ref_of(ctx, request)
        function = self.function_of(ref)
        self._target(function, ref)
        _check_event_size(payload)
        _check_json(payload)
        await self.enqueue(ctx.request_id, function, ref.qualifier, payload, {})
        return {"Status": 202}

    # ------------------------------------------------------------------ shared

    def _target(self, function: Function, ref: FunctionRef) -> tuple[Version, str]:
        """The version one call runs (an alias picks by its weights) and its number."""
        qualifier = ref.qualifier
        if qualifier and qualifier in function.aliases:
            number = pick_version(function.aliases[qualifier])
            version = function.versions.get(number)
            if version is not None:
                return version, number
        version = self.version_of(function, ref, qualifier)
        return version, version.number

    async def _run(
        self,
        request_id: str,
        function: Function,
        version: Version,
        ref: FunctionRef,
        payload: bytes,
        *,
        client_context: str | None = None,
        response_limit: int = MAX_SYNC_RESPONSE,
    ) -> Outcome:
        spec = version.spec
        if spec is None:
            await self.prepare(version)
            spec = self.spec_for(function, version)
        call = Invocation(
            spec=spec,
            function=function.arn,
            request_id=request_id,
            payload=payload or b"{}",
            invoked_arn=ref.qualified_arn(),
            client_context=client_context,
        )
        try:
            outcome = await self.invoker.invoke(call)
        except SandboxUnavailable as exc:
            log.error("no sandbox for %s: %s", function.name, exc)
            raise ServiceError(
                "ServiceException", f"squall could not start a sandbox: {exc}", status=500
            ) from None
        if isinstance(outcome, Throttled):
            self.telemetry.throttle(function.arn, function.name, ref.qualifier)
            raise ServiceError(
                "TooManyRequestsException",
                "Rate Exceeded.",
                status=429,
                fields={"Reason": outcome.reason},
                headers={"Retry-After": "1"},
            )
        self.telemetry.invocation(
            function.arn,
            function.name,
            ref.qualifier,
            version.number,
            duration_ms=outcome.result.duration_ms,
            error=not outcome.result.ok,
            concurrent=outcome.concurrent,
            alias=self.alias_name(function, ref) is not None,
        )
        if len(outcome.result.payload) > response_limit:
            outcome.result.error_type = "Function.ResponseSizeTooLarge"
            outcome.result.payload = orjson.dumps(
                {
                    "errorMessage": "Response payload size exceeded maximum allowed payload size "
                    f"({response_limit} bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                }
            )
        return outcome

    # ------------------------------------------------------------------ asynchronous delivery

    async def enqueue(
        self,
        request_id: str,
        function: Function,
        qualifier: str | None,
        payload: bytes,
        context: dict[str, Any],
    ) -> None:
        """Accept an asynchronous invocation: committed to the queue before this returns."""
        now = time.time()
        await self.queue.put(
            QueuedEvent(
                id=request_id,
                target=function.arn,
                qualifier=qualifier,
                payload=payload,
                received_at=now,
                not_before=now,
                context=context,
            )
        )

    async def deliver(self, event: QueuedEvent) -> Reschedule | None:
        ref = parse_function(event.target, "", "", event.qualifier)
        function = self.registry.function(ref.key)
        if function is None:
            log.warning("dropping async event %s: %s no longer exists", event.id, event.target)
            return None
        try:
            version, executed = self._target(function, ref)
        except ServiceError:
            log.warning("dropping async event %s: %s is gone", event.id, ref.qualified_arn())
            return None
        settings = function.event_invoke.get(ref.qualifier or LATEST, {})
        max_age = settings.get("MaximumEventAgeInSeconds", DEFAULT_EVENT_AGE_S)
        max_retries = settings.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS)
        now = time.time()
        self.telemetry.count(
            function.arn,
            function.name,
            ref.qualifier,
            "AsyncEventAge",
            (now - event.received_at) * 1000,
            unit="Milliseconds",
        )
        if now - event.received_at > max_age:
            await self._destination(
                function, ref, event, settings=settings, condition="EventAgeExceeded", ran=None
            )
            return None
        try:
            outcome = await self._run(event.id, function, version, ref, event.payload)
        except ServiceError as error:
            if error.code == "TooManyRequestsException":
                # throttled events wait, backing off up to a minute, without using an attempt
                throttles = int(event.context.get("throttles", 0)) + 1
                delay = min(MAX_THROTTLE_RETRY_S, THROTTLE_RETRY_S * 2 ** min(throttles - 1, 6))
                return Reschedule(
                    at=now + delay,
                    attempts=event.attempts,
                    context={**event.context, "throttles": throttles},
                )
            raise
        attempts = event.attempts + 1
        if outcome.result.ok:
            event.attempts = attempts
            await self._destination(
                function,
                ref,
                event,
                settings=settings,
                condition="Success",
                ran=(outcome, executed),
            )
            return None
        condition = "RetriesExhausted"
        if attempts <= max_retries:
            delay = self.retry_delay_s * (2 ** (attempts - 1))
            if time.time() + delay - event.received_at <= max_age:
                return Reschedule(at=time.time() + delay, attempts=attempts)
            condition = "EventAgeExceeded"  # retries were left, but not the time for one
        event.attempts = attempts
        await self._destination(
            function,
            ref,
            event,
            settings=settings,
            condition=condition,
            ran=(outcome, executed),
        )
        return None

    async def _destination(
        self,
        function: Function,
        ref: FunctionRef,
        event: QueuedEvent,
        *,
        settings: dict[str, Any],
        condition: str,
        ran: tuple[Outcome, str] | None,
    ) -> None:
        """Send the invocation record to OnSuccess / OnFailure (or the dead-letter queue)."""
        destinations = settings.get("DestinationConfig") or {}
        kind = "OnSuccess" if condition == "Success" else "OnFailure"
        target = (destinations.get(kind) or {}).get("Destination")
        if target is None and kind == "OnFailure":
            dead_letter = (function.latest.config.get("DeadLetterConfig") or {}).get("TargetArn")
            if dead_letter:
                self.telemetry.count(
                    function.arn, function.name, ref.qualifier, "DeadLetterErrors", 1
                )
                log.warning(
                    "async event %s for %s failed (%s); its dead-letter target %s is an SQS "
                    "queue or SNS topic, which squall does not provide yet",
                    event.id,
                    function.name,
                    condition,
                    dead_letter,
                )
            elif condition != "Success":
                log.info("async event %s for %s failed: %s", event.id, function.name, condition)
            return
        if target is None:
            return
        record = destination_record(
            ref.qualified_arn(ref.qualifier or LATEST), event, condition, ran
        )
        destination = parse_function(target, function.account, function.region)
        target_function = self.registry.function(destination.key)
        if ":function:" not in target or target_function is None:
            self.telemetry.count(
                function.arn, function.name, ref.qualifier, "DestinationDeliveryFailures", 1
            )
            log.warning(
                "async event %s for %s: destination %s is not a function squall has; "
                "SQS, SNS and EventBridge destinations arrive with those services",
                event.id,
                function.name,
                target,
            )
            return
        await self.enqueue(
            str(uuid.uuid4()),
            target_function,
            destination.qualifier,
            orjson.dumps(record),
            {"source": event.id},
        )


def destination_record(
    function_arn: str, event: QueuedEvent, condition: str, ran: tuple[Outcome, str] | None
) -> dict[str, Any]:
    """The invocation record Lambda sends to destinations."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")[:-6]
        + "Z",
        "requestContext": {
            "requestId": event.id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": max(1, event.attempts),
        },
        "requestPayload": _json_or_text(event.payload),
    }
    if ran is not None:
        outcome, executed = ran
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": executed}
        if outcome.function_error:
            response["functionError"] = outcome.function_error
        record["responseContext"] = response
        record["responsePayload"] = _json_or_text(outcome.result.payload)
    return record


def _json_or_text(payload: bytes) -> Any:
    if not payload:
        return None
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload.decode("utf-8", "replace")


async def _stream_events(outcome: Outcome, tail: str | None) -> AsyncIterator[dict[str, Any]]:
    payload = outcome.result.payload
    for start in range(0, len(payload), STREAM_CHUNK):
        yield {"PayloadChunk": {"Payload": payload[start : start + STREAM_CHUNK]}}
    complete: dict[str, Any] = {}
    if outcome.function_error:
        complete["ErrorCode"] = outcome.function_error
        complete["ErrorDetails"] = payload.decode("utf-8", "replace")
    if tail is not None:
        complete["LogResult"] = tail
    yield {"InvokeComplete": complete}


def _check_size(payload: bytes, limit: int, operation_name: str) -> None:
    if len(payload) > limit:
        raise ServiceError(
            "RequestTooLargeException",
            f"Request must be smaller than {limit} bytes for the {operation_name} operation",
            status=413,
        )


def _check_event_size(payload: bytes) -> None:
    if len(payload) > MAX_ASYNC_PAYLOAD:
        raise ServiceError(
            "RequestTooLargeException",
            f"{len(payload)} byte payload is too large for the Event invocation type "
            f"(limit {MAX_ASYNC_PAYLOAD} bytes)",
            status=413,
        )


def _check_json(payload: bytes) -> None:
    if not payload:
        return
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ServiceError(
            "InvalidRequestContentException",
            f"Could not parse request body into json: Could not parse payload into json: {exc}",
            status=400,
        ) from None


def _client_context(encoded: str | None) -> str | None:
    """The decoded JSON of the `ClientContext` header (base64 on the wire)."""
    if not encoded:
        return None
    if len(encoded) > MAX_CLIENT_CONTEXT:
        raise ServiceError(
            "InvalidRequestContentException",
            f"Client context must be at most {MAX_CLIENT_CONTEXT} bytes.",
            status=400,
        )
    try:
        text = base64.b64decode(encoded, validate=True).decode()
        orjson.loads(text)
    except (binascii.Error, UnicodeDecodeError, orjson.JSONDecodeError):
        raise ServiceError(
            "InvalidRequestContentException",
            "Client context must be a valid Base64-encoded JSON object.",
            status=400,
        ) from None
    return text
