"""Deploy the ETL example: two buckets, the function, its permission and the notification.

    python examples/etl/deploy.py [--endpoint-url http://127.0.0.1:4566]

Creates the input and output buckets, zips handler.py into a function whose OUTPUT_BUCKET is
the output bucket, lets S3 invoke it (`lambda add-permission` for `s3.amazonaws.com`, limited
to the input bucket and this account), and subscribes it to the input bucket's
`s3:ObjectCreated:*` events for keys ending in `.csv`. Running it again updates what exists.
`--delete` removes everything it created instead.

Credentials come from the usual places (AWS_ACCESS_KEY_ID, ...); with none configured it uses
squall's development keys (`test` / `test`). Needs boto3 only.
"""

from __future__ import annotations

import argparse
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent


def clients(endpoint_url: str, region: str) -> tuple[Any, Any, Any]:
    session = boto3.session.Session(region_name=region)
    keys: dict[str, str] = {}
    if session.get_credentials() is None:  # squall's development credentials
        keys = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    return tuple(
        session.client(service, endpoint_url=endpoint_url, **keys)
        for service in ("s3", "lambda", "sts")
    )  # type: ignore[return-value]


def package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(HERE / "handler.py", "handler.py")
    return buffer.getvalue()


def create_bucket(s3: Any, name: str, region: str) -> None:
    extra: dict[str, Any] = {}
    if region != "us-east-1":
        extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(Bucket=name, **extra)
        print(f"created bucket {name}")
    except ClientError as error:
        if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
        print(f"bucket {name} exists")


def deploy_function(lam: Any, args: argparse.Namespace, account: str) -> str:
    settings = {
        "Runtime": args.runtime,
        "Role": f"arn:aws:iam::{account}:role/{args.function_name}",
        "Handler": "handler.handler",
        "Timeout": 30,
        "MemorySize": 1024,
        "Environment": {"Variables": {"OUTPUT_BUCKET": args.output_bucket}},
    }
    try:
        arn = lam.create_function(
            FunctionName=args.function_name, Code={"ZipFile": package()}, **settings
        )["FunctionArn"]
        print(f"created function {args.function_name}")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceConflictException":
            raise
        lam.update_function_code(FunctionName=args.function_name, ZipFile=package())
        lam.get_waiter("function_updated_v2").wait(FunctionName=args.function_name)
        arn = lam.update_function_configuration(FunctionName=args.function_name, **settings)[
            "FunctionArn"
        ]
        print(f"updated function {args.function_name}")
    lam.get_waiter("function_active_v2").wait(FunctionName=args.function_name)
    return arn


def allow_s3(lam: Any, args: argparse.Namespace, account: str) -> None:
    try:
        lam.add_permission(
            FunctionName=args.function_name,
            StatementId="s3-invoke",
            Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
            SourceArn=f"arn:aws:s3:::{args.input_bucket}",
            SourceAccount=account,
        )
        print(f"allowed s3.amazonaws.com to invoke {args.function_name}")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceConflictException":
            raise  # the statement exists from an earlier run


def subscribe(s3: Any, args: argparse.Namespace, function_arn: str) -> None:
    s3.put_bucket_notification_configuration(
        Bucket=args.input_bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "Id": "csv-to-json",
                    "LambdaFunctionArn": function_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".csv"}]}},
                }
            ]
        },
    )
    print(f"s3://{args.input_bucket}/*.csv -> {args.function_name} -> s3://{args.output_bucket}/")


def delete(s3: Any, lam: Any, args: argparse.Namespace) -> None:
    try:
        lam.delete_function(FunctionName=args.function_name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    for bucket in (args.input_bucket, args.output_bucket):
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            s3.delete_bucket(Bucket=bucket)
        except ClientError as error:
            if error.response["Error"]["Code"] != "NoSuchBucket":
                raise
    print(f"deleted {args.function_name}, {args.input_bucket} and {args.output_bucket}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-url", default="http://127.0.0.1:4566")
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    parser.add_argument("--input-bucket", default="etl-input")
    parser.add_argument("--output-bucket", default="etl-output")
    parser.add_argument("--function-name", default="etl-csv-to-json")
    parser.add_argument("--runtime", default="python3.12")
    parser.add_argument("--delete", action="store_true", help="remove what deploy created")
    args = parser.parse_args(argv)
    args.region = args.region or "us-east-1"
    s3, lam, sts = clients(args.endpoint_url, args.region)
    if args.delete:
        delete(s3, lam, args)
        return
    account = sts.get_caller_identity()["Account"]
    create_bucket(s3, args.input_bucket, args.region)
    create_bucket(s3, args.output_bucket, args.region)
    function_arn = deploy_function(lam, args, account)
    allow_s3(lam, args, account)
    subscribe(s3, args, function_arn)


if __name__ == "__main__":
    main()
