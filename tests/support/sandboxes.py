"""Helpers for driving real sandboxes from synchronous tests.

`LoopThread` runs one asyncio event loop in a background thread for a whole test module, so
that a module-scoped `SandboxManager` (one zygote per interpreter) serves every test;
`write_function` lays out a function's code directory readable by the sandbox's uid;
`function_spec` builds a `FunctionSpec` with a unique name; `Harness` wraps a manager
with synchronous create/invoke/destroy.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import threading
import uuid
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from squall.sandbox.manager import SandboxManager
from squall.sandbox.results import InvokeResult
from squall.sandbox.sandbox import Sandbox
from squall.sandbox.spec import FunctionSpec

T = TypeVar("T")
ACCOUNT = "000000000000"
HOST_RUNTIME = "python{}.{}".format(*sys.version_info[:2])


class LoopThread:
    """An event loop running in a daemon thread; `run(coro)` waits for the coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="sandbox-test-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


def write_function(directory: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write `files` (relative path -> text, dedented, or bytes) into `directory`, readable by
    every uid (the sandbox runs as an unprivileged one); a file named `bootstrap` is executable.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    for name, content in files.items():
        path = directory / name
        parent = path.parent
        parent.mkdir(parents=True, exist_ok=True)
        while parent != directory:
            os.chmod(parent, 0o755)
            parent = parent.parent
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content).lstrip("\n"))
        else:
            path.write_bytes(content)
        os.chmod(path, 0o755 if path.name == "bootstrap" else 0o644)
    return directory


def function_spec(
    code_dir: Path,
    *,
    handler: str = "app.handler",
    runtime: str = HOST_RUNTIME,
    name: str | None = None,
    version: str = "$LATEST",
    **fields: Any,
) -> FunctionSpec:
    name = name or f"fn-{uuid.uuid4().hex[:10]}"
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    return FunctionSpec(
        name=name,
        version=version,
        arn=arn,
        runtime=runtime,
        handler=handler,
        code_dir=str(code_dir),
        **fields,
    )


def request_id() -> str:
    return str(uuid.uuid4())


class Harness:
    """A started `SandboxManager` driven from synchronous test code through a `LoopThread`."""

    def __init__(self, loop: LoopThread, manager: SandboxManager) -> None:
        self.loop = loop
        self.manager = manager

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return self.loop.run(coro, timeout)

    def create(self, spec: FunctionSpec) -> Sandbox:
        return self.run(self.manager.create(spec))

    def invoke(
        self,
        sandbox: Sandbox,
        event: Any = None,
        *,
        payload: bytes | None = None,
        request: str | None = None,
        **kwargs: Any,
    ) -> InvokeResult:
        """One invocation with `event` as JSON (or raw `payload`); `request` is its id."""
        body = payload if payload is not None else json.dumps(event or {}).encode()
        return self.run(sandbox.invoke(request or request_id(), body, **kwargs))

    def destroy(self, sandbox: Sandbox) -> None:
        self.run(sandbox.destroy())

    def call(self, spec: FunctionSpec, event: Any = None) -> InvokeResult:
        """Cold-start a sandbox for `spec`, invoke it once, destroy it."""
        sandbox = self.create(spec)
        try:
            return self.invoke(sandbox, event)
        finally:
            self.destroy(sandbox)


def document(result: InvokeResult) -> Any:
    """The invocation's payload as JSON."""
    return json.loads(result.payload)
