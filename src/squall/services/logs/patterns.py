"""CloudWatch Logs filter patterns: FilterLogEvents, metric and subscription filters, Live Tail.

`compile_pattern(text)` parses a pattern once; the `FilterPattern` it returns answers `matches`
per message (kept lean: it runs on up to a million messages a call) and `required_terms`, the
substrings every match contains, for a SQL prefilter. Bad syntax raises
`ValueError("Invalid filter pattern: ...")`.

The four documented forms, chosen by the pattern's first character:

* Terms (anything else). Case-sensitive substrings, separated by spaces; all must occur.
  `"..."` quotes a phrase (`\\"` and `\\\\` escape); `-term` excludes; `?term` starts an
  alternative: `?A ?B` is A or B, and `?A x ?B y` is (A and x) or (B and y), the way the AWS CDK
  renders term groups. Terms before the first `?` are a group of their own. An empty or
  whitespace-only phrase (`" "`) matches everything, as does an empty pattern.
* `%regex%`, standalone: a search with the documented subset (letters, digits, `_#=@/;,-:`,
  space, the operators `^$?[]{}|\\*+.`, backslash escapes); no `(`/`)`, no multi-byte characters.
  RE2 runs it, in time linear in the message (a backtracking engine such as `re` takes seconds
  on 40 characters for `a*a*a*a*a*a*a*a*b`, holding the GIL); so `\\d`, `\\w`, `\\s` and `\\b`
  are ASCII-only, as in Java, and repetition counts stop at 1000. `$` matches at the end or
  before a final newline, as in `re` and Java.
* `{ ... }`, JSON: the whole message must be a JSON object (or an array, when a selector starts
  with `$[n]`); a text line with JSON after a prefix does not count. Conditions
  `$.a.b[0] op value` with `= != < <= > >=`, `IS NULL`, `IS TRUE`, `IS FALSE`, `NOT EXISTS`,
  joined by `&&` (binds tighter) and `||`, grouped by parentheses. Values are quoted strings,
  bare words, numbers or `%regex%`; `*` at the start or end of a string value is a wildcard
  (`*` alone: any value). A selector that is missing or names an object or array matches no
  comparison, `!=` included.
* `[ ... ]`, space-delimited: comma-separated fields, each `...` (any number of message fields,
  at most once), a name, nothing, or conditions on named fields (`status = 4* && bytes > 1000`,
  `w1 = ERROR || w1 = WARN`). The message splits on whitespace; `"..."` and `[...]` are one field
  each (without the quotes or brackets). Without `...` the field counts must be equal.

JSON and space-delimited patterns take at most two regexes, as in AWS, and nest parentheses at
most `MAX_DEPTH` deep.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
import re2
from re2 import _re2  # the binding under re2's `re`-like API: a yes/no search, 2-5x faster

__all__ = ["FilterPattern", "compile_pattern"]

_Pred = Callable[[Any], bool]

MAX_REGEXES = 2  # per JSON or space-delimited pattern
MAX_DEPTH = 50  # nested parentheses in a JSON or space-delimited pattern

_MISSING: Any = object()  # a selector that resolves to nothing

_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_SELECTOR_RE = re.compile(r"\$((?:\.[A-Za-z0-9_-]+|\[\d+\])+)")
_SELECTOR_STEP_RE = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
_ESCAPE_RE = re.compile(r"\\(.)", re.S)
# Unquoted values: other characters (@, $, backslash, non-ASCII) must be quoted.
_BARE_VALUE_RE = re.compile(r"[A-Za-z0-9_.*+:/-]+")
# One term of a text pattern: an optional ? or - and a quoted phrase or a bare word.
_TERM_RE = re.compile(r'([?-]?)\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))', re.S)
# Fields of a space-delimited message: "quoted", [bracketed] or a run of non-space characters.
_FIELDS = re.compile(r'(?=\S)(?:"[^"]*+"?|\[[^\]]*+\]?|\S++)').findall
# Tokens of JSON and space-delimited conditions.
_LEX_RE = re.compile(
    r"""(?P<lp>\()|(?P<rp>\))|(?P<and>&&)|(?P<or>\|\|)|(?P<comma>,)
    |(?P<op>!=|<=|>=|=|<|>)
    |"(?P<str>(?:[^"\\]|\\.)*)"
    |%(?P<re>[^%]*)%
    |(?P<word>[^\s()&|,=!<>"%]+)""",
    re.X | re.S,
)

_REGEX_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_#=@/;,-: ")
_REGEX_OPERATORS = frozenset("^$?[]{}|*+.")
_REGEX_CLASS_ESCAPES = frozenset("dDwWsSbBntrfv")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.never_capture = True  # only whether a message matches counts
_RE2_OPTIONS.log_errors = False  # a bad pattern is the caller's error: keep it out of the log
_RE2_OPTIONS.max_mem = 1 << 20  # per regex, of 8 MiB by default (past it RE2 uses slower paths)
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_END_OF_TEXT = r"(?:\n?\z)"  # `$` as `re` and Java read it; RE2's `$` is the very end

_NUMERIC_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _error(reason: str) -> ValueError:
    return ValueError(f"Invalid filter pattern: {reason}")


class FilterPattern:
    """A compiled filter pattern. `kind`: all, terms, regex, json or delimited."""

    __slots__ = ("text",)
    kind: ClassVar[str] = "all"

    def __init__(self, text: str) -> None:
        self.text = text

    def matches(self, message: str) -> bool:
        """Whether `message` matches (the base pattern matches everything)."""
        return True

    def required_terms(self) -> list[str]:
        """Substrings every matching message contains (case-sensitive); [] if none derive."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.text!r}>"


def compile_pattern(text: str | None) -> FilterPattern:
    """Parse a filter pattern; raises ValueError("Invalid filter pattern: ...") on bad syntax."""
    text = text or ""
    body = text.strip()
    if not body:
        return FilterPattern(text)
    first = body[0]
    if first == "{":
        if len(body) < 2 or body[-1] != "}":
            raise _error("a JSON pattern must end with '}'")
        return _JsonPattern(text, body[1:-1])
    if first == "[":
        if len(body) < 2 or body[-1] != "]":
            raise _error("a space-delimited pattern must end with ']'")
        return _parse_delimited(text, body[1:-1])
    if first == "%":
        if len(body) < 2 or body[-1] != "%":
            raise _error("a regular expression must be enclosed in % and stand alone")
        return _RegexPattern(text, body[1:-1])
    return _parse_terms(text, body)


# -- terms -------------------------------------------------------------------------------------


class _TermPattern(FilterPattern):
    __slots__ = ("_term",)
    kind = "terms"

    def __init__(self, text: str, term: str) -> None:
        super().__init__(text)
        self._term = term

    def matches(self, message: str) -> bool:
        return self._term in message

    def required_terms(self) -> list[str]:
        return [self._term]


class _AllTermsPattern(FilterPattern):
    __slots__ = ("_excludes", "_includes")
    kind = "terms"

    def __init__(self, text: str, includes: tuple[str, ...], excludes: tuple[str, ...]) -> None:
        super().__init__(text)
        self._includes = includes
        self._excludes = excludes

    def matches(self, message: str) -> bool:
        for term in self._includes:
            if term not in message:
                return False
        for term in self._excludes:  # noqa: SIM110 - a loop beats all() on a few terms
            if term in message:
                return False
        return True

    def required_terms(self) -> list[str]:
        return list(self._includes)


class _AnyTermPattern(FilterPattern):
    __slots__ = ("_terms",)
    kind = "terms"

    def __init__(self, text: str, terms: tuple[str, ...]) -> None:
        super().__init__(text)
        self._terms = terms

    def matches(self, message: str) -> bool:
        for term in self._terms:  # noqa: SIM110 - a loop beats any() on a few terms
            if term in message:
                return True
        return False


class _TermGroupsPattern(FilterPattern):
    __slots__ = ("_groups",)
    kind = "terms"

    def __init__(self, text: str, groups: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]):
        super().__init__(text)
        self._groups = groups

    def matches(self, message: str) -> bool:
        for includes, excludes in self._groups:
            for term in includes:
                if term not in message:
                    break
            else:
                for term in excludes:
                    if term in message:
                        break
                else:
                    return True
        return False

    def required_terms(self) -> list[str]:
        first, *rest = (includes for includes, _ in self._groups)
        return [term for term in first if all(term in other for other in rest)]


def _unescape(text: str) -> str:
    return _ESCAPE_RE.sub(r"\1", text) if "\\" in text else text


def _parse_terms(text: str, body: str) -> FilterPattern:
    groups: list[tuple[list[str], list[str]]] = []
    pos, end = 0, len(body)
    while pos < end:
        if body[pos].isspace():
            pos += 1
            continue
        match = _TERM_RE.match(body, pos)
        if match is None:
            if body[pos] == '"':
                raise _error("unterminated quoted phrase")
            raise _error(f"unexpected {body[pos:]!r}")
        prefix, quoted, word = match.groups()
        pos = match.end()
        if pos < end and not body[pos].isspace():
            raise _error(f"terms must be separated by spaces near {body[match.start() :]!r}")
        if word is not None:
            if word[0] in "?-":  # `--x`, or a ? or - with no term after it
                raise _error(f"unexpected {prefix + word!r}")
            if len(word) > 1 and word[0] == "%" and word[-1] == "%":
                raise _error("a regular expression must stand alone")
            term = word
        else:
            term = _unescape(quoted)
        if prefix == "?" or not groups:
            groups.append(([], []))
        if not term.strip():  # `" "` matches everything
            continue
        bucket = groups[-1][1] if prefix == "-" else groups[-1][0]
        if term not in bucket:
            bucket.append(term)
    if not groups:
        raise _error(f"no terms in {body!r}")
    if any(not includes and not excludes for includes, excludes in groups):
        return FilterPattern(text)
    if len(groups) == 1:
        includes, excludes = groups[0]
        if len(includes) == 1 and not excludes:
            return _TermPattern(text, includes[0])
        return _AllTermsPattern(text, tuple(includes), tuple(excludes))
    if all(len(includes) == 1 and not excludes for includes, excludes in groups):
        return _AnyTermPattern(text, tuple(dict.fromkeys(inc[0] for inc, _ in groups)))
    return _TermGroupsPattern(text, tuple((tuple(inc), tuple(exc)) for inc, exc in groups))


# -- regular expressions -----------------------------------------------------------------------


def _compile_regex(body: str) -> Callable[[str], bool]:
    """The documented regex subset as a search predicate (case-sensitive, anywhere), run by RE2."""
    if not body:
        raise _error("empty regular expression")
    index, end = 0, len(body)
    translated: list[str] = []
    class_from = -1  # inside [...]: where a `]` would close it (one right after `[` or `[^` can't)
    while index < end:
        char = body[index]
        if char == "\\":
            escaped = body[index + 1] if index + 1 < end else ""
            if not escaped:
                raise _error("regular expression ends with '\\'")
            if not (
                escaped in _REGEX_CLASS_ESCAPES
                or (escaped.isascii() and escaped.isprintable() and not escaped.isalnum())
            ):
                raise _error(f"unsupported escape '\\{escaped}' in regular expression")
            translated.append(body[index : index + 2])
            index += 2
            continue
        if char not in _REGEX_PLAIN and char not in _REGEX_OPERATORS:
            if char in "()":
                raise _error("parentheses are not supported in regular expressions")
            raise _error(f"character {char!r} is not supported in regular expressions")
        if class_from >= 0:
            posix = body.find(":]", index + 2) if body.startswith("[:", index) else -1
            if posix >= 0:  # `[:alpha:]`, as RE2 reads it (RE2 rejects unknown names)
                translated.append(body[index : posix + 2])
                index = posix + 2
                continue
            if char == "]" and index > class_from:
                class_from = -1
        elif char == "[":
            class_from = index + (2 if body.startswith("^", index + 1) else 1)
        elif char == "$":
            char = _END_OF_TEXT
        translated.append(char)
        index += 1
    regexp = _re2.RE2("".join(translated).encode(), _RE2_OPTIONS)
    if not regexp.ok():
        reason = regexp.error()
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else reason
        raise _error(f"bad regular expression {body!r}: {reason}")
    match = regexp.Match

    def search(message: str) -> bool:
        data = message.encode("utf-8", "surrogatepass")
        return match(_UNANCHORED, data, 0, len(data))[0][0] >= 0

    return search


class _RegexPattern(FilterPattern):
    __slots__ = ("_literal", "_search")
    kind = "regex"

    def __init__(self, text: str, body: str) -> None:
        super().__init__(text)
        literal = self._literal = body if all(char in _REGEX_PLAIN for char in body) else None
        # no operators: a substring test answers the same, sooner
        self._search = (lambda message: literal in message) if literal else _compile_regex(body)

    def matches(self, message: str) -> bool:
        return self._search(message)

    def required_terms(self) -> list[str]:
        return [self._literal] if self._literal else []


# -- conditions shared by JSON and space-delimited patterns ------------------------------------


def _lex(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return tokens
        match = _LEX_RE.match(text, pos)
        if match is None:
            char = text[pos]
            if char in '"%':
                raise _error(f"unterminated {char} near {text[pos:]!r}")
            raise _error(f"unexpected {text[pos:]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append((kind, _unescape(value) if kind == "str" else value))
        pos = match.end()


def _and(left: _Pred, right: _Pred) -> _Pred:
    return lambda value: left(value) and right(value)


def _or(left: _Pred, right: _Pred) -> _Pred:
    return lambda value: left(value) or right(value)


class _ExprParser:
    """`a || b && (c || d)` over tokens; `leaf` parses one condition."""

    def __init__(self, tokens: list[tuple[str, str]], leaf: Callable[[_ExprParser], _Pred]):
        self.tokens = tokens
        self.pos = 0
        self.leaf = leaf
        self.depth = 0  # open parentheses

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise _error("unexpected end of condition")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> _Pred:
        if not self.tokens:
            raise _error("empty condition")
        pred = self._or()
        if self.pos < len(self.tokens):
            raise _error(f"unexpected {self.tokens[self.pos][1]!r}")
        return pred

    def _or(self) -> _Pred:
        pred = self._and()
        while self.peek() == "or":
            self.pos += 1
            pred = _or(pred, self._and())
        return pred

    def _and(self) -> _Pred:
        pred = self._primary()
        while self.peek() == "and":
            self.pos += 1
            pred = _and(pred, self._primary())
        return pred

    def _primary(self) -> _Pred:
        if self.peek() == "lp":
            if self.depth >= MAX_DEPTH:  # recursion, not an answer, would end deeper ones
                raise _error(f"parentheses nest more than {MAX_DEPTH} deep")
            self.pos += 1
            self.depth += 1
            pred = self._or()
            if self.peek() != "rp":
                raise _error("missing ')'")
            self.pos += 1
            self.depth -= 1
            return pred
        return self.leaf(self)

    def value(self) -> tuple[str, str]:
        kind, text = self.next()
        if kind not in ("str", "word", "re"):
            raise _error(f"expected a value, got {text!r}")
        if kind == "word" and _BARE_VALUE_RE.fullmatch(text) is None:
            raise _error(f"the value {text!r} must be in double quotes")
        return kind, text


def _parse_number(text: str) -> float | None:
    return float(text) if _NUMBER_RE.fullmatch(text) else None


def _wildcard(literal: str) -> Callable[[str], bool]:
    """`*` at the start or end matches any text there; elsewhere it is itself."""
    if not literal:
        return lambda value: value == ""
    if literal.strip("*") == "":
        return lambda value: True
    if len(literal) > 1 and literal[0] == "*" and literal[-1] == "*":
        inner = literal[1:-1]
        return lambda value: inner in value
    if literal[0] == "*":
        suffix = literal[1:]
        return lambda value: value.endswith(suffix)
    if literal[-1] == "*":
        prefix = literal[:-1]
        return lambda value: value.startswith(prefix)
    return lambda value: value == literal


def _count_regexes(tokens: list[tuple[str, str]]) -> None:
    if sum(kind == "re" for kind, _ in tokens) > MAX_REGEXES:
        raise _error(f"at most {MAX_REGEXES} regular expressions are allowed in a pattern")


# -- JSON --------------------------------------------------------------------------------------


def _parse_selector(text: str) -> tuple[str | int, ...]:
    match = _SELECTOR_RE.fullmatch(text)
    if match is None:
        raise _error(f"bad JSON selector {text!r}")
    return tuple(
        key if key else int(index) for key, index in _SELECTOR_STEP_RE.findall(match.group(1))
    )


def _resolver(path: tuple[str | int, ...]) -> Callable[[Any], Any]:
    if len(path) == 1 and isinstance(path[0], str):
        key = path[0]
        return lambda doc: doc.get(key, _MISSING) if type(doc) is dict else _MISSING

    def resolve(doc: Any) -> Any:
        node = doc
        for step in path:
            if isinstance(step, str):
                if type(node) is not dict:
                    return _MISSING
                node = node.get(step, _MISSING)
                if node is _MISSING:
                    return _MISSING
            elif type(node) is list and step < len(node):
                node = node[step]
            else:
                return _MISSING
        return node

    return resolve


def _json_text(value: Any) -> str | None:
    """A value node as text; None for objects, arrays and missing selectors."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return repr(value)
    if value is None:
        return "null"
    return None


def _json_leaf(parser: _ExprParser) -> _Pred:
    kind, text = parser.next()
    if kind != "word" or not text.startswith("$"):
        raise _error(f"expected a JSON selector such as $.field, got {text!r}")
    resolve = _resolver(_parse_selector(text))
    kind, text = parser.next()
    if kind == "op":
        return _json_compare(resolve, text, *parser.value())
    keyword = text.upper() if kind == "word" else ""
    if keyword == "IS":
        kind, text = parser.next()
        what = text.upper() if kind == "word" else ""
        if what == "NULL":
            return lambda doc: resolve(doc) is None
        if what == "TRUE":
            return lambda doc: resolve(doc) is True
        if what == "FALSE":
            return lambda doc: resolve(doc) is False
        if what == "NOT":
            raise _error("IS NOT is not supported")
        raise _error(f"expected NULL, TRUE or FALSE after IS, got {text!r}")
    if keyword == "NOT":
        kind, text = parser.next()
        if kind == "word" and text.upper() == "EXISTS":
            return lambda doc: resolve(doc) is _MISSING
        raise _error(f"expected EXISTS after NOT, got {text!r}")
    if keyword == "EXISTS":
        raise _error("EXISTS is not supported (use NOT EXISTS, or = *)")
    raise _error(f"expected an operator, IS or NOT EXISTS, got {text!r}")


def _json_compare(resolve: Callable[[Any], Any], op: str, kind: str, literal: str) -> _Pred:
    if kind == "re":
        if op not in ("=", "!="):
            raise _error(f"a regular expression needs = or !=, not {op}")
        search = _compile_regex(literal)
        hit = op == "="

        def regex(doc: Any) -> bool:
            text = _json_text(resolve(doc))
            return text is not None and search(text) is hit

        return regex
    number = _parse_number(literal)
    if op in _NUMERIC_OPS:
        if number is None:
            raise _error(f"{op} needs a number, got {literal!r}")
        compare, bound = _NUMERIC_OPS[op], number

        def numeric(doc: Any) -> bool:
            value = resolve(doc)
            kind_ = type(value)
            return (kind_ is int or kind_ is float) and compare(value, bound)

        return numeric
    negate = op == "!="
    match_text = _wildcard(literal)
    if kind == "word" and number is not None:
        target = number

        def equal_number(doc: Any) -> bool:
            value = resolve(doc)
            kind_ = type(value)
            if kind_ is int or kind_ is float:
                return (value == target) is not negate
            text = _json_text(value)
            return text is not None and match_text(text) is not negate

        return equal_number

    def equal_text(doc: Any) -> bool:
        text = _json_text(resolve(doc))
        return text is not None and match_text(text) is not negate

    return equal_text


class _JsonPattern(FilterPattern):
    __slots__ = ("_pred", "_roots")
    kind = "json"

    def __init__(self, text: str, inner: str) -> None:
        super().__init__(text)
        tokens = _lex(inner)
        if any(kind == "comma" for kind, _ in tokens):
            raise _error("unexpected ',' in a JSON pattern")
        _count_regexes(tokens)
        self._pred = _ExprParser(tokens, _json_leaf).parse()
        # Messages are JSON objects, or arrays when a selector starts with $[n].
        arrays = any(kind == "word" and text.startswith("$[") for kind, text in tokens)
        self._roots = "{[" if arrays else "{"

    def matches(self, message: str) -> bool:
        if not message:
            return False
        roots = self._roots
        if message[0] not in roots:
            stripped = message.lstrip()
            if not stripped or stripped[0] not in roots:
                return False
        try:
            doc = orjson.loads(message)
        except orjson.JSONDecodeError:
            return False
        return self._pred(doc)


# -- space-delimited ---------------------------------------------------------------------------


def _field_value(field: str) -> str:
    """A message field without its enclosing quotes or brackets."""
    first = field[0]
    if first == '"':
        return field[1:-1] if len(field) > 1 and field[-1] == '"' else field[1:]
    if first == "[":
        return field[1:-1] if len(field) > 1 and field[-1] == "]" else field[1:]
    return field


def _split_fields(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    fields: list[list[tuple[str, str]]] = [[]]
    depth = 0
    for token in tokens:
        kind = token[0]
        if kind == "comma" and depth == 0:
            fields.append([])
            continue
        depth += (kind == "lp") - (kind == "rp")
        fields[-1].append(token)
    return fields


def _delimited_compare(index: int, op: str, kind: str, literal: str) -> _Pred:
    if kind == "re":
        if op not in ("=", "!="):
            raise _error(f"a regular expression needs = or !=, not {op}")
        search = _compile_regex(literal)
        hit = op == "="
        return lambda values: search(_field_value(values[index])) is hit
    number = _parse_number(literal)
    if op in _NUMERIC_OPS:
        if number is None:
            raise _error(f"{op} needs a number, got {literal!r}")
        compare, bound = _NUMERIC_OPS[op], number

        def numeric(values: list[str]) -> bool:
            field = _field_value(values[index])
            return _NUMBER_RE.fullmatch(field) is not None and compare(float(field), bound)

        return numeric
    negate = op == "!="
    match_text = _wildcard(literal)
    if kind == "word" and number is not None:
        target = number

        def equal_number(values: list[str]) -> bool:
            field = _field_value(values[index])
            if _NUMBER_RE.fullmatch(field):
                return (float(field) == target) is not negate
            return match_text(field) is not negate

        return equal_number
    return lambda values: match_text(_field_value(values[index])) is not negate


class _DelimitedPattern(FilterPattern):
    __slots__ = ("_ellipsis", "_pred", "_prefix", "_suffix")
    kind = "delimited"

    def __init__(
        self, text: str, prefix: int, suffix: int, ellipsis: bool, pred: _Pred | None
    ) -> None:
        super().__init__(text)
        self._prefix = prefix
        self._suffix = suffix
        self._ellipsis = ellipsis
        self._pred = pred

    def matches(self, message: str) -> bool:
        # str.split() when no field is quoted or bracketed: several times faster than the regex
        fields = _FIELDS(message) if '"' in message or "[" in message else message.split()
        count, prefix = len(fields), self._prefix
        if self._ellipsis:
            suffix = self._suffix
            if count < prefix + suffix:
                return False
            if suffix:
                fields = fields[:prefix] + fields[count - suffix :]
        elif count != prefix:
            return False
        pred = self._pred
        return pred is None or pred(fields)


def _parse_delimited(text: str, inner: str) -> FilterPattern:
    tokens = _lex(inner)
    _count_regexes(tokens)
    specs = _split_fields(tokens)
    if len(specs) == 1 and not specs[0]:
        raise _error("a space-delimited pattern needs at least one field")
    # Name each field: its bare name, or the field its first condition tests.
    names: list[str | None] = []
    ellipsis_at: int | None = None
    conditions: list[list[tuple[str, str]]] = []
    for spec in specs:
        if spec == [("word", "...")]:
            if ellipsis_at is not None:
                raise _error("'...' may appear only once")
            ellipsis_at = len(names)
            continue
        name = None
        if spec:
            start = 0
            while start < len(spec) and spec[start][0] == "lp":
                start += 1
            kind, name = spec[start] if start < len(spec) else ("", "")
            if kind != "word" or _NAME_RE.fullmatch(name) is None:
                raise _error(f"bad field name {name!r}")
            if len(spec) > 1:
                conditions.append(spec)
        names.append(name)
    index_of: dict[str, int] = {}
    folded: dict[str, int] = {}
    for index, name in enumerate(names):
        if name is not None:
            index_of.setdefault(name, index)
            folded.setdefault(name.lower(), index)

    def leaf(parser: _ExprParser) -> _Pred:
        kind, name = parser.next()
        if kind != "word" or _NAME_RE.fullmatch(name) is None:
            raise _error(f"expected a field name, got {name!r}")
        index = index_of.get(name, folded.get(name.lower()))
        if index is None:
            raise _error(f"unknown field {name!r}")
        kind, op = parser.next()
        if kind != "op":
            raise _error(f"expected an operator after {name!r}, got {op!r}")
        return _delimited_compare(index, op, *parser.value())

    pred: _Pred | None = None
    for spec in conditions:
        condition = _ExprParser(spec, leaf).parse()
        pred = condition if pred is None else _and(pred, condition)
    if ellipsis_at is None:
        return _DelimitedPattern(text, len(names), 0, False, pred)
    return _DelimitedPattern(text, ellipsis_at, len(names) - ellipsis_at, True, pred)
