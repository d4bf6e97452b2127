"""Paging for ListObjects, ListObjectsV2 and ListObjectVersions over keys in UTF-8 binary order.

The caller supplies `fetch(after, prefix, limit)`: up to `limit` entries whose key is greater
than `after` and starts with `prefix`, in key order (SQLite's BINARY collation on UTF-8 text
gives exactly that order, and so does Python's `str` comparison: code point order is UTF-8
byte order). `list_page` groups keys under common prefixes when a delimiter is given and
counts entries and common prefixes together against max-keys, as S3 does.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar
from urllib.parse import quote

from . import errors

MAX_KEYS = 1000
# The greatest code point: `p + MAX_CHAR` sorts after every key that starts with `p` except
# keys that continue with U+10FFFF itself, which `list_page` steps over one by one.
MAX_CHAR = "\U0010ffff"
_TOKEN_ERROR = "The continuation token provided is incorrect"


class Keyed(Protocol):
    """Anything listed: an object, a version, an upload; only its key matters here."""

    @property
    def key(self) -> str: ...


E = TypeVar("E", bound=Keyed)


@dataclass(slots=True)
class Page(Generic[E]):
    """One page of a listing.

    `items` holds entries and common prefixes (as `str`) interleaved in key order;
    `next_after` is the last key or common prefix returned (NextMarker, or what the
    continuation token resumes after), `after` itself when the page is empty.
    """

    entries: list[E] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    items: list[E | str] = field(default_factory=list)
    truncated: bool = False
    next_after: str = ""

    @property
    def key_count(self) -> int:
        """Entries plus common prefixes: ListObjectsV2's `KeyCount`."""
        return len(self.items)


Fetch = Callable[[str, str, int], Sequence[E]]


def list_page(
    fetch: Fetch[E],
    *,
    prefix: str = "",
    delimiter: str | None = None,
    max_keys: int = MAX_KEYS,
    after: str = "",
) -> Page[E]:
    """The page of keys after `after` (exclusive) under `prefix`, at most `max_keys` items.

    With a delimiter, keys holding it after the prefix collapse into one common prefix (up to
    and including the delimiter's first occurrence), counted once against max-keys; a common
    prefix that is not after `after` is skipped whole, so resuming from a page that ended on
    a common prefix does not return it again. `max_keys` is capped at 1000 as S3 does; 0 gives
    an empty page that is not truncated. `truncated` is exact: it is set only when another
    entry or new common prefix follows. Keys are assumed unique (one entry per key, as for an
    unversioned bucket's ListObjectVersions): resuming after a key skips all of its entries.
    """
    page: Page[E] = Page(next_after=after)
    limit = min(max_keys, MAX_KEYS)
    if limit <= 0:
        return page
    cursor = after
    delimiter = delimiter or None
    group: str | None = None  # the common prefix whose keys are being stepped over
    start = len(prefix)
    while True:
        want = limit - len(page.items) + 1
        batch = fetch(cursor, prefix, want)
        for entry in batch:
            key = entry.key
            cursor = key
            if group is not None and key.startswith(group):
                continue
            group = None
            if delimiter is not None:
                found = key.find(delimiter, start)
                if found >= 0:
                    common = key[: found + len(delimiter)]
                    group = common
                    if common <= after:
                        continue
                    if len(page.items) == limit:
                        page.truncated = True
                        return page
                    page.common_prefixes.append(common)
                    page.items.append(common)
                    page.next_after = common
                    continue
            if len(page.items) == limit:
                page.truncated = True
                return page
            page.entries.append(entry)
            page.items.append(entry)
            page.next_after = key
        if len(batch) < want:
            return page
        if group is not None:
            # jump over the rest of the group in one fetch
            cursor = max(cursor, group + MAX_CHAR)


def encode_token(after: str) -> str:
    """An opaque, URL-safe continuation token that resumes a listing after `after`."""
    raw = after.encode("utf-8")
    payload = raw + zlib.crc32(raw).to_bytes(4, "big")
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_token(token: str) -> str:
    """The key a continuation token resumes after; `InvalidArgument` for anything else."""
    try:
        text = token.strip()
        payload = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        raw, check = payload[:-4], payload[-4:]
        if len(payload) < 4 or zlib.crc32(raw).to_bytes(4, "big") != check:
            raise ValueError("checksum")
        return raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise errors.invalid_argument(_TOKEN_ERROR, "continuation-token", token) from None


def url_encode(value: str) -> str:
    """A key or prefix as S3 returns it under `encoding-type=url`.

    Percent-encoding of the UTF-8 bytes with `/` and the unreserved characters kept, spaces as
    `%20` and `+` as `%2B` (what S3 sends, per the s3-tests suite; botocore decodes it with
    `unquote_plus`, which reads `%20` and `%2B` back correctly).
    """
    return quote(value, safe="/")


def validate_encoding_type(encoding_type: str | None) -> None:
    """S3 accepts only `url` for `encoding-type`."""
    if encoding_type is not None and encoding_type != "url":
        raise errors.invalid_argument(
            "Invalid Encoding Method specified in Request", "encoding-type", encoding_type
        )
