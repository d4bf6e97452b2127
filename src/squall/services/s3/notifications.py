"""Bucket notifications: validating a `NotificationConfiguration`, matching events against it,
and the event records S3 delivers.

A configuration is validated and normalised once, when PutBucketNotificationConfiguration
stores it (:func:`validate_configuration`); the stored form is what
GetBucketNotificationConfiguration returns. When an object changes, :func:`matches` names the
configurations that fire and :func:`event_record` builds the record each destination receives;
:func:`publish` does both and hands the payloads to the functions' asynchronous queue.

Functions live in another service, reached through the :class:`FunctionTargets` protocol (the
Lambda side implements it). ``enqueue`` is synchronous and joins the caller's open SQLite
transaction, so an event is durable exactly when the object change that caused it commits.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import quote_plus, unquote_plus

import orjson

from squall.core.context import Principal

from .errors import invalid_argument, malformed_xml, s3_error

__all__ = [
    "EVENTS",
    "S3_PRINCIPAL",
    "FunctionTargets",
    "bucket_arn",
    "event_payload",
    "event_principal",
    "event_record",
    "matches",
    "publish",
    "sequencer",
    "validate_configuration",
]

S3_PRINCIPAL = "s3.amazonaws.com"

# Every event type S3 accepts in a notification configuration (botocore's `Event` enum).
# squall fires the ObjectCreated and ObjectRemoved ones; the others are accepted and stored.
EVENTS = frozenset(
    {
        "s3:ReducedRedundancyLostObject",
        "s3:ObjectCreated:*",
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectRemoved:*",
        "s3:ObjectRemoved:Delete",
        "s3:ObjectRemoved:DeleteMarkerCreated",
        "s3:ObjectRestore:*",
        "s3:ObjectRestore:Post",
        "s3:ObjectRestore:Completed",
        "s3:ObjectRestore:Delete",
        "s3:Replication:*",
        "s3:Replication:OperationFailedReplication",
        "s3:Replication:OperationNotTracked",
        "s3:Replication:OperationMissedThreshold",
        "s3:Replication:OperationReplicatedAfterThreshold",
        "s3:LifecycleTransition",
        "s3:IntelligentTiering",
        "s3:ObjectAcl:Put",
        "s3:LifecycleExpiration:*",
        "s3:LifecycleExpiration:Delete",
        "s3:LifecycleExpiration:DeleteMarkerCreated",
        "s3:ObjectTagging:*",
        "s3:ObjectTagging:Put",
        "s3:ObjectTagging:Delete",
        "s3:ObjectAnnotation:*",
        "s3:ObjectAnnotation:Put",
        "s3:ObjectAnnotation:Delete",
        "s3:ObjectRetention:Put",
    }
)

MAX_ID_LENGTH = 255
MAX_FILTER_VALUE_BYTES = 1024

_LAMBDA_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):\d{12}:function:[a-zA-Z0-9_-]+"
    r"(?::[a-zA-Z0-9$_-]+)?$"
)
_OVERLAP = (
    "Configurations overlap. Configurations on the same bucket cannot share a common event type."
)
_AMBIGUOUS = (
    "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the "
    "prefixes are overlapping for the same event type."
)
_UNVALIDATED = "Unable to validate the following destination configurations"

# (configuration list member, destination ARN member, what S3 calls the destination)
_KINDS = (
    ("TopicConfigurations", "TopicArn", "topic"),
    ("QueueConfigurations", "QueueArn", "queue"),
    ("LambdaFunctionConfigurations", "LambdaFunctionArn", "function"),
)


class FunctionTargets(Protocol):
    """The functions bucket notifications invoke (implemented by the Lambda service)."""

    def function_exists(self, arn: str) -> bool:
        """Whether `arn` (a function ARN, maybe qualified with a version or alias) exists."""
        ...

    def allows(self, arn: str, *, principal: str, source_arn: str, source_account: str) -> bool:
        """Whether the function's resource policy lets `principal` (a service principal such
        as "s3.amazonaws.com") invoke it for `source_arn` / `source_account`."""
        ...

    def enqueue(self, arn: str, payload: bytes) -> None:
        """Queue an asynchronous invocation of `arn` with `payload`, inside the caller's open
        SQLite transaction (if any): it is durable exactly when that transaction commits."""
        ...


# --------------------------------------------------------------------------- validation


def validate_configuration(
    config: dict[str, Any],
    *,
    bucket: str,
    account: str,
    region: str,
    targets: FunctionTargets | None,
) -> dict[str, Any]:
    """Validate a PutBucketNotificationConfiguration `NotificationConfiguration` as S3 does and
    return the configuration to store (and to answer GetBucketNotificationConfiguration with).

    `account` is the bucket owner's account, `region` the bucket's region. With `targets` None
    (no function service, or `SkipDestinationValidation`) destinations are not checked.
    Raises S3's `InvalidArgument` (or `MalformedXML`) errors.
    """
    entries: list[tuple[str, str, dict[str, Any]]] = []  # (kind, destination, normalised)
    for member, arn_member, kind in _KINDS:
        for raw in config.get(member) or []:
            entries.append((kind, *_configuration(raw, arn_member, region)))
    _check_ids(entry for _, _, entry in entries)
    _check_overlaps([entry for _, _, entry in entries])
    if targets is not None:
        _check_destinations(entries, bucket=bucket, account=account, targets=targets)
    stored: dict[str, Any] = {}
    functions = [entry for kind, _, entry in entries if kind == "function"]
    if functions:
        stored["LambdaFunctionConfigurations"] = functions
    if config.get("EventBridgeConfiguration") is not None:
        stored["EventBridgeConfiguration"] = {}
    return stored


def _configuration(raw: dict[str, Any], arn_member: str, region: str) -> tuple[str, dict[str, Any]]:
    """(destination ARN, normalised configuration) of one Topic/Queue/Lambda configuration."""
    destination = raw.get(arn_member)
    events = raw.get("Events")
    if not destination or not events:
        raise malformed_xml()
    for event in events:
        if event not in EVENTS:
            raise invalid_argument("The event is not supported for notifications")
    _check_own_events(events)
    if arn_member == "LambdaFunctionArn":
        match = _LAMBDA_ARN.match(destination)
        if match is None:
            raise invalid_argument("The ARN is not well formed", "CloudFunction", destination)
        if match.group("region") != region:
            raise invalid_argument(
                "The notification destination service region is not valid for the bucket "
                "location constraint",
                "CloudFunction",
                destination,
            )
    config_id = raw.get("Id") or _new_id()
    if len(config_id) > MAX_ID_LENGTH:
        raise invalid_argument(f"ID length exceeded allowed limit of {MAX_ID_LENGTH}")
    entry: dict[str, Any] = {"Id": config_id, arn_member: destination, "Events": list(events)}
    rules = _filter_rules(raw.get("Filter"))
    if rules:
        entry["Filter"] = {"Key": {"FilterRules": rules}}
    return destination, entry


def _new_id() -> str:
    """An Id as S3 generates them: a random UUID's text, base64-encoded."""
    return base64.b64encode(str(uuid.uuid4()).encode()).decode()


def _check_own_events(events: list[str]) -> None:
    for index, event in enumerate(events):
        for other in events[:index]:
            if _covers(event, other) or _covers(other, event):
                raise invalid_argument(_OVERLAP, "Event", f"{other}, {event}")


def _filter_rules(raw: dict[str, Any] | None) -> list[dict[str, str]]:
    """The filter rules, names as S3 reports them ("Prefix", "Suffix"); at most one of each."""
    rules = ((raw or {}).get("Key") or {}).get("FilterRules") or []
    seen: set[str] = set()
    normalised = []
    for rule in rules:
        name = str(rule.get("Name") or "").lower()
        if name not in ("prefix", "suffix"):
            raise invalid_argument(
                "filter rule name must be either prefix or suffix", "FilterRule", rule.get("Name")
            )
        if name in seen:
            raise invalid_argument(
                f"Cannot specify more than one {name} rule in a filter.", "FilterRule", name
            )
        seen.add(name)
        value = str(rule.get("Value") or "")
        if len(value.encode()) > MAX_FILTER_VALUE_BYTES:
            raise invalid_argument(
                "Size of filter rule value cannot exceed 1024 bytes in UTF-8 representation"
            )
        normalised.append({"Name": name.capitalize(), "Value": value})
    return normalised


def _check_ids(entries: Iterable[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry["Id"] in seen:
            raise invalid_argument("Same ID used for multiple configurations. IDs must be unique.")
        seen.add(entry["Id"])


def _check_overlaps(entries: list[dict[str, Any]]) -> None:
    """Two configurations that share an event type must not both match any key."""
    for index, entry in enumerate(entries):
        prefix, suffix = _affixes(entry)
        for other in entries[:index]:
            shared = _shared_event(entry["Events"], other["Events"])
            if shared is None:
                continue
            other_prefix, other_suffix = _affixes(other)
            prefixes_meet = prefix.startswith(other_prefix) or other_prefix.startswith(prefix)
            suffixes_meet = suffix.endswith(other_suffix) or other_suffix.endswith(suffix)
            if not (prefixes_meet and suffixes_meet):
                continue
            if "Filter" not in entry and "Filter" not in other:
                raise invalid_argument(_OVERLAP, "Event", f"{shared[0]}, {shared[1]}")
            raise invalid_argument(_AMBIGUOUS)


def _shared_event(events: list[str], others: list[str]) -> tuple[str, str] | None:
    for other in others:
        for event in events:
            if _covers(event, other) or _covers(other, event):
                return other, event
    return None


def _check_destinations(
    entries: list[tuple[str, str, dict[str, Any]]],
    *,
    bucket: str,
    account: str,
    targets: FunctionTargets,
) -> None:
    """Every destination must exist and accept S3's deliveries; S3 names each that does not
    (`ArgumentName1`/`ArgumentValue1`, `...2`, ...) in one error."""
    failures: list[tuple[str, str]] = []
    source_arn = bucket_arn(bucket)
    for kind, destination, _ in entries:
        if kind != "function":
            # squall has no topics or queues yet: no such destination can exist
            failures.append((destination, f"The destination {kind} does not exist"))
            continue
        if not (
            targets.function_exists(destination)
            and targets.allows(
                destination, principal=S3_PRINCIPAL, source_arn=source_arn, source_account=account
            )
        ):
            failures.append(
                (f"{destination}, null", f"Not authorized to invoke function [{destination}]")
            )
    if failures:
        fields: dict[str, Any] = {}
        for number, (name, value) in enumerate(failures, start=1):
            fields[f"ArgumentName{number}"] = name
            fields[f"ArgumentValue{number}"] = value
        raise s3_error("InvalidArgument", _UNVALIDATED, 400, **fields)


# --------------------------------------------------------------------------- matching


def matches(config: dict[str, Any], event_name: str, key: str) -> list[tuple[str, str]]:
    """(configuration Id, function ARN) of each stored Lambda configuration that fires for
    `event_name` (such as "ObjectCreated:Put", without "s3:") on `key`."""
    event = f"s3:{event_name}"
    fired = []
    for entry in config.get("LambdaFunctionConfigurations") or []:
        if not any(_covers(pattern, event) for pattern in entry["Events"]):
            continue
        prefix, suffix = _affixes(entry)
        if key.startswith(prefix) and key.endswith(suffix):
            fired.append((entry["Id"], entry["LambdaFunctionArn"]))
    return fired


def _covers(pattern: str, event: str) -> bool:
    """Whether configured event type `pattern` ("s3:ObjectCreated:*") includes `event`."""
    if pattern == event:
        return True
    return pattern.endswith(":*") and event.startswith(pattern[:-1])


def _affixes(entry: dict[str, Any]) -> tuple[str, str]:
    """A configuration's (prefix, suffix); S3 reads filter values URL-encoded ('+' is a space)."""
    prefix = suffix = ""
    for rule in ((entry.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []:
        value = unquote_plus(rule["Value"])
        if rule["Name"].lower() == "prefix":
            prefix = value
        else:
            suffix = value
    return prefix, suffix


# --------------------------------------------------------------------------- records

_sequencer_lock = threading.Lock()
_last_sequencer = 0


def sequencer() -> str:
    """A new event sequencer: 18 uppercase hex digits, strictly increasing within the process
    (and across restarts, as it counts nanoseconds since the epoch)."""
    global _last_sequencer
    with _sequencer_lock:
        now = time.time_ns()
        _last_sequencer = now if now > _last_sequencer else _last_sequencer + 1
        value = _last_sequencer
    return f"{value:018X}"


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def event_principal(principal: Principal) -> str:
    """The `principalId` S3 records for who caused an event."""
    if principal.type == "Anonymous":
        return "anonymous"
    if principal.type == "Root":
        return principal.user_id
    return f"AWS:{principal.user_id}"


def event_record(
    *,
    event_name: str,
    region: str,
    bucket: str,
    key: str,
    configuration_id: str,
    request_id: str,
    principal_id: str,
    owner_id: str,
    source_ip: str,
    size: int | None = None,
    etag: str | None = None,
    version_id: str | None = None,
    sequencer_value: str | None = None,
    host_id: str | None = None,
    event_time: float | None = None,
) -> dict[str, Any]:
    """One S3 event record (eventVersion 2.1), as Lambda receives it inside `{"Records": [...]}`.

    `event_name` is "ObjectCreated:Put" and the like; `key` is the object's key as stored (the
    record carries it URL-encoded, spaces as '+'). ObjectCreated records need `size` and
    `etag` (the ETag without quotes); ObjectRemoved records carry neither. `version_id` only for
    versioned buckets; `event_time` (epoch seconds) defaults to now.
    """
    at = time.time() if event_time is None else event_time
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if not event_name.startswith(("ObjectRemoved:", "LifecycleExpiration:")):
        if size is None or etag is None:
            raise ValueError(f"a {event_name} record needs the object's size and eTag")
        obj["size"] = int(size)
        obj["eTag"] = etag.strip('"')
    if version_id is not None:
        obj["versionId"] = version_id
    obj["sequencer"] = sequencer_value or sequencer()
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": _iso(at),
        "eventName": event_name,
        "userIdentity": {"principalId": principal_id},
        "requestParameters": {"sourceIPAddress": _source_ip(source_ip)},
        "responseElements": {
            "x-amz-request-id": request_id,
            "x-amz-id-2": host_id or _host_id(),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": owner_id},
                "arn": bucket_arn(bucket),
            },
            "object": obj,
        },
    }


def event_payload(*records: dict[str, Any]) -> bytes:
    """The invocation payload: `{"Records": [...]}` as JSON."""
    return orjson.dumps({"Records": list(records)})


def publish(
    targets: FunctionTargets,
    config: dict[str, Any] | None,
    *,
    event_name: str,
    key: str,
    **record: Any,
) -> int:
    """Queue one invocation per configuration of `config` that fires for `event_name` on `key`;
    returns how many. `record` holds the other :func:`event_record` arguments (bucket, region,
    request_id, principal_id, owner_id, source_ip, size, etag, version_id, ...). Every record of
    one event shares its sequencer. Call it inside the transaction that commits the change."""
    fired = matches(config or {}, event_name, key)
    if not fired:
        return 0
    record.setdefault("sequencer_value", sequencer())
    record.setdefault("host_id", _host_id())
    for configuration_id, function_arn in fired:
        body = event_record(
            event_name=event_name, key=key, configuration_id=configuration_id, **record
        )
        targets.enqueue(function_arn, event_payload(body))
    return len(fired)


def _iso(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _source_ip(source_ip: str) -> str:
    """The caller's IP address; requests without one (the unix socket) count as local."""
    try:
        return str(ipaddress.ip_address(source_ip))
    except ValueError:
        return "127.0.0.1"


def _host_id() -> str:
    """An `x-amz-id-2`-shaped token."""
    return base64.b64encode(secrets.token_bytes(57)).decode()
