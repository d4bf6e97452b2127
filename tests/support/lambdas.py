"""Deploying test functions to a squall server through boto3, as users do."""

from __future__ import annotations

import io
import json
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
RUNTIME = "python3.11"


def zip_of(files: dict[str, str | bytes], *, modes: dict[str, int] | None = None) -> bytes:
    """A deployment package holding `files` (path → source); `modes` sets unix modes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = textwrap.dedent(content) if isinstance(content, str) else content
            archive.writestr(info, data)
    return buffer.getvalue()


def handler_zip(source: str, module: str = "app") -> bytes:
    return zip_of({f"{module}.py": source})


def unique(prefix: str = "fn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(
    lam: Any,
    source: str,
    *,
    name: str | None = None,
    handler: str = "app.handler",
    runtime: str = RUNTIME,
    **extra: Any,
) -> dict[str, Any]:
    """Create a function from handler source (module `app`) and return CreateFunction's answer."""
    return lam.create_function(
        FunctionName=name or unique(),
        Runtime=runtime,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": handler_zip(source)},
        **extra,
    )


def invoke_json(lam: Any, name: str, event: Any = None, **extra: Any) -> tuple[dict, Any]:
    """Invoke synchronously; (the raw response, the decoded payload)."""
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **extra)
    body = response["Payload"].read()
    return response, json.loads(body) if body else None


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; its last answer, or AssertionError."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


# A handler that records what it received as tags on a "recorder" function, through the
# squall API the sandbox reaches at AWS_ENDPOINT_URL: how tests observe asynchronous work.
RECORDER_SOURCE = """
import json, os
import boto3

def handler(event, context):
    lam = boto3.client("lambda")
    key = event.get("id") or context.aws_request_id
    lam.tag_resource(Resource=os.environ["RECORDER_ARN"], Tags={key: json.dumps(event)[:250]})
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"recorded": key}
"""
