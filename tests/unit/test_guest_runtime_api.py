"""The in-sandbox Lambda Runtime API for custom runtimes, with real bootstrap processes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.sandbox.guest import wire
from tests.support.guest import (
    RUNTIME_API,
    GuestProcess,
    function_config,
    write_files,
)

Start = Callable[..., GuestProcess]

# A bootstrap in Python with the stdlib's http.client, for the tests that look at the protocol.
PY_BOOTSTRAP = """#!{python}
import http.client, json, os, signal, sys, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
connection = http.client.HTTPConnection(host, int(port))

def call(method, path, body=None, headers=None):
    connection.request(method, "/2018-06-01/runtime" + path, body=body, headers=headers or {{}})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()

def next_invocation():
    status, headers, body = call("GET", "/invocation/next")
    assert status == 200, (status, body)
    return headers["Lambda-Runtime-Aws-Request-Id"], headers, body

{body}
"""


def py_bootstrap(body: str) -> str:
    return PY_BOOTSTRAP.format(python=sys.executable, body=body)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start the runtime API on a free port for a function whose files (a bootstrap among them)
    are written into a fresh task root."""
    guests: list[GuestProcess] = []

    def start(
        files: dict[str, str],
        *,
        handler: str = "function.handler",
        ready: bool = True,
        executable: tuple[str, ...] = ("bootstrap",),
        **config_kwargs: Any,
    ) -> GuestProcess:
        task_root = write_files(tmp_path / f"task{len(guests)}", files, executable)
        config_kwargs.setdefault("runtime", "provided.al2023")
        config = function_config(task_root, handler, **config_kwargs)
        guest = GuestProcess(RUNTIME_API, config, ["--port", "0"])
        guests.append(guest)
        if ready:
            reply = guest.wait_ready()
            assert reply.kind == wire.READY, (reply, guest.logs())
        return guest

    yield start
    for guest in guests:
        guest.close()


def pid_alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for some reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


CURL_BOOTSTRAP = """#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
echo "init api=${AWS_LAMBDA_RUNTIME_API} cwd=$(pwd) handler=${_HANDLER}"
HEADERS="$(mktemp)"
while true; do
  EVENT="$(curl -sS -D "$HEADERS" "$API/invocation/next")"
  ID="$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$HEADERS" | tr -d '\\r' | cut -d' ' -f2)"
  echo "invoked $ID"
  curl -sS -X POST "$API/invocation/$ID/response" -d "{\\"echo\\": $EVENT}" >/dev/null
done
"""

URLLIB_BOOTSTRAP = """#!{python}
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
print("init api=%s cwd=%s handler=%s" % (
    os.environ["AWS_LAMBDA_RUNTIME_API"], os.getcwd(), os.environ["_HANDLER"]), flush=True)
while True:
    with urllib.request.urlopen(api + "/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    print("invoked " + request_id, flush=True)
    body = json.dumps({{"echo": event}}).encode()
    urllib.request.urlopen(urllib.request.Request(
        api + "/invocation/" + request_id + "/response", data=body, method="POST")).read()
"""


def test_shell_bootstrap_loop(start: Start) -> None:
    if shutil.which("curl"):
        bootstrap = CURL_BOOTSTRAP
    else:  # no curl here: the same loop with urllib
        bootstrap = URLLIB_BOOTSTRAP.format(python=sys.executable)
    guest = start({"bootstrap": bootstrap})
    task_root = guest.config["task_root"]
    request_ids = []
    for number in range(3):
        request_id = guest.send_invoke({"n": number, "text": "héllo"})
        reply = guest.recv()
        assert reply.kind == wire.RESULT
        assert reply.meta == {"requestId": request_id}
        assert reply.json() == {"echo": {"n": number, "text": "héllo"}}
        request_ids.append(request_id)
    init = guest.wait_for_log("^init ")
    assert init.startswith("init api=127.0.0.1:")
    assert init.endswith(f" cwd={task_root} handler=function.handler")
    for request_id in request_ids:
        guest.wait_for_log(f"^invoked {request_id}$")
    assert guest.shutdown() == 0


HEADERS_BODY = """
request_id, headers, body = next_invocation()
report = {"headers": headers, "event": json.loads(body), "env": dict(os.environ),
          "cwd": os.getcwd()}
call("POST", "/invocation/%s/response" % request_id, json.dumps(report))
request_id, headers, body = next_invocation()
call("POST", "/invocation/%s/response" % request_id, json.dumps({"headers": headers}))
next_invocation()
"""


def test_next_headers_and_bootstrap_environment(start: Start) -> None:
    guest = start({"bootstrap": py_bootstrap(HEADERS_BODY)}, variables={"MINE": "1"})
    config = guest.config
    deadline = int(time.time() * 1000) + 5000
    client_context = json.dumps({"custom": {"k": "v"}})
    identity = json.dumps({"cognitoIdentityId": "id", "cognitoIdentityPoolId": "pool"})
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    request_id = guest.send_invoke(
        {"hello": "world"},
        deadline_ms=deadline,
        client_context=client_context,
        identity=identity,
        trace_id=trace,
    )
    report = guest.recv().json()
    headers = report["headers"]
    assert headers["Lambda-Runtime-Aws-Request-Id"] == request_id
    assert headers["Lambda-Runtime-Deadline-Ms"] == str(deadline)
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == config["function_arn"]
    assert headers["Lambda-Runtime-Trace-Id"] == trace
    assert headers["Lambda-Runtime-Client-Context"] == client_context
    assert headers["Lambda-Runtime-Cognito-Identity"] == identity
    assert headers["Content-Type"] == "application/json"
    assert report["event"] == {"hello": "world"}
    assert report["cwd"] == config["task_root"]
    environment = report["env"]
    assert environment["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    for name, value in config["environment"].items():
        assert environment[name] == value
    assert environment["MINE"] == "1"
    assert "SQUALL_GUEST_CONFIG" not in environment

    guest.send_invoke({})
    headers = guest.recv().json()["headers"]
    for absent in (
        "Lambda-Runtime-Trace-Id",
        "Lambda-Runtime-Client-Context",
        "Lambda-Runtime-Cognito-Identity",
    ):
        assert absent not in headers


ERRORS_BODY = """
cases = [
    ("Custom.Header", b'{"errorMessage": "m1", "errorType": "Body.Type"}'),
    (None, b'{"errorMessage": "m2", "errorType": "Body.Type", "stackTrace": []}'),
    (None, b"not json at all"),
]
for error_type, body in cases:
    request_id, _, _ = next_invocation()
    headers = {"Lambda-Runtime-Function-Error-Type": error_type} if error_type else {}
    status, _, answer = call("POST", "/invocation/%s/error" % request_id, body, headers)
    print("ANSWER %d %s" % (status, answer.decode()), flush=True)
next_invocation()
"""


def test_errors_posted_by_the_runtime(start: Start) -> None:
    guest = start({"bootstrap": py_bootstrap(ERRORS_BODY)})
    expected = [
        ("Custom.Header", b'{"errorMessage": "m1", "errorType": "Body.Type"}'),
        ("Body.Type", b'{"errorMessage": "m2", "errorType": "Body.Type", "stackTrace": []}'),
        ("Unhandled", b"not json at all"),
    ]
    for error_type, body in expected:
        request_id = guest.send_invoke({})
        reply = guest.recv()
        assert reply.kind == wire.ERROR
        assert reply.meta == {"requestId": request_id, "errorType": error_type}
        assert reply.payload == body
    deadline = time.monotonic() + 5
    while True:  # the last answer may be printed after the host got its frame
        answers = [line for line in guest.logs() if line.startswith("ANSWER")]
        if len(answers) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert answers == ['ANSWER 202 {"status":"OK"}'] * 3


STATES_BODY = """
results = []
def record(method, path, body=None):
    status, _, answer = call(method, path, body)
    results.append([status, answer.decode()])
record("POST", "/invocation/early/response", b"{}")
request_id, _, _ = next_invocation()
record("POST", "/invocation/not-this-one/response", b"{}")
record("POST", "/invocation/%s/response" % request_id, b'"first"')
record("POST", "/invocation/%s/response" % request_id, b'"second"')
record("POST", "/invocation/%s/error" % request_id, b"{}")
record("POST", "/init/error", b"{}")
record("GET", "/2018-06-01/nope")
print("RESULTS " + json.dumps(results), flush=True)
next_invocation()
"""


def test_request_ids_and_state_transitions(start: Start) -> None:
    guest = start({"bootstrap": py_bootstrap(STATES_BODY)})
    request_id = guest.send_invoke({})
    reply = guest.recv()
    assert (reply.kind, reply.meta, reply.payload) == (
        wire.RESULT,
        {"requestId": request_id},
        b'"first"',
    )
    results = json.loads(guest.wait_for_log("^RESULTS ")[len("RESULTS ") :])

    def state_error(current: str, target: str) -> list[Any]:
        message = (
            f"State transition from {current} to {target} failed for runtime. "
            "Error: State transition is not allowed"
        )
        return [403, {"errorMessage": message, "errorType": "InvalidStateTransition"}]

    decoded = [
        [status, json.loads(body) if body.startswith("{") else body] for status, body in results
    ]
    assert decoded == [
        state_error("Started", "InvocationResponse"),
        [400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}],
        [202, {"status": "OK"}],
        state_error("RuntimeResponseSentState", "InvocationResponse"),
        state_error("RuntimeResponseSentState", "InvocationErrorResponse"),
        state_error("RuntimeResponseSentState", "InitError"),
        [404, "404 page not found\n"],
    ]
    # nothing else reached the host
    with pytest.raises(TimeoutError):
        guest.recv(timeout=0.2)


INIT_ERROR_BODY = """
document = {"errorMessage": "no config", "errorType": "Custom.InitFailure",
            "stackTrace": ["at init"]}
status, _, answer = call("POST", "/init/error", json.dumps(document),
                         {"Lambda-Runtime-Function-Error-Type": "Custom.InitFailure"})
print("ANSWER %d %s" % (status, answer.decode()), flush=True)
time.sleep(60)  # the sandbox stops it
"""


def test_init_error_posted_by_the_runtime(start: Start) -> None:
    guest = start({"bootstrap": py_bootstrap(INIT_ERROR_BODY)}, ready=False)
    reply = guest.recv()
    assert reply.kind == wire.INIT_ERROR
    assert reply.meta == {
        "errorType": "Custom.InitFailure",
        "errorMessage": "no config",
        "stackTrace": ["at init"],
    }
    assert json.loads(reply.payload) == {
        "errorMessage": "no config",
        "errorType": "Custom.InitFailure",
        "stackTrace": ["at init"],
    }
    began = time.monotonic()
    assert guest.wait_exit() == 0
    assert time.monotonic() - began < 3
    assert 'ANSWER 202 {"status":"OK"}' in guest.logs()


def test_bootstrap_exiting_during_init(start: Start) -> None:
    guest = start({"bootstrap": "#!/bin/sh\necho starting\nexit 3\n"}, ready=False)
    reply = guest.recv()
    message = "Runtime exited with error: exit status 3"
    assert reply.kind == wire.INIT_ERROR
    assert reply.meta == {"errorType": "Runtime.ExitError", "errorMessage": message}
    assert json.loads(reply.payload) == {"errorType": "Runtime.ExitError", "errorMessage": message}
    assert guest.wait_exit() == 0
    assert guest.logs() == ["starting"]


@pytest.mark.parametrize(
    ("ending", "description"),
    [
        ("os._exit(2)", "Runtime exited with error: exit status 2"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "Runtime exited with error: signal: killed"),
        ("os._exit(0)", "Runtime exited without providing a reason"),
    ],
)
def test_bootstrap_exiting_during_an_invocation(
    start: Start, ending: str, description: str
) -> None:
    guest = start({"bootstrap": py_bootstrap(f"next_invocation()\n{ending}\n")})
    request_id = guest.send_invoke({})
    reply = guest.recv()
    assert reply.kind == wire.ERROR
    assert reply.meta == {"requestId": request_id, "errorType": "Runtime.ExitError"}
    assert json.loads(reply.payload) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: {description}",
    }
    assert guest.wait_exit() == 0


def test_bootstrap_exiting_between_invocations_ends_the_sandbox(start: Start) -> None:
    body = (
        "request_id, _, _ = next_invocation()\n"
        'call("POST", "/invocation/%s/response" % request_id, b"1")\n'
    )
    guest = start({"bootstrap": py_bootstrap(body)})
    assert guest.invoke({}).payload == b"1"
    assert guest.wait_exit() == 0
    with pytest.raises(wire.WireError):
        wire.recv(guest.sock)


def test_no_valid_bootstrap(start: Start, tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    guest = start({"function.sh": "echo\n"}, ready=False, opt_root=opt)
    reply = guest.recv()
    task_root = guest.config["task_root"]
    message = f"Couldn't find valid bootstrap(s): [{task_root}/bootstrap {opt}/bootstrap]"
    assert reply.kind == wire.INIT_ERROR
    assert reply.meta == {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": message}
    assert guest.wait_exit() == 0

    guest = start({"bootstrap": "#!/bin/sh\n"}, ready=False, executable=())
    reply = guest.recv()
    bootstrap = f"{guest.config['task_root']}/bootstrap"
    assert reply.kind == wire.INIT_ERROR
    assert reply.meta == {
        "errorType": "Runtime.InvalidEntrypoint",
        "errorMessage": f"fork/exec {bootstrap}: permission denied",
    }


def test_bootstrap_from_opt(start: Start, tmp_path: Path) -> None:
    opt = write_files(
        tmp_path / "opt",
        {"bootstrap": py_bootstrap('next_invocation()\nprint("from opt", flush=True)\n')},
        ("bootstrap",),
    )
    guest = start({"function.sh": "echo\n"}, opt_root=opt)
    guest.send_invoke({})
    guest.wait_for_log("^from opt$")


SHUTDOWN_BOOTSTRAP = """#!/bin/sh
{trap}
sleep 60 &
echo "$$ $!" > "{pids}"
exec {python} -c "import os, urllib.request as r; \\
r.urlopen('http://%s/2018-06-01/runtime/invocation/next' % os.environ['AWS_LAMBDA_RUNTIME_API'])"
"""


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_shutdown_stops_the_bootstrap_and_its_children(
    start: Start, tmp_path: Path, ignores_sigterm: bool
) -> None:
    pids = tmp_path / f"pids-{ignores_sigterm}"
    bootstrap = SHUTDOWN_BOOTSTRAP.format(
        trap="trap '' TERM" if ignores_sigterm else "",
        pids=pids,
        python=sys.executable,
    )
    guest = start({"bootstrap": bootstrap})
    bootstrap_pid, child_pid = (int(pid) for pid in pids.read_text().split())
    assert pid_alive(bootstrap_pid)
    assert pid_alive(child_pid)
    began = time.monotonic()
    assert guest.shutdown() == 0
    assert time.monotonic() - began < 3
    assert wait_gone(bootstrap_pid)
    assert wait_gone(child_pid)


def test_end_of_socket_stops_the_bootstrap(start: Start, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    guest = start(
        {"bootstrap": SHUTDOWN_BOOTSTRAP.format(trap="", pids=pids, python=sys.executable)}
    )
    bootstrap_pid = int(pids.read_text().split()[0])
    guest.sock.close()
    assert guest.wait_exit() == 0
    assert wait_gone(bootstrap_pid)


RIC_APP = """import logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)
count = 0

def handler(event, context):
    global count
    count += 1
    logger.info("invocation %d", count)
    if event.get("fail"):
        raise RuntimeError("requested failure")
    return {"count": count, "request": context.aws_request_id,
            "memory": context.memory_limit_in_mb, "event": event}
"""


@pytest.mark.skipif(
    importlib.util.find_spec("awslambdaric") is None,
    reason="awslambdaric (AWS's Python runtime interface client, PyPI) is not installed",
)
def test_awslambdaric_as_an_unmodified_bootstrap(start: Start) -> None:
    bootstrap = f'#!/bin/sh\nexec {sys.executable} -m awslambdaric "$_HANDLER"\n'
    guest = start({"bootstrap": bootstrap, "app.py": RIC_APP}, handler="app.handler")
    for number in (1, 2):
        request_id = guest.send_invoke({"n": number})
        reply = guest.recv()
        assert reply.kind == wire.RESULT
        assert reply.json() == {
            "count": number,
            "request": request_id,
            "memory": "256",
            "event": {"n": number},
        }
    request_id = guest.send_invoke({"fail": True})
    reply = guest.recv()
    assert reply.kind == wire.ERROR
    assert reply.meta == {"requestId": request_id, "errorType": "RuntimeError"}
    document = reply.json()
    assert document["errorMessage"] == "requested failure"
    assert document["requestId"] == request_id
    guest.wait_for_log(f"^\\[INFO\\]\t[^\t]+\t{request_id}\tinvocation 3$")
    assert guest.shutdown() == 0


@pytest.mark.parametrize("version", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_every_supported_interpreter(
    tmp_path: Path, interpreters: dict[str, str], version: str
) -> None:
    python = interpreters.get(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    body = (
        "request_id, _, body = next_invocation()\n"
        'call("POST", "/invocation/%s/response" % request_id, body)\n'
        "request_id, _, body = next_invocation()\n"
        "os._exit(7)\n"
    )
    root = write_files(tmp_path / "task", {"bootstrap": py_bootstrap(body)}, ("bootstrap",))
    config = function_config(root, "function.handler", runtime="provided.al2023")
    with GuestProcess(RUNTIME_API, config, ["--port", "0"], python=python) as guest:
        assert guest.wait_ready().kind == wire.READY, guest.logs()
        assert guest.invoke({"on": version}).json() == {"on": version}
        request_id = guest.send_invoke({})
        reply = guest.recv()
        assert reply.kind == wire.ERROR
        assert json.loads(reply.payload)["errorMessage"] == (
            f"RequestId: {request_id} Error: Runtime exited with error: exit status 7"
        )
        assert guest.wait_exit() == 0
