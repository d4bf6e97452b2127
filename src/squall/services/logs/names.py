"""Names, ARNs and limits of CloudWatch Logs, as the API documents them."""

from __future__ import annotations

import re
import time
from typing import Any

from squall.core.errors import ServiceError

from .errors import group_not_found, invalid

# PutRetentionPolicy's accepted values (days)
RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
DAY_MS = 86_400_000
HOUR_MS = 3_600_000

MAX_BATCH_BYTES = 1_048_576  # PutLogEvents: messages in UTF-8 plus EVENT_OVERHEAD each
EVENT_OVERHEAD = 26
MAX_PAGE_BYTES = 1_048_576  # GetLogEvents / FilterLogEvents: one page of events
MAX_PAGE_EVENTS = 10_000
MAX_PAST_MS = 14 * DAY_MS  # older events are rejected (tooOldLogEventEndIndex)
MAX_FUTURE_MS = 2 * HOUR_MS  # newer events are rejected (tooNewLogEventStartIndex)
MAX_SPAN_MS = DAY_MS  # the accepted events of one batch
MAX_TAGS = 50
# FilterLogEvents(startFromHead=false) needs a startTime on or after 2024-01-01T00:00:00Z
DESCENDING_FLOOR_MS = 1_704_067_200_000

_GROUP_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:logs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):log-group:"
    r"(?P<name>[\.\-_/#A-Za-z0-9]+?)(?::\*)?$"
)


def now_ms() -> int:
    return int(time.time() * 1000)


def group_arn(region: str, account: str, name: str) -> str:
    """The log group's ARN without the trailing `:*` (DescribeLogGroups' `logGroupArn`)."""
    return f"arn:aws:logs:{region}:{account}:log-group:{name}"


def stream_arn(region: str, account: str, group: str, stream: str) -> str:
    return f"{group_arn(region, account, group)}:log-stream:{stream}"


def group_from_arn(arn: str, account: str, region: str) -> str:
    """The name of the caller's log group an ARN names (with or without `:*`)."""
    match = _GROUP_ARN.match(arn)
    if match is None:
        raise invalid(f"Invalid ARN: {arn}")
    if match["account"] != account or match["region"] != region:
        raise group_not_found()
    return match["name"]


def group_name(request: dict[str, Any], account: str, region: str) -> str:
    """The group a request names by `logGroupName` or `logGroupIdentifier` (name or ARN)."""
    name, identifier = request.get("logGroupName"), request.get("logGroupIdentifier")
    if name and identifier:
        raise invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if identifier and identifier.startswith("arn:"):
        return group_from_arn(identifier, account, region)
    if identifier:
        return identifier
    if not name:
        raise invalid("Should provide either name or ARN of the log group.")
    return name


def check_retention(days: int) -> None:
    if days not in RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in RETENTION_DAYS)
        raise invalid(
            f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy"
            f" constraint: Member must satisfy enum value set: [{allowed}]"
        )


def check_tag_count(count: int, resource: str) -> None:
    if count > MAX_TAGS:
        raise ServiceError(
            "TooManyTagsException",
            f"A resource can have no more than {MAX_TAGS} tags.",
            fields={"resourceName": resource},
        )
