"""Wire-protocol round trips with real botocore operations over real HTTP.

boto3 serializes → squall's edge parses (routing, SigV4, protocol, validation) → an echo handler
(tests/support/echo_services.py) records exactly what it received and answers from it → squall
serializes → boto3 parses. Each protocol botocore speaks is covered: rest-json (lambda), rest-xml
(s3), json 1.0 and 1.1 (dynamodb, logs), query (sns, iam) and smithy-rpc-v2-cbor (cloudwatch,
which also accepts json and query), then validation, unknown operations and malformed input,
which must always be answered with a 4xx in the protocol's own format: never a 500, never a hang.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import boto3
import botocore.session
import cbor2
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.loaders import Loader

from squall.services.sts import StsService
from tests.support.aws import ACCESS_KEY, REGION, SECRET_KEY, client, signed_request
from tests.support.echo_services import (
    FIXED_TIME,
    CloudWatchEcho,
    DynamoDBEcho,
    IamEcho,
    LambdaEcho,
    LogsEcho,
    S3Echo,
    SdbEcho,
    SnsEcho,
)
from tests.support.servers import squall_thread

pytestmark = pytest.mark.timeout(60)

MAX_BODY = 1024 * 1024
ROLE = "arn:aws:iam::000000000000:role/echo"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON_10 = "application/x-amz-json-1.0"
JSON_11 = "application/x-amz-json-1.1"
CBOR_PATH = "/service/GraniteServiceVersion20100801/operation/"
CBOR_HEADERS = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
OVERSIZED_HEADERS = {f"X-Padding-{i}": "p" * 1000 for i in range(20)}  # ~20 KiB > 16 KiB


def _json(target: str, version: str = JSON_10) -> dict[str, str]:
    return {"Content-Type": version, "X-Amz-Target": target}


@dataclass
class Echo:
    """The running server and the test doubles behind it."""

    lambda_: LambdaEcho = field(default_factory=LambdaEcho)
    s3: S3Echo = field(default_factory=S3Echo)
    dynamodb: DynamoDBEcho = field(default_factory=DynamoDBEcho)
    logs: LogsEcho = field(default_factory=LogsEcho)
    sns: SnsEcho = field(default_factory=SnsEcho)
    iam: IamEcho = field(default_factory=IamEcho)
    cloudwatch: CloudWatchEcho = field(default_factory=CloudWatchEcho)
    sdb: SdbEcho = field(default_factory=SdbEcho)
    endpoint: str = ""
    port: int = 0
    models: Path = Path()

    def services(self) -> list[Any]:
        doubles = [self.lambda_, self.s3, self.dynamodb, self.logs, self.sns, self.iam]
        return [*doubles, self.cloudwatch, self.sdb, StsService()]


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Echo]:
    state = Echo(models=tmp_path_factory.mktemp("models"))
    data_dir = tmp_path_factory.mktemp("protocols-data")
    with squall_thread(data_dir, state.services(), max_body_bytes=MAX_BODY) as server:
        state.endpoint, state.port = server.endpoint, server.port
        yield state


# --------------------------------------------------------------------------- helpers


def assert_exactly(actual: Any, expected: Any, path: str = "$") -> None:
    """Equal values of the same types all the way down (1 is not 1.0, b"x" is not "x")."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} is not {type(expected)}"
    if isinstance(expected, dict):
        assert set(actual) == set(expected), f"{path}: keys {set(actual)} != {set(expected)}"
        for key, item in expected.items():
            assert_exactly(actual[key], item, f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for index, item in enumerate(expected):
            assert_exactly(actual[index], item, f"{path}[{index}]")
    elif isinstance(expected, datetime):
        assert actual.tzinfo is not None, f"{path}: naive datetime {actual!r}"
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def sent_requests(boto_client: Any) -> list[Any]:
    """The requests the client puts on the wire from now on (after signing)."""
    seen: list[Any] = []
    boto_client.meta.events.register("before-send", lambda request, **_: seen.append(request))
    return seen


def client_error(call: Callable[[], Any]) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def narrowed_client(echo: Echo, service: str, protocol: str, **config: Any) -> Any:
    """A boto3 client whose copy of the service model lists only `protocol`.

    botocore picks the first protocol of its own priority list (json before cbor before query),
    so this is how real botocore serializers and parsers speak CloudWatch's other protocols.
    """
    directory = echo.models / f"{service}-{protocol}"
    if not directory.exists():
        model = Loader().load_service_model(service, "service-2")
        model["metadata"]["protocols"] = [protocol]
        model["metadata"]["protocol"] = protocol
        target = directory / service / model["metadata"]["apiVersion"]
        target.mkdir(parents=True)
        (target / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.Session()
    session.set_config_variable("data_path", str(directory))
    return boto3.session.Session(botocore_session=session).client(
        service,
        endpoint_url=echo.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def via_proxy(
    echo: Echo, method: str, url: str, *, body: bytes = b"", headers: dict[str, str] | None = None
) -> requests.Response:
    """A signed request for `url` (any host name) delivered to squall as an HTTP proxy would.

    Names like `bucket.localhost` do not resolve everywhere; through a proxy the client never
    resolves them and squall sees the request with the `Host` it was signed for.
    """
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    prepared = request.prepare()
    return requests.request(
        method,
        prepared.url,
        data=body,
        headers=dict(prepared.headers),
        proxies={"http": echo.endpoint},
        timeout=30,
    )


# Error documents, checked to be in the named protocol's format; each returns the error code.


def json_error(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/x-amz-json-1.")
    return response.json()["__type"]


def rest_json_error(response: requests.Response) -> str:
    assert response.headers["Content-Type"] == "application/json"
    assert "message" in {key.lower() for key in response.json()}
    return response.headers["x-amzn-ErrorType"]


def s3_error(response: requests.Response) -> str:
    assert response.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    assert root.findtext("RequestId")
    return root.findtext("Code") or ""


def query_error(response: requests.Response) -> str:
    assert response.headers["Content-Type"] == "text/xml"
    root = ET.fromstring(response.content)
    assert root.tag.endswith("ErrorResponse")
    ns = {"q": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {}
    prefix = "q:" if ns else ""
    assert root.findtext(f"{prefix}Error/{prefix}Type", namespaces=ns) in ("Sender", "Receiver")
    return root.findtext(f"{prefix}Error/{prefix}Code", namespaces=ns) or ""


def cbor_error(response: requests.Response) -> str:
    assert response.headers["Content-Type"] == "application/cbor"
    assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
    document = cbor2.loads(response.content)
    assert isinstance(document["message"], str)
    return document["__type"]


# --------------------------------------------------------------------------- rest-json: lambda


def create_function(echo: Echo, name: str, **extra: Any) -> dict[str, Any]:
    arguments = {
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": b"PK\x03\x04" + bytes(range(256))},
        **extra,
    }
    return client(echo.endpoint, "lambda").create_function(**arguments)


def test_lambda_create_function_nested_input_and_output(echo: Echo) -> None:
    zipped = b"PK\x03\x04\x00\xff" + bytes(range(256)) * 4
    layers = [
        "arn:aws:lambda:us-east-1:000000000000:layer:deps:3",
        "arn:aws:lambda:us-east-1:000000000000:layer:tools:12",
    ]
    response = client(echo.endpoint, "lambda").create_function(
        FunctionName="echo-create",
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zipped},
        Description='round trip: ünïcode & <xml> "quotes"',
        Timeout=30,
        MemorySize=256,
        Publish=True,
        Environment={"Variables": {"STAGE": "test", "EMPTY_VALUE": "", "JSON_TEXT": '{"a": [1]}'}},
        Tags={"team": "edge", "cost-centre": "42"},
        Layers=layers,
        Architectures=["arm64"],
        EphemeralStorage={"Size": 1024},
        TracingConfig={"Mode": "Active"},
        VpcConfig={"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]},
    )
    assert_exactly(
        echo.lambda_.calls["CreateFunction"],
        {
            "FunctionName": "echo-create",
            "Runtime": "python3.12",
            "Role": ROLE,
            "Handler": "app.handler",
            "Code": {"ZipFile": zipped},
            "Description": 'round trip: ünïcode & <xml> "quotes"',
            "Timeout": 30,
            "MemorySize": 256,
            "Publish": True,
            "Environment": {
                "Variables": {"STAGE": "test", "EMPTY_VALUE": "", "JSON_TEXT": '{"a": [1]}'}
            },
            "Tags": {"team": "edge", "cost-centre": "42"},
            "Layers": layers,
            "Architectures": ["arm64"],
            "EphemeralStorage": {"Size": 1024},
            "TracingConfig": {"Mode": "Active"},
            "VpcConfig": {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]},
        },
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert_exactly(
        body_of(response),
        {
            "FunctionName": "echo-create",
            "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:echo-create",
            "Runtime": "python3.12",
            "Role": ROLE,
            "Handler": "app.handler",
            "CodeSize": len(zipped),
            "CodeSha256": echo.lambda_.functions["echo-create"][0]["CodeSha256"],
            "Description": 'round trip: ünïcode & <xml> "quotes"',
            "Timeout": 30,
            "MemorySize": 256,
            "LastModified": "2024-02-29T12:34:56.789+0000",
            "Version": "$LATEST",
            "Environment": {
                "Variables": {"STAGE": "test", "EMPTY_VALUE": "", "JSON_TEXT": '{"a": [1]}'}
            },
            "Layers": [{"Arn": layers[0], "CodeSize": 1024}, {"Arn": layers[1], "CodeSize": 1024}],
            "Architectures": ["arm64"],
            "EphemeralStorage": {"Size": 1024},
            "State": "Active",
        },
    )


def test_lambda_get_function_arn_label_and_qualifier(echo: Echo) -> None:
    create_function(echo, "echo-get", Tags={"k": "v"})
    arn = "arn:aws:lambda:us-east-1:000000000000:function:echo-get"
    lam = client(echo.endpoint, "lambda")
    wire = sent_requests(lam)
    response = lam.get_function(FunctionName=arn, Qualifier="7")
    assert wire[0].method == "GET"
    assert "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A" in wire[0].url
    assert wire[0].url.endswith("?Qualifier=7")
    assert_exactly(echo.lambda_.calls["GetFunction"], {"FunctionName": arn, "Qualifier": "7"})
    assert response["Configuration"]["FunctionArn"] == arn
    assert response["Configuration"]["Version"] == "7"
    assert response["Code"] == {
        "RepositoryType": "S3",
        "Location": f"http://127.0.0.1:{echo.port}/code.zip",
    }
    assert response["Tags"] == {"k": "v"}
    assert response["Concurrency"] == {"ReservedConcurrentExecutions": 7}


def test_lambda_invoke_blob_payload_headers_and_status_code(echo: Echo) -> None:
    create_function(echo, "echo-invoke")
    payload = b'{"fail": true}' + bytes(range(256))  # not UTF-8: a blob travels as raw bytes
    client_context = base64.b64encode(b'{"custom": {"a": 1}}').decode()
    response = client(echo.endpoint, "lambda").invoke(
        FunctionName="echo-invoke",
        InvocationType="RequestResponse",
        LogType="Tail",
        ClientContext=client_context,
        Qualifier="live",
        Payload=payload,
    )
    assert_exactly(
        echo.lambda_.calls["Invoke"],
        {
            "FunctionName": "echo-invoke",
            "InvocationType": "RequestResponse",
            "LogType": "Tail",
            "ClientContext": client_context,
            "Qualifier": "live",
            "Payload": payload,
        },
    )
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert base64.b64decode(response["LogResult"]) == b"START\nEND\n"
    assert response["ExecutedVersion"] == "live"
    assert response["Payload"].read() == payload[::-1]


def test_lambda_invoke_event_answers_202_without_payload(echo: Echo) -> None:
    create_function(echo, "echo-event")
    response = client(echo.endpoint, "lambda").invoke(
        FunctionName="echo-event", InvocationType="Event", Payload=b"{}"
    )
    assert response["StatusCode"] == 202
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["Payload"].read() == b""
    assert echo.lambda_.calls["Invoke"]["InvocationType"] == "Event"


def test_lambda_list_functions_querystring_ints_and_pagination(echo: Echo) -> None:
    for name in ("echo-list-a", "echo-list-b", "echo-list-c"):
        create_function(echo, name)
    lam = client(echo.endpoint, "lambda")
    first = lam.list_functions(MaxItems=2, FunctionVersion="ALL", MasterRegion="ALL")
    assert_exactly(
        echo.lambda_.calls["ListFunctions"],
        {"MaxItems": 2, "FunctionVersion": "ALL", "MasterRegion": "ALL"},
    )
    assert len(first["Functions"]) == 2
    assert first["NextMarker"] == "2"
    second = lam.list_functions(MaxItems=2, Marker=first["NextMarker"])
    assert_exactly(echo.lambda_.calls["ListFunctions"], {"MaxItems": 2, "Marker": "2"})
    names = [f["FunctionName"] for f in first["Functions"] + second["Functions"]]
    assert names == sorted(echo.lambda_.functions)[:4]
    paged = lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1})
    everything = [f["FunctionName"] for page in paged for f in page["Functions"]]
    assert everything == sorted(echo.lambda_.functions)


def test_lambda_delete_function_answers_204_with_empty_body(echo: Echo) -> None:
    create_function(echo, "echo-delete")
    response = client(echo.endpoint, "lambda").delete_function(FunctionName="echo-delete")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_exactly(echo.lambda_.calls["DeleteFunction"], {"FunctionName": "echo-delete"})
    create_function(echo, "echo-delete")
    raw = signed_request(echo.endpoint, "lambda", "DELETE", "/2015-03-31/functions/echo-delete")
    assert raw.status_code == 204
    assert raw.content == b""


def test_lambda_handler_error_reaches_boto3_as_modeled_exception(echo: Echo) -> None:
    lam = client(echo.endpoint, "lambda")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
        lam.get_function(FunctionName="echo-missing")
    error = caught.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:echo-missing"
    )
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Type"] == "User"
    raw = signed_request(echo.endpoint, "lambda", "GET", "/2015-03-31/functions/echo-missing")
    assert raw.status_code == 404
    assert rest_json_error(raw) == "ResourceNotFoundException"
    assert raw.json() == {"Type": "User", "Message": error["Error"]["Message"]}


# --------------------------------------------------------------------------- rest-xml: s3

AWKWARD_KEY = "reports/2024 Q1/naïve café/ü+%20 & ?=#/"  # spaces, unicode, reserved chars, "/"


def test_s3_put_and_get_object_headers_metadata_and_awkward_key(echo: Echo) -> None:
    s3 = client(echo.endpoint, "s3", s3={"addressing_style": "path"})
    body = b"id,name\n1,caf\xc3\xa9\n" + bytes(range(256))
    wire = sent_requests(s3)
    put = s3.put_object(
        Bucket="echo-bucket",
        Key=AWKWARD_KEY,
        Body=body,
        ContentType="text/csv; charset=utf-8",
        Metadata={"owner": "edge-team", "purpose": "round trip"},
    )
    assert wire[0].url.startswith(f"{echo.endpoint}/echo-bucket/reports/2024%20Q1/")
    received = echo.s3.calls["PutObject"]
    assert_exactly(
        received,
        {
            "Bucket": "echo-bucket",
            "Key": AWKWARD_KEY,
            "Body": body,
            "ContentLength": len(body),
            "ContentType": "text/csv; charset=utf-8",
            "Metadata": {"owner": "edge-team", "purpose": "round trip"},
            "ChecksumAlgorithm": "CRC32",
            "ChecksumCRC32": crc32_b64(body),
        },
    )
    assert put["ETag"] == echo.s3.objects[("echo-bucket", AWKWARD_KEY)]["ETag"]
    assert put["ChecksumCRC32"] == crc32_b64(body)

    got = s3.get_object(Bucket="echo-bucket", Key=AWKWARD_KEY)
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/csv; charset=utf-8"
    assert got["ContentLength"] == len(body)
    assert got["Metadata"] == {"owner": "edge-team", "purpose": "round trip"}
    assert got["LastModified"] == FIXED_TIME.replace(microsecond=0)  # RFC 822: whole seconds
    assert got["ETag"] == put["ETag"]
    assert got["AcceptRanges"] == "bytes"


def test_s3_get_object_range(echo: Echo) -> None:
    s3 = client(echo.endpoint, "s3")
    s3.put_object(Bucket="echo-bucket", Key="ranged", Body=b"0123456789")
    got = s3.get_object(Bucket="echo-bucket", Key="ranged", Range="bytes=2-5")
    assert_exactly(
        echo.s3.calls["GetObject"],
        {"Bucket": "echo-bucket", "Key": "ranged", "Range": "bytes=2-5", "ChecksumMode": "ENABLED"},
    )
    assert got["Body"].read() == b"2345"
    assert got["ContentRange"] == "bytes 2-5/10"
    assert got["ContentLength"] == 4
    assert got["ContentType"] == "binary/octet-stream"
    assert got["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "4"


def test_s3_head_object_declares_length_without_a_body(echo: Echo) -> None:
    s3 = client(echo.endpoint, "s3")
    s3.put_object(Bucket="echo-bucket", Key="headed", Body=b"x" * 1234, Metadata={"a": "b"})
    head = s3.head_object(Bucket="echo-bucket", Key="headed")
    assert head["ContentLength"] == 1234
    assert head["Metadata"] == {"a": "b"}
    assert head["LastModified"] == FIXED_TIME.replace(microsecond=0)
    raw = signed_request(echo.endpoint, "s3", "HEAD", "/echo-bucket/headed")
    assert raw.status_code == 200
    assert raw.headers["Content-Length"] == "1234"
    assert raw.content == b""
    missing = client_error(lambda: s3.head_object(Bucket="echo-bucket", Key="no-such"))
    assert missing.response["Error"]["Code"] == "404"
    assert missing.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_s3_header_values_outside_ascii_are_encoded_words(echo: Echo) -> None:
    """A handler's non-ASCII header value goes out RFC 2047-encoded (as S3 does), not as a 500."""
    echo.s3.objects[("echo-bucket", "non-ascii")] = {
        "Body": b"x",
        "ContentType": "text/plain",
        "Metadata": {"city": "東京", "note": "two\nlines", "plain": "ascii ok"},
        "ETag": '"e"',
        "LastModified": FIXED_TIME,
    }
    head = client(echo.endpoint, "s3").head_object(Bucket="echo-bucket", Key="non-ascii")
    assert head["Metadata"] == {
        "city": "=?UTF-8?B?" + base64.b64encode("東京".encode()).decode() + "?=",
        "note": "=?UTF-8?B?" + base64.b64encode(b"two\nlines").decode() + "?=",
        "plain": "ascii ok",
    }


def test_s3_virtual_host_style_through_boto3(echo: Echo) -> None:
    # boto3 addresses `vhost-bucket.localhost:<port>`; the proxy setting delivers it to squall
    s3 = client(
        f"http://localhost:{echo.port}",
        "s3",
        s3={"addressing_style": "virtual"},
        proxies={"http": echo.endpoint},
    )
    wire = sent_requests(s3)
    s3.put_object(Bucket="vhost-bucket", Key="dir/file name.txt", Body=b"virtual")
    assert wire[0].url == f"http://vhost-bucket.localhost:{echo.port}/dir/file%20name.txt"
    assert echo.s3.calls["PutObject"]["Bucket"] == "vhost-bucket"
    assert echo.s3.calls["PutObject"]["Key"] == "dir/file name.txt"
    assert s3.get_object(Bucket="vhost-bucket", Key="dir/file name.txt")["Body"].read() == (
        b"virtual"
    )
    listed = s3.list_objects_v2(Bucket="vhost-bucket")
    assert [item["Key"] for item in listed["Contents"]] == ["dir/file name.txt"]


def test_s3_virtual_host_style_raw_s3_host_name(echo: Echo) -> None:
    url = f"http://vhost-bucket.s3.localhost.localstack.cloud:{echo.port}/raw/key.bin"
    put = via_proxy(echo, "PUT", url, body=b"raw bytes", headers={"x-amz-meta-color": "blue"})
    assert put.status_code == 200, put.text
    assert echo.s3.calls["PutObject"]["Bucket"] == "vhost-bucket"
    assert echo.s3.calls["PutObject"]["Key"] == "raw/key.bin"
    assert echo.s3.calls["PutObject"]["Metadata"] == {"color": "blue"}
    got = via_proxy(echo, "GET", url)
    assert got.content == b"raw bytes"
    assert got.headers["x-amz-meta-color"] == "blue"


def test_s3_aws_chunked_upload_with_checksum_trailer(echo: Echo) -> None:
    """boto3 sends `aws-chunked` bodies with a trailing checksum over TLS; force it over HTTP."""
    s3 = client(echo.endpoint, "s3")

    def use_trailer(context: dict[str, Any], **_: Any) -> None:
        context["checksum"]["request_algorithm"]["in"] = "trailer"

    s3.meta.events.register("before-call.s3.PutObject", use_trailer)
    wire = sent_requests(s3)
    body = bytes(range(256)) * 400 + b"tail"  # several chunks
    put = s3.put_object(Bucket="echo-bucket", Key="chunked", Body=body)
    headers = wire[0].headers
    assert headers["Content-Encoding"] == b"aws-chunked"
    assert headers["X-Amz-Trailer"] == b"x-amz-checksum-crc32"
    assert headers["X-Amz-Content-SHA256"] == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    received = echo.s3.calls["PutObject"]
    assert received["Body"] == body
    assert type(received["Body"]) is bytes
    assert received["ContentLength"] == len(body)
    assert received["ChecksumCRC32"] == crc32_b64(body)  # the trailer, lifted into the headers
    assert "ContentEncoding" not in received
    assert put["ChecksumCRC32"] == crc32_b64(body)


def test_s3_content_encoding_of_an_object_is_not_decoded(echo: Echo) -> None:
    compressed = gzip.compress(b"stored compressed")
    client(echo.endpoint, "s3").put_object(
        Bucket="echo-bucket", Key="object.gz", Body=compressed, ContentEncoding="gzip"
    )
    assert echo.s3.calls["PutObject"]["Body"] == compressed
    assert echo.s3.calls["PutObject"]["ContentEncoding"] == "gzip"


def test_s3_put_bucket_tagging_xml_body_list(echo: Echo) -> None:
    s3 = client(echo.endpoint, "s3")
    tags = [{"Key": "env", "Value": "test"}, {"Key": "owner", "Value": "a & b <c>"}]
    s3.put_bucket_tagging(Bucket="tagged-bucket", Tagging={"TagSet": tags})
    received = echo.s3.calls["PutBucketTagging"]
    assert received["Bucket"] == "tagged-bucket"
    assert_exactly(received["Tagging"], {"TagSet": tags})
    assert s3.get_bucket_tagging(Bucket="tagged-bucket")["TagSet"] == tags


def test_s3_list_objects_v2_flattened_lists_prefixes_and_timestamps(echo: Echo) -> None:
    s3 = client(echo.endpoint, "s3")
    for key in ("a.txt", "b.txt", "logs/1.txt", "logs/2.txt", "photos/x.jpg"):
        s3.put_object(Bucket="listed-bucket", Key=key, Body=key.encode())
    listed = s3.list_objects_v2(Bucket="listed-bucket", Delimiter="/", MaxKeys=100)
    assert_exactly(
        echo.s3.calls["ListObjectsV2"],
        {"Bucket": "listed-bucket", "Delimiter": "/", "MaxKeys": 100, "EncodingType": "url"},
    )
    assert listed["KeyCount"] == 4
    assert listed["MaxKeys"] == 100
    assert listed["IsTruncated"] is False
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["logs/", "photos/"]
    assert [item["Key"] for item in listed["Contents"]] == ["a.txt", "b.txt"]
    first = listed["Contents"][0]
    assert first["LastModified"] == FIXED_TIME
    assert first["Size"] == 5
    assert first["StorageClass"] == "STANDARD"

    raw = signed_request(echo.endpoint, "s3", "GET", "/listed-bucket?list-type=2&delimiter=%2F")
    assert raw.status_code == 200
    root = ET.fromstring(raw.content)
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    assert root.tag == "{http://s3.amazonaws.com/doc/2006-03-01/}ListBucketResult"
    contents = root.findall("s3:Contents", ns)  # flattened: repeated directly under the root
    assert [c.findtext("s3:Key", namespaces=ns) for c in contents] == ["a.txt", "b.txt"]
    assert contents[0].findtext("s3:LastModified", namespaces=ns) == "2024-02-29T12:34:56.789Z"
    prefixes = root.findall("s3:CommonPrefixes/s3:Prefix", ns)
    assert [p.text for p in prefixes] == ["logs/", "photos/"]


def test_s3_error_is_an_error_document_with_its_fields(echo: Echo) -> None:
    s3 = client(echo.endpoint, "s3")
    with pytest.raises(s3.exceptions.NoSuchKey) as caught:
        s3.get_object(Bucket="echo-bucket", Key="missing/ key")
    error = caught.value.response
    assert error["Error"] == {
        "Code": "NoSuchKey",
        "Message": "The specified key does not exist.",
        "Key": "missing/ key",
    }
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    raw = signed_request(echo.endpoint, "s3", "GET", "/echo-bucket/missing/%20key")
    assert raw.status_code == 404
    assert s3_error(raw) == "NoSuchKey"
    assert ET.fromstring(raw.content).findtext("Key") == "missing/ key"


# --------------------------------------------------------------------------- json: dynamodb, logs

ITEM = {
    "pk": {"S": "user#1"},
    "blob": {"B": b"\x00\x01\xfe\xff"},
    "blobs": {"BS": [b"\x00", b"\xff\xfe"]},
    "count": {"N": "42"},
    "ratio": {"N": "-1.5e3"},
    "numbers": {"NS": ["1", "2.5"]},
    "names": {"SS": ["a", "b"]},
    "flag": {"BOOL": False},
    "nothing": {"NULL": True},
    "list": {"L": [{"S": "x"}, {"N": "1"}, {"BOOL": True}, {"NULL": True}, {"L": []}]},
    "map": {"M": {"nested": {"M": {"deep": {"B": b"\x80"}}}, "empty": {"M": {}}}},
}


def test_dynamodb_attribute_value_unions_round_trip(echo: Echo) -> None:
    ddb = client(echo.endpoint, "dynamodb")
    wire = sent_requests(ddb)
    put = ddb.put_item(TableName="echo-table", Item=ITEM)
    assert wire[0].headers["X-Amz-Target"] == b"DynamoDB_20120810.PutItem"
    assert wire[0].headers["Content-Type"] == JSON_10.encode()
    assert_exactly(echo.dynamodb.calls["PutItem"], {"TableName": "echo-table", "Item": ITEM})
    assert_exactly(
        body_of(put), {"ConsumedCapacity": {"TableName": "echo-table", "CapacityUnits": 1.5}}
    )
    got = ddb.get_item(TableName="echo-table", Key={"pk": {"S": "user#1"}}, ConsistentRead=True)
    assert_exactly(
        echo.dynamodb.calls["GetItem"],
        {"TableName": "echo-table", "Key": {"pk": {"S": "user#1"}}, "ConsistentRead": True},
    )
    assert_exactly(body_of(got), {"Item": ITEM})
    replaced = ddb.put_item(TableName="echo-table", Item={"pk": {"S": "2"}}, ReturnValues="ALL_OLD")
    assert_exactly(replaced["Attributes"], ITEM)


def test_dynamodb_error_has_type_and_modeled_exception(echo: Echo) -> None:
    ddb = client(echo.endpoint, "dynamodb")
    with pytest.raises(ddb.exceptions.ResourceNotFoundException) as caught:
        ddb.get_item(TableName="no-such-table", Key={"pk": {"S": "x"}})
    assert caught.value.response["Error"]["Message"] == "Requested resource not found"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_logs_json_11_long_timestamps(echo: Echo) -> None:
    logs = client(echo.endpoint, "logs")
    events = [
        {"timestamp": 1_700_000_000_123, "message": "first ünïcode"},
        {"timestamp": 1_700_000_000_456, "message": "second\nline"},
    ]
    put = logs.put_log_events(logGroupName="echo", logStreamName="s1", logEvents=events)
    assert_exactly(
        echo.logs.calls["PutLogEvents"],
        {"logGroupName": "echo", "logStreamName": "s1", "logEvents": events},
    )
    assert put["nextSequenceToken"] == "2".zfill(56)
    got = logs.get_log_events(
        logGroupName="echo",
        logStreamName="s1",
        startTime=1_700_000_000_000,
        endTime=1_700_000_000_400,
        limit=10,
        startFromHead=True,
    )
    assert_exactly(
        echo.logs.calls["GetLogEvents"],
        {
            "logGroupName": "echo",
            "logStreamName": "s1",
            "startTime": 1_700_000_000_000,
            "endTime": 1_700_000_000_400,
            "limit": 10,
            "startFromHead": True,
        },
    )
    ingested = int(FIXED_TIME.timestamp() * 1000)
    assert_exactly(got["events"], [{**events[0], "ingestionTime": ingested}])
    assert got["nextForwardToken"] == "f/1"


def test_logs_error_carries_type(echo: Echo) -> None:
    logs = client(echo.endpoint, "logs")
    events = [{"timestamp": 1, "message": "m"}]
    with pytest.raises(logs.exceptions.ResourceNotFoundException) as caught:
        logs.put_log_events(logGroupName="missing-group", logStreamName="s", logEvents=events)
    assert caught.value.response["Error"]["Message"] == "The specified log group does not exist."
    raw = signed_request(
        echo.endpoint,
        "logs",
        body=json.dumps(
            {"logGroupName": "missing-group", "logStreamName": "s", "logEvents": events}
        ).encode(),
        headers={"Content-Type": JSON_11, "X-Amz-Target": "Logs_20140328.PutLogEvents"},
    )
    assert raw.status_code == 400
    assert raw.headers["Content-Type"] == JSON_11
    assert raw.json() == {
        "__type": "ResourceNotFoundException",
        "message": "The specified log group does not exist.",
    }


# --------------------------------------------------------------------------- query: sns, iam, sts


def test_sns_publish_message_attribute_map_of_structures(echo: Echo) -> None:
    sns = client(echo.endpoint, "sns")
    wire = sent_requests(sns)
    response = sns.publish(
        TopicArn="arn:aws:sns:us-east-1:000000000000:echo",
        Message="hello & <world>",
        Subject="greeting",
        MessageAttributes={
            "text": {"DataType": "String", "StringValue": "ünïcode + spaces"},
            "number": {"DataType": "Number", "StringValue": "12.5"},
            "bytes": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
        },
    )
    assert "MessageAttributes.entry.3.Value.BinaryValue=" in wire[0].body
    assert_exactly(
        echo.sns.calls["Publish"],
        {
            "TopicArn": "arn:aws:sns:us-east-1:000000000000:echo",
            "Message": "hello & <world>",
            "Subject": "greeting",
            "MessageAttributes": {
                "text": {"DataType": "String", "StringValue": "ünïcode + spaces"},
                "number": {"DataType": "Number", "StringValue": "12.5"},
                "bytes": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
            },
        },
    )
    assert response["MessageId"].startswith("m-")


def test_iam_create_user_tags_and_list_users_timestamps(echo: Echo) -> None:
    iam = client(echo.endpoint, "iam")
    tags = [{"Key": "team", "Value": "edge"}, {"Key": "empty", "Value": ""}]
    created = iam.create_user(UserName="echo-alice", Path="/people/", Tags=tags)
    assert_exactly(
        echo.iam.calls["CreateUser"], {"UserName": "echo-alice", "Path": "/people/", "Tags": tags}
    )
    user = created["User"]
    assert user["Arn"] == "arn:aws:iam::000000000000:user/people/echo-alice"
    assert user["CreateDate"] == FIXED_TIME
    assert user["Tags"] == tags
    iam.create_user(UserName="echo-bob", Path="/people/")
    listed = iam.list_users(PathPrefix="/people/", MaxItems=1)
    assert_exactly(echo.iam.calls["ListUsers"], {"PathPrefix": "/people/", "MaxItems": 1})
    assert [u["UserName"] for u in listed["Users"]] == ["echo-alice"]
    assert listed["Users"][0]["CreateDate"] == FIXED_TIME
    assert listed["IsTruncated"] is True
    assert listed["Marker"] == "echo-bob"
    everyone = iam.get_paginator("list_users").paginate(PathPrefix="/people/")
    assert [u["UserName"] for page in everyone for u in page["Users"]] == [
        "echo-alice",
        "echo-bob",
    ]


def test_iam_error_in_query_format(echo: Echo) -> None:
    iam = client(echo.endpoint, "iam")
    iam.create_user(UserName="echo-twice")
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException) as caught:
        iam.create_user(UserName="echo-twice")
    error = caught.value.response
    assert error["Error"]["Code"] == "EntityAlreadyExists"
    assert error["Error"]["Type"] == "Sender"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_sdb_flattened_lists_with_member_names(echo: Echo) -> None:
    sdb = client(echo.endpoint, "sdb", signature_version="v4")  # SimpleDB signs with v2
    wire = sent_requests(sdb)
    items = [
        {
            "Name": "item-1",
            "Attributes": [
                {"Name": "colour", "Value": "red", "Replace": True},
                {"Name": "size", "Value": "L"},
            ],
        },
        {"Name": "item-2", "Attributes": [{"Name": "colour", "Value": "blue"}]},
    ]
    sdb.batch_put_attributes(DomainName="echo", Items=items)
    assert "Item.1.Attribute.2.Name=size" in wire[0].body  # renamed, flattened
    assert_exactly(echo.sdb.calls["BatchPutAttributes"], {"DomainName": "echo", "Items": items})


def test_sts_real_service_over_query(echo: Echo) -> None:
    identity = client(echo.endpoint, "sts").get_caller_identity()
    assert identity["Arn"] == "arn:aws:iam::000000000000:root"


# --------------------------------------------------------------------------- cbor: cloudwatch

WHEN = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def test_cloudwatch_cbor_put_metric_data(echo: Echo) -> None:
    cw = narrowed_client(echo, "cloudwatch", "smithy-rpc-v2-cbor")
    wire = sent_requests(cw)
    metric_data = [
        {
            "MetricName": "Latency",
            "Dimensions": [{"Name": "Host", "Value": "a"}, {"Name": "Region", "Value": "eu"}],
            "Timestamp": WHEN,
            "Value": 12.75,
            "Unit": "Milliseconds",
            "StorageResolution": 1,
        },
        {
            "MetricName": "Latency",
            "Timestamp": WHEN + timedelta(minutes=1),
            "StatisticValues": {"SampleCount": 3.0, "Sum": 30.5, "Minimum": 1.0, "Maximum": 20.0},
            "Values": [1.0, 9.5, 20.0],
            "Counts": [1.0, 1.0, 1.0],
            "Value": 0.1,
        },
    ]
    cw.put_metric_data(Namespace="Echo/CBOR", MetricData=metric_data)
    assert wire[0].url == f"{echo.endpoint}{CBOR_PATH}PutMetricData"
    assert wire[0].headers["smithy-protocol"] == b"rpc-v2-cbor"
    assert_exactly(
        echo.cloudwatch.calls["PutMetricData"],
        {"Namespace": "Echo/CBOR", "MetricData": metric_data},
    )


def test_cloudwatch_cbor_get_metric_data_and_list_metrics(echo: Echo) -> None:
    cw = narrowed_client(echo, "cloudwatch", "smithy-rpc-v2-cbor")
    datum = {"MetricName": "Hits", "Timestamp": WHEN, "Value": 2.5}
    cw.put_metric_data(Namespace="Echo/Get", MetricData=[datum, {**datum, "Value": 3.25}])
    query = {
        "Id": "q1",
        "MetricStat": {
            "Metric": {"Namespace": "Echo/Get", "MetricName": "Hits"},
            "Period": 60,
            "Stat": "Sum",
        },
        "ReturnData": True,
    }
    got = cw.get_metric_data(
        MetricDataQueries=[query], StartTime=WHEN, EndTime=WHEN + timedelta(hours=1)
    )
    assert_exactly(
        echo.cloudwatch.calls["GetMetricData"],
        {
            "MetricDataQueries": [query],
            "StartTime": WHEN,
            "EndTime": WHEN + timedelta(hours=1),
        },
    )
    result = got["MetricDataResults"][0]
    assert result["Id"] == "q1"
    assert result["Timestamps"] == [WHEN, WHEN]
    assert all(stamp.tzinfo is not None for stamp in result["Timestamps"])
    assert_exactly(result["Values"], [2.5, 3.25])
    assert result["StatusCode"] == "Complete"
    listed = cw.list_metrics(Namespace="Echo/Get")
    assert listed["Metrics"] == [{"Namespace": "Echo/Get", "MetricName": "Hits", "Dimensions": []}]


def test_cloudwatch_cbor_error_is_query_compatible(echo: Echo) -> None:
    cw = narrowed_client(echo, "cloudwatch", "smithy-rpc-v2-cbor")
    with pytest.raises(cw.exceptions.InvalidParameterValueException) as caught:
        cw.put_metric_data(Namespace="AWS/Nope", MetricData=[{"MetricName": "m", "Value": 1.0}])
    error = caught.value.response
    assert error["Error"]["Code"] == "InvalidParameterValue"
    assert error["Error"]["Type"] == "Sender"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    body = cbor2.dumps({"Namespace": "AWS/Nope", "MetricData": []})
    raw = signed_request(
        echo.endpoint,
        "monitoring",
        path=CBOR_PATH + "PutMetricData",
        body=body,
        headers=CBOR_HEADERS,
    )
    assert raw.status_code == 400
    assert cbor_error(raw) == "InvalidParameterValueException"
    assert raw.headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "json", "query"])
def test_cloudwatch_same_operation_over_each_protocol_it_lists(echo: Echo, protocol: str) -> None:
    cw = narrowed_client(echo, "cloudwatch", protocol)
    namespace = f"Echo/{protocol}"
    datum = {"MetricName": "Ticks", "Dimensions": [{"Name": "D", "Value": "1"}], "Value": 0.5}
    cw.put_metric_data(Namespace=namespace, MetricData=[{**datum, "Timestamp": WHEN}])
    assert_exactly(
        echo.cloudwatch.calls["PutMetricData"],
        {"Namespace": namespace, "MetricData": [{**datum, "Timestamp": WHEN}]},
    )
    listed = cw.list_metrics(Namespace=namespace)
    assert listed["Metrics"] == [
        {"Namespace": namespace, "MetricName": "Ticks", "Dimensions": [{"Name": "D", "Value": "1"}]}
    ]
    got = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": "Ticks"},
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=WHEN,
        EndTime=WHEN,
    )
    assert got["MetricDataResults"][0]["Timestamps"] == [WHEN]
    assert got["MetricDataResults"][0]["Values"] == [0.5]
    error = client_error(lambda: cw.put_metric_data(Namespace="AWS/X", MetricData=[datum]))
    assert error.response["Error"]["Code"] == "InvalidParameterValue"


def test_cloudwatch_each_protocol_answers_in_its_own_format(echo: Echo) -> None:
    client(echo.endpoint, "cloudwatch").put_metric_data(
        Namespace="Echo/Raw", MetricData=[{"MetricName": "Raw", "Value": 1.0}]
    )
    expected = [{"Namespace": "Echo/Raw", "MetricName": "Raw", "Dimensions": []}]
    as_cbor = signed_request(
        echo.endpoint,
        "monitoring",
        path=CBOR_PATH + "ListMetrics",
        body=cbor2.dumps({"Namespace": "Echo/Raw"}),
        headers=CBOR_HEADERS,
    )
    assert as_cbor.status_code == 200
    assert as_cbor.headers["Content-Type"] == "application/cbor"
    assert as_cbor.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert cbor2.loads(as_cbor.content) == {"Metrics": expected}
    as_json = signed_request(
        echo.endpoint,
        "monitoring",
        body=b'{"Namespace": "Echo/Raw"}',
        headers={
            "Content-Type": JSON_10,
            "X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics",
        },
    )
    assert as_json.status_code == 200
    assert as_json.headers["Content-Type"] == JSON_10
    assert as_json.json() == {"Metrics": expected}
    as_query = signed_request(
        echo.endpoint,
        "monitoring",
        body=b"Action=ListMetrics&Version=2010-08-01&Namespace=Echo%2FRaw",
        headers=FORM,
    )
    assert as_query.status_code == 200
    assert as_query.headers["Content-Type"] == "text/xml"
    root = ET.fromstring(as_query.content)
    ns = {"cw": "http://monitoring.amazonaws.com/doc/2010-08-01/"}
    assert root.tag == "{http://monitoring.amazonaws.com/doc/2010-08-01/}ListMetricsResponse"
    names = root.findall("cw:ListMetricsResult/cw:Metrics/cw:member/cw:MetricName", ns)
    assert [n.text for n in names] == ["Raw"]
    assert root.findtext("cw:ResponseMetadata/cw:RequestId", namespaces=ns)


def test_cloudwatch_gzip_compressed_request_body(echo: Echo) -> None:
    """PutMetricData has `requestcompression`: boto3 gzips bodies of 10 KiB and more."""
    data = [
        {
            "MetricName": f"m{i}",
            "Value": float(i),
            "Dimensions": [{"Name": "H", "Value": "h" * 200}],
        }
        for i in range(60)
    ]
    for cw in (
        client(echo.endpoint, "cloudwatch"),
        narrowed_client(echo, "cloudwatch", "smithy-rpc-v2-cbor"),
    ):
        wire = sent_requests(cw)
        cw.put_metric_data(Namespace="Echo/Gzip", MetricData=data)
        assert wire[0].headers["Content-Encoding"] == b"gzip"
        assert_exactly(
            echo.cloudwatch.calls["PutMetricData"], {"Namespace": "Echo/Gzip", "MetricData": data}
        )


# --------------------------------------------------------------------------- validation


def lambda_unvalidated(echo: Echo) -> Any:
    return client(echo.endpoint, "lambda", parameter_validation=False)


def create_function_error(echo: Echo, **overrides: Any) -> dict[str, Any]:
    arguments = {
        "FunctionName": "echo-invalid",
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": b"zip"},
        **overrides,
    }
    arguments = {key: value for key, value in arguments.items() if value is not None}
    lam = lambda_unvalidated(echo)
    return client_error(lambda: lam.create_function(**arguments)).response


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"MemorySize": 1},
            "Value '1' at 'memorySize' failed to satisfy constraint: "
            "Member must have value greater than or equal to 128",
        ),
        (
            {"Timeout": 9000},
            "Value '9000' at 'timeout' failed to satisfy constraint: "
            "Member must have value less than or equal to 5400",
        ),
        (
            {"Description": "d" * 257},
            f"Value '{'d' * 257}' at 'description' failed to satisfy constraint: "
            "Member must have length less than or equal to 256",
        ),
        (
            {"Role": None},
            "Value null at 'role' failed to satisfy constraint: Member must not be null",
        ),
        (
            {"Architectures": ["sparc"]},
            "Value '[sparc]' at 'architectures' failed to satisfy constraint: "
            "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
        ),
        (
            {"Environment": {"Variables": {"1BAD": "v"}}},
            "Value at 'environment.variables' failed to satisfy constraint: "
            "Map keys must satisfy constraint: "
            "[Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
        ),
        (
            {"EphemeralStorage": {"Size": 100}},
            "Value '100' at 'ephemeralStorage.size' failed to satisfy constraint: "
            "Member must have value greater than or equal to 512",
        ),
    ],
    ids=["range-min", "range-max", "length", "required", "list-enum", "map-keys", "nested"],
)
def test_lambda_constraint_violation_wording(
    echo: Echo, overrides: dict[str, Any], problem: str
) -> None:
    error = create_function_error(echo, **overrides)
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ValidationException"
    assert error["Error"]["Message"] == f"1 validation error detected: {problem}"


def test_lambda_enum_and_pattern_violations_are_counted_together(echo: Echo) -> None:
    error = create_function_error(echo, FunctionName="bad name!", Runtime="cobol")
    message = error["Error"]["Message"]
    assert message.startswith(
        "2 validation errors detected: Value 'bad name!' at 'functionName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws"
    )
    assert "; Value 'cobol' at 'runtime' failed to satisfy constraint: Member must satisfy " in (
        message
    )
    assert "enum value set: [nodejs, " in message
    assert "echo-invalid" not in echo.lambda_.functions


def test_validation_error_in_query_json_and_cbor(echo: Echo) -> None:
    iam = client(echo.endpoint, "iam", parameter_validation=False)
    error = client_error(lambda: iam.create_user(UserName="x" * 65)).response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["Error"]["Message"] == (
        f"1 validation error detected: Value '{'x' * 65}' at 'userName' failed to satisfy "
        "constraint: Member must have length less than or equal to 64"
    )
    ddb = client(echo.endpoint, "dynamodb", parameter_validation=False)
    error = client_error(lambda: ddb.get_item(TableName="", Key={"pk": {"S": "x"}})).response
    assert error["Error"]["Code"] == "ValidationException"
    assert error["Error"]["Message"] == (
        "1 validation error detected: Value '' at 'tableName' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )
    cw = narrowed_client(echo, "cloudwatch", "smithy-rpc-v2-cbor", parameter_validation=False)
    error = client_error(lambda: cw.list_metrics(Namespace=":x")).response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["Error"]["Message"] == (
        "1 validation error detected: Value ':x' at 'namespace' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [^:].*"
    )


def test_wrong_member_type_through_boto3_is_a_serialization_error(echo: Echo) -> None:
    error = create_function_error(echo, MemorySize="big")
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "SerializationException"


# --------------------------------------------------------------------------- bad requests


@dataclass(frozen=True)
class Call:
    """A raw signed request, and the error status and code it must be answered with."""

    service: str
    path: str
    body: bytes
    headers: dict[str, str]
    code: str
    read_error: Callable[[requests.Response], str]
    method: str = "POST"
    status: int = 400

    def send(self, echo: Echo, **extra_headers: str) -> requests.Response:
        headers = {**self.headers, **extra_headers}
        return signed_request(
            echo.endpoint, self.service, self.method, self.path, body=self.body, headers=headers
        )

    def check(self, response: requests.Response, status: int | None = None) -> None:
        assert response.status_code == (status or self.status), response.text
        assert self.read_error(response) == self.code


def json_call(
    service: str, headers: dict[str, str], body: bytes, code: str = "SerializationException"
) -> Call:
    return Call(service, "/", body, headers, code, json_error)


def rest_json_call(
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json",
    *,
    code: str = "SerializationException",
    status: int = 400,
) -> Call:
    headers = {"Content-Type": content_type} if body else {}
    return Call("lambda", path, body, headers, code, rest_json_error, method, status)


def s3_call(
    method: str, path: str, body: bytes = b"", *, code: str = "MalformedXML", status: int = 400
) -> Call:
    headers = {"Content-Type": "application/xml"} if body else {}
    return Call("s3", path, body, headers, code, s3_error, method, status)


def cbor_call(
    body: bytes,
    operation: str = "ListMetrics",
    content_type: str = "application/cbor",
    code: str = "SerializationException",
) -> Call:
    headers = {**CBOR_HEADERS, "Content-Type": content_type}
    return Call("monitoring", CBOR_PATH + operation, body, headers, code, cbor_error)


def query_call(service: str, body: bytes, code: str) -> Call:
    return Call(service, "/", body, FORM, code, query_error)


UNKNOWN_OPERATIONS = {
    "json": json_call(
        "dynamodb", _json("DynamoDB_20120810.Nope"), b"{}", "UnknownOperationException"
    ),
    "query": query_call("sns", b"Action=Nope&Version=2010-03-31", "InvalidAction"),
    "rest-json": rest_json_call(
        "GET", "/2015-03-31/no-such-thing", code="UnknownOperationException", status=404
    ),
    "rest-xml": s3_call("PATCH", "/echo-bucket/key", code="MethodNotAllowed", status=405),
    "cbor": cbor_call(cbor2.dumps({}), "Nope", code="UnknownOperationException"),
}


@pytest.mark.parametrize("call", UNKNOWN_OPERATIONS.values(), ids=UNKNOWN_OPERATIONS.keys())
def test_unknown_operation(echo: Echo, call: Call) -> None:
    call.check(call.send(echo))


@pytest.mark.parametrize(
    ("service", "protocol", "operation", "arguments"),
    [
        ("dynamodb", None, "describe_table", {"TableName": "t"}),
        ("lambda", None, "get_function_configuration", {"FunctionName": "f"}),
        ("s3", None, "get_bucket_acl", {"Bucket": "b"}),
        ("sns", None, "list_topics", {}),
        ("cloudwatch", "smithy-rpc-v2-cbor", "describe_alarms", {}),
        ("cloudwatch", "query", "describe_alarms", {}),
    ],
    ids=["json", "rest-json", "rest-xml", "query", "cbor", "cloudwatch-query"],
)
def test_operation_without_handler_is_501(
    echo: Echo, service: str, protocol: str | None, operation: str, arguments: dict[str, Any]
) -> None:
    boto = narrowed_client(echo, service, protocol) if protocol else client(echo.endpoint, service)
    error = client_error(lambda: getattr(boto, operation)(**arguments)).response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert error["Error"]["Code"] == "NotImplemented"
    assert error["Error"]["Message"].startswith("squall does not implement ")


# --------------------------------------------------------------------------- malformed input

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><Tagging><TagSet><Tag><Key>&lol9;</Key><Value>v</Value></Tag></TagSet></Tagging>"
)
PUT_ITEM = _json("DynamoDB_20120810.PutItem")
GET_LOG_EVENTS = _json("Logs_20140328.GetLogEvents", JSON_11)
CW_PUT = _json("GraniteServiceVersion20100801.PutMetricData")
LOG_LIMIT = b'{"logGroupName": "g", "logStreamName": "s", "limit": '
FUNCTIONS = "/2015-03-31/functions"
TAGGING = "/echo-bucket?tagging"
METRICS_QUERY = b"Action=GetMetricData&Version=2010-08-01&MetricDataQueries="

MALFORMED = {
    "json-truncated": json_call("dynamodb", PUT_ITEM, b'{"TableName": "t", "Item": {'),
    "json-array": json_call("dynamodb", PUT_ITEM, b'[{"TableName": "t"}]'),
    "json-string-for-int": json_call("logs", GET_LOG_EVENTS, LOG_LIMIT + b'"ten"}'),
    "json-int-overflow": json_call("logs", GET_LOG_EVENTS, LOG_LIMIT + b"4294967296}"),
    "json-list-for-map": json_call("dynamodb", PUT_ITEM, b'{"TableName": "t", "Item": [1]}'),
    "json-bad-base64": json_call(
        "dynamodb", PUT_ITEM, b'{"TableName": "t", "Item": {"k": {"B": "!!not base64"}}}'
    ),
    "json-timestamp-out-of-range": json_call(
        "monitoring",
        CW_PUT,
        b'{"Namespace": "N", "MetricData": [{"MetricName": "m", "Timestamp": 1e20}]}',
    ),
    "json-xml-content-type": json_call(
        "dynamodb", {**PUT_ITEM, "Content-Type": "application/xml"}, b"<PutItem></PutItem>"
    ),
    "json-not-utf8": json_call("dynamodb", PUT_ITEM, b'{"TableName": "\xff\xfe"}'),
    "json-bad-gzip": json_call(
        "monitoring", {**CW_PUT, "Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip"
    ),
    "rest-json-truncated": rest_json_call("POST", FUNCTIONS, b'{"FunctionName": '),
    "rest-json-array": rest_json_call("POST", FUNCTIONS, b"[]"),
    "rest-json-query-int": rest_json_call("GET", FUNCTIONS + "?MaxItems=lots"),
    "rest-json-xml-body": rest_json_call("POST", FUNCTIONS, b"<Create/>", "application/xml"),
    "rest-xml-garbage": s3_call("PUT", TAGGING, b"<Tagging><TagSet><Tag>"),
    "rest-xml-json-body": s3_call("PUT", TAGGING, b'{"TagSet": []}'),
    "rest-xml-wrong-root": s3_call("PUT", TAGGING, b"<Other><TagSet/></Other>"),
    "rest-xml-entity-bomb": s3_call("PUT", TAGGING, BILLION_LAUGHS),
    "rest-xml-query-int": s3_call(
        "GET", "/echo-bucket/key?partNumber=first", code="InvalidArgument"
    ),
    "cbor-garbage": cbor_call(b"\xff\xff\x00garbage"),
    "cbor-truncated": cbor_call(cbor2.dumps({"Namespace": "abcdef"})[:-3]),
    "cbor-array": cbor_call(cbor2.dumps(["Namespace"])),
    "cbor-wrong-type": cbor_call(cbor2.dumps({"Namespace": 5})),
    "cbor-json-content": cbor_call(b'{"Namespace": "N"}', content_type="application/json"),
    "query-not-utf8": query_call(
        "sns", b"Action=Publish&Version=2010-03-31&Message=\xff\xfe", "MalformedQueryString"
    ),
    "query-string-for-int": query_call(
        "iam", b"Action=ListUsers&Version=2010-05-08&MaxItems=ten", "MalformedInput"
    ),
    "query-bad-timestamp": query_call(
        "monitoring", METRICS_QUERY + b"&StartTime=yesterday&EndTime=now", "MalformedInput"
    ),
    "query-missing-action": query_call("sns", b"Version=2010-03-31&Message=m", "MissingAction"),
}


@pytest.mark.parametrize("call", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_is_a_4xx_in_the_protocols_format(echo: Echo, call: Call) -> None:
    call.check(call.send(echo))


OVERSIZED = {
    "json": json_call(
        "dynamodb", _json("DynamoDB_20120810.GetItem"), b"{}", "RequestHeaderSectionTooLarge"
    ),
    "rest-json": rest_json_call("GET", FUNCTIONS, code="RequestHeaderSectionTooLarge"),
    "rest-xml": s3_call("GET", "/echo-bucket/key", code="RequestHeaderSectionTooLarge"),
    "cbor": cbor_call(cbor2.dumps({}), code="RequestHeaderSectionTooLarge"),
}


@pytest.mark.parametrize("call", OVERSIZED.values(), ids=OVERSIZED.keys())
def test_oversized_headers_are_431_in_the_protocols_format(echo: Echo, call: Call) -> None:
    call.check(call.send(echo, **OVERSIZED_HEADERS), status=431)


@pytest.mark.parametrize("limit", ["headers", "body"])
def test_limits_on_a_query_request_answer_in_query_format(echo: Echo, limit: str) -> None:
    sns = client(echo.endpoint, "sns")

    def pad(request: Any, **_: Any) -> None:
        for name, value in OVERSIZED_HEADERS.items():
            request.headers[name] = value

    if limit == "headers":
        sns.meta.events.register("before-sign.sns.Publish", pad)
    message = "m" if limit == "headers" else "m" * (MAX_BODY + 1024)
    topic = "arn:aws:sns:us-east-1:000000000000:t"
    error = client_error(lambda: sns.publish(TopicArn=topic, Message=message)).response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == (431 if limit == "headers" else 413)
    expected = "RequestHeaderSectionTooLarge" if limit == "headers" else "RequestEntityTooLarge"
    assert error.get("Error", {}).get("Code") == expected, error


@pytest.mark.parametrize("service", ["lambda", "dynamodb", "s3"])
def test_body_over_the_limit_is_413(echo: Echo, service: str) -> None:
    big = b"x" * (MAX_BODY + 64 * 1024)
    calls = {
        "lambda": lambda: client(echo.endpoint, "lambda").invoke(FunctionName="f", Payload=big),
        "dynamodb": lambda: client(echo.endpoint, "dynamodb").put_item(
            TableName="t", Item={"k": {"B": big}}
        ),
        "s3": lambda: client(echo.endpoint, "s3").put_object(Bucket="b", Key="k", Body=big),
    }
    error = client_error(calls[service]).response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Error"]["Code"] == "RequestEntityTooLarge"
