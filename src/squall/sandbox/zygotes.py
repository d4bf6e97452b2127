"""Host side of the zygotes: one long-lived process per interpreter that forks sandboxes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import squall

log = logging.getLogger(__name__)

ExitCallback = Callable[[int, int], None]
MAX_MESSAGE = 1024 * 1024


class ZygoteError(RuntimeError):
    pass


class ZygoteProcess:
    """A running zygote; `spawn` asks it to fork a sandbox and answers the sandbox's pid."""

    def __init__(
        self,
        executable: str,
        on_exit: ExitCallback,
        extra_path: list[str] | None = None,
        template: dict[str, Any] | None = None,
    ) -> None:
        self.executable = executable
        self.extra_path = extra_path or []
        self.template = template
        self.on_exit = on_exit
        self.process: subprocess.Popen[bytes] | None = None
        self.python = ""
        self._control: socket.socket | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._pending: dict[str, asyncio.Future[int]] = {}

    async def start(self, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        source_root = str(Path(squall.__file__).resolve().parent.parent)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join([source_root, *self.extra_path]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
        }
        command = [
            self.executable,
            "-m",
            "squall.sandbox.guest.zygote",
            "--fd",
            str(child.fileno()),
        ]
        if self.template is not None:
            command += ["--template", json.dumps(self.template)]
        self.process = subprocess.Popen(
            command,
            pass_fds=[child.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        parent.setblocking(False)
        self._control = parent
        self._ready = loop.create_future()
        loop.add_reader(parent.fileno(), self._on_readable)
        try:
            hello = await asyncio.wait_for(self._ready, timeout)
        except TimeoutError:
            await self.stop()
            raise ZygoteError(f"zygote for {self.executable} did not start") from None
        self.python = hello.get("python", "")
        log.debug(
            "zygote %s (python %s) ready as pid %s", self.executable, self.python, hello["pid"]
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def spawn(
        self,
        sandbox_id: str,
        config: dict[str, Any],
        fds: list[int],
        standby: str | None = None,
    ) -> int:
        """Fork a sandbox (or hand the function to standby `standby`); its host pid."""
        message = {"op": "spawn", "id": sandbox_id, "config": config}
        if standby is not None:
            message["standby"] = standby
        return await self._request(sandbox_id, message, fds)

    async def standby(
        self,
        standby_id: str,
        cgroup_procs: list[str],
        namespaces: list[str],
        init: dict[str, Any] | None = None,
    ) -> int:
        """Clone a standby sandbox that joins its cgroup now and waits for a function. With
        `init` (uid, gid, seccomp), a standby with a pid namespace also forks its init now."""
        message: dict[str, Any] = {
            "op": "standby",
            "id": standby_id,
            "cgroup_procs": cgroup_procs,
            "namespaces": namespaces,
        }
        if init is not None:
            message["init"] = init
        return await self._request(standby_id, message, [])

    async def _request(self, request_id: str, body: dict[str, Any], fds: list[int]) -> int:
        if self._control is None or not self.alive:
            raise ZygoteError("zygote is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message = json.dumps(body).encode()
        try:
            socket.send_fds(self._control, [message], fds)
        except OSError as exc:
            self._pending.pop(request_id, None)
            raise ZygoteError(f"zygote refused the spawn request: {exc}") from exc
        return await future

    def _on_readable(self) -> None:
        assert self._control is not None
        while True:
            try:
                data = self._control.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._handle(json.loads(data))

    def _handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(message)
        elif op in ("spawned", "standby_created"):
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(int(message["pid"]))
        elif op in ("spawn_failed", "standby_failed"):
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_exception(ZygoteError(message.get("error", "spawn failed")))
        elif op == "exited":
            self.on_exit(int(message["pid"]), int(message["status"]))

    def _lost(self) -> None:
        if self._control is not None:
            asyncio.get_running_loop().remove_reader(self._control.fileno())
        error = ZygoteError(f"zygote for {self.executable} exited")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)

    async def stop(self) -> None:
        if self._control is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self._control.fileno())
            self._control.close()
            self._control = None
        if self.process is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.process.wait), 5)
            except TimeoutError:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
