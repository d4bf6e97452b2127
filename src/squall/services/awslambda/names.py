"""Function and layer names, ARNs and qualifiers, as Lambda accepts and reports them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from squall.core.errors import ServiceError

LATEST = "$LATEST"
_NAME = r"[a-zA-Z0-9_-]{1,64}"
_QUALIFIER = r"\$LATEST|[a-zA-Z0-9_-]{1,128}"
_FUNCTION_ARN = re.compile(
    rf"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):function:"
    rf"(?P<name>{_NAME})(?::(?P<qualifier>{_QUALIFIER}))?$"
)
_PARTIAL_ARN = re.compile(
    rf"^(?P<account>\d{{12}}):function:(?P<name>{_NAME})(?::(?P<qualifier>{_QUALIFIER}))?$"
)
_PLAIN_NAME = re.compile(rf"^(?P<name>{_NAME})(?::(?P<qualifier>{_QUALIFIER}))?$")
_LAYER_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):layer:"
    r"(?P<name>[a-zA-Z0-9_-]+)(?::(?P<version>\d+))?$"
)
ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)[a-zA-Z0-9_-]{1,128}$")
VERSION_NUMBER = re.compile(r"^[0-9]+$")


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A function as a request names it: whose, where, which, and an optional qualifier."""

    account: str
    region: str
    name: str
    qualifier: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.account, self.region, self.name)

    @property
    def arn(self) -> str:
        return function_arn(self.account, self.region, self.name)

    def qualified_arn(self, qualifier: str | None = None) -> str:
        qualifier = qualifier or self.qualifier
        return f"{self.arn}:{qualifier}" if qualifier else self.arn


def function_arn(account: str, region: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def layer_arn(account: str, region: str, name: str, version: int | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account}:layer:{name}"
    return f"{arn}:{version}" if version is not None else arn


def parse_function(
    value: str, account: str, region: str, qualifier: str | None = None
) -> FunctionRef:
    """A `FunctionName` parameter (name, `name:qualifier`, partial or full ARN) and the
    `Qualifier` parameter, reconciled as Lambda does."""
    match = _FUNCTION_ARN.match(value) or _PARTIAL_ARN.match(value) or _PLAIN_NAME.match(value)
    if match is None:
        raise ServiceError(
            "ValidationException",
            f"1 validation error detected: Value '{value}' at 'functionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
            "(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
        )
    groups = match.groupdict()
    derived = groups.get("qualifier")
    if derived and qualifier and derived != qualifier:
        raise ServiceError(
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
        )
    return FunctionRef(
        account=groups.get("account") or account,
        region=groups.get("region") or region,
        name=groups["name"],
        qualifier=derived or qualifier,
    )


def parse_layer_version_arn(value: str) -> tuple[str, str, str, int]:
    """(account, region, name, version) of a layer version ARN; raises for anything else."""
    match = _LAYER_ARN.match(value)
    if match is None or match.group("version") is None:
        raise ServiceError(
            "ValidationException",
            f"1 validation error detected: Value '[{value}]' at 'layers' failed to satisfy "
            "constraint: Member must satisfy constraint: [Member must have length less than or "
            "equal to 140, Member must have length greater than or equal to 1, Member must "
            "satisfy regular expression pattern: "
            "(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|"
            "(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+), Member must not be null]",
        )
    return (
        match.group("account"),
        match.group("region"),
        match.group("name"),
        int(match.group("version")),
    )


def parse_layer_name(value: str, account: str, region: str) -> tuple[str, str, str]:
    """(account, region, name) from a `LayerName` parameter (a name or a layer ARN)."""
    match = _LAYER_ARN.match(value)
    if match is not None:
        return match.group("account"), match.group("region"), match.group("name")
    return account, region, value
