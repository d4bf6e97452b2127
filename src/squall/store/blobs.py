"""Content-addressed blob files for payloads too large for SQLite rows.

A blob lives at ``root/ab/cd/<sha256 hex>`` where ``ab`` and ``cd`` are the first two byte pairs
of its digest. Blobs are immutable, so storing the same bytes twice is a no-op and readers never
see a partial file: every write goes to a temporary file that is fsync'd and then renamed into
place, and the directory is fsync'd so the rename itself is durable.

Temporary files are named ``.tmp-*``. :meth:`BlobStore.put` creates them next to the final path;
:class:`BlobWriter` cannot know the digest before the last byte, so it writes into ``root/.tmp``
(on the same filesystem, so the final rename stays atomic). :meth:`BlobStore.sweep_temp` removes
both kinds left behind by a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = ["BlobRef", "BlobStore", "BlobWriter"]

TEMP_PREFIX = ".tmp-"
TEMP_DIR = ".tmp"
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BlobRef:
    """A stored blob: its sha256 (the address), size in bytes and md5 (for S3 ETags), as hex."""

    sha256: str
    size: int
    md5: str


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lower-case hex characters, else raise ValueError."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise ValueError(f"invalid blob digest {digest!r}: expected 64 lower-case hex characters")
    return digest


class BlobStore:
    """Blob files under ``root`` (created with mode 0o700 if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the blob with this sha256 hex digest lives (whether or not it exists)."""
        check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return self.path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for reading; raises FileNotFoundError if it is not stored."""
        return self.path(digest).open("rb")

    def put(self, data: bytes) -> BlobRef:
        """Store ``data`` durably and return its reference; storing existing content is a no-op."""
        view = memoryview(data)
        ref = BlobRef(
            sha256=hashlib.sha256(view).hexdigest(),
            size=view.nbytes,
            md5=hashlib.md5(view, usedforsecurity=False).hexdigest(),
        )
        final = self.path(ref.sha256)
        if final.is_file():
            return ref
        directory = self._make_dirs(final.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(view)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, final)
        except BaseException:
            _unlink_quietly(Path(tmp_name))
            raise
        _fsync_dir(directory)
        return ref

    def writer(self) -> BlobWriter:
        """Start an incremental write; see :class:`BlobWriter`."""
        tmp_dir = self._make_dirs(self.root / TEMP_DIR)
        return BlobWriter(self, tmp_dir)

    def delete(self, digest: str) -> None:
        """Remove the blob; a missing blob is not an error."""
        path = self.path(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def sweep_temp(self, min_age_seconds: float = 0.0) -> int:
        """Delete temporary files left by interrupted writes and return how many were removed.

        Call at start-up, before any write is in flight. ``min_age_seconds`` spares temp files
        modified more recently than that, so a periodic sweep does not break writes in progress.
        """
        cutoff = time.time() - min_age_seconds
        removed = 0
        for candidate in self._temp_candidates():
            try:
                if min_age_seconds > 0 and candidate.stat().st_mtime > cutoff:
                    continue
                candidate.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        return removed

    def _temp_candidates(self) -> list[Path]:
        found = list(self.root.glob(f"{TEMP_DIR}/{TEMP_PREFIX}*"))
        found += self.root.glob(f"[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/{TEMP_PREFIX}*")
        return [p for p in found if p.is_file()]

    def _make_dirs(self, directory: Path) -> Path:
        """Create ``directory`` and missing parents below root, fsync'ing each new entry."""
        if directory.is_dir():
            return directory
        missing: list[Path] = []
        current = directory
        while current != self.root and not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            _fsync_dir(path.parent)
        return directory

    def _commit_temp(self, tmp_path: Path, ref: BlobRef) -> None:
        """Move a fully written, fsync'd temp file to the blob's final path."""
        final = self.path(ref.sha256)
        if final.is_file():
            _unlink_quietly(tmp_path)
            return
        directory = self._make_dirs(final.parent)
        os.replace(tmp_path, final)
        _fsync_dir(directory)


class BlobWriter:
    """Writes one blob in pieces, hashing as it goes, without holding the payload in memory.

    Call :meth:`write` any number of times, then :meth:`commit` for the :class:`BlobRef`, or
    :meth:`abort` to discard. As a context manager it aborts unless ``commit`` was called, so an
    exception inside the block never leaves a file behind.
    """

    def __init__(self, store: BlobStore, tmp_dir: Path) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=tmp_dir)
        self._tmp_path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._size = 0
        self._ref: BlobRef | None = None

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def closed(self) -> bool:
        """True once committed or aborted."""
        return self._file is None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; returns the number of bytes written."""
        f = self._require_open()
        view = memoryview(data)
        f.write(view)
        self._sha256.update(view)
        self._md5.update(view)
        self._size += view.nbytes
        return view.nbytes

    def commit(self) -> BlobRef:
        """Make the blob durable and visible; returns its reference."""
        f = self._require_open()
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            self._file = None
            ref = BlobRef(self._sha256.hexdigest(), self._size, self._md5.hexdigest())
            self._store._commit_temp(self._tmp_path, ref)
        except BaseException:
            self.abort()
            raise
        self._ref = ref
        return ref

    def abort(self) -> None:
        """Discard everything written; safe to call more than once or after commit (no-op)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._ref is None:
            _unlink_quietly(self._tmp_path)

    def _require_open(self) -> BinaryIO:
        if self._file is None:
            raise ValueError("blob writer is already committed or aborted")
        return self._file

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


def _fsync_dir(directory: Path) -> None:
    """fsync a directory so entries created, renamed or removed in it are durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
