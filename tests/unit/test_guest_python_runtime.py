"""The in-sandbox Python runtime, as a real process driven over the wire protocol."""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from squall.sandbox.guest import wire
from squall.sandbox.guest.config import GuestConfig
from tests.support.guest import (
    LOG_LINE,
    PYTHON_RUNTIME,
    RUNTIME_API,
    GuestProcess,
    function_config,
    round_trips,
    write_files,
)

PY = "python{}.{}".format(*sys.version_info[:2])
TRACEBACK = "Traceback (most recent call last):"
NBSP = "\u00a0"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

Start = Callable[..., GuestProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Write a function's files into a fresh task root and start a guest on it."""
    guests: list[GuestProcess] = []

    def start(
        files: dict[str, str],
        handler: str = "app.handler",
        *,
        ready: bool = True,
        module: str = PYTHON_RUNTIME,
        args: tuple[str, ...] = (),
        executable: tuple[str, ...] = (),
        **config_kwargs: Any,
    ) -> GuestProcess:
        task_root = write_files(tmp_path / f"task{len(guests)}", files, executable)
        config = function_config(task_root, handler, **config_kwargs)
        guest = GuestProcess(module, config, args)
        guests.append(guest)
        if ready:
            reply = guest.wait_ready()
            assert reply.kind == wire.READY, (reply, guest.logs())
        return guest

    yield start
    for guest in guests:
        guest.close()


def log_records(guest: GuestProcess) -> list[dict[str, str]]:
    return [match.groupdict() for line in guest.logs() if (match := LOG_LINE.match(line))]


# -- config -----------------------------------------------------------------------------------


def test_config_round_trip_and_strictness(tmp_path: Path) -> None:
    data = function_config(tmp_path, "app.handler")
    data["isolation"] = {"cgroup": "/sys/fs/cgroup/x", "uid": 1000}
    config = GuestConfig.from_dict(data)
    assert config.to_dict() == {**data, "opt_root": "/opt"}
    assert GuestConfig.from_json(config.to_json()) == config
    assert GuestConfig.from_dict({"sandbox_id": "s", "function_name": "f"}).task_root == (
        "/var/task"
    )
    with pytest.raises(ValueError, match="unknown field"):
        GuestConfig.from_dict({**data, "timeout": 3})
    with pytest.raises(ValueError, match="sandbox_id"):
        GuestConfig.from_dict({"function_name": "f"})
    with pytest.raises(ValueError, match="environment"):
        GuestConfig.from_dict({**data, "environment": {"A": 1}})
    with pytest.raises(ValueError, match="memory_mb"):
        GuestConfig.from_dict({**data, "memory_mb": "128"})


# -- init and context -------------------------------------------------------------------------


def test_ready_reports_init_duration(start: Start) -> None:
    guest = start(
        {"app.py": "import time\ntime.sleep(0.05)\ndef handler(e, c):\n    pass\n"}, ready=False
    )
    reply = guest.wait_ready()
    assert reply.kind == wire.READY
    assert isinstance(reply.meta["initDurationMs"], float)
    assert reply.meta["initDurationMs"] >= 50.0


CONTEXT_APP = """
def handler(event, context):
    cc = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity": [
            context.identity.cognito_identity_id,
            context.identity.cognito_identity_pool_id,
        ],
        "client_context": None if cc is None else {
            "installation_id": cc.client.installation_id,
            "app_title": cc.client.app_title,
            "app_package_name": cc.client.app_package_name,
            "custom": cc.custom,
            "env": cc.env,
        },
    }
"""


def test_context_fields(start: Start) -> None:
    guest = start({"app.py": CONTEXT_APP})
    config = guest.config
    reply = guest.invoke({}, request_id="req-1")
    assert reply.kind == wire.RESULT
    assert reply.meta == {"requestId": "req-1"}
    assert reply.json() == {
        "aws_request_id": "req-1",
        "function_name": "fn",
        "function_version": "$LATEST",
        "invoked_function_arn": config["function_arn"],
        "memory_limit_in_mb": "256",  # a string on Lambda: it comes from the environment
        "log_group_name": "/aws/lambda/fn",
        "log_stream_name": config["log_stream"],
        "identity": [None, None],  # always an object on Lambda
        "client_context": None,
    }

    client_context = {
        "client": {"installation_id": "inst-1", "app_title": "Title"},
        "custom": {"k": "v"},
        "env": {"platform": "android"},
    }
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    alias_arn = config["function_arn"] + ":live"
    reply = guest.invoke(
        {},
        request_id="req-2",
        client_context=json.dumps(client_context),
        identity=json.dumps(identity),
        invoked_function_arn=alias_arn,
    )
    result = reply.json()
    assert result["invoked_function_arn"] == alias_arn
    assert result["identity"] == ["id-1", "pool-1"]
    assert result["client_context"] == {
        "installation_id": "inst-1",
        "app_title": "Title",
        "app_package_name": None,
        "custom": {"k": "v"},
        "env": {"platform": "android"},
    }


def test_remaining_time_decreases_and_never_goes_negative(start: Start) -> None:
    guest = start(
        {
            "app.py": (
                "import time\n"
                "def handler(event, context):\n"
                "    first = context.get_remaining_time_in_millis()\n"
                "    time.sleep(0.05)\n"
                "    return [first, context.get_remaining_time_in_millis()]\n"
            )
        }
    )
    first, second = guest.invoke({}, timeout_s=3).json()
    assert isinstance(first, int)
    assert 2500 < first <= 3000
    assert second <= first - 45
    past = int(time.time() * 1000) - 1000
    assert guest.invoke({}, deadline_ms=past).json() == [0, 0]


ENV_APP = """
import os, sys
import boto3  # the platform's own, after the function's paths

def handler(event, context):
    return {"environ": dict(os.environ), "path": sys.path[:3], "cwd": os.getcwd(),
            "layer": __import__("layer_mod").WHERE, "site": __import__("site_mod").WHERE,
            "shadowed": __import__("both").WHERE}
"""


def test_environment_cwd_and_sys_path(start: Start, tmp_path: Path) -> None:
    opt = write_files(
        tmp_path / "opt",
        {
            "python/layer_mod.py": "WHERE = 'opt/python'\n",
            "python/both.py": "WHERE = 'opt/python'\n",
            f"python/lib/{PY}/site-packages/site_mod.py": "WHERE = 'site-packages'\n",
        },
    )
    guest = start(
        {"app.py": ENV_APP, "both.py": "WHERE = 'task'\n"},
        opt_root=opt,
        variables={"MY_SETTING": "on"},
    )
    task_root = guest.config["task_root"]
    result = guest.invoke({}).json()
    # exactly the host's environment, plus sane defaults for what it left out
    expected = dict(guest.config["environment"])
    expected.setdefault("PATH", "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin")
    expected.setdefault("LANG", "en_US.UTF-8")
    assert result["environ"] == expected
    assert result["environ"]["MY_SETTING"] == "on"
    assert result["cwd"] == task_root
    assert result["path"] == [
        task_root,
        f"{opt}/python",
        f"{opt}/python/lib/{PY}/site-packages",
    ]
    assert (result["layer"], result["site"], result["shadowed"]) == (
        "opt/python",
        "site-packages",
        "task",
    )

    traced = guest.invoke({}, trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    assert traced.json()["environ"]["_X_AMZN_TRACE_ID"] == (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    )
    assert "_X_AMZN_TRACE_ID" not in guest.invoke({}).json()["environ"]


def test_module_state_persists_between_invocations(start: Start) -> None:
    guest = start(
        {
            "app.py": (
                "import time\nLOADED = time.time()\ncount = 0\n"
                "def handler(event, context):\n"
                "    global count\n    count += 1\n    return [count, LOADED]\n"
            )
        }
    )
    results = [guest.invoke({}).json() for _ in range(3)]
    assert [count for count, _ in results] == [1, 2, 3]
    assert len({loaded for _, loaded in results}) == 1


def test_handler_in_nested_directories(start: Start) -> None:
    guest = start(
        {"src/handlers/api.py": "def main(event, context):\n    return event['x'] * 2\n"},
        "src/handlers/api.main",
    )
    assert guest.invoke({"x": 21}).payload == b"42"


# -- logs ---------------------------------------------------------------------------------------


def test_log_line_format_and_request_ids(start: Start) -> None:
    guest = start(
        {
            "app.py": (
                "import logging\n"
                "logger = logging.getLogger()\n"
                "logger.setLevel(logging.INFO)\n"
                "logging.getLogger('init').warning('during init')\n"
                "def handler(event, context):\n"
                "    logger.info('hello %s', event['name'])\n"
            )
        }
    )
    before = time.time()
    reply = guest.invoke({"name": "world"}, request_id="8f5e4a55-1111-2222-3333-444455556666")
    assert reply.kind == wire.RESULT
    assert reply.payload == b"null"
    records = log_records(guest)
    assert records[0] == {
        "level": "WARNING",
        "time": records[0]["time"],
        "request_id": "",  # init: no request id, as Lambda's runtime prints it
        "message": "during init",
    }
    assert records[1]["level"] == "INFO"
    assert records[1]["request_id"] == "8f5e4a55-1111-2222-3333-444455556666"
    assert records[1]["message"] == "hello world"
    logged = datetime.strptime(records[1]["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    logged = logged.replace(tzinfo=UTC).timestamp()
    assert before - 1 < logged < time.time() + 1


def test_root_level_is_warning_unless_configured(start: Start) -> None:
    app = {
        "app.py": (
            "import logging\n"
            "def handler(event, context):\n"
            "    logging.debug('debug-record')\n"
            "    logging.info('info-record')\n"
            "    logging.warning('warning-record')\n"
        )
    }
    guest = start(app)
    guest.invoke({})
    assert [r["message"] for r in log_records(guest)] == ["warning-record"]

    guest = start(app, variables={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
    guest.invoke({})
    assert [r["message"] for r in log_records(guest)] == [
        "debug-record",
        "info-record",
        "warning-record",
    ]


def test_multi_line_record_with_traceback_is_one_line(start: Start) -> None:
    guest = start(
        {
            "app.py": (
                "import logging\n"
                "def handler(event, context):\n"
                "    try:\n"
                "        {}['missing']\n"
                "    except KeyError:\n"
                "        logging.exception('failed\\nbadly')\n"
                "    return 'done'\n"
            )
        }
    )
    request_id = guest.send_invoke({})
    assert guest.recv().payload == b'"done"'
    lines = guest.logs()
    assert len(lines) == 1, lines
    record = LOG_LINE.match(lines[0])
    assert record is not None
    assert record["level"] == "ERROR"
    assert record["request_id"] == request_id
    assert record["message"].startswith("failed\rbadly\r" + TRACEBACK + "\r  File ")
    assert record["message"].endswith("\rKeyError: 'missing'")


def test_json_log_format(start: Start) -> None:
    guest = start(
        {
            "app.py": (
                "import logging\n"
                "logger = logging.getLogger('app')\n"
                "def handler(event, context):\n"
                "    logger.debug('hidden')\n"
                "    logger.info('structured', extra={'order': 7})\n"
                "    try:\n"
                "        1 / 0\n"
                "    except ZeroDivisionError:\n"
                "        logger.exception('math')\n"
                "    raise RuntimeError('fail')\n"
            )
        },
        variables={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"},
    )
    request_id = guest.send_invoke({})
    assert guest.recv().kind == wire.ERROR
    info, exception, unhandled = (json.loads(line) for line in guest.logs())
    assert info == {
        "timestamp": info["timestamp"],
        "level": "INFO",
        "message": "structured",
        "logger": "app",
        "requestId": request_id,
        "order": 7,
    }
    assert info["timestamp"].endswith("Z")
    assert exception["errorType"] == "ZeroDivisionError"
    assert exception["errorMessage"] == "division by zero"
    assert exception["location"].endswith("app.py:handler:9")
    assert unhandled["level"] == "ERROR"
    assert unhandled["errorType"] == "RuntimeError"
    assert unhandled["requestId"] == request_id


def test_output_is_flushed_before_the_reply(start: Start) -> None:
    guest = start(
        {
            "app.py": (
                "import sys\n"
                "def handler(event, context):\n"
                "    print('partial-stdout', end='')\n"
                "    print(' and the rest of it')\n"
                "    sys.stderr.write('on stderr\\n')\n"
                "    print('unterminated', end='')\n"
                "    sys.stderr.write('stderr unterminated')\n"
                "    return 'ok'\n"
            )
        }
    )
    assert guest.invoke({}).payload == b'"ok"'
    # read once, without waiting: everything was in the pipe before the reply was sent
    raw = guest.raw_logs()
    assert "partial-stdout and the rest of it\n" in raw
    assert "on stderr\n" in raw
    assert "unterminated" in raw
    assert "stderr unterminated" in raw


# -- errors -------------------------------------------------------------------------------------


ERROR_APP = """import json

def helper():
    raise ValueError("boom")

def handler(event, context):
    helper()
"""


def test_handler_exception(start: Start) -> None:
    guest = start({"app.py": ERROR_APP})
    app = f"{guest.config['task_root']}/app.py"
    request_id = guest.send_invoke({})
    reply = guest.recv()
    assert reply.kind == wire.ERROR
    assert reply.meta == {"requestId": request_id, "errorType": "ValueError"}
    stack = [
        f'  File "{app}", line 7, in handler\n    helper()\n',
        f'  File "{app}", line 4, in helper\n    raise ValueError("boom")\n',
    ]
    document = reply.json()
    assert document == {
        "errorMessage": "boom",
        "errorType": "ValueError",
        "requestId": request_id,
        "stackTrace": stack,
    }
    assert list(document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert guest.logs() == [
        "\r".join(
            [
                "[ERROR] ValueError: boom",
                TRACEBACK,
                f'{NBSP * 2}File "{app}", line 7, in handler',
                f"{NBSP * 4}helper()",
                f'{NBSP * 2}File "{app}", line 4, in helper',
                f'{NBSP * 4}raise ValueError("boom")',
            ]
        )
    ]
    # the sandbox stays usable
    assert guest.invoke({}).kind == wire.ERROR


def test_marshal_error(start: Start) -> None:
    guest = start({"app.py": "def handler(event, context):\n    return {'s': {1, 2}}\n"})
    request_id = guest.send_invoke({})
    reply = guest.recv()
    message = "Unable to marshal response: Object of type set is not JSON serializable"
    assert reply.kind == wire.ERROR
    assert reply.meta == {"requestId": request_id, "errorType": "Runtime.MarshalError"}
    assert reply.json() == {
        "errorMessage": message,
        "errorType": "Runtime.MarshalError",
        "requestId": request_id,
        "stackTrace": [],
    }
    assert guest.logs() == [f"[ERROR] Runtime.MarshalError: {message}\r{TRACEBACK}"]


RESULTS_APP = """import decimal

def handler(event, context):
    kind = event["kind"]
    if kind == "none":
        return None
    if kind == "decimal":
        return {"int": decimal.Decimal("42"), "frac": decimal.Decimal("1.5")}
    if kind == "unicode":
        return {"text": "h\\u00e9llo \\u2603"}
    if kind == "bytes":
        return b"\\x00raw"
    if kind == "string":
        return "plain"
    return event
"""


def test_result_encoding(start: Start) -> None:
    guest = start({"app.py": RESULTS_APP}, runtime="python3.11")
    assert guest.invoke({"kind": "none"}).payload == b"null"
    assert guest.invoke({"kind": "decimal"}).payload == b'{"int": 42, "frac": 1.5}'
    assert guest.invoke({"kind": "unicode"}).payload == b'{"text": "h\\u00e9llo \\u2603"}'
    assert guest.invoke({"kind": "bytes"}).payload == b"\x00raw"
    assert guest.invoke({"kind": "string"}).payload == b'"plain"'
    # from python3.12, Lambda's runtime leaves non-ASCII unescaped
    guest = start({"app.py": RESULTS_APP}, runtime="python3.12")
    assert guest.invoke({"kind": "unicode"}).payload == '{"text": "héllo ☃"}'.encode()


def test_event_decoding(start: Start) -> None:
    guest = start({"app.py": "def handler(event, context):\n    return event\n"})
    assert guest.invoke(payload=b"").payload == b"{}"
    assert guest.invoke(payload=b'[1, "two", null]').payload == b'[1, "two", null]'
    reply = guest.invoke(payload=b"{nope")
    assert reply.kind == wire.ERROR
    assert reply.meta["errorType"] == "Runtime.UnmarshalError"
    assert reply.json()["errorMessage"] == (
        "Unable to unmarshal input: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )


INIT_FAILURES = [
    pytest.param(
        {"app.py": "def handler(e, c):\n    pass\n"},
        "app",
        "Runtime.MalformedHandlerName",
        "Bad handler 'app': not enough values to unpack (expected 2, got 1)",
        id="malformed",
    ),
    pytest.param(
        {"other.py": ""},
        "app.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'app'",
        id="no-module",
    ),
    pytest.param(
        {"app.py": "import not_installed_pkg\n"},
        "app.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'not_installed_pkg'",
        id="import-inside",
    ),
    pytest.param(
        {"pkg/api.py": ""},
        "pkg/missing.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'pkg/missing': No module named 'pkg.missing'",
        id="nested-missing",
    ),
    pytest.param(
        {"app.py": "def other(e, c):\n    pass\n"},
        "app.nope",
        "Runtime.HandlerNotFound",
        "Handler 'nope' missing on module 'app'",
        id="handler-not-found",
    ),
    pytest.param(
        {},
        "sys.handler",
        "Runtime.BuiltInModuleConflict",
        "Cannot use built-in module sys as a handler module",
        id="builtin",
    ),
]


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), INIT_FAILURES)
def test_init_errors(
    start: Start, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    guest = start(files, handler, ready=False)
    reply = guest.recv()
    assert reply.kind == wire.INIT_ERROR
    assert reply.meta == {"errorType": error_type, "errorMessage": message, "stackTrace": []}
    assert reply.json() == {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": "",
        "stackTrace": [],
    }
    assert guest.wait_exit() == 0
    lines = guest.logs()
    assert lines[-1] == f"[ERROR] {error_type}: {message}\r{TRACEBACK}"
    warning = LOG_LINE.match(lines[0])
    assert warning is not None
    assert warning["level"] == "WARNING"
    assert warning["message"].startswith("LAMBDA_WARNING: Unhandled exception.")


def test_syntax_error(start: Start) -> None:
    guest = start({"app.py": "import os\n\nx = = 1\n"}, ready=False)
    app = f"{guest.config['task_root']}/app.py"
    reply = guest.recv()
    assert reply.kind == wire.INIT_ERROR
    message = "Syntax error in module 'app': invalid syntax (app.py, line 3)"
    stack = [f'  File "{app}" Line 3\n    x = = 1\n']
    assert reply.json() == {
        "errorMessage": message,
        "errorType": "Runtime.UserCodeSyntaxError",
        "requestId": "",
        "stackTrace": stack,
    }
    assert guest.wait_exit() == 0
    assert guest.logs()[-1] == (
        f"[ERROR] Runtime.UserCodeSyntaxError: {message}\r{TRACEBACK}\r"
        f'{NBSP * 2}File "{app}" Line 3\r{NBSP * 4}x = = 1'
    )


def test_exception_while_importing(start: Start) -> None:
    guest = start({"app.py": "import os\nTABLE = os.environ['TABLE_NAME']\n"}, ready=False)
    app = f"{guest.config['task_root']}/app.py"
    reply = guest.recv()
    assert reply.kind == wire.INIT_ERROR
    assert reply.meta["errorType"] == "KeyError"
    document = reply.json()
    assert (document["errorType"], document["errorMessage"], document["requestId"]) == (
        "KeyError",
        "'TABLE_NAME'",
        "",
    )
    # (on 3.11+ the entry also carries the caret line format_list draws)
    entry = f"  File \"{app}\", line 2, in <module>\n    TABLE = os.environ['TABLE_NAME']\n"
    assert any(frame.startswith(entry) for frame in document["stackTrace"])
    assert "python_runtime.py" not in "".join(document["stackTrace"])
    assert guest.logs()[-1].startswith(f"[ERROR] KeyError: 'TABLE_NAME'\r{TRACEBACK}\r")


# -- lifetime -----------------------------------------------------------------------------------


def test_shutdown_ends_the_process(start: Start) -> None:
    guest = start({"app.py": "def handler(e, c):\n    return 1\n"})
    assert guest.invoke({}).payload == b"1"
    assert guest.shutdown() == 0


def test_end_of_socket_ends_the_process(start: Start) -> None:
    guest = start({"app.py": "def handler(e, c):\n    return 1\n"})
    guest.sock.close()
    assert guest.wait_exit() == 0


# -- parity with AWS's runtime interface client -------------------------------------------------

LOGGING_APP = """import logging
logging.getLogger().setLevel(logging.INFO)
logging.getLogger("init").warning("during init")

def handler(event, context):
    print("printed", context.aws_request_id)
    logging.getLogger("x").info("info %s", 1)
    return {"ok": True, "text": "h\u00e9"}
"""

PARITY_CASES = {
    "logs": ({"app.py": LOGGING_APP}, "app.handler"),
    "exception": ({"app.py": ERROR_APP}, "app.handler"),
    "marshal": ({"app.py": "def handler(e, c):\n    return {1, 2}\n"}, "app.handler"),
    "import": ({"app.py": "import not_installed_pkg\n"}, "app.handler"),
    "not-found": ({"app.py": "x = 1\n"}, "app.nope"),
    "malformed": ({"app.py": "x = 1\n"}, "app"),
    "syntax": ({"app.py": "x = = 1\n"}, "app.handler"),
    "at-import": ({"app.py": "raise ValueError('at import')\n"}, "app.handler"),
}


@pytest.mark.skipif(
    importlib.util.find_spec("awslambdaric") is None,
    reason="awslambdaric (AWS's Python runtime interface client, PyPI) is not installed",
)
@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_same_errors_and_logs_as_awslambdaric(start: Start, case: str) -> None:
    files, handler = PARITY_CASES[case]
    outcomes = []
    for module in (PYTHON_RUNTIME, RUNTIME_API):
        bootstrap = f'#!/bin/sh\nexec {sys.executable} -m awslambdaric "$_HANDLER"\n'
        guest = start(
            {**files, "bootstrap": bootstrap},
            handler,
            ready=False,
            module=module,
            args=("--port", "0"),
            executable=("bootstrap",),
        )
        reply = guest.recv()
        if reply.kind == wire.READY:
            guest.send_invoke({}, request_id="parity-request")
            reply = guest.recv()
        task_root = guest.config["task_root"]
        document = json.loads(reply.payload.decode().replace(task_root, "<root>"))
        errors = [
            TIMESTAMP.sub("<time>", line.replace(task_root, "<root>")) for line in guest.logs()
        ]
        outcomes.append((reply.kind, document, errors))
        guest.close()
    ours, theirs = outcomes
    # frames of importlib differ between a -m module and an import from a function: compare
    # the function's own frames
    if case == "at-import":
        for _, document, errors in outcomes:
            document["stackTrace"] = [t for t in document["stackTrace"] if "<root>" in t]
            errors[:] = [e.split("\r")[0] for e in errors]
    assert ours[2], "no log lines"
    assert ours == theirs


# -- every supported interpreter ------------------------------------------------------------------

VERSIONS_APP = """import logging, sys
logging.getLogger().setLevel(logging.INFO)
state = []

def handler(event, context):
    if event.get("fail"):
        raise ValueError("boom")
    if event.get("unmarshalable"):
        return object()
    state.append(1)
    logging.info("hello")
    return {"version": "%d.%d" % sys.version_info[:2], "count": len(state),
            "path": sys.path[0], "memory": context.memory_limit_in_mb,
            "remaining": context.get_remaining_time_in_millis() > 0}
"""


@pytest.mark.parametrize("version", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_every_supported_interpreter(
    tmp_path: Path, interpreters: dict[str, str], version: str
) -> None:
    python = interpreters.get(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    root = write_files(tmp_path / "task", {"app.py": VERSIONS_APP})
    config = function_config(root, runtime=f"python{version}")
    with GuestProcess(PYTHON_RUNTIME, config, python=python) as guest:
        assert guest.wait_ready().kind == wire.READY, guest.logs()
        for count in (1, 2):
            request_id = guest.send_invoke({})
            reply = guest.recv()
            assert reply.kind == wire.RESULT, reply
            assert reply.json() == {
                "version": version,
                "count": count,
                "path": str(root),
                "memory": "256",
                "remaining": True,
            }
        record = LOG_LINE.match(guest.logs()[-1])
        assert record is not None
        assert (record["request_id"], record["message"]) == (request_id, "hello")
        failed = guest.invoke({"fail": True})
        assert failed.meta["errorType"] == "ValueError"
        assert failed.json()["stackTrace"][0].startswith(f'  File "{root}/app.py", line 7')
        unmarshalable = guest.invoke({"unmarshalable": True})
        assert unmarshalable.meta["errorType"] == "Runtime.MarshalError"
        assert guest.shutdown() == 0

    root = write_files(tmp_path / "broken", {"app.py": "import missing_dependency\n"})
    with GuestProcess(PYTHON_RUNTIME, function_config(root), python=python) as guest:
        reply = guest.recv()
        assert reply.kind == wire.INIT_ERROR
        assert reply.meta["errorMessage"] == (
            "Unable to import module 'app': No module named 'missing_dependency'"
        )


def test_warm_round_trip_is_fast(start: Start) -> None:
    guest = start({"app.py": "def handler(event, context):\n    return None\n"})
    round_trips(guest, 200)  # warm up
    median = statistics.median(round_trips(guest, 1000))
    # the target is 0.2 ms; the bound leaves room for a loaded CI machine
    assert median < 0.001, f"median warm round trip {median * 1000:.3f} ms"
