"""Resource-based policies of functions: AddPermission, RemovePermission, GetPolicy and their use.

Everything here is a pure function over JSON-able dicts. A policy is the document Lambda returns
from GetPolicy::

    {"Version": "2012-10-17", "Id": "default", "Statement": [...]}

and a statement has the shape Lambda stores for an AddPermission request::

    {"Sid": "s3-invoke", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
     "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:...:function:f",
     "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"}}}

`allows` evaluates such a policy for a request: an explicit Deny wins, otherwise some Allow
statement must match the action, the principal, the resource and all of its conditions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from squall.core.errors import ServiceError

POLICY_VERSION = "2012-10-17"
POLICY_ID = "default"
MAX_POLICY_BYTES = 20480

ACTION_PATTERN = r"(lambda:[*]|lambda:[a-zA-Z]+|[*])"
STATEMENT_ID_PATTERN = r"([a-zA-Z0-9-_]+)"
MAX_STATEMENT_ID = 100

_ACTION = re.compile(ACTION_PATTERN)
_STATEMENT_ID = re.compile(STATEMENT_ID_PATTERN)
_ACCOUNT_ID = re.compile(r"\d{12}")
_SERVICE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-]*(\.[a-zA-Z0-9-]+)+")
_ARN_PARTITION = re.compile(r"arn:(aws[a-zA-Z-]*):")

# Condition keys as AddPermission writes them, and the request member each comes from.
_STRING_EQUALS_KEYS = (
    ("SourceAccount", "AWS:SourceAccount"),
    ("PrincipalOrgID", "aws:PrincipalOrgID"),
    ("EventSourceToken", "lambda:EventSourceToken"),
    ("FunctionUrlAuthType", "lambda:FunctionUrlAuthType"),
)
SOURCE_ARN_KEY = "AWS:SourceArn"
SOURCE_ACCOUNT_KEY = "AWS:SourceAccount"
INVOKED_VIA_FUNCTION_URL_KEY = "lambda:InvokedViaFunctionUrl"


# --- building statements ------------------------------------------------------------------------


def new_statement(resource_arn: str, request: dict[str, Any]) -> dict[str, Any]:
    """The statement Lambda stores for an AddPermission `request` on `resource_arn` (the
    function's ARN, qualified when the request names a version or alias)."""
    sid = request.get("StatementId")
    action = request.get("Action")
    principal = request.get("Principal")
    _check_statement_id(sid)
    _check_action(action)
    if not isinstance(principal, str) or not principal:
        raise _validation(principal, "principal", "Member must not be null")
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": _principal(principal, _partition(resource_arn)),
        "Action": action,
        "Resource": resource_arn,
    }
    condition = _condition(request)
    if condition:
        statement["Condition"] = condition
    return statement


def _check_statement_id(sid: Any) -> None:
    if not isinstance(sid, str):
        raise _validation(sid, "statementId", "Member must not be null")
    if len(sid) > MAX_STATEMENT_ID:
        raise _validation(
            sid, "statementId", f"Member must have length less than or equal to {MAX_STATEMENT_ID}"
        )
    if not _STATEMENT_ID.fullmatch(sid):
        raise _validation(
            sid,
            "statementId",
            f"Member must satisfy regular expression pattern: {STATEMENT_ID_PATTERN}",
        )


def _check_action(action: Any) -> None:
    if not isinstance(action, str):
        raise _validation(action, "action", "Member must not be null")
    if not _ACTION.fullmatch(action):
        raise _validation(
            action, "action", f"Member must satisfy regular expression pattern: {ACTION_PATTERN}"
        )


def _validation(value: Any, member: str, constraint: str) -> ServiceError:
    shown = "null" if value is None else f"'{value}'"
    return ServiceError(
        "ValidationException",
        f"1 validation error detected: Value {shown} at '{member}' failed to satisfy "
        f"constraint: {constraint}",
        status=400,
    )


def _partition(arn: str) -> str:
    match = _ARN_PARTITION.match(arn)
    return match.group(1) if match else "aws"


def _principal(principal: str, partition: str) -> str | dict[str, str]:
    """`Principal` of an AddPermission request as the statement records it."""
    if principal == "*":
        return "*"
    if _ACCOUNT_ID.fullmatch(principal):
        return {"AWS": f"arn:{partition}:iam::{principal}:root"}
    if principal.startswith("arn:"):
        return {"AWS": principal}
    if _SERVICE.fullmatch(principal):
        return {"Service": principal}
    raise ServiceError(
        "InvalidParameterValueException",
        "The provided principal was invalid. Please check the principal and try again.",
        status=400,
    )


def _condition(request: dict[str, Any]) -> dict[str, dict[str, str]]:
    condition: dict[str, dict[str, str]] = {}
    string_equals = {
        key: request[member] for member, key in _STRING_EQUALS_KEYS if request.get(member)
    }
    if string_equals:
        condition["StringEquals"] = string_equals
    if request.get("SourceArn"):
        condition["ArnLike"] = {SOURCE_ARN_KEY: request["SourceArn"]}
    if request.get("InvokedViaFunctionUrl") is True:
        condition["Bool"] = {INVOKED_VIA_FUNCTION_URL_KEY: "true"}
    return condition


# --- editing policies ---------------------------------------------------------------------------


def empty_policy() -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Id": POLICY_ID, "Statement": []}


def add_statement(policy: dict[str, Any] | None, statement: dict[str, Any]) -> dict[str, Any]:
    """A copy of `policy` (None: no policy yet) with `statement` appended.

    Raises ResourceConflictException when the statement id is taken and
    PolicyLengthExceededException when the resulting policy is over 20 KB.
    """
    base = policy if policy is not None else empty_policy()
    statements = list(base.get("Statement") or [])
    sid = statement.get("Sid")
    if any(existing.get("Sid") == sid for existing in statements):
        raise ServiceError(
            "ResourceConflictException",
            f"The statement id ({sid}) provided already exists. Please provide a new statement "
            "id, or remove the existing statement.",
            status=409,
        )
    updated = {**base, "Statement": [*statements, statement]}
    size = policy_size(updated)
    if size > MAX_POLICY_BYTES:
        raise ServiceError(
            "PolicyLengthExceededException",
            f"The final policy size ({size}) is bigger than the limit ({MAX_POLICY_BYTES}).",
            status=400,
        )
    return updated


def remove_statement(policy: dict[str, Any] | None, sid: str) -> dict[str, Any] | None:
    """A copy of `policy` without statement `sid`; None when no statement is left.

    Raises ResourceNotFoundException when there is no such statement (or no policy at all).
    """
    statements = list((policy or {}).get("Statement") or [])
    remaining = [statement for statement in statements if statement.get("Sid") != sid]
    if policy is None or len(remaining) == len(statements):
        raise ServiceError(
            "ResourceNotFoundException",
            f"Statement {sid} is not found in resource policy.",
            status=404,
        )
    if not remaining:
        return None
    return {**policy, "Statement": remaining}


def find_statement(policy: dict[str, Any] | None, sid: str) -> dict[str, Any] | None:
    for statement in (policy or {}).get("Statement") or []:
        if statement.get("Sid") == sid:
            return statement
    return None


def to_json(document: Any) -> str:
    """`document` (a policy or a statement) as the compact JSON string Lambda returns."""
    return orjson.dumps(document).decode()


def policy_size(policy: dict[str, Any]) -> int:
    """The size Lambda holds against the 20 KB limit: bytes of the compact JSON document."""
    return len(orjson.dumps(policy))


# --- evaluating policies ------------------------------------------------------------------------


def allows(
    policy: dict[str, Any] | None,
    *,
    action: str,
    principal_service: str | None = None,
    principal_account: str | None = None,
    source_arn: str | None = None,
    source_account: str | None = None,
    resource_arn: str | None = None,
    principal_arn: str | None = None,
    context: Mapping[str, str | bool] | None = None,
) -> bool:
    """Whether `policy` lets the caller perform `action`.

    The caller is a service (`principal_service`, such as "s3.amazonaws.com"), an account
    (`principal_account`) and/or an IAM identity (`principal_arn`); a statement's principal
    matches when any of them does, and "*" matches everyone, including anonymous callers.
    `source_arn` and `source_account` are the `aws:SourceArn` and `aws:SourceAccount` condition
    values; `context` supplies any other condition key ("lambda:FunctionUrlAuthType", ...).
    A statement's conditions must all hold, and one whose key has no value in the request
    fails. When `resource_arn` is given, the statement's Resource must match it too.
    An explicit Deny that matches overrides every Allow.
    """
    values: dict[str, str] = {}
    for key, value in (context or {}).items():
        values[key.lower()] = _context_value(value)
    if source_arn is not None:
        values[SOURCE_ARN_KEY.lower()] = source_arn
    if source_account is not None:
        values[SOURCE_ACCOUNT_KEY.lower()] = source_account
    caller = _Caller(principal_service, principal_account, principal_arn)
    allowed = False
    for statement in (policy or {}).get("Statement") or []:
        if not _statement_matches(statement, action, caller, resource_arn, values):
            continue
        effect = statement.get("Effect")
        if effect == "Deny":
            return False
        if effect == "Allow":
            allowed = True
    return allowed


class _Caller:
    __slots__ = ("account", "arn", "service")

    def __init__(self, service: str | None, account: str | None, arn: str | None) -> None:
        self.service = service
        self.arn = arn
        if account is None and arn is not None:
            parts = arn.split(":", 5)
            if len(parts) == 6 and _ACCOUNT_ID.fullmatch(parts[4]):
                account = parts[4]
        self.account = account


def _context_value(value: str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _statement_matches(
    statement: dict[str, Any],
    action: str,
    caller: _Caller,
    resource_arn: str | None,
    values: dict[str, str],
) -> bool:
    if not any(
        _wildcard(pattern, action, fold=True) for pattern in _as_list(statement.get("Action"))
    ):
        return False
    if not _principal_matches(statement.get("Principal"), caller):
        return False
    if resource_arn is not None and not any(
        _wildcard(pattern, resource_arn) for pattern in _as_list(statement.get("Resource"))
    ):
        return False
    return _conditions_hold(statement.get("Condition") or {}, values)


def _principal_matches(principal: Any, caller: _Caller) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    services = _as_list(principal.get("Service"))
    if caller.service is not None and caller.service in services:
        return True
    for entry in _as_list(principal.get("AWS")):
        if entry == "*":
            return True
        if caller.arn is not None and entry == caller.arn:
            return True
        if caller.account is not None and _names_account(entry, caller.account):
            return True
    return False


def _names_account(entry: str, account: str) -> bool:
    """Whether `entry` of a statement's AWS principal is the account itself (its id or its root
    ARN), which grants to every identity of that account."""
    if entry == account:
        return True
    parts = entry.split(":")
    return (
        len(parts) == 6
        and parts[0] == "arn"
        and parts[2] == "iam"
        and parts[4] == account
        and parts[5] == "root"
    )


def _conditions_hold(condition: dict[str, Any], values: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        compare = _OPERATORS.get(base)
        if compare is None or not isinstance(tests, dict):
            return False  # an operator we cannot evaluate never grants access
        for key, expected in tests.items():
            actual = values.get(key.lower())
            if actual is None:
                if if_exists:
                    continue
                return False
            if not any(compare(str(candidate), actual) for candidate in _as_list(expected)):
                return False
    return True


def _string_equals(expected: str, actual: str) -> bool:
    return expected == actual


def _string_like(expected: str, actual: str) -> bool:
    return _wildcard(expected, actual)


def _arn_like(expected: str, actual: str) -> bool:
    """IAM's ArnLike: each of the six colon-separated parts is matched on its own, so a wildcard
    never spans a colon except in the last part (the resource, which may contain colons)."""
    wanted = expected.split(":", 5)
    given = actual.split(":", 5)
    if len(wanted) != 6 or len(given) != 6:
        return _wildcard(expected, actual)
    return all(_wildcard(w, g) for w, g in zip(wanted, given, strict=True))


def _bool(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


_OPERATORS = {
    "StringEquals": _string_equals,
    "StringLike": _string_like,
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
    "Bool": _bool,
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _wildcard(pattern: str, value: str, *, fold: bool = False) -> bool:
    """Whether `value` matches `pattern`, where `*` is any run of characters and `?` any one
    character; case-sensitive unless `fold`."""
    return _compile(pattern, fold).fullmatch(value) is not None


@lru_cache(maxsize=1024)
def _compile(pattern: str, fold: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if fold else 0))
