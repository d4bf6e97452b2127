"""Tests for the Lambda service's side of S3: functions as notification targets
(squall.services.awslambda.targets) and packages read from an object store
(squall.services.awslambda.objects), driven through the service's handlers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.core.config import Settings
from squall.core.context import Principal, RequestContext
from squall.core.errors import ServiceError
from squall.services.awslambda.service import LambdaService
from squall.services.s3.notifications import FunctionTargets, validate_configuration
from squall.store import BlobStore, Store, open_store

ACCOUNT = "000000000000"
REGION = "us-east-1"
ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/lambda-role"
BUCKET_ARN = "arn:aws:s3:::uploads"


def package(body: str = "def handler(event, context):\n    return 1\n") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", body)
    return buffer.getvalue()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class Objects:
    """An object store holding {(bucket, key, version or None): bytes}."""

    def __init__(self, objects: dict[tuple[str, str, str | None], bytes]) -> None:
        self.objects = objects
        self.reads: list[tuple[str, str, str, str | None]] = []

    def read_object(
        self,
        account_id: str,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        max_bytes: int | None = None,
    ) -> bytes:
        self.reads.append((account_id, bucket, key, version_id))
        if not any(b == bucket for b, _, _ in self.objects):
            raise ServiceError("NoSuchBucket", "The specified bucket does not exist", status=404)
        if (bucket, key, version_id) not in self.objects:
            if version_id is not None and (bucket, key, None) in self.objects:
                raise ServiceError("NoSuchVersion", "The specified version does not exist.")
            raise ServiceError("NoSuchKey", "The specified key does not exist.", status=404)
        data = self.objects[(bucket, key, version_id)]
        if max_bytes is not None and len(data) > max_bytes:
            raise ServiceError("EntityTooLarge", "Your proposed upload exceeds the maximum")
        return data


class Harness:
    def __init__(self, service: LambdaService, store: Store) -> None:
        self.service = service
        self.store = store
        self.handlers = service.handlers()

    def call(self, operation: str, **request: Any) -> Any:
        ctx = RequestContext(
            request_id="req-1",
            service="lambda",
            operation=operation,
            region=REGION,
            principal=Principal(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, "Root"),
        )
        result = self.handlers[operation](ctx, request)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return result

    def create(self, name: str, **code: Any) -> dict[str, Any]:
        return self.call(
            "CreateFunction",
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code=code or {"ZipFile": package()},
        )

    def queued(self) -> list[tuple[str, str, str | None, bytes]]:
        return [
            (row[0], row[1], row[2], bytes(row[3]))
            for row in self.store.conn.execute(
                "SELECT id, target, qualifier, payload FROM async_events ORDER BY received_at"
            )
        ]


@pytest.fixture
def lam(tmp_path: Path) -> Iterator[Harness]:
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings.data_dir)
    service = LambdaService(settings, store, BlobStore(settings.data_dir / "blobs"))
    yield Harness(service, store)
    store.close()


def invalid_parameter(lam: Harness, operation: str, **request: Any) -> str:
    with pytest.raises(ServiceError) as caught:
        lam.call(operation, **request)
    assert caught.value.code == "InvalidParameterValueException"
    assert caught.value.status == 400
    return caught.value.message


# --------------------------------------------------------------------------- targets


def test_targets_satisfy_the_s3_protocol(lam: Harness) -> None:
    targets: FunctionTargets = lam.service.targets
    assert targets is lam.service.targets


def test_function_exists_for_functions_versions_and_aliases(lam: Harness) -> None:
    targets = lam.service.targets
    lam.create("thumbs")
    lam.call("PublishVersion", FunctionName="thumbs")
    lam.call("CreateAlias", FunctionName="thumbs", Name="live", FunctionVersion="1")
    assert targets.function_exists(ARN + "thumbs")
    assert targets.function_exists(ARN + "thumbs:1")
    assert targets.function_exists(ARN + "thumbs:$LATEST")
    assert targets.function_exists(ARN + "thumbs:live")
    assert not targets.function_exists(ARN + "thumbs:2")
    assert not targets.function_exists(ARN + "thumbs:staging")
    assert not targets.function_exists(ARN + "other")
    assert not targets.function_exists(f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:thumbs")
    assert not targets.function_exists(f"arn:aws:lambda:{REGION}:111111111111:function:thumbs")
    assert not targets.function_exists("thumbs")
    assert not targets.function_exists("arn:aws:sqs:us-east-1:000000000000:q")


def test_allows_follows_the_resource_policy(lam: Harness) -> None:
    targets = lam.service.targets
    lam.create("thumbs")

    def s3_may_invoke(arn: str, bucket_arn: str = BUCKET_ARN, account: str = ACCOUNT) -> bool:
        return targets.allows(
            arn, principal="s3.amazonaws.com", source_arn=bucket_arn, source_account=account
        )

    assert not s3_may_invoke(ARN + "thumbs")  # no policy at all
    lam.call(
        "AddPermission",
        FunctionName="thumbs",
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=BUCKET_ARN,
        SourceAccount=ACCOUNT,
    )
    assert s3_may_invoke(ARN + "thumbs")
    assert not s3_may_invoke(ARN + "thumbs", bucket_arn="arn:aws:s3:::elsewhere")
    assert not s3_may_invoke(ARN + "thumbs", account="111111111111")
    assert not targets.allows(
        ARN + "thumbs",
        principal="sns.amazonaws.com",
        source_arn=BUCKET_ARN,
        source_account=ACCOUNT,
    )
    assert not s3_may_invoke(ARN + "missing")
    # a qualified ARN needs a permission on that qualifier
    lam.call("PublishVersion", FunctionName="thumbs")
    lam.call("CreateAlias", FunctionName="thumbs", Name="live", FunctionVersion="1")
    assert not s3_may_invoke(ARN + "thumbs:live")
    lam.call(
        "AddPermission",
        FunctionName="thumbs",
        Qualifier="live",
        StatementId="s3-any-bucket",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::upload*",
    )
    assert s3_may_invoke(ARN + "thumbs:live")
    assert s3_may_invoke(ARN + "thumbs:live", bucket_arn="arn:aws:s3:::uploads-2")
    assert not s3_may_invoke(ARN + "thumbs:live", bucket_arn="arn:aws:s3:::photos")


def test_s3_validation_through_lambda_targets(lam: Harness) -> None:
    lam.create("thumbs")
    config = {
        "LambdaFunctionConfigurations": [
            {"LambdaFunctionArn": ARN + "thumbs", "Events": ["s3:ObjectCreated:*"]}
        ]
    }

    def validate() -> dict[str, Any]:
        return validate_configuration(
            config, bucket="uploads", account=ACCOUNT, region=REGION, targets=lam.service.targets
        )

    with pytest.raises(ServiceError) as caught:
        validate()
    assert caught.value.fields["ArgumentValue1"] == (
        f"Not authorized to invoke function [{ARN}thumbs]"
    )
    lam.call(
        "AddPermission",
        FunctionName="thumbs",
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=BUCKET_ARN,
        SourceAccount=ACCOUNT,
    )
    assert validate()["LambdaFunctionConfigurations"][0]["LambdaFunctionArn"] == ARN + "thumbs"


def test_enqueue_queues_an_event_invocation_inside_the_callers_transaction(lam: Harness) -> None:
    targets = lam.service.targets
    lam.create("thumbs")
    with lam.store.transaction():
        targets.enqueue(ARN + "thumbs", b'{"Records": []}')
        targets.enqueue(ARN + "thumbs:live", b"{}")
    queued = lam.queued()
    assert [(target, qualifier, payload) for _, target, qualifier, payload in queued] == [
        (ARN + "thumbs", None, b'{"Records": []}'),
        (ARN + "thumbs", "live", b"{}"),
    ]
    assert all(len(event_id) == 36 for event_id, *_ in queued)  # uuid4 request ids
    assert lam.service.queue.pending() == 2

    with pytest.raises(RuntimeError), lam.store.transaction():
        targets.enqueue(ARN + "thumbs", b"{}")
        raise RuntimeError("the object write failed")
    assert len(lam.queued()) == 2  # rolled back with the caller


# --------------------------------------------------------------------------- code from S3


def test_create_function_from_the_object_store(lam: Harness) -> None:
    data = package()
    objects = Objects({("code", "fn.zip", None): data})
    lam.service.objects = objects
    created = lam.create("from-s3", S3Bucket="code", S3Key="fn.zip")
    assert created["CodeSha256"] == sha256_b64(data)
    assert created["CodeSize"] == len(data)
    assert objects.reads == [(ACCOUNT, "code", "fn.zip", None)]
    got = lam.call("GetFunction", FunctionName="from-s3")
    assert got["Code"]["RepositoryType"] == "S3"
    assert "/_squall/lambda/code/" in got["Code"]["Location"]
    assert lam.service.code.zip_path(hashlib.sha256(data).hexdigest()).read_bytes() == data


def test_update_function_code_from_an_object_version(lam: Harness) -> None:
    first, second = (
        package("def handler(e, c):\n    return 1\n"),
        package("def handler(e, c):\n    return 2\n"),
    )
    lam.service.objects = Objects(
        {("code", "fn.zip", None): first, ("code", "fn.zip", "v2"): second}
    )
    lam.create("versioned", S3Bucket="code", S3Key="fn.zip")
    updated = lam.call(
        "UpdateFunctionCode",
        FunctionName="versioned",
        S3Bucket="code",
        S3Key="fn.zip",
        S3ObjectVersion="v2",
    )
    assert updated["CodeSha256"] == sha256_b64(second)
    message = invalid_parameter(
        lam,
        "UpdateFunctionCode",
        FunctionName="versioned",
        S3Bucket="code",
        S3Key="fn.zip",
        S3ObjectVersion="v3",
    )
    assert message == (
        "Error occurred while GetObject. S3 Error Code: NoSuchVersion. "
        "S3 Error Message: The specified version does not exist."
    )


def test_publish_layer_version_from_the_object_store(lam: Harness) -> None:
    data = package("VALUE = 1\n")
    lam.service.objects = Objects({("layers", "l.zip", None): data})
    layer = lam.call(
        "PublishLayerVersion", LayerName="shared", Content={"S3Bucket": "layers", "S3Key": "l.zip"}
    )
    assert layer["Content"]["CodeSha256"] == sha256_b64(data)
    assert layer["Content"]["CodeSize"] == len(data)
    assert layer["Version"] == 1


def test_object_store_errors_are_answered_as_lambda_does(lam: Harness) -> None:
    lam.service.objects = Objects(
        {("code", "fn.zip", None): package(), ("code", "bad", None): b"x"}
    )

    def create(**code: Any) -> str:
        return invalid_parameter(
            lam,
            "CreateFunction",
            FunctionName="broken",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code=code,
        )

    assert create(S3Bucket="code", S3Key="missing.zip") == (
        "Error occurred while GetObject. S3 Error Code: NoSuchKey. "
        "S3 Error Message: The specified key does not exist."
    )
    assert create(S3Bucket="nobucket", S3Key="fn.zip") == (
        "Error occurred while GetObject. S3 Error Code: NoSuchBucket. "
        "S3 Error Message: The specified bucket does not exist"
    )
    assert create(S3Bucket="code", S3Key="bad") == (
        "Could not unzip uploaded file. Please check your file, then try to upload again."
    )
    assert "S3Key" in create(S3Bucket="code")
    assert lam.service.registry.function((ACCOUNT, REGION, "broken")) is None


def test_without_an_object_store_s3_code_is_refused_clearly(lam: Harness) -> None:
    assert lam.service.objects is None
    message = invalid_parameter(
        lam,
        "CreateFunction",
        FunctionName="nowhere",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"S3Bucket": "code", "S3Key": "fn.zip"},
    )
    assert "no object store" in message


def test_an_async_object_source_is_awaited(lam: Harness) -> None:
    data = package()

    class AsyncObjects:
        async def read_object(
            self,
            account_id: str,
            bucket: str,
            key: str,
            version_id: str | None,
            *,
            max_bytes: int | None = None,
        ) -> bytes:
            return data

    lam.service.objects = AsyncObjects()  # type: ignore[assignment]
    created = lam.create("async-source", S3Bucket="code", S3Key="fn.zip")
    assert created["CodeSha256"] == sha256_b64(data)


def test_packages_from_s3_have_no_zipped_size_limit(
    lam: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from squall.services.awslambda import code

    data = package()
    monkeypatch.setattr(code, "MAX_ZIPPED_BYTES", len(data) - 1)
    with pytest.raises(ServiceError) as caught:
        lam.service.code.ingest(data)
    assert caught.value.code == "RequestEntityTooLargeException"
    lam.service.objects = Objects({("code", "big.zip", None): data})
    created = lam.create("big", S3Bucket="code", S3Key="big.zip")
    assert created["CodeSize"] == len(data)


def test_an_object_larger_than_the_unzipped_limit_is_refused_unread(lam: Harness) -> None:
    from squall.services.awslambda import code

    class Huge:
        def read_object(
            self,
            account_id: str,
            bucket: str,
            key: str,
            version_id: str | None,
            *,
            max_bytes: int | None = None,
        ) -> bytes:
            assert max_bytes == code.MAX_UNZIPPED_BYTES
            raise ServiceError("EntityTooLarge", "Your proposed upload exceeds the maximum")

    lam.service.objects = Huge()  # type: ignore[assignment]
    with pytest.raises(ServiceError) as caught:
        lam.create("too-big", S3Bucket="code", S3Key="fn.zip")
    assert caught.value.code == "InvalidParameterValueException"
    assert caught.value.message == (
        f"Unzipped size must be smaller than {code.MAX_UNZIPPED_BYTES} bytes"
    )
