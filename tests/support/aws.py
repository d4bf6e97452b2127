"""AWS clients pointed at a squall server: boto3, the AWS CLI, and raw signed requests."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from typing import Any
from unittest import mock

import boto3
import requests
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "us-east-1"


def client(
    endpoint: str,
    service: str,
    *,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    **config: Any,
):
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def aws_cli(
    endpoint: str, *args: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY
) -> subprocess.CompletedProcess[str]:
    """Run the AWS CLI (installed from PyPI alongside the tests) against the server."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_PAGER": "",
    }
    command = [
        sys.executable,
        "-m",
        "awscli",
        "--endpoint-url",
        endpoint,
        "--output",
        "json",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


def cli_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def signed_request(
    endpoint: str,
    service: str,
    method: str = "POST",
    path: str = "/",
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    secret_key: str = SECRET_KEY,
    access_key: str = ACCESS_KEY,
    signed_at: datetime.datetime | None = None,
) -> requests.Response:
    """Send a request signed with SigV4 exactly as botocore signs, with any body or headers.

    `signed_at` signs as of another moment (naive UTC), as a client with a wrong clock would.
    """
    request = AWSRequest(method=method, url=endpoint + path, data=body, headers=headers or {})
    signer_class = S3SigV4Auth if service == "s3" else SigV4Auth  # S3 signs paths literally
    signer = signer_class(Credentials(access_key, secret_key), service, REGION)
    if signed_at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
            signer.add_auth(request)
    prepared = request.prepare()
    return requests.request(
        method, prepared.url, data=body, headers=dict(prepared.headers), timeout=30
    )
