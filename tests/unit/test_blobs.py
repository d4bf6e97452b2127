"""Tests for squall.store.blobs: content-addressed, atomically written blob files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from squall.store import BlobRef, BlobStore


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_open_round_trip(blobs: BlobStore) -> None:
    data = b"hello squall"
    ref = blobs.put(data)
    assert ref == BlobRef(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), md5=hashlib.md5(data).hexdigest()
    )
    assert blobs.exists(ref.sha256)
    with blobs.open(ref.sha256) as f:
        assert f.read() == data


def test_content_addressed_layout_and_idempotence(blobs: BlobStore) -> None:
    ref = blobs.put(b"same bytes")
    digest = ref.sha256
    expected = blobs.root / digest[:2] / digest[2:4] / digest
    assert blobs.path(digest) == expected
    assert expected.read_bytes() == b"same bytes"
    mtime = expected.stat().st_mtime_ns
    assert blobs.put(b"same bytes") == ref
    assert expected.stat().st_mtime_ns == mtime
    assert files_under(blobs.root) == [expected]
    assert blobs.put(b"other bytes").sha256 != digest


def test_empty_blob(blobs: BlobStore) -> None:
    ref = blobs.put(b"")
    assert ref.size == 0
    assert ref.sha256 == hashlib.sha256(b"").hexdigest()
    assert blobs.open(ref.sha256).read() == b""


def test_delete_and_missing(blobs: BlobStore) -> None:
    ref = blobs.put(b"to delete")
    blobs.delete(ref.sha256)
    assert not blobs.exists(ref.sha256)
    blobs.delete(ref.sha256)  # missing is fine
    with pytest.raises(FileNotFoundError):
        blobs.open(ref.sha256)


def test_writer_streams_in_small_chunks(blobs: BlobStore) -> None:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    chunk_size, total = 4096 + 7, 3 * 1024 * 1024 + 123
    with blobs.writer() as writer:
        written = 0
        while written < total:
            chunk = os.urandom(min(chunk_size, total - written))
            assert writer.write(chunk) == len(chunk)
            sha.update(chunk)
            md5.update(chunk)
            written += len(chunk)
        assert writer.size == total
        ref = writer.commit()
    assert ref == BlobRef(sha256=sha.hexdigest(), size=total, md5=md5.hexdigest())
    with blobs.open(ref.sha256) as f:
        assert hashlib.sha256(f.read()).hexdigest() == ref.sha256
    assert files_under(blobs.root) == [blobs.path(ref.sha256)]
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_writer_of_existing_content_is_idempotent(blobs: BlobStore) -> None:
    ref = blobs.put(b"abc" * 1000)
    with blobs.writer() as writer:
        for _ in range(1000):
            writer.write(b"abc")
        assert writer.commit() == ref
    assert files_under(blobs.root) == [blobs.path(ref.sha256)]


def test_writer_abort_leaves_no_file(blobs: BlobStore) -> None:
    writer = blobs.writer()
    writer.write(b"partial data")
    writer.abort()
    writer.abort()
    assert files_under(blobs.root) == []
    with pytest.raises(ValueError):
        writer.commit()

    with pytest.raises(RuntimeError), blobs.writer() as w:
        w.write(b"doomed")
        raise RuntimeError("upload interrupted")
    assert files_under(blobs.root) == []

    with blobs.writer() as w:  # leaving the block without commit discards too
        w.write(b"never committed")
    assert files_under(blobs.root) == []


def test_sweep_temp_removes_leftovers(blobs: BlobStore) -> None:
    kept = blobs.put(b"keep me")
    crashed = blobs.writer()
    crashed.write(b"left behind by a crash")
    crashed._file.flush()  # simulate a process dying mid-write: nothing cleans up
    stale = blobs.path(kept.sha256).parent / ".tmp-deadbeef"
    stale.write_bytes(b"half a put")
    assert blobs.sweep_temp() == 2
    assert files_under(blobs.root) == [blobs.path(kept.sha256)]
    assert blobs.sweep_temp() == 0


def test_sweep_temp_spares_recent_files_when_asked(blobs: BlobStore) -> None:
    writer = blobs.writer()
    writer.write(b"in progress")
    assert blobs.sweep_temp(min_age_seconds=3600) == 0
    ref = writer.commit()
    assert blobs.exists(ref.sha256)


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "../../etc/passwd",
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "../" + "a" * 61,
        "a" * 32 + "/" + "a" * 31,
        "a" * 64 + "\n",
    ],
)
def test_bad_digests_rejected(blobs: BlobStore, digest: str) -> None:
    for op in (blobs.path, blobs.exists, blobs.open, blobs.delete):
        with pytest.raises(ValueError):
            op(digest)
