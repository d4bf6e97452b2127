"""CloudWatch Logs through boto3 and the AWS CLI against `squall server`: groups, streams,
events, filtering, retention (really deleting) and tags, with AWS's errors."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from tests.support.aws import REGION, aws_cli, cli_json, client
from tests.support.servers import RunningServer

ACCOUNT = "000000000000"
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def logs(endpoint: str) -> Any:
    return client(endpoint, "logs")


def unique(prefix: str = "g") -> str:
    return f"/test/{prefix}-{uuid.uuid4().hex[:10]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error["Code"], error["Message"]


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def stream_with(logs: Any, events: list[tuple[int, str]], group: str | None = None) -> str:
    group = group or unique()
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    if events:
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[{"timestamp": ts, "message": message} for ts, message in events],
        )
    return group


# ---- log groups


def test_log_group_lifecycle_and_shape(logs: Any) -> None:
    name = unique()
    before = now_ms()
    logs.create_log_group(logGroupName=name, logGroupClass="STANDARD")
    [group] = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"
    assert group["logGroupName"] == name
    assert group["arn"] == arn + ":*"
    assert group["logGroupArn"] == arn
    assert group["metricFilterCount"] == 0
    assert group["storedBytes"] == 0
    assert group["logGroupClass"] == "STANDARD"
    assert before - 1000 <= group["creationTime"] <= now_ms() + 1000
    assert "retentionInDays" not in group
    assert error_of(lambda: logs.create_log_group(logGroupName=name)) == (
        "ResourceAlreadyExistsException",
        "The specified log group already exists",
    )
    logs.delete_log_group(logGroupName=name)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []
    assert error_of(lambda: logs.delete_log_group(logGroupName=name)) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )


def test_invalid_names_are_invalid_parameters(logs: Any) -> None:
    code, message = error_of(lambda: logs.create_log_group(logGroupName="bad name!"))
    assert code == "InvalidParameterException"
    assert "failed to satisfy constraint" in message


def test_describe_log_groups_by_prefix_pattern_and_pages(logs: Any) -> None:
    base = unique("page")
    names = [f"{base}/{letter}" for letter in "edcba"]
    for name in names:
        logs.create_log_group(logGroupName=name)
    logs.create_log_group(logGroupName=f"{base}-other/Needle")
    found = logs.describe_log_groups(logGroupNamePrefix=f"{base}/")["logGroups"]
    assert [g["logGroupName"] for g in found] == sorted(names)
    pages = logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=f"{base}/", PaginationConfig={"PageSize": 2}
    )
    sizes, seen = [], []
    for page in pages:
        sizes.append(len(page["logGroups"]))
        seen += [g["logGroupName"] for g in page["logGroups"]]
    assert sizes == [2, 2, 1]
    assert seen == sorted(names)
    by_pattern = logs.describe_log_groups(logGroupNamePattern="Needle")["logGroups"]
    assert [g["logGroupName"] for g in by_pattern] == [f"{base}-other/Needle"]
    assert set(by_pattern[0]) == {"logGroupName", "creationTime", "arn"}
    assert logs.describe_log_groups(logGroupNamePattern="needle-not-there")["logGroups"] == []
    code, message = error_of(
        lambda: logs.describe_log_groups(logGroupNamePrefix=base, logGroupNamePattern="x")
    )
    assert code == "InvalidParameterException"
    assert "mutually exclusive" in message
    assert error_of(lambda: logs.describe_log_groups(nextToken="garbage!"))[0] == (
        "InvalidParameterException"
    )


# ---- log streams


def test_log_streams_lifecycle_ordering_and_pages(logs: Any) -> None:
    group = unique()
    logs.create_log_group(logGroupName=group)
    for name in ("b-stream", "a-stream", "c-stream", "other"):
        logs.create_log_stream(logGroupName=group, logStreamName=name)
    assert error_of(
        lambda: logs.create_log_stream(logGroupName=group, logStreamName="a-stream")
    ) == ("ResourceAlreadyExistsException", "The specified log stream already exists")
    assert error_of(lambda: logs.create_log_stream(logGroupName=unique(), logStreamName="x")) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    now = now_ms()
    for offset, name in ((3, "a-stream"), (1, "c-stream"), (2, "b-stream")):
        logs.put_log_events(
            logGroupName=group,
            logStreamName=name,
            logEvents=[{"timestamp": now - 10_000 + offset, "message": name}],
        )
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["a-stream", "b-stream", "c-stream", "other"]
    a = streams[0]
    assert a["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:a-stream"
    assert a["firstEventTimestamp"] == a["lastEventTimestamp"] == now - 10_000 + 3
    assert a["lastIngestionTime"] >= now - 1000
    assert a["uploadSequenceToken"]
    assert a["storedBytes"] == 0
    assert "firstEventTimestamp" not in streams[3]
    prefixed = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="b")
    assert [s["logStreamName"] for s in prefixed["logStreams"]] == ["b-stream"]
    latest = logs.describe_log_streams(
        logGroupName=group, orderBy="LastEventTime", descending=True, limit=2
    )
    assert [s["logStreamName"] for s in latest["logStreams"]] == ["a-stream", "b-stream"]
    rest = logs.describe_log_streams(
        logGroupName=group,
        orderBy="LastEventTime",
        descending=True,
        limit=2,
        nextToken=latest["nextToken"],
    )
    assert [s["logStreamName"] for s in rest["logStreams"]] == ["c-stream", "other"]
    assert "nextToken" not in rest
    reverse = logs.describe_log_streams(logGroupName=group, descending=True)["logStreams"]
    assert [s["logStreamName"] for s in reverse][:2] == ["other", "c-stream"]
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"
    by_arn = logs.describe_log_streams(logGroupIdentifier=arn)["logStreams"]
    assert len(by_arn) == 4
    code, message = error_of(
        lambda: logs.describe_log_streams(
            logGroupName=group, orderBy="LastEventTime", logStreamNamePrefix="a"
        )
    )
    assert (code, message) == (
        "InvalidParameterException",
        "Cannot order by LastEventTime with a logStreamNamePrefix.",
    )
    logs.delete_log_stream(logGroupName=group, logStreamName="a-stream")
    assert error_of(
        lambda: logs.delete_log_stream(logGroupName=group, logStreamName="a-stream")
    ) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    messages = [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]]
    assert sorted(messages) == ["b-stream", "c-stream"]  # the deleted stream's events are gone
    logs.create_log_stream(logGroupName=group, logStreamName="a-stream")  # a new, empty one
    assert logs.get_log_events(logGroupName=group, logStreamName="a-stream")["events"] == []


# ---- PutLogEvents


def test_put_log_events_rules(logs: Any) -> None:
    group = stream_with(logs, [])
    now = now_ms()

    def put(events: list[dict[str, Any]], stream: str = "s") -> dict[str, Any]:
        return logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    assert error_of(
        lambda: put([{"timestamp": now, "message": "b"}, {"timestamp": now - 1, "message": "a"}])
    ) == (
        "InvalidParameterException",
        "Log events in a single PutLogEvents request must be in chronological order.",
    )
    big = "x" * (1_048_576 // 2)
    code, message = error_of(
        lambda: put([{"timestamp": now, "message": big}, {"timestamp": now, "message": big}])
    )
    assert code == "InvalidParameterException"
    assert message == "Upload too large: 1048628 bytes exceeds limit of 1048576"
    fits = "y" * (1_048_576 - 26)
    logs.create_log_stream(logGroupName=group, logStreamName="big")
    put([{"timestamp": now, "message": fits}], stream="big")  # exactly at the limit
    assert error_of(
        lambda: put(
            [
                {"timestamp": now - 2 * DAY_MS, "message": "a"},
                {"timestamp": now, "message": "b"},
            ]
        )
    ) == (
        "InvalidParameterException",
        "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
    )
    code, message = error_of(
        lambda: put([{"timestamp": now, "message": str(i)} for i in range(10_001)])
    )
    assert code == "InvalidParameterException"
    assert "Member must have length less than or equal to 10000" in message
    assert error_of(lambda: put([{"timestamp": now, "message": "x"}], stream="nope")) == (
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
    result = put(
        [
            {"timestamp": now - 20 * DAY_MS, "message": "ancient"},
            {"timestamp": now - 1, "message": "ok 1"},
            {"timestamp": now, "message": "ok 2"},
            {"timestamp": now + 3 * 3_600_000, "message": "future"},
        ]
    )
    assert result["rejectedLogEventsInfo"] == {
        "tooOldLogEventEndIndex": 0,
        "tooNewLogEventStartIndex": 3,
    }
    assert result["nextSequenceToken"]
    many = put([{"timestamp": now, "message": f"n{i}"} for i in range(10_000)])
    assert "rejectedLogEventsInfo" not in many
    stored = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    messages = [e["message"] for e in stored["events"]]
    assert "ancient" not in messages and "future" not in messages
    assert {"ok 1", "ok 2"} <= set(messages)


# ---- GetLogEvents


def test_get_log_events_pages_both_ways(logs: Any) -> None:
    now = now_ms()
    group = stream_with(logs, [(now - 100 + i, f"m{i}") for i in range(10)])
    tail = logs.get_log_events(logGroupName=group, logStreamName="s", limit=3)
    assert [e["message"] for e in tail["events"]] == ["m7", "m8", "m9"]
    assert tail["events"][0]["ingestionTime"] >= now - 1000
    older = logs.get_log_events(
        logGroupName=group, logStreamName="s", limit=3, nextToken=tail["nextBackwardToken"]
    )
    assert [e["message"] for e in older["events"]] == ["m4", "m5", "m6"]
    head = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True, limit=4)
    assert [e["message"] for e in head["events"]] == ["m0", "m1", "m2", "m3"]
    token, seen = head["nextForwardToken"], []
    while True:
        page = logs.get_log_events(
            logGroupName=group, logStreamName="s", startFromHead=True, limit=4, nextToken=token
        )
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:  # AWS's end of stream: the same token back
            break
        token = page["nextForwardToken"]
    assert seen == [f"m{i}" for i in range(4, 10)]
    window = logs.get_log_events(
        logGroupName=group, logStreamName="s", startTime=now - 98, endTime=now - 95
    )
    assert [e["message"] for e in window["events"]] == ["m2", "m3", "m4"]  # end is exclusive
    assert error_of(
        lambda: logs.get_log_events(logGroupName=group, logStreamName="s", nextToken="f/bogus")
    )[0] == ("InvalidParameterException")
    assert error_of(lambda: logs.get_log_events(logGroupName=group, logStreamName="nope")) == (
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )


# ---- FilterLogEvents


def test_filter_log_events_time_streams_patterns_and_pages(logs: Any) -> None:
    now = now_ms()
    group = unique()
    logs.create_log_group(logGroupName=group)
    for stream in ("app-1", "app-2", "db"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    for index in range(30):
        stream = ("app-1", "app-2", "db")[index % 3]
        level = "ERROR" if index % 5 == 0 else "INFO"
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": now - 1000 + index, "message": f"{level} event {index}"}],
        )
    everything = logs.filter_log_events(logGroupName=group)["events"]
    assert [e["timestamp"] for e in everything] == [now - 1000 + i for i in range(30)]
    assert set(everything[0]) == {
        "logStreamName",
        "timestamp",
        "message",
        "ingestionTime",
        "eventId",
    }
    assert len({e["eventId"] for e in everything}) == 30
    errors = logs.filter_log_events(logGroupName=group, filterPattern="ERROR")["events"]
    assert [e["message"] for e in errors] == [f"ERROR event {i}" for i in range(0, 30, 5)]
    assert logs.filter_log_events(logGroupName=group, filterPattern="error")["events"] == []
    both = logs.filter_log_events(logGroupName=group, filterPattern='ERROR "event 10"')["events"]
    assert [e["message"] for e in both] == ["ERROR event 10"]
    window = logs.filter_log_events(logGroupName=group, startTime=now - 990, endTime=now - 988)
    assert [e["message"] for e in window["events"]] == [
        "ERROR event 10",
        "INFO event 11",
        "INFO event 12",
    ]
    named = logs.filter_log_events(logGroupName=group, logStreamNames=["db"])["events"]
    assert {e["logStreamName"] for e in named} == {"db"} and len(named) == 10
    prefixed = logs.filter_log_events(logGroupName=group, logStreamNamePrefix="app-")["events"]
    assert {e["logStreamName"] for e in prefixed} == {"app-1", "app-2"} and len(prefixed) == 20
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=group, PaginationConfig={"PageSize": 7}
    )
    sizes, seen = [], []
    for page in pages:
        sizes.append(len(page["events"]))
        seen += [e["timestamp"] for e in page["events"]]
    assert seen == [e["timestamp"] for e in everything]
    assert sizes[:4] == [7, 7, 7, 7]
    code, _ = error_of(
        lambda: logs.filter_log_events(
            logGroupName=group, logStreamNames=["db"], logStreamNamePrefix="app"
        )
    )
    assert code == "InvalidParameterException"
    code, _ = error_of(lambda: logs.filter_log_events(logGroupName=group, filterPattern='"open'))
    assert code == "InvalidParameterException"
    assert error_of(lambda: logs.filter_log_events(logGroupName=unique())) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )


def test_aws_cli_filter_log_events(endpoint: str, logs: Any) -> None:
    now = now_ms()
    group = stream_with(logs, [(now - 3, "hello one"), (now - 2, "ERROR two"), (now - 1, "three")])
    found = cli_json(
        aws_cli(
            endpoint,
            "logs",
            "filter-log-events",
            "--log-group-name",
            group,
            "--filter-pattern",
            "ERROR",
        )
    )
    assert [e["message"] for e in found["events"]] == ["ERROR two"]
    every = cli_json(
        aws_cli(
            endpoint, "logs", "filter-log-events", "--log-group-name", group, "--page-size", "1"
        )
    )
    assert [e["message"] for e in every["events"]] == ["hello one", "ERROR two", "three"]
    got = cli_json(
        aws_cli(
            endpoint,
            "logs",
            "get-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            "s",
            "--start-from-head",
        )
    )
    assert [e["message"] for e in got["events"]] == ["hello one", "ERROR two", "three"]


def test_aws_cli_logs_tail(endpoint: str, logs: Any) -> None:
    group = stream_with(logs, [(now_ms() - 1, "tailed line")])
    result = aws_cli(endpoint, "logs", "tail", group)
    if result.returncode != 0 and "Invalid choice" in result.stderr:
        pytest.skip("`aws logs tail` exists only in AWS CLI v2; v1 is installed here")
    assert result.returncode == 0, result.stderr
    assert "tailed line" in result.stdout


# ---- retention


def stored_events(squall: RunningServer, group: str) -> int:
    conn = sqlite3.connect(f"file:{squall.data_dir / 'squall.db'}?mode=ro", uri=True)
    try:
        (count,) = conn.execute(
            "SELECT count(*) FROM logs_events WHERE group_id ="
            " (SELECT id FROM logs_groups WHERE name = ?)",
            (group,),
        ).fetchone()
    finally:
        conn.close()
    return count


def test_retention_is_validated_and_really_deletes_old_events(
    logs: Any, squall: RunningServer
) -> None:
    now = now_ms()
    old = [(now - 3 * DAY_MS + i, f"old {i}") for i in range(100)]
    group = stream_with(logs, old)
    logs.put_log_events(
        logGroupName=group, logStreamName="s", logEvents=[{"timestamp": now, "message": "new"}]
    )
    assert stored_events(squall, group) == 101
    code, message = error_of(
        lambda: logs.put_retention_policy(logGroupName=group, retentionInDays=2)
    )
    assert code == "InvalidParameterException"
    assert "Member must satisfy enum value set: [1, 3, 5, 7, 14, 30" in message
    assert error_of(
        lambda: logs.put_retention_policy(logGroupName=unique(), retentionInDays=1)
    ) == ("ResourceNotFoundException", "The specified log group does not exist.")
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)  # wakes the sweeper
    [described] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described["retentionInDays"] == 1
    assert eventually(lambda: stored_events(squall, group) == 1)
    remaining = logs.filter_log_events(logGroupName=group)["events"]
    assert [e["message"] for e in remaining] == ["new"]
    [described] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described["storedBytes"] == len("new")
    rejected = logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": now - 2 * DAY_MS, "message": "expired"},
            {"timestamp": now, "message": "kept"},
        ],
    )
    assert rejected["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 0}
    logs.delete_retention_policy(logGroupName=group)
    [described] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert "retentionInDays" not in described


def test_deleting_a_group_deletes_its_events(logs: Any, squall: RunningServer) -> None:
    now = now_ms()
    group = stream_with(logs, [(now - i, "x") for i in range(50, 0, -1)])
    assert stored_events(squall, group) == 50
    conn = sqlite3.connect(f"file:{squall.data_dir / 'squall.db'}?mode=ro", uri=True)
    (group_id,) = conn.execute("SELECT id FROM logs_groups WHERE name = ?", (group,)).fetchone()
    logs.delete_log_group(logGroupName=group)

    def remaining() -> int:
        return conn.execute(
            "SELECT count(*) FROM logs_events WHERE group_id = ?", (group_id,)
        ).fetchone()[0]

    assert eventually(lambda: remaining() == 0)
    conn.close()
    logs.create_log_group(logGroupName=group)  # the name is free again, and the group empty
    assert logs.filter_log_events(logGroupName=group)["events"] == []


# ---- tags


def test_tags_new_and_old_apis(logs: Any) -> None:
    group = unique()
    logs.create_log_group(logGroupName=group, tags={"team": "a"})
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "a"}
    logs.tag_resource(resourceArn=arn, tags={"env": "dev", "team": "b"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "b", "env": "dev"}
    logs.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert logs.list_tags_log_group(logGroupName=group)["tags"] == {"env": "dev"}
    logs.tag_log_group(logGroupName=group, tags={"old": "api"})
    logs.untag_log_group(logGroupName=group, tags=["env"])
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"old": "api"}
    too_many = {f"k{i}": "v" for i in range(50)}
    code, _ = error_of(lambda: logs.tag_resource(resourceArn=arn, tags=too_many))
    assert code == "TooManyTagsException"
    missing = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{unique()}"
    assert error_of(lambda: logs.list_tags_for_resource(resourceArn=missing)) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    assert error_of(lambda: logs.list_tags_log_group(logGroupName=unique()))[0] == (
        "ResourceNotFoundException"
    )
