"""Tests for squall.services.awslambda.code: validating, storing and extracting packages."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from squall.core.errors import ServiceError
from squall.services.awslambda import code
from squall.services.awslambda.code import CodeInfo, CodeStore, check_unzipped_total, opt_key
from squall.store import BlobStore

UNZIP_MESSAGE = "Could not unzip uploaded file. Please check your file, then try to upload again."

Entry = tuple[str, bytes, int]  # name, content, unix mode (0: made on Windows)


def make_zip(*entries: Entry, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = compression
            if mode:
                info.create_system = 3
                info.external_attr = mode << 16
            else:
                info.create_system = 0
            archive.writestr(info, content)
    return buffer.getvalue()


def file(name: str, content: bytes = b"x", perms: int = 0o644) -> Entry:
    return (name, content, stat.S_IFREG | perms)


def directory(name: str) -> Entry:
    return (name.rstrip("/") + "/", b"", stat.S_IFDIR | 0o755)


def symlink(name: str, target: str) -> Entry:
    return (name, target.encode(), stat.S_IFLNK | 0o777)


def perms(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(autouse=True)
def strict_umask() -> Iterator[None]:
    """A restrictive umask proves modes are set explicitly, not inherited."""
    previous = os.umask(0o077)
    yield
    os.umask(previous)


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def store(blobs: BlobStore, tmp_path: Path) -> CodeStore:
    return CodeStore(blobs, tmp_path / "lambda")


SAMPLE = make_zip(
    file("handler.py", b"def handler(event, context):\n    return 42\n"),
    file("bootstrap", b"#!/bin/sh\necho hi\n", 0o755),
    directory("lib"),
    file("lib/pkg/mod.py", b"VALUE = 1\n", 0o600),
    symlink("lib/alias.py", "pkg/mod.py"),
)


def assert_service_error(exc: pytest.ExceptionInfo[ServiceError], code_: str, status: int) -> None:
    assert exc.value.code == code_
    assert exc.value.status == status


# -- ingest -----------------------------------------------------------------------------------


def test_ingest_describes_and_stores_the_package(store: CodeStore, blobs: BlobStore) -> None:
    info = store.ingest(SAMPLE)
    digest = hashlib.sha256(SAMPLE).digest()
    assert info.sha256_hex == digest.hex()
    assert info.sha256_b64 == base64.b64encode(digest).decode()
    assert info.size == len(SAMPLE)
    with zipfile.ZipFile(io.BytesIO(SAMPLE)) as archive:
        assert info.unzipped_size == sum(i.file_size for i in archive.infolist())
    assert blobs.exists(info.sha256_hex)
    assert store.zip_path(info.sha256_hex).read_bytes() == SAMPLE


def test_ingest_is_idempotent_and_info_recomputes(store: CodeStore) -> None:
    first = store.ingest(SAMPLE)
    assert store.ingest(SAMPLE) == first
    assert store.info(first.sha256_hex) == first
    assert isinstance(first, CodeInfo)


def test_empty_zip_is_accepted(store: CodeStore) -> None:
    info = store.ingest(make_zip())
    assert info.unzipped_size == 0
    assert list(store.extract(info.sha256_hex).iterdir()) == []


def test_dot_dot_that_stays_inside_is_accepted(store: CodeStore) -> None:
    info = store.ingest(make_zip(file("a/../b.txt", b"b")))
    assert (store.extract(info.sha256_hex) / "b.txt").read_bytes() == b"b"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"definitely not a zip", id="not-a-zip"),
        pytest.param(b"", id="empty"),
        pytest.param(make_zip(file("../evil")), id="dot-dot"),
        pytest.param(make_zip(file("ok.py"), file("a/../../evil")), id="nested-dot-dot"),
        pytest.param(make_zip(file("..\\evil")), id="backslash-dot-dot"),
        pytest.param(make_zip(file("/etc/evil")), id="absolute"),
        pytest.param(SAMPLE[: len(SAMPLE) // 2], id="truncated"),
    ],
)
def test_unreadable_or_unsafe_zips_are_rejected(
    store: CodeStore, blobs: BlobStore, data: bytes
) -> None:
    with pytest.raises(ServiceError) as exc:
        store.ingest(data)
    assert_service_error(exc, "InvalidParameterValueException", 400)
    assert exc.value.message == UNZIP_MESSAGE
    assert not any(p.is_file() for p in blobs.root.rglob("*"))


def test_corrupt_entry_is_rejected(store: CodeStore) -> None:
    data = bytearray(make_zip(file("a.txt", b"hello world"), compression=zipfile.ZIP_STORED))
    at = data.index(b"hello world")
    data[at] ^= 0xFF  # the CRC no longer matches
    with pytest.raises(ServiceError) as exc:
        store.ingest(bytes(data))
    assert exc.value.message == UNZIP_MESSAGE


def test_zipped_size_limit(store: CodeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code, "MAX_ZIPPED_BYTES", len(SAMPLE) - 1)
    with pytest.raises(ServiceError) as exc:
        store.ingest(SAMPLE)
    assert_service_error(exc, "RequestEntityTooLargeException", 413)
    assert exc.value.message == f"Zipped size must be smaller than {len(SAMPLE) - 1} bytes"
    monkeypatch.setattr(code, "MAX_ZIPPED_BYTES", len(SAMPLE))
    assert store.ingest(SAMPLE).size == len(SAMPLE)


def test_unzipped_size_limit(store: CodeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_zip(file("big.bin", b"\0" * 10_000))  # compresses to a few bytes
    monkeypatch.setattr(code, "MAX_UNZIPPED_BYTES", 9_999)
    with pytest.raises(ServiceError) as exc:
        store.ingest(data)
    assert_service_error(exc, "InvalidParameterValueException", 400)
    assert exc.value.message == "Unzipped size must be smaller than 9999 bytes"
    monkeypatch.setattr(code, "MAX_UNZIPPED_BYTES", 10_000)
    assert store.ingest(data).unzipped_size == 10_000


def test_declared_unzipped_size_is_checked_before_decompressing(
    store: CodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry declaring a huge size is refused on its declaration alone."""
    data = bytearray(make_zip(file("bomb.bin", b"tiny"), compression=zipfile.ZIP_STORED))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        header_offset = archive.infolist()[0].header_offset
    central = data.rindex(b"PK\x01\x02")
    declared = (2**31).to_bytes(4, "little")
    data[central + 24 : central + 28] = declared  # central directory: uncompressed size
    data[header_offset + 22 : header_offset + 26] = declared  # local header: same

    def no_decompressing(self: zipfile.ZipFile) -> None:
        raise AssertionError("testzip ran before the declared sizes were checked")

    monkeypatch.setattr(zipfile.ZipFile, "testzip", no_decompressing)
    with pytest.raises(ServiceError) as exc:
        store.ingest(bytes(data))
    assert_service_error(exc, "InvalidParameterValueException", 400)
    assert exc.value.message == "Unzipped size must be smaller than 262144000 bytes"


def test_check_unzipped_total(monkeypatch: pytest.MonkeyPatch) -> None:
    check_unzipped_total([code.MAX_UNZIPPED_BYTES - 10, 10])
    with pytest.raises(ServiceError) as exc:
        check_unzipped_total(iter([code.MAX_UNZIPPED_BYTES - 10, 11]))
    assert_service_error(exc, "InvalidParameterValueException", 400)
    assert exc.value.message == "Unzipped size must be smaller than 262144000 bytes"
    monkeypatch.setattr(code, "MAX_UNZIPPED_BYTES", 5)
    with pytest.raises(ServiceError, match="smaller than 5 bytes"):
        check_unzipped_total([3, 3])


def test_missing_package(store: CodeStore) -> None:
    missing = "0" * 64
    for call in (store.info, store.zip_path, store.extract):
        with pytest.raises(FileNotFoundError):
            call(missing)
    with pytest.raises(ValueError):
        store.zip_path("not-a-digest")


# -- extract ----------------------------------------------------------------------------------


def test_extract_contents_and_modes(store: CodeStore, tmp_path: Path) -> None:
    info = store.ingest(SAMPLE)
    task = store.extract(info.sha256_hex)
    assert task == tmp_path / "lambda" / "code" / info.sha256_hex
    assert (task / "handler.py").read_bytes().startswith(b"def handler")
    assert (task / "lib" / "pkg" / "mod.py").read_bytes() == b"VALUE = 1\n"
    assert perms(task) == 0o755
    assert perms(task / "bootstrap") == 0o755
    assert perms(task / "handler.py") == 0o644
    assert perms(task / "lib/pkg/mod.py") == 0o644  # 0o600 in the zip: made world-readable
    assert perms(task / "lib") == 0o755
    assert perms(task / "lib/pkg") == 0o755  # implied by a file entry, not listed


def test_extract_relative_symlink_inside(store: CodeStore) -> None:
    task = store.extract(store.ingest(SAMPLE).sha256_hex)
    alias = task / "lib" / "alias.py"
    assert alias.is_symlink()
    assert os.readlink(alias) == "pkg/mod.py"
    assert alias.read_bytes() == b"VALUE = 1\n"


def test_extract_skips_unsafe_symlinks(store: CodeStore) -> None:
    data = make_zip(
        file("real.txt", b"real"),
        symlink("abs", "/etc/passwd"),
        symlink("up", "../outside"),
        symlink("sub/up2", "../../outside"),
        symlink("sub/ok", "../real.txt"),
        symlink("here", "."),
        # Each link alone stays inside, but together they climb out of the tree.
        symlink("loop/self", ".."),
        symlink("climb", "loop/self/.."),
    )
    task = store.extract(store.ingest(data).sha256_hex)
    assert not os.path.lexists(task / "abs")
    assert not os.path.lexists(task / "up")
    assert not os.path.lexists(task / "sub" / "up2")
    assert (task / "sub" / "ok").read_bytes() == b"real"
    assert (task / "here").is_symlink()
    real_task = os.path.realpath(task)
    for link in task.rglob("*"):
        if link.is_symlink():
            resolved = os.path.realpath(link)
            assert resolved == real_task or resolved.startswith(real_task + os.sep), link


def test_symlink_is_never_written_through(store: CodeStore, tmp_path: Path) -> None:
    """A link to a directory followed by files 'under' it: the files land in a real directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    data = make_zip(
        symlink("lib", "../../../../outside"),
        file("lib/planted.txt", b"gotcha"),
        symlink("dir", "target"),
        directory("target"),
        file("dir/inner.txt", b"inner"),
    )
    task = store.extract(store.ingest(data).sha256_hex)
    assert list(outside.iterdir()) == []
    assert not (task / "lib").is_symlink()
    assert (task / "lib" / "planted.txt").read_bytes() == b"gotcha"
    assert not (task / "dir").is_symlink()  # a directory already stood there
    assert (task / "dir" / "inner.txt").read_bytes() == b"inner"


def test_windows_zip_modes(store: CodeStore) -> None:
    data = make_zip(("dir/", b"", 0), ("dir/app.py", b"print(1)", 0), ("run.cmd", b"x", 0))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {i.create_system for i in archive.infolist()} == {0}
    task = store.extract(store.ingest(data).sha256_hex)
    assert perms(task / "dir") == 0o755
    assert perms(task / "dir" / "app.py") == 0o644
    assert perms(task / "run.cmd") == 0o644
    assert (task / "dir" / "app.py").read_bytes() == b"print(1)"


def test_any_execute_bit_makes_a_file_executable(store: CodeStore) -> None:
    data = make_zip(file("u", perms=0o744), file("g", perms=0o610), file("o", perms=0o601))
    task = store.extract(store.ingest(data).sha256_hex)
    assert [perms(task / name) for name in "ugo"] == [0o755, 0o755, 0o755]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_later_duplicate_entry_wins(store: CodeStore) -> None:
    task = store.extract(store.ingest(make_zip(file("a", b"1"), file("a", b"2"))).sha256_hex)
    assert (task / "a").read_bytes() == b"2"


def test_extract_happens_once(store: CodeStore) -> None:
    digest = store.ingest(SAMPLE).sha256_hex
    task = store.extract(digest)
    marker = task / "marker"
    marker.write_bytes(b"left alone")
    assert store.extract(digest) == task
    assert marker.read_bytes() == b"left alone"


def test_extract_guards_against_traversal_too(
    store: CodeStore, blobs: BlobStore, tmp_path: Path
) -> None:
    """A blob that never went through ingest still cannot write outside its tree."""
    digest = blobs.put(make_zip(file("ok.txt"), file("../../evil", b"evil"))).sha256
    with pytest.raises(ServiceError) as exc:
        store.extract(digest)
    assert exc.value.message == UNZIP_MESSAGE
    code_dir = tmp_path / "lambda" / "code"
    assert list(code_dir.iterdir()) == []  # neither the tree nor its temporary directory
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "lambda" / "evil").exists()


@pytest.mark.parametrize("stores", [1, 2], ids=["one-store", "two-stores"])
def test_concurrent_extract_builds_one_tree(blobs: BlobStore, tmp_path: Path, stores: int) -> None:
    """Threads share one store's lock; separate stores (like processes) race on the rename."""
    files = [file(f"pkg/m{i}.py", f"N = {i}\n".encode()) for i in range(50)]
    instances = [CodeStore(blobs, tmp_path / "lambda") for _ in range(stores)]
    digest = instances[0].ingest(make_zip(*files)).sha256_hex
    barrier = threading.Barrier(8)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results.append(instances[index % stores].extract(digest))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1
    code_dir = tmp_path / "lambda" / "code"
    assert [p.name for p in code_dir.iterdir()] == [digest]
    assert len(list((code_dir / digest / "pkg").iterdir())) == 50


# -- opt_dir ----------------------------------------------------------------------------------


def test_opt_dir_none_without_layers(store: CodeStore) -> None:
    assert store.opt_dir([]) is None


def test_opt_dir_layers_in_order_later_wins(store: CodeStore, tmp_path: Path) -> None:
    first = store.ingest(
        make_zip(
            file("python/shared.py", b"first"),
            file("python/only_first.py", b"1"),
            file("bin/tool", b"v1", 0o755),
            file("python/thing", b"a file, replaced by a directory"),
        )
    ).sha256_hex
    second = store.ingest(
        make_zip(
            file("python/shared.py", b"second"),
            file("bin/tool", b"v2", 0o644),
            file("python/thing/inside.py", b"now a directory"),
        )
    ).sha256_hex
    opt = store.opt_dir([first, second])
    assert opt == tmp_path / "lambda" / "opt" / opt_key([first, second])
    assert opt_key([first, second]) == hashlib.sha256(f"{first},{second}".encode()).hexdigest()
    assert (opt / "python" / "shared.py").read_bytes() == b"second"
    assert (opt / "python" / "only_first.py").read_bytes() == b"1"
    assert (opt / "bin" / "tool").read_bytes() == b"v2"
    assert perms(opt / "bin" / "tool") == 0o644
    assert (opt / "python" / "thing" / "inside.py").read_bytes() == b"now a directory"
    assert perms(opt) == 0o755

    reversed_opt = store.opt_dir([second, first])
    assert reversed_opt is not None and reversed_opt != opt
    assert (reversed_opt / "python" / "shared.py").read_bytes() == b"first"
    assert store.opt_dir([first, second]) == opt


def test_opt_dir_missing_layer(store: CodeStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.opt_dir(["f" * 64])


def test_opt_key_rejects_bad_digests() -> None:
    with pytest.raises(ValueError):
        opt_key(["../../etc"])


# -- collect ----------------------------------------------------------------------------------


def test_collect_removes_unused_trees(store: CodeStore, tmp_path: Path) -> None:
    keep_code = store.ingest(SAMPLE).sha256_hex
    drop_code = store.ingest(make_zip(file("other.py"))).sha256_hex
    store.extract(keep_code)
    store.extract(drop_code)
    drop_opt = store.opt_dir([keep_code, drop_code])
    assert drop_opt is not None
    keep_opt = store.opt_dir([keep_code])
    assert keep_opt is not None
    stale = tmp_path / "lambda" / "code" / ".tmp-crashed"
    stale.mkdir()
    old = time.time() - 2 * code.STALE_TEMP_SECONDS
    os.utime(stale, (old, old))
    fresh = tmp_path / "lambda" / "code" / ".tmp-in-progress"
    fresh.mkdir()

    removed = store.collect({keep_code, opt_key([keep_code])})

    assert removed == 3
    assert sorted(p.name for p in (tmp_path / "lambda" / "code").iterdir()) == sorted(
        [keep_code, fresh.name]
    )
    assert [p.name for p in (tmp_path / "lambda" / "opt").iterdir()] == [keep_opt.name]
    assert store.extract(drop_code).is_dir()  # a collected tree is rebuilt on demand
    assert store.collect(set()) == 3  # both code trees and the remaining opt tree


def test_collect_before_anything_was_extracted(store: CodeStore) -> None:
    assert store.collect(set()) == 0
