"""Object bytes on disk, written so that a crash leaves a file whole or absent.

A new file is written under `root/.tmp`, fsync'd, renamed to `root/<xx>/<32 hex>` and its
directory fsync'd; only then does a metadata row point at it. Files no row points at (a crash
between rename and commit, or between commit and unlink) are collected at start-up.
Writes and reads of large buffers run on worker threads, so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import BinaryIO

TEMP_DIR = ".tmp"
READ_CHUNK = 1024 * 1024
_INLINE_BYTES = 64 * 1024  # smaller reads/writes are not worth a thread hop


class ObjectFiles:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._temp = self.root / TEMP_DIR
        self._temp.mkdir(mode=0o700, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name

    def writer(self) -> FileWriter:
        return FileWriter(self)

    def open(self, name: str) -> BinaryIO:
        return open(self.root / name, "rb")

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()

    def collect(self, referenced: set[str]) -> int:
        """Remove temporary files and files no metadata row references; returns how many."""
        removed = 0
        for directory in self.root.iterdir():
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                name = f"{directory.name}/{path.name}"
                if directory.name == TEMP_DIR or name not in referenced:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
        return removed

    def new_name(self) -> tuple[str, Path]:
        token = uuid.uuid4().hex
        name = f"{token[:2]}/{token}"
        return name, self.root / name


class FileWriter:
    """A file being written; `commit` makes it durable under its final name."""

    def __init__(self, files: ObjectFiles) -> None:
        self._files = files
        self._temp_path = files._temp / uuid.uuid4().hex
        self._file: BinaryIO | None = open(self._temp_path, "wb")  # noqa: SIM115
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None
        self._file.write(data)
        self.size += len(data)

    def commit(self) -> str:
        """fsync, rename into place and fsync the directory; returns the file's name."""
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        name, final = self._files.new_name()
        if not final.parent.is_dir():
            final.parent.mkdir(mode=0o700, exist_ok=True)
            _fsync_dir(self._files.root)  # the new directory's entry must survive a crash too
        os.rename(self._temp_path, final)
        _fsync_dir(final.parent)
        return name

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._temp_path.unlink()


def read_range(
    files: ObjectFiles, segments: list[tuple[str, int]], start: int, end: int
) -> AsyncIterator[bytes]:
    """Bytes `start..end` (inclusive) of the object made of `segments`, in chunks.

    The segment files are opened before the first chunk is produced, so an object replaced
    or deleted while it streams still streams whole (its files are unlinked, not gone)."""
    handles = open_span(files, segments, start, end)
    return _stream(handles)


def open_span(
    files: ObjectFiles, segments: list[tuple[str, int]], start: int, end: int
) -> list[tuple[BinaryIO, int, int]]:
    """(file, offset within it, bytes to read) for each segment the range touches."""
    spans: list[tuple[BinaryIO, int, int]] = []
    offset = 0
    try:
        for name, size in segments:
            seg_start, seg_end = offset, offset + size - 1
            offset += size
            if size == 0 or seg_end < start or seg_start > end:
                continue
            first = max(start, seg_start) - seg_start
            last = min(end, seg_end) - seg_start
            spans.append((files.open(name), first, last - first + 1))
    except BaseException:
        for handle, _, _ in spans:
            handle.close()
        raise
    return spans


async def _stream(spans: list[tuple[BinaryIO, int, int]]) -> AsyncIterator[bytes]:
    try:
        for handle, offset, span in spans:
            handle.seek(offset)
            left = span
            while left > 0:
                size = min(READ_CHUNK, left)
                if size <= _INLINE_BYTES:
                    chunk = handle.read(size)
                else:
                    chunk = await asyncio.to_thread(handle.read, size)
                if not chunk:
                    raise OSError("object file is shorter than its metadata says")
                left -= len(chunk)
                yield chunk
    finally:
        for handle, _, _ in spans:
            handle.close()


def read_spans(spans: list[tuple[BinaryIO, int, int]]) -> bytes:
    """The bytes of already opened spans (see `open_span`), closing them; blocking."""
    out = bytearray()
    try:
        for handle, offset, length in spans:
            handle.seek(offset)
            out += handle.read(length)
    finally:
        for handle, _, _ in spans:
            handle.close()
    return bytes(out)


def read_all(files: ObjectFiles, segments: list[tuple[str, int]]) -> bytes:
    """A whole (small) object's bytes, read synchronously."""
    out = bytearray()
    for name, _ in segments:
        with files.open(name) as handle:
            out += handle.read()
    return bytes(out)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
