"""Real squall servers for tests: as a subprocess (the shipped CLI) or in a thread (the edge
with services a test supplies)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from squall.core.config import Settings
from squall.server import build_app
from squall.services.base import Service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(
    endpoint: str, timeout: float = 20.0, process: subprocess.Popen | None = None
) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"squall server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/_squall/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"squall server at {endpoint} did not become healthy")


@dataclass
class RunningServer:
    endpoint: str
    data_dir: Path
    port: int
    log_path: Path | None = None
    process: subprocess.Popen | None = None  # the server process, when it is one

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""


@contextlib.contextmanager
def squall_process(
    data_dir: Path, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """`squall server` as a user starts it, on a free port."""
    port = free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "squall",
                "server",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *extra_args,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        server = RunningServer(f"http://127.0.0.1:{port}", data_dir, port, log_path, process)
        try:
            wait_healthy(server.endpoint, process=process)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def squall_thread(
    data_dir: Path, services: list[Service], **settings: object
) -> Iterator[RunningServer]:
    """The real edge and store serving real HTTP, with the services a test supplies."""
    port = free_port()
    config_holder: dict[str, uvicorn.Server] = {}
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            app = build_app(Settings(port=port, data_dir=data_dir, **settings), services)  # type: ignore[arg-type]
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host="127.0.0.1",
                    port=port,
                    lifespan="on",
                    log_level="warning",
                    http="httptools",
                )
            )
            config_holder["server"] = server
            loop.run_until_complete(server.serve())
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)

    thread = threading.Thread(target=serve, name=f"squall-test-{port}", daemon=True)
    thread.start()
    server = RunningServer(f"http://127.0.0.1:{port}", data_dir, port)
    try:
        wait_healthy(server.endpoint)
        yield server
    finally:
        if "server" in config_holder:
            config_holder["server"].should_exit = True
        thread.join(timeout=15)
        if failure:
            raise failure[0]
