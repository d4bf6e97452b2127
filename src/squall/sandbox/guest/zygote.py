"""The zygote: a clean interpreter of one runtime that forks sandboxes on request.

Started once per runtime by the host (`python -m squall.sandbox.guest.zygote --fd N`), it
imports the runtime shim and boto3 up front, freezes its heap, then serves requests on a
SOCK_SEQPACKET socket. Each message is one JSON object, file descriptors ride along:

host → zygote:  {"op": "spawn", "id": ..., "config": {...}}  fds: [sandbox socket, log pipe]
zygote → host:  {"op": "ready", "pid": ..., "python": "3.11.7"}
                {"op": "spawned", "id": ..., "pid": <sandbox pid>}
                {"op": "spawn_failed", "id": ..., "error": "..."}
                {"op": "exited", "pid": ..., "status": <exit code, or -signal>}

A sandbox is cloned straight into its namespaces (`isolation.fork_into_namespaces`), so the
pid the zygote gets back is the sandbox's host pid and is reported at once, while the sandbox
goes on isolating itself and importing the handler.

In a pid namespace the sandbox's first process (pid 1, the pid the host knows) stays a minimal
init: it forks the runtime (pid 2), reaps the orphans that would otherwise stay zombies (each
one holding a pid of the sandbox's pids limit), and exits when the runtime does, which ends
every process left in the namespace. Before exiting it writes the runtime's status to a pipe
the zygote holds, and that status is the one reported: an init cannot die of a signal sent from
inside its own namespace, so its own status would not tell.
Runs on the runtime's interpreter (Python 3.9+, stdlib only).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from typing import Any

from . import isolation, python_runtime, relay, runtime_api, seccomp
from .config import GuestConfig

PR_SET_CHILD_SUBREAPER = 36
MAX_MESSAGE = 1024 * 1024


def _preload() -> None:
    """Import what every sandbox will need, so that forks start with it loaded."""
    try:
        # boto3 is importable without packaging it, as on Lambda; load it once for every fork
        import boto3  # noqa: F401, PLC0415
        import botocore.session  # noqa: PLC0415

        botocore.session.get_session().get_component("endpoint_resolver")
    except Exception:  # a runtime without boto3 still serves functions
        pass


class Zygote:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.sandboxes: set[int] = set()
        # sandbox pid -> read end of the pipe its init writes the runtime's exit status to
        self.status_pipes: dict[int, int] = {}
        # standby id -> (pid, socket): sandboxes cloned ahead of need, already in their cgroup
        self.standbys: dict[str, tuple[int, socket.socket]] = {}
        self.selector = selectors.DefaultSelector()
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)
        os.set_blocking(self.wakeup_r, False)

    def send(self, message: dict[str, Any]) -> None:
        self.control.send(json.dumps(message).encode())

    def run(self) -> None:
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.control, selectors.EVENT_READ, "control")
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, "signal")
        self.send({"op": "ready", "pid": os.getpid(), "python": sys.version.split()[0]})
        while True:
            for key, _ in self.selector.select():
                if key.data == "signal":
                    self._drain_wakeups()
                    self._reap()
                elif not self._serve_control():
                    return

    def _serve_control(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, 4)
        except InterruptedError:
            return True
        except OSError:  # the host went away (closing with a request unread resets)
            return False
        if not data:
            return False
        message = json.loads(data)
        if message.get("op") == "spawn":
            self._spawn(message, fds)
        elif message.get("op") == "standby":
            self._standby(message)
        else:
            for fd in fds:
                os.close(fd)
        return True

    def _spawn(self, message: dict[str, Any], fds: list[int]) -> None:
        sandbox_id = message["id"]
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            self.send({"op": "spawn_failed", "id": sandbox_id, "error": "expected 2 fds"})
            return
        config = message["config"]
        standby = self.standbys.pop(message.get("standby") or "", None)
        if standby is not None:
            self._assign(sandbox_id, standby, config, fds)
            return
        status_r, status_w = os.pipe()
        names = (config.get("isolation") or {}).get("namespaces", [])
        try:
            pid = isolation.fork_into_namespaces(isolation.namespace_flags(names))
        except OSError as exc:
            for fd in (*fds, status_r, status_w):
                os.close(fd)
            self.send({"op": "spawn_failed", "id": sandbox_id, "error": str(exc)})
            return
        if pid == 0:
            os.close(status_r)
            _leave_zygote(self)
            _sandbox_main(config, fds[0], fds[1], status_w=status_w)
            os._exit(70)  # not reached
        os.close(status_w)
        for fd in fds:
            os.close(fd)
        self.sandboxes.add(pid)
        self.status_pipes[pid] = status_r
        self.send({"op": "spawned", "id": sandbox_id, "pid": pid})
        self._reap()

    def _assign(
        self, sandbox_id: str, standby: tuple[int, socket.socket], config: Any, fds: list[int]
    ) -> None:
        pid, channel = standby
        try:
            socket.send_fds(channel, [json.dumps(config).encode()], fds)
        except OSError as exc:
            self.send({"op": "spawn_failed", "id": sandbox_id, "error": f"standby lost: {exc}"})
        else:
            self.send({"op": "spawned", "id": sandbox_id, "pid": pid})
        finally:
            channel.close()
            for fd in fds:
                os.close(fd)

    def _standby(self, message: dict[str, Any]) -> None:
        """Clone a sandbox ahead of need: it joins its cgroup (the slow part: moving a task
        between cgroups waits for an RCU grace period, 10-20 ms) and waits for its function."""
        standby_id = message["id"]
        names = message.get("namespaces", [])
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        status_r, status_w = os.pipe()
        try:
            pid = isolation.fork_into_namespaces(isolation.namespace_flags(names))
        except OSError as exc:
            for item in (ours, theirs):
                item.close()
            for fd in (status_r, status_w):
                os.close(fd)
            self.send({"op": "standby_failed", "id": standby_id, "error": str(exc)})
            return
        if pid == 0:
            ours.close()
            os.close(status_r)
            _leave_zygote(self)
            _standby_main(theirs, message.get("cgroup_procs", []), status_w, message.get("init"))
            os._exit(70)  # not reached
        theirs.close()
        os.close(status_w)
        self.sandboxes.add(pid)
        self.status_pipes[pid] = status_r
        self.standbys[standby_id] = (pid, ours)
        self.send({"op": "standby_created", "id": standby_id, "pid": pid})

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wakeup_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.sandboxes:
                self.sandboxes.discard(pid)
                code = os.waitstatus_to_exitcode(status)
                status_fd = self.status_pipes.pop(pid, None)
                if status_fd is not None:
                    code = _runtime_status(status_fd, code)
                self.send({"op": "exited", "pid": pid, "status": code})


def _runtime_status(fd: int, own: int) -> int:
    """The runtime's status as the sandbox's init wrote it before exiting, else `own`."""
    try:
        os.set_blocking(fd, False)
        text = os.read(fd, 64).decode().strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    finally:
        os.close(fd)
    try:
        return int(text)
    except ValueError:
        return own


def _leave_zygote(zygote: Zygote) -> None:
    """In a new sandbox: drop the zygote's signal handling and every fd it holds."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    zygote.selector.close()  # its epoll fd must not reach user code
    zygote.control.close()
    os.close(zygote.wakeup_r)
    os.close(zygote.wakeup_w)
    for fd in zygote.status_pipes.values():  # other sandboxes' business
        os.close(fd)
    zygote.status_pipes.clear()
    for _, channel in zygote.standbys.values():
        channel.close()
    zygote.standbys.clear()


def _standby_main(
    channel: socket.socket,
    cgroup_procs: list[str],
    status_w: int,
    init: dict[str, Any] | None = None,
) -> None:
    """A standby sandbox: join the cgroup now, then wait for a function to become.

    With `init` (the standby has a pid namespace of its own), the split between the init
    (pid 1) and the runtime's process happens now too, ahead of need: forking a zygote-sized
    process costs milliseconds that a cold start would otherwise wait for. The init confines
    itself as the runtime will be (`init`: uid, gid, seccomp) and only reaps; with
    `init["relay"]` the runtime's process starts the API relay now as well."""
    try:
        os.setsid()
        isolation.join_cgroup(cgroup_procs)
        runtime_status_w: int | None = status_w
        if init is not None:
            os.chdir("/")  # pivot_root moves the init along with the runtime's process
            runtime = os.fork()
            if runtime != 0:
                channel.close()
                _confine_init(init)
                _init(runtime, status_w)
            os.close(status_w)
            runtime_status_w = None
            _start_relay_early(init)
        data, fds, _, _ = socket.recv_fds(channel, MAX_MESSAGE, 2)
    except BaseException:
        os._exit(72)
    channel.close()
    if not data or len(fds) != 2:
        os._exit(0)  # the zygote went away, or stopped this standby
    _sandbox_main(json.loads(data), fds[0], fds[1], status_w=runtime_status_w)


def _start_relay_early(init: dict[str, Any]) -> None:
    """In a standby's runtime process (with a network namespace of its own): bring up `lo`
    and start the API relay now; the function's set-up finds it running."""
    relay_spec = init.get("relay")
    if not relay_spec:
        return
    isolation.bring_up_loopback()
    relay.start(("127.0.0.1", int(relay_spec["port"])), relay_spec["socket"])


def _confine_init(init: dict[str, Any]) -> None:
    """Give a standby's init the runtime's identity and syscall filter."""
    if init.get("uid") is not None and os.getuid() == 0:
        isolation.drop_privileges(int(init["uid"]), int(init.get("gid", init["uid"])))
    if init.get("seccomp"):
        seccomp.install()


def _sandbox_main(
    config_dict: dict[str, Any],
    sock_fd: int,
    log_fd: int,
    *,
    status_w: int | None,
) -> None:
    """In the new sandbox's process: isolate, then serve the function. `status_w` None: the
    process is a standby's runtime, already split from its init."""
    try:
        with contextlib.suppress(PermissionError):
            os.setsid()  # a standby already leads its session
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        config = GuestConfig.from_dict(config_dict)
        spec = config.isolation or {}
        isolation.enter(spec)
        if status_w is None:
            pass  # a standby's runtime: its init is already running
        elif "pid" in spec.get("namespaces", []):
            _split_init(status_w, sock_fd)  # returns in the runtime's process only
        else:
            os.close(status_w)
        relay_spec = spec.get("relay")
        if relay_spec:
            relay.start(("127.0.0.1", int(relay_spec["port"])), relay_spec["socket"])
    except BaseException as exc:  # the host hears of it as a spawn failure
        message = f"sandbox setup failed: {exc.__class__.__name__}: {exc}"
        os.write(2, (message + "\n" + traceback.format_exc()).encode())
        os._exit(71)
    sock = socket.socket(fileno=sock_fd)
    sock.setblocking(True)
    try:
        if config.runtime.startswith("provided"):
            # without a network namespace of its own, port 9001 would be shared by every
            # custom-runtime sandbox on the host: take any free port (the bootstrap is told)
            port = 9001 if "net" in (config.isolation or {}).get("namespaces", []) else 0
            runtime_api.serve_runtime_api(config, sock, port=port)
        else:
            python_runtime.serve(config, sock)
    except SystemExit as exc:  # sys.exit(N) in a handler: "exit status N"
        os._exit(_exit_code(exc))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def _split_init(status_w: int, sock_fd: int) -> None:
    """Fork the runtime's process, which returns; this process (pid 1) stays the init."""
    runtime = os.fork()
    if runtime == 0:
        os.close(status_w)  # only the init reports the runtime's status
        return
    os.close(sock_fd)  # the host sees the socket's end when the runtime's process ends
    _init(runtime, status_w)


def _init(runtime: int, status_w: int) -> None:
    """Reap every child until the runtime's process ends; then report its status and exit,
    which kills whatever is left in the pid namespace."""
    code = 1
    try:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == runtime:
                code = os.waitstatus_to_exitcode(status)
                break
        os.write(status_w, str(code).encode())
    finally:
        os._exit(0)


def _exit_code(exc: SystemExit) -> int:
    """The status Python itself would exit with: sys.exit() is 0, sys.exit("text") prints the
    text to stderr and is 1."""
    code = exc.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        with contextlib.suppress(Exception):
            print(code, file=sys.stderr)
        status = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    return status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--template", help="JSON: the common part of every sandbox's root")
    args = parser.parse_args()
    if args.template:
        isolation.prepare_template(json.loads(args.template))
    control = socket.socket(fileno=args.fd)
    control.setblocking(True)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _preload()
    python_runtime.prepare()
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()  # keep the collector from touching (and copying) the shared heap
    Zygote(control).run()


if __name__ == "__main__":
    main()
