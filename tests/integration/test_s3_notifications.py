"""Bucket notifications to functions, through boto3 against a running server: the configuration
(Put/GetBucketNotificationConfiguration, validation as S3 does it) and delivery (the exact S3
event records a function receives for puts, copies, completed multipart uploads and deletes,
filtered by event type, prefix and suffix, parsed by Powertools' S3Model).

The function prints every event it receives; the test reads them back from its log group."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from aws_lambda_powertools.utilities.parser.models import S3Model

from tests.support.aws import REGION, client
from tests.support.lambdas import create, eventually, unique
from tests.support.servers import squall_process

ACCOUNT = "000000000000"
MARKER = "S3-EVENT "
RECORDING_SOURCE = f"""
import json

def handler(event, context):
    print({MARKER!r} + json.dumps(event))
    return None
"""
VALIDATE_MESSAGE = "Unable to validate the following destination configurations"
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SEQUENCER = re.compile(r"^[0-9A-F]+$")
SETTLE = 1.5  # seconds to wait for deliveries that must not happen


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3", s3={"addressing_style": "path"})


@pytest.fixture(scope="module")
def lam(endpoint: str) -> Any:
    return client(endpoint, "lambda")


@pytest.fixture(scope="module")
def logs(endpoint: str) -> Any:
    return client(endpoint, "logs")


@pytest.fixture(scope="module")
def recorder(lam: Any) -> dict[str, Any]:
    """A function that prints each event it receives (FunctionName, FunctionArn, ...)."""
    return create(lam, RECORDING_SOURCE, name=unique("s3-recorder"))


def fails(call: Callable[..., Any], **params: Any) -> tuple[str, int, dict[str, Any]]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**params)
    answer = caught.value.response
    return answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]


def new_bucket(s3: Any) -> str:
    name = unique("notify")
    s3.create_bucket(Bucket=name)
    return name


def allow_s3(lam: Any, function: str, bucket: str) -> None:
    lam.add_permission(
        FunctionName=function,
        StatementId=f"s3-{bucket}",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=f"arn:aws:s3:::{bucket}",
        SourceAccount=ACCOUNT,
    )


def rule(arn: str, events: list[str], prefix: str = "", suffix: str = "", **extra: Any) -> dict:
    config: dict[str, Any] = {"LambdaFunctionArn": arn, "Events": events, **extra}
    rules = [{"Name": "prefix", "Value": prefix}] if prefix else []
    rules += [{"Name": "suffix", "Value": suffix}] if suffix else []
    if rules:
        config["Filter"] = {"Key": {"FilterRules": rules}}
    return config


def configure(s3: Any, bucket: str, *configs: dict[str, Any]) -> None:
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"LambdaFunctionConfigurations": list(configs)},
    )


def invocations(logs: Any, function: str, bucket: str) -> list[dict[str, Any]]:
    """The events the recorder printed for records of `bucket` ([] until its log group exists)."""
    found = []
    params: dict[str, Any] = {"logGroupName": f"/aws/lambda/{function}"}
    while True:
        try:
            answer = logs.filter_log_events(**params)
        except logs.exceptions.ResourceNotFoundException:
            return []
        for event in answer["events"]:
            message = event["message"]
            if MARKER in message:
                received = json.loads(message.split(MARKER, 1)[1])
                records = received.get("Records", [])
                if records and records[0]["s3"]["bucket"]["name"] == bucket:
                    found.append(received)
        if not answer.get("nextToken"):
            return found
        params["nextToken"] = answer["nextToken"]


def delivered(logs: Any, function: str, bucket: str, count: int) -> list[dict[str, Any]]:
    """Exactly `count` records for `bucket`: waits for them, then makes sure no more arrive."""
    eventually(lambda: len(invocations(logs, function, bucket)) >= count, timeout=30)
    time.sleep(SETTLE)
    received = invocations(logs, function, bucket)
    for event in received:
        assert len(event["Records"]) == 1, event  # one record per invocation, as S3 sends
        S3Model.model_validate(event)  # Powertools parses it
    records = [event["Records"][0] for event in received]
    assert len(records) == count, [(r["eventName"], r["s3"]["object"]["key"]) for r in records]
    return records


def check_common(record: dict[str, Any], bucket: str, configuration_id: str) -> None:
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == REGION
    assert EVENT_TIME.match(record["eventTime"]), record["eventTime"]
    assert record["userIdentity"]["principalId"]
    assert record["requestParameters"]["sourceIPAddress"]
    assert record["responseElements"]["x-amz-request-id"]
    assert record["responseElements"]["x-amz-id-2"]
    s3 = record["s3"]
    assert s3["s3SchemaVersion"] == "1.0"
    assert s3["configurationId"] == configuration_id
    assert s3["bucket"]["name"] == bucket
    assert s3["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    assert s3["bucket"]["ownerIdentity"]["principalId"]
    assert SEQUENCER.match(s3["object"]["sequencer"]), s3["object"]["sequencer"]


def sequence_key(record: dict[str, Any]) -> str:
    """Sequencers of one key compare as hex strings once padded to the same length."""
    return record["s3"]["object"]["sequencer"].rjust(32, "0")


# --------------------------------------------------------------------------- delivery


def test_created_and_removed_events_reach_the_function_with_exact_records(
    s3: Any, lam: Any, logs: Any, recorder: dict[str, Any]
) -> None:
    bucket = new_bucket(s3)
    function, arn = recorder["FunctionName"], recorder["FunctionArn"]
    allow_s3(lam, function, bucket)
    configure(
        s3,
        bucket,
        rule(arn, ["s3:ObjectCreated:*"], prefix="in/", suffix=".csv", Id="csv-created"),
        rule(arn, ["s3:ObjectRemoved:*"], prefix="in/", Id="in-removed"),
    )

    csv = b"name,count\nsquall,1\n"
    key = "in/my file+é.csv"
    put = s3.put_object(Bucket=bucket, Key=key, Body=csv)
    s3.put_object(Bucket=bucket, Key="in/skip.txt", Body=b"suffix does not match")
    s3.put_object(Bucket=bucket, Key="out/x.csv", Body=b"prefix does not match")
    s3.copy_object(Bucket=bucket, Key="in/copied.csv", CopySource={"Bucket": bucket, "Key": key})
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="in/multi.csv")["UploadId"]
    part = s3.upload_part(
        Bucket=bucket, Key="in/multi.csv", UploadId=upload_id, PartNumber=1, Body=csv
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="in/multi.csv",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_object(Bucket=bucket, Key="out/x.csv")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "in/copied.csv"}]})

    records = delivered(logs, function, bucket, 5)
    encoded = "in/my+file%2B%C3%A9.csv"  # URL-encoded, '+' for spaces
    by_event = {(r["eventName"], r["s3"]["object"]["key"]): r for r in records}
    assert sorted(by_event) == [
        ("ObjectCreated:CompleteMultipartUpload", "in/multi.csv"),
        ("ObjectCreated:Copy", "in/copied.csv"),
        ("ObjectCreated:Put", encoded),
        ("ObjectRemoved:Delete", "in/copied.csv"),
        ("ObjectRemoved:Delete", encoded),
    ]
    md5 = hashlib.md5(csv).hexdigest()
    created = by_event["ObjectCreated:Put", encoded]
    check_common(created, bucket, "csv-created")
    assert created["s3"]["object"]["size"] == len(csv)
    assert created["s3"]["object"]["eTag"] == md5  # unquoted
    assert created["responseElements"]["x-amz-request-id"] == put["ResponseMetadata"]["RequestId"]

    copied = by_event["ObjectCreated:Copy", "in/copied.csv"]
    check_common(copied, bucket, "csv-created")
    assert (copied["s3"]["object"]["size"], copied["s3"]["object"]["eTag"]) == (len(csv), md5)

    multi = by_event["ObjectCreated:CompleteMultipartUpload", "in/multi.csv"]
    check_common(multi, bucket, "csv-created")
    assert multi["s3"]["object"]["size"] == len(csv)
    mpu_etag = hashlib.md5(hashlib.md5(csv).digest()).hexdigest() + "-1"
    assert multi["s3"]["object"]["eTag"] == mpu_etag

    for removed_key in (encoded, "in/copied.csv"):
        removed = by_event["ObjectRemoved:Delete", removed_key]
        check_common(removed, bucket, "in-removed")
        assert "eTag" not in removed["s3"]["object"]

    # a key's events are ordered by their sequencers
    put_then_delete = [created, by_event["ObjectRemoved:Delete", encoded]]
    assert sequence_key(put_then_delete[0]) < sequence_key(put_then_delete[1])


def test_specific_event_types_only_fire_for_their_operation(
    s3: Any, lam: Any, logs: Any, recorder: dict[str, Any]
) -> None:
    bucket = new_bucket(s3)
    function, arn = recorder["FunctionName"], recorder["FunctionArn"]
    allow_s3(lam, function, bucket)
    configure(s3, bucket, rule(arn, ["s3:ObjectCreated:Copy"], Id="copies-only"))

    s3.put_object(Bucket=bucket, Key="original", Body=b"data")  # a Put: no event
    s3.copy_object(Bucket=bucket, Key="duplicate", CopySource={"Bucket": bucket, "Key": "original"})
    s3.delete_object(Bucket=bucket, Key="duplicate")  # a Delete: no event

    records = delivered(logs, function, bucket, 1)
    assert records[0]["eventName"] == "ObjectCreated:Copy"
    assert records[0]["s3"]["object"]["key"] == "duplicate"
    check_common(records[0], bucket, "copies-only")


def test_keys_that_match_no_rule_do_not_invoke(
    s3: Any, lam: Any, logs: Any, recorder: dict[str, Any]
) -> None:
    bucket = new_bucket(s3)
    function, arn = recorder["FunctionName"], recorder["FunctionArn"]
    allow_s3(lam, function, bucket)
    configure(s3, bucket, rule(arn, ["s3:ObjectCreated:Put"], prefix="logs/", suffix=".gz"))

    for key in ("logs/a.txt", "other/b.gz", "LOGS/c.gz", "logs.gz"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"no event")
    s3.put_object(Bucket=bucket, Key="logs/yes.gz", Body=b"event")

    records = delivered(logs, function, bucket, 1)
    assert records[0]["s3"]["object"]["key"] == "logs/yes.gz"
    assert records[0]["s3"]["configurationId"]  # S3 names a rule that has no Id


def test_cleared_configuration_stops_deliveries(
    s3: Any, lam: Any, logs: Any, recorder: dict[str, Any]
) -> None:
    bucket = new_bucket(s3)
    function, arn = recorder["FunctionName"], recorder["FunctionArn"]
    allow_s3(lam, function, bucket)
    configure(s3, bucket, rule(arn, ["s3:ObjectCreated:*"]))
    s3.put_object(Bucket=bucket, Key="before", Body=b"x")
    delivered(logs, function, bucket, 1)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    s3.put_object(Bucket=bucket, Key="after", Body=b"x")
    assert [r["s3"]["object"]["key"] for r in delivered(logs, function, bucket, 1)] == ["before"]


def test_removed_permission_stops_deliveries(
    s3: Any, lam: Any, logs: Any, recorder: dict[str, Any]
) -> None:
    bucket = new_bucket(s3)
    function, arn = recorder["FunctionName"], recorder["FunctionArn"]
    allow_s3(lam, function, bucket)
    configure(s3, bucket, rule(arn, ["s3:ObjectCreated:*"]))
    s3.put_object(Bucket=bucket, Key="allowed", Body=b"x")
    delivered(logs, function, bucket, 1)
    lam.remove_permission(FunctionName=function, StatementId=f"s3-{bucket}")
    s3.put_object(Bucket=bucket, Key="refused", Body=b"x")
    assert [r["s3"]["object"]["key"] for r in delivered(logs, function, bucket, 1)] == ["allowed"]


def test_an_answered_put_is_delivered_even_if_the_server_is_killed(tmp_path: Path) -> None:
    """Durable once the PUT has answered, at least once: SIGKILL right after the answer, and
    the event still reaches the function after the restart."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with squall_process(data_dir) as server:
        s3, lam = client(server.endpoint, "s3"), client(server.endpoint, "lambda")
        function = create(lam, RECORDING_SOURCE, name=unique("s3-durable"))
        s3.create_bucket(Bucket="durable-events")
        allow_s3(lam, function["FunctionName"], "durable-events")
        configure(s3, "durable-events", rule(function["FunctionArn"], ["s3:ObjectCreated:*"]))
        s3.put_object(Bucket="durable-events", Key="answered.txt", Body=b"x")
        assert server.process is not None
        server.process.kill()
        server.process.wait(timeout=10)
    with squall_process(data_dir) as server:
        logs = client(server.endpoint, "logs")
        keys = eventually(
            lambda: [
                event["Records"][0]["s3"]["object"]["key"]
                for event in invocations(logs, function["FunctionName"], "durable-events")
            ],
            timeout=30,
        )
        assert set(keys) == {"answered.txt"}


# --------------------------------------------------------------------------- configuration


def test_configuration_round_trip(s3: Any, lam: Any, recorder: dict[str, Any]) -> None:
    bucket = new_bucket(s3)
    function, arn = recorder["FunctionName"], recorder["FunctionArn"]
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(
        Bucket=bucket
    )
    allow_s3(lam, function, bucket)
    configure(
        s3,
        bucket,
        rule(arn, ["s3:ObjectCreated:Put", "s3:ObjectCreated:Post"], "up/", ".json", Id="named"),
        rule(arn, ["s3:ObjectRemoved:Delete"], prefix="gone/"),
    )
    got = s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]
    assert len(got) == 2
    named = next(config for config in got if config["Id"] == "named")
    unnamed = next(config for config in got if config["Id"] != "named")
    assert named["LambdaFunctionArn"] == arn
    assert sorted(named["Events"]) == ["s3:ObjectCreated:Post", "s3:ObjectCreated:Put"]
    filter_rules = named["Filter"]["Key"]["FilterRules"]
    assert sorted((r["Name"].lower(), r["Value"]) for r in filter_rules) == [
        ("prefix", "up/"),
        ("suffix", ".json"),
    ]
    assert unnamed["Id"]  # generated
    assert unnamed["Events"] == ["s3:ObjectRemoved:Delete"]

    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(
        Bucket=bucket
    )


def test_missing_function_is_invalid_argument(s3: Any, recorder: dict[str, Any]) -> None:
    bucket = new_bucket(s3)
    arn = recorder["FunctionArn"].rsplit(":", 1)[0] + ":" + unique("no-such-function")
    code, status, error = fails(lambda: configure(s3, bucket, rule(arn, ["s3:ObjectCreated:*"])))
    assert (code, status) == ("InvalidArgument", 400)
    assert error["Message"] == VALIDATE_MESSAGE


def test_function_without_permission_is_invalid_argument(s3: Any, lam: Any) -> None:
    bucket = new_bucket(s3)
    unpermitted = create(lam, RECORDING_SOURCE, name=unique("s3-unpermitted"))["FunctionArn"]
    code, status, error = fails(
        lambda: configure(s3, bucket, rule(unpermitted, ["s3:ObjectCreated:*"]))
    )
    assert (code, status) == ("InvalidArgument", 400)
    assert error["Message"] == VALIDATE_MESSAGE


def test_permission_for_another_bucket_is_invalid_argument(
    s3: Any, lam: Any, recorder: dict[str, Any]
) -> None:
    bucket, other = new_bucket(s3), new_bucket(s3)
    allow_s3(lam, recorder["FunctionName"], other)
    code, status, error = fails(
        lambda: configure(s3, bucket, rule(recorder["FunctionArn"], ["s3:ObjectCreated:*"]))
    )
    assert (code, status) == ("InvalidArgument", 400)
    assert error["Message"] == VALIDATE_MESSAGE
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(
        Bucket=bucket
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((["s3:ObjectCreated:*"], "", ""), (["s3:ObjectCreated:*"], "", "")),
        ((["s3:ObjectCreated:*"], "", ""), (["s3:ObjectCreated:Put"], "", "")),
        ((["s3:ObjectCreated:Put"], "logs/", ""), (["s3:ObjectCreated:Put"], "logs/2024/", "")),
        ((["s3:ObjectRemoved:*"], "", ".csv"), (["s3:ObjectRemoved:Delete"], "", ".csv")),
    ],
    ids=["same-events", "wildcard-covers-put", "nested-prefixes", "same-suffix"],
)
def test_overlapping_configurations_are_invalid_argument(
    s3: Any, lam: Any, recorder: dict[str, Any], first: tuple, second: tuple
) -> None:
    bucket = new_bucket(s3)
    arn = recorder["FunctionArn"]
    allow_s3(lam, recorder["FunctionName"], bucket)
    code, status, error = fails(
        s3.put_bucket_notification_configuration,
        Bucket=bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [rule(arn, *first), rule(arn, *second)]
        },
    )
    assert (code, status) == ("InvalidArgument", 400)
    assert error["Message"] in {
        "Configurations overlap. Configurations on the same bucket cannot share a common "
        "event type.",
        "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if "
        "the prefixes are overlapping for the same event type.",
    }


def test_non_overlapping_configurations_are_accepted(
    s3: Any, lam: Any, recorder: dict[str, Any]
) -> None:
    bucket = new_bucket(s3)
    arn = recorder["FunctionArn"]
    allow_s3(lam, recorder["FunctionName"], bucket)
    configure(
        s3,
        bucket,
        rule(arn, ["s3:ObjectCreated:*"], prefix="images/"),
        rule(arn, ["s3:ObjectCreated:*"], prefix="logs/"),
        rule(arn, ["s3:ObjectRemoved:*"], prefix="images/"),
        rule(arn, ["s3:ObjectCreated:Put"], suffix=".csv", prefix="data/"),
    )
    got = s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]
    assert len(got) == 4


def test_unknown_event_is_invalid_argument(s3: Any, lam: Any, recorder: dict[str, Any]) -> None:
    bucket = new_bucket(s3)
    allow_s3(lam, recorder["FunctionName"], bucket)
    code, status, _ = fails(
        lambda: configure(s3, bucket, rule(recorder["FunctionArn"], ["s3:Nonsense:*"]))
    )
    assert (code, status) == ("InvalidArgument", 400)


def test_notification_configuration_of_a_missing_bucket(s3: Any) -> None:
    code, status, _ = fails(s3.get_bucket_notification_configuration, Bucket=unique("missing"))
    assert (code, status) == ("NoSuchBucket", 404)
    code, status, _ = fails(
        s3.put_bucket_notification_configuration,
        Bucket=unique("missing"),
        NotificationConfiguration={},
    )
    assert (code, status) == ("NoSuchBucket", 404)
