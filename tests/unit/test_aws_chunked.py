"""Tests for squall.edge.aws_chunked: boto3's unsigned trailer form and the signed chunk form."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import shutil
import ssl
import subprocess
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from squall.core.http import HttpRequest
from squall.edge.aws_chunked import (
    AwsChunkedDecoder,
    ChunkedError,
    chunk_verifier,
    decode_aws_chunked,
    decoder_for,
)
from squall.edge.sigv4 import SignatureInfo, parse_signature, seed_signature_context, verify

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMPTY = hashlib.sha256(b"").hexdigest()
PAYLOAD = bytes(range(256)) * 300 + b"tail"


# --------------------------------------------------------------------------- an independent encoder


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _key(secret: str, scope: str) -> bytes:
    date, region, service, _ = scope.split("/")
    return _hmac(
        _hmac(_hmac(_hmac(b"AWS4" + secret.encode(), date), region), service), "aws4_request"
    )


def encode_unsigned(
    payload: bytes, chunk_size: int, trailers: dict[str, str] | None = None
) -> bytes:
    """What botocore's AwsChunkedWrapper sends: `size CRLF data CRLF`, then `0 CRLF` + trailers."""
    out = bytearray()
    for start in range(0, len(payload), chunk_size):
        chunk = payload[start : start + chunk_size]
        out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    out += b"0\r\n"
    for name, value in (trailers or {}).items():
        out += f"{name}:{value}\r\n".encode()
    return bytes(out + b"\r\n")


def encode_signed(
    payload: bytes,
    chunk_size: int,
    *,
    secret: str,
    amz_date: str,
    scope: str,
    seed: str,
    trailers: dict[str, str] | None = None,
) -> bytes:
    """The STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] framing, written from the AWS docs."""
    key = _key(secret, scope)
    previous = seed
    out = bytearray()
    pieces = [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)] + [b""]
    for chunk in pieces:
        text = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                EMPTY,
                hashlib.sha256(chunk).hexdigest(),
            )
        )
        previous = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode()
        if chunk:
            out += chunk + b"\r\n"
    if trailers is None:
        return bytes(out + b"\r\n")
    canonical = "".join(f"{name}:{trailers[name]}\n" for name in sorted(trailers))
    text = "\n".join(
        (
            "AWS4-HMAC-SHA256-TRAILER",
            amz_date,
            scope,
            previous,
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
    )
    signature = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    for name, value in trailers.items():
        out += f"{name}:{value}\r\n".encode()
    out += f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    return bytes(out)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def signed_streaming_request(
    content_sha256: str, trailer: str | None = None
) -> tuple[HttpRequest, SignatureInfo]:
    """A botocore-signed PUT announcing a signed aws-chunked body (body filled in later)."""
    headers = {
        "X-Amz-Content-SHA256": content_sha256,
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(PAYLOAD)),
    }
    if trailer:
        headers["X-Amz-Trailer"] = trailer
    request = AWSRequest(method="PUT", url="http://127.0.0.1:4566/bucket/key", headers=headers)
    SigV4Auth(Credentials(AKID, SECRET), "s3", "us-east-1").add_auth(request)
    prepared = request.prepare()
    http = HttpRequest(
        "PUT",
        "/bucket/key",
        "",
        {name.lower(): value for name, value in prepared.headers.items()}
        | {"host": "127.0.0.1:4566"},
    )
    info = parse_signature(http)
    assert info is not None
    return http, info


def signed_body(
    info: SignatureInfo, chunk_size: int, trailers: dict[str, str] | None = None
) -> bytes:
    return encode_signed(
        PAYLOAD,
        chunk_size,
        secret=SECRET,
        amz_date=info.amz_date.strftime("%Y%m%dT%H%M%SZ"),
        scope=info.scope,
        seed=info.signature,
        trailers=trailers,
    )


def feed_in_pieces(decoder: AwsChunkedDecoder, body: bytes, sizes: Iterator[int]) -> bytes:
    out = bytearray()
    position = 0
    while position < len(body):
        step = next(sizes)
        out += decoder.feed(body[position : position + step])
        position += step
    decoder.finish()
    return bytes(out)


def ones() -> Iterator[int]:
    while True:
        yield 1


def randoms(seed: int) -> Iterator[int]:
    rng = random.Random(seed)
    while True:
        yield rng.choice((1, 2, 3, 7, 64, 1000, 70000))


# --------------------------------------------------------------------------- unsigned form


def test_unsigned_trailer_form() -> None:
    trailers = {"x-amz-checksum-crc32": crc32_b64(PAYLOAD)}
    payload, parsed = decode_aws_chunked(encode_unsigned(PAYLOAD, 8192, trailers))
    assert payload == PAYLOAD
    assert parsed == trailers


def test_unsigned_without_trailer_and_empty_body() -> None:
    assert decode_aws_chunked(encode_unsigned(PAYLOAD, 65536)) == (PAYLOAD, {})
    assert decode_aws_chunked(b"0\r\n\r\n") == (b"", {})
    empty = encode_unsigned(b"", 10, {"x-amz-checksum-crc32": "AAAAAA=="})
    assert decode_aws_chunked(empty) == (b"", {"x-amz-checksum-crc32": "AAAAAA=="})


@pytest.mark.parametrize("sizes", [ones, lambda: randoms(1), lambda: randoms(2)])
def test_unsigned_fed_in_pieces_equals_whole(sizes: object) -> None:
    body = encode_unsigned(PAYLOAD, 1000, {"x-amz-checksum-crc32": crc32_b64(PAYLOAD)})
    decoder = AwsChunkedDecoder()
    assert feed_in_pieces(decoder, body, sizes()) == PAYLOAD  # type: ignore[operator]
    assert decoder.trailers == {"x-amz-checksum-crc32": crc32_b64(PAYLOAD)}
    assert decoder.decoded_length == len(PAYLOAD)
    assert decoder.done


def test_unsigned_streams_data_before_the_chunk_ends() -> None:
    decoder = AwsChunkedDecoder()
    assert decoder.feed(b"a\r\n01234") == b"01234"
    assert decoder.feed(b"56789\r\n0\r\n") == b"56789"
    decoder.feed(b"\r\n")
    decoder.finish()


def test_trailer_names_are_lower_cased_and_values_trimmed() -> None:
    body = b"3\r\nabc\r\n0\r\nX-Amz-Checksum-SHA256 :  v1  \r\nx-other:b\r\n\r\n"
    assert decode_aws_chunked(body) == (b"abc", {"x-amz-checksum-sha256": "v1", "x-other": "b"})


def test_chunk_signatures_are_ignored_without_a_verifier() -> None:
    body = b"3;chunk-signature=" + b"0" * 64 + b"\r\nabc\r\n0;chunk-signature=" + b"1" * 64
    assert decode_aws_chunked(body + b"\r\n\r\n") == (b"abc", {})


# --------------------------------------------------------------------------- signed form


def test_aws_documentation_example_signatures() -> None:
    # The worked example of the S3 "Transferring Payload in Multiple Chunks" documentation.
    request = HttpRequest(
        "PUT",
        "/examplebucket/chunkObject.txt",
        headers={
            "host": "s3.amazonaws.com",
            "x-amz-date": "20130524T000000Z",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560",
            "content-length": "66824",
            "authorization": (
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                "aws4_request,SignedHeaders=content-encoding;content-length;host;"
                "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
                "x-amz-storage-class,Signature="
                "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
            ),
        },
    )
    info = parse_signature(request)
    assert info is not None
    verify(request, info, SECRET, now=datetime(2013, 5, 24, 0, 5, tzinfo=UTC))
    signer = seed_signature_context(info, SECRET)
    first = signer.chunk_signature(info.signature, hashlib.sha256(b"a" * 65536).hexdigest())
    assert first == "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    second = signer.chunk_signature(first, hashlib.sha256(b"a" * 1024).hexdigest())
    assert second == "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
    final = signer.chunk_signature(second, EMPTY)
    assert final == "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
    body = encode_signed(
        b"a" * 66560,
        65536,
        secret=SECRET,
        amz_date="20130524T000000Z",
        scope=info.scope,
        seed=info.signature,
    )
    assert len(body) == 66824
    decoder = decoder_for(info, SECRET, decoded_content_length=66560)
    assert decoder.feed(body) == b"a" * 66560
    decoder.finish()


def test_signed_chunks_verify() -> None:
    request, info = signed_streaming_request("STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    request.body = signed_body(info, 8192)
    verify(request, info, SECRET)
    payload, trailers = decode_aws_chunked(request.body, verifier=chunk_verifier(info, SECRET))
    assert payload == PAYLOAD
    assert trailers == {}


def test_signed_chunks_with_signed_trailer_verify() -> None:
    request, info = signed_streaming_request(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "x-amz-checksum-crc32"
    )
    trailers = {"x-amz-checksum-crc32": crc32_b64(PAYLOAD)}
    request.body = signed_body(info, 65536, trailers)
    verify(request, info, SECRET)
    decoder = decoder_for(info, SECRET, decoded_content_length=len(PAYLOAD))
    assert decoder.feed(request.body) == PAYLOAD
    decoder.finish()
    assert decoder.trailers == trailers


def test_signed_trailer_with_several_headers() -> None:
    _, info = signed_streaming_request("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
    trailers = {"x-amz-checksum-sha256": "c2hh", "x-amz-checksum-crc32": crc32_b64(PAYLOAD)}
    body = signed_body(info, 30000, trailers)
    assert decode_aws_chunked(body, verifier=chunk_verifier(info, SECRET)) == (PAYLOAD, trailers)


@pytest.mark.parametrize("sizes", [ones, lambda: randoms(3)])
def test_signed_fed_in_pieces_equals_whole(sizes: object) -> None:
    _, info = signed_streaming_request("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
    trailers = {"x-amz-checksum-crc32": crc32_b64(PAYLOAD)}
    body = signed_body(info, 4096, trailers)
    decoder = decoder_for(info, SECRET)
    assert feed_in_pieces(decoder, body, sizes()) == PAYLOAD  # type: ignore[operator]
    assert decoder.trailers == trailers


def test_signed_data_is_held_back_until_its_chunk_verifies() -> None:
    _, info = signed_streaming_request("STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    body = signed_body(info, 1000)
    decoder = decoder_for(info, SECRET)
    header_end = body.index(b"\r\n") + 2
    assert decoder.feed(body[: header_end + 999]) == b""
    assert decoder.feed(body[header_end + 999 : header_end + 1002]) == PAYLOAD[:1000]


def test_decoder_for_unsigned_streaming_has_no_verifier() -> None:
    _, info = signed_streaming_request("STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    decoder = decoder_for(info, SECRET)
    assert decoder.feed(encode_unsigned(b"xyz", 2)) == b"xyz"
    decoder.finish()


# --------------------------------------------------------------------------- failures


def _signed_setup(
    trailers: dict[str, str] | None = None,
) -> tuple[SignatureInfo, bytes]:
    kind = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailers is not None else "")
    _, info = signed_streaming_request(kind)
    return info, signed_body(info, 5000, trailers)


def _decode_error(body: bytes, **kwargs: object) -> ChunkedError:
    decoder = AwsChunkedDecoder(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ChunkedError) as caught:
        decoder.feed(body)
        decoder.finish()
    return caught.value


def test_bad_chunk_signature() -> None:
    info, body = _signed_setup()
    position = body.index(b"chunk-signature=") + len(b"chunk-signature=")
    flipped = b"0" if body[position : position + 1] != b"0" else b"1"
    tampered = body[:position] + flipped + body[position + 1 :]
    error = _decode_error(tampered, verifier=chunk_verifier(info, SECRET))
    assert error.code == "SignatureDoesNotMatch"


def test_tampered_chunk_data() -> None:
    info, body = _signed_setup()
    position = body.index(b"\r\n") + 10
    tampered = body[:position] + bytes([body[position] ^ 1]) + body[position + 1 :]
    assert _decode_error(tampered, verifier=chunk_verifier(info, SECRET)).code == (
        "SignatureDoesNotMatch"
    )


def test_wrong_secret_or_seed() -> None:
    info, body = _signed_setup()
    assert _decode_error(body, verifier=chunk_verifier(info, "other")).code == (
        "SignatureDoesNotMatch"
    )
    other_seed = encode_signed(
        PAYLOAD,
        5000,
        secret=SECRET,
        amz_date=info.amz_date_text,
        scope=info.scope,
        seed="0" * 64,
    )
    assert _decode_error(other_seed, verifier=chunk_verifier(info, SECRET)).code == (
        "SignatureDoesNotMatch"
    )


def test_missing_chunk_signature_with_verifier() -> None:
    info, _ = _signed_setup()
    error = _decode_error(encode_unsigned(PAYLOAD, 5000), verifier=chunk_verifier(info, SECRET))
    assert error.code == "SignatureDoesNotMatch"


def test_bad_trailer_signature_and_missing_trailer_signature() -> None:
    trailers = {"x-amz-checksum-crc32": crc32_b64(PAYLOAD)}
    info, body = _signed_setup(trailers)
    verifier = chunk_verifier(info, SECRET)
    changed = body.replace(trailers["x-amz-checksum-crc32"].encode(), b"AAAAAA==")
    assert _decode_error(changed, verifier=verifier).code == "SignatureDoesNotMatch"
    stripped = body[: body.index(b"x-amz-trailer-signature:")] + b"\r\n"
    assert _decode_error(stripped, verifier=verifier).code == "SignatureDoesNotMatch"


def test_truncated_streams_raise_incomplete_body() -> None:
    trailers = {"x-amz-checksum-crc32": crc32_b64(PAYLOAD[:300])}
    body = encode_unsigned(PAYLOAD[:300], 100, trailers)
    for cut in range(len(body)):
        decoder = AwsChunkedDecoder()
        decoder.feed(body[:cut])
        with pytest.raises(ChunkedError) as caught:
            decoder.finish()
        assert caught.value.code == "IncompleteBody"


def test_truncated_signed_stream() -> None:
    info, body = _signed_setup({"x-amz-checksum-crc32": crc32_b64(PAYLOAD)})
    for cut in (len(body) - 1, len(body) - 2, len(body) // 2, 10):
        decoder = decoder_for(info, SECRET)
        decoder.feed(body[:cut])
        with pytest.raises(ChunkedError) as caught:
            decoder.finish()
        assert caught.value.code == "IncompleteBody"


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",
        b"0x3\r\nabc\r\n0\r\n\r\n",
        b"3 3\r\nabc\r\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"1" * 5000,
    ],
)
def test_bad_hex_size(body: bytes) -> None:
    assert _decode_error(body).code == "InvalidChunkSizeError"


def test_chunk_larger_than_the_limit() -> None:
    error = _decode_error(b"1001\r\n" + b"x" * 4097 + b"\r\n0\r\n\r\n", max_chunk_size=4096)
    assert error.code == "InvalidChunkSizeError"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"3\r\nabcd\r\n0\r\n\r\n", "InvalidRequest"),
        (b"3\nabc\r\n0\r\n\r\n", "InvalidRequest"),
        (b"3\r\nabc\r\n0\r\n\r\nextra", "InvalidRequest"),
        (b"3\r\nabc\r\n0\r\nno-colon\r\n\r\n", "MalformedTrailerError"),
        (b"3\r\nabc\r\n0\r\n:value\r\n\r\n", "MalformedTrailerError"),
        (b"3\r\nabc\r\n0\r\nx-amz-trailer-signature:a\r\nlate:b\r\n\r\n", "MalformedTrailerError"),
        (b"3\r\nabc\r\n0\r\nx:" + b"v" * 5000 + b"\r\n\r\n", "MalformedTrailerError"),
    ],
)
def test_malformed_framing(body: bytes, code: str) -> None:
    assert _decode_error(body).code == code


def test_decoded_content_length_is_enforced() -> None:
    body = encode_unsigned(b"abcdef", 4)
    assert _decode_error(body, decoded_content_length=5).code == "IncompleteBody"
    assert _decode_error(body, decoded_content_length=7).code == "IncompleteBody"
    payload = AwsChunkedDecoder(decoded_content_length=6).feed(body)
    assert payload == b"abcdef"


def test_errors_are_sticky() -> None:
    decoder = AwsChunkedDecoder()
    with pytest.raises(ChunkedError):
        decoder.feed(b"zz\r\n")
    with pytest.raises(ChunkedError):
        decoder.feed(b"0\r\n\r\n")
    with pytest.raises(ChunkedError):
        decoder.finish()


def test_mutated_bodies_only_raise_chunked_errors() -> None:
    info, body = _signed_setup({"x-amz-checksum-crc32": crc32_b64(PAYLOAD)})
    rng = random.Random(99)
    alphabet = b"0123456789abcdef;:=\r\n xz"
    for _ in range(300):
        mutated = bytearray(body[:20000] if rng.random() < 0.5 else body)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(mutated))
            mutated[position] = rng.choice(alphabet)
        for verifier in (None, chunk_verifier(info, SECRET)):
            decoder = AwsChunkedDecoder(verifier=verifier)
            try:
                decoder.feed(bytes(mutated))
                decoder.finish()
            except ChunkedError:
                pass


# --------------------------------------------------------------------------- a real boto3 upload


def _read_http_chunked(stream: BinaryIO) -> bytes:
    body = bytearray()
    while True:
        size = int(stream.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += stream.read(size)
        stream.readline()


class _CaptureHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_PUT(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_http_chunked(self.rfile)  # type: ignore[arg-type]
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        self.server.captured.append(HttpRequest("PUT", path, query, headers, body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_endpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, list[HttpRequest]]]:
    """An HTTPS capture server: boto3 only sends aws-chunked bodies over TLS."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    directory: Path = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CaptureHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.captured = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", server.captured  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("size", [0, 11, 2 * 1024 * 1024 + 123])
def test_real_boto3_put_object(tls_endpoint: tuple[str, list[HttpRequest]], size: int) -> None:
    endpoint, captured = tls_endpoint
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        verify=False,
        config=Config(retries={"total_max_attempts": 1}),
    )
    data = (PAYLOAD * (size // len(PAYLOAD) + 1))[:size]
    captured.clear()
    client.put_object(Bucket="bucket", Key="dir/a b+c~ü.txt", Body=data)
    request = captured[0]

    assert request.headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert "aws-chunked" in request.headers["content-encoding"]
    assert int(request.headers["x-amz-decoded-content-length"]) == size
    info = parse_signature(request)
    assert info is not None
    verify(request, info, SECRET)

    trailer_name = request.headers["x-amz-trailer"]
    decoder = decoder_for(info, SECRET, decoded_content_length=size)
    assert feed_in_pieces(decoder, request.body, randoms(size)) == data
    assert set(decoder.trailers) == {trailer_name}
    if trailer_name == "x-amz-checksum-crc32":
        assert decoder.trailers[trailer_name] == crc32_b64(data)
    assert decode_aws_chunked(request.body) == (data, decoder.trailers)
