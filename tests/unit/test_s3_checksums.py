"""Tests for squall.services.s3.checksums against botocore's own checksum code."""

from __future__ import annotations

import base64
import hashlib
import random
import zlib

import crc32c
import pytest
from botocore.httpchecksum import Crc32Checksum, Sha1Checksum, Sha256Checksum, Sha512Checksum

from squall.core.errors import ServiceError
from squall.services.s3 import checksums
from squall.services.s3.checksums import (
    COMPOSITE,
    CRC32,
    CRC32C,
    CRC64NVME,
    FULL_OBJECT,
    MD5,
    SHA1,
    SHA256,
    SHA512,
    Digests,
    algorithm_of_header,
    checksum_from_request,
    composite,
    crc_combine,
    decode_content_md5,
    decode_value,
    full_object,
    header_name,
    member_name,
    multipart_etag,
    resolve_checksum_type,
)

RNG = random.Random(6)
BIG = RNG.randbytes(3 * 1024 * 1024 + 17)
SAMPLES = [b"", b"a", b"hello world", b"123456789", bytes(range(256)) * 40, BIG]
BOTOCORE = {
    CRC32: Crc32Checksum,
    SHA1: Sha1Checksum,
    SHA256: Sha256Checksum,
    SHA512: Sha512Checksum,
}

try:
    import awscrt  # noqa: F401

    HAS_CRT = True
except ImportError:
    HAS_CRT = False


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc64nvme_reference(data: bytes, crc: int = 0) -> int:
    """Bitwise CRC-64/NVME (reflected 0xAD93D23594C93659, init and xorout all ones)."""
    crc ^= 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        out.append(data[at : at + size])
        at += size
    out.append(data[at:])
    return out


@pytest.mark.parametrize("algorithm", sorted(BOTOCORE))
@pytest.mark.parametrize("data", SAMPLES, ids=lambda d: f"{len(d)}B")
def test_values_match_botocore(algorithm: str, data: bytes) -> None:
    digests = Digests([algorithm])
    digests.update(data)
    assert digests.value(algorithm) == BOTOCORE[algorithm]().handle(data)


def test_crc32c_check_value_and_incremental() -> None:
    digests = Digests([CRC32C])
    digests.update(b"123456789")
    assert digests.digest(CRC32C) == (0xE3069283).to_bytes(4, "big")
    assert digests.value(CRC32C) == b64(bytes.fromhex("e3069283"))

    whole = Digests([CRC32C])
    whole.update(BIG)
    assert whole.value(CRC32C) == b64(crc32c.crc32c(BIG).to_bytes(4, "big"))


def test_known_values() -> None:
    digests = Digests([CRC32, CRC32C, SHA1, SHA256, MD5])
    digests.update(b"hello world")
    assert digests.md5_hex() == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    assert digests.value(CRC32) == "DUoRhQ=="
    assert digests.value(CRC32C) == "yZRlqg=="
    assert digests.value(SHA1) == "Kq5sNclPz7QV2+lfQIuc6R7oRu0="
    assert digests.value(SHA256) == "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
    assert digests.value(MD5) == b64(hashlib.md5(b"hello world").digest())
    assert digests.size == 11
    assert digests.values() == {
        CRC32: "DUoRhQ==",
        CRC32C: "yZRlqg==",
        SHA1: "Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
        SHA256: "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
        MD5: b64(hashlib.md5(b"hello world").digest()),
    }


def test_empty_stream() -> None:
    digests = Digests([CRC32, CRC32C, SHA256])
    assert digests.md5_hex() == "d41d8cd98f00b204e9800998ecf8427e"
    assert digests.value(CRC32) == "AAAAAA=="
    assert digests.value(CRC32C) == "AAAAAA=="
    assert digests.value(SHA256) == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    assert digests.size == 0


def test_incremental_equals_one_shot() -> None:
    algorithms = [CRC32, CRC32C, SHA1, SHA256, SHA512, MD5]
    whole = Digests(algorithms)
    whole.update(BIG)
    pieces = Digests(algorithms)
    for piece in chunks(BIG, [0, 1, 7, 65536, 1, 1 << 20, 3]):
        pieces.update(memoryview(piece))
    pieces_ba = Digests(algorithms)
    for piece in chunks(BIG, [1000] * 50):
        pieces_ba.update(bytearray(piece))
    assert whole.values() == pieces.values() == pieces_ba.values()
    assert whole.md5_hex() == pieces.md5_hex() == hashlib.md5(BIG).hexdigest()
    assert whole.md5_digest() == hashlib.md5(BIG).digest()
    assert pieces.size == len(BIG)


def test_value_can_be_read_mid_stream() -> None:
    digests = Digests([CRC32, SHA256])
    digests.update(b"hello ")
    assert digests.value(CRC32) == b64(zlib.crc32(b"hello ").to_bytes(4, "big"))
    digests.update(b"world")
    assert digests.value(CRC32) == "DUoRhQ=="
    assert digests.algorithms == (CRC32, SHA256)


def test_md5_algorithm_shares_the_etag_hash() -> None:
    digests = Digests([MD5, MD5])
    digests.update(b"abc")
    assert digests.algorithms == (MD5,)
    assert base64.b64decode(digests.value(MD5)).hex() == digests.md5_hex()


def test_verify() -> None:
    digests = Digests([CRC32])
    digests.update(b"hello world")
    digests.verify(CRC32, "DUoRhQ==")
    with pytest.raises(ServiceError) as caught:
        digests.verify(CRC32, "AAAAAA==")
    assert caught.value.code == "BadDigest"
    assert caught.value.status == 400
    assert caught.value.message == "The CRC32 you specified did not match the calculated checksum."
    with pytest.raises(ServiceError) as caught:
        digests.verify(CRC32, "not base64!")
    assert caught.value.code == "InvalidRequest"
    with pytest.raises(ServiceError) as caught:
        digests.verify(CRC32, "nope", trailer=True)
    assert caught.value.message == "Value for x-amz-checksum-crc32 trailing header is invalid."


def test_content_md5() -> None:
    digests = Digests()
    digests.update(b"hello world")
    good = b64(hashlib.md5(b"hello world").digest())
    digests.verify_content_md5(good)
    assert decode_content_md5(good) == hashlib.md5(b"hello world").digest()
    with pytest.raises(ServiceError) as caught:
        digests.verify_content_md5(b64(hashlib.md5(b"other").digest()))
    assert caught.value.code == "BadDigest"
    assert caught.value.message == "The Content-MD5 you specified did not match what we received."
    for bad in ("", "abc", b64(b"short"), "####"):
        with pytest.raises(ServiceError) as caught:
            digests.verify_content_md5(bad)
        assert caught.value.code == "InvalidDigest"


def test_names() -> None:
    assert header_name(CRC32) == "x-amz-checksum-crc32"
    assert header_name(CRC32C) == "x-amz-checksum-crc32c"
    assert header_name(CRC64NVME) == "x-amz-checksum-crc64nvme"
    assert header_name(SHA256) == "x-amz-checksum-sha256"
    assert member_name(CRC32C) == "ChecksumCRC32C"
    assert member_name(SHA1) == "ChecksumSHA1"
    assert algorithm_of_header("X-Amz-Checksum-CRC32C") == CRC32C
    assert algorithm_of_header("x-amz-checksum-sha256") == SHA256
    assert algorithm_of_header("x-amz-checksum-bogus") is None
    assert algorithm_of_header("content-md5") is None
    assert checksums.normalize("crc32c") == CRC32C
    assert checksums.parse_algorithm(" Sha256 ") == SHA256
    assert checksums.digest_size(SHA256) == 32
    with pytest.raises(ServiceError) as caught:
        checksums.parse_algorithm("md4")
    assert caught.value.code == "InvalidRequest"
    assert caught.value.message == "Value for x-amz-sdk-checksum-algorithm header is invalid."


@pytest.mark.parametrize(
    ("algorithm", "value"),
    [
        (CRC32, "not base64"),
        (CRC32, "AAAA"),  # 3 bytes
        (CRC32, "AAAAAAA="),  # 5 bytes
        (CRC32C, ""),
        (SHA1, "DUoRhQ=="),  # a CRC32-sized value
        (SHA256, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),  # a SHA1-sized value
        (SHA256, "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek"),  # missing padding
    ],
)
def test_invalid_client_values(algorithm: str, value: str) -> None:
    with pytest.raises(ServiceError) as caught:
        decode_value(algorithm, value)
    assert caught.value.code == "InvalidRequest"
    assert caught.value.status == 400
    assert caught.value.message == f"Value for {header_name(algorithm)} header is invalid."


def test_valid_client_values() -> None:
    assert decode_value(CRC32, "DUoRhQ==") == bytes.fromhex("0d4a1185")
    assert decode_value(CRC32, " DUoRhQ== ") == bytes.fromhex("0d4a1185")
    assert (
        checksums.check_value(SHA1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0=")
        == hashlib.sha1(b"hello world").digest()
    )


def test_mismatch_wording() -> None:
    for algorithm in (CRC32, CRC32C, SHA1, SHA256):
        error = checksums.mismatch(algorithm)
        assert error.code == "BadDigest"
        assert error.status == 400
        assert (
            error.message == f"The {algorithm} you specified did not match the calculated checksum."
        )


def test_checksum_from_request() -> None:
    assert checksum_from_request({}) is None
    assert checksum_from_request({"ChecksumAlgorithm": "crc32"}) == (CRC32, None)
    assert checksum_from_request({"ChecksumCRC32": "DUoRhQ=="}) == (CRC32, "DUoRhQ==")
    assert checksum_from_request({"ChecksumAlgorithm": "CRC32", "ChecksumCRC32": "DUoRhQ=="}) == (
        CRC32,
        "DUoRhQ==",
    )
    with pytest.raises(ServiceError) as caught:
        checksum_from_request({"ChecksumCRC32": "DUoRhQ==", "ChecksumCRC32C": "yZRlqg=="})
    assert caught.value.message == (
        "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
    )
    with pytest.raises(ServiceError) as caught:
        checksum_from_request({"ChecksumAlgorithm": "SHA1", "ChecksumCRC32": "DUoRhQ=="})
    assert caught.value.message == "Value for x-amz-sdk-checksum-algorithm header is invalid."
    with pytest.raises(ServiceError) as caught:
        checksum_from_request({"ChecksumSHA256": "DUoRhQ=="})
    assert caught.value.message == "Value for x-amz-checksum-sha256 header is invalid."
    with pytest.raises(ServiceError) as caught:
        checksum_from_request({"ChecksumAlgorithm": "BOGUS"})
    assert caught.value.code == "InvalidRequest"


@pytest.mark.skipif(HAS_CRT, reason="awscrt is installed: CRC64NVME is supported")
def test_crt_algorithms_need_awscrt() -> None:
    for algorithm in (CRC64NVME, "XXHASH64", "XXHASH3", "XXHASH128"):
        assert not checksums.is_supported(algorithm)
        with pytest.raises(ServiceError) as caught:
            Digests([algorithm])
        assert caught.value.code == "InvalidRequest"
        assert algorithm in caught.value.message
        assert "awscrt" in caught.value.message
    with pytest.raises(ServiceError):
        checksum_from_request({"ChecksumAlgorithm": "CRC64NVME"})
    with pytest.raises(ServiceError):
        checksum_from_request({"ChecksumCRC64NVME": "AAAAAAAAAAA="})


def test_supported_algorithms() -> None:
    for algorithm in (CRC32, CRC32C, SHA1, SHA256, SHA512, MD5):
        assert checksums.is_supported(algorithm)
    assert not checksums.is_supported("CRC16")


def test_composite() -> None:
    parts = [b"a" * 100, b"b" * 7, b""]
    for algorithm in (CRC32, CRC32C, SHA1, SHA256):
        values, raw = [], b""
        for part in parts:
            digests = Digests([algorithm])
            digests.update(part)
            values.append(digests.value(algorithm))
            raw += digests.digest(algorithm)
        whole = Digests([algorithm])
        whole.update(raw)
        assert composite(algorithm, values) == f"{whole.value(algorithm)}-3"
    sha = hashlib.sha256(hashlib.sha256(b"x").digest() + hashlib.sha256(b"y").digest()).digest()
    values = [b64(hashlib.sha256(b"x").digest()), b64(hashlib.sha256(b"y").digest())]
    assert composite(SHA256, values) == f"{b64(sha)}-2"
    with pytest.raises(ServiceError):
        composite(CRC32, ["bad"])


def test_multipart_etag() -> None:
    md5s = [hashlib.md5(part).hexdigest() for part in (b"one", b"two", b"three")]
    expected = hashlib.md5(b"".join(bytes.fromhex(h) for h in md5s)).hexdigest()
    assert multipart_etag(md5s) == f'"{expected}-3"'
    assert multipart_etag([f'"{h}"' for h in md5s]) == f'"{expected}-3"'
    single = hashlib.md5(hashlib.md5(b"x").digest()).hexdigest()
    assert multipart_etag([hashlib.md5(b"x").hexdigest()]) == f'"{single}-1"'


def _crc(algorithm: str, data: bytes) -> int:
    if algorithm == CRC32:
        return zlib.crc32(data)
    if algorithm == CRC32C:
        return crc32c.crc32c(data)
    return crc64nvme_reference(data)


@pytest.mark.parametrize("algorithm", [CRC32, CRC32C, CRC64NVME])
def test_crc_combine(algorithm: str) -> None:
    rng = random.Random(algorithm)
    small = algorithm == CRC64NVME  # the reference CRC-64 is slow
    for _ in range(20):
        a = rng.randbytes(rng.randrange(0, 50 if small else 5000))
        b = rng.randbytes(rng.randrange(0, 50 if small else 5000))
        combined = crc_combine(algorithm, _crc(algorithm, a), _crc(algorithm, b), len(b))
        assert combined == _crc(algorithm, a + b)


def test_crc64nvme_reference_check_value() -> None:
    assert crc64nvme_reference(b"123456789") == 0xAE8B14860A799888


@pytest.mark.parametrize("algorithm", [CRC32, CRC32C])
def test_full_object_checksum(algorithm: str) -> None:
    rng = random.Random(7)
    parts = [rng.randbytes(n) for n in (5 * 1024 * 1024, 1, 0, 123457)]
    values = []
    for part in parts:
        digests = Digests([algorithm])
        digests.update(part)
        values.append((digests.value(algorithm), len(part)))
    whole = Digests([algorithm])
    whole.update(b"".join(parts))
    assert full_object(algorithm, values) == whole.value(algorithm)
    assert full_object(algorithm, []) == "AAAAAA=="


def test_full_object_combine_of_huge_lengths() -> None:
    # a 5 TB part combines in a handful of polynomial products
    zeros = 5 * 1024**4
    crc = crc_combine(CRC32, zlib.crc32(b"head"), 0x12345678, zeros)
    assert 0 <= crc < 2**32


def test_full_object_rejects_sha() -> None:
    with pytest.raises(ServiceError) as caught:
        full_object(SHA256, [])
    assert caught.value.message == (
        "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm."
    )


def test_resolve_checksum_type() -> None:
    assert resolve_checksum_type(None, None) is None
    assert resolve_checksum_type(CRC32, None) == COMPOSITE
    assert resolve_checksum_type(SHA256, None) == COMPOSITE
    assert resolve_checksum_type(CRC64NVME, None) == FULL_OBJECT
    assert resolve_checksum_type(CRC32, "full_object") == FULL_OBJECT
    assert resolve_checksum_type(CRC32C, "COMPOSITE") == COMPOSITE
    assert resolve_checksum_type(CRC64NVME, "FULL_OBJECT") == FULL_OBJECT
    with pytest.raises(ServiceError) as caught:
        resolve_checksum_type(SHA1, FULL_OBJECT)
    assert caught.value.message == (
        "The FULL_OBJECT checksum type cannot be used with the sha1 checksum algorithm."
    )
    with pytest.raises(ServiceError) as caught:
        resolve_checksum_type(CRC64NVME, COMPOSITE)
    assert caught.value.message == (
        "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."
    )
    with pytest.raises(ServiceError) as caught:
        resolve_checksum_type(None, FULL_OBJECT)
    assert caught.value.code == "InvalidRequest"
    with pytest.raises(ServiceError) as caught:
        resolve_checksum_type(CRC32, "PARTIAL")
    assert caught.value.message == "Value for x-amz-checksum-type header is invalid."
