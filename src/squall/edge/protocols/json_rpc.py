"""The `json` protocol (awsJson1_0 / awsJson1_1): POST / with X-Amz-Target and a JSON body.

An output with an event-stream member (CloudWatch Logs' StartLiveTail) is answered as
`application/vnd.amazon.eventstream`: botocore's JSON parser reads the first message, which
must be an `initial-response` event carrying the other output members as a JSON document, then
hands the rest of the body over as the stream's events.
"""

from __future__ import annotations

from typing import Any

import orjson
from botocore.model import OperationModel, ServiceModel, Shape

from squall.core.errors import ServiceError
from squall.core.http import HttpRequest, HttpResponse

from .base import (
    Protocol,
    error_fields,
    error_headers,
    inflate,
    message_key,
    status_of,
    type_and_headers,
)
from .documents import DecodeError, decode, encode
from .eventstream import CONTENT_TYPE as EVENT_STREAM_CONTENT_TYPE
from .eventstream import encode_events, encode_message


class JsonProtocol(Protocol):
    name = "json"

    def resolve_operation(self, request: HttpRequest, model: ServiceModel) -> OperationModel:
        target = request.headers.get("x-amz-target", "")
        _, _, name = target.rpartition(".")
        if not name or name not in model.operation_names:
            raise self.unknown_operation(target or "(missing X-Amz-Target)")
        return model.operation_model(name)

    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]:
        inflate(request, operation, self.malformed)
        document = load_json_object(request.body, self.malformed)
        if operation.input_shape is None:
            return {}
        try:
            return decode(operation.input_shape, document)
        except DecodeError as exc:
            raise self.malformed(str(exc)) from None

    def serialize(
        self,
        request: HttpRequest,
        operation: OperationModel,
        output: dict[str, Any],
        request_id: str,
    ) -> HttpResponse:
        shape = operation.output_shape
        headers = self._headers(request, operation.service_model, request_id)
        if shape is not None and operation.has_event_stream_output:
            return _event_stream_response(shape, output, headers)
        body = b"{}"
        if shape is not None and output:
            body = orjson.dumps(encode(shape, output))
        return HttpResponse(200, headers, body)

    def serialize_error(
        self,
        request: HttpRequest,
        model: ServiceModel,
        error: ServiceError,
        request_id: str,
    ) -> HttpResponse:
        wire_type, extra = type_and_headers(model, error)
        document = {"__type": wire_type, message_key(model, error.code): error.message}
        document.update(error_fields(error))
        headers = self._headers(request, model, request_id)
        headers.append(("x-amzn-ErrorType", wire_type))
        headers.extend(extra)
        headers.extend(error_headers(error))
        return HttpResponse(status_of(model, error), headers, orjson.dumps(document, default=str))

    @staticmethod
    def _headers(
        request: HttpRequest, model: ServiceModel, request_id: str
    ) -> list[tuple[str, str]]:
        content_type = request.content_type
        if not content_type.startswith("application/x-amz-json"):
            version = model.metadata.get("jsonVersion", "1.0")
            content_type = f"application/x-amz-json-{version}"
        return [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]


def _event_stream_response(
    shape: Shape, output: dict[str, Any], headers: list[tuple[str, str]]
) -> HttpResponse:
    """The event-stream body: an `initial-response` event with the output's other members,
    then the frames of the events the operation hands over (an async iterator of
    `{event_name: value}` dicts) with JSON bodies. `headers` are the protocol's own (the JSON
    content type first), which the event-stream content type replaces."""
    stream_name: str = shape.event_stream_name  # type: ignore[attr-defined]
    (_, json_type), *others = headers
    headers = [("Content-Type", EVENT_STREAM_CONTENT_TYPE), *others]
    rest = {name: value for name, value in output.items() if name != stream_name}
    document = orjson.dumps(encode(shape, rest)) if rest else b"{}"
    initial = encode_message(
        {
            ":message-type": "event",
            ":event-type": "initial-response",
            ":content-type": json_type,
        },
        document,
    )
    events = output.get(stream_name)
    if events is None:
        return HttpResponse(200, headers, initial)
    member = shape.members[stream_name]  # type: ignore[attr-defined]
    frames = encode_events(member, events, body_type=json_type)
    return HttpResponse(200, headers, initial, stream=frames)


def load_json_object(body: bytes, malformed: Any) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is an empty object."""
    if not body.strip():
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise malformed("The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise malformed("The request body must be a JSON object.")
    return document
