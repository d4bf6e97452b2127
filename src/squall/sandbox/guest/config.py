"""The configuration the host hands to a sandbox's guest side.

Runs inside sandboxes on the function's interpreter (any Python 3.9+): stdlib only, no newer
syntax at runtime.

The host builds a `GuestConfig`, sends `to_dict()` as JSON, and the guest rebuilds it with
`GuestConfig.from_dict()`. Unknown keys are refused (the host and the guest are always the same
squall version, so an unknown key is a bug worth hearing about); `isolation` is free-form and only
carried.

For running a guest entry point as a plain process (tests, debugging), `load_process_args()`
reads the configuration and the socket from the command line or the environment:

    --config JSON | --config @PATH      or  SQUALL_GUEST_CONFIG=JSON
    --fd N                              or  SQUALL_GUEST_FD=N
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field, fields
from typing import Any

CONFIG_ENV = "SQUALL_GUEST_CONFIG"
FD_ENV = "SQUALL_GUEST_FD"

DEFAULT_TASK_ROOT = "/var/task"
DEFAULT_OPT_ROOT = "/opt"


@dataclass
class GuestConfig:
    sandbox_id: str
    function_name: str
    function_version: str = "$LATEST"
    function_arn: str = ""
    handler: str = ""
    runtime: str = ""
    memory_mb: int = 128
    timeout_s: float = 3.0
    # the complete environment of the function's process, as the host computed it
    environment: dict[str, str] = field(default_factory=dict)
    task_root: str = DEFAULT_TASK_ROOT
    opt_root: str = DEFAULT_OPT_ROOT
    log_group: str = ""
    log_stream: str = ""
    # set up by the host before the guest code runs; carried, never read here
    isolation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuestConfig:
        if not isinstance(data, dict):
            raise ValueError(f"guest config must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"guest config has unknown field(s): {', '.join(unknown)}")
        missing = [name for name in ("sandbox_id", "function_name") if not data.get(name)]
        if missing:
            raise ValueError(f"guest config lacks required field(s): {', '.join(missing)}")
        values = dict(data)
        for name in (
            "sandbox_id",
            "function_name",
            "function_version",
            "function_arn",
            "handler",
            "runtime",
            "task_root",
            "opt_root",
            "log_group",
            "log_stream",
        ):
            if name in values and not isinstance(values[name], str):
                raise ValueError(f"guest config field {name} must be a string")
        if "memory_mb" in values:
            values["memory_mb"] = _as_int("memory_mb", values["memory_mb"])
        if "timeout_s" in values:
            values["timeout_s"] = _as_float("timeout_s", values["timeout_s"])
        environment = values.get("environment", {})
        if not isinstance(environment, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
        ):
            raise ValueError("guest config field environment must map strings to strings")
        values["environment"] = dict(environment)
        isolation = values.get("isolation", {})
        if not isinstance(isolation, dict):
            raise ValueError("guest config field isolation must be an object")
        values["isolation"] = dict(isolation)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> GuestConfig:
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"guest config field {name} must be an integer")
    return int(value)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"guest config field {name} must be a number")
    return float(value)


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in argv, else None."""
    flag = "--" + name
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return None


def load_process_args(argv: list[str]) -> tuple[GuestConfig, socket.socket]:
    """The configuration and the host socket of a guest started as a process (see the module
    docstring). The two environment variables are removed once read."""
    text = option(argv, "config")
    if text is None:
        text = os.environ.get(CONFIG_ENV)
    if not text:
        raise SystemExit(f"no guest config: pass --config or set {CONFIG_ENV}")
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as handle:
            text = handle.read()
    fd_text = option(argv, "fd")
    if fd_text is None:
        fd_text = os.environ.get(FD_ENV)
    if not fd_text:
        raise SystemExit(f"no host socket: pass --fd or set {FD_ENV}")
    os.environ.pop(CONFIG_ENV, None)
    os.environ.pop(FD_ENV, None)
    config = GuestConfig.from_json(text)
    sock = socket.socket(fileno=int(fd_text))
    return config, sock
