"""The mount table of the calling process's mount namespace (/proc/self/mountinfo)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str
    mount_options: frozenset[str]
    super_options: frozenset[str]

    @property
    def read_only(self) -> bool:
        return "ro" in self.mount_options or "ro" in self.super_options


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mountinfo(path: Path = MOUNTINFO) -> list[Mount]:
    try:
        text = path.read_text()
    except OSError:
        return []
    mounts: list[Mount] = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        head, tail = before.split(), after.split()
        if not sep or len(head) < 6 or len(tail) < 3:
            continue
        mounts.append(
            Mount(
                mount_point=_unescape(head[4]),
                fstype=tail[0],
                mount_options=frozenset(head[5].split(",")),
                super_options=frozenset(tail[2].split(",")),
            )
        )
    return mounts
