"""`squall logs`: a function's log events through the public CloudWatch Logs API, as any
client reads them (FilterLogEvents), optionally following new events as they arrive."""

from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
from botocore.exceptions import ClientError

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
LOOKBACK_MS = 5000
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ERROR_MARKERS = ("ERROR", "Traceback", '"errorType"', "Task timed out", "Runtime.", "Exception")


def client(service: str, endpoint_url: str | None, region: str | None) -> Any:
    """A botocore client for squall, with the environment's credentials (default test/test)."""
    session = botocore.session.get_session()
    return session.create_client(
        service,
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
    )


def parse_since(text: str, now: float | None = None) -> int:
    """`10m`, `2h`, `1d` (ago) or an ISO 8601 time, as epoch milliseconds."""
    now = time.time() if now is None else now
    match = _DURATION.match(text.strip())
    if match:
        return int((now - int(match.group(1)) * _UNIT_SECONDS[match.group(2)]) * 1000)
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since takes 10m, 2h, 1d or an ISO time, not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def log_group_of(function: str, lambda_client: Any) -> str:
    """A function's log group (its LoggingConfig's, else `/aws/lambda/<name>`); a name that
    starts with "/" is taken as a log group itself."""
    if function.startswith("/"):
        return function
    try:
        config = lambda_client.get_function_configuration(FunctionName=function)
    except ClientError:
        name = function.split(":function:", 1)[-1].split(":", 1)[0]
        return f"/aws/lambda/{name}"
    group = (config.get("LoggingConfig") or {}).get("LogGroup")
    return group or f"/aws/lambda/{config['FunctionName']}"


def events(
    logs: Any,
    group: str,
    start_ms: int,
    pattern: str | None,
    *,
    follow: bool,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Events of `group` from `start_ms` on, oldest first; with `follow`, forever."""
    seen: set[str] = set()
    since = start_ms
    while True:
        newest = since
        request: dict[str, Any] = {"logGroupName": group, "startTime": since}
        if pattern:
            request["filterPattern"] = pattern
        while True:
            try:
                page = logs.filter_log_events(**request)
            except ClientError as exc:
                if follow and exc.response["Error"]["Code"] == "ResourceNotFoundException":
                    break  # the group appears with the function's first invocation
                raise
            for event in page.get("events", []):
                if event["eventId"] in seen:
                    continue
                seen.add(event["eventId"])
                newest = max(newest, event["timestamp"])
                yield event
            token = page.get("nextToken")
            if not token:
                break
            request["nextToken"] = token
        if not follow:
            return
        # ask again a little before the newest timestamp seen: events may be stored out of
        # timestamp order (other writers, clock skew); the ids already printed are skipped
        since = max(start_ms, newest - LOOKBACK_MS)
        if len(seen) > 100_000:
            seen.clear()
        sleep(poll_s)


def is_error(message: str) -> bool:
    return any(marker in message for marker in _ERROR_MARKERS)


def format_event(event: dict[str, Any]) -> tuple[str, str | None]:
    """The printed line and its colour (None: default)."""
    moment = datetime.datetime.fromtimestamp(event["timestamp"] / 1000, datetime.UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    message = event["message"].rstrip("\n")
    line = f"{stamp} {event.get('logStreamName', '')} {message}"
    if is_error(message):
        return line, "red"
    if message.startswith(("START RequestId:", "END RequestId:", "REPORT RequestId:")):
        return line, "bright_black"
    return line, None
