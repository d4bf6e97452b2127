"""Tests for squall.services.awslambda.policy: statements, policy edits and evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from squall.core.errors import ServiceError
from squall.services.awslambda.policy import (
    MAX_POLICY_BYTES,
    add_statement,
    allows,
    find_statement,
    new_statement,
    policy_size,
    remove_statement,
    to_json,
)

ACCOUNT = "123456789012"
OTHER = "210987654321"
FN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"
BUCKET = "arn:aws:s3:::my-bucket"


def statement(sid: str = "s1", **request: Any) -> dict[str, Any]:
    request.setdefault("Action", "lambda:InvokeFunction")
    request.setdefault("Principal", "s3.amazonaws.com")
    return new_statement(FN, {"StatementId": sid, **request})


def policy_of(*statements: dict[str, Any]) -> dict[str, Any]:
    policy = None
    for s in statements:
        policy = add_statement(policy, s)
    assert policy is not None
    return policy


# --- new_statement ------------------------------------------------------------------------------


def test_service_principal_statement_shape() -> None:
    assert statement() == {
        "Sid": "s1",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": FN,
    }


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ("sns.amazonaws.com", {"Service": "sns.amazonaws.com"}),
        ("logs.us-east-1.amazonaws.com", {"Service": "logs.us-east-1.amazonaws.com"}),
        ("alexa-appkit.amazon.com", {"Service": "alexa-appkit.amazon.com"}),
        (OTHER, {"AWS": f"arn:aws:iam::{OTHER}:root"}),
        (f"arn:aws:iam::{OTHER}:role/caller", {"AWS": f"arn:aws:iam::{OTHER}:role/caller"}),
        (f"arn:aws:iam::{OTHER}:root", {"AWS": f"arn:aws:iam::{OTHER}:root"}),
        ("*", "*"),
    ],
)
def test_principal_kinds(principal: str, expected: Any) -> None:
    assert statement(Principal=principal)["Principal"] == expected


def test_account_principal_takes_partition_of_resource() -> None:
    arn = f"arn:aws-cn:lambda:cn-north-1:{ACCOUNT}:function:f"
    made = new_statement(arn, {"StatementId": "x", "Action": "lambda:*", "Principal": OTHER})
    assert made["Principal"] == {"AWS": f"arn:aws-cn:iam::{OTHER}:root"}


def test_invalid_principal() -> None:
    with pytest.raises(ServiceError) as raised:
        statement(Principal="not a principal")
    assert raised.value.code == "InvalidParameterValueException"


def test_qualified_resource_is_kept() -> None:
    made = new_statement(f"{FN}:prod", {"StatementId": "q", "Action": "*", "Principal": "*"})
    assert made["Resource"] == f"{FN}:prod"
    assert made["Action"] == "*"


@pytest.mark.parametrize(
    "action",
    ["lambda:InvokeFunction", "lambda:GetFunction", "lambda:*", "lambda:InvokeFunctionUrl", "*"],
)
def test_accepted_actions(action: str) -> None:
    assert statement(Action=action)["Action"] == action


@pytest.mark.parametrize(
    "action", ["s3:GetObject", "lambda:", "lambda:Invoke Function", "lambda:Invoke*", "Invoke", ""]
)
def test_rejected_actions(action: str) -> None:
    with pytest.raises(ServiceError) as raised:
        statement(Action=action)
    assert raised.value.code == "ValidationException"
    assert raised.value.status == 400
    assert raised.value.message == (
        f"1 validation error detected: Value '{action}' at 'action' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "(lambda:[*]|lambda:[a-zA-Z]+|[*])"
    )


@pytest.mark.parametrize("sid", ["has space", "a/b", "x" * 101])
def test_rejected_statement_ids(sid: str) -> None:
    with pytest.raises(ServiceError) as raised:
        statement(sid)
    assert raised.value.code == "ValidationException"
    assert "'statementId'" in raised.value.message


def test_source_arn_condition() -> None:
    made = statement(SourceArn=BUCKET)
    assert made["Condition"] == {"ArnLike": {"AWS:SourceArn": BUCKET}}


def test_source_account_condition() -> None:
    made = statement(SourceAccount=ACCOUNT)
    assert made["Condition"] == {"StringEquals": {"AWS:SourceAccount": ACCOUNT}}


def test_org_token_and_url_auth_conditions() -> None:
    org = statement(Principal="*", PrincipalOrgID="o-abcdefghij")
    assert org["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}
    token = statement(Principal="alexa-connectedhome.amazon.com", EventSourceToken="tok")
    assert token["Condition"] == {"StringEquals": {"lambda:EventSourceToken": "tok"}}
    url = statement(Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    assert url["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}


def test_invoked_via_function_url_condition() -> None:
    made = statement(Principal="*", InvokedViaFunctionUrl=True)
    assert made["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
    assert "Condition" not in statement(Principal="*", InvokedViaFunctionUrl=False)


def test_combined_conditions() -> None:
    made = statement(SourceArn=BUCKET, SourceAccount=ACCOUNT)
    assert made["Condition"] == {
        "StringEquals": {"AWS:SourceAccount": ACCOUNT},
        "ArnLike": {"AWS:SourceArn": BUCKET},
    }


def test_request_members_that_are_not_conditions_are_ignored() -> None:
    made = statement(Qualifier="prod", RevisionId="abc", FunctionName="f")
    assert "Condition" not in made
    assert set(made) == {"Sid", "Effect", "Principal", "Action", "Resource"}


# --- add_statement / remove_statement -----------------------------------------------------------


def test_add_to_no_policy_creates_document() -> None:
    s = statement()
    assert add_statement(None, s) == {"Version": "2012-10-17", "Id": "default", "Statement": [s]}


def test_add_does_not_mutate_input() -> None:
    first = add_statement(None, statement("a"))
    second = add_statement(first, statement("b"))
    assert [s["Sid"] for s in first["Statement"]] == ["a"]
    assert [s["Sid"] for s in second["Statement"]] == ["a", "b"]


def test_duplicate_sid_conflicts() -> None:
    policy = policy_of(statement("dup"))
    with pytest.raises(ServiceError) as raised:
        add_statement(policy, statement("dup", Principal="sns.amazonaws.com"))
    assert raised.value.code == "ResourceConflictException"
    assert raised.value.status == 409
    assert raised.value.message == (
        "The statement id (dup) provided already exists. Please provide a new statement id, "
        "or remove the existing statement."
    )


def test_policy_size_limit() -> None:
    policy = policy_of(statement("statement-0", SourceArn=BUCKET))
    fitted = 1
    while True:
        candidate = statement(f"statement-{fitted}", SourceArn=BUCKET)
        attempted = {**policy, "Statement": [*policy["Statement"], candidate]}
        if policy_size(attempted) > MAX_POLICY_BYTES:
            break
        policy = add_statement(policy, candidate)
        fitted += 1
    assert fitted > 10
    with pytest.raises(ServiceError) as raised:
        add_statement(policy, candidate)
    assert raised.value.code == "PolicyLengthExceededException"
    assert raised.value.status == 400
    assert raised.value.message == (
        f"The final policy size ({policy_size(attempted)}) is bigger than the limit (20480)."
    )
    assert len(policy["Statement"]) == fitted  # the policy given is left as it was


def test_remove_statement() -> None:
    policy = policy_of(statement("a"), statement("b"), statement("c"))
    after = remove_statement(policy, "b")
    assert after is not None
    assert [s["Sid"] for s in after["Statement"]] == ["a", "c"]
    assert [s["Sid"] for s in policy["Statement"]] == ["a", "b", "c"]
    assert after["Id"] == "default"


def test_remove_last_statement_leaves_no_policy() -> None:
    assert remove_statement(policy_of(statement("only")), "only") is None


@pytest.mark.parametrize("policy", [None, {"Version": "2012-10-17", "Statement": []}])
def test_remove_from_empty(policy: dict[str, Any] | None) -> None:
    with pytest.raises(ServiceError) as raised:
        remove_statement(policy, "nope")
    assert raised.value.code == "ResourceNotFoundException"
    assert raised.value.status == 404
    assert raised.value.message == "Statement nope is not found in resource policy."


def test_remove_unknown_sid() -> None:
    with pytest.raises(ServiceError) as raised:
        remove_statement(policy_of(statement("a")), "b")
    assert raised.value.code == "ResourceNotFoundException"
    assert raised.value.message == "Statement b is not found in resource policy."


def test_find_and_serialize() -> None:
    policy = policy_of(statement("a"), statement("b"))
    assert find_statement(policy, "b") == statement("b")
    assert find_statement(policy, "c") is None
    assert find_statement(None, "a") is None
    text = to_json(policy)
    assert text.startswith('{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"a"')
    assert len(text.encode()) == policy_size(policy)


# --- allows -------------------------------------------------------------------------------------


def test_no_policy_allows_nothing() -> None:
    assert not allows(None, action="lambda:InvokeFunction", principal_service="s3.amazonaws.com")
    empty = {"Version": "2012-10-17", "Id": "default", "Statement": []}
    assert not allows(empty, action="lambda:InvokeFunction", principal_account=ACCOUNT)


def test_service_principal_without_conditions() -> None:
    policy = policy_of(statement())
    assert allows(policy, action="lambda:InvokeFunction", principal_service="s3.amazonaws.com")
    assert not allows(policy, action="lambda:InvokeFunction", principal_service="sns.amazonaws.com")
    assert not allows(policy, action="lambda:InvokeFunction", principal_account=ACCOUNT)
    assert not allows(policy, action="lambda:InvokeFunction")


def test_source_arn_exact_and_missing() -> None:
    policy = policy_of(statement(SourceArn=BUCKET))
    call = {"action": "lambda:InvokeFunction", "principal_service": "s3.amazonaws.com"}
    assert allows(policy, **call, source_arn=BUCKET)
    assert not allows(policy, **call, source_arn="arn:aws:s3:::other-bucket")
    assert not allows(policy, **call)  # the condition's key has no value: no match


def test_source_arn_wildcards() -> None:
    policy = policy_of(
        statement(
            Principal="events.amazonaws.com",
            SourceArn=f"arn:aws:events:us-east-1:{ACCOUNT}:rule/nightly-*",
        ),
        statement(
            "sns", Principal="sns.amazonaws.com", SourceArn=f"arn:aws:sns:*:{ACCOUNT}:topic-?"
        ),
    )
    events = {"action": "lambda:InvokeFunction", "principal_service": "events.amazonaws.com"}
    assert allows(policy, **events, source_arn=f"arn:aws:events:us-east-1:{ACCOUNT}:rule/nightly-a")
    assert allows(policy, **events, source_arn=f"arn:aws:events:us-east-1:{ACCOUNT}:rule/nightly-")
    assert not allows(policy, **events, source_arn=f"arn:aws:events:us-east-1:{ACCOUNT}:rule/daily")
    sns = {"action": "lambda:InvokeFunction", "principal_service": "sns.amazonaws.com"}
    assert allows(policy, **sns, source_arn=f"arn:aws:sns:eu-west-1:{ACCOUNT}:topic-1")
    assert not allows(policy, **sns, source_arn=f"arn:aws:sns:eu-west-1:{ACCOUNT}:topic-12")
    assert not allows(policy, **sns, source_arn=f"arn:aws:sns:eu-west-1:{OTHER}:topic-1")
    # a wildcard in one part of an ARN does not span the colons between parts
    assert not allows(policy, **sns, source_arn=f"arn:aws:sns:a:b:{ACCOUNT}:topic-1")


def test_source_arn_is_case_sensitive() -> None:
    policy = policy_of(statement(SourceArn="arn:aws:s3:::My-Bucket*"))
    call = {"action": "lambda:InvokeFunction", "principal_service": "s3.amazonaws.com"}
    assert allows(policy, **call, source_arn="arn:aws:s3:::My-Bucket-2")
    assert not allows(policy, **call, source_arn="arn:aws:s3:::my-bucket-2")


def test_source_account() -> None:
    policy = policy_of(statement(SourceAccount=ACCOUNT))
    call = {"action": "lambda:InvokeFunction", "principal_service": "s3.amazonaws.com"}
    assert allows(policy, **call, source_account=ACCOUNT)
    assert not allows(policy, **call, source_account=OTHER)
    assert not allows(policy, **call)


def test_every_condition_must_hold() -> None:
    policy = policy_of(statement(SourceArn="arn:aws:s3:::bucket-*", SourceAccount=ACCOUNT))
    call = {"action": "lambda:InvokeFunction", "principal_service": "s3.amazonaws.com"}
    assert allows(policy, **call, source_arn="arn:aws:s3:::bucket-1", source_account=ACCOUNT)
    assert not allows(policy, **call, source_arn="arn:aws:s3:::bucket-1", source_account=OTHER)
    assert not allows(policy, **call, source_arn="arn:aws:s3:::other", source_account=ACCOUNT)
    assert not allows(policy, **call, source_arn="arn:aws:s3:::bucket-1")


def test_action_wildcards() -> None:
    star = policy_of(statement(Action="lambda:*", Principal=OTHER))
    anything = policy_of(statement(Action="*", Principal=OTHER))
    one = policy_of(statement(Action="lambda:GetFunction", Principal=OTHER))
    for action in ("lambda:InvokeFunction", "lambda:GetFunction", "lambda:InvokeFunctionUrl"):
        assert allows(star, action=action, principal_account=OTHER)
        assert allows(anything, action=action, principal_account=OTHER)
    assert allows(anything, action="s3:GetObject", principal_account=OTHER)
    assert not allows(star, action="s3:GetObject", principal_account=OTHER)
    assert allows(one, action="lambda:GetFunction", principal_account=OTHER)
    assert allows(one, action="lambda:getfunction", principal_account=OTHER)
    assert not allows(one, action="lambda:InvokeFunction", principal_account=OTHER)
    # InvokeFunctionUrl is a different action from InvokeFunction, in both directions
    url = policy_of(statement(Action="lambda:InvokeFunctionUrl", Principal=OTHER))
    assert not allows(url, action="lambda:InvokeFunction", principal_account=OTHER)


def test_account_principals() -> None:
    policy = policy_of(statement(Principal=OTHER))
    assert allows(policy, action="lambda:InvokeFunction", principal_account=OTHER)
    assert not allows(policy, action="lambda:InvokeFunction", principal_account=ACCOUNT)
    assert not allows(policy, action="lambda:InvokeFunction", principal_service="s3.amazonaws.com")
    role = f"arn:aws:iam::{OTHER}:role/r"
    assert allows(policy, action="lambda:InvokeFunction", principal_arn=role)
    bare = {"Statement": [{**statement(), "Principal": {"AWS": OTHER}}]}
    assert allows(bare, action="lambda:InvokeFunction", principal_account=OTHER)


def test_role_principal() -> None:
    role = f"arn:aws:iam::{OTHER}:role/r"
    policy = policy_of(statement(Principal=role))
    assert allows(policy, action="lambda:InvokeFunction", principal_arn=role)
    assert not allows(policy, action="lambda:InvokeFunction", principal_arn=f"{role}2")
    # the role is not the whole account
    assert not allows(policy, action="lambda:InvokeFunction", principal_account=OTHER)


def test_public_principal() -> None:
    policy = policy_of(statement(Principal="*"))
    assert allows(policy, action="lambda:InvokeFunction")
    assert allows(policy, action="lambda:InvokeFunction", principal_account=OTHER)
    assert allows(policy, action="lambda:InvokeFunction", principal_service="s3.amazonaws.com")
    assert not allows(policy, action="lambda:GetFunction")


def test_resource_match() -> None:
    policy = policy_of(statement())
    call = {"action": "lambda:InvokeFunction", "principal_service": "s3.amazonaws.com"}
    assert allows(policy, **call, resource_arn=FN)
    assert not allows(policy, **call, resource_arn=f"{FN}:prod")
    assert not allows(policy, **call, resource_arn=FN.replace(":f", ":g"))


def test_other_condition_keys_come_from_context() -> None:
    policy = policy_of(
        statement(Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE"),
        statement("via-url", Principal="*", InvokedViaFunctionUrl=True),
    )
    assert allows(
        policy, action="lambda:InvokeFunctionUrl", context={"lambda:FunctionUrlAuthType": "NONE"}
    )
    assert not allows(
        policy, action="lambda:InvokeFunctionUrl", context={"lambda:FunctionUrlAuthType": "AWS_IAM"}
    )
    assert not allows(policy, action="lambda:InvokeFunctionUrl")
    assert allows(
        policy, action="lambda:InvokeFunction", context={"lambda:InvokedViaFunctionUrl": True}
    )
    assert not allows(
        policy, action="lambda:InvokeFunction", context={"lambda:InvokedViaFunctionUrl": False}
    )
    assert not allows(policy, action="lambda:InvokeFunction")


def test_condition_keys_are_case_insensitive() -> None:
    policy = {"Statement": [{**statement(), "Condition": {"ArnLike": {"aws:sourcearn": BUCKET}}}]}
    assert allows(
        policy,
        action="lambda:InvokeFunction",
        principal_service="s3.amazonaws.com",
        source_arn=BUCKET,
    )


def test_explicit_deny_and_unknown_operators() -> None:
    allow = statement()
    deny = {**statement("deny"), "Effect": "Deny"}
    call = {"action": "lambda:InvokeFunction", "principal_service": "s3.amazonaws.com"}
    assert not allows({"Statement": [allow, deny]}, **call)
    odd = {**statement(), "Condition": {"NumericLessThan": {"aws:SourceAccount": "5"}}}
    assert not allows({"Statement": [odd]}, **call, source_account="1")
    if_exists = {**statement(), "Condition": {"StringEqualsIfExists": {"x:Key": "v"}}}
    assert allows({"Statement": [if_exists]}, **call)
    assert not allows({"Statement": [if_exists]}, **call, context={"x:Key": "w"})


def test_list_valued_statement_fields() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["s3.amazonaws.com", "sns.amazonaws.com"]},
                "Action": ["lambda:GetFunction", "lambda:InvokeFunction"],
                "Resource": [FN, f"{FN}:*"],
                "Condition": {"StringEquals": {"AWS:SourceAccount": [ACCOUNT, OTHER]}},
            }
        ]
    }
    call = {"action": "lambda:InvokeFunction", "principal_service": "sns.amazonaws.com"}
    assert allows(policy, **call, source_account=OTHER, resource_arn=f"{FN}:prod")
    assert not allows(policy, **call, source_account="111111111111")
    assert not allows(
        policy,
        action="lambda:DeleteFunction",
        principal_service="sns.amazonaws.com",
        source_account=OTHER,
    )
