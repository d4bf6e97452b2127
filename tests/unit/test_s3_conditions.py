"""Tests for squall.services.s3.conditions: ranges and conditional requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from squall.core.errors import ServiceError
from squall.services.s3.conditions import (
    check_preconditions,
    check_write_preconditions,
    content_range,
    etag_matches,
    http_date,
    parse_copy_source_range,
    parse_range,
    quote_etag,
    unquote_etag,
)

# --- Range ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=0-0", 100, (0, 0)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-100", 100, (0, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=50-1000", 100, (50, 99)),
        ("bytes=99-99", 100, (99, 99)),
        ("bytes=99-", 100, (99, 99)),
        ("BYTES=1-2", 100, (1, 2)),
        (" bytes = 1 - 2 ", 100, (1, 2)),
        ("bytes=0-4294967296", 10, (0, 9)),
        # ignored, as S3 does: the whole object with a 200
        ("", 100, None),
        ("bytes=", 100, None),
        ("bytes=-", 100, None),
        ("bytes=5-2", 100, None),
        ("bytes=1-0", 4, None),
        ("bytes=0-1,5-6", 100, None),
        ("bytes=0-1, 5-6", 100, None),
        ("items=0-1", 100, None),
        ("bytes=a-b", 100, None),
        ("bytes=invalid-range", 100, None),
        ("0-10", 100, None),
        ("bytes=1.5-2", 100, None),
        ("bytes=--1", 100, None),
        # a suffix range of an empty object reads the (empty) object
        ("bytes=-1", 0, None),
        ("bytes=-512", 0, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=1000-2000", 100),
        ("bytes=0-", 0),
        ("bytes=0-0", 0),
        ("bytes=1-2", 0),
        ("bytes=-0", 100),
        ("bytes=-0", 0),
    ],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_range(header, size)
    error = caught.value
    assert error.code == "InvalidRange"
    assert error.status == 416
    assert error.message == "The requested range is not satisfiable"
    assert error.fields == {"ActualObjectSize": size, "RangeRequested": header}
    assert error.headers == {"Content-Range": f"bytes */{size}"}


def test_content_range() -> None:
    assert content_range(0, 9, 100) == "bytes 0-9/100"
    assert content_range(*parse_range("bytes=-10", 100), 100) == "bytes 90-99/100"  # type: ignore[misc]


def test_copy_source_range() -> None:
    assert parse_copy_source_range("bytes=0-9", 100) == (0, 9)
    assert parse_copy_source_range("bytes=99-99", 100) == (99, 99)
    for bad in ("0-9", "bytes=0-", "bytes=-9", "bytes=a-b", "bytes=0-1,2-3", "", "bytes=0"):
        with pytest.raises(ServiceError) as caught:
            parse_copy_source_range(bad, 100)
        assert caught.value.code == "InvalidArgument"
        assert caught.value.message.startswith("The x-amz-copy-source-range value must be of")
        assert caught.value.fields == {
            "ArgumentName": "x-amz-copy-source-range",
            "ArgumentValue": bad,
        }
    for outside in ("bytes=0-100", "bytes=100-100", "bytes=5-2"):
        with pytest.raises(ServiceError) as caught:
            parse_copy_source_range(outside, 100)
        assert caught.value.code == "InvalidArgument"
        assert caught.value.message == "Range specified is not valid for source object of size: 100"


# --- ETags and dates -----------------------------------------------------------------------

ETAG = '"9b2cf535f27731c974343645a3985328"'
BARE = "9b2cf535f27731c974343645a3985328"
MODIFIED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp() + 0.75  # sub-second part


def test_etag_matching() -> None:
    assert etag_matches(ETAG, ETAG)
    assert etag_matches(BARE, ETAG)
    assert etag_matches(ETAG, BARE)
    assert etag_matches("*", ETAG)
    assert etag_matches(f'"other", {ETAG}', ETAG)
    assert etag_matches(f'W/"{BARE}"', ETAG)
    assert etag_matches(' "x" ,* ', ETAG)
    assert not etag_matches('"other"', ETAG)
    assert not etag_matches("", ETAG)
    assert not etag_matches('"other", "another"', ETAG)
    assert etag_matches('"abc-2"', '"abc-2"')
    assert unquote_etag(' W/"abc" ') == "abc"
    assert quote_etag("abc") == '"abc"'
    assert quote_etag('"abc"') == '"abc"'


def test_http_date() -> None:
    assert http_date(MODIFIED) == "Wed, 01 May 2024 12:00:00 GMT"
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


# --- Conditional reads ---------------------------------------------------------------------

AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)  # the object's modification, whole seconds
BEFORE = AT - timedelta(seconds=1)
AFTER = AT + timedelta(seconds=1)


def outcome(method: str = "GET", **headers: object) -> str | int:
    """200 when the request proceeds, else the error's status and condition/code."""
    try:
        check_preconditions(etag=ETAG, last_modified=MODIFIED, method=method, **headers)  # type: ignore[arg-type]
    except ServiceError as error:
        if error.status == 304:
            assert error.code == "NotModified"
            assert error.headers == {"ETag": ETAG, "Last-Modified": "Wed, 01 May 2024 12:00:00 GMT"}
            return 304
        assert error.code == "PreconditionFailed"
        assert error.status == 412
        assert error.message == "At least one of the pre-conditions you specified did not hold"
        return f"412 {error.fields['Condition']}"
    return 200


def test_no_conditions() -> None:
    assert outcome() == 200


def test_if_match() -> None:
    assert outcome(if_match=ETAG) == 200
    assert outcome(if_match="*") == 200
    assert outcome(if_match='"nope"') == "412 If-Match"
    assert outcome("HEAD", if_match='"nope"') == "412 If-Match"


def test_if_none_match() -> None:
    assert outcome(if_none_match='"nope"') == 200
    assert outcome(if_none_match=ETAG) == 304
    assert outcome("HEAD", if_none_match=ETAG) == 304
    assert outcome(if_none_match="*") == 304
    assert outcome("PUT", if_none_match=ETAG) == "412 If-None-Match"


def test_if_modified_since() -> None:
    # modified at 12:00:00.75; whole-second comparison makes "since 12:00:00" not modified
    assert outcome(if_modified_since=AT) == 304
    assert outcome(if_modified_since=AFTER) == 304
    assert outcome(if_modified_since=BEFORE) == 200
    assert outcome(if_modified_since="Wed, 01 May 2024 12:00:00 GMT") == 304
    assert outcome(if_modified_since="Wed, 01 May 2024 11:59:59 GMT") == 200
    assert outcome(if_modified_since="not a date") == 200  # ignored


def test_if_unmodified_since() -> None:
    assert outcome(if_unmodified_since=AT) == 200
    assert outcome(if_unmodified_since=AFTER) == 200
    assert outcome(if_unmodified_since=BEFORE) == "412 If-Unmodified-Since"
    assert outcome(if_unmodified_since="garbage") == 200
    # time zones and naive datetimes (taken as UTC)
    eastern = AT.astimezone(timezone(timedelta(hours=-5)))
    assert outcome(if_unmodified_since=eastern) == 200
    assert outcome(if_unmodified_since=BEFORE.replace(tzinfo=None)) == "412 If-Unmodified-Since"
    assert outcome(if_unmodified_since=BEFORE.timestamp()) == "412 If-Unmodified-Since"


def test_s3_documented_pairs() -> None:
    # If-Match true + If-Unmodified-Since false: 200 OK and the data
    assert outcome(if_match=ETAG, if_unmodified_since=BEFORE) == 200
    # If-None-Match false + If-Modified-Since true: 304 Not Modified
    assert outcome(if_none_match=ETAG, if_modified_since=BEFORE) == 304


def test_precedence() -> None:
    # If-Match fails first, whatever else holds
    assert outcome(if_match='"nope"', if_none_match=ETAG) == "412 If-Match"
    assert outcome(if_match='"nope"', if_modified_since=AFTER) == "412 If-Match"
    # a failed If-Unmodified-Since beats a 304
    assert outcome(if_unmodified_since=BEFORE, if_none_match=ETAG) == "412 If-Unmodified-Since"
    # If-None-Match true makes If-Modified-Since irrelevant
    assert outcome(if_none_match='"nope"', if_modified_since=AFTER) == 200
    # all four satisfied
    assert (
        outcome(
            if_match=ETAG,
            if_unmodified_since=AFTER,
            if_none_match='"nope"',
            if_modified_since=BEFORE,
        )
        == 200
    )


def test_copy_source_conditions_fail_with_412() -> None:
    assert outcome("COPY", if_none_match=ETAG) == "412 x-amz-copy-source-If-None-Match"
    assert outcome("COPY", if_modified_since=AFTER) == "412 x-amz-copy-source-If-Modified-Since"
    assert outcome("COPY", if_match='"x"') == "412 x-amz-copy-source-If-Match"
    assert outcome("COPY", if_unmodified_since=BEFORE) == (
        "412 x-amz-copy-source-If-Unmodified-Since"
    )
    # the documented CopyObject pairs
    assert outcome("COPY", if_match=ETAG, if_unmodified_since=BEFORE) == 200
    assert outcome("COPY", if_none_match=ETAG, if_modified_since=BEFORE) == (
        "412 x-amz-copy-source-If-None-Match"
    )


def test_not_modified_quotes_a_bare_etag() -> None:
    with pytest.raises(ServiceError) as caught:
        check_preconditions(if_none_match="*", etag=BARE, last_modified=MODIFIED, method="GET")
    assert caught.value.headers["ETag"] == ETAG


# --- Conditional writes --------------------------------------------------------------------


def write_outcome(**kwargs: object) -> str | int:
    try:
        check_write_preconditions(key="k", **kwargs)  # type: ignore[arg-type]
    except ServiceError as error:
        detail = error.fields.get("Condition") or error.fields.get("Header") or ""
        return f"{error.status} {error.code} {detail}".strip()
    return 200


def test_write_preconditions() -> None:
    assert write_outcome() == 200
    assert write_outcome(current_etag=ETAG) == 200
    assert write_outcome(if_none_match="*") == 200
    assert (
        write_outcome(if_none_match="*", current_etag=ETAG)
        == "412 PreconditionFailed If-None-Match"
    )
    assert write_outcome(if_match=ETAG, current_etag=ETAG) == 200
    assert write_outcome(if_match=BARE, current_etag=ETAG) == 200
    assert write_outcome(if_match='"other"', current_etag=ETAG) == "412 PreconditionFailed If-Match"
    assert write_outcome(if_match=ETAG) == "404 NoSuchKey"
    assert (
        write_outcome(if_none_match=ETAG, current_etag=ETAG) == "501 NotImplemented If-None-Match"
    )
    assert write_outcome(if_match=ETAG, if_none_match="*", current_etag=ETAG) == (
        "501 NotImplemented If-Match"
    )


def test_write_precondition_positional_and_key() -> None:
    with pytest.raises(ServiceError) as caught:
        check_write_preconditions(ETAG, None, None, key="photos/cat.jpg")
    assert caught.value.code == "NoSuchKey"
    assert caught.value.fields == {"Key": "photos/cat.jpg"}
