"""Bucket-name and object-key validation, with S3's rules and errors."""

from __future__ import annotations

import re

from . import errors

MAX_KEY_BYTES = 1024

# Lowercase letters, digits, dots and hyphens; a letter or digit at both ends.
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def is_valid_bucket_name(name: str) -> bool:
    """Whether `name` follows S3's naming rules for general purpose buckets."""
    if not 3 <= len(name) <= 63 or not _BUCKET_CHARS.fullmatch(name):
        return False
    # Each dot-separated label must begin and end with a letter or digit: S3 rejects
    # adjacent dots and the `.-` / `-.` pairs alike.
    if ".." in name or ".-" in name or "-." in name:
        return False
    if _IP_ADDRESS.fullmatch(name):
        return False
    return not name.startswith(_RESERVED_PREFIXES) and not name.endswith(_RESERVED_SUFFIXES)


def validate_bucket_name(name: str) -> None:
    """Raise S3's `InvalidBucketName` unless `name` is a valid general purpose bucket name."""
    if not is_valid_bucket_name(name):
        raise errors.invalid_bucket_name(name)


def validate_key(key: str) -> None:
    """Raise unless `key` can name an object: non-empty, valid Unicode, at most 1024 UTF-8 bytes.

    An empty key gets `InvalidArgument` (S3 cannot even route such a request to an object);
    a key with unpaired surrogates (undecodable percent-escapes) gets `InvalidURI`; a long key
    gets `KeyTooLongError` with the key's size.
    """
    if not key:
        raise errors.invalid_argument("The object key must not be empty.", "key", key)
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise errors.invalid_uri() from None
    if size > MAX_KEY_BYTES:
        raise errors.key_too_long(size)
