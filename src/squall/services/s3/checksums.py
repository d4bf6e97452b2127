"""Object checksums: the MD5 behind ETags and the `x-amz-checksum-*` algorithms.

Values are what S3 and botocore exchange: the base64 of the big-endian digest. CRC32 (zlib),
CRC32C (the `crc32c` package), SHA1, SHA256, SHA512 and MD5 are always available; CRC64NVME
and the XXHASH family only when `awscrt` is importable. All of them release the GIL on large
buffers, so `Digests.update` can run in a worker thread without stalling the event loop.

Multipart objects carry either a COMPOSITE checksum (the checksum of the concatenated part
checksums, suffixed `-N`) or, for the CRC algorithms, a FULL_OBJECT one (the CRC of the whole
object, combined from the part CRCs and sizes without reading the data again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import crc32c as _crc32c

from squall.core.errors import ServiceError

from . import errors

try:  # optional: CRC64NVME and XXHASH need the AWS Common Runtime
    from awscrt import checksums as _crt  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _crt = None

CRC32 = "CRC32"
CRC32C = "CRC32C"
CRC64NVME = "CRC64NVME"
SHA1 = "SHA1"
SHA256 = "SHA256"
SHA512 = "SHA512"
MD5 = "MD5"
XXHASH64 = "XXHASH64"
XXHASH3 = "XXHASH3"
XXHASH128 = "XXHASH128"

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"

# Every algorithm of the S3 model, with its digest size in bytes.
DIGEST_SIZES: dict[str, int] = {
    CRC32: 4,
    CRC32C: 4,
    CRC64NVME: 8,
    SHA1: 20,
    SHA256: 32,
    SHA512: 64,
    MD5: 16,
    XXHASH64: 8,
    XXHASH3: 8,
    XXHASH128: 16,
}
ALGORITHMS: tuple[str, ...] = tuple(DIGEST_SIZES)
CRT_ALGORITHMS = frozenset({CRC64NVME, XXHASH64, XXHASH3, XXHASH128})
# Algorithms whose multipart checksum may be FULL_OBJECT (CRCs combine); CRC64NVME must be.
FULL_OBJECT_ALGORITHMS = frozenset({CRC32, CRC32C, CRC64NVME})

MULTIPLE_VALUES = (
    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
)
_SDK_HEADER = "x-amz-sdk-checksum-algorithm"


class Hasher(Protocol):
    """One running checksum: fed with `update`, read (without finishing) with `digest`."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    __slots__ = ("_crc",)

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(4, "big")


class _Crc32c:
    __slots__ = ("_crc",)

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._crc = _crc32c.crc32c(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(4, "big")


class _CrtCrc64Nvme:  # pragma: no cover - needs awscrt
    __slots__ = ("_crc",)

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._crc = _crt.crc64nvme(data, self._crc) & 0xFFFFFFFFFFFFFFFF

    def digest(self) -> bytes:
        return self._crc.to_bytes(8, "big")


class _CrtXxhash:  # pragma: no cover - needs awscrt
    __slots__ = ("_final", "_hash")

    def __init__(self, hasher: Any) -> None:
        self._hash = hasher
        self._final: bytes | None = None

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        if self._final is not None:
            raise ValueError("XXHASH digest already taken")
        self._hash.update(bytes(data))

    def digest(self) -> bytes:
        # awscrt's finalize ends the hash, so the value is kept: read it once the data is all in
        if self._final is None:
            self._final = bytes(self._hash.finalize())
        return self._final


def _md5() -> Any:
    return hashlib.md5(usedforsecurity=False)


def is_supported(algorithm: str) -> bool:
    """Whether squall can compute `algorithm` here (the CRT ones need `awscrt`)."""
    if algorithm not in DIGEST_SIZES:
        return False
    if algorithm == CRC64NVME:
        return _crt is not None and hasattr(_crt, "crc64nvme")
    if algorithm in CRT_ALGORITHMS:
        return _crt is not None and hasattr(_crt, "XXHash")
    return True


def require_supported(algorithm: str) -> None:
    """Raise `InvalidRequest` for an algorithm of the S3 model that this install cannot compute."""
    if not is_supported(algorithm):
        raise errors.invalid_request(
            f"The {algorithm} checksum algorithm is not supported by this server: it needs the "
            "awscrt package (pip install awscrt)."
        )


def new_hasher(algorithm: str) -> Hasher:
    """A fresh running checksum for `algorithm` (raises `InvalidRequest` if unsupported)."""
    require_supported(algorithm)
    if algorithm == CRC32:
        return _Crc32()
    if algorithm == CRC32C:
        return _Crc32c()
    if algorithm == SHA1:
        return hashlib.sha1(usedforsecurity=False)
    if algorithm == SHA256:
        return hashlib.sha256()
    if algorithm == SHA512:
        return hashlib.sha512()
    if algorithm == MD5:
        return _md5()
    if algorithm == CRC64NVME:  # pragma: no cover - needs awscrt
        return _CrtCrc64Nvme()
    factory = {  # pragma: no cover - needs awscrt
        XXHASH64: "new_xxhash64",
        XXHASH3: "new_xxhash3_64",
        XXHASH128: "new_xxhash3_128",
    }[algorithm]
    return _CrtXxhash(getattr(_crt.XXHash, factory)())  # pragma: no cover


def parse_algorithm(value: str, header: str = _SDK_HEADER) -> str:
    """The algorithm named by a header such as `x-amz-sdk-checksum-algorithm` (any case)."""
    algorithm = value.strip().upper()
    if algorithm not in DIGEST_SIZES:
        raise errors.invalid_request(f"Value for {header} header is invalid.")
    return algorithm


def normalize(value: str) -> str:
    """The algorithm named by `x-amz-sdk-checksum-algorithm` (any case); see `parse_algorithm`."""
    return parse_algorithm(value)


def header_name(algorithm: str) -> str:
    """The header carrying `algorithm`'s value: `x-amz-checksum-crc32`."""
    return f"x-amz-checksum-{algorithm.lower()}"


def member_name(algorithm: str) -> str:
    """The botocore member carrying `algorithm`'s value: `ChecksumCRC32`."""
    return f"Checksum{algorithm}"


def algorithm_of_header(name: str) -> str | None:
    """The algorithm whose value header is `name` (any case), or None."""
    lowered = name.strip().lower()
    if not lowered.startswith("x-amz-checksum-"):
        return None
    algorithm = lowered.removeprefix("x-amz-checksum-").upper()
    return algorithm if algorithm in DIGEST_SIZES else None


def digest_size(algorithm: str) -> int:
    """The raw digest size of `algorithm` in bytes."""
    return DIGEST_SIZES[algorithm]


def encode(digest: bytes) -> str:
    """The wire form of a raw digest: base64."""
    return base64.b64encode(digest).decode("ascii")


def decode_value(algorithm: str, value: str, *, trailer: bool = False) -> bytes:
    """The raw digest of a client-supplied value; `InvalidRequest` for bad base64 or length."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZES[algorithm]:
        where = "trailing header" if trailer else "header"
        raise errors.invalid_request(f"Value for {header_name(algorithm)} {where} is invalid.")
    return raw


def check_value(algorithm: str, value: str, *, trailer: bool = False) -> bytes:
    """Validate a client-supplied value's form (see `decode_value`) and return its raw digest."""
    return decode_value(algorithm, value, trailer=trailer)


def mismatch(algorithm: str) -> ServiceError:
    """S3's `BadDigest` for a body whose checksum differs from the one the client sent."""
    return errors.bad_digest(
        f"The {algorithm} you specified did not match the calculated checksum."
    )


def checksum_from_request(request: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The checksum a PutObject/UploadPart request asks for, from its botocore members.

    Returns `(algorithm, value)` where `value` is the client's base64 value from a
    `x-amz-checksum-*` header, or None when only `x-amz-sdk-checksum-algorithm` names the
    algorithm (the value then comes in an aws-chunked trailer, or S3 computes it). Returns
    None when the request names no checksum. The value's form is validated here; more than one
    value header, or a value header that disagrees with the SDK header, is `InvalidRequest`.
    """
    given = [
        (algorithm, request[member_name(algorithm)])
        for algorithm in ALGORITHMS
        if request.get(member_name(algorithm)) is not None
    ]
    if len(given) > 1:
        raise errors.invalid_request(MULTIPLE_VALUES)
    sdk = request.get("ChecksumAlgorithm")
    declared = parse_algorithm(sdk) if sdk else None
    if given:
        algorithm, value = given[0]
        if declared is not None and declared != algorithm:
            raise errors.invalid_request(f"Value for {_SDK_HEADER} header is invalid.")
        require_supported(algorithm)
        decode_value(algorithm, value)
        return algorithm, value.strip()
    if declared is None:
        return None
    require_supported(declared)
    return declared, None


def resolve_checksum_type(algorithm: str | None, requested: str | None) -> str | None:
    """The multipart checksum type for CreateMultipartUpload's algorithm and `x-amz-checksum-type`.

    Defaults to COMPOSITE, or FULL_OBJECT for CRC64NVME; None when the upload has no algorithm.
    """
    if requested is None or requested == "":
        if algorithm is None:
            return None
        return FULL_OBJECT if algorithm == CRC64NVME else COMPOSITE
    kind = requested.strip().upper()
    if kind not in (COMPOSITE, FULL_OBJECT):
        raise errors.invalid_request("Value for x-amz-checksum-type header is invalid.")
    if algorithm is None:
        raise errors.invalid_request(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm "
            "header."
        )
    allowed = algorithm in FULL_OBJECT_ALGORITHMS if kind == FULL_OBJECT else algorithm != CRC64NVME
    if not allowed:
        raise errors.invalid_request(
            f"The {kind} checksum type cannot be used with the {algorithm.lower()} checksum "
            "algorithm."
        )
    return kind


def decode_content_md5(value: str) -> bytes:
    """The raw digest of a `Content-MD5` header; `InvalidDigest` unless 16 bytes of base64."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_digest() from None
    if len(raw) != 16:
        raise errors.invalid_digest()
    return raw


class Digests:
    """The MD5 (for the ETag) and any set of checksums of one stream, fed incrementally."""

    __slots__ = ("_hashers", "_md5", "size")

    def __init__(self, algorithms: Iterable[str] = ()) -> None:
        self._md5 = _md5()
        self._hashers: dict[str, Hasher] = {}
        for algorithm in algorithms:
            if algorithm == MD5:
                self._hashers[MD5] = self._md5
            elif algorithm not in self._hashers:
                self._hashers[algorithm] = new_hasher(algorithm)
        self.size = 0

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The checksum algorithms computed besides the ETag's MD5."""
        return tuple(self._hashers)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next piece of the stream."""
        self._md5.update(data)
        for algorithm, hasher in self._hashers.items():
            if algorithm != MD5:
                hasher.update(data)
        self.size += len(data)

    def md5_digest(self) -> bytes:
        """The raw MD5 of the data so far."""
        return self._md5.digest()

    def md5_hex(self) -> str:
        """The MD5 hex of the data so far: an S3 ETag without its quotes."""
        return self._md5.hexdigest()

    def digest(self, algorithm: str) -> bytes:
        """The raw digest of `algorithm` (one of those given at construction, or MD5)."""
        if algorithm == MD5:
            return self._md5.digest()
        return self._hashers[algorithm].digest()

    def value(self, algorithm: str) -> str:
        """The base64 value S3 returns for `algorithm`, as in `x-amz-checksum-crc32`."""
        return encode(self.digest(algorithm))

    def values(self) -> dict[str, str]:
        """Every computed checksum, by algorithm."""
        return {algorithm: self.value(algorithm) for algorithm in self._hashers}

    def verify(self, algorithm: str, expected: str, *, trailer: bool = False) -> None:
        """Raise `InvalidRequest` for a malformed `expected`, `BadDigest` if it differs."""
        if decode_value(algorithm, expected, trailer=trailer) != self.digest(algorithm):
            raise mismatch(algorithm)

    def verify_content_md5(self, content_md5: str) -> None:
        """Raise `InvalidDigest` for a malformed `Content-MD5`, `BadDigest` if it differs."""
        if decode_content_md5(content_md5) != self._md5.digest():
            raise errors.bad_digest()


def composite(algorithm: str, part_values_b64: Sequence[str]) -> str:
    """A COMPOSITE multipart checksum: the checksum of the concatenated raw part digests, `-N`."""
    hasher = new_hasher(algorithm)
    for value in part_values_b64:
        hasher.update(decode_value(algorithm, value))
    return f"{encode(hasher.digest())}-{len(part_values_b64)}"


def multipart_etag(part_md5_hexes: Sequence[str]) -> str:
    """The quoted ETag of a multipart object: the MD5 of the concatenated raw part MD5s, `-N`."""
    md5 = _md5()
    for etag in part_md5_hexes:
        md5.update(bytes.fromhex(etag.strip().strip('"')))
    return f'"{md5.hexdigest()}-{len(part_md5_hexes)}"'


# Reflected polynomials and widths of the CRCs that combine (all start and end inverted).
_CRC_PARAMS: dict[str, tuple[int, int]] = {
    CRC32: (0xEDB88320, 32),
    CRC32C: (0x82F63B78, 32),
    CRC64NVME: (0x9A6C9329AC4BC9B5, 64),
}
_X2N_TABLES: dict[str, list[int]] = {}


def _multmodp(a: int, b: int, poly: int, width: int) -> int:
    """a * b modulo the polynomial, in the reflected bit order of the CRC."""
    m = 1 << (width - 1)
    product = 0
    while True:
        if a & m:
            product ^= b
            if not a & (m - 1):
                return product
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1


def _x2n_table(algorithm: str) -> list[int]:
    """x^(2^k) modulo the polynomial for k = 0..66 (enough for any 64-bit length in bytes)."""
    table = _X2N_TABLES.get(algorithm)
    if table is None:
        poly, width = _CRC_PARAMS[algorithm]
        table = [1 << (width - 2)]  # x^1
        for _ in range(66):
            table.append(_multmodp(table[-1], table[-1], poly, width))
        _X2N_TABLES[algorithm] = table
    return table


def crc_combine(algorithm: str, crc1: int, crc2: int, length2: int) -> int:
    """The CRC of A+B from crc(A), crc(B) and len(B) in bytes (zlib's crc32_combine, any width)."""
    poly, width = _CRC_PARAMS[algorithm]
    table = _x2n_table(algorithm)
    shift = 1 << (width - 1)  # x^0
    k = 3  # lengths in bytes: x^(8 * n)
    n = length2
    while n:
        if n & 1:
            shift = _multmodp(table[k], shift, poly, width)
        n >>= 1
        k += 1
    return _multmodp(shift, crc1, poly, width) ^ crc2


def full_object(algorithm: str, parts: Sequence[tuple[str, int]]) -> str:
    """A FULL_OBJECT multipart checksum from each part's base64 CRC value and size in bytes."""
    if algorithm not in _CRC_PARAMS:
        raise errors.invalid_request(
            f"The {FULL_OBJECT} checksum type cannot be used with the {algorithm.lower()} "
            "checksum algorithm."
        )
    size = DIGEST_SIZES[algorithm]
    crc = 0
    for value, length in parts:
        crc = crc_combine(algorithm, crc, int.from_bytes(decode_value(algorithm, value)), length)
    return encode(crc.to_bytes(size, "big"))
