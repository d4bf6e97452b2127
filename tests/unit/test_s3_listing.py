"""Tests for squall.services.s3.listing against a brute-force reference listing."""

from __future__ import annotations

import bisect
import random
import sqlite3
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

import pytest

from squall.core.errors import ServiceError
from squall.services.s3.listing import (
    MAX_CHAR,
    Page,
    decode_token,
    encode_token,
    list_page,
    url_encode,
    validate_encoding_type,
)


@dataclass(frozen=True)
class Obj:
    key: str


class Store:
    """Keys in sorted order with a `fetch` that counts its calls."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(set(keys))
        self.calls = 0

    def fetch(self, after: str, prefix: str, limit: int) -> list[Obj]:
        self.calls += 1
        assert limit > 0
        out: list[Obj] = []
        at = bisect.bisect_right(self.keys, after)
        at = max(at, bisect.bisect_left(self.keys, prefix))
        while at < len(self.keys) and len(out) < limit:
            key = self.keys[at]
            if not key.startswith(prefix):
                break
            out.append(Obj(key))
            at += 1
        return out


def reference(
    keys: list[str], prefix: str, delimiter: str | None, max_keys: int, after: str
) -> tuple[list[str], bool]:
    """Every item S3 would list after `after`, brute force: (first page, truncated)."""
    items: list[str] = []
    seen: set[str] = set()
    for key in sorted(set(keys)):
        if not key.startswith(prefix) or key <= after:
            continue
        if delimiter:
            found = key.find(delimiter, len(prefix))
            if found >= 0:
                common = key[: found + len(delimiter)]
                if common <= after or common in seen:
                    continue
                seen.add(common)
                items.append(common)
                continue
        items.append(key)
    limit = min(max_keys, 1000)
    return items[:limit], limit > 0 and len(items) > limit  # max-keys 0: never truncated


def names(page: Page[Obj]) -> list[str]:
    return [item if isinstance(item, str) else item.key for item in page.items]


def walk(store: Store, prefix: str, delimiter: str | None, max_keys: int) -> list[str]:
    """All items of a listing, page by page through continuation tokens."""
    out: list[str] = []
    after = ""
    for _ in range(100000):
        page = list_page(
            store.fetch, prefix=prefix, delimiter=delimiter, max_keys=max_keys, after=after
        )
        out.extend(names(page))
        if not page.truncated:
            return out
        assert page.items, "a truncated page must make progress"
        after = decode_token(encode_token(page.next_after))
    raise AssertionError("listing did not end")


BASIC = ["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla", "foo+1/bar", "quux ab/x"]


def test_no_delimiter() -> None:
    store = Store(BASIC)
    page = list_page(store.fetch)
    assert names(page) == sorted(BASIC)
    assert page.common_prefixes == []
    assert not page.truncated
    assert page.next_after == "quux ab/x"
    assert page.key_count == len(BASIC)


def test_delimiter_groups_keys() -> None:
    store = Store(BASIC)
    page = list_page(store.fetch, delimiter="/")
    assert [e.key for e in page.entries] == ["asdf"]
    assert page.common_prefixes == ["boo/", "cquux/", "foo+1/", "quux ab/"]
    assert names(page) == ["asdf", "boo/", "cquux/", "foo+1/", "quux ab/"]
    assert not page.truncated
    assert page.key_count == 5


def test_prefix_and_delimiter() -> None:
    store = Store(BASIC)
    page = list_page(store.fetch, prefix="boo/", delimiter="/")
    assert [e.key for e in page.entries] == ["boo/bar"]
    assert page.common_prefixes == ["boo/baz/"]
    page = list_page(store.fetch, prefix="boo", delimiter="/")
    assert page.common_prefixes == ["boo/"]
    assert page.entries == []
    page = list_page(store.fetch, prefix="nothing", delimiter="/")
    assert page.items == [] and not page.truncated and page.next_after == ""


def test_common_prefixes_count_toward_max_keys() -> None:
    store = Store(BASIC)
    page = list_page(store.fetch, delimiter="/", max_keys=2)
    assert names(page) == ["asdf", "boo/"]
    assert page.truncated
    assert page.next_after == "boo/"
    page = list_page(store.fetch, delimiter="/", max_keys=2, after=page.next_after)
    assert names(page) == ["cquux/", "foo+1/"]
    assert page.truncated
    page = list_page(store.fetch, delimiter="/", max_keys=2, after=page.next_after)
    assert names(page) == ["quux ab/"]
    assert not page.truncated


def test_marker_on_a_common_prefix_skips_its_group() -> None:
    # S3: --delimiter / --marker boo/ --max-keys 1 is not truncated by boo/'s other keys
    store = Store(["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla"])
    page = list_page(store.fetch, delimiter="/", max_keys=1, after="boo/")
    assert names(page) == ["cquux/"]
    assert not page.truncated


def test_truncation_is_exact() -> None:
    store = Store(["a", "b/1", "b/2", "b/3"])
    page = list_page(store.fetch, delimiter="/", max_keys=2)
    assert names(page) == ["a", "b/"]
    assert not page.truncated  # the rest belongs to the last common prefix
    page = list_page(store.fetch, max_keys=4)
    assert not page.truncated
    page = list_page(store.fetch, max_keys=3)
    assert page.truncated and page.next_after == "b/2"


def test_max_keys_zero_and_cap() -> None:
    store = Store(BASIC)
    page = list_page(store.fetch, max_keys=0)
    assert page.items == [] and not page.truncated
    assert store.calls == 0
    big = Store([f"k{i:05d}" for i in range(2500)])
    page = list_page(big.fetch, max_keys=5000)
    assert len(page.entries) == 1000 and page.truncated
    assert page.next_after == "k00999"


def test_start_after_before_prefix_and_inside() -> None:
    store = Store(BASIC)
    assert names(list_page(store.fetch, prefix="c", after="a")) == ["cquux/bla", "cquux/thud"]
    assert names(list_page(store.fetch, prefix="c", after="cquux/bla")) == ["cquux/thud"]
    assert names(list_page(store.fetch, prefix="c", after="z")) == []


def test_multi_character_delimiter() -> None:
    store = Store(["a--b--c", "a--d", "a-e", "x"])
    page = list_page(store.fetch, delimiter="--")
    assert names(page) == ["a--", "a-e", "x"]
    page = list_page(store.fetch, prefix="a--", delimiter="--")
    assert names(page) == ["a--b--", "a--d"]


def test_big_group_is_skipped_in_one_fetch() -> None:
    keys = ["a"] + [f"big/{i:06d}" for i in range(50000)] + ["c"]
    store = Store(keys)
    page = list_page(store.fetch, delimiter="/", max_keys=1000)
    assert names(page) == ["a", "big/", "c"]
    assert store.calls <= 3


def test_keys_continuing_with_the_greatest_code_point() -> None:
    keys = ["p/", f"p/{MAX_CHAR}", f"p/{MAX_CHAR}x", f"p/{MAX_CHAR}{MAX_CHAR}z/q", "p0", "q"]
    store = Store(keys)
    page = list_page(store.fetch, delimiter="/", max_keys=1)
    assert names(page) == ["p/"] and page.truncated
    page = list_page(store.fetch, delimiter="/", max_keys=10, after="p/")
    assert names(page) == ["p0", "q"]
    assert walk(store, "", "/", 1) == ["p/", "p0", "q"]
    assert walk(store, "p/", "/", 1) == reference(keys, "p/", "/", 1000, "")[0]


ALPHABET = ["a", "b", "/", "-", ".", " ", "+", "é", "中", "😀", "\x7f", MAX_CHAR, "\x01", "%"]


def random_keys(rng: random.Random, count: int) -> list[str]:
    keys = set()
    while len(keys) < count:
        length = rng.randrange(1, 9)
        keys.add("".join(rng.choice(ALPHABET) for _ in range(length)))
    return list(keys)


def test_python_order_is_utf8_binary_order() -> None:
    keys = random_keys(random.Random(1), 3000)
    assert sorted(keys) == sorted(keys, key=lambda k: k.encode("utf-8"))


@pytest.mark.parametrize("seed", range(8))
def test_against_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    keys = random_keys(rng, rng.choice([50, 400, 3000]))
    store = Store(keys)
    for _ in range(60):
        prefix = rng.choice(["", "", "a", "a/", "b", "/", "é", "😀", "a/b", MAX_CHAR])
        delimiter = rng.choice([None, "/", "/", "-", "é", "ab", MAX_CHAR, ""])
        max_keys = rng.choice([0, 1, 2, 3, 7, 50, 1000, 1001])
        after = rng.choice(["", "", rng.choice(keys), "a/", "b", "/", "é/", MAX_CHAR])
        page = list_page(
            store.fetch, prefix=prefix, delimiter=delimiter, max_keys=max_keys, after=after
        )
        expected, truncated = reference(keys, prefix, delimiter, max_keys, after)
        assert names(page) == expected, (prefix, delimiter, max_keys, after)
        assert page.truncated == truncated
        assert page.key_count == len(expected)
        assert page.next_after == (expected[-1] if expected else after)
        commons = [i for i in page.items if isinstance(i, str)]
        assert page.common_prefixes == commons
        assert [e.key for e in page.entries] == [i.key for i in page.items if isinstance(i, Obj)]
        for common in commons:
            assert delimiter and common.startswith(prefix) and common.endswith(delimiter)
            assert delimiter not in common[len(prefix) : -len(delimiter)]
        for entry in page.entries:
            assert not delimiter or delimiter not in entry.key[len(prefix) :]
        # whole listings page by page equal the one-shot reference, without duplicates
        if max_keys in (1, 3, 7):
            full = reference(keys, prefix, delimiter, 1000, "")[0]
            if len(full) < 1000:
                assert walk(store, prefix, delimiter, max_keys) == full


def test_sqlite_fetch_with_binary_collation() -> None:
    """The fetch the store will run: SQLite's BINARY order agrees with the jump key."""
    rng = random.Random(42)
    keys = random_keys(rng, 2000)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE o (key TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO o VALUES (?)", [(k,) for k in keys])

    def fetch(after: str, prefix: str, limit: int) -> list[Obj]:
        rows = conn.execute(
            "SELECT key FROM o WHERE key > ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
            (after, len(prefix), prefix, limit),
        )
        return [Obj(row[0]) for row in rows]

    store = Store(keys)
    assert [o.key for o in fetch("", "", 10000)] == store.keys
    for prefix in ("", "a", "é", "/"):
        for delimiter in (None, "/", "é"):
            for max_keys in (1, 5, 1000):
                page = list_page(fetch, prefix=prefix, delimiter=delimiter, max_keys=max_keys)
                assert names(page) == reference(keys, prefix, delimiter, max_keys, "")[0]


def test_tokens_round_trip() -> None:
    for after in ("", "a", "boo/", "中文/😀", MAX_CHAR, "a b+c%/d", "x" * 1024):
        token = encode_token(after)
        assert decode_token(token) == after
        assert all(c.isalnum() or c in "-_" for c in token)
    assert encode_token("a") != encode_token("b")


@pytest.mark.parametrize("token", ["", "garbage", "!!!!", "YQ", encode_token("a")[:-1], "a" * 9])
def test_bad_tokens(token: str) -> None:
    with pytest.raises(ServiceError) as caught:
        decode_token(token)
    error = caught.value
    assert error.code == "InvalidArgument"
    assert error.status == 400
    assert error.message == "The continuation token provided is incorrect"
    assert error.fields == {"ArgumentName": "continuation-token", "ArgumentValue": token}


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("a b.txt", "a%20b.txt"),
        ("a+b.txt", "a%2Bb.txt"),
        ("foo+1/", "foo%2B1/"),
        ("quux ab/", "quux%20ab/"),
        ("100%.csv", "100%25.csv"),
        ("한글/x.txt", "%ED%95%9C%EA%B8%80/x.txt"),
        ("run books/x.txt", "run%20books/x.txt"),
        ("a/b-c_d.e~f", "a/b-c_d.e~f"),
        ("ctl\x01\x0a", "ctl%01%0A"),
        ("q?x=1&y#z", "q%3Fx%3D1%26y%23z"),
    ],
)
def test_url_encode(key: str, encoded: str) -> None:
    assert url_encode(key) == encoded
    # botocore decodes with unquote_plus; plain unquote works too
    assert unquote_plus(encoded) == key
    assert unquote(encoded) == key


def test_encoding_type_validation() -> None:
    validate_encoding_type(None)
    validate_encoding_type("url")
    with pytest.raises(ServiceError) as caught:
        validate_encoding_type("base64")
    assert caught.value.code == "InvalidArgument"
    assert caught.value.fields["ArgumentName"] == "encoding-type"
