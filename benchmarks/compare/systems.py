"""Start and stop each compared system on a free loopback port, each in its own temp dir.

- squall: `python -m squall server` from this checkout;
- ministack: `pip install ministack` into its own virtualenv (made once, with this interpreter's
  `venv` module, under ~/.cache/squall-bench), started as its README says;
- moto: `pip install 'moto[server]'` likewise, `moto_server -H 127.0.0.1 -p PORT`;
- floor: a minimal HTTP echo server (a bare ASGI app under the uvicorn + httptools + uvloop stack
  squall serves on) that answers every request with its own body.

Each server runs in its own session (process group), so that stopping it also ends whatever it
started (ministack's function workers). A peer that cannot be installed or started raises
`Unavailable`; the harness reports that in its column and carries on.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("SQUALL_BENCH_CACHE", Path.home() / ".cache" / "squall-bench"))
REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 600
START_TIMEOUT_S = 60

ECHO_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


class Unavailable(RuntimeError):
    """A system could not be installed or started (the reason is the message)."""


@dataclass
class Running:
    name: str
    port: int
    process: subprocess.Popen
    workdir: Path
    startup_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tree(self) -> list[int]:
        """The server's pid and all its descendants'."""
        return process_tree(self.process.pid)

    def memory(self) -> dict[str, float]:
        """RSS and PSS summed over the process tree, in MB, and how many processes."""
        pids = self.tree()
        rss = pss = 0
        for pid in pids:
            values = _smaps_rollup(pid)
            rss += values.get("Rss", 0)
            pss += values.get("Pss", 0)
        return {"rss_mb": rss / 1024, "pss_mb": pss / 1024, "processes": len(pids)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _smaps_rollup(pid: int) -> dict[str, int]:
    """kB figures of /proc/PID/smaps_rollup (empty for a process that is gone)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, rest = line.partition(":")
            values[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return values


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wait_healthy(process: subprocess.Popen, port: int, path: str, began: float) -> float:
    """Seconds from `began` until `path` answers (200 when `path` is a health check)."""
    deadline = began + START_TIMEOUT_S
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"exited with {process.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status < 500:
                return time.perf_counter() - began
        except OSError:
            pass
        time.sleep(0.01)
    raise Unavailable(f"did not answer {path} within {START_TIMEOUT_S} s")


def ensure_venv(name: str, requirement: str, executable: str) -> Path:
    """bin/`executable` of a virtualenv holding `requirement`, installed on first use."""
    venv = CACHE / f"{name}-venv"
    binary = venv / "bin" / executable
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / f"{name}-install.log"
    try:
        with open(log, "wb") as out:
            subprocess.run(
                [sys.executable, "-m", "venv", "--clear", str(venv)],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=INSTALL_TIMEOUT_S,
            )
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=INSTALL_TIMEOUT_S,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"`pip install {requirement}` failed ({exc}); see {log}") from exc
    if not binary.exists():
        raise Unavailable(f"`pip install {requirement}` installed no `{executable}`; see {log}")
    return binary


def installed_version(name: str, package: str) -> str:
    python = CACHE / f"{name}-venv" / "bin" / "python"
    try:
        return subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _command(name: str, port: int, workdir: Path) -> tuple[list[str], dict[str, str], str]:
    """(argv, extra environment, the path that answers once it is up) for system `name`."""
    if name == "squall":
        argv = [sys.executable, "-m", "squall", "server", "--port", str(port)]
        argv += ["--data-dir", str(workdir / "data"), "--log-level", "warning"]
        return argv, {}, "/_squall/health"
    if name == "ministack":
        binary = ensure_venv("ministack", "ministack", "ministack")
        env = {
            "GATEWAY_PORT": str(port),
            "BIND_HOST": "127.0.0.1",
            "TMPDIR": str(workdir),
            "S3_DATA_DIR": str(workdir / "s3"),
            "LOG_LEVEL": "WARNING",
        }
        return [str(binary)], env, "/_ministack/health"
    if name == "moto":
        binary = ensure_venv("moto", "moto[server]", "moto_server")
        return [str(binary), "-H", "127.0.0.1", "-p", str(port)], {}, "/moto-api/"
    if name == "floor":
        (workdir / "echo_app.py").write_text(ECHO_APP)
        argv = [sys.executable, "-m", "uvicorn", "echo_app:app", "--port", str(port)]
        argv += ["--loop", "uvloop", "--http", "httptools"]
        return [*argv, "--log-level", "warning", "--no-access-log"], {}, "/"
    raise ValueError(f"unknown system {name!r}")


def stop(running: Running) -> None:
    """SIGTERM to the server, then to whatever of its process group is left."""
    process = running.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its session: workers it left behind


@contextlib.contextmanager
def started(name: str, tmp_root: Path) -> Iterator[Running]:
    """System `name` up and answering on a free loopback port, stopped afterwards."""
    workdir = tmp_root / name
    workdir.mkdir(parents=True, exist_ok=True)
    argv, extra_env, health = _command(name, 0, workdir)  # installs a peer before timing it
    port = free_port()
    argv, extra_env, health = _command(name, port, workdir)
    log = open(workdir / "server.log", "wb")  # noqa: SIM115  (closed below)
    began = time.perf_counter()
    try:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env={**os.environ, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise Unavailable(f"could not start: {exc}") from exc
    running = Running(name, port, process, workdir, 0.0)
    try:
        try:
            running.startup_s = _wait_healthy(process, port, health, began)
        except Unavailable as exc:
            tail = (workdir / "server.log").read_bytes()[-400:].decode(errors="replace")
            raise Unavailable(f"{exc}: {tail.strip()}") from exc
        yield running
    finally:
        stop(running)
        log.close()
