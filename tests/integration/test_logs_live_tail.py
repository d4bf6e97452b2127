"""CloudWatch Logs Live Tail (StartLiveTail) through boto3 against `squall server`: the event
stream over awsJson 1.1, new events arriving in session updates (filtered by stream and
pattern), closing a session, and the errors answered before the stream starts."""

from __future__ import annotations

import queue
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from tests.support.aws import REGION, client
from tests.support.servers import RunningServer

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def logs(endpoint: str) -> Any:
    # StartLiveTail's model asks for the host prefix `stream-`: an endpoint at an IP address
    # (or `localhost`) has no such name, so clients of squall turn the prefix off
    return client(endpoint, "logs", inject_host_prefix=False)


def unique(prefix: str = "tail") -> str:
    return f"/test/{prefix}-{uuid.uuid4().hex[:10]}"


def arn_of(group: str) -> str:
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_group(logs: Any, *streams: str) -> str:
    group = unique()
    logs.create_log_group(logGroupName=group)
    for stream in streams:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    return group


def put(logs: Any, group: str, stream: str, *messages: str, timestamp: int | None = None) -> None:
    stamp = now_ms() if timestamp is None else timestamp
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": stamp, "message": message} for message in messages],
    )


class Tail:
    """A Live Tail session read on a thread, as an application reads it."""

    def __init__(self, logs: Any, **request: Any) -> None:
        self.response = logs.start_live_tail(**request)
        self.stream = self.response["responseStream"]
        self.events: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                self.events.put(event)
        except BaseException as exc:  # surfaced by `next`
            self.events.put(exc)
        self.events.put(None)

    def next(self, timeout: float = 5.0) -> dict[str, Any]:
        item = self.events.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        assert item is not None, "the session ended"
        return item

    def results_until(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 6.0
    ) -> list[dict[str, Any]]:
        """The log events of the session's updates, read until `done(events so far)`."""
        deadline = time.monotonic() + timeout
        results: list[dict[str, Any]] = []
        while not done(results):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; got {results}"
            event = self.next(timeout=remaining)
            assert set(event) == {"sessionUpdate"}, event
            update = event["sessionUpdate"]
            assert update["sessionMetadata"] == {"sampled": False}
            results.extend(update["sessionResults"])
        return results

    def close(self) -> None:
        self.stream.close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def messages(results: list[dict[str, Any]]) -> list[str]:
    return [event["message"] for event in results]


def healthy(endpoint: str) -> bool:
    with urllib.request.urlopen(f"{endpoint}/_squall/health", timeout=5) as response:
        return response.status == 200


def test_new_events_arrive_in_updates_filtered_by_the_pattern(logs: Any, endpoint: str) -> None:
    group = new_group(logs, "app")
    put(logs, group, "app", "ERROR before the session")
    tail = Tail(logs, logGroupIdentifiers=[arn_of(group)], logEventFilterPattern="ERROR")
    try:
        start = tail.next()["sessionStart"]
        assert start["logGroupIdentifiers"] == [arn_of(group)]
        assert start["logEventFilterPattern"] == "ERROR"
        assert start["requestId"] == tail.response["ResponseMetadata"]["RequestId"]
        assert start["sessionId"]
        assert "logStreamNames" not in start

        before = now_ms()
        put(logs, group, "app", "INFO all good", "ERROR boom", "DEBUG noise")
        results = tail.results_until(lambda found: "ERROR boom" in messages(found))
        assert messages(results) == ["ERROR boom"]  # not the event from before the session
        [event] = results
        assert event["logStreamName"] == "app"
        assert event["logGroupIdentifier"] == arn_of(group)
        assert before - 1000 <= event["timestamp"] <= event["ingestionTime"] <= now_ms() + 1000

        put(logs, group, "app", "ERROR again")
        assert messages(tail.results_until(bool)) == ["ERROR again"]
        # with nothing new, updates keep coming as heartbeats
        assert tail.next(timeout=5)["sessionUpdate"]["sessionResults"] == []
    finally:
        tail.close()
    # the client went away: the server goes on serving
    assert healthy(endpoint)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]


def test_the_session_ends_when_its_client_goes_away(logs: Any, squall: RunningServer) -> None:
    tail = Tail(logs, logGroupIdentifiers=[new_group(logs)])
    session_id = tail.next()["sessionStart"]["sessionId"]
    tail.close()
    deadline = time.monotonic() + 3
    while f"live tail session {session_id} closed" not in squall.log():
        assert time.monotonic() < deadline, "the session outlived its client"
        time.sleep(0.1)


def test_several_groups_by_name_and_arn_and_late_events(logs: Any) -> None:
    first, second = new_group(logs, "a"), new_group(logs, "b")
    put(logs, first, "a", "already there")
    tail = Tail(logs, logGroupIdentifiers=[arn_of(first), second])
    try:
        assert tail.next()["sessionStart"]["logGroupIdentifiers"] == [arn_of(first), second]
        put(logs, first, "a", "to the first")
        put(logs, second, "b", "to the second")
        logs.create_log_stream(logGroupName=second, logStreamName="new")
        put(logs, second, "new", "to a new stream")
        # dated two hours before the stream's newest event: still ingested now
        put(logs, first, "a", "dated earlier", timestamp=now_ms() - 2 * 3_600_000)
        wanted = {"to the first", "to the second", "to a new stream", "dated earlier"}
        results = tail.results_until(lambda found: wanted <= set(messages(found)))
        assert sorted(messages(results)) == sorted(wanted)
        where = {event["message"]: (event["logGroupIdentifier"], event["logStreamName"])
                 for event in results}  # fmt: skip
        assert where["to the first"] == (arn_of(first), "a")
        assert where["to the second"] == (second, "b")
        assert where["to a new stream"] == (second, "new")
    finally:
        tail.close()


def test_stream_name_filters(logs: Any) -> None:
    group = new_group(logs, "app-1", "app-2", "other")
    tail = Tail(logs, logGroupIdentifiers=[arn_of(group)], logStreamNamePrefixes=["app-"])
    named = Tail(logs, logGroupIdentifiers=[group], logStreamNames=["app-2"])
    try:
        assert tail.next()["sessionStart"]["logStreamNamePrefixes"] == ["app-"]
        assert named.next()["sessionStart"]["logStreamNames"] == ["app-2"]
        for stream in ("other", "app-1", "app-2"):
            put(logs, group, stream, f"from {stream}")
        results = tail.results_until(lambda found: len(found) >= 2)
        assert sorted(messages(results)) == ["from app-1", "from app-2"]
        assert messages(named.results_until(bool)) == ["from app-2"]
    finally:
        tail.close()
        named.close()


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_errors_come_before_the_stream(logs: Any) -> None:
    group = new_group(logs, "s")
    missing = unique("missing")
    code, message = error_of(lambda: logs.start_live_tail(logGroupIdentifiers=[arn_of(missing)]))
    assert (code, message) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    code, _ = error_of(lambda: logs.start_live_tail(logGroupIdentifiers=[group, missing]))
    assert code == "ResourceNotFoundException"
    code, message = error_of(
        lambda: logs.start_live_tail(
            logGroupIdentifiers=[group], logEventFilterPattern='{ $.a = "x" '
        )
    )
    assert code == "InvalidParameterException"
    assert message.startswith("Invalid filter pattern")
    code, _ = error_of(
        lambda: logs.start_live_tail(
            logGroupIdentifiers=[group], logStreamNames=["s"], logStreamNamePrefixes=["s"]
        )
    )
    assert code == "InvalidParameterException"
    code, _ = error_of(
        lambda: logs.start_live_tail(
            logGroupIdentifiers=[group, group + "-2"], logStreamNamePrefixes=["s"]
        )
    )
    assert code == "InvalidParameterException"
    code, _ = error_of(lambda: logs.start_live_tail(logGroupIdentifiers=[arn_of(group) + ":*"]))
    assert code == "InvalidParameterException"
