"""Lambda deployment packages: validating zips, storing them, extracting them for sandboxes.

A package is stored once, as a content-addressed blob, when it is uploaded
(:meth:`CodeStore.ingest` rejects what Lambda would reject). Sandboxes need it unpacked:
:meth:`CodeStore.extract` gives ``root/code/<sha256>/`` (bound read-only at /var/task) and
:meth:`CodeStore.opt_dir` gives ``root/opt/<key>/``, a function's layers unpacked on top of
each other (bound at /opt).

Extracted trees are derived data, built once and never modified:

* They are built in a private (0o700) temporary directory next to the target and renamed into
  place, so a reader sees a whole tree or none. When two builders race (threads of this process
  are serialised by a lock; other processes are not), the loser discards its copy.
* Sandboxes run as an unprivileged uid, so files are 0o644, or 0o755 when the zip entry had any
  execute bit (a custom runtime's ``bootstrap`` must stay executable); directories are 0o755.
* Nothing is written through a symlink. Symlink entries are created last, and only when their
  target is relative and stays inside the tree, checked both by the text of the target and,
  once the tree is complete, by resolving it on disk (a chain of links can climb out where
  each link alone does not).
* Files and directories are fsync'd before the rename: a tree that exists after an OS crash is
  never re-extracted, so it must not be missing data.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import lzma
import os
import posixpath
import shutil
import stat
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from squall.core.errors import ServiceError
from squall.store.blobs import BlobStore, check_digest

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIPPED_BYTES",
    "CodeInfo",
    "CodeStore",
    "check_unzipped_total",
    "opt_key",
    "unzip_error",
    "unzipped_too_large",
    "zipped_too_large",
]

MAX_ZIPPED_BYTES = 50 * 1024 * 1024  # direct upload limit
MAX_UNZIPPED_BYTES = 262_144_000  # a function and its layers, unzipped

CODE_DIR = "code"
OPT_DIR = "opt"
TEMP_PREFIX = ".tmp-"
# collect() leaves younger temporary trees alone: they may be extractions in progress.
STALE_TEMP_SECONDS = 3600.0

_UNZIP_MESSAGE = "Could not unzip uploaded file. Please check your file, then try to upload again."
# What reading a damaged or unsupported archive can raise, besides BadZipFile.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    RuntimeError,  # encrypted entries
    NotImplementedError,  # unsupported compression methods
    ValueError,
)
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class CodeInfo:
    """A stored package, as Lambda describes it."""

    sha256_hex: str  # blob address
    sha256_b64: str  # CodeSha256: base64 of the raw digest
    size: int  # CodeSize: zipped bytes
    unzipped_size: int


def unzip_error() -> ServiceError:
    """Lambda's answer to a package it cannot unpack (not a zip, damaged, unsafe paths)."""
    return ServiceError("InvalidParameterValueException", _UNZIP_MESSAGE, status=400)


def zipped_too_large() -> ServiceError:
    return ServiceError(
        "RequestEntityTooLargeException",
        f"Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes",
        status=413,
    )


def unzipped_too_large() -> ServiceError:
    return ServiceError(
        "InvalidParameterValueException",
        f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes",
        status=400,
    )


def check_unzipped_total(sizes: Iterable[int]) -> None:
    """Raise Lambda's unzipped-size error if the sizes (a function and its layers) add up to
    more than :data:`MAX_UNZIPPED_BYTES`."""
    if sum(sizes) > MAX_UNZIPPED_BYTES:
        raise unzipped_too_large()


def opt_key(layer_hexes: Sequence[str]) -> str:
    """The directory name under ``opt/`` for these layers, in this order."""
    for digest in layer_hexes:
        check_digest(digest)
    return hashlib.sha256(",".join(layer_hexes).encode("ascii")).hexdigest()


def _entry_parts(name: str) -> tuple[str, ...] | None:
    """The path components an entry extracts to (empty for the root), or None if it is unsafe.

    Backslashes count as separators, as unzip treats them in archives made on Windows.
    Absolute names are unsafe, and so are names whose normalised form climbs out with ``..``;
    ``a/../b`` is just ``b``.
    """
    name = name.replace("\\", "/")
    if name.startswith("/") or "\0" in name:
        return None
    normal = posixpath.normpath(name) if name else "."
    if normal == ".." or normal.startswith("../"):
        return None
    return () if normal == "." else tuple(normal.split("/"))


def _unix_mode(info: zipfile.ZipInfo) -> int:
    """The entry's unix mode bits (0 for archives made on Windows)."""
    return (info.external_attr >> 16) & 0xFFFF


class CodeStore:
    """Deployment packages in a :class:`BlobStore`, extracted under ``root`` on demand."""

    def __init__(self, blobs: BlobStore, root: Path) -> None:
        self.blobs = blobs
        self.root = Path(root)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- packages ---------------------------------------------------------------------------

    def ingest(self, data: bytes, *, zipped_limit: bool = True) -> CodeInfo:
        """Validate a zip as Lambda would, store it and describe it.

        Uploads are held to :data:`MAX_ZIPPED_BYTES`; packages read from the object store
        (``zipped_limit=False``) only to the unzipped limit. Storing is content-addressed, so
        ingesting the same bytes again costs nothing.
        """
        if zipped_limit and len(data) > MAX_ZIPPED_BYTES:
            raise zipped_too_large()
        unzipped = _validate_zip(io.BytesIO(data))
        ref = self.blobs.put(data)
        return _code_info(ref.sha256, ref.size, unzipped)

    def info(self, sha256_hex: str) -> CodeInfo:
        """Describe a stored package, reading sizes from the blob itself."""
        path = self.zip_path(sha256_hex)
        with zipfile.ZipFile(path) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        return _code_info(sha256_hex, path.stat().st_size, unzipped)

    def zip_path(self, sha256_hex: str) -> Path:
        """The stored zip; FileNotFoundError if it is not stored."""
        path = self.blobs.path(sha256_hex)
        if not path.is_file():
            raise FileNotFoundError(f"no stored package {sha256_hex}")
        return path

    # -- extracted trees --------------------------------------------------------------------

    def extract(self, sha256_hex: str) -> Path:
        """``root/code/<sha256_hex>/``: the package unpacked, extracted on first use."""
        source = self.zip_path(sha256_hex)
        target = self.root / CODE_DIR / sha256_hex
        return self._materialise(target, lambda tmp: _build_tree(tmp, [source]))

    def opt_dir(self, layer_hexes: Sequence[str]) -> Path | None:
        """``root/opt/<key>/`` with the layers unpacked in order, or None for no layers.

        As under Lambda's /opt, a later layer's files replace an earlier layer's files of the
        same name (and whatever else stands in their way).
        """
        if not layer_hexes:
            return None
        sources = [self.zip_path(digest) for digest in layer_hexes]
        target = self.root / OPT_DIR / opt_key(layer_hexes)
        return self._materialise(target, lambda tmp: _build_tree(tmp, sources))

    def collect(self, keep: set[str]) -> int:
        """Remove extracted trees whose names (code hexes, :func:`opt_key` keys) are not in
        ``keep``, and temporary trees left by crashes; returns how many were removed.

        A tree disappears atomically (renamed aside, then deleted), so a concurrent
        :meth:`extract` sees it whole or rebuilds it.
        """
        removed = 0
        cutoff = time.time() - STALE_TEMP_SECONDS
        for parent in (self.root / CODE_DIR, self.root / OPT_DIR):
            if not parent.is_dir():
                continue
            for entry in parent.iterdir():
                if _is_collectable(entry, keep, cutoff):
                    removed += _remove_tree(entry)
        return removed

    def _materialise(self, target: Path, build: Callable[[Path], None]) -> Path:
        """Make ``target`` exist, building it with ``build`` (into a temp dir) if needed."""
        if target.is_dir():
            return target
        with self._lock_for(target):
            if target.is_dir():
                return target
            parent = _make_private_dirs(target.parent)
            tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent))
            try:
                build(tmp)
                os.chmod(tmp, 0o755)
                _fsync_tree(tmp)
                _rename_into_place(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_dir(parent)
        return target

    def _lock_for(self, target: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(target, threading.Lock())


# -- validation -------------------------------------------------------------------------------


def _validate_zip(stream: BinaryIO) -> int:
    """Check the archive is readable, safe and within the unzipped limit; return that size.

    Declared sizes are checked before anything is decompressed, and decompression never
    produces more than an entry declares, so a zip bomb costs no more than an honest zip.
    """
    try:
        if not zipfile.is_zipfile(stream):
            raise unzip_error()
        with zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
            if any(_entry_parts(info.filename) is None for info in infos):
                raise unzip_error()
            unzipped = sum(info.file_size for info in infos)
            if unzipped > MAX_UNZIPPED_BYTES:
                raise unzipped_too_large()
            if archive.testzip() is not None:
                raise unzip_error()
    except _ZIP_ERRORS as exc:
        raise unzip_error() from exc
    return unzipped


def _code_info(sha256_hex: str, size: int, unzipped_size: int) -> CodeInfo:
    b64 = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
    return CodeInfo(sha256_hex=sha256_hex, sha256_b64=b64, size=size, unzipped_size=unzipped_size)


# -- extraction -------------------------------------------------------------------------------


def _build_tree(root: Path, sources: Sequence[Path]) -> None:
    """Unpack the zips into ``root`` in order, later entries replacing earlier ones."""
    links = 0
    for source in sources:
        with zipfile.ZipFile(source) as archive:
            links += _unpack(archive, root)
    if links:
        _drop_escaping_links(root)


def _unpack(archive: zipfile.ZipFile, root: Path) -> int:
    """Unpack one archive; symlinks go last so nothing is ever written through one.

    Returns how many symlinks were created.
    """
    links: list[tuple[tuple[str, ...], str]] = []
    for info in archive.infolist():
        parts = _entry_parts(info.filename)
        if parts is None:
            raise unzip_error()
        if not parts:
            continue
        mode = _unix_mode(info)
        if info.is_dir() or stat.S_ISDIR(mode):
            _make_dirs(root, parts)
        elif stat.S_ISLNK(mode):
            links.append((parts, os.fsdecode(archive.read(info))))
        elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
            with archive.open(info) as src:
                _write_file(root, parts, src, 0o755 if mode & 0o111 else 0o644)
        # Devices, fifos and sockets are skipped.
    return sum(_make_link(root, parts, target) for parts, target in links)


def _make_dirs(root: Path, parts: Sequence[str]) -> Path:
    """Create ``root/parts...`` as real directories (0o755), replacing non-directories."""
    current = root
    for part in parts:
        current = current / part
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            if stat.S_ISDIR(os.lstat(current).st_mode):
                continue
            os.unlink(current)  # a file or symlink where a later entry wants a directory
            os.mkdir(current, 0o755)
        os.chmod(current, 0o755)  # mkdir's mode is subject to the umask
    return current


def _clear(path: Path) -> None:
    """Remove whatever is at ``path`` (without following symlinks), if anything."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _write_file(root: Path, parts: Sequence[str], src: BinaryIO, mode: int) -> None:
    dest = _make_dirs(root, parts[:-1]) / parts[-1]
    _clear(dest)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(dest, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, _COPY_CHUNK)
        out.flush()
        os.fchmod(out.fileno(), mode)
        os.fsync(out.fileno())


def _link_stays_inside(parts: Sequence[str], target: str) -> bool:
    """Whether a link at ``parts`` to ``target`` is relative and, read as text, stays inside."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(*parts[:-1], target))
    return resolved != ".." and not resolved.startswith("../")


def _make_link(root: Path, parts: Sequence[str], target: str) -> int:
    """Create the symlink if it is safe; a directory already at its path wins. Returns 1 if
    created, else 0."""
    if not _link_stays_inside(parts, target):
        return 0
    dest = _make_dirs(root, parts[:-1]) / parts[-1]
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(dest).st_mode):
            return 0
        os.unlink(dest)
    os.symlink(target, dest)
    return 1


def _drop_escaping_links(root: Path) -> None:
    """Remove symlinks that, resolved on disk, lead outside ``root``.

    Each link passed the textual check, but a chain can still climb out (``up -> sub/..``
    where ``sub -> .``). Removing a link can change where others resolve, so repeat until
    nothing changes; dangling links are harmless and kept.
    """
    real_root = os.path.realpath(root)
    changed = True
    while changed:
        changed = False
        for link in _symlinks_under(root):
            real = os.path.realpath(link)
            if real != real_root and not real.startswith(real_root + os.sep):
                os.unlink(link)
                changed = True


def _symlinks_under(root: Path) -> list[Path]:
    found = []
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(directory, name)
            if path.is_symlink():
                found.append(path)
    return found


def _fsync_tree(root: Path) -> None:
    """fsync every directory of a tree (its files were fsync'd as they were written)."""
    for directory, _dirnames, _filenames in os.walk(root):
        _fsync_dir(Path(directory))


def _rename_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; if another builder got there first, discard ``tmp``."""
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY) or not target.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


# -- housekeeping -----------------------------------------------------------------------------


def _is_collectable(entry: Path, keep: set[str], cutoff: float) -> bool:
    if entry.name.startswith(TEMP_PREFIX):
        try:
            return entry.lstat().st_mtime < cutoff
        except FileNotFoundError:
            return False
    return entry.name not in keep


def _remove_tree(path: Path) -> int:
    """Rename ``path`` aside, then delete it; returns 1 if it was removed, 0 if it was gone."""
    aside = path.with_name(f"{TEMP_PREFIX}gc-{path.name}-{os.getpid()}-{threading.get_ident()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return 0
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)
    return 1


def _make_private_dirs(directory: Path) -> Path:
    """Create ``directory`` (0o700, like the rest of the data dir) and missing parents."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
