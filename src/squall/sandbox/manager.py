"""Starts sandboxes: zygotes per interpreter, a cgroup and an isolated root per sandbox.

`SandboxManager.create(spec)` is a cold start: a cgroup is made, the runtime's zygote forks,
the fork isolates itself and imports the handler, and the sandbox is returned once its init
succeeded. What the host supports is probed once at start; missing protections degrade (no
namespaces: the code runs from its host directory; no cgroups: no memory limit beyond the
timeout) and are listed in `degraded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import os
import signal
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cgroups import Cgroup, CgroupDriver, Limits, detect_driver
from .results import SandboxUnavailable
from .rootfs import interpreter_dirs, root_binds, runtime_site
from .runtimes import interpreter_for, zygote_key
from .sandbox import Sandbox
from .spec import FunctionSpec
from .zygotes import ZygoteError, ZygoteProcess

log = logging.getLogger(__name__)

NAMESPACES = ("mount", "pid", "net", "ipc", "uts")
SANDBOX_UID = 993
SANDBOX_GID = 990
PIDS_LIMIT = 256
INIT_TIMEOUT_S = 10.0
STANDBY_MEMORY = 64 * 1024 * 1024  # until a function's MemorySize replaces it
GUEST_API_PORT = 4566
GUEST_API_SOCKET = "/run/squall/api.sock"


@dataclass
class _Standby:
    """A sandbox cloned ahead of need, already in its cgroup, waiting for its function."""

    id: str
    pid: int
    cgroup: Cgroup | None


class SandboxManager:
    def __init__(
        self,
        run_dir: Path,
        *,
        isolate: bool | None = None,
        cgroups: CgroupDriver | bool | None = True,
        endpoint_url: str = "http://127.0.0.1:4566",
        api_socket: str | None = None,
        seccomp: bool = True,
        standbys: int = 1,
    ) -> None:
        self.run_dir = run_dir
        self.endpoint_url = endpoint_url
        self.api_socket = api_socket
        self._want_isolation = isolate
        self._want_cgroups = cgroups
        self._want_seccomp = seccomp
        self.isolate = False
        self.seccomp = False
        self.cgroups: CgroupDriver | None = None
        self.degraded: list[str] = []
        self._zygotes: dict[str, ZygoteProcess] = {}
        self._zygote_lock = asyncio.Lock()
        self._by_pid: dict[int, Sandbox] = {}
        self._binds: tuple[list[dict[str, Any]], list[dict[str, str]]] | None = None
        self.standbys_per_zygote = standbys
        self._standbys: dict[str, list[_Standby]] = {}
        self._standby_pids: dict[int, _Standby] = {}
        self._refills: set[asyncio.Task[None]] = set()
        self._early_exits: dict[int, int] = {}

    @property
    def cgroup_parent(self) -> str:
        """One parent group per run dir: start-up clean-up never touches another server's."""
        digest = hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:10]
        return f"squall-{digest}"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        is_root = os.geteuid() == 0
        self.isolate = is_root if self._want_isolation is None else self._want_isolation
        if self.isolate and not is_root:
            raise SandboxUnavailable("namespaces and pivot_root need root")
        if not self.isolate:
            self.degraded.append("namespaces/pivot_root: off (not root); code runs from host paths")
        if isinstance(self._want_cgroups, bool):
            self.cgroups = detect_driver(parent=self.cgroup_parent) if self._want_cgroups else None
        else:
            self.cgroups = self._want_cgroups
        if self.cgroups is None:
            self.degraded.append("cgroups: off; no memory, pids or cpu limits")
        else:
            removed = await asyncio.to_thread(self.cgroups.cleanup_stale)
            if removed:
                log.info("removed %d stale sandbox cgroups", removed)
        self.seccomp = self._want_seccomp and self.isolate
        for line in self.degraded:
            log.warning("sandbox protection degraded: %s", line)
        self._binds = root_binds()

    async def stop(self) -> None:
        refills = list(self._refills)
        for task in refills:
            task.cancel()
        await asyncio.gather(*refills, return_exceptions=True)  # they remove their cgroups
        for standby in list(self._standby_pids.values()):
            await self._discard_standby(standby)
        for sandbox in list(self._by_pid.values()):
            await sandbox.destroy()
        for zygote in self._zygotes.values():
            await zygote.stop()
        self._zygotes.clear()
        if self.cgroups is not None and isinstance(self._want_cgroups, bool):
            await asyncio.to_thread(self.cgroups.remove_parents)

    # ------------------------------------------------------------------ sandboxes

    async def create(self, spec: FunctionSpec) -> Sandbox:
        """Cold-start a sandbox for `spec`; SandboxInitError when the function's init fails."""
        key = zygote_key(spec.runtime)
        try:
            zygote = await self._zygote(spec.runtime)
        except ZygoteError as exc:
            raise SandboxUnavailable(str(exc)) from exc
        sandbox_id = uuid.uuid4().hex
        limits = Limits(memory_bytes=spec.memory_mb * 1024 * 1024, pids=PIDS_LIMIT)
        standby = self._take_standby(key)
        if standby is not None and self.cgroups is not None and standby.cgroup is not None:
            try:
                self.cgroups.apply(standby.cgroup, limits)
            except OSError:  # the standby died meanwhile: start without one
                await self._discard_standby(standby)
                standby = None
        if standby is not None:
            cgroup = standby.cgroup
            procs_files: list[str] = []  # the standby joined its cgroup already
        else:
            cgroup = None
            if self.cgroups is not None:
                cgroup = self.cgroups.create(f"sb-{sandbox_id}", limits)
            procs_files = cgroup.procs_files if cgroup else []
        self._refill(key)
        host_sock, guest_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        log_r, log_w = os.pipe()
        log_stream = _log_stream_name(spec.version)
        config = self._guest_config(sandbox_id, spec, log_stream, procs_files)
        try:
            pid = await zygote.spawn(
                sandbox_id,
                config,
                [guest_sock.fileno(), log_w],
                standby.id if standby is not None else None,
            )
        except BaseException as exc:
            host_sock.close()
            os.close(log_r)
            if cgroup is not None:
                await asyncio.to_thread(cgroup.destroy)
            if isinstance(exc, ZygoteError):
                raise SandboxUnavailable(str(exc)) from exc
            raise
        finally:
            guest_sock.close()
            os.close(log_w)
        reader, writer = await asyncio.open_unix_connection(sock=host_sock)
        sandbox = Sandbox(
            sandbox_id,
            spec=spec,
            pid=pid,
            reader=reader,
            writer=writer,
            log_fd=log_r,
            cgroup=cgroup,
            log_stream=log_stream,
            on_destroyed=self._forget,
        )
        self._by_pid[pid] = sandbox
        if pid in self._early_exits:
            sandbox.exited(self._early_exits.pop(pid))
        try:
            await sandbox.wait_ready(max(INIT_TIMEOUT_S, spec.timeout_s))
        except asyncio.CancelledError:
            await sandbox.destroy()
            raise
        if self.cgroups is not None and cgroup is not None:
            self.cgroups.limit_cpu(cgroup, limits)
        return sandbox

    def root_binds(self) -> list[dict[str, Any]]:
        """The host paths bound into every sandbox's root (read-only)."""
        return list(self._binds[0]) if self._binds else []

    @property
    def sandboxes(self) -> list[Sandbox]:
        return list(self._by_pid.values())

    def _forget(self, sandbox: Sandbox) -> None:
        if self._by_pid.get(sandbox.pid) is sandbox:
            del self._by_pid[sandbox.pid]

    # ------------------------------------------------------------------ standbys

    def _take_standby(self, key: str) -> _Standby | None:
        waiting = self._standbys.get(key)
        if not waiting:
            return None
        standby = waiting.pop(0)
        self._standby_pids.pop(standby.pid, None)
        return standby

    def _refill(self, key: str) -> None:
        """Keep `standbys_per_zygote` standbys ready, cloned in the background."""
        missing = self.standbys_per_zygote - len(self._standbys.get(key, []))
        missing -= sum(1 for task in self._refills if task.get_name() == f"standby:{key}")
        for _ in range(max(0, missing)):
            task = asyncio.create_task(self._add_standby(key), name=f"standby:{key}")
            self._refills.add(task)
            task.add_done_callback(self._refills.discard)

    async def _add_standby(self, key: str) -> None:
        zygote = self._zygotes.get(key)
        if zygote is None or not zygote.alive:
            return
        standby_id = uuid.uuid4().hex
        cgroup = None
        if self.cgroups is not None:
            limits = Limits(memory_bytes=STANDBY_MEMORY, pids=PIDS_LIMIT)
            cgroup = await asyncio.to_thread(self.cgroups.create, f"sb-{standby_id}", limits)
        namespaces = list(NAMESPACES) if self.isolate else []
        procs = cgroup.procs_files if cgroup else []
        init = None
        if "pid" in namespaces:  # its init is confined as the runtime will be (see _isolation)
            init = {"uid": SANDBOX_UID, "gid": SANDBOX_GID, "seccomp": self.seccomp}
            if self.api_socket and "net" in namespaces:
                init["relay"] = {"port": GUEST_API_PORT, "socket": GUEST_API_SOCKET}
        try:
            pid = await zygote.standby(standby_id, procs, namespaces, init)
        except BaseException:
            if cgroup is not None:
                await asyncio.to_thread(cgroup.destroy)
            raise
        standby = _Standby(standby_id, pid, cgroup)
        self._standbys.setdefault(key, []).append(standby)
        self._standby_pids[pid] = standby

    async def _discard_standby(self, standby: _Standby) -> None:
        self._standby_pids.pop(standby.pid, None)
        for waiting in self._standbys.values():
            if standby in waiting:
                waiting.remove(standby)
        with contextlib.suppress(ProcessLookupError):
            os.kill(standby.pid, signal.SIGKILL)
        if standby.cgroup is not None:
            await asyncio.to_thread(standby.cgroup.destroy)

    def _on_exit(self, pid: int, status: int) -> None:
        if pid not in self._by_pid and pid not in self._standby_pids:
            # reported before create() registered it (both answers came in one read)
            self._early_exits[pid] = status
            return
        standby = self._standby_pids.get(pid)
        if standby is not None:  # died before it was needed: forget it
            task = asyncio.get_running_loop().create_task(self._discard_standby(standby))
            self._refills.add(task)
            task.add_done_callback(self._refills.discard)
            return
        sandbox = self._by_pid.get(pid)
        if sandbox is not None:
            sandbox.exited(status)

    async def _zygote(self, runtime: str) -> ZygoteProcess:
        # finding the interpreter may run it once (to learn its version): not on the loop
        key = await asyncio.to_thread(zygote_key, runtime)
        async with self._zygote_lock:
            zygote = self._zygotes.get(key)
            if zygote is None or not zygote.alive:
                if zygote is not None:  # it died: its standbys went with it
                    await zygote.stop()
                    for standby in list(self._standbys.get(key, [])):
                        await self._discard_standby(standby)
                executable = interpreter_for(runtime).executable
                extra = []
                if executable != sys.executable:
                    extra = [str(self._runtime_site())]
                    self._bind_interpreter(executable)
                zygote = ZygoteProcess(executable, self._on_exit, extra, self._template(key))
                await zygote.start()
                self._zygotes[key] = zygote
            return zygote

    def _template(self, key: str) -> dict[str, Any] | None:
        """The part of the sandbox root that every sandbox of a zygote shares."""
        if not self.isolate:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        return {
            "root_dir": str(self.run_dir / f"root-{digest}"),
            "binds": self._common_binds(),
            "symlinks": self._binds[1] if self._binds else [],
            "uid": SANDBOX_UID,
            "gid": SANDBOX_GID,
        }

    def _common_binds(self) -> list[dict[str, Any]]:
        binds = list(self._binds[0]) if self._binds else []
        if self.api_socket:
            binds.append({"source": self.api_socket, "target": GUEST_API_SOCKET})
        return binds

    def _bind_interpreter(self, executable: str) -> None:
        """Another interpreter's installation (its standard library) goes into the root too."""
        if self._binds is None:
            return
        present = {b["source"] for b in self._binds[0]}
        for directory in interpreter_dirs(executable):
            if directory not in present:
                self._binds[0].append({"source": directory})

    def _runtime_site(self) -> Path:
        site = runtime_site(self.run_dir / "runtime-site")
        if self._binds is not None and not any(b["source"] == str(site) for b in self._binds[0]):
            self._binds[0].append({"source": str(site)})
        return site

    # ------------------------------------------------------------------ configuration

    def _guest_config(
        self, sandbox_id: str, spec: FunctionSpec, log_stream: str, procs_files: list[str]
    ) -> dict[str, Any]:
        task_root = "/var/task" if self.isolate else spec.code_dir
        opt_root = "/opt" if self.isolate else (spec.opt_dir or "/opt")
        return {
            "sandbox_id": sandbox_id,
            "function_name": spec.name,
            "function_version": spec.version,
            "function_arn": spec.arn,
            "handler": spec.handler,
            "runtime": spec.runtime,
            "memory_mb": spec.memory_mb,
            "timeout_s": spec.timeout_s,
            "environment": self._environment(spec, log_stream, task_root),
            "task_root": task_root,
            "opt_root": opt_root,
            "log_group": spec.log_group_name,
            "log_stream": log_stream,
            "isolation": self._isolation(spec, procs_files),
        }

    def _isolation(self, spec: FunctionSpec, procs_files: list[str]) -> dict[str, Any]:
        if not self.isolate:
            return {"cgroup_procs": procs_files}
        relay = None
        if self.api_socket:
            relay = {"port": GUEST_API_PORT, "socket": GUEST_API_SOCKET}
        template = self._template(zygote_key(spec.runtime)) or {}
        return {
            "relay": relay,
            "cgroup_procs": procs_files,
            "namespaces": list(NAMESPACES),
            "root_dir": template.get("root_dir", ""),
            # only the binds under /tmp are mounted per sandbox (over its private /tmp)
            "binds": [
                b for b in self._common_binds() if b.get("target", b["source"]).startswith("/tmp/")
            ],
            "task_dir": spec.code_dir,
            "opt_dir": spec.opt_dir,
            "tmp_size_mb": spec.ephemeral_mb,
            "uid": SANDBOX_UID,
            "gid": SANDBOX_GID,
            "hostname": "localhost",
            "seccomp": self.seccomp,
        }

    def _environment(self, spec: FunctionSpec, log_stream: str, task_root: str) -> dict[str, str]:
        interpreter = interpreter_for(spec.runtime)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LD_LIBRARY_PATH": "/opt/lib",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_ENDPOINT_URL": self._endpoint_inside(),
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": os.path.dirname(os.path.dirname(__file__)),
            "PYTHONDONTWRITEBYTECODE": "1",
            "_HANDLER": spec.handler,
            "SQUALL_PYTHON_VERSION": interpreter.version,
        }
        if spec.log_format.upper() == "JSON":
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
            if spec.application_log_level:
                env["AWS_LAMBDA_LOG_LEVEL"] = spec.application_log_level
        env.update(spec.environment)
        return env

    def _endpoint_inside(self) -> str:
        """Where boto3 in a function finds squall: the relay inside a private network."""
        if self.isolate and self.api_socket:
            return f"http://127.0.0.1:{GUEST_API_PORT}"
        return self.endpoint_url


def _log_stream_name(version: str) -> str:
    day = datetime.datetime.now(datetime.UTC).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{uuid.uuid4().hex}"
