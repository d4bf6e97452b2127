"""Lambda runtime identifiers and the host interpreters that serve them.

A `pythonX.Y` runtime runs on `pythonX.Y` from PATH when the host has it. Otherwise it falls
back to the interpreter squall itself runs on (documented: a function written for 3.9 runs on
3.11 here, which Python's compatibility makes work for nearly all code), and the fallback is
reported so that `squall doctor` and the start-up log can say so. Custom runtimes
(`provided.*`) run the package's `bootstrap` under the same interpreter's Runtime API server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PYTHON_RUNTIMES = ("python3.9", "python3.10", "python3.11", "python3.12", "python3.13")
CUSTOM_RUNTIMES = ("provided.al2023", "provided.al2")
SUPPORTED = PYTHON_RUNTIMES + CUSTOM_RUNTIMES


@dataclass(frozen=True)
class Interpreter:
    runtime: str
    executable: str
    version: str  # "3.11"
    exact: bool  # the runtime's own version, not a fallback


def is_supported(runtime: str) -> bool:
    return runtime in SUPPORTED


def zygote_key(runtime: str) -> str:
    """Runtimes that share an interpreter share a zygote."""
    return interpreter_for(runtime).executable


@cache
def interpreter_for(runtime: str) -> Interpreter:
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    if runtime.startswith("python"):
        wanted = runtime.removeprefix("python")
        if wanted == own:
            return Interpreter(runtime, sys.executable, own, True)
        for candidate in _candidates(runtime, wanted):
            probed = _probe(candidate)
            if probed is not None and probed[0] == wanted:
                return Interpreter(runtime, probed[1], wanted, True)
    exact = runtime.startswith("provided")
    return Interpreter(runtime, sys.executable, own, exact)


def _candidates(runtime: str, version: str) -> list[str]:
    """`pythonX.Y` on PATH, then pyenv's installations of X.Y."""
    found = [path for path in [shutil.which(runtime)] if path]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/{runtime}"))
    return found


def _probe(executable: str) -> tuple[str, str] | None:
    """(version, real executable) of an interpreter; launchers such as pyenv shims resolved."""
    code = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"
    try:
        output = subprocess.run(
            [executable, "-c", code], capture_output=True, text=True, timeout=20, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return (output[0], output[1]) if len(output) == 2 else None
