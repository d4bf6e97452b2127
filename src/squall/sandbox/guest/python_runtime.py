"""The Lambda Python runtime contract, served in-process inside a sandbox.

Runs on the function's interpreter (any Python 3.9+): stdlib only, no newer syntax at runtime.

A sandbox child forked from the zygote calls `serve(config, sock)` once isolation is in place. It
sets the process up as Lambda's Python runtime does (environment, working directory, sys.path,
stdout/stderr, the root logger), imports the handler once (init), answers READY or INIT_ERROR, then
serves INVOKE frames one at a time until SHUTDOWN or the end of the socket (see `wire`).

What a function sees, as on Lambda:
- the log handler on the root logger writes `[LEVEL]\\t<UTC time>Z\\t<request id>\\t<message>`,
  one line per record, newlines inside a record (message, traceback) turned into `\\r` (the
  sandbox's log pipe takes `\\r` as a newline inside one log event); the request id is the
  current invocation's, the empty string during init (as Lambda's runtime prints it). The root
  level is left at Python's default (WARNING) unless AWS_LAMBDA_LOG_LEVEL is set, exactly as
  Lambda's runtime does: `logging.info` needs `setLevel` on Lambda too.
  AWS_LAMBDA_LOG_FORMAT=JSON switches records and error reports to Lambda's JSON log lines.
- an unhandled error is written to stdout as one `[ERROR] Type: message\\rTraceback ...` record
  (trace lines indented with no-break spaces, as Lambda's runtime does) and returned as the
  error document {errorMessage, errorType, requestId, stackTrace}.
- init failures: Runtime.MalformedHandlerName, Runtime.BuiltInModuleConflict,
  Runtime.ImportModuleError (any ImportError, including one raised by the module's own imports),
  Runtime.UserCodeSyntaxError, Runtime.HandlerNotFound; any other exception raised while the
  module is imported is reported under its own class name with its stack trace, as on Lambda.
  SystemExit and KeyboardInterrupt are not caught: they leave `serve` (the process then exits
  and the host reports Runtime.ExitError).
- an empty INVOKE payload is the event `{}` (what Lambda hands a function invoked without
  payload); a payload that is not JSON is a Runtime.UnmarshalError.
- results are encoded as Lambda's runtime does: `json` with default separators, Decimal as a
  number, bytes passed through unchanged, non-ASCII escaped except on python3.12 and later.
"""

from __future__ import annotations

import contextlib
import decimal
import importlib
import json
import logging
import math
import os
import socket
import sys
import time
import traceback
from typing import Any, Callable

from squall.sandbox.guest import wire
from squall.sandbox.guest.config import GuestConfig, load_process_args

DEFAULT_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
DEFAULT_LANG = "en_US.UTF-8"
DEFAULT_TZ = ":UTC"

TRACE_ENV = "_X_AMZN_TRACE_ID"
# What Lambda's runtime logs (as a WARNING record) when init fails.
UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function "
    "code. However, in rare cases, a Lambda runtime update can cause unexpected function "
    "behavior. For functions using managed runtimes, runtime updates can be triggered by a "
    "function change, or can be applied automatically. To determine if the runtime has been "
    "updated, check the runtime version in the INIT_START log entry. If this error correlates "
    "with a change in the runtime version, you may be able to mitigate this error by "
    "temporarily rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
ERROR_INDENT = "\u00a0"  # Lambda indents trace lines of error records with no-break spaces

# The request id log records carry: the current invocation's, "" before the first one.
_request_id = ""
# Set up by serve(): the result/error encoder, and the stream the runtime's own records go to.
_encode: Callable[[Any], str] = json.JSONEncoder().encode
_log_stream: Any = None
_json_logs = False


class _Fault(Exception):
    """A failure the runtime reports under a Runtime.* type, with no Python traceback."""

    def __init__(self, error_type: str, message: str, stack_trace: list[str] | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []


# -- the context object ---------------------------------------------------------------------------


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id: str | None = None, pool_id: str | None = None):
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, fields: dict[str, Any]):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def __repr__(self) -> str:
        inner = ",".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"Client([{inner}])"


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, fields: dict[str, Any]):
        client = fields.get("client")
        self.client = Client(client) if isinstance(client, dict) else client
        self.custom = fields.get("custom")
        self.env = fields.get("env")

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


class LambdaContext:
    """The `context` argument of a handler, with the attributes Lambda's Python runtime gives it.

    As on Lambda, memory_limit_in_mb is a string (it comes from the environment) and identity is
    always an object (its fields None without a Cognito identity)."""

    __slots__ = (
        "_deadline_ms",
        "aws_request_id",
        "client_context",
        "function_name",
        "function_version",
        "identity",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
        "tenant_id",
    )

    def __init__(
        self,
        request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        *,
        client_context: ClientContext | None,
        identity: CognitoIdentity,
        tenant_id: str | None,
        static: tuple[str, str, str, str, str],
    ):
        self.aws_request_id = request_id
        self._deadline_ms = deadline_ms
        self.invoked_function_arn = invoked_function_arn
        self.client_context = client_context
        self.identity = identity
        self.tenant_id = tenant_id
        (
            self.function_name,
            self.function_version,
            self.memory_limit_in_mb,
            self.log_group_name,
            self.log_stream_name,
        ) = static

    def get_remaining_time_in_millis(self) -> int:
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, message: Any) -> None:
        stream = _log_stream or sys.stdout
        stream.write(str(message))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity},"
            f"tenant_id={self.tenant_id}])"
        )


def _parse_json_field(value: Any, what: str) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except Exception as exc:
        raise _Fault(
            "Runtime.LambdaContextUnmarshalError", f"Unable to parse {what} JSON: {exc}"
        ) from None
    return parsed if isinstance(parsed, dict) else None


# -- logging --------------------------------------------------------------------------------------


def _timestamp(created: float) -> str:
    millis = int((created - int(created)) * 1000)
    return f"{time.strftime(TIME_FORMAT, time.gmtime(created))}.{millis:03d}Z"


class _TextFormatter(logging.Formatter):
    """`[LEVEL]\\t<time>Z\\t<request id>\\t<message>` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = message + "\n" + record.exc_text
        if record.stack_info:
            message = message + "\n" + self.formatStack(record.stack_info)
        when = time.strftime(TIME_FORMAT, time.gmtime(record.created))
        text = message.replace("\n", "\r")
        return f"[{record.levelname}]\t{when}.{int(record.msecs):03d}Z\t{_request_id}\t{text}"


_STANDARD_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "aws_request_id",
    "tenant_id",
}


class _JsonFormatter(logging.Formatter):
    """Lambda's JSON log lines: timestamp, level, message, logger, requestId, the exception's
    errorType/errorMessage/stackTrace/location, and any extra attributes of the record."""

    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10
        document: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": logging.getLevelName(level),
            "message": record.getMessage(),
            "logger": record.name,
        }
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            document["stackTrace"] = traceback.format_tb(exc_info[2])
            document["errorType"] = exc_info[0].__name__
            document["errorMessage"] = str(exc_info[1])
        document["requestId"] = _request_id
        if exc_info and exc_info[0] is not None:
            document["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_FIELDS and key not in document and value is not None:
                document[key] = value
        return json.dumps(document, ensure_ascii=False, default=str)


class _LambdaLogHandler(logging.StreamHandler):
    """The handler Lambda's runtime puts on the root logger (recognisable by its class name)."""


def _setup_logging(stream: Any, json_format: bool, level_name: str | None) -> None:
    global _log_stream, _json_logs
    _log_stream = stream
    _json_logs = json_format
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, _LambdaLogHandler):
            root.removeHandler(existing)
    handler = _LambdaLogHandler(stream)
    handler.setFormatter(_JsonFormatter() if json_format else _TextFormatter())
    root.addHandler(handler)
    if level_name:
        name = level_name.upper()
        name = "DEBUG" if name == "TRACE" else name
        level = logging.getLevelName(name)
        if isinstance(level, int):
            root.setLevel(level)


def _error_record(error: dict[str, Any]) -> str:
    """The log line of an unhandled error, as Lambda's runtime writes it."""
    if _json_logs:
        document = {"timestamp": _timestamp(time.time()), "level": "ERROR"}
        document.update(error)
        return _encode(document) + "\n"
    error_type = error.get("errorType") or ""
    message = error.get("errorMessage") or ""
    head = "[ERROR]"
    if error_type:
        head += " " + error_type
    if message:
        head += (":" if error_type else "") + " " + message
    lines = [head]
    stack = error.get("stackTrace")
    if stack is not None:
        lines.append("Traceback (most recent call last):")
        for entry in stack:
            if not entry:
                lines.append("")
                continue
            for line in entry.splitlines():
                stripped = line.lstrip(" ")
                lines.append(ERROR_INDENT * (len(line) - len(stripped)) + stripped)
    return "\r".join(lines).replace("\n", "\r") + "\n"


def _log_error(error: dict[str, Any]) -> None:
    stream = _log_stream or sys.stdout
    # a broken log pipe must not keep the error from the host
    with contextlib.suppress(Exception):
        stream.write(_error_record(error))


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()


def _line_buffered(stream: Any) -> Any:
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(encoding="utf-8", line_buffering=True)
        except Exception:
            with contextlib.suppress(Exception):
                reconfigure(line_buffering=True)
    return stream


# -- results and errors ---------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        # Lambda's runtime writes a Decimal as the number it holds
        if value.is_nan():
            return math.nan
        if value.is_finite() and value == value.to_integral_value() and value.adjusted() < 64:
            return int(value)
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _lambda_version(execution_env: str | None) -> tuple[int, int]:
    """The Python version a runtime name stands for (`AWS_Lambda_python3.12`), else ours."""
    version = (sys.version_info[0], sys.version_info[1])
    prefix = "AWS_Lambda_python"
    if execution_env and execution_env.startswith(prefix):
        try:
            major, minor = execution_env[len(prefix) :].split(".", 1)
            version = (int(major), int(minor))
        except ValueError:
            pass
    return version


def _make_encoder(execution_env: str | None) -> Callable[[Any], str]:
    """Lambda's runtime escapes non-ASCII in responses up to python3.11, not from python3.12."""
    ensure_ascii = _lambda_version(execution_env) < (3, 12)
    return json.JSONEncoder(ensure_ascii=ensure_ascii, default=_json_default).encode


_prepared = False


def prepare() -> None:
    """The function-independent set-up, done once in the zygote so that every fork shares it
    instead of copying the pages it would touch (about 1 ms and 0.3 MB per sandbox):
    line-buffered stdio, the response encoder for this interpreter, the text log handler."""
    global _encode, _prepared
    _encode = _make_encoder(None)
    stream = _line_buffered(sys.stdout)
    _line_buffered(sys.stderr)
    _setup_logging(stream, False, None)
    _prepared = True


def _to_bytes(document: Any) -> bytes:
    text = _encode(document)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escape them
        return json.dumps(document, default=_json_default).encode("ascii")


def _marshal(result: Any) -> bytes:
    if isinstance(result, bytes):
        return result
    try:
        return _to_bytes(result)
    except Exception as exc:
        raise _Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None


def _unmarshal(payload: bytes) -> Any:
    if not payload:
        return {}
    try:
        return json.loads(payload)
    except Exception as exc:
        raise _Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from None


def _exception_error(exc: BaseException, request_id: str) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    start = 0
    while start < len(frames) and frames[start].filename == _RUNTIME_FILE:
        start += 1
    if start < len(frames):
        frames = frames[start:]
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__} object>"
    return {
        "errorMessage": message,
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }


def _fault_error(fault: _Fault, request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": fault.message,
        "errorType": fault.error_type,
        "requestId": request_id,
        "stackTrace": fault.stack_trace,
    }


# -- init -----------------------------------------------------------------------------------------


def _setup_process(config: GuestConfig) -> None:
    environment = dict(config.environment)
    environment.setdefault("PATH", DEFAULT_PATH)
    environment.setdefault("LANG", DEFAULT_LANG)
    environment.setdefault("TZ", DEFAULT_TZ)
    tz_changed = os.environ.get("TZ") != environment["TZ"]
    os.environ.clear()
    os.environ.update(environment)
    if tz_changed and hasattr(time, "tzset"):
        time.tzset()  # the zygote already runs with TZ=:UTC, Lambda's default
    os.chdir(config.task_root)

    python = "python{}.{}".format(*sys.version_info[:2])
    front = [
        config.task_root,
        os.path.join(config.opt_root, "python"),
        os.path.join(config.opt_root, "python", "lib", python, "site-packages"),
    ]
    # No importlib.invalidate_caches(): the new entries have no finders cached yet, the old
    # ones notice changes by directory mtime, and invalidating would copy (COW) a good part
    # of the zygote's import state into every sandbox (~0.5 MB each).
    sys.path[:] = front + [entry for entry in sys.path if entry not in front]

    global _encode
    execution_env = environment.get("AWS_EXECUTION_ENV")
    if not _prepared or _lambda_version(execution_env) != sys.version_info[:2]:
        _encode = _make_encoder(execution_env)
    if not _prepared:
        _line_buffered(sys.stdout)
        _line_buffered(sys.stderr)
    json_format = (environment.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"
    level = environment.get("AWS_LAMBDA_LOG_LEVEL")
    if not _prepared or json_format or level:
        _setup_logging(sys.stdout, json_format, level)


def load_handler(handler: str) -> Callable[..., Any]:
    """Import the handler's module and find the function, raising `_Fault` with Lambda's words."""
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise _Fault(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        where = f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}'
        raise _Fault(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            [where],
        ) from None
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise _Fault(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        ) from None


# -- serving --------------------------------------------------------------------------------------


def serve(config: GuestConfig, sock: socket.socket) -> None:
    """Run the function's init, then serve invocations until SHUTDOWN or the socket's end."""
    started = time.perf_counter()
    _setup_process(config)
    try:
        handler = load_handler(config.handler)
    except Exception as exc:
        error = _fault_error(exc, "") if isinstance(exc, _Fault) else _exception_error(exc, "")
        logging.warning(UNHANDLED_WARNING)
        _log_error(error)
        _flush_stdio()
        meta = {
            "errorType": error["errorType"],
            "errorMessage": error["errorMessage"],
            "stackTrace": error["stackTrace"],
        }
        with contextlib.suppress(OSError):
            wire.send(sock, wire.INIT_ERROR, meta, _to_bytes(error))
        return
    init_ms = (time.perf_counter() - started) * 1000.0
    _flush_stdio()
    try:
        wire.send(sock, wire.READY, {"initDurationMs": round(init_ms, 3)})
    except OSError:
        return
    _serve_invocations(config, sock, handler)
    _flush_stdio()


def _serve_invocations(config: GuestConfig, sock: socket.socket, handler: Callable) -> None:
    global _request_id
    environ = os.environ
    recv = wire.recv
    encode = wire.encode
    flush = _flush_stdio
    static = (
        config.function_name,
        config.function_version,
        str(config.memory_mb),
        config.log_group,
        config.log_stream,
    )
    default_arn = config.function_arn
    timeout_ms = int(config.timeout_s * 1000)
    invoke_kind = wire.INVOKE
    shutdown_kind = wire.SHUTDOWN
    while True:
        try:
            kind, meta, payload = recv(sock)
        except (wire.WireError, OSError, ValueError):
            return
        if kind != invoke_kind:
            if kind == shutdown_kind:
                return
            continue
        request_id = meta.get("requestId") or ""
        _request_id = request_id
        trace_id = meta.get("traceId")
        if trace_id:
            environ[TRACE_ENV] = trace_id
        elif TRACE_ENV in environ:
            del environ[TRACE_ENV]
        deadline_ms = meta.get("deadlineMs") or int(time.time() * 1000) + timeout_ms
        error = None
        try:
            client_context = _parse_json_field(meta.get("clientContext"), "Client Context")
            identity = _parse_json_field(meta.get("identity"), "Cognito Identity")
            context = LambdaContext(
                request_id,
                deadline_ms,
                meta.get("invokedFunctionArn") or default_arn,
                client_context=(
                    ClientContext(client_context) if client_context is not None else None
                ),
                identity=CognitoIdentity(
                    identity.get("cognitoIdentityId"), identity.get("cognitoIdentityPoolId")
                )
                if identity is not None
                else CognitoIdentity(),
                tenant_id=meta.get("tenantId"),
                static=static,
            )
            event = _unmarshal(payload)
            body = _marshal(handler(event, context))
        except _Fault as fault:
            error = _fault_error(fault, request_id)
        except Exception as exc:
            error = _exception_error(exc, request_id)
        if error is None:
            frame = encode(wire.RESULT, {"requestId": request_id}, body)
        else:
            _log_error(error)
            frame = encode(
                wire.ERROR,
                {"requestId": request_id, "errorType": error["errorType"]},
                _to_bytes(error),
            )
        flush()
        try:
            sock.sendall(frame)
        except OSError:
            return


_RUNTIME_FILE = serve.__code__.co_filename


def main(argv: list[str] | None = None) -> None:
    """`python -m squall.sandbox.guest.python_runtime [--config JSON|@PATH] [--fd N]`."""
    config, sock = load_process_args(sys.argv[1:] if argv is None else argv)
    try:
        serve(config, sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
