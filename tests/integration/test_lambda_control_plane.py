"""The Lambda control plane through boto3 and the AWS CLI: functions, versions, aliases, code
downloads, waiters and account settings, with AWS's response shapes and error codes/messages
(botocore's `lambda` model and the AWS documentation are the reference)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import requests

from tests.support.aws import REGION, aws_cli, cli_json, client
from tests.support.lambdas import ROLE, RUNTIME, handler_zip, invoke_json, unique
from tests.support.servers import squall_process

ACCOUNT = "000000000000"
ARN_PREFIX = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
LATEST = "$LATEST"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LAST_MODIFIED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
UNZIP_MESSAGE = "Could not unzip uploaded file. Please check your file, then try to upload again."
REVISION_MESSAGE = (
    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/"
    "GetAlias API to retrieve the latest Revision Id"
)

SOURCE = """
import os

def handler(event, context):
    return {"answer": 1, "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"]}
"""
OTHER_SOURCE = """
def handler(event, context):
    return {"answer": 2}
"""


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def lam(endpoint: str) -> Any:
    return client(endpoint, "lambda")


@pytest.fixture(scope="module")
def unchecked(endpoint: str) -> Any:
    """A client that sends what botocore would refuse locally, so the server must refuse it."""
    return client(endpoint, "lambda", parameter_validation=False)


def arn(name: str, qualifier: str | None = None) -> str:
    return ARN_PREFIX + name + (f":{qualifier}" if qualifier else "")


def code_sha256(package: bytes) -> str:
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


def new_function(lam: Any, source: str = SOURCE, **extra: Any) -> tuple[str, bytes, dict]:
    """Create a function; its name, its package and CreateFunction's answer."""
    name = extra.pop("FunctionName", None) or unique("cp")
    package = handler_zip(source)
    created = lam.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": package},
        **extra,
    )
    return name, package, created


def fails(call: Callable[..., Any], **kwargs: Any) -> tuple[str, str, int]:
    """(error code, message, HTTP status) of a call that must fail."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    error = caught.value.response
    return (
        error["Error"]["Code"],
        error["Error"]["Message"],
        error["ResponseMetadata"]["HTTPStatusCode"],
    )


def without_metadata(response: dict) -> dict:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def versions_of(lam: Any, name: str) -> list[str]:
    return [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]


# --------------------------------------------------------------------------- CreateFunction


def test_create_function_response_shape(lam: Any) -> None:
    name, package, created = new_function(
        lam,
        Description="made by a test",
        Timeout=10,
        MemorySize=256,
        Environment={"Variables": {"GREETING": "hello"}},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["FunctionName"] == name
    assert created["FunctionArn"] == arn(name)
    assert created["Version"] == LATEST
    assert created["Runtime"] == RUNTIME
    assert created["Role"] == ROLE
    assert created["Handler"] == "app.handler"
    assert created["Description"] == "made by a test"
    assert created["Timeout"] == 10
    assert created["MemorySize"] == 256
    assert created["Environment"] == {"Variables": {"GREETING": "hello"}}
    assert created["CodeSha256"] == code_sha256(package)
    assert created["CodeSize"] == len(package)
    assert UUID.match(created["RevisionId"])
    assert LAST_MODIFIED.match(created["LastModified"])
    assert created["State"] == "Active"
    assert created["LastUpdateStatus"] == "Successful"
    assert created["PackageType"] == "Zip"
    assert created["Architectures"] == ["x86_64"]
    assert created["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{name}"
    assert created["LoggingConfig"]["LogFormat"] == "Text"
    assert created["EphemeralStorage"] == {"Size": 512}
    assert created["TracingConfig"] == {"Mode": "PassThrough"}


def test_create_function_defaults(lam: Any) -> None:
    _, _, created = new_function(lam)
    assert created["Timeout"] == 3
    assert created["MemorySize"] == 128
    assert created["Description"] == ""
    assert "Environment" not in created


def test_create_duplicate_function_conflicts(lam: Any) -> None:
    name, _, _ = new_function(lam)
    code, message, status = fails(
        lam.create_function,
        FunctionName=name,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": handler_zip(OTHER_SOURCE)},
    )
    assert (code, status) == ("ResourceConflictException", 409)
    assert message == f"Function already exist: {name}"


VALIDATION = "ValidationException"
INVALID = "InvalidParameterValueException"
BIG_ENVIRONMENT = {f"KEY_{i}": "x" * 100 for i in range(40)}


@pytest.mark.parametrize(
    ("overrides", "expected_code", "expected_message"),
    [
        pytest.param(
            {"Role": "not-a-role"},
            VALIDATION,
            "1 validation error detected: Value 'not-a-role' at 'role' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+",
            id="bad-role-arn",
        ),
        pytest.param(
            {"MemorySize": 64},
            VALIDATION,
            "1 validation error detected: Value '64' at 'memorySize' failed to satisfy "
            "constraint: Member must have value greater than or equal to 128",
            id="memory-64",
        ),
        pytest.param(
            {"MemorySize": 10241},
            VALIDATION,
            "1 validation error detected: Value '10241' at 'memorySize' failed to satisfy "
            "constraint: Member must have value less than or equal to 10240",
            id="memory-10241",
        ),
        pytest.param(
            {"Timeout": 0},
            VALIDATION,
            "1 validation error detected: Value '0' at 'timeout' failed to satisfy "
            "constraint: Member must have value greater than or equal to 1",
            id="timeout-0",
        ),
        pytest.param(
            {"Timeout": 901},
            VALIDATION,
            "1 validation error detected: Value '901' at 'timeout' failed to satisfy "
            "constraint: Member must have value less than or equal to 900",
            id="timeout-901",
        ),
        pytest.param(
            {"Environment": {"Variables": {"AWS_REGION": "eu-west-1"}}},
            INVALID,
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not "
            "supported for modification. Reserved keys used in this request: AWS_REGION",
            id="reserved-env-key",
        ),
        pytest.param(
            {"Code": {"ZipFile": b"this is not a zip file"}},
            INVALID,
            UNZIP_MESSAGE,
            id="not-a-zip",
        ),
        pytest.param(
            {"Handler": None},
            INVALID,
            "Runtime and Handler are mandatory parameters for functions created with "
            "deployment packages.",
            id="missing-handler",
        ),
    ],
)
def test_create_function_validation(
    lam: Any,
    unchecked: Any,
    overrides: dict[str, Any],
    expected_code: str,
    expected_message: str,
) -> None:
    name = unique("cp-bad")
    request = {
        "FunctionName": name,
        "Runtime": RUNTIME,
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": handler_zip(SOURCE)},
        **overrides,
    }
    request = {k: v for k, v in request.items() if v is not None}
    code, message, status = fails(unchecked.create_function, **request)
    assert (code, status) == (expected_code, 400)
    assert message == expected_message
    # nothing was created
    assert fails(lam.get_function, FunctionName=name)[0] == "ResourceNotFoundException"


def test_create_function_rejects_an_unsupported_runtime(lam: Any) -> None:
    name = unique("cp-bad")
    code, message, status = fails(
        lam.create_function,
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler="index.handler",
        Code={"ZipFile": handler_zip(SOURCE)},
    )
    assert (code, status) == (INVALID, 400)
    assert "nodejs20.x" in message
    assert fails(lam.get_function, FunctionName=name)[0] == "ResourceNotFoundException"


def test_create_function_rejects_environment_over_4kb(lam: Any) -> None:
    name = unique("cp-bad")
    code, message, status = fails(
        lam.create_function,
        FunctionName=name,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": handler_zip(SOURCE)},
        Environment={"Variables": BIG_ENVIRONMENT},
    )
    assert (code, status) == (INVALID, 400)
    assert message.startswith(
        "Lambda was unable to configure your environment variables because the environment "
        "variables you have provided exceeded the 4KB limit. String measured: "
    )
    assert '"KEY_0":"' in message
    assert fails(lam.get_function, FunctionName=name)[0] == "ResourceNotFoundException"


def test_create_function_with_publish_returns_version_1(lam: Any) -> None:
    name, package, created = new_function(lam, Publish=True)
    assert created["Version"] == "1"
    assert created["FunctionArn"] == arn(name, "1")
    assert created["CodeSha256"] == code_sha256(package)
    assert versions_of(lam, name) == [LATEST, "1"]


# --------------------------------------------------------------------------- GetFunction


def test_get_function_configuration_and_code_location(lam: Any) -> None:
    name, package, created = new_function(lam, Tags={"team": "qa", "cost": "0"})
    got = lam.get_function(FunctionName=name)
    configuration = got["Configuration"]
    assert configuration == without_metadata(created)
    assert configuration == without_metadata(lam.get_function_configuration(FunctionName=name))
    assert got["Tags"] == {"team": "qa", "cost": "0"}
    assert "Concurrency" not in got
    assert got["Code"]["RepositoryType"] == "S3"

    location = got["Code"]["Location"]
    assert location.startswith(("http://", "https://"))
    download = requests.get(location, timeout=10)
    assert download.status_code == 200
    assert download.content == package


def test_code_location_with_tampered_signature_is_refused(lam: Any) -> None:
    name, _, _ = new_function(lam)
    location = lam.get_function(FunctionName=name)["Code"]["Location"]
    match = re.search(r"sig=([0-9a-f]+)", location)
    assert match is not None, location
    signature = match.group(1)
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    tampered = location.replace(f"sig={signature}", f"sig={forged}")
    assert tampered != location
    assert requests.get(tampered, timeout=10).status_code == 403


def test_get_function_reports_reserved_concurrency(lam: Any) -> None:
    name, _, _ = new_function(lam)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    try:
        got = lam.get_function(FunctionName=name)
        assert got["Concurrency"] == {"ReservedConcurrentExecutions": 3}
    finally:
        lam.delete_function(FunctionName=name)


def test_get_unknown_function_names_its_arn(lam: Any) -> None:
    name = unique("cp-missing")
    for call in (lam.get_function, lam.get_function_configuration):
        code, message, status = fails(call, FunctionName=name)
        assert (code, status) == ("ResourceNotFoundException", 404)
        assert message == f"Function not found: {arn(name)}"


def test_get_unknown_qualifier_names_the_qualified_arn(lam: Any) -> None:
    name, _, _ = new_function(lam)
    for call in (lam.get_function, lam.get_function_configuration):
        code, message, status = fails(call, FunctionName=name, Qualifier="42")
        assert (code, status) == ("ResourceNotFoundException", 404)
        assert message == f"Function not found: {arn(name, '42')}"


def test_function_arn_and_partial_arn_name_the_function(lam: Any) -> None:
    name, _, _ = new_function(lam, Publish=True)
    for spelling in (arn(name), f"{ACCOUNT}:function:{name}", name):
        assert lam.get_function_configuration(FunctionName=spelling)["FunctionName"] == name
        assert lam.get_function(FunctionName=spelling)["Configuration"]["FunctionArn"] == arn(name)
    for spelling in (arn(name, "1"), f"{ACCOUNT}:function:{name}:1", f"{name}:1"):
        configuration = lam.get_function_configuration(FunctionName=spelling)
        assert configuration["Version"] == "1"
        assert configuration["FunctionArn"] == arn(name, "1")


def test_qualifier_that_contradicts_the_arn_is_refused(lam: Any) -> None:
    name, _, _ = new_function(lam, Publish=True)
    code, message, status = fails(
        lam.get_function_configuration, FunctionName=arn(name, "1"), Qualifier=LATEST
    )
    assert (code, status) == (INVALID, 400)
    assert message == (
        "The derived qualifier from the function name does not match the specified qualifier."
    )


# --------------------------------------------------------------------------- ListFunctions


def test_list_functions_pages_with_max_items(lam: Any) -> None:
    created = {new_function(lam)[0] for _ in range(3)}
    seen: list[str] = []
    marker: str | None = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"MaxItems": 2}
        if marker:
            kwargs["Marker"] = marker
        page = lam.list_functions(**kwargs)
        pages += 1
        assert len(page["Functions"]) <= 2
        seen.extend(f["FunctionName"] for f in page["Functions"])
        marker = page.get("NextMarker")
        if not marker:
            break
        assert pages < 10_000
    assert pages >= 2  # at least three functions exist, two to a page
    assert created <= set(seen)
    assert len(seen) == len(set(seen))
    mine = [f for f in lam.list_functions(MaxItems=50)["Functions"] if f["FunctionName"] in created]
    for entry in mine:
        assert entry["Version"] == LATEST
        assert entry["FunctionArn"] == arn(entry["FunctionName"])


def test_list_functions_paginator_sees_every_function(lam: Any) -> None:
    created = {new_function(lam)[0] for _ in range(3)}
    paginator = lam.get_paginator("list_functions")
    names = [
        f["FunctionName"]
        for page in paginator.paginate(PaginationConfig={"PageSize": 2})
        for f in page["Functions"]
    ]
    assert created <= set(names)
    assert len(names) == len(set(names))


def test_list_functions_with_every_version(lam: Any) -> None:
    name, _, _ = new_function(lam, Publish=True)

    def entries_of(**kwargs: Any) -> list[dict]:
        paginator = lam.get_paginator("list_functions")
        return [
            f
            for page in paginator.paginate(**kwargs)
            for f in page["Functions"]
            if f["FunctionName"] == name
        ]

    default = entries_of()
    assert [f["Version"] for f in default] == [LATEST]
    every = entries_of(FunctionVersion="ALL")
    assert sorted(f["Version"] for f in every) == sorted([LATEST, "1"])
    published = next(f for f in every if f["Version"] == "1")
    assert published["FunctionArn"] == arn(name, "1")


def test_list_functions_returns_at_most_50_per_call(lam: Any) -> None:
    """AWS: "ListFunctions returns a maximum of 50 items in each response, even if you set
    the number higher"."""
    existing = sum(
        len(page["Functions"]) for page in lam.get_paginator("list_functions").paginate()
    )
    extra = [new_function(lam)[0] for _ in range(max(0, 51 - existing))]
    try:
        page = lam.list_functions(MaxItems=100)
        assert len(page["Functions"]) == 50
        assert page.get("NextMarker")
    finally:
        for name in extra:
            lam.delete_function(FunctionName=name)


def test_list_functions_returns_the_documented_subset(lam: Any) -> None:
    """AWS: "The ListFunctions operation returns a subset of the FunctionConfiguration fields.
    To get the additional fields (State, StateReasonCode, StateReason, LastUpdateStatus,
    LastUpdateStatusReason, LastUpdateStatusReasonCode, RuntimeVersionConfig) ..., use
    GetFunction"."""
    name, _, _ = new_function(lam)
    entry = next(
        f
        for page in lam.get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if f["FunctionName"] == name
    )
    assert entry["CodeSha256"]
    assert not {"State", "LastUpdateStatus", "RuntimeVersionConfig"} & set(entry)


# --------------------------------------------------------------------------- updates


def test_update_function_configuration(lam: Any) -> None:
    name, _, created = new_function(lam)
    updated = lam.update_function_configuration(
        FunctionName=name,
        MemorySize=512,
        Timeout=42,
        Description="updated",
        Environment={"Variables": {"COLOUR": "blue"}},
    )
    assert updated["MemorySize"] == 512
    assert updated["Timeout"] == 42
    assert updated["Description"] == "updated"
    assert updated["Environment"] == {"Variables": {"COLOUR": "blue"}}
    assert updated["CodeSha256"] == created["CodeSha256"]
    assert updated["LastUpdateStatus"] == "Successful"
    assert UUID.match(updated["RevisionId"])
    assert updated["RevisionId"] != created["RevisionId"]
    assert without_metadata(lam.get_function_configuration(FunctionName=name)) == (
        without_metadata(updated)
    )


def test_update_function_configuration_checks_revision_id(lam: Any) -> None:
    name, _, created = new_function(lam)
    current = lam.update_function_configuration(FunctionName=name, Timeout=5)
    code, message, status = fails(
        lam.update_function_configuration,
        FunctionName=name,
        Timeout=6,
        RevisionId=created["RevisionId"],
    )
    assert (code, status) == ("PreconditionFailedException", 412)
    assert message == REVISION_MESSAGE
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 5
    accepted = lam.update_function_configuration(
        FunctionName=name, Timeout=7, RevisionId=current["RevisionId"]
    )
    assert accepted["Timeout"] == 7
    assert accepted["RevisionId"] not in (current["RevisionId"], created["RevisionId"])


def test_update_function_configuration_validates_like_create(lam: Any, unchecked: Any) -> None:
    name, _, created = new_function(lam)
    code, message, _ = fails(
        unchecked.update_function_configuration, FunctionName=name, MemorySize=64
    )
    assert code == VALIDATION
    assert "at 'memorySize'" in message
    code, message, _ = fails(
        lam.update_function_configuration,
        FunctionName=name,
        Environment={"Variables": {"AWS_REGION": "eu-west-1"}},
    )
    assert code == INVALID
    assert message.endswith("Reserved keys used in this request: AWS_REGION")
    unchanged = lam.get_function_configuration(FunctionName=name)
    assert unchanged["MemorySize"] == 128
    assert unchanged["RevisionId"] == created["RevisionId"]


def test_update_function_code(lam: Any) -> None:
    name, old_package, created = new_function(lam, Publish=True)
    new_package = handler_zip(OTHER_SOURCE)
    updated = lam.update_function_code(FunctionName=name, ZipFile=new_package)
    assert updated["Version"] == LATEST
    assert updated["CodeSha256"] == code_sha256(new_package)
    assert updated["CodeSha256"] != created["CodeSha256"]
    assert updated["CodeSize"] == len(new_package)
    assert (
        updated["RevisionId"]
        != lam.get_function_configuration(FunctionName=name, Qualifier="1")["RevisionId"]
    )
    assert invoke_json(lam, name)[1] == {"answer": 2}
    # $LATEST downloads the new package; version 1 still has the old one
    latest = lam.get_function(FunctionName=name)["Code"]["Location"]
    assert requests.get(latest, timeout=10).content == new_package
    first = lam.get_function(FunctionName=name, Qualifier="1")
    assert first["Configuration"]["CodeSha256"] == code_sha256(old_package)
    assert requests.get(first["Code"]["Location"], timeout=10).content == old_package


def test_update_function_code_with_publish(lam: Any) -> None:
    name, _, _ = new_function(lam)
    new_package = handler_zip(OTHER_SOURCE)
    published = lam.update_function_code(FunctionName=name, ZipFile=new_package, Publish=True)
    assert published["Version"] == "1"
    assert published["FunctionArn"] == arn(name, "1")
    assert published["CodeSha256"] == code_sha256(new_package)
    assert versions_of(lam, name) == [LATEST, "1"]
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == code_sha256(
        new_package
    )


def test_update_function_code_dry_run_changes_nothing(lam: Any) -> None:
    name, package, _ = new_function(lam)
    before = without_metadata(lam.get_function_configuration(FunctionName=name))
    dry = lam.update_function_code(
        FunctionName=name, ZipFile=handler_zip(OTHER_SOURCE), DryRun=True, Publish=True
    )
    assert dry["FunctionName"] == name
    after = without_metadata(lam.get_function_configuration(FunctionName=name))
    assert after == before
    assert after["CodeSha256"] == code_sha256(package)
    assert versions_of(lam, name) == [LATEST]
    location = lam.get_function(FunctionName=name)["Code"]["Location"]
    assert requests.get(location, timeout=10).content == package


def test_update_function_code_rejects_a_non_zip(lam: Any) -> None:
    name, _, created = new_function(lam)
    code, message, status = fails(lam.update_function_code, FunctionName=name, ZipFile=b"nope")
    assert (code, message, status) == (INVALID, UNZIP_MESSAGE, 400)
    assert (
        lam.get_function_configuration(FunctionName=name)["CodeSha256"] == (created["CodeSha256"])
    )


# --------------------------------------------------------------------------- versions


def test_publish_version(lam: Any) -> None:
    name, _, created = new_function(lam)
    first = lam.publish_version(FunctionName=name, Description="first")
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert first["Version"] == "1"
    assert first["FunctionArn"] == arn(name, "1")
    assert first["Description"] == "first"
    assert first["CodeSha256"] == created["CodeSha256"]
    assert first["State"] == "Active"
    # nothing changed since version 1: publishing again returns it
    again = lam.publish_version(FunctionName=name)
    assert again["Version"] == "1"
    assert versions_of(lam, name) == [LATEST, "1"]

    lam.update_function_configuration(FunctionName=name, MemorySize=256)
    second = lam.publish_version(FunctionName=name, CodeSha256=created["CodeSha256"])
    assert second["Version"] == "2"
    assert second["MemorySize"] == 256
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["MemorySize"] == 128
    assert lam.get_function_configuration(FunctionName=name, Qualifier="2")["MemorySize"] == 256


def test_publish_version_with_wrong_code_sha256(lam: Any) -> None:
    name, _, created = new_function(lam)
    wrong = code_sha256(b"something else")
    code, message, status = fails(lam.publish_version, FunctionName=name, CodeSha256=wrong)
    assert (code, status) == (INVALID, 400)
    assert message == (
        f"CodeSHA256 ({wrong}) is different from current CodeSHA256 in $LATEST "
        f"({created['CodeSha256']}). Please try again with the CodeSHA256 in $LATEST."
    )
    assert versions_of(lam, name) == [LATEST]


def test_publish_version_checks_revision_id(lam: Any) -> None:
    name, _, created = new_function(lam)
    lam.update_function_configuration(FunctionName=name, Timeout=9)
    code, _, status = fails(
        lam.publish_version, FunctionName=name, RevisionId=created["RevisionId"]
    )
    assert (code, status) == ("PreconditionFailedException", 412)
    assert versions_of(lam, name) == [LATEST]


def test_list_versions_by_function(lam: Any) -> None:
    name, _, _ = new_function(lam, Publish=True)
    lam.update_function_configuration(FunctionName=name, Timeout=11)
    lam.publish_version(FunctionName=name)
    listed = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in listed] == [LATEST, "1", "2"]
    assert listed[0]["FunctionArn"] == arn(name, LATEST)
    assert listed[1]["FunctionArn"] == arn(name, "1")
    assert listed[2]["FunctionArn"] == arn(name, "2")
    assert [v["Timeout"] for v in listed] == [11, 3, 11]

    first = lam.list_versions_by_function(FunctionName=name, MaxItems=2)
    assert [v["Version"] for v in first["Versions"]] == [LATEST, "1"]
    rest = lam.list_versions_by_function(FunctionName=name, Marker=first["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2"]
    assert "NextMarker" not in rest


def test_list_versions_of_unknown_function(lam: Any) -> None:
    name = unique("cp-missing")
    code, message, status = fails(lam.list_versions_by_function, FunctionName=name)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert arn(name) in message


# --------------------------------------------------------------------------- DeleteFunction


def test_delete_function_version(lam: Any) -> None:
    name, _, _ = new_function(lam, Publish=True)
    lam.update_function_configuration(FunctionName=name, Timeout=12)
    lam.publish_version(FunctionName=name)
    deleted = lam.delete_function(FunctionName=name, Qualifier="1")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    code, message, _ = fails(lam.get_function_configuration, FunctionName=name, Qualifier="1")
    assert code == "ResourceNotFoundException"
    assert message == f"Function not found: {arn(name, '1')}"
    assert versions_of(lam, name) == [LATEST, "2"]
    # numbers are never reused
    lam.update_function_configuration(FunctionName=name, Timeout=13)
    assert lam.publish_version(FunctionName=name)["Version"] == "3"


def test_delete_latest_by_qualifier_is_refused(lam: Any) -> None:
    name, _, _ = new_function(lam)
    code, message, status = fails(lam.delete_function, FunctionName=name, Qualifier=LATEST)
    assert (code, status) == (INVALID, 400)
    assert message == "$LATEST version cannot be deleted without deleting the function."
    assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


def test_delete_version_an_alias_uses_is_refused(lam: Any) -> None:
    name, _, _ = new_function(lam, Publish=True)
    lam.update_function_configuration(FunctionName=name, Timeout=14)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    for number, alias in (("1", "canary, live"), ("2", "canary")):
        code, message, status = fails(lam.delete_function, FunctionName=name, Qualifier=number)
        assert (code, status) == ("ResourceConflictException", 409)
        assert "aliases reference it" in message
        assert f"[{alias}]" in message
    assert versions_of(lam, name) == [LATEST, "1", "2"]


def test_delete_unknown_version(lam: Any) -> None:
    name, _, _ = new_function(lam)
    code, message, status = fails(lam.delete_function, FunctionName=name, Qualifier="7")
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert message == f"Function not found: {arn(name, '7')}"


def test_delete_function(lam: Any) -> None:
    name, _, _ = new_function(lam, Publish=True)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    deleted = lam.delete_function(FunctionName=arn(name))
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    code, message, status = fails(lam.get_function, FunctionName=name)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert message == f"Function not found: {arn(name)}"
    assert fails(lam.get_function, FunctionName=name, Qualifier="1")[0] == (
        "ResourceNotFoundException"
    )
    assert fails(lam.delete_function, FunctionName=name)[0] == "ResourceNotFoundException"
    names = {
        f["FunctionName"]
        for page in lam.get_paginator("list_functions").paginate()
        for f in page["Functions"]
    }
    assert name not in names
    # the name is free again, and starts from version 1
    _, _, again = new_function(lam, FunctionName=name, Publish=True)
    assert again["Version"] == "1"
    assert lam.list_aliases(FunctionName=name)["Aliases"] == []


# --------------------------------------------------------------------------- aliases


def _two_versions(lam: Any) -> str:
    name, _, _ = new_function(lam, Publish=True)
    lam.update_function_configuration(FunctionName=name, Timeout=20)
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    return name


def test_alias_lifecycle(lam: Any) -> None:
    name = _two_versions(lam)
    created = lam.create_alias(
        FunctionName=name, Name="live", FunctionVersion="1", Description="production"
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == arn(name, "live")
    assert created["Name"] == "live"
    assert created["FunctionVersion"] == "1"
    assert created["Description"] == "production"
    assert UUID.match(created["RevisionId"])
    assert "RoutingConfig" not in created
    assert without_metadata(lam.get_alias(FunctionName=name, Name="live")) == (
        without_metadata(created)
    )
    # the alias is a qualifier
    assert lam.get_function_configuration(FunctionName=name, Qualifier="live")["Version"] == "1"

    updated = lam.update_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"1": 0.25}},
    )
    assert updated["FunctionVersion"] == "2"
    assert updated["Description"] == "production"
    assert updated["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.25}}
    assert updated["RevisionId"] != created["RevisionId"]
    got = lam.get_alias(FunctionName=name, Name="live")
    assert got["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.25}}
    assert got["RevisionId"] == updated["RevisionId"]

    cleared = lam.update_alias(
        FunctionName=name, Name="live", RoutingConfig={"AdditionalVersionWeights": {}}
    )
    assert cleared["FunctionVersion"] == "2"
    assert not (cleared.get("RoutingConfig") or {}).get("AdditionalVersionWeights")

    deleted = lam.delete_alias(FunctionName=name, Name="live")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    code, message, status = fails(lam.get_alias, FunctionName=name, Name="live")
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert arn(name, "live") in message
    assert lam.list_aliases(FunctionName=name)["Aliases"] == []


def test_configuration_through_an_alias_reports_the_alias_arn(lam: Any) -> None:
    """AWS: "If you specify an alias name, the API uses the alias ARN and returns information
    about the function version to which the alias points"."""
    name = _two_versions(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    configuration = lam.get_function_configuration(FunctionName=name, Qualifier="live")
    assert configuration["Version"] == "1"
    assert configuration["FunctionArn"] == arn(name, "live")
    got = lam.get_function(FunctionName=name, Qualifier="live")["Configuration"]
    assert got["FunctionArn"] == arn(name, "live")


def test_update_alias_checks_revision_id(lam: Any) -> None:
    name = _two_versions(lam)
    created = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    current = lam.update_alias(FunctionName=name, Name="live", Description="moved")
    code, message, status = fails(
        lam.update_alias,
        FunctionName=name,
        Name="live",
        FunctionVersion="2",
        RevisionId=created["RevisionId"],
    )
    assert (code, status) == ("PreconditionFailedException", 412)
    assert message == REVISION_MESSAGE
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    accepted = lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion="2", RevisionId=current["RevisionId"]
    )
    assert accepted["FunctionVersion"] == "2"


def test_duplicate_alias_conflicts(lam: Any) -> None:
    name = _two_versions(lam)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    code, message, status = fails(
        lam.create_alias, FunctionName=name, Name="live", FunctionVersion="2"
    )
    assert (code, status) == ("ResourceConflictException", 409)
    assert message == f"Alias already exists: {arn(name, 'live')}"
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"


def test_alias_of_unknown_version_is_refused(lam: Any) -> None:
    name = _two_versions(lam)
    code, message, status = fails(
        lam.create_alias, FunctionName=name, Name="live", FunctionVersion="9"
    )
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert message == f"Function not found: {arn(name, '9')}"


def test_unknown_alias_is_not_found(lam: Any) -> None:
    name = _two_versions(lam)
    code, message, status = fails(lam.get_alias, FunctionName=name, Name="nope")
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert arn(name, "nope") in message


def test_unknown_alias_message_is_aws_wording(lam: Any) -> None:
    name = _two_versions(lam)
    _, message, _ = fails(lam.get_alias, FunctionName=name, Name="nope")
    assert message == f"Cannot find alias arn: {arn(name, 'nope')}"


def test_list_aliases_filters_by_version(lam: Any) -> None:
    name = _two_versions(lam)
    lam.create_alias(FunctionName=name, Name="blue", FunctionVersion="1")
    lam.create_alias(FunctionName=name, Name="green", FunctionVersion="2")
    lam.create_alias(FunctionName=name, Name="edge", FunctionVersion=LATEST)
    every = lam.list_aliases(FunctionName=name)["Aliases"]
    assert sorted(a["Name"] for a in every) == ["blue", "edge", "green"]
    assert {a["Name"]: a["AliasArn"] for a in every} == {
        "blue": arn(name, "blue"),
        "edge": arn(name, "edge"),
        "green": arn(name, "green"),
    }
    assert [
        a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="1")["Aliases"]
    ] == ["blue"]
    assert [
        a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="2")["Aliases"]
    ] == ["green"]
    assert lam.list_aliases(FunctionName=name, FunctionVersion="7")["Aliases"] == []


def test_routing_config_validation(lam: Any) -> None:
    name = _two_versions(lam)
    code, _, _ = fails(
        lam.create_alias,
        FunctionName=name,
        Name="split",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    assert code == INVALID
    code, message, _ = fails(
        lam.create_alias,
        FunctionName=name,
        Name="split",
        FunctionVersion=LATEST,
        RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
    )
    assert code == INVALID
    assert message == "$LATEST is not supported for an alias pointing to more than 1 version"
    assert lam.list_aliases(FunctionName=name)["Aliases"] == []


# --------------------------------------------------------------------------- waiters

FAST = {"Delay": 1, "MaxAttempts": 3}


def test_waiters_return(lam: Any) -> None:
    name, _, _ = new_function(lam)
    lam.get_waiter("function_exists").wait(FunctionName=name, WaiterConfig=FAST)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST)
    lam.get_waiter("function_active").wait(FunctionName=name, WaiterConfig=FAST)
    lam.update_function_configuration(FunctionName=name, Timeout=15)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST)
    lam.get_waiter("function_updated").wait(FunctionName=name, WaiterConfig=FAST)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.get_waiter("published_version_active").wait(
        FunctionName=name, Qualifier=version, WaiterConfig=FAST
    )


def test_function_exists_waiter_gives_up_on_a_missing_function(lam: Any) -> None:
    with pytest.raises(botocore.exceptions.WaiterError):
        lam.get_waiter("function_exists").wait(
            FunctionName=unique("cp-missing"), WaiterConfig={"Delay": 1, "MaxAttempts": 1}
        )


# --------------------------------------------------------------------------- account settings


def test_get_account_settings(lam: Any) -> None:
    before = lam.get_account_settings()
    name, package, _ = new_function(lam)
    settings = lam.get_account_settings()
    limit = settings["AccountLimit"]
    assert limit["ConcurrentExecutions"] == 1000
    assert 0 < limit["UnreservedConcurrentExecutions"] <= 1000
    assert limit["CodeSizeZipped"] == 50 * 1024 * 1024
    assert limit["CodeSizeUnzipped"] == 262_144_000
    assert limit["TotalCodeSize"] == 80_530_636_800
    usage = settings["AccountUsage"]
    assert usage["FunctionCount"] >= 1
    assert usage["FunctionCount"] == before["AccountUsage"]["FunctionCount"] + 1
    assert usage["TotalCodeSize"] == before["AccountUsage"]["TotalCodeSize"] + len(package)
    lam.delete_function(FunctionName=name)
    after = lam.get_account_settings()["AccountUsage"]
    assert after["FunctionCount"] == before["AccountUsage"]["FunctionCount"]


# --------------------------------------------------------------------------- AWS CLI


def test_aws_cli_create_function_and_get_configuration(endpoint: str, tmp_path: Path) -> None:
    name = unique("cp-cli")
    package = handler_zip(SOURCE)
    path = tmp_path / "function.zip"
    path.write_bytes(package)
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
            "--timeout",
            "8",
            "--zip-file",
            f"fileb://{path}",
        )
    )
    assert created["FunctionName"] == name
    assert created["FunctionArn"] == arn(name)
    assert created["CodeSha256"] == code_sha256(package)
    assert created["CodeSize"] == len(package)
    assert created["Timeout"] == 8
    configuration = cli_json(
        aws_cli(endpoint, "lambda", "get-function-configuration", "--function-name", name)
    )
    assert configuration["CodeSha256"] == code_sha256(package)
    assert configuration["State"] == "Active"
    assert configuration["RevisionId"] == created["RevisionId"]

    missing = aws_cli(
        endpoint, "lambda", "get-function-configuration", "--function-name", unique("cp-missing")
    )
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr


# --------------------------------------------------------------------------- restart


def test_functions_versions_aliases_and_tags_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    name = unique("cp-restart")
    package = handler_zip(SOURCE)
    with squall_process(data_dir) as server:
        lam = client(server.endpoint, "lambda")
        created = lam.create_function(
            FunctionName=name,
            Runtime=RUNTIME,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": package},
            Tags={"keep": "me"},
            Publish=True,
        )
        assert created["Version"] == "1"
        alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        latest = lam.update_function_configuration(
            FunctionName=name, Environment={"Variables": {"AFTER": "publish"}}
        )
        lam.tag_resource(Resource=arn(name), Tags={"extra": "tag"})

    with squall_process(data_dir) as server:
        lam = client(server.endpoint, "lambda")
        got = lam.get_function(FunctionName=name)
        assert got["Tags"] == {"keep": "me", "extra": "tag"}
        assert without_metadata(got["Configuration"]) == without_metadata(latest)
        assert got["Configuration"]["Environment"] == {"Variables": {"AFTER": "publish"}}
        assert requests.get(got["Code"]["Location"], timeout=10).content == package
        assert versions_of(lam, name) == [LATEST, "1"]
        first = lam.get_function_configuration(FunctionName=name, Qualifier="1")
        assert first["RevisionId"] == created["RevisionId"]
        assert "Environment" not in first
        assert without_metadata(lam.get_alias(FunctionName=name, Name="live")) == (
            without_metadata(alias)
        )
        assert invoke_json(lam, name, Qualifier="live")[1] == {"answer": 1, "version": "1"}
        assert invoke_json(lam, name)[1] == {"answer": 1, "version": LATEST}
        # numbering carries on where it stopped
        assert lam.publish_version(FunctionName=name)["Version"] == "2"


# --------------------------------------------------------------------------- review follow-ups


def test_publish_version_changes_latest_revision(lam: Any) -> None:
    name, _, created = new_function(lam)
    lam.publish_version(FunctionName=name)
    after = lam.get_function_configuration(FunctionName=name)
    assert after["RevisionId"] != created["RevisionId"]


def test_qualifier_latest_reports_the_qualified_arn(lam: Any) -> None:
    name, _, _ = new_function(lam)
    config = lam.get_function_configuration(FunctionName=name, Qualifier=LATEST)
    assert config["FunctionArn"] == arn(name, LATEST)
    assert lam.get_function_configuration(FunctionName=name)["FunctionArn"] == arn(name)


def test_another_accounts_function_is_refused(lam: Any) -> None:
    foreign = f"arn:aws:lambda:{REGION}:111111111111:function:{unique('foreign')}"
    code, message, status = fails(lam.get_function, FunctionName=foreign)
    assert (code, status) == ("AccessDeniedException", 403)
    assert "is not authorized to perform: lambda:GetFunction" in message
    code, _, status = fails(
        lam.create_function,
        FunctionName=foreign,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": handler_zip(SOURCE)},
    )
    assert (code, status) == ("AccessDeniedException", 403)


def test_event_invoke_destinations_are_checked(lam: Any) -> None:
    name, _, created = new_function(lam)
    code, message, _ = fails(
        lam.put_function_event_invoke_config,
        FunctionName=name,
        DestinationConfig={"OnSuccess": {"Destination": created["FunctionArn"]}},
    )
    assert code == "InvalidParameterValueException"
    assert message == "You can't specify the function as a destination for itself."
    missing = arn(unique("missing"))
    code, message, _ = fails(
        lam.put_function_event_invoke_config,
        FunctionName=name,
        DestinationConfig={"OnFailure": {"Destination": missing}},
    )
    assert (code, message) == (
        "InvalidParameterValueException",
        f"The destination ARN {missing} is invalid.",
    )
    code, _, _ = fails(lam.put_function_event_invoke_config, FunctionName=name)
    assert code == "InvalidParameterValueException"
