"""The invocation engine through the Lambda API of real `squall server` processes: scale-out and
warm reuse, reserved / account / provisioned concurrency, scale to zero, asynchronous delivery
with retries and destinations, and the durability of the async queue across a `kill -9`.

Asynchronous work is observed with a *recorder*: a function that stores every event it runs as
tags on itself through squall's API (base64 JSON in chunks, one tag key per run), so the test
can count attempts and read destination records whole.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from tests.support.aws import ACCESS_KEY, REGION, SECRET_KEY, client, signed_request
from tests.support.lambdas import create, eventually, invoke_json, unique
from tests.support.servers import RunningServer, squall_process

SLEEPER = """
import os, time, uuid

SANDBOX = uuid.uuid4().hex  # one per sandbox: generated when the module is imported

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"sandbox": SANDBOX, "pid": os.getpid(), "marker": event.get("marker")}
"""

# Records each run as tags on the function itself: `r-<run>-<i>-<n>` holds chunk i of n of the
# base64 of {"requestId", "event"}; fails after recording when the event says {"fail": true}.
RECORDER = """
import base64, json, uuid
import boto3

def handler(event, context):
    arn = ":".join(context.invoked_function_arn.split(":")[:7])
    record = {"requestId": context.aws_request_id, "event": event}
    blob = base64.urlsafe_b64encode(json.dumps(record).encode()).decode()
    chunks = [blob[i : i + 250] for i in range(0, len(blob), 250)]
    run = uuid.uuid4().hex[:12]
    tags = {f"r-{run}-{i}-{len(chunks)}": chunk for i, chunk in enumerate(chunks)}
    boto3.client("lambda").tag_resource(Resource=arn, Tags=tags)
    if isinstance(event, dict) and event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"recorded": run}
"""


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Quick async retries (0.2 s, doubling) and a short keep-alive."""
    data_dir = tmp_path_factory.mktemp("engine") / "data"
    with squall_process(data_dir, "--async-retry-delay", "0.2", "--keep-alive", "5") as server:
        yield server


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """An account of two concurrent executions whose idle sandboxes go after a second."""
    data_dir = tmp_path_factory.mktemp("small") / "data"
    with squall_process(data_dir, "--keep-alive", "1", "--concurrency-limit", "2") as server:
        yield server


def _descendants(pid: int) -> list[int]:
    """The pids below `pid` (from /proc), so a test can end what its killed server left."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found.extend(children)
                pending.extend(children)
    return found


def _end_leftovers(pids: list[int], timeout: float = 5.0) -> list[int]:
    """Wait for a killed server's processes to go by themselves; SIGKILL those (still squall's)
    that do not. Returns the pids that had to be killed."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _is_squall(pid)]
        time.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _is_squall(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z" and b"squall" in cmdline


# --------------------------------------------------------------------------- helpers


def lambda_client(server: RunningServer) -> Any:
    return client(server.endpoint, "lambda")


def in_parallel(server: RunningServer, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Invoke every (function, event) at once, each from its own thread and boto3 client;
    each answer is (response, payload) or the ClientError it raised, in the order given."""
    clients = [lambda_client(server) for _ in calls]
    barrier = threading.Barrier(len(calls))

    def call(index: int) -> Any:
        name, event = calls[index]
        barrier.wait(timeout=30)
        try:
            return invoke_json(clients[index], name, event)
        except ClientError as err:
            return err

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(call, range(len(calls))))


def report_line(response: dict[str, Any]) -> str:
    """The REPORT line of an invoke made with LogType=Tail."""
    tail = base64.b64decode(response["LogResult"]).decode()
    reports = [line for line in tail.splitlines() if line.startswith("REPORT ")]
    assert len(reports) == 1, tail
    return reports[0]


def records(lam: Any, arn: str) -> list[dict[str, Any]]:
    """What the recorder `arn` has recorded so far (complete runs only)."""
    tags = lam.list_tags(Resource=arn)["Tags"]
    runs: dict[str, dict[int, str]] = {}
    sizes: dict[str, int] = {}
    for key, value in tags.items():
        if not key.startswith("r-"):
            continue
        _, run, index, size = key.split("-")
        runs.setdefault(run, {})[int(index)] = value
        sizes[run] = int(size)
    found = []
    for run, chunks in runs.items():
        if len(chunks) == sizes[run]:
            blob = "".join(chunks[i] for i in range(sizes[run]))
            found.append(json.loads(base64.urlsafe_b64decode(blob)))
    return found


def recorder(lam: Any, name: str | None = None) -> str:
    """A new recorder function; its ARN."""
    return create(lam, RECORDER, name=name or unique("rec"), Timeout=30)["FunctionArn"]


def send_event(lam: Any, arn: str, event: dict[str, Any], **extra: Any) -> str:
    """An asynchronous invoke (202); its request id (the id the function runs with)."""
    response = lam.invoke(
        FunctionName=arn, InvocationType="Event", Payload=json.dumps(event).encode(), **extra
    )
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    return response["ResponseMetadata"]["RequestId"]


def error_of(err: ClientError) -> tuple[str, int]:
    return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]


def throttled(outcomes: list[Any]) -> list[ClientError]:
    return [o for o in outcomes if isinstance(o, ClientError)]


def check_throttle(err: ClientError, reason: str) -> None:
    assert error_of(err) == ("TooManyRequestsException", 429), err.response
    assert err.response.get("Reason") == reason, err.response  # modelled member, from the body
    headers = err.response["ResponseMetadata"]["HTTPHeaders"]
    assert "retry-after" in headers, headers
    assert int(headers["retry-after"]) >= 1


# --------------------------------------------------------------------------- scale-out


def test_parallel_invokes_scale_out_and_a_warm_sandbox_is_reused(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    name = create(lam, SLEEPER, name=unique("scale"))["FunctionName"]

    outcomes = in_parallel(engine, [(name, {"sleep": 1.0})] * 4)

    assert not throttled(outcomes), outcomes
    sandboxes = {payload["sandbox"] for _, payload in outcomes}
    assert len(sandboxes) == 4, outcomes  # one sandbox per concurrent invocation
    response, payload = invoke_json(lam, name, {}, LogType="Tail")
    assert payload["sandbox"] in sandboxes  # warm: one of the four served it
    assert "Init Duration" not in report_line(response)


# --------------------------------------------------------------------------- reserved concurrency


def test_reserved_concurrency_throttles_the_function_beyond_it(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    name = create(lam, SLEEPER, name=unique("reserved"))["FunctionName"]
    other = create(lam, SLEEPER, name=unique("unreserved"))["FunctionName"]

    assert (
        lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    )
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    assert put["ReservedConcurrentExecutions"] == 1
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 1}

    outcomes = in_parallel(
        engine, [(name, {"sleep": 1.0}), (name, {"sleep": 1.0}), (other, {"sleep": 1.0})]
    )

    errors = throttled(outcomes[:2])
    assert len(errors) == 1, outcomes  # exactly one of the two fits the reservation
    check_throttle(errors[0], "ReservedFunctionConcurrentInvocationLimitExceeded")
    # the other function draws from the unreserved pool, untouched by the reservation
    assert not isinstance(outcomes[2], ClientError), outcomes[2]
    assert outcomes[2][0]["StatusCode"] == 200

    # once the running invocation is done, the unit is free again
    response, _ = invoke_json(lam, name, {})
    assert response["StatusCode"] == 200


def test_zero_reserved_concurrency_always_throttles_until_deleted(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    name = create(lam, SLEEPER, name=unique("zero"))["FunctionName"]
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)

    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            invoke_json(lam, name, {})
        check_throttle(caught.value, "ReservedFunctionConcurrentInvocationLimitExceeded")

    # on the wire: status, error type, Retry-After, and Reason in the JSON body
    raw = signed_request(
        engine.endpoint, "lambda", "POST", f"/2015-03-31/functions/{name}/invocations", body=b"{}"
    )
    assert raw.status_code == 429, raw.text
    assert raw.headers.get("Retry-After") is not None, raw.headers
    assert "TooManyRequestsException" in (
        raw.headers.get("x-amzn-ErrorType", "") + raw.json().get("__type", "")
    ), (raw.headers, raw.text)
    assert raw.json()["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    assert lam.delete_function_concurrency(FunctionName=name)["ResponseMetadata"][
        "HTTPStatusCode"
    ] in (200, 204)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    response, payload = invoke_json(lam, name, {})
    assert response["StatusCode"] == 200
    assert "sandbox" in payload


def test_an_invocation_whose_caller_hung_up_keeps_its_unit(engine: RunningServer) -> None:
    """Lambda runs an invocation to its end when the caller stops waiting: the unit stays
    taken until then, and the sandbox serves the next caller cleanly afterwards."""
    lam = lambda_client(engine)
    name = create(lam, SLEEPER, name=unique("hangup"), Timeout=10)["FunctionName"]
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    impatient = boto3.session.Session().client(
        "lambda",
        endpoint_url=engine.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=0.5),
    )

    with pytest.raises(ReadTimeoutError):
        invoke_json(impatient, name, {"sleep": 2.0, "marker": "first"})
    with pytest.raises(ClientError) as caught:
        invoke_json(lam, name, {"marker": "second"})
    check_throttle(caught.value, "ReservedFunctionConcurrentInvocationLimitExceeded")

    def answered() -> Any:
        try:
            return invoke_json(lam, name, {"marker": "third"})[1]
        except ClientError as err:
            assert error_of(err)[0] == "TooManyRequestsException", err.response
            return None

    payload = eventually(answered, timeout=10, interval=0.2)
    assert payload["marker"] == "third"  # its own answer, not the abandoned one's
    assert invoke_json(lam, name, {"marker": "fourth"})[1]["marker"] == "fourth"


def test_reservations_leave_at_least_100_unreserved(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    name = create(lam, SLEEPER, name=unique("big"))["FunctionName"]
    limits = lam.get_account_settings()["AccountLimit"]
    assert limits["ConcurrentExecutions"] == 1000
    unreserved = limits["UnreservedConcurrentExecutions"]
    assert unreserved > 100

    with pytest.raises(ClientError) as caught:
        lam.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=unreserved - 99
        )
    assert error_of(caught.value) == ("InvalidParameterValueException", 400)
    assert "100" in caught.value.response["Error"]["Message"]
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)

    try:
        lam.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=unreserved - 100
        )
        after = lam.get_account_settings()["AccountLimit"]
        assert after["UnreservedConcurrentExecutions"] == 100
        assert after["ConcurrentExecutions"] == 1000
        # re-putting the same function replaces its own reservation rather than adding to it
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
        assert (
            lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
            == unreserved - 5
        )
    finally:
        lam.delete_function_concurrency(FunctionName=name)
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == (
        unreserved
    )

    with pytest.raises(ClientError) as caught:
        lam.put_function_concurrency(FunctionName=unique("nope"), ReservedConcurrentExecutions=1)
    assert error_of(caught.value) == ("ResourceNotFoundException", 404)


def test_account_limit_throttles_the_unreserved_pool(small: RunningServer) -> None:
    lam = lambda_client(small)
    limits = lam.get_account_settings()["AccountLimit"]
    assert limits["ConcurrentExecutions"] == 2
    assert limits["UnreservedConcurrentExecutions"] == 2
    first = create(lam, SLEEPER, name=unique("acct"))["FunctionName"]
    second = create(lam, SLEEPER, name=unique("acct"))["FunctionName"]

    outcomes = in_parallel(
        small, [(first, {"sleep": 1.0}), (first, {"sleep": 1.0}), (second, {"sleep": 1.0})]
    )

    errors = throttled(outcomes)
    assert len(errors) == 1, outcomes  # two units in the account, three callers
    check_throttle(errors[0], "ConcurrentInvocationLimitExceeded")
    response, _ = invoke_json(lam, second, {})
    assert response["StatusCode"] == 200


# --------------------------------------------------------------------------- provisioned


def test_provisioned_concurrency_keeps_a_version_warm(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    created = create(lam, SLEEPER, name=unique("prov"))
    name = created["FunctionName"]
    version = lam.publish_version(FunctionName=name)["Version"]
    assert version == "1"

    put = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=2
    )
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] == "IN_PROGRESS"

    def ready() -> dict[str, Any] | None:
        got = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
        return got if got["Status"] == "READY" else None

    got = eventually(ready, timeout=30)
    assert got["RequestedProvisionedConcurrentExecutions"] == 2
    assert got["AllocatedProvisionedConcurrentExecutions"] == 2
    assert got["AvailableProvisionedConcurrentExecutions"] == 2
    assert "LastModified" in got

    # both provisioned sandboxes serve without a cold start, at once
    calls = [(f"{name}:{version}", {"sleep": 1.0})] * 2
    clients = [lambda_client(engine) for _ in calls]
    barrier = threading.Barrier(2)

    def call(index: int) -> tuple[dict, Any]:
        barrier.wait(timeout=30)
        return invoke_json(clients[index], calls[index][0], calls[index][1], LogType="Tail")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(call, range(2)))
    for response, _ in answers:
        assert response["ExecutedVersion"] == version
        assert "Init Duration" not in report_line(response), report_line(response)
    assert len({payload["sandbox"] for _, payload in answers}) == 2

    # $LATEST is not provisioned: its first invoke is a cold start
    response, _ = invoke_json(lam, name, {}, LogType="Tail")
    assert "Init Duration" in report_line(response)

    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)[
        "ProvisionedConcurrencyConfigs"
    ]
    assert len(listed) == 1
    assert listed[0]["FunctionArn"] == f"{created['FunctionArn']}:{version}"
    assert listed[0]["RequestedProvisionedConcurrentExecutions"] == 2
    assert listed[0]["Status"] == "READY"

    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    with pytest.raises(ClientError) as caught:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    assert error_of(caught.value) == ("ProvisionedConcurrencyConfigNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    assert error_of(caught.value) == ("ProvisionedConcurrencyConfigNotFoundException", 404)
    assert (
        lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
        == []
    )


def test_provisioned_concurrency_errors(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    name = create(lam, SLEEPER, name=unique("provbad"))["FunctionName"]
    version = lam.publish_version(FunctionName=name)["Version"]

    with pytest.raises(ClientError) as caught:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert error_of(caught.value) == ("InvalidParameterValueException", 400)

    with pytest.raises(ClientError) as caught:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    assert error_of(caught.value) == ("ProvisionedConcurrencyConfigNotFoundException", 404)

    with pytest.raises(ClientError) as caught:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="42", ProvisionedConcurrentExecutions=1
        )
    assert error_of(caught.value) == ("ResourceNotFoundException", 404)

    # more than the function's reserved concurrency
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    try:
        with pytest.raises(ClientError) as caught:
            lam.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=2
            )
        assert error_of(caught.value) == ("InvalidParameterValueException", 400)
    finally:
        lam.delete_function_concurrency(FunctionName=name)


# --------------------------------------------------------------------------- scale to zero


def test_idle_sandboxes_scale_to_zero_after_keep_alive(small: RunningServer) -> None:
    lam = lambda_client(small)
    name = create(lam, SLEEPER, name=unique("idle"))["FunctionName"]
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=1
    )
    eventually(
        lambda: (
            lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)["Status"]
            == "READY"
        ),
        timeout=30,
    )

    response, first = invoke_json(lam, name, {}, LogType="Tail")
    assert "Init Duration" in report_line(response)  # the very first invoke is cold
    response, again = invoke_json(lam, name, {}, LogType="Tail")
    assert "Init Duration" not in report_line(response)  # within keep-alive: warm
    assert again["sandbox"] == first["sandbox"]
    response, provisioned = invoke_json(lam, f"{name}:{version}", {}, LogType="Tail")
    assert "Init Duration" not in report_line(response)

    time.sleep(3)  # keep-alive is 1 s and the reaper looks every second

    response, later = invoke_json(lam, name, {}, LogType="Tail")
    assert "Init Duration" in report_line(response)  # a new cold start
    assert later["sandbox"] != first["sandbox"]
    # the provisioned sandbox is kept through keep-alive expiry
    response, still = invoke_json(lam, f"{name}:{version}", {}, LogType="Tail")
    assert "Init Duration" not in report_line(response)
    assert still["sandbox"] == provisioned["sandbox"]

    # without its config the version's sandbox is an ordinary idle one: reclaimed in time
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    time.sleep(3)
    response, after = invoke_json(lam, f"{name}:{version}", {}, LogType="Tail")
    assert "Init Duration" in report_line(response)
    assert after["sandbox"] != provisioned["sandbox"]


# --------------------------------------------------------------------------- async delivery


def test_event_invoke_is_delivered_once_with_its_request_id(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    arn = recorder(lam)
    marker = uuid.uuid4().hex

    request_id = send_event(lam, arn, {"marker": marker})

    got = eventually(lambda: records(lam, arn))
    assert got == [{"requestId": request_id, "event": {"marker": marker}}]
    time.sleep(0.5)
    assert len(records(lam, arn)) == 1  # succeeded: never delivered again


def test_failed_event_is_retried_then_sent_to_on_failure(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    arn = recorder(lam)
    failures = recorder(lam, unique("onfail"))
    config = lam.put_function_event_invoke_config(
        FunctionName=arn,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": failures}},
    )
    assert config["MaximumRetryAttempts"] == 2
    event = {"fail": True, "marker": uuid.uuid4().hex}

    request_id = send_event(lam, arn, event)

    destination = eventually(lambda: records(lam, failures), timeout=30)
    attempts = records(lam, arn)
    assert len(attempts) == 3, attempts  # the first try and two retries
    assert all(a == {"requestId": request_id, "event": event} for a in attempts), attempts
    assert len(destination) == 1, destination
    record = destination[0]["event"]
    assert record["version"] == "1.0"
    assert record["timestamp"].endswith("Z")
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{arn}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == event
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorMessage"] == "asked to fail"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    time.sleep(1.0)  # longer than the next backoff (0.8 s): no fourth attempt comes
    assert len(records(lam, arn)) == 3
    assert len(records(lam, failures)) == 1


def test_no_retries_means_one_attempt(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    arn = recorder(lam)
    failures = recorder(lam, unique("onfail"))
    lam.put_function_event_invoke_config(
        FunctionName=arn,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": failures}},
    )
    event = {"fail": True, "marker": uuid.uuid4().hex}

    request_id = send_event(lam, arn, event)

    destination = eventually(lambda: records(lam, failures), timeout=30)
    context = destination[0]["event"]["requestContext"]
    assert context["requestId"] == request_id
    assert context["condition"] == "RetriesExhausted"
    assert context["approximateInvokeCount"] == 1
    time.sleep(0.6)  # past the first retry's delay (0.2 s)
    assert len(records(lam, arn)) == 1


def test_successful_event_is_sent_to_on_success(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    arn = recorder(lam)
    successes = recorder(lam, unique("onok"))
    lam.put_function_event_invoke_config(
        FunctionName=arn, DestinationConfig={"OnSuccess": {"Destination": successes}}
    )
    event = {"marker": uuid.uuid4().hex}

    request_id = send_event(lam, arn, event)

    destination = eventually(lambda: records(lam, successes), timeout=30)
    (ran,) = records(lam, arn)
    assert len(destination) == 1
    record = destination[0]["event"]
    assert record["version"] == "1.0"
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{arn}:$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == event
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert ran["requestId"] == request_id
    assert record["responsePayload"]["recorded"]  # what the function returned


def test_throttled_event_stays_queued_until_concurrency_returns(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    arn = recorder(lam)
    failures = recorder(lam, unique("onfail"))
    lam.put_function_event_invoke_config(
        FunctionName=arn,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": failures}},
    )
    lam.put_function_concurrency(FunctionName=arn, ReservedConcurrentExecutions=0)
    event = {"fail": True, "marker": uuid.uuid4().hex}

    request_id = send_event(lam, arn, event)  # accepted although nothing can run it

    time.sleep(1.5)
    assert records(lam, arn) == []
    assert records(lam, failures) == []  # being throttled is no failed attempt
    lam.delete_function_concurrency(FunctionName=arn)
    destination = eventually(lambda: records(lam, failures), timeout=15)
    assert records(lam, arn) == [{"requestId": request_id, "event": event}]
    context = destination[0]["event"]["requestContext"]
    assert context["condition"] == "RetriesExhausted"
    assert context["approximateInvokeCount"] == 1  # the throttled tries are not invocations


def test_qualified_event_uses_its_versions_settings(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    arn = recorder(lam)
    version = lam.publish_version(FunctionName=arn)["Version"]
    for_latest = recorder(lam, unique("latest"))
    for_version = recorder(lam, unique("version"))
    lam.put_function_event_invoke_config(
        FunctionName=arn, DestinationConfig={"OnSuccess": {"Destination": for_latest}}
    )
    lam.put_function_event_invoke_config(
        FunctionName=arn,
        Qualifier=version,
        DestinationConfig={"OnSuccess": {"Destination": for_version}},
    )
    event = {"marker": uuid.uuid4().hex}

    request_id = send_event(lam, arn, event, Qualifier=version)

    (delivered,) = eventually(lambda: records(lam, for_version), timeout=15)
    record = delivered["event"]
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["functionArn"] == f"{arn}:{version}"
    assert record["responseContext"]["executedVersion"] == version
    assert record["requestPayload"] == event
    assert records(lam, for_latest) == []


def test_event_invoke_refusals(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    arn = recorder(lam)
    with pytest.raises(ClientError) as caught:
        send_event(lam, unique("missing"), {})
    assert error_of(caught.value) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        send_event(lam, arn, {}, Qualifier="7")
    assert error_of(caught.value) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName=arn, InvocationType="Event", Payload=b"{not json")
    assert error_of(caught.value) == ("InvalidRequestContentException", 400)
    time.sleep(0.5)
    assert records(lam, arn) == []  # nothing refused was queued


# --------------------------------------------------------------------------- event invoke configs


def test_function_event_invoke_config_api(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    created = create(lam, SLEEPER, name=unique("eic"))
    name, arn = created["FunctionName"], created["FunctionArn"]
    target = recorder(lam, unique("dest"))

    with pytest.raises(ClientError) as caught:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error_of(caught.value) == ("ResourceNotFoundException", 404)
    assert (
        lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
        == []
    )

    put = lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=1,
        MaximumEventAgeInSeconds=300,
        DestinationConfig={"OnFailure": {"Destination": target}},
    )
    assert put["FunctionArn"] == f"{arn}:$LATEST"
    assert put["MaximumRetryAttempts"] == 1
    assert put["MaximumEventAgeInSeconds"] == 300
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": target}}
    assert put["LastModified"] is not None
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {
        k: v for k, v in put.items() if k != "ResponseMetadata"
    }

    # Update merges into what is there
    updated = lam.update_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": target}},
    )
    assert updated["MaximumRetryAttempts"] == 0
    assert updated["MaximumEventAgeInSeconds"] == 300
    assert updated["DestinationConfig"] == {
        "OnSuccess": {"Destination": target},
        "OnFailure": {"Destination": target},
    }

    # Put replaces it whole: what it leaves out is unset again (AWS omits unset members)
    replaced = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert replaced["MaximumRetryAttempts"] == 1
    assert "MaximumEventAgeInSeconds" not in replaced
    assert replaced["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    # one config per qualifier
    version = lam.publish_version(FunctionName=name)["Version"]
    on_version = lam.put_function_event_invoke_config(
        FunctionName=name, Qualifier=version, MaximumEventAgeInSeconds=60
    )
    assert on_version["FunctionArn"] == f"{arn}:{version}"
    assert "MaximumRetryAttempts" not in on_version  # unset: delivery uses the default (2)
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"] for c in listed) == sorted(
        [f"{arn}:$LATEST", f"{arn}:{version}"]
    )

    lam.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(ClientError) as caught:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error_of(caught.value) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        lam.delete_function_event_invoke_config(FunctionName=name)
    assert error_of(caught.value) == ("ResourceNotFoundException", 404)
    assert (
        lam.get_function_event_invoke_config(FunctionName=name, Qualifier=version)[
            "MaximumEventAgeInSeconds"
        ]
        == 60
    )
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [f"{arn}:{version}"]


INVALID = {"ValidationException", "InvalidParameterValueException"}


@pytest.mark.parametrize(
    ("settings", "codes"),
    [
        ({"MaximumRetryAttempts": 3}, INVALID),
        ({"MaximumEventAgeInSeconds": 21601}, INVALID),
        # not an ARN at all: the API model's pattern already refuses it
        ({"DestinationConfig": {"OnFailure": {"Destination": "not-an-arn"}}}, INVALID),
        (
            {"DestinationConfig": {"OnSuccess": {"Destination": "arn:aws:lambda:us-east-1"}}},
            INVALID,
        ),
        # an ARN, but of nothing that can be a destination
        (
            {
                "DestinationConfig": {
                    "OnFailure": {"Destination": "arn:aws:dynamodb:us-east-1:000000000000:table/t"}
                }
            },
            {"InvalidParameterValueException"},
        ),
    ],
    ids=[
        "retries-3",
        "age-21601",
        "destination-not-an-arn",
        "destination-truncated-arn",
        "destination-dynamodb",
    ],
)
def test_function_event_invoke_config_rejects_bad_settings(
    engine: RunningServer, settings: dict[str, Any], codes: set[str]
) -> None:
    lam = lambda_client(engine)
    name = create(lam, SLEEPER, name=unique("eicbad"))["FunctionName"]
    for put in (lam.put_function_event_invoke_config, lam.update_function_event_invoke_config):
        with pytest.raises(ClientError) as caught:
            put(FunctionName=name, **settings)
        code, status = error_of(caught.value)
        assert code in codes, caught.value.response
        assert status == 400
    with pytest.raises(ClientError) as caught:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error_of(caught.value) == ("ResourceNotFoundException", 404)  # nothing was stored


def test_function_event_invoke_config_of_unknown_function(engine: RunningServer) -> None:
    lam = lambda_client(engine)
    missing = unique("missing")
    for call in (
        lambda: lam.put_function_event_invoke_config(FunctionName=missing, MaximumRetryAttempts=1),
        lambda: lam.get_function_event_invoke_config(FunctionName=missing),
        lambda: lam.list_function_event_invoke_configs(FunctionName=missing),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert error_of(caught.value) == ("ResourceNotFoundException", 404)


# --------------------------------------------------------------------------- durability


def test_queued_events_survive_kill_9(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("durable") / "data"
    events = [{"marker": uuid.uuid4().hex, "n": n} for n in range(3)]
    with squall_process(data_dir) as server:
        process = server.process
        assert process is not None
        lam = lambda_client(server)
        arn = recorder(lam)
        lam.put_function_concurrency(FunctionName=arn, ReservedConcurrentExecutions=0)
        request_ids = [send_event(lam, arn, event) for event in events]
        leftovers = _descendants(process.pid)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
        _end_leftovers(leftovers)

    with squall_process(data_dir) as server:
        lam = lambda_client(server)
        # the reservation survived the crash: nothing is delivered yet
        assert lam.get_function_concurrency(FunctionName=arn)["ReservedConcurrentExecutions"] == 0
        time.sleep(1.5)
        assert records(lam, arn) == []
        lam.delete_function_concurrency(FunctionName=arn)

        got = eventually(lambda: len(records(lam, arn)) >= 3 and records(lam, arn), timeout=30)

    delivered = {(r["requestId"], json.dumps(r["event"], sort_keys=True)) for r in got}
    expected = {
        (rid, json.dumps(event, sort_keys=True))
        for rid, event in zip(request_ids, events, strict=True)
    }
    assert delivered == expected  # each event at least once, with its own request id
