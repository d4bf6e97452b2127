"""Tests for squall.edge.protocols.eventstream and event-stream output in the REST protocols.

Everything squall encodes is read back with botocore's own event-stream parser, and whole
response bodies with the response parsers a boto3 client uses.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import HeadersDict
from botocore.eventstream import EventStreamBuffer, EventStreamMessage
from botocore.exceptions import EventStreamError
from botocore.model import OperationModel, ServiceModel, Shape, ShapeResolver
from botocore.parsers import EventStreamJSONParser, create_parser

from squall.core.context import RequestContext
from squall.core.errors import ServiceError
from squall.core.http import HttpRequest, HttpResponse
from squall.edge.protocols.eventstream import (
    CONTENT_TYPE,
    encode_error_event,
    encode_event,
    encode_events,
    encode_message,
)
from squall.edge.protocols.rest import RestJsonProtocol, RestXmlProtocol
from squall.services.base import Request, Response, Service, operation
from tests.support.aws import client
from tests.support.servers import squall_thread

SESSION = botocore.session.get_session()
LAMBDA: ServiceModel = SESSION.get_service_model("lambda")
INVOKE_STREAM: OperationModel = LAMBDA.operation_model("InvokeWithResponseStream")
EVENTS: Shape = INVOKE_STREAM.get_event_stream_output()  # type: ignore[assignment]
STREAM_PATH = "/2021-11-15/functions/fn/response-streaming-invocations"


# --------------------------------------------------------------------------- helpers


def decode_all(data: bytes, chunk: int = 0) -> list[EventStreamMessage]:
    """The messages in `data`, fed to botocore's buffer whole or in `chunk`-byte pieces."""
    buffer = EventStreamBuffer()
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    messages: list[EventStreamMessage] = []
    for piece in pieces:
        buffer.add_data(piece)
        messages.extend(buffer)
    return messages


def decode_one(data: bytes) -> EventStreamMessage:
    messages = decode_all(data)
    assert len(messages) == 1
    return messages[0]


async def from_list(events: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for event in events:
        yield event


def drain(stream: AsyncIterator[bytes]) -> bytes:
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in stream])

    return asyncio.run(collect())


class RawStream:
    """The raw body as botocore's `EventStream` reads it (urllib3's `stream()`)."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self.data = data
        self.chunk = chunk

    def stream(self) -> Any:
        for i in range(0, len(self.data), self.chunk):
            yield self.data[i : i + self.chunk]

    def close(self) -> None:
        pass


def parse_response(
    protocol: str, operation: OperationModel, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    """What a boto3 client makes of an event-stream response."""
    parser = create_parser(protocol)
    response = {
        "status_code": 200,
        "headers": HeadersDict(headers),
        "body": RawStream(body),
        "context": {"operation_name": operation.name},
    }
    return parser.parse(response, operation.output_shape)


def synthetic_events(members: dict[str, Any]) -> Shape:
    """An event-stream structure `Stream` with one event `Ev` whose members are `members`."""
    resolver = ShapeResolver(
        {
            "Stream": {
                "type": "structure",
                "eventstream": True,
                "members": {"Ev": {"shape": "Ev"}},
            },
            "Ev": {"type": "structure", "event": True, "members": members},
            "String": {"type": "string"},
            "Integer": {"type": "integer"},
        }
    )
    return resolver.get_shape_by_name("Stream")


# --------------------------------------------------------------------------- framing


def test_message_round_trips_through_botocore() -> None:
    headers = {":message-type": "event", ":event-type": "Ev", "note": "héllo ✓"}
    frame = encode_message(headers, b"\x00payload\xff")
    message = decode_one(frame)
    assert message.headers == headers
    assert message.payload == b"\x00payload\xff"
    total, headers_length, prelude_crc = struct.unpack(">III", frame[:12])
    assert total == len(frame)
    assert headers_length == len(frame) - 12 - len(b"\x00payload\xff") - 4
    assert prelude_crc == zlib.crc32(frame[:8]) == message.prelude.crc
    assert struct.unpack(">I", frame[-4:])[0] == zlib.crc32(frame[:-4]) == message.crc


def test_header_wire_format() -> None:
    frame = encode_message({"ab": "xyz"}, b"")
    assert frame[12:-4] == b"\x02ab\x07\x00\x03xyz"


def test_messages_split_across_chunks() -> None:
    frames = [encode_message({"n": str(i)}, bytes([i]) * i) for i in range(20)]
    messages = decode_all(b"".join(frames), chunk=5)
    assert [m.headers["n"] for m in messages] == [str(i) for i in range(20)]
    assert [m.payload for m in messages] == [bytes([i]) * i for i in range(20)]


def test_empty_message() -> None:
    message = decode_one(encode_message({}, b""))
    assert message.headers == {}
    assert message.payload == b""


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        ({"x" * 256: "v"}, b""),
        ({"": "v"}, b""),
        ({"h": "v" * 65536}, b""),
        ({}, b"\x00" * (24 * 1024 * 1024 + 1)),
    ],
)
def test_limits_are_refused(headers: dict[str, str], payload: bytes) -> None:
    with pytest.raises(ValueError):
        encode_message(headers, payload)


# --------------------------------------------------------------------------- events


def test_blob_payload_event() -> None:
    message = decode_one(encode_event(EVENTS, {"PayloadChunk": {"Payload": b"\x00\x01 data"}}))
    assert message.headers == {
        ":message-type": "event",
        ":event-type": "PayloadChunk",
        ":content-type": "application/octet-stream",
    }
    assert message.payload == b"\x00\x01 data"


def test_structure_event_is_a_json_body() -> None:
    event = {"InvokeComplete": {"ErrorCode": "Unhandled", "LogResult": "bG9ncw=="}}
    message = decode_one(encode_event(EVENTS, event))
    assert message.headers[":event-type"] == "InvokeComplete"
    assert message.headers[":content-type"] == "application/json"
    assert message.payload == b'{"ErrorCode":"Unhandled","LogResult":"bG9ncw=="}'
    parsed = EventStreamJSONParser().parse(message.to_response_dict(), EVENTS)
    assert parsed == {"InvokeComplete": {"ErrorCode": "Unhandled", "LogResult": "bG9ncw=="}}


def test_empty_event() -> None:
    message = decode_one(encode_event(EVENTS, {"InvokeComplete": {}}))
    assert message.payload == b"{}"
    message = decode_one(encode_event(EVENTS, {"InvokeComplete": None}))
    assert message.payload == b"{}"


def test_event_headers_and_string_payload() -> None:
    shape = synthetic_events(
        {
            "Id": {"shape": "String", "eventheader": True},
            "Text": {"shape": "String", "eventpayload": True},
        }
    )
    message = decode_one(encode_event(shape, {"Ev": {"Id": "42", "Text": "hé"}}))
    assert message.headers == {
        ":message-type": "event",
        ":event-type": "Ev",
        "Id": "42",
        ":content-type": "text/plain",
    }
    assert message.payload == "hé".encode()
    parsed = EventStreamJSONParser().parse(message.to_response_dict(), shape)
    assert parsed == {"Ev": {"Id": "42", "Text": "hé"}}


def test_header_members_stay_out_of_the_body() -> None:
    shape = synthetic_events(
        {"Id": {"shape": "String", "eventheader": True}, "Count": {"shape": "Integer"}}
    )
    message = decode_one(encode_event(shape, {"Ev": {"Id": "7", "Count": 3}}))
    assert message.headers["Id"] == "7"
    assert message.payload == b'{"Count":3}'
    parsed = EventStreamJSONParser().parse(message.to_response_dict(), shape)
    assert parsed == {"Ev": {"Id": "7", "Count": 3}}


def test_non_string_event_header_is_not_implemented() -> None:
    shape = synthetic_events({"N": {"shape": "Integer", "eventheader": True}})
    with pytest.raises(NotImplementedError, match="string event headers only"):
        encode_event(shape, {"Ev": {"N": 1}})


@pytest.mark.parametrize(
    "event",
    [{}, {"PayloadChunk": {}, "InvokeComplete": {}}, {"Nope": {}}],
)
def test_bad_events_are_refused(event: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        encode_event(EVENTS, event)


def test_modeled_exception_event() -> None:
    model = SESSION.get_service_model("bedrock-runtime")
    shape = model.operation_model("InvokeModelWithResponseStream").get_event_stream_output()
    frame = encode_event(shape, {"throttlingException": {"message": "slow down"}})
    message = decode_one(frame)
    assert message.headers == {
        ":message-type": "exception",
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
    }
    parsed = EventStreamJSONParser().parse(message.to_response_dict(), shape)
    assert parsed["Error"] == {"Code": "throttlingException", "Message": "slow down"}


def test_error_event() -> None:
    message = decode_one(encode_error_event("ServiceException", "it broke"))
    assert message.headers == {
        ":message-type": "error",
        ":error-code": "ServiceException",
        ":error-message": "it broke",
    }
    assert message.payload == b""
    parsed = EventStreamJSONParser().parse(message.to_response_dict(), EVENTS)
    assert parsed["Error"] == {"Code": "ServiceException", "Message": "it broke"}


def test_a_failing_stream_ends_with_an_error_event() -> None:
    async def failing(error: Exception) -> AsyncIterator[dict[str, Any]]:
        yield {"PayloadChunk": {"Payload": b"first"}}
        raise error

    body = drain(encode_events(EVENTS, failing(ServiceError("Throttled", "too many"))))
    first, last = decode_all(body)
    assert first.payload == b"first"
    assert last.headers[":error-code"] == "Throttled"
    assert last.headers[":error-message"] == "too many"

    body = drain(encode_events(EVENTS, failing(RuntimeError("bug"))))
    assert decode_all(body)[-1].headers[":error-code"] == "InternalFailure"


# --------------------------------------------------------------------------- whole responses


def invoke_stream_events() -> list[dict[str, Any]]:
    return [
        {"PayloadChunk": {"Payload": b'{"part": 1}'}},
        {"PayloadChunk": {"Payload": b"\x00" * 70000}},
        {"InvokeComplete": {"LogResult": "bG9ncw=="}},
    ]


def test_botocore_reads_an_invoke_with_response_stream_body() -> None:
    body = b"".join(encode_event(EVENTS, event) for event in invoke_stream_events())
    headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Executed-Version": "$LATEST"}
    parsed = parse_response("rest-json", INVOKE_STREAM, headers, body)
    assert parsed["ExecutedVersion"] == "$LATEST"
    assert list(parsed["EventStream"]) == invoke_stream_events()


def serialize(
    protocol: RestJsonProtocol | RestXmlProtocol,
    operation: OperationModel,
    output: dict[str, Any],
    path: str,
) -> HttpResponse:
    return protocol.serialize(HttpRequest("POST", path), operation, output, "req-1")


def test_rest_json_serializes_an_event_stream_output() -> None:
    output = {
        "StatusCode": 200,
        "ExecutedVersion": "$LATEST",
        "EventStream": from_list(invoke_stream_events()),
    }
    response = serialize(RestJsonProtocol(), INVOKE_STREAM, output, STREAM_PATH)
    assert response.status == 200
    assert response.header("content-type") == CONTENT_TYPE
    assert response.header("content-length") is None
    assert response.body == b""
    assert response.stream is not None
    body = drain(response.stream)
    parsed = parse_response("rest-json", INVOKE_STREAM, dict(response.headers), body)
    assert parsed["StatusCode"] == 200
    assert parsed["ExecutedVersion"] == "$LATEST"
    assert parsed["ResponseStreamContentType"] == CONTENT_TYPE  # as AWS answers
    assert list(parsed["EventStream"]) == invoke_stream_events()


def test_the_event_stream_content_type_wins_over_a_header_member() -> None:
    output = {"ResponseStreamContentType": "text/plain", "EventStream": from_list([])}
    response = serialize(RestJsonProtocol(), INVOKE_STREAM, output, STREAM_PATH)
    assert [v for k, v in response.headers if k.lower() == "content-type"] == [CONTENT_TYPE]


def test_rest_json_stream_error_reaches_the_client() -> None:
    async def events() -> AsyncIterator[dict[str, Any]]:
        yield {"PayloadChunk": {"Payload": b"partial"}}
        raise ServiceError("ServiceException", "the function failed")

    response = serialize(RestJsonProtocol(), INVOKE_STREAM, {"EventStream": events()}, STREAM_PATH)
    assert response.stream is not None
    body = drain(response.stream)
    stream = parse_response("rest-json", INVOKE_STREAM, dict(response.headers), body)
    received = []
    with pytest.raises(EventStreamError) as raised:
        for event in stream["EventStream"]:
            received.append(event)
    assert received == [{"PayloadChunk": {"Payload": b"partial"}}]
    assert raised.value.response["Error"] == {
        "Code": "ServiceException",
        "Message": "the function failed",
    }


def test_rest_xml_event_bodies_are_xml() -> None:
    s3 = SESSION.get_service_model("s3")
    select = s3.operation_model("SelectObjectContent")
    details = {"BytesScanned": 10, "BytesProcessed": 10, "BytesReturned": 4}
    events = [
        {"Records": {"Payload": b"a,b\n"}},
        {"Stats": {"Details": details}},
        {"End": {}},
    ]
    path = "/bucket/key?select&select-type=2"
    response = serialize(RestXmlProtocol(), select, {"Payload": from_list(events)}, path)
    assert response.header("content-type") == CONTENT_TYPE
    assert response.stream is not None
    body = drain(response.stream)
    stats = decode_all(body)[1]
    assert stats.headers[":content-type"] == "application/xml"
    assert b"<BytesScanned>10</BytesScanned>" in stats.payload
    parsed = parse_response("rest-xml", select, dict(response.headers), body)
    assert list(parsed["Payload"]) == events


def test_payloads_that_are_not_event_streams_keep_their_content_type() -> None:
    invoke = LAMBDA.operation_model("Invoke")
    response = serialize(
        RestJsonProtocol(),
        invoke,
        {"StatusCode": 200, "Payload": b"{}"},
        "/2015-03-31/functions/fn/invocations",
    )
    assert response.header("content-type") == "application/octet-stream"
    assert response.body == b"{}"


# --------------------------------------------------------------------------- over HTTP


class StreamingLambda(Service):
    name = "lambda"

    @operation("InvokeWithResponseStream")
    def invoke_with_response_stream(self, ctx: RequestContext, request: Request) -> Response:
        async def events() -> AsyncIterator[dict[str, Any]]:
            for index in range(3):
                await asyncio.sleep(0)
                yield {"PayloadChunk": {"Payload": f"chunk {index};".encode()}}
            yield {"InvokeComplete": {}}

        return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "EventStream": events()}


@pytest.mark.timeout(60)
def test_boto3_reads_a_streamed_invocation(tmp_path: Path) -> None:
    with squall_thread(tmp_path / "data", [StreamingLambda()]) as server:
        lambda_ = client(server.endpoint, "lambda")
        response = lambda_.invoke_with_response_stream(FunctionName="fn", Payload=b"{}")
        assert response["StatusCode"] == 200
        assert response["ExecutedVersion"] == "$LATEST"
        assert list(response["EventStream"]) == [
            {"PayloadChunk": {"Payload": b"chunk 0;"}},
            {"PayloadChunk": {"Payload": b"chunk 1;"}},
            {"PayloadChunk": {"Payload": b"chunk 2;"}},
            {"InvokeComplete": {}},
        ]
