"""Tests for squall.services.s3.notifications: validating notification configurations as S3
does, matching events against them, and the S3 event records functions receive."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import orjson
import pytest
from aws_lambda_powertools.utilities.parser.models import S3Model

from squall.core.context import Principal
from squall.core.errors import ServiceError
from squall.services.s3 import notifications
from squall.services.s3.notifications import (
    EVENTS,
    event_payload,
    event_principal,
    event_record,
    matches,
    publish,
    sequencer,
    validate_configuration,
)

ACCOUNT = "000000000000"
REGION = "us-east-1"
BUCKET = "photos"
FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:thumbs"
OTHER_FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:index"
OVERLAP = (
    "Configurations overlap. Configurations on the same bucket cannot share a common event type."
)
AMBIGUOUS = (
    "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the "
    "prefixes are overlapping for the same event type."
)
UNVALIDATED = "Unable to validate the following destination configurations"


class FakeTargets:
    """Functions that exist, and the (function, source ARN, source account) grants they have."""

    def __init__(self, *functions: str, grants: set[tuple[str, str, str]] | None = None) -> None:
        self.functions = set(functions)
        self.grants = grants if grants is not None else set()
        self.enqueued: list[tuple[str, bytes]] = []
        self.asked: list[tuple[str, str, str, str]] = []

    def function_exists(self, arn: str) -> bool:
        return arn in self.functions

    def allows(self, arn: str, *, principal: str, source_arn: str, source_account: str) -> bool:
        self.asked.append((arn, principal, source_arn, source_account))
        return principal == "s3.amazonaws.com" and (arn, source_arn, source_account) in self.grants

    def enqueue(self, arn: str, payload: bytes) -> None:
        self.enqueued.append((arn, payload))


def granted(*functions: str) -> FakeTargets:
    return FakeTargets(
        *functions, grants={(fn, f"arn:aws:s3:::{BUCKET}", ACCOUNT) for fn in functions}
    )


def lam(
    arn: str = FN,
    events: list[str] | None = None,
    *,
    prefix: str | None = None,
    suffix: str | None = None,
    config_id: str | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "LambdaFunctionArn": arn,
        "Events": events or ["s3:ObjectCreated:*"],
    }
    if config_id is not None:
        config["Id"] = config_id
    rules = []
    if prefix is not None:
        rules.append({"Name": "prefix", "Value": prefix})
    if suffix is not None:
        rules.append({"Name": "suffix", "Value": suffix})
    if rules:
        config["Filter"] = {"Key": {"FilterRules": rules}}
    return config


def validate(config: dict[str, Any], targets: Any = "grant-all") -> dict[str, Any]:
    if targets == "grant-all":
        arns = [c["LambdaFunctionArn"] for c in config.get("LambdaFunctionConfigurations") or []]
        targets = granted(*arns)
    return validate_configuration(
        config, bucket=BUCKET, account=ACCOUNT, region=REGION, targets=targets
    )


def rejected(config: dict[str, Any], targets: Any = "grant-all") -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        validate(config, targets)
    assert caught.value.code == "InvalidArgument"
    assert caught.value.status == 400
    return caught.value


# --------------------------------------------------------------------------- validation


def test_configuration_is_normalised_for_storage() -> None:
    stored = validate(
        {
            "LambdaFunctionConfigurations": [
                lam(config_id="mine", prefix="in/", suffix=".csv"),
                {
                    "LambdaFunctionArn": OTHER_FN,
                    "Events": ["s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "SUFFIX", "Value": ".csv"}]}},
                },
            ],
            "EventBridgeConfiguration": {},
        }
    )
    first, second = stored["LambdaFunctionConfigurations"]
    assert first == {
        "Id": "mine",
        "LambdaFunctionArn": FN,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {
            "Key": {
                "FilterRules": [
                    {"Name": "Prefix", "Value": "in/"},
                    {"Name": "Suffix", "Value": ".csv"},
                ]
            }
        },
    }
    # a missing Id is generated as S3 does: a UUID's text, base64-encoded
    assert uuid.UUID(base64.b64decode(second["Id"]).decode())
    assert second["Filter"] == {"Key": {"FilterRules": [{"Name": "Suffix", "Value": ".csv"}]}}
    assert stored["EventBridgeConfiguration"] == {}
    assert set(stored) == {"LambdaFunctionConfigurations", "EventBridgeConfiguration"}


def test_empty_configuration_clears_notifications() -> None:
    assert validate({}) == {}
    assert validate({"LambdaFunctionConfigurations": []}) == {}


def test_every_s3_event_type_is_accepted() -> None:
    for event in sorted(EVENTS):
        validate({"LambdaFunctionConfigurations": [lam(events=[event])]})


@pytest.mark.parametrize("event", ["s3:ObjectCreated:Delete", "ObjectCreated:Put", "s3:*", ""])
def test_unknown_event_is_refused(event: str) -> None:
    error = rejected({"LambdaFunctionConfigurations": [lam(events=[event])]})
    assert error.message == "The event is not supported for notifications"


def test_missing_destination_or_events_is_malformed() -> None:
    with pytest.raises(ServiceError) as caught:
        validate({"LambdaFunctionConfigurations": [{"Events": ["s3:ObjectCreated:*"]}]}, None)
    assert caught.value.code == "MalformedXML"
    with pytest.raises(ServiceError) as caught:
        validate({"LambdaFunctionConfigurations": [{"LambdaFunctionArn": FN, "Events": []}]})
    assert caught.value.code == "MalformedXML"


def test_destination_must_exist_and_allow_s3() -> None:
    config = {"LambdaFunctionConfigurations": [lam()]}
    expected = {
        "ArgumentName1": f"{FN}, null",
        "ArgumentValue1": f"Not authorized to invoke function [{FN}]",
    }
    # no such function
    error = rejected(config, FakeTargets())
    assert error.message == UNVALIDATED
    assert error.fields == expected
    # the function exists, but its policy does not let S3 invoke it
    assert rejected(config, FakeTargets(FN)).fields == expected
    # a grant for another bucket (or account) is no grant for this one
    other_bucket = FakeTargets(FN, grants={(FN, "arn:aws:s3:::elsewhere", ACCOUNT)})
    assert rejected(config, other_bucket).fields == expected
    other_account = FakeTargets(FN, grants={(FN, f"arn:aws:s3:::{BUCKET}", "111111111111")})
    assert rejected(config, other_account).fields == expected
    # granted: accepted, after asking for exactly this bucket and account
    targets = granted(FN)
    validate(config, targets)
    assert targets.asked == [(FN, "s3.amazonaws.com", f"arn:aws:s3:::{BUCKET}", ACCOUNT)]


def test_every_failing_destination_is_named() -> None:
    config = {
        "LambdaFunctionConfigurations": [
            lam(FN, ["s3:ObjectCreated:*"]),
            lam(OTHER_FN, ["s3:ObjectRemoved:*"]),
        ],
        "QueueConfigurations": [
            {"QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q", "Events": ["s3:ObjectRestore:*"]}
        ],
    }
    error = rejected(config, granted(OTHER_FN))
    assert error.message == UNVALIDATED
    assert error.fields == {
        "ArgumentName1": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q",
        "ArgumentValue1": "The destination queue does not exist",
        "ArgumentName2": f"{FN}, null",
        "ArgumentValue2": f"Not authorized to invoke function [{FN}]",
    }


def test_topics_and_queues_cannot_be_validated_yet() -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:t"
    error = rejected(
        {"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]}
    )
    assert error.message == UNVALIDATED
    assert error.fields == {
        "ArgumentName1": topic,
        "ArgumentValue1": "The destination topic does not exist",
    }


def test_without_targets_destinations_are_not_checked() -> None:
    stored = validate({"LambdaFunctionConfigurations": [lam()]}, None)
    assert stored["LambdaFunctionConfigurations"][0]["LambdaFunctionArn"] == FN


def test_destination_arn_must_be_a_function_in_the_buckets_region() -> None:
    error = rejected({"LambdaFunctionConfigurations": [lam("arn:aws:lambda:thumbs")]})
    assert error.message == "The ARN is not well formed"
    elsewhere = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:thumbs"
    error = rejected({"LambdaFunctionConfigurations": [lam(elsewhere)]})
    assert error.message == (
        "The notification destination service region is not valid for the bucket location "
        "constraint"
    )
    # qualified ARNs (versions, aliases) are destinations too
    validate({"LambdaFunctionConfigurations": [lam(FN + ":live")]})


def test_filter_rules_are_checked() -> None:
    bad_name = lam()
    bad_name["Filter"] = {"Key": {"FilterRules": [{"Name": "middle", "Value": "x"}]}}
    error = rejected({"LambdaFunctionConfigurations": [bad_name]})
    assert error.message == "filter rule name must be either prefix or suffix"
    twice = lam()
    twice["Filter"] = {
        "Key": {"FilterRules": [{"Name": "prefix", "Value": "a"}, {"Name": "Prefix", "Value": "b"}]}
    }
    error = rejected({"LambdaFunctionConfigurations": [twice]})
    assert error.message == "Cannot specify more than one prefix rule in a filter."
    error = rejected({"LambdaFunctionConfigurations": [lam(suffix="x" * 1025)]})
    assert "cannot exceed 1024 bytes" in error.message


def test_ids_must_be_unique() -> None:
    error = rejected(
        {
            "LambdaFunctionConfigurations": [
                lam(FN, ["s3:ObjectCreated:*"], config_id="same"),
                lam(OTHER_FN, ["s3:ObjectRemoved:*"], config_id="same"),
            ]
        }
    )
    assert error.message == "Same ID used for multiple configurations. IDs must be unique."


def two(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {"LambdaFunctionConfigurations": [first, second]}


def test_unfiltered_configurations_sharing_an_event_type_overlap() -> None:
    error = rejected(two(lam(FN, ["s3:ObjectCreated:*"]), lam(OTHER_FN, ["s3:ObjectCreated:Put"])))
    assert error.message == OVERLAP
    assert error.fields == {
        "ArgumentName": "Event",
        "ArgumentValue": "s3:ObjectCreated:*, s3:ObjectCreated:Put",
    }
    error = rejected(two(lam(FN, ["s3:ObjectRemoved:*"]), lam(FN, ["s3:ObjectRemoved:*"])))
    assert error.message == OVERLAP
    # one configuration listing an event type twice overlaps itself
    error = rejected(
        {
            "LambdaFunctionConfigurations": [
                lam(events=["s3:ObjectCreated:*", "s3:ObjectCreated:Copy"])
            ]
        }
    )
    assert error.message == OVERLAP


def test_filtered_configurations_that_can_match_one_key_are_ambiguous() -> None:
    cases = [
        (lam(FN, prefix="in/"), lam(OTHER_FN, prefix="in/")),
        (lam(FN, prefix="in/"), lam(OTHER_FN, prefix="in/2024/")),
        (lam(FN, suffix=".csv"), lam(OTHER_FN, suffix="data.csv")),
        (lam(FN, prefix="in/"), lam(OTHER_FN, suffix=".csv")),  # in/x.csv matches both
        (lam(FN, prefix="in/", suffix=".csv"), lam(OTHER_FN)),
    ]
    for first, second in cases:
        assert rejected(two(first, second)).message == AMBIGUOUS


def test_configurations_that_never_match_one_key_coexist() -> None:
    cases = [
        (lam(FN, prefix="in/"), lam(OTHER_FN, prefix="out/")),
        (lam(FN, suffix=".csv"), lam(OTHER_FN, suffix=".json")),
        (lam(FN, prefix="in/", suffix=".csv"), lam(OTHER_FN, prefix="in/", suffix=".json")),
        (lam(FN, ["s3:ObjectCreated:*"]), lam(OTHER_FN, ["s3:ObjectRemoved:*"])),
        (lam(FN, ["s3:ObjectCreated:Put"]), lam(OTHER_FN, ["s3:ObjectCreated:Copy"])),
        (lam(FN, ["s3:ObjectRemoved:Delete"]), lam(FN, ["s3:ObjectRemoved:DeleteMarkerCreated"])),
    ]
    for first, second in cases:
        stored = validate(two(first, second))
        assert len(stored["LambdaFunctionConfigurations"]) == 2


# --------------------------------------------------------------------------- matching


def stored_config() -> dict[str, Any]:
    return validate(
        {
            "LambdaFunctionConfigurations": [
                lam(FN, ["s3:ObjectCreated:*"], prefix="in/", suffix=".csv", config_id="csv"),
                lam(OTHER_FN, ["s3:ObjectCreated:Put"], prefix="img/", config_id="images-put"),
                lam(FN, ["s3:ObjectRemoved:Delete"], prefix="img/", config_id="images-gone"),
                lam(OTHER_FN, ["s3:ObjectCreated:Copy"], prefix="my docs/", config_id="copies"),
            ]
        }
    )


def test_matches_by_event_type_and_key() -> None:
    config = stored_config()
    assert matches(config, "ObjectCreated:Put", "in/2024/a.csv") == [("csv", FN)]
    assert matches(config, "ObjectCreated:CompleteMultipartUpload", "in/a.csv") == [("csv", FN)]
    assert matches(config, "ObjectCreated:Put", "in/a.json") == []
    assert matches(config, "ObjectCreated:Put", "out/a.csv") == []
    assert matches(config, "ObjectCreated:Put", "img/cat.png") == [("images-put", OTHER_FN)]
    assert matches(config, "ObjectCreated:Post", "img/cat.png") == []
    assert matches(config, "ObjectRemoved:Delete", "img/cat.png") == [("images-gone", FN)]
    assert matches(config, "ObjectRemoved:DeleteMarkerCreated", "img/cat.png") == []
    assert matches(config, "ObjectRemoved:Delete", "in/a.csv") == []
    # filter values are URL-encoded: '+' stands for a space
    stored = config["LambdaFunctionConfigurations"][3]
    stored["Filter"]["Key"]["FilterRules"][0]["Value"] = "my+docs/"
    assert matches(config, "ObjectCreated:Copy", "my docs/x") == [("copies", OTHER_FN)]
    assert matches({}, "ObjectCreated:Put", "in/a.csv") == []


def test_wildcards_cover_their_family_only() -> None:
    config = validate({"LambdaFunctionConfigurations": [lam(events=["s3:ObjectRemoved:*"])]})
    assert len(matches(config, "ObjectRemoved:Delete", "k")) == 1
    assert len(matches(config, "ObjectRemoved:DeleteMarkerCreated", "k")) == 1
    assert matches(config, "ObjectCreated:Put", "k") == []


# --------------------------------------------------------------------------- records

RECORD_ARGS: dict[str, Any] = {
    "region": REGION,
    "bucket": BUCKET,
    "request_id": "C3D13FE58DE4C810",
    "principal_id": "AWS:AIDAJDPLRKLG7UEXAMPLE",
    "owner_id": "A3NL1KOZZKEXAMPLE",
    "source_ip": "203.0.113.9",
}


def test_object_created_record_has_s3s_exact_shape() -> None:
    record = event_record(
        event_name="ObjectCreated:Put",
        key="in/my report (final)+ü.csv",
        configuration_id="csv",
        size=1024,
        etag='"0123456789abcdef0123456789abcdef"',
        sequencer_value="0055AED6DCD90281E5",
        host_id="FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        event_time=1700000000.1234,
        **RECORD_ARGS,
    )
    assert record == {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2023-11-14T22:13:20.123Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.9"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "csv",
            "bucket": {
                "name": BUCKET,
                "ownerIdentity": {"principalId": "A3NL1KOZZKEXAMPLE"},
                "arn": f"arn:aws:s3:::{BUCKET}",
            },
            "object": {
                "key": "in/my+report+%28final%29%2B%C3%BC.csv",
                "size": 1024,
                "eTag": "0123456789abcdef0123456789abcdef",
                "sequencer": "0055AED6DCD90281E5",
            },
        },
    }
    assert list(record["s3"]["object"]) == ["key", "size", "eTag", "sequencer"]


def test_versioned_and_removed_records() -> None:
    created = event_record(
        event_name="ObjectCreated:Copy",
        key="a",
        configuration_id="c",
        size=0,
        etag="d41d8cd98f00b204e9800998ecf8427e",
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
        **RECORD_ARGS,
    )
    assert created["s3"]["object"]["versionId"] == "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    removed = event_record(
        event_name="ObjectRemoved:Delete",
        key="a",
        configuration_id="c",
        size=10,
        etag="ignored",
        **RECORD_ARGS,
    )
    assert set(removed["s3"]["object"]) == {"key", "sequencer"}
    marker = event_record(
        event_name="ObjectRemoved:DeleteMarkerCreated",
        key="a",
        configuration_id="c",
        version_id="marker-version",
        **RECORD_ARGS,
    )
    assert set(marker["s3"]["object"]) == {"key", "versionId", "sequencer"}
    with pytest.raises(ValueError):
        event_record(event_name="ObjectCreated:Put", key="a", configuration_id="c", **RECORD_ARGS)


def test_event_time_and_source_ip_formats() -> None:
    record = event_record(
        event_name="ObjectRemoved:Delete",
        key="a",
        configuration_id="c",
        **{**RECORD_ARGS, "source_ip": ""},
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["eventTime"])
    assert record["requestParameters"]["sourceIPAddress"] == "127.0.0.1"
    assert re.fullmatch(r"[A-Za-z0-9+/=]{40,}", record["responseElements"]["x-amz-id-2"])


def test_records_parse_under_powertools_s3_model() -> None:
    records = [
        event_record(
            event_name=name,
            key="in/a b.csv",
            configuration_id="csv",
            size=5,
            etag="5d41402abc4b2a76b9719d911017c592",
            version_id=version,
            **RECORD_ARGS,
        )
        for name, version in [
            ("ObjectCreated:Put", None),
            ("ObjectCreated:CompleteMultipartUpload", "v1"),
            ("ObjectRemoved:Delete", None),
            ("ObjectRemoved:DeleteMarkerCreated", "v2"),
        ]
    ]
    payload = event_payload(*records)
    parsed = S3Model.model_validate(orjson.loads(payload))
    assert len(parsed.Records) == 4
    first = parsed.Records[0]
    assert first.eventName == "ObjectCreated:Put"
    assert first.s3.object is not None
    assert first.s3.object.key == "in/a+b.csv"
    assert first.s3.object.size == 5
    assert first.s3.bucket.arn == f"arn:aws:s3:::{BUCKET}"
    assert first.eventTime.tzinfo is not None
    assert parsed.Records[2].s3.object is not None
    assert parsed.Records[2].s3.object.size is None


def test_sequencers_increase() -> None:
    values = [sequencer() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9A-F]{18}", value) for value in values)
    assert values == sorted(values)
    assert len(set(values)) == len(values)


def test_event_principal() -> None:
    root = Principal(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, "Root")
    user = Principal(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/u", "AIDAEXAMPLE", "IAMUser")
    assert event_principal(root) == ACCOUNT
    assert event_principal(user) == "AWS:AIDAEXAMPLE"


def test_publish_enqueues_one_record_per_firing_configuration() -> None:
    config = validate(
        {
            "LambdaFunctionConfigurations": [
                lam(FN, ["s3:ObjectCreated:*"], suffix=".csv", config_id="csv"),
                lam(OTHER_FN, ["s3:ObjectCreated:*"], suffix=".json", config_id="json"),
                lam(OTHER_FN, ["s3:ObjectRemoved:*"], suffix=".csv", config_id="gone"),
            ]
        }
    )
    targets = FakeTargets()
    count = publish(
        targets,
        config,
        event_name="ObjectCreated:Put",
        key="in/a.csv",
        size=3,
        etag="abc",
        **RECORD_ARGS,
    )
    assert count == 1
    ((arn, payload),) = targets.enqueued
    assert arn == FN
    (record,) = orjson.loads(payload)["Records"]
    assert record["s3"]["configurationId"] == "csv"
    assert record["eventName"] == "ObjectCreated:Put"
    assert publish(targets, None, event_name="ObjectCreated:Put", key="a.csv", **RECORD_ARGS) == 0


def test_one_events_records_share_a_sequencer() -> None:
    # validation keeps configurations from overlapping, so build a stored one by hand in which
    # two fire for the same event
    config = {
        "LambdaFunctionConfigurations": [
            {"Id": "a", "LambdaFunctionArn": FN, "Events": ["s3:ObjectCreated:*"]},
            {"Id": "b", "LambdaFunctionArn": OTHER_FN, "Events": ["s3:ObjectCreated:Put"]},
        ]
    }
    targets = FakeTargets()
    publish(
        targets, config, event_name="ObjectCreated:Put", key="k", size=1, etag="e", **RECORD_ARGS
    )
    sequencers = {
        orjson.loads(payload)["Records"][0]["s3"]["object"]["sequencer"]
        for _, payload in targets.enqueued
    }
    assert len(targets.enqueued) == 2
    assert len(sequencers) == 1


def test_module_exports() -> None:
    for name in notifications.__all__:
        assert hasattr(notifications, name)
