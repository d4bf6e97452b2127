"""The ETL example (examples/etl/) deployed with its own script and exercised as its README says.

deploy.py runs as a user runs it (a subprocess with credentials in the environment) with unique
bucket and function names; a CSV uploaded with `aws s3 cp` (and one with a key that needs
URL-encoding, through boto3) turns into the exact JSON document in the output bucket, and an
upload whose key does not end in `.csv` produces nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws import ACCESS_KEY, REGION, SECRET_KEY, aws_cli, client
from tests.support.lambdas import eventually

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "etl"

RECORDS = [
    {
        "order_id": 1001,
        "customer": "Ada Lovelace",
        "item": "notebook",
        "quantity": 3,
        "unit_price": 4.5,
        "shipped": True,
        "note": None,
    },
    {
        "order_id": 1002,
        "customer": "Alan Turing",
        "item": "pens, blue",
        "quantity": 10,
        "unit_price": 1.25,
        "shipped": False,
        "note": "gift wrap",
    },
    {
        "order_id": 1003,
        "customer": "Grace Hopper",
        "item": "stapler",
        "quantity": 1,
        "unit_price": 12.99,
        "shipped": True,
        "note": 'she said "thanks"',
    },
    {
        "order_id": 1004,
        "customer": "Edsger Dijkstra",
        "item": "sticky notes",
        "quantity": 0,
        "unit_price": 0.99,
        "shipped": False,
        "note": "007",
    },
]


def expected_json(source: str, records: list[dict[str, Any]]) -> bytes:
    return (json.dumps({"source": source, "records": records}, indent=2) + "\n").encode()


def deploy_script(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "deploy.py"), "--endpoint-url", endpoint, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def deployed(endpoint: str) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    names = {
        "input": f"etl-input-{suffix}",
        "output": f"etl-output-{suffix}",
        "function": f"etl-{suffix}",
    }
    options = (
        "--input-bucket",
        names["input"],
        "--output-bucket",
        names["output"],
        "--function-name",
        names["function"],
    )
    result = deploy_script(endpoint, *options)
    assert result.returncode == 0, result.stdout + result.stderr
    yield names
    deploy_script(endpoint, *options, "--delete")


def output_keys(s3: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_deploy_configures_the_pipeline(endpoint: str, deployed: dict[str, str]) -> None:
    s3, lam = client(endpoint, "s3"), client(endpoint, "lambda")
    config = s3.get_bucket_notification_configuration(Bucket=deployed["input"])
    (rule,) = config["LambdaFunctionConfigurations"]
    function = lam.get_function(FunctionName=deployed["function"])["Configuration"]
    assert rule["LambdaFunctionArn"] == function["FunctionArn"]
    assert rule["Events"] == ["s3:ObjectCreated:*"]
    assert rule["Filter"]["Key"]["FilterRules"] == [{"Name": "Suffix", "Value": ".csv"}]
    assert function["Environment"]["Variables"] == {"OUTPUT_BUCKET": deployed["output"]}
    policy = json.loads(lam.get_policy(FunctionName=deployed["function"])["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"] == {
        "AWS:SourceArn": f"arn:aws:s3:::{deployed['input']}"
    }


def test_a_csv_upload_becomes_json_and_other_files_are_ignored(
    endpoint: str, deployed: dict[str, str]
) -> None:
    s3 = client(endpoint, "s3")
    source, target = deployed["input"], deployed["output"]
    # Not matching the rule: nothing may come of these.
    s3.put_object(Bucket=source, Key="notes.txt", Body=b"not a table\n")
    s3.put_object(Bucket=source, Key="data.csv.bak", Body=(EXAMPLE / "data.csv").read_bytes())
    # As in the README: the sample file, with the AWS CLI.
    copied = aws_cli(endpoint, "s3", "cp", str(EXAMPLE / "data.csv"), f"s3://{source}/")
    assert copied.returncode == 0, copied.stderr
    # A key that arrives URL-encoded in the event (space → '+', '+' → '%2B').
    odd_key = "reports/q3 sales+eu.csv"
    s3.put_object(Bucket=source, Key=odd_key, Body=b"region,total\neu-west,12.5\n,\n")

    eventually(lambda: len(output_keys(s3, target)) >= 2, timeout=60)
    time.sleep(1.0)  # time enough for a wrongly matched upload to have produced something
    assert sorted(output_keys(s3, target)) == ["data.json", "reports/q3 sales+eu.json"]

    shown = aws_cli(endpoint, "s3", "cp", f"s3://{target}/data.json", "-")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.encode() == expected_json(f"s3://{source}/data.csv", RECORDS)
    answer = s3.get_object(Bucket=target, Key="reports/q3 sales+eu.json")
    assert answer["ContentType"] == "application/json"
    assert answer["Body"].read() == expected_json(
        f"s3://{source}/{odd_key}",
        [{"region": "eu-west", "total": 12.5}, {"region": None, "total": None}],
    )
