"""Byte ranges and conditional requests, evaluated as S3 does."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime

from . import errors

_RANGE = re.compile(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)", re.IGNORECASE)
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
_COPY_RANGE_FORM = (
    "The x-amz-copy-source-range value must be of the form bytes=first-last where first and "
    "last are the zero-based offsets of the first and last bytes to copy"
)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive `(start, end)` a GET's `Range` header selects, or None for the whole object.

    `bytes=a-b`, `bytes=a-` and `bytes=-n` are understood; the end is clipped to the object.
    Like S3, a header that does not parse, names several ranges or has `b < a` is ignored. A
    start at or past the end of the object (any explicit range of an empty object) and a
    zero-length suffix are `InvalidRange` (416); a suffix range of an empty object is the
    (empty) whole object.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            raise errors.invalid_range(size, header)
        if size == 0:
            return None
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = int(last) if last else None
    if end is not None and end < start:
        return None
    if start >= size:
        raise errors.invalid_range(size, header)
    return start, size - 1 if end is None else min(end, size - 1)


def content_range(start: int, end: int, size: int) -> str:
    """The `Content-Range` of a partial response: `bytes 0-9/100`."""
    return f"bytes {start}-{end}/{size}"


def parse_copy_source_range(header: str, size: int) -> tuple[int, int]:
    """The inclusive `(start, end)` of UploadPartCopy's `x-amz-copy-source-range`.

    Unlike GET's `Range`, a malformed value is an error (`InvalidArgument`), and so is a range
    that does not lie within the source object.
    """
    match = _COPY_RANGE.fullmatch(header.strip())
    if match is None:
        raise errors.invalid_argument(_COPY_RANGE_FORM, "x-amz-copy-source-range", header)
    start, end = int(match.group(1)), int(match.group(2))
    if start > end or end >= size:
        raise errors.invalid_argument(
            f"Range specified is not valid for source object of size: {size}",
            "x-amz-copy-source-range",
            header,
        )
    return start, end


def http_date(epoch: float) -> str:
    """An HTTP date (`Last-Modified` form) for epoch seconds, truncated to the second."""
    return formatdate(int(epoch), usegmt=True)


def unquote_etag(etag: str) -> str:
    """An entity tag without its quotes and any weak `W/` marker."""
    value = etag.strip()
    if value[:2] in ("W/", "w/"):
        value = value[2:]
    return value.strip().strip('"')


def quote_etag(etag: str) -> str:
    """An entity tag in quotes, as S3 returns it."""
    return f'"{unquote_etag(etag)}"'


def etag_matches(header: str, etag: str) -> bool:
    """Whether an `If-Match`-style header (`*`, one tag or a comma-separated list) names `etag`."""
    wanted = unquote_etag(etag)
    for item in header.split(","):
        candidate = item.strip()
        if candidate == "*" or (candidate and unquote_etag(candidate) == wanted):
            return True
    return False


def _seconds(value: datetime | str | float | None) -> int | None:
    """Whole epoch seconds of a conditional date; None when absent or unparseable (ignored)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def check_preconditions(
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
    if_modified_since: datetime | str | float | None = None,
    if_unmodified_since: datetime | str | float | None = None,
    etag: str,
    last_modified: float,
    method: str = "GET",
) -> None:
    """Evaluate a read's conditional headers against the object's `etag` and `last_modified`.

    The order is RFC 7232's, which gives S3's documented pairs: If-Match true with
    If-Unmodified-Since false proceeds; If-None-Match false with If-Modified-Since true is a
    304. A failed If-Match or If-Unmodified-Since is 412 `PreconditionFailed`; a failed
    If-None-Match or If-Modified-Since is 304 for GET and HEAD and 412 for anything else
    (`method="COPY"` evaluates CopyObject's `x-amz-copy-source-if-*` headers). Dates compare
    at whole seconds; unparseable dates are ignored.
    """
    reading = method.upper() in ("GET", "HEAD")
    prefix = "" if reading or method.upper() != "COPY" else "x-amz-copy-source-"
    modified = int(last_modified)

    if if_match is not None:
        if not etag_matches(if_match, etag):
            raise errors.precondition_failed(f"{prefix}If-Match")
    else:
        since = _seconds(if_unmodified_since)
        if since is not None and modified > since:
            raise errors.precondition_failed(f"{prefix}If-Unmodified-Since")

    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            if reading:
                raise errors.not_modified(quote_etag(etag), http_date(last_modified))
            raise errors.precondition_failed(f"{prefix}If-None-Match")
    else:
        since = _seconds(if_modified_since)
        if since is not None and modified <= since:
            if reading:
                raise errors.not_modified(quote_etag(etag), http_date(last_modified))
            raise errors.precondition_failed(f"{prefix}If-Modified-Since")


def check_write_preconditions(
    if_match: str | None = None,
    if_none_match: str | None = None,
    current_etag: str | None = None,
    *,
    key: str = "",
) -> None:
    """Evaluate a conditional write (PutObject, CompleteMultipartUpload, CopyObject's target).

    `current_etag` is the ETag of the key's current object, None when there is none.
    `If-None-Match` accepts only `*`: 412 when the key exists. `If-Match` on a missing key is
    404 `NoSuchKey`, on a different ETag 412. Any other `If-None-Match` value, or both headers
    together, is S3's 501 `NotImplemented`.
    """
    if if_match is not None and if_none_match is not None:
        raise errors.not_implemented("If-Match")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise errors.not_implemented("If-None-Match")
        if current_etag is not None:
            raise errors.precondition_failed("If-None-Match")
    if if_match is not None:
        if current_etag is None:
            raise errors.no_such_key(key)
        if not etag_matches(if_match, current_etag):
            raise errors.precondition_failed("If-Match")
