"""Invoking functions on a running server, through boto3 and the AWS CLI, as on AWS Lambda.

Invoke (RequestResponse, Event, DryRun), its tail log, function errors, payload limits, the
client context, qualifiers (versions, aliases, weighted aliases), layers,
InvokeWithResponseStream and the legacy InvokeAsync. Every function gets a unique name; the
server is the session's `squall server` subprocess.
"""

from __future__ import annotations

import base64
import collections
import json
import re
import time
from pathlib import Path
from typing import Any

import awscli
import pytest

from tests.support.aws import aws_cli, cli_json, client
from tests.support.lambdas import (
    RECORDER_SOURCE,
    create,
    eventually,
    handler_zip,
    invoke_json,
    unique,
    zip_of,
)

MIB = 1024 * 1024
SYNC_LIMIT = 6 * MIB  # request and response payloads of synchronous invocations
ASYNC_LIMIT = MIB  # the request payload of asynchronous invocations

ECHO_SOURCE = """
def handler(event, context):
    print("handling request " + context.aws_request_id)
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "version": context.function_version,
        "invoked_arn": context.invoked_function_arn,
    }
"""

# What a version runs: its code label, the version the runtime reports, an environment value.
VERSIONED_SOURCE = """
import os

def handler(event, context):
    color = os.environ.get("COLOR")
    return {{"code": "{label}", "version": context.function_version, "color": color}}
"""

REPORT_LINE = re.compile(
    r"^REPORT RequestId: (?P<id>\S+)\tDuration: \d+\.\d{2} ms\tBilled Duration: \d+ ms"
    r"\tMemory Size: (?P<memory>\d+) MB\tMax Memory Used: \d+ MB"
    r"(?P<init>\tInit Duration: \d+\.\d{2} ms)?[\t ]*$",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def lam(endpoint: str) -> Any:
    return client(endpoint, "lambda")


@pytest.fixture(scope="module")
def recorder_arn(lam: Any) -> str:
    """A function whose tags record what functions running RECORDER_SOURCE received."""
    return create(lam, "def handler(event, context):\n    return None\n", name=unique("recorder"))[
        "FunctionArn"
    ]


def recorded(lam: Any, recorder: str, key: str) -> dict[str, Any]:
    """The event a RECORDER_SOURCE function recorded under `key`, once it has."""
    text = eventually(lambda: lam.list_tags(Resource=recorder)["Tags"].get(key))
    return json.loads(text)


def tail_of(response: dict[str, Any]) -> str:
    return base64.b64decode(response["LogResult"]).decode()


def error_code(caught: pytest.ExceptionInfo) -> tuple[str, int, str]:
    answer = caught.value.response
    return (
        answer["Error"]["Code"],
        answer["ResponseMetadata"]["HTTPStatusCode"],
        answer["Error"]["Message"],
    )


def read_stream(response: dict[str, Any]) -> tuple[bytes, list[dict[str, Any]]]:
    """The joined PayloadChunk bytes of an InvokeWithResponseStream answer, and its events."""
    events = list(response["EventStream"])
    payload = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
    return payload, events


# --------------------------------------------------------------------------- RequestResponse


def test_request_response_round_trips_the_payload(lam: Any) -> None:
    name = create(lam, ECHO_SOURCE, name=unique("echo"))["FunctionName"]
    event = {"text": "naïve café ☃", "numbers": [1, 2.5, -3], "nested": {"ok": True, "none": None}}
    response, body = invoke_json(lam, name, event)
    assert response["StatusCode"] == 200
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert body["event"] == event
    assert body["version"] == "$LATEST"
    assert body["invoked_arn"].endswith(f":function:{name}")


def test_tail_log_shows_start_end_and_report_with_init_duration_only_when_cold(lam: Any) -> None:
    name = create(lam, ECHO_SOURCE, name=unique("tail"), MemorySize=256)["FunctionName"]
    for cold in (True, False):
        response, body = invoke_json(lam, name, {"cold": cold}, LogType="Tail")
        request_id = response["ResponseMetadata"]["RequestId"]
        assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] == request_id
        assert body["request_id"] == request_id  # context.aws_request_id
        log = tail_of(response)
        lines = log.splitlines()
        assert f"START RequestId: {request_id} Version: $LATEST" in lines, log
        assert f"handling request {request_id}" in lines, log
        assert f"END RequestId: {request_id}" in lines, log
        assert lines.index(f"START RequestId: {request_id} Version: $LATEST") < lines.index(
            f"handling request {request_id}"
        )
        report = REPORT_LINE.search(log)
        assert report is not None, log
        assert report["id"] == request_id
        assert report["memory"] == "256"
        assert (report["init"] is not None) is cold, log


# --------------------------------------------------------------------------- invocation types


def test_event_invocation_answers_202_and_runs_the_function(lam: Any, recorder_arn: str) -> None:
    name = create(
        lam,
        RECORDER_SOURCE,
        name=unique("event"),
        Environment={"Variables": {"RECORDER_ARN": recorder_arn}},
    )["FunctionName"]
    key = unique("ev")
    response = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps({"id": key, "n": 1})
    )
    assert response["StatusCode"] == 202
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["Payload"].read() == b""
    assert "ExecutedVersion" not in response
    assert recorded(lam, recorder_arn, key) == {"id": key, "n": 1}


def test_dry_run_answers_204_without_a_payload(lam: Any) -> None:
    name = create(lam, ECHO_SOURCE, name=unique("dryrun"))["FunctionName"]
    response = lam.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")
    assert response["StatusCode"] == 204
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert response["Payload"].read() == b""


def test_unknown_function_is_resource_not_found(lam: Any) -> None:
    name = unique("missing")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
        lam.invoke(FunctionName=name, Payload=b"{}")
    code, status, message = error_code(caught)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert message == f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{name}"


@pytest.mark.parametrize("qualifier", ["nosuchalias", "99"])
def test_unknown_qualifier_is_resource_not_found(lam: Any, qualifier: str) -> None:
    name = create(lam, ECHO_SOURCE, name=unique("qual"))["FunctionName"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
        lam.invoke(FunctionName=name, Qualifier=qualifier, Payload=b"{}")
    code, status, message = error_code(caught)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert message.endswith(f":function:{name}:{qualifier}")


# --------------------------------------------------------------------------- function errors


def test_handler_exception_is_an_unhandled_function_error(lam: Any) -> None:
    name = create(
        lam,
        """
        class ChargeDeclined(Exception):
            pass

        def handler(event, context):
            raise ChargeDeclined("card %s declined" % event["card"])
        """,
        name=unique("raises"),
    )["FunctionName"]
    response, body = invoke_json(lam, name, {"card": 42})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["errorMessage"] == "card 42 declined"
    assert body["errorType"] == "ChargeDeclined"
    assert isinstance(body["stackTrace"], list)
    assert any("app.py" in frame and "in handler" in frame for frame in body["stackTrace"])


def test_timeout_is_sandbox_timedout(lam: Any) -> None:
    name = create(
        lam,
        "import time\n\ndef handler(event, context):\n    time.sleep(3)\n    return 'late'\n",
        name=unique("timeout"),
        Timeout=1,
    )["FunctionName"]
    started = time.monotonic()
    response, body = invoke_json(lam, name, LogType="Tail")
    elapsed = time.monotonic() - started
    assert elapsed < 2.9, "the invocation waited for the handler instead of timing it out"
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    assert "Task timed out after 1.00 seconds" in tail_of(response)


def test_import_error_on_init_is_runtime_import_module_error(lam: Any) -> None:
    name = create(
        lam,
        "import no_such_module_for_squall\n\ndef handler(event, context):\n    return 1\n",
        name=unique("importerr"),
    )["FunctionName"]
    for _ in range(2):  # the failed init is not cached as a working sandbox
        response, body = invoke_json(lam, name)
        assert response["StatusCode"] == 200
        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == "Runtime.ImportModuleError"
        assert body["errorMessage"] == (
            "Unable to import module 'app': No module named 'no_such_module_for_squall'"
        )


# --------------------------------------------------------------------------- limits


def test_sync_payload_over_6mb_is_request_too_large(lam: Any) -> None:
    name = create(lam, ECHO_SOURCE, name=unique("bigsync"))["FunctionName"]
    payload = json.dumps("x" * (SYNC_LIMIT - 1)).encode()
    assert len(payload) == SYNC_LIMIT + 1
    with pytest.raises(lam.exceptions.RequestTooLargeException) as caught:
        lam.invoke(FunctionName=name, Payload=payload)
    code, status, _ = error_code(caught)
    assert (code, status) == ("RequestTooLargeException", 413)


def test_event_payload_over_1mb_is_request_too_large_but_fine_synchronously(lam: Any) -> None:
    name = create(
        lam,
        "def handler(event, context):\n    return len(event)\n",
        name=unique("bigevent"),
    )["FunctionName"]
    payload = json.dumps("x" * (ASYNC_LIMIT - 1)).encode()
    assert len(payload) == ASYNC_LIMIT + 1
    with pytest.raises(lam.exceptions.RequestTooLargeException) as caught:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=payload)
    code, status, _ = error_code(caught)
    assert (code, status) == ("RequestTooLargeException", 413)
    response = lam.invoke(FunctionName=name, Payload=payload)  # within the synchronous limit
    assert response["StatusCode"] == 200
    assert json.loads(response["Payload"].read()) == ASYNC_LIMIT - 1


def test_response_over_6mb_is_function_response_size_too_large(lam: Any) -> None:
    name = create(
        lam,
        "def handler(event, context):\n    return 'y' * event['size']\n",
        name=unique("bigresponse"),
    )["FunctionName"]
    response, body = invoke_json(lam, name, {"size": SYNC_LIMIT + 200})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size" in body["errorMessage"]


@pytest.mark.parametrize("case", ["sync-request", "event-request", "response"])
def test_size_limit_messages_are_lambdas(lam: Any, case: str) -> None:
    name = create(
        lam, "def handler(event, context):\n    return 'y' * 6291700\n", name=unique("sizemsg")
    )["FunctionName"]
    if case == "response":
        _, body = invoke_json(lam, name)
        assert body["errorMessage"] == (
            "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
        )
        return
    limit, kind = (
        (SYNC_LIMIT, "RequestResponse") if case == "sync-request" else (ASYNC_LIMIT, "Event")
    )
    payload = json.dumps("x" * (limit - 1)).encode()
    with pytest.raises(lam.exceptions.RequestTooLargeException) as caught:
        lam.invoke(FunctionName=name, InvocationType=kind, Payload=payload)
    _, _, message = error_code(caught)
    if case == "sync-request":
        assert (
            message == "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
        )
    else:
        assert message == (
            f"{len(payload)} byte payload is too large for the Event invocation type "
            "(limit 1048576 bytes)"
        )


def test_invalid_json_payload_is_invalid_request_content(lam: Any) -> None:
    name = create(lam, ECHO_SOURCE, name=unique("badjson"))["FunctionName"]
    with pytest.raises(lam.exceptions.InvalidRequestContentException) as caught:
        lam.invoke(FunctionName=name, Payload=b'{"unterminated": ')
    code, status, message = error_code(caught)
    assert (code, status) == ("InvalidRequestContentException", 400)
    assert message.startswith("Could not parse request body into json")


# --------------------------------------------------------------------------- client context


def test_client_context_reaches_the_handler(lam: Any) -> None:
    name = create(
        lam,
        """
        def handler(event, context):
            cc = context.client_context
            return {"custom": cc.custom, "env": cc.env, "app_title": cc.client.app_title}
        """,
        name=unique("clientctx"),
    )["FunctionName"]
    document = {
        "custom": {"k": "v"},
        "env": {"platform": "Android", "locale": "en_GB"},
        "client": {"app_title": "Squall Test", "installation_id": "install-1"},
    }
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    response, body = invoke_json(lam, name, ClientContext=encoded)
    assert "FunctionError" not in response, body
    assert body == {"custom": {"k": "v"}, "env": document["env"], "app_title": "Squall Test"}


# --------------------------------------------------------------------------- qualifiers


def test_published_version_and_alias_are_invocable(lam: Any) -> None:
    created = create(lam, ECHO_SOURCE, name=unique("qualified"))
    name, arn = created["FunctionName"], created["FunctionArn"]
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    alias_arn = lam.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")["AliasArn"]
    assert alias_arn == f"{arn}:prod"

    response, body = invoke_json(lam, name, Qualifier="1")
    assert response["ExecutedVersion"] == "1"
    assert body["version"] == "1"
    assert body["invoked_arn"] == f"{arn}:1"

    response, body = invoke_json(lam, name, Qualifier="prod")
    assert response["ExecutedVersion"] == "1"
    assert body["version"] == "1"
    assert body["invoked_arn"] == alias_arn  # context.invoked_function_arn names the alias

    response, body = invoke_json(lam, alias_arn)  # the qualifier inside the ARN
    assert response["ExecutedVersion"] == "1"
    assert body["invoked_arn"] == alias_arn


def test_new_code_runs_on_latest_but_never_on_a_published_version(lam: Any) -> None:
    name = create(lam, VERSIONED_SOURCE.format(label="old"), name=unique("codeupdate"))[
        "FunctionName"
    ]
    lam.publish_version(FunctionName=name)
    assert invoke_json(lam, name)[1]["code"] == "old"  # a warm $LATEST sandbox exists
    lam.update_function_code(
        FunctionName=name, ZipFile=handler_zip(VERSIONED_SOURCE.format(label="new"))
    )
    response, body = invoke_json(lam, name)
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["code"] == "new"
    response, body = invoke_json(lam, name, Qualifier="1")
    assert response["ExecutedVersion"] == "1"
    assert body["code"] == "old"


def test_environment_update_is_seen_by_the_next_invoke(lam: Any) -> None:
    name = create(
        lam,
        VERSIONED_SOURCE.format(label="env"),
        name=unique("envupdate"),
        Environment={"Variables": {"COLOR": "red"}},
    )["FunctionName"]
    assert invoke_json(lam, name)[1]["color"] == "red"
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"COLOR": "blue"}}
    )
    assert invoke_json(lam, name)[1]["color"] == "blue"


def test_weighted_alias_routes_to_both_versions(lam: Any) -> None:
    name = create(lam, VERSIONED_SOURCE.format(label="one"), name=unique("weighted"))[
        "FunctionName"
    ]
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_code(
        FunctionName=name, ZipFile=handler_zip(VERSIONED_SOURCE.format(label="two"))
    )
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    seen: collections.Counter[str] = collections.Counter()
    labels = {"1": "one", "2": "two"}
    for _ in range(60):
        response, body = invoke_json(lam, name, Qualifier="canary")
        executed = response["ExecutedVersion"]
        assert executed in labels, executed
        assert body["version"] == executed  # the answer comes from the version reported
        assert body["code"] == labels[executed]
        seen[executed] += 1
    assert set(seen) == {"1", "2"}, seen  # P(one version only) = 2 * 0.5**60


# --------------------------------------------------------------------------- layers


def test_layers_are_on_sys_path_and_later_layers_overwrite_earlier_ones(lam: Any) -> None:
    first = lam.publish_layer_version(
        LayerName=unique("layer-a"),
        Content={
            "ZipFile": zip_of(
                {"python/shared.py": "WHO = 'first'\n", "python/from_first.py": "VALUE = 1\n"}
            )
        },
        CompatibleRuntimes=["python3.11"],
    )
    second = lam.publish_layer_version(
        LayerName=unique("layer-b"),
        Content={
            "ZipFile": zip_of(
                {"python/shared.py": "WHO = 'second'\n", "python/from_second.py": "VALUE = 2\n"}
            )
        },
    )
    name = create(
        lam,
        """
        import from_first, from_second, shared

        def handler(event, context):
            return {
                "who": shared.WHO,
                "first": from_first.VALUE,
                "second": from_second.VALUE,
                "file": shared.__file__,
                "content": open("/opt/python/shared.py").read(),
            }
        """,
        name=unique("layered"),
        Layers=[first["LayerVersionArn"], second["LayerVersionArn"]],
    )["FunctionName"]
    response, body = invoke_json(lam, name)
    assert "FunctionError" not in response, body
    assert body == {
        "who": "second",
        "first": 1,
        "second": 2,
        "file": "/opt/python/shared.py",
        "content": "WHO = 'second'\n",
    }


# --------------------------------------------------------------------------- response streaming


def test_invoke_with_response_stream_streams_the_answer(lam: Any) -> None:
    name = create(lam, ECHO_SOURCE, name=unique("stream"))["FunctionName"]
    response = lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"streamed": [1, 2, 3]})
    )
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    payload, events = read_stream(response)
    answer = json.loads(payload)
    assert answer["event"] == {"streamed": [1, 2, 3]}
    assert answer["request_id"] == response["ResponseMetadata"]["RequestId"]
    completes = [e for e in events if "InvokeComplete" in e]
    assert len(completes) == 1
    assert events[-1] is completes[0]
    assert not completes[0]["InvokeComplete"].get("ErrorCode")


def test_invoke_with_response_stream_reports_a_failing_handler(lam: Any) -> None:
    name = create(
        lam,
        "def handler(event, context):\n    raise ValueError('stream failed')\n",
        name=unique("streamfail"),
    )["FunctionName"]
    response = lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}")
    assert response["StatusCode"] == 200
    payload, events = read_stream(response)
    assert "InvokeComplete" in events[-1]
    complete = events[-1]["InvokeComplete"]
    assert complete.get("ErrorCode")
    reported = payload.decode() + complete.get("ErrorDetails", "")
    assert "ValueError" in reported
    assert "stream failed" in reported


# --------------------------------------------------------------------------- InvokeAsync


def test_legacy_invoke_async_answers_202_and_delivers(lam: Any, recorder_arn: str) -> None:
    name = create(
        lam,
        RECORDER_SOURCE,
        name=unique("legacy"),
        Environment={"Variables": {"RECORDER_ARN": recorder_arn}},
    )["FunctionName"]
    key = unique("async")
    response = lam.invoke_async(
        FunctionName=name, InvokeArgs=json.dumps({"id": key, "legacy": True}).encode()
    )
    assert response["Status"] == 202
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert recorded(lam, recorder_arn, key) == {"id": key, "legacy": True}


# --------------------------------------------------------------------------- AWS CLI


def test_aws_cli_invoke_writes_the_answer_to_the_outfile(
    endpoint: str, lam: Any, tmp_path: Path
) -> None:
    name = create(
        lam,
        "def handler(event, context):\n    return {'got': event}\n",
        name=unique("cli"),
    )["FunctionName"]
    outfile = tmp_path / "out.json"
    # AWS CLI v2 needs --cli-binary-format to take the payload as raw JSON; v1 (the PyPI
    # package) always does, and refuses the option
    binary_format = (
        ["--cli-binary-format", "raw-in-base64-out"]
        if int(awscli.__version__.split(".")[0]) >= 2
        else []
    )
    result = aws_cli(
        endpoint,
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        '{"a":1}',
        *binary_format,
        str(outfile),
    )
    printed = cli_json(result)
    assert printed["StatusCode"] == 200
    assert printed["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in printed
    assert json.loads(outfile.read_text()) == {"got": {"a": 1}}


# --------------------------------------------------------------------------- JSON log format

JSON_LOGGING_SOURCE = """
import logging

print("initialising")
logger = logging.getLogger()

def handler(event, context):
    logger.debug("debugging %s", event["n"])
    logger.info("hello %s", event["n"])
    return "ok"
"""


def test_json_log_format_gives_json_records_and_platform_records(lam: Any) -> None:
    name = create(
        lam,
        JSON_LOGGING_SOURCE,
        name=unique("jsonlogs"),
        LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "INFO"},
    )["FunctionName"]
    config = lam.get_function_configuration(FunctionName=name)["LoggingConfig"]
    assert config["LogFormat"] == "JSON"
    assert config["SystemLogLevel"] == "INFO"
    response = lam.invoke(FunctionName=name, Payload=b'{"n": 7}', LogType="Tail")
    lines = [line for line in tail_of(response).splitlines() if line]
    assert lines[1] == "initialising"  # init's output, after platform.initStart
    records = [json.loads(line) for line in lines if line.startswith("{")]
    request_id = response["ResponseMetadata"]["RequestId"]
    assert records[0]["type"] == "platform.initStart"  # a cold start
    assert records[0]["record"]["runtimeVersion"] == "python3.11"
    assert records[1]["type"] == "platform.start"
    assert records[1]["record"] == {"requestId": request_id, "version": "$LATEST"}
    application = [r for r in records if "level" in r]
    assert [(r["level"], r["message"]) for r in application] == [("INFO", "hello 7")]
    assert application[0]["requestId"] == request_id
    report = records[-1]
    assert report["type"] == "platform.report"
    assert report["record"]["status"] == "success"
    assert report["record"]["metrics"]["memorySizeMB"] == 128
    assert "initDurationMs" in report["record"]["metrics"]


def test_system_log_level_warn_hides_platform_records(lam: Any) -> None:
    name = create(
        lam,
        JSON_LOGGING_SOURCE,
        name=unique("jsonquiet"),
        LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "WARN"},
    )["FunctionName"]
    response = lam.invoke(FunctionName=name, Payload=b'{"n": 1}', LogType="Tail")
    lines = [line for line in tail_of(response).splitlines() if line]
    assert "initialising" in lines  # what init printed, before the invocation's own lines
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records
    assert not [r for r in records if r.get("type", "").startswith("platform.")]


def test_init_output_is_logged_before_the_first_start(lam: Any) -> None:
    source = 'print("loading the model")\n\ndef handler(event, context):\n    return 1\n'
    name = create(lam, source, name=unique("initlog"))["FunctionName"]
    first = tail_of(lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")).splitlines()
    assert first[0].startswith("INIT_START Runtime Version: python3.11\tRuntime Version ARN: ")
    assert first[1] == "loading the model"
    assert first[2].startswith("START RequestId: ")
    second = tail_of(lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")).splitlines()
    assert second[0].startswith("START RequestId: ")
    assert "loading the model" not in second
