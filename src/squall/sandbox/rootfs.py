"""What a sandbox's root contains, computed once on the host.

The new root is a tmpfs holding read-only binds of: the system directories (/usr and its
merged-usr symlinks), the interpreter's installation, the runtime packages a Lambda function
may import without packaging them (boto3 and its dependencies) and squall's in-sandbox code,
each at its host path so that the modules the zygote pre-imported stay valid. Nothing else of
the host is visible: not its /etc (a minimal one is written), /root, /home, nor squall's data.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import squall

SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def system_entries() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Binds for real directories, symlinks for merged-usr links such as /bin -> usr/bin."""
    binds: list[dict[str, Any]] = []
    links: list[dict[str, str]] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            links.append({"path": path, "target": os.readlink(path)})
        elif os.path.isdir(path):
            binds.append({"source": path})
    return binds, links


def package_paths() -> list[str]:
    """Host paths of the runtime packages and of squall's package, for read-only binds."""
    paths = []
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        if spec.submodule_search_locations:
            paths.extend(spec.submodule_search_locations)
        else:
            paths.append(spec.origin)
    paths.append(str(Path(squall.__file__).resolve().parent))
    return paths


def interpreter_dirs(executable: str = sys.executable) -> list[str]:
    """The installation prefix of the interpreter (squall's own base prefix for its own)."""
    dirs = set()
    if executable == sys.executable:
        dirs.add(os.path.realpath(sys.base_prefix))
    real = os.path.realpath(executable)
    dirs.add(os.path.dirname(os.path.dirname(real)))
    return sorted(d for d in dirs if d not in ("/", "/usr") and not d.startswith("/usr/"))


def root_binds(
    executable: str = sys.executable,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    binds, links = system_entries()
    seen = {entry["source"] for entry in binds}
    for path in [*interpreter_dirs(executable), *package_paths()]:
        if path not in seen and not any(path.startswith(s + "/") for s in seen):
            binds.append({"source": path})
            seen.add(path)
    return binds, links


def runtime_site(directory: Path) -> Path:
    """A directory of links to the runtime packages, for interpreters other than squall's own.

    It goes on such a zygote's PYTHONPATH; inside sandboxes the links resolve because their
    targets are bound at the same paths.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for path in package_paths():
        link = directory / Path(path).name
        if link.is_symlink() or link.exists():
            if os.path.realpath(link) == os.path.realpath(path):
                continue
            link.unlink()
        link.symlink_to(path)
    return directory
