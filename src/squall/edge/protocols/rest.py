"""The REST protocols (`rest-json`, `rest-xml`): operations addressed by method and URI template,
members bound to the URI, query string, headers and body."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape

import orjson
from botocore.model import OperationModel, ServiceModel, Shape

from squall.core.errors import ServiceError
from squall.core.http import RESPONSE_STATUS, HttpRequest, HttpResponse

from .base import (
    Protocol,
    error_code,
    error_fields,
    error_headers,
    inflate,
    message_key,
    status_of,
    wire_safe,
)
from .documents import DecodeError, decode, encode
from .eventstream import CONTENT_TYPE as EVENT_STREAM_CONTENT_TYPE
from .eventstream import BodyEncoder, encode_events
from .json_rpc import load_json_object
from .routes import find_route, path_parts, route_of
from .values import b64decode, b64encode, format_scalar_text, format_timestamp
from .xml import (
    local_name,
    parse_scalar_text,
    parse_xml,
    read_element,
    write_element,
    write_members,
)

Header = tuple[str, str]
Payload = bytes | AsyncIterator[bytes]

_BODYLESS_LOCATIONS = ("uri", "querystring", "header", "headers", "statusCode")
_MALFORMED_XML = (
    "The XML you provided was not well-formed or did not validate against our published schema"
)


class RestProtocol(Protocol):
    """What rest-json and rest-xml share; subclasses supply the body format."""

    def resolve_operation(self, request: HttpRequest, model: ServiceModel) -> OperationModel:
        found = find_route(
            model.service_name,
            request.method,
            request.raw_path,
            dict(request.query),
            request.headers,
        )
        if found is None:
            raise self.unknown_operation(f"{request.method} {request.path}")
        return model.operation_model(found[0].operation_name)

    def unknown_operation(self, name: str) -> ServiceError:
        return ServiceError("UnknownOperationException", f"Unknown operation: {name}", status=404)

    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]:
        inflate(request, operation, self.malformed)
        shape = operation.input_shape
        if shape is None:
            return {}
        route = route_of(operation.service_model.service_name, operation.name)
        labels = route.match(path_parts(request.raw_path), dict(request.query)) or {}
        literals = {key for key, _ in route.query_literals}
        try:
            params = self._parse_located(request, shape, labels, literals)
        except DecodeError as exc:
            raise self.malformed_parameter(str(exc)) from None
        try:
            params.update(self._parse_body(request, shape))
        except DecodeError as exc:
            raise self.malformed(str(exc)) from None
        return params

    def _parse_located(
        self, request: HttpRequest, shape: Shape, labels: dict[str, str], literals: set[str]
    ) -> dict[str, Any]:
        """Members bound to the URI, query string and headers. `literals` are the query keys
        of the operation's own `requestUri` (`?tagging`): never members."""
        params: dict[str, Any] = {}
        claimed_query: set[str] = set(literals)
        query_map_member: tuple[str, Shape] | None = None
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "uri":
                if wire in labels:
                    params[name] = parse_scalar_text(member, labels[wire], name)
            elif location == "querystring":
                if member.type_name == "map":
                    query_map_member = (name, member)
                    continue
                claimed_query.add(wire)
                value = _query_member(request, member, wire, name)
                if value is not None:
                    params[name] = value
            elif location == "header":
                text = request.headers.get(wire.lower())
                if text is not None:
                    params[name] = _header_value(member, text, name)
            elif location == "headers":
                prefix = wire.lower()
                found = {
                    key[len(prefix) :]: value
                    for key, value in request.headers.items()
                    if key.startswith(prefix)
                }
                if found:
                    params[name] = found
        if query_map_member is not None:
            name, member = query_map_member
            params[name] = _query_map(request, member, claimed_query)
        return params

    def _parse_body(self, request: HttpRequest, shape: Shape) -> dict[str, Any]:
        payload = shape.serialization.get("payload")
        if payload:
            member = shape.members[payload]  # type: ignore[attr-defined]
            if member.type_name == "blob":
                if request.stream is not None:
                    return {payload: request.stream}
                return {payload: request.body} if request.body else {}
            if member.type_name == "string":
                return {payload: request.body.decode("utf-8", "replace")} if request.body else {}
            if not request.body.strip():
                return {}
            return {payload: self.decode_body(member, request.body, payload_member=member)}
        if not any(
            m.serialization.get("location") not in _BODYLESS_LOCATIONS
            for m in shape.members.values()  # type: ignore[attr-defined]
        ):
            return {}
        if not request.body.strip():
            return {}
        return self.decode_body(shape, request.body, payload_member=None)

    @abstractmethod
    def decode_body(self, shape: Shape, body: bytes, *, payload_member: Shape | None) -> Any:
        """The body members of `shape` decoded from the body."""

    @abstractmethod
    def encode_body(
        self, model: ServiceModel, shape: Shape, value: dict[str, Any], *, root: str
    ) -> bytes:
        """The body document for the body members of `shape`."""

    content_type = "application/json"

    def serialize(
        self,
        request: HttpRequest,
        operation: OperationModel,
        output: dict[str, Any],
        request_id: str,
    ) -> HttpResponse:
        status = int(output.get(RESPONSE_STATUS) or operation.http.get("responseCode", 200))
        headers = self.response_headers(operation.service_model, request_id)
        shape = operation.output_shape
        payload: Payload = b""
        if shape is not None:
            status, payload = self._serialize_output(
                operation.service_model,
                shape,
                output,
                headers,
                status=status,
                root=_output_root(operation),
            )
        if isinstance(payload, bytes):
            response = HttpResponse(status, headers, payload)
        else:
            response = HttpResponse(status, headers, stream=payload)
        return _framed(request, response)

    def _serialize_output(
        self,
        model: ServiceModel,
        shape: Shape,
        output: dict[str, Any],
        headers: list[Header],
        *,
        status: int,
        root: str,
    ) -> tuple[int, Payload]:
        body_members: dict[str, Any] = {}
        has_body_members = False
        payload = shape.serialization.get("payload")
        if payload and shape.members[payload].type_name in ("blob", "string"):  # type: ignore[attr-defined]
            _set_header(headers, "Content-Type", "application/octet-stream")
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            location = member.serialization.get("location")
            value = output.get(name)
            if location not in _BODYLESS_LOCATIONS:
                has_body_members = True
                if value is not None:
                    body_members[name] = value
                continue
            if value is None:
                continue
            wire = member.serialization.get("name", name)
            if location == "statusCode":
                status = int(value)
            elif location == "header":
                _set_header(headers, wire, wire_safe(_header_text(member, value)))
            elif location == "headers":
                headers.extend((f"{wire}{k}", wire_safe(str(v))) for k, v in value.items())
        if payload:
            if shape.members[payload].serialization.get("eventstream"):  # type: ignore[attr-defined]
                # the body's framing, whatever a `Content-Type` header member says
                _set_header(headers, "Content-Type", EVENT_STREAM_CONTENT_TYPE)
            return status, self._payload(model, shape, payload, output)
        if not has_body_members:
            return status, b""
        return status, self.encode_body(model, shape, body_members, root=root)

    def _payload(
        self, model: ServiceModel, shape: Shape, name: str, output: dict[str, Any]
    ) -> Payload:
        """The body of an output whose `payload` member `name` is the whole body."""
        member = shape.members[name]  # type: ignore[attr-defined]
        value = output.get(name)
        if value is None:
            return b""
        if member.serialization.get("eventstream"):
            # an async iterator of `{event_name: value}` dicts
            return encode_events(
                member, value, encode_body=self._event_body(model), body_type=self.content_type
            )
        if member.type_name not in ("blob", "string"):
            root = member.serialization.get("name", member.name)
            return self.encode_body(model, member, value, root=root)
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        return value  # an async iterator of chunks: a streamed blob

    def _event_body(self, model: ServiceModel) -> BodyEncoder:
        """Event bodies in the protocol's own document format."""

        def encode_event_body(shape: Shape, value: Any) -> bytes:
            return self.encode_body(
                model, shape, value, root=shape.serialization.get("name", shape.name)
            )

        return encode_event_body

    def response_headers(self, model: ServiceModel, request_id: str) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type), ("x-amzn-RequestId", request_id)]


class RestJsonProtocol(RestProtocol):
    name = "rest-json"
    content_type = "application/json"

    def decode_body(self, shape: Shape, body: bytes, *, payload_member: Shape | None) -> Any:
        document = load_json_object(body, self.malformed)
        if payload_member is not None:
            return decode(payload_member, document)
        result = decode(shape, document)
        return {
            name: value
            for name, value in result.items()
            if shape.members[name].serialization.get("location") is None  # type: ignore[attr-defined]
        }

    def encode_body(
        self, model: ServiceModel, shape: Shape, value: dict[str, Any], *, root: str
    ) -> bytes:
        return orjson.dumps(encode(shape, value))

    def serialize_error(
        self,
        request: HttpRequest,
        model: ServiceModel,
        error: ServiceError,
        request_id: str,
    ) -> HttpResponse:
        code = error_code(model, error)
        document: dict[str, Any] = {
            "Type": "User" if error.sender_fault else "Service",
            message_key(model, error.code): error.message,
        }
        document.update(error_fields(error))
        headers = self.response_headers(model, request_id)
        headers.append(("x-amzn-ErrorType", code))
        headers.extend(error_headers(error))
        body = b"" if request.method == "HEAD" else orjson.dumps(document, default=str)
        return HttpResponse(status_of(model, error), headers, body)


class RestXmlProtocol(RestProtocol):
    name = "rest-xml"
    content_type = "application/xml"

    def decode_body(self, shape: Shape, body: bytes, *, payload_member: Shape | None) -> Any:
        try:
            root = parse_xml(body)
        except ParseError:
            raise self.malformed(_MALFORMED_XML) from None
        if payload_member is not None:
            expected = payload_member.serialization.get("name", payload_member.name)
            if local_name(root.tag) != expected:
                raise self.malformed(_MALFORMED_XML)
        return read_element(payload_member or shape, root)

    def encode_body(
        self, model: ServiceModel, shape: Shape, value: dict[str, Any], *, root: str
    ) -> bytes:
        out = ['<?xml version="1.0" encoding="UTF-8"?>']
        if root == "LocationConstraint" and model.service_name == "s3":
            # S3's GetBucketLocation answers a bare element whose text is the region
            xmlns = escape(_xml_namespace(model))
            text = escape(str(value.get("LocationConstraint") or ""))
            out.append(f'<LocationConstraint xmlns="{xmlns}">{text}</LocationConstraint>')
            return "".join(out).encode()
        namespace = shape.serialization.get("xmlNamespace")
        if namespace or shape.type_name != "structure":
            write_element(shape, value, root, out)
        else:
            xmlns = _xml_namespace(model)
            out.append(f'<{root} xmlns="{escape(xmlns)}">' if xmlns else f"<{root}>")
            write_members(shape, value, out)
            out.append(f"</{root}>")
        return "".join(out).encode()

    def malformed(self, message: str) -> ServiceError:
        return ServiceError("MalformedXML", message, status=400)

    def malformed_parameter(self, message: str) -> ServiceError:
        return ServiceError("InvalidArgument", message, status=400)

    def unknown_operation(self, name: str) -> ServiceError:
        return ServiceError(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            status=405,
        )

    def response_headers(self, model: ServiceModel, request_id: str) -> list[tuple[str, str]]:
        return [
            ("Content-Type", self.content_type),
            ("x-amz-request-id", request_id),
            ("x-amzn-RequestId", request_id),
        ]

    def serialize_error(
        self,
        request: HttpRequest,
        model: ServiceModel,
        error: ServiceError,
        request_id: str,
    ) -> HttpResponse:
        code = escape(error_code(model, error))
        details = "".join(
            f"<{key}>{escape(format_scalar_text(value))}</{key}>"
            for key, value in error_fields(error).items()
        )
        inner = f"<Code>{code}</Code><Message>{escape(error.message)}</Message>{details}"
        if model.service_name == "s3":
            document = f"<Error>{inner}<RequestId>{request_id}</RequestId></Error>"
        else:
            fault = "Sender" if error.sender_fault else "Receiver"
            document = (
                f"<ErrorResponse><Error><Type>{fault}</Type>{inner}</Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        headers = self.response_headers(model, request_id)
        headers.extend(error_headers(error))
        body = b""
        if request.method != "HEAD" and error.status != 304:
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n' + document).encode()
        return HttpResponse(status_of(model, error), headers, body)


# The root elements of S3's XML results. botocore's model names the output shapes
# `...Output` and drops the names S3 actually sends; other rest-xml services' shapes
# carry the right names (`...Response`, `...Result`).
_S3_RESULT_ROOTS = {
    "CompleteMultipartUpload": "CompleteMultipartUploadResult",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "CreateSession": "CreateSessionResult",
    "DeleteObjects": "DeleteResult",
    "GetBucketAccelerateConfiguration": "AccelerateConfiguration",
    "GetBucketAcl": "AccessControlPolicy",
    "GetBucketCors": "CORSConfiguration",
    "GetBucketLifecycle": "LifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "LifecycleConfiguration",
    "GetBucketLocation": "LocationConstraint",
    "GetBucketLogging": "BucketLoggingStatus",
    "GetBucketNotification": "NotificationConfiguration",
    "GetBucketNotificationConfiguration": "NotificationConfiguration",
    "GetBucketRequestPayment": "RequestPaymentConfiguration",
    "GetBucketTagging": "Tagging",
    "GetBucketVersioning": "VersioningConfiguration",
    "GetBucketWebsite": "WebsiteConfiguration",
    "GetObjectAcl": "AccessControlPolicy",
    "GetObjectAttributes": "GetObjectAttributesResponse",
    "GetObjectTagging": "Tagging",
    "ListBucketAnalyticsConfigurations": "ListBucketAnalyticsConfigurationResult",
    "ListBucketInventoryConfigurations": "ListInventoryConfigurationsResult",
    "ListBucketMetricsConfigurations": "ListMetricsConfigurationsResult",
    "ListBuckets": "ListAllMyBucketsResult",
    "ListDirectoryBuckets": "ListAllMyDirectoryBucketsResult",
    "ListMultipartUploads": "ListMultipartUploadsResult",
    "ListObjectVersions": "ListVersionsResult",
    "ListObjects": "ListBucketResult",
    "ListObjectsV2": "ListBucketResult",
    "ListParts": "ListPartsResult",
}


def _output_root(operation: OperationModel) -> str:
    """The root element (rest-xml) of an output body that is not a single payload member."""
    if operation.service_model.service_name == "s3" and operation.name in _S3_RESULT_ROOTS:
        return _S3_RESULT_ROOTS[operation.name]
    shape = operation.output_shape
    assert shape is not None
    return shape.serialization.get("name", shape.name)


def _xml_namespace(model: ServiceModel) -> str:
    namespace = model.metadata.get("xmlNamespace")
    if isinstance(namespace, dict):
        return namespace.get("uri", "")
    if namespace:
        return str(namespace)
    if model.service_name == "s3":
        return "http://s3.amazonaws.com/doc/2006-03-01/"
    return ""


def _query_member(request: HttpRequest, member: Shape, wire: str, name: str) -> Any:
    values = [value for key, value in request.query if key == wire]
    if not values:
        return None
    if member.type_name == "list":
        inner = member.member  # type: ignore[attr-defined]
        return [parse_scalar_text(inner, value, name) for value in values]
    return parse_scalar_text(member, values[0], name)


def _query_map(request: HttpRequest, member: Shape, claimed: set[str]) -> dict[str, Any]:
    multi = member.value.type_name == "list"  # type: ignore[attr-defined]
    result: dict[str, Any] = {}
    for key, value in request.query:
        if key in claimed:
            continue
        if multi:
            result.setdefault(key, []).append(value)
        else:
            result.setdefault(key, value)
    return result


def _header_value(member: Shape, text: str, name: str) -> Any:
    if member.serialization.get("jsonvalue"):
        try:
            return orjson.loads(b64decode(text))
        except Exception:
            raise DecodeError(name, "Invalid JSON value in header") from None
    if member.type_name == "list":
        inner = member.member  # type: ignore[attr-defined]
        return [parse_scalar_text(inner, part.strip(), name) for part in text.split(",")]
    return parse_scalar_text(member, text.strip() if member.type_name != "string" else text, name)


def _header_text(member: Shape, value: Any) -> str:
    if member.serialization.get("jsonvalue"):
        return b64encode(orjson.dumps(value))
    if member.type_name == "timestamp":
        return str(format_timestamp(value, member.serialization.get("timestampFormat", "rfc822")))
    if member.type_name == "list":
        return ",".join(format_scalar_text(item) for item in value)
    if member.type_name == "blob":
        return b64encode(value)
    return format_scalar_text(value)


def _set_header(headers: list[Header], name: str, value: str) -> None:
    """Set a header, replacing any earlier value (a protocol default such as Content-Type)."""
    lowered = name.lower()
    headers[:] = [(key, item) for key, item in headers if key.lower() != lowered]
    headers.append((name, value))


def _framed(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Settle Content-Length between a modeled `Content-Length` header member and the edge.

    The edge frames an unstreamed body itself unless the response declares its length, so a
    member's value is dropped when a body is sent (two differing values make clients reject
    the response). A HEAD answer has no body but keeps the length of the entity it describes.
    """
    declared = response.header("content-length")
    if request.method == "HEAD":
        response.body = b""
    elif declared is not None and response.stream is None:
        response.headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
    return response
