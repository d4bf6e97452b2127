"""Lambda packages read from S3: CreateFunction, UpdateFunctionCode and PublishLayerVersion with
`S3Bucket` / `S3Key` (/ `S3ObjectVersion`), through boto3 and the AWS CLI, with the errors AWS
Lambda gives when the object cannot be read."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import requests

from tests.support.aws import aws_cli, cli_json, client
from tests.support.lambdas import ROLE, RUNTIME, handler_zip, invoke_json, unique, zip_of

SOURCE = """
def handler(event, context):
    return {"answer": %d}
"""
LAYERED_SOURCE = """
import shared

def handler(event, context):
    return {"shared": shared.VALUE}
"""


@pytest.fixture(scope="module")
def lam(endpoint: str) -> Any:
    return client(endpoint, "lambda")


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3", s3={"addressing_style": "path"})


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    name = unique("code")
    s3.create_bucket(Bucket=name)
    return name


def code_sha256(package: bytes) -> str:
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


def upload(s3: Any, bucket: str, package: bytes, key: str | None = None) -> str:
    key = key or f"packages/{unique('pkg')}.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=package)
    return key


def create_from_s3(lam: Any, bucket: str, key: str, **code: Any) -> dict[str, Any]:
    return lam.create_function(
        FunctionName=unique("s3code"),
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"S3Bucket": bucket, "S3Key": key, **code},
    )


def lambda_error(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    return caught.value.response


def test_create_function_from_an_s3_object(lam: Any, s3: Any, bucket: str) -> None:
    package = handler_zip(SOURCE % 1)
    key = upload(s3, bucket, package)
    created = create_from_s3(lam, bucket, key)
    name = created["FunctionName"]
    assert created["CodeSha256"] == code_sha256(package)
    assert created["CodeSize"] == len(package)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    _, payload = invoke_json(lam, name)
    assert payload == {"answer": 1}

    # GetFunction still hands out a download link for the stored package
    got = lam.get_function(FunctionName=name)
    assert got["Code"]["RepositoryType"] == "S3"
    download = requests.get(got["Code"]["Location"], timeout=30)
    assert download.status_code == 200
    assert download.content == package

    # the package was copied: deleting the object does not affect the function
    s3.delete_object(Bucket=bucket, Key=key)
    _, payload = invoke_json(lam, name)
    assert payload == {"answer": 1}


def test_update_function_code_from_an_s3_object(lam: Any, s3: Any, bucket: str) -> None:
    created = create_from_s3(lam, bucket, upload(s3, bucket, handler_zip(SOURCE % 1)))
    name = created["FunctionName"]
    package = handler_zip(SOURCE % 2)
    updated = lam.update_function_code(
        FunctionName=name, S3Bucket=bucket, S3Key=upload(s3, bucket, package), Publish=True
    )
    assert updated["CodeSha256"] == code_sha256(package)
    assert updated["Version"] == "1"
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    _, payload = invoke_json(lam, name)
    assert payload == {"answer": 2}


def test_publish_layer_version_from_an_s3_object(lam: Any, s3: Any, bucket: str) -> None:
    layer_zip = zip_of({"python/shared.py": "VALUE = 'from s3'\n"})
    layer = lam.publish_layer_version(
        LayerName=unique("s3layer"),
        Content={"S3Bucket": bucket, "S3Key": upload(s3, bucket, layer_zip)},
        CompatibleRuntimes=[RUNTIME],
    )
    assert layer["Content"]["CodeSha256"] == code_sha256(layer_zip)
    assert layer["Content"]["CodeSize"] == len(layer_zip)
    assert requests.get(layer["Content"]["Location"], timeout=30).content == layer_zip
    created = lam.create_function(
        FunctionName=unique("layered"),
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": handler_zip(LAYERED_SOURCE)},
        Layers=[layer["LayerVersionArn"]],
    )
    _, payload = invoke_json(lam, created["FunctionName"])
    assert payload == {"shared": "from s3"}


def test_s3_object_version_of_an_unversioned_bucket(lam: Any, s3: Any, bucket: str) -> None:
    # squall's buckets are unversioned: their objects' only version is "null"
    key = "fn-null.zip"
    body = handler_zip(SOURCE % 3)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    created = create_from_s3(lam, bucket, key, S3ObjectVersion="null")
    assert created["CodeSha256"] == code_sha256(body)
    _, payload = invoke_json(lam, created["FunctionName"])
    assert payload == {"answer": 3}
    response = lambda_error(
        lam.create_function,
        FunctionName=unique("s3ver"),
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"S3Bucket": bucket, "S3Key": key, "S3ObjectVersion": "3HL4kqtJlcpXroDTDmJ"},
    )
    assert response["Error"]["Code"] == "InvalidParameterValueException"
    message = response["Error"]["Message"]
    assert message.startswith("Error occurred while GetObject. S3 Error Code: NoSuchKey")


def test_missing_objects_are_refused_as_lambda_does(lam: Any, s3: Any, bucket: str) -> None:
    name = unique("s3missing")

    def create(**code: Any) -> dict[str, Any]:
        return lambda_error(
            lam.create_function,
            FunctionName=name,
            Runtime=RUNTIME,
            Role=ROLE,
            Handler="app.handler",
            Code=code,
        )

    response = create(S3Bucket=bucket, S3Key="no/such/key.zip")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert response["Error"]["Message"] == (
        "Error occurred while GetObject. S3 Error Code: NoSuchKey. "
        "S3 Error Message: The specified key does not exist."
    )
    response = create(S3Bucket=unique("nobucket"), S3Key="fn.zip")
    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert response["Error"]["Message"] == (
        "Error occurred while GetObject. S3 Error Code: NoSuchBucket. "
        "S3 Error Message: The specified bucket does not exist"
    )
    # an object that is not a zip is refused like an uploaded one
    response = create(S3Bucket=bucket, S3Key=upload(s3, bucket, b"not a zip"))
    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert response["Error"]["Message"] == (
        "Could not unzip uploaded file. Please check your file, then try to upload again."
    )
    # nothing was created by the failed attempts
    response = lambda_error(lam.get_function, FunctionName=name)
    assert response["Error"]["Code"] == "ResourceNotFoundException"

    created = create_from_s3(lam, bucket, upload(s3, bucket, handler_zip(SOURCE % 1)))
    response = lambda_error(
        lam.update_function_code,
        FunctionName=created["FunctionName"],
        S3Bucket=bucket,
        S3Key="no/such/key.zip",
    )
    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert "S3 Error Code: NoSuchKey" in response["Error"]["Message"]
    response = lambda_error(
        lam.publish_layer_version,
        LayerName=unique("s3layer"),
        Content={"S3Bucket": bucket, "S3Key": "no/such/key.zip"},
    )
    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert "S3 Error Code: NoSuchKey" in response["Error"]["Message"]


def test_aws_cli_deploys_from_s3(endpoint: str, s3: Any, bucket: str, tmp_path: Path) -> None:
    first = upload(s3, bucket, handler_zip(SOURCE % 1))
    name = unique("clis3")
    created = cli_json(
        aws_cli(
            endpoint,
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--runtime",
            RUNTIME,
            "--role",
            ROLE,
            "--handler",
            "app.handler",
            "--code",
            f"S3Bucket={bucket},S3Key={first}",
        )
    )
    assert created["FunctionName"] == name
    package = handler_zip(SOURCE % 3)
    second = upload(s3, bucket, package)
    updated = cli_json(
        aws_cli(
            endpoint,
            "lambda",
            "update-function-code",
            "--function-name",
            name,
            "--s3-bucket",
            bucket,
            "--s3-key",
            second,
        )
    )
    assert updated["CodeSha256"] == code_sha256(package)
    out = tmp_path / "out.json"
    cli_json(aws_cli(endpoint, "lambda", "invoke", "--function-name", name, str(out)))
    assert json.loads(out.read_text()) == {"answer": 3}
