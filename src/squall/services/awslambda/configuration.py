"""A function version's configuration: checked on the way in, rendered as Lambda reports it."""

from __future__ import annotations

from typing import Any

import orjson

from squall.core.errors import ServiceError
from squall.sandbox.runtimes import SUPPORTED, is_supported

from .errors import invalid
from .names import LATEST, function_arn
from .registry import Function, Version

MAX_TIMEOUT_S = 900
MAX_MEMORY_MB = 10240
MAX_ENV_BYTES = 4096
MAX_LAYERS = 5
DEFAULT_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128
DEFAULT_TMP_MB = 512

# Variables Lambda sets itself; a function may not override them.
RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

# Members the caller may set, with the defaults a new function gets.
DEFAULTS: dict[str, Any] = {
    "Description": "",
    "Timeout": DEFAULT_TIMEOUT_S,
    "MemorySize": DEFAULT_MEMORY_MB,
    "TracingConfig": {"Mode": "PassThrough"},
    "Architectures": ["x86_64"],
    "EphemeralStorage": {"Size": DEFAULT_TMP_MB},
    "PackageType": "Zip",
}


def check_settings(request: dict[str, Any]) -> None:
    """The limits the model does not express (or expresses more loosely than Lambda does)."""
    timeout = request.get("Timeout")
    if timeout is not None and timeout > MAX_TIMEOUT_S:
        raise _range_error(timeout, "timeout", f"less than or equal to {MAX_TIMEOUT_S}")
    memory = request.get("MemorySize")
    if memory is not None and memory > MAX_MEMORY_MB:
        raise _range_error(memory, "memorySize", f"less than or equal to {MAX_MEMORY_MB}")
    runtime = request.get("Runtime")
    if runtime is not None and not is_supported(runtime):
        raise invalid(
            f"The runtime parameter of {runtime} is not supported by squall; "
            f"supported runtimes: {', '.join(SUPPORTED)}."
        )
    variables = (request.get("Environment") or {}).get("Variables")
    if variables:
        check_environment(variables)
    if request.get("PackageType") == "Image":
        raise invalid("squall runs .zip deployment packages; container images are not supported.")
    architectures = request.get("Architectures")
    if architectures and len(architectures) != 1:
        raise invalid("Only one architecture may be specified.")
    layers = request.get("Layers")
    if layers is not None and len(layers) > MAX_LAYERS:
        raise invalid(f"Cannot reference more than {MAX_LAYERS} layers.")


def check_environment(variables: dict[str, str]) -> None:
    reserved = sorted(name for name in variables if name in RESERVED_ENV)
    if reserved:
        raise invalid(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not "
            f"supported for modification. Reserved keys used in this request: "
            f"{', '.join(reserved)}"
        )
    measured = orjson.dumps(variables)
    if len(measured) > MAX_ENV_BYTES:
        raise invalid(
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: "
            f"{measured.decode()}"
        )


def _range_error(value: Any, member: str, constraint: str) -> ServiceError:
    return ServiceError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: Member must have value {constraint}",
        status=400,
    )


def apply_settings(config: dict[str, Any], request: dict[str, Any]) -> None:
    """Copy the settable members of a Create/UpdateFunctionConfiguration request."""
    for member in (
        "Runtime",
        "Role",
        "Handler",
        "Description",
        "Timeout",
        "MemorySize",
        "TracingConfig",
        "EphemeralStorage",
        "Architectures",
        "PackageType",
        "KMSKeyArn",
    ):
        if member in request:
            config[member] = request[member]
    if "Environment" in request:
        variables = (request["Environment"] or {}).get("Variables")
        if variables is None or variables:
            config["Environment"] = {"Variables": variables or {}}
        else:
            config.pop("Environment", None)
    if "DeadLetterConfig" in request:
        target = (request["DeadLetterConfig"] or {}).get("TargetArn")
        if target:
            config["DeadLetterConfig"] = {"TargetArn": target}
        else:
            config.pop("DeadLetterConfig", None)
    if "LoggingConfig" in request:
        logging_config = dict(config.get("LoggingConfig") or {})
        logging_config.update(request["LoggingConfig"] or {})
        config["LoggingConfig"] = logging_config
    if "VpcConfig" in request:
        config["VpcConfig"] = {
            "SubnetIds": request["VpcConfig"].get("SubnetIds", []),
            "SecurityGroupIds": request["VpcConfig"].get("SecurityGroupIds", []),
            "VpcId": "",
        }


def log_group(config: dict[str, Any], name: str) -> str:
    return (config.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{name}"


# What Get* adds to a configuration; ListFunctions and ListVersionsByFunction leave it out.
_DETAIL_ONLY = ("State", "LastUpdateStatus", "RuntimeVersionConfig")


def render(
    function: Function,
    version: Version,
    *,
    qualified: bool = False,
    alias: str | None = None,
    listing: bool = False,
) -> dict[str, Any]:
    """The `FunctionConfiguration` Lambda returns for a version.

    `$LATEST` is reported under the unqualified ARN, except where Lambda lists versions
    (`qualified`); published versions carry their number, or the alias they were asked for by.
    """
    config = render_detail(function, version, qualified=qualified, alias=alias)
    if listing:
        for member in _DETAIL_ONLY:
            config.pop(member, None)
    return config


def render_detail(
    function: Function, version: Version, *, qualified: bool, alias: str | None
) -> dict[str, Any]:
    config = dict(version.config)
    number = version.number
    if alias is not None:
        config["FunctionArn"] = function_arn(
            function.account, function.region, function.name, alias
        )
    elif number == LATEST and not qualified:
        config["FunctionArn"] = function.arn
    else:
        config["FunctionArn"] = function_arn(
            function.account, function.region, function.name, number
        )
    config["FunctionName"] = function.name
    logging_config = {"LogFormat": "Text", **(config.get("LoggingConfig") or {})}
    if logging_config["LogFormat"] == "JSON":
        logging_config.setdefault("ApplicationLogLevel", "INFO")
        logging_config.setdefault("SystemLogLevel", "INFO")
    logging_config.setdefault("LogGroup", log_group(config, function.name))
    config["LoggingConfig"] = logging_config
    config["State"] = "Active"
    config["LastUpdateStatus"] = "Successful"
    config["SnapStart"] = {"ApplyOn": "None", "OptimizationStatus": "Off"}
    runtime = config.get("Runtime")
    if runtime:
        config["RuntimeVersionConfig"] = {
            "RuntimeVersionArn": f"arn:aws:lambda:{function.region}::runtime:squall-{runtime}"
        }
    return config


def same_code_and_settings(a: Version, b: Version) -> bool:
    """Whether publishing `a` would add nothing over version `b`."""
    volatile = {"Version", "RevisionId", "LastModified", "Description", "FunctionArn"}
    left = {k: v for k, v in a.config.items() if k not in volatile}
    right = {k: v for k, v in b.config.items() if k not in volatile}
    return a.code == b.code and a.layers == b.layers and left == right
