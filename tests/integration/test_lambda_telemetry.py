"""What a user sees of their functions in CloudWatch: log events (through boto3, the AWS CLI and
`squall logs`), AWS/Lambda metrics, custom metrics from Embedded Metric Format lines, and the
Prometheus scrape."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from tests.support.aws import aws_cli, cli_json, client
from tests.support.lambdas import create, eventually, invoke_json, unique

SOURCE = """
import json
import time

def handler(event, context):
    print("hello from", context.function_name, event.get("n"))
    if event.get("emf"):
        print(json.dumps({
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": "ServerlessAirline",
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": "SuccessfulBooking", "Unit": "Count"}],
                }],
            },
            "service": "booking",
            "SuccessfulBooking": [1.0],
        }))
    if event.get("fail"):
        raise ValueError("boom")
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def lam(endpoint: str) -> Any:
    return client(endpoint, "lambda")


@pytest.fixture(scope="module")
def logs(endpoint: str) -> Any:
    return client(endpoint, "logs")


@pytest.fixture(scope="module")
def cloudwatch(endpoint: str) -> Any:
    return client(endpoint, "cloudwatch")


@pytest.fixture(scope="module")
def invoked(lam: Any) -> str:
    """A function invoked three times (one failure, one printing an EMF line)."""
    name = create(lam, SOURCE, name=unique("telemetry"))["FunctionName"]
    invoke_json(lam, name, {"n": 1})
    invoke_json(lam, name, {"n": 2, "emf": True})
    response, _ = invoke_json(lam, name, {"n": 3, "fail": True})
    assert response["FunctionError"] == "Unhandled"
    return name


def messages(logs: Any, group: str, **extra: Any) -> list[str]:
    """The group's messages ([] until the group exists: logs are shipped asynchronously)."""
    try:
        events = logs.filter_log_events(logGroupName=group, **extra)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [event["message"] for event in events]


def test_function_output_and_platform_lines_reach_its_log_group(logs: Any, invoked: str) -> None:
    group = f"/aws/lambda/{invoked}"
    found = eventually(lambda: (m := messages(logs, group)) and len(m) >= 12 and m)
    assert any(m.startswith(f"hello from {invoked} 1") for m in found)
    assert sum(m.startswith("START RequestId: ") for m in found) == 3
    assert sum(m.startswith("END RequestId: ") for m in found) == 3
    reports = [m for m in found if m.startswith("REPORT RequestId: ")]
    assert len(reports) == 3
    assert "Billed Duration: " in reports[0] and "Init Duration: " in reports[0]
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert streams
    assert all("/[$LATEST]" in stream["logStreamName"] for stream in streams)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["logGroupName"] == (
        group
    )


def test_filter_log_events_finds_the_failure(logs: Any, invoked: str) -> None:
    group = f"/aws/lambda/{invoked}"
    found = eventually(lambda: messages(logs, group, filterPattern="ValueError"))
    assert found and all("ValueError" in m for m in found)


def test_aws_cli_filters_the_log_group(endpoint: str, invoked: str) -> None:
    group = f"/aws/lambda/{invoked}"
    output = eventually(
        lambda: cli_json(
            aws_cli(
                endpoint,
                "logs",
                "filter-log-events",
                "--log-group-name",
                group,
                "--filter-pattern",
                "REPORT",
            )
        )["events"]
    )
    assert all(event["message"].startswith("REPORT RequestId:") for event in output)


def _statistics(cloudwatch: Any, name: str, metric: str, **extra: Any) -> list[dict]:
    now = datetime.datetime.now(datetime.UTC)
    return cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName=metric,
        Dimensions=[{"Name": "FunctionName", "Value": name}],
        StartTime=now - datetime.timedelta(minutes=10),
        EndTime=now + datetime.timedelta(minutes=1),
        Period=3600,
        Statistics=["Sum", "SampleCount", "Maximum"],
        **extra,
    )["Datapoints"]


def test_aws_lambda_metrics_count_invocations_and_errors(cloudwatch: Any, invoked: str) -> None:
    invocations = eventually(lambda: _statistics(cloudwatch, invoked, "Invocations"))
    assert sum(point["Sum"] for point in invocations) == 3
    errors = _statistics(cloudwatch, invoked, "Errors")
    assert sum(point["Sum"] for point in errors) == 1
    duration = _statistics(cloudwatch, invoked, "Duration")
    assert sum(point["SampleCount"] for point in duration) == 3
    assert max(point["Maximum"] for point in duration) > 0


def test_throttles_are_counted(lam: Any, cloudwatch: Any) -> None:
    name = create(lam, SOURCE, name=unique("throttled"))["FunctionName"]
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException) as caught:
        lam.invoke(FunctionName=name, Payload=b"{}")
    attempts = caught.value.response["ResponseMetadata"].get("RetryAttempts", 0) + 1
    throttles = eventually(lambda: _statistics(cloudwatch, name, "Throttles"))
    assert sum(point["Sum"] for point in throttles) == attempts


def test_emf_lines_become_custom_metrics(cloudwatch: Any, invoked: str) -> None:
    now = datetime.datetime.now(datetime.UTC)

    def points() -> list[dict]:
        return cloudwatch.get_metric_statistics(
            Namespace="ServerlessAirline",
            MetricName="SuccessfulBooking",
            Dimensions=[{"Name": "service", "Value": "booking"}],
            StartTime=now - datetime.timedelta(minutes=10),
            EndTime=now + datetime.timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]

    found = eventually(points)
    assert sum(point["Sum"] for point in found) >= 1


def test_prometheus_scrape_has_per_function_series(endpoint: str, invoked: str) -> None:
    def scrape() -> str:
        text = requests.get(f"{endpoint}/metrics", timeout=10).text
        return text if f'function="{invoked}"' in text else ""

    text = eventually(scrape)
    lines = [line for line in text.splitlines() if f'function="{invoked}"' in line]
    assert any(line.startswith("squall_lambda_invocations_total") for line in lines)
    invocations = [
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("squall_lambda_invocations_total") and "resource=" not in line
    ]
    assert invocations and max(invocations) >= 3


def _squall_logs(endpoint: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    return subprocess.Popen(
        [sys.executable, "-m", "squall", "logs", *args, "--endpoint-url", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_squall_logs_prints_and_filters(endpoint: str, logs: Any, invoked: str) -> None:
    eventually(lambda: len(messages(logs, f"/aws/lambda/{invoked}")) >= 12)
    process = _squall_logs(endpoint, invoked, "--since", "10m")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"hello from {invoked} 2" in out
    assert out.count("REPORT RequestId:") == 3
    process = _squall_logs(endpoint, invoked, "--filter", "ValueError")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    # the failure's record (its traceback kept in one event, as Lambda's runtime does)
    assert "[ERROR] ValueError: boom" in out
    assert "Traceback (most recent call last):" in out
    assert "hello from" not in out and "REPORT RequestId:" not in out


def test_squall_logs_follow_prints_new_events(endpoint: str, lam: Any) -> None:
    name = create(lam, SOURCE, name=unique("follow"))["FunctionName"]
    process = _squall_logs(endpoint, name, "--follow", "--since", "1m")
    try:
        time.sleep(1.5)
        invoke_json(lam, name, {"n": 42})
        deadline = time.monotonic() + 30
        seen = ""
        assert process.stdout is not None
        while time.monotonic() < deadline and "REPORT RequestId:" not in seen:
            seen += process.stdout.readline()
        assert f"hello from {name} 42" in seen
        assert "REPORT RequestId:" in seen
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_squall_logs_rejects_a_bad_since(endpoint: str) -> None:
    process = _squall_logs(endpoint, "whatever", "--since", "yesterday-ish")
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "--since" in err


def test_unknown_function_has_no_log_group(endpoint: str) -> None:
    process = _squall_logs(endpoint, unique("nothing"))
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "ResourceNotFoundException" in err


def test_async_event_age_is_recorded(lam: Any, cloudwatch: Any) -> None:
    name = create(lam, SOURCE, name=unique("asyncage"))["FunctionName"]
    assert lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
    ages = eventually(lambda: _statistics(cloudwatch, name, "AsyncEventAge"))
    assert sum(point["SampleCount"] for point in ages) == 1
    invocations = eventually(lambda: _statistics(cloudwatch, name, "Invocations"))
    assert sum(point["Sum"] for point in invocations) == 1


BAD_EMF_SOURCE = """
import json

def handler(event, context):
    print(json.dumps({
        "_aws": {
            "Timestamp": 1e22,
            "CloudWatchMetrics": [{
                "Namespace": "Broken",
                "Dimensions": [["service"]],
                "Metrics": [{"Name": "Far", "Unit": "Count"}],
            }],
        },
        "service": "x",
        "Far": 1,
    }))
    return 1
"""


def test_an_emf_line_from_the_far_future_is_ignored(
    lam: Any, cloudwatch: Any, endpoint: str
) -> None:
    name = create(lam, BAD_EMF_SOURCE, name=unique("bademf"))["FunctionName"]
    invoke_json(lam, name, {})
    invoke_json(lam, name, {})
    # the function's own metrics are still stored and read back
    invocations = eventually(lambda: _statistics(cloudwatch, name, "Invocations"))
    assert sum(point["Sum"] for point in invocations) == 2
    listed = cloudwatch.list_metrics(Namespace="Broken")["Metrics"]
    assert listed == []
