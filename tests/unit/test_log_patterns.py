"""Tests for squall.services.logs.patterns: CloudWatch Logs filter pattern syntax.

Examples come from AWS's "Filter pattern syntax for metric filters, subscription filters, filter
log events, and Live Tail" (and its earlier "Filter and pattern syntax" editions), plus the term
groups the AWS CDK renders (`?"A" "B" ?"C" "D"`).
"""

from __future__ import annotations

import json
import time

import pytest

from squall.services.logs.patterns import MAX_DEPTH, FilterPattern, compile_pattern

E400 = "[ERROR 400] BAD REQUEST"
E401 = "[ERROR 401] UNAUTHORIZED REQUEST"
E419 = "[ERROR 419] MISSING ARGUMENTS"
E420 = "[ERROR 420] INVALID ARGUMENTS"
E500 = "[ERROR 500] INTERNAL SERVER ERROR"
INFO = "[INFO 200] OK"
INVALID = r"^Invalid filter pattern: "

APACHE_404 = '127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'
APACHE_200 = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534'
APACHE_500 = '127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /apache_pb.gif HTTP/1.0" 500 5324'
APACHE_403 = '10.0.0.1 - bob [10/Oct/2000:13:50:35 -0700] "GET /secret.html HTTP/1.0" 403 999'
APACHE_410 = '10.0.0.2 - amy [10/Oct/2000:13:55:00 -0700] "GET /gone.html HTTP/1.0" 410 120'

TRAIL = json.dumps(
    {
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": None,
        "ThisFlag": True,
    }
)
USERS = json.dumps(
    {
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [
            {"id": 2, "email": "John.Doe@example.com"},
            {"id": 3, "email": "Jane.Doe@example.com"},
        ],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
    }
)


def matching(pattern: str, messages: list[str]) -> list[str]:
    compiled = compile_pattern(pattern)
    return [message for message in messages if compiled.matches(message)]


# -- everything --------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["", "   ", '" "', '""', None])
def test_match_everything(pattern: str | None) -> None:
    compiled = compile_pattern(pattern)  # type: ignore[arg-type]
    for message in ["", "x", E400, "{}", "no-spaces-at-all"]:
        assert compiled.matches(message)
    assert compiled.required_terms() == []
    assert isinstance(compiled, FilterPattern)


# -- unstructured terms ------------------------------------------------------------------------

ERRORS = [E400, E401, E419, E420, INFO]


def test_single_term() -> None:
    assert matching("ERROR", ERRORS) == [E400, E401, E419, E420]
    assert compile_pattern("ERROR").required_terms() == ["ERROR"]


def test_terms_are_case_sensitive_substrings() -> None:
    compiled = compile_pattern("ERROR")
    assert compiled.matches("Exiting with ERRORCODE: -1")  # a substring, as documented
    assert not compiled.matches("error: lower case")
    assert not compiled.matches("Error: mixed case")


def test_multiple_terms_all_must_match() -> None:
    assert matching("ERROR ARGUMENTS", ERRORS) == [E419, E420]
    assert matching("ERROR Exception", ["[ERROR] Caught IllegalArgumentException"]) == [
        "[ERROR] Caught IllegalArgumentException"
    ]
    assert not compile_pattern("ERROR Exception").matches("[ERROR] A fatal error")
    assert compile_pattern("ERROR ARGUMENTS").required_terms() == ["ERROR", "ARGUMENTS"]


def test_or_terms() -> None:
    assert matching("?ERROR ?ARGUMENTS", [*ERRORS, "[WARN] MISSING ARGUMENTS"]) == [
        E400,
        E401,
        E419,
        E420,
        "[WARN] MISSING ARGUMENTS",
    ]
    assert compile_pattern("?ERROR ?ARGUMENTS").required_terms() == []


def test_or_and_exclusion_from_earlier_guide() -> None:
    messages = ["ERROR WARN message", "ERROR message", "WARN message"]
    assert matching("ERROR", messages) == messages[:2]
    assert matching("?ERROR ?WARN", messages) == messages
    assert matching("ERROR WARN", messages) == messages[:1]
    assert matching("ERROR -WARN", messages) == messages[1:2]


def test_exact_phrase() -> None:
    compiled = compile_pattern('"INTERNAL SERVER ERROR"')
    assert compiled.matches(E500)
    assert not compiled.matches("[ERROR 500] INTERNAL ERROR SERVER")
    assert compiled.required_terms() == ["INTERNAL SERVER ERROR"]
    phrase = compile_pattern('"Failed to process the request"')
    assert phrase.matches("[WARN] Failed to process the request")
    assert phrase.matches("[ERROR] Unable to continue: Failed to process the request")
    assert not phrase.matches("[WARN] Failed to process request")


def test_quoted_special_characters() -> None:
    compiled = compile_pattern('"Error: timeout" "[x]"')
    assert compiled.matches("Error: timeout after 3s [x]")
    assert not compiled.matches("Error timeout after 3s [x]")
    escaped = compile_pattern(r'"say \"hi\"" "C:\\temp"')
    assert escaped.required_terms() == ['say "hi"', r"C:\temp"]
    assert escaped.matches(r'they say "hi" from C:\temp')
    assert not escaped.matches("they say hi from C:temp")


def test_include_and_exclude() -> None:
    assert matching("ERROR -ARGUMENTS", ERRORS) == [E400, E401]
    # Excluding a term still leaves the included ones required.
    assert compile_pattern("ERROR -ARGUMENTS").required_terms() == ["ERROR"]


@pytest.mark.parametrize("pattern", ['"ERROR" -"Exiting"', '"ERROR" - "Exiting"', "ERROR -Exiting"])
def test_exclude_spellings(pattern: str) -> None:
    compiled = compile_pattern(pattern)
    assert compiled.matches("[ERROR] A fatal exception has occurred")
    assert not compiled.matches("Exiting with ERRORCODE: -1")


def test_exclusion_only() -> None:
    compiled = compile_pattern("-DEBUG")
    assert compiled.matches("INFO ready")
    assert not compiled.matches("DEBUG noise")
    assert compiled.required_terms() == []


def test_term_groups() -> None:
    # FilterPattern.anyTermGroup(["ERROR", "MainThread"], ["WARN", "Deadlock"]) in the AWS CDK.
    compiled = compile_pattern('?"ERROR" "MainThread" ?"WARN" "Deadlock"')
    assert compiled.matches("ERROR in MainThread")
    assert compiled.matches("WARN Deadlock detected")
    assert not compiled.matches("ERROR in WorkerThread")
    assert not compiled.matches("WARN MainThread slow")
    assert compiled.required_terms() == []


def test_term_groups_share_required_terms() -> None:
    compiled = compile_pattern("?ERROR job ?WARN job")
    assert compiled.matches("WARN job 7")
    assert not compiled.matches("INFO job 7")
    assert compiled.required_terms() == ["job"]


def test_terms_before_the_first_question_mark_are_an_alternative() -> None:
    compiled = compile_pattern("ERROR ?WARN")
    assert compiled.matches("ERROR only")
    assert compiled.matches("WARN only")
    assert not compiled.matches("INFO only")


def test_exclusion_within_an_alternative() -> None:
    compiled = compile_pattern("?ERROR -retry ?FATAL")
    assert compiled.matches("ERROR failed")
    assert not compiled.matches("ERROR failed, will retry")
    assert compiled.matches("FATAL failed, will retry")


def test_duplicate_terms_collapse() -> None:
    assert compile_pattern("ERROR ERROR").required_terms() == ["ERROR"]


@pytest.mark.parametrize(
    "pattern",
    [
        '"unterminated',
        'ERROR "unterminated',
        "ERROR -",
        "ERROR ?",
        "--ERROR",
        "?-ERROR",
        'ab"cd"',
        '"ab"cd',
        "ERROR %regex%",
    ],
)
def test_invalid_term_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match=INVALID):
        compile_pattern(pattern)


# -- regular expressions -----------------------------------------------------------------------


def test_regex_documented_example() -> None:
    compiled = compile_pattern("%AUTHORIZED%")
    assert compiled.matches("[ERROR 401] UNAUTHORIZED REQUEST")
    assert compiled.matches("[SUCCESS 200] AUTHORIZED REQUEST")
    assert not compiled.matches("[SUCCESS 200] authorized request")
    assert compiled.required_terms() == ["AUTHORIZED"]


@pytest.mark.parametrize(
    ("pattern", "hit", "miss"),
    [
        ("%^[hc]at%", "hat trick", "that"),
        ("%[hc]at$%", "a black cat", "cats"),
        ("%colou?r%", "colour", "colr"),
        ("%colou?r%", "color", "colouur"),
        ("%[abc]%", "cab", "xyz"),
        ("%[a-z]%", "A1b", "A1B"),
        ("%[abcx-z]%", "y", "d"),
        ("%a{3,5}%", "baaab", "baab"),
        ("%gray|grey%", "greyhound", "grawy"),
        (r"%10\.10\.0\.1%", "from 10.10.0.1", "from 10a10b0c1"),
        ("%a*b%", "b", "c"),
        ("%ab+c%", "abbbc", "ac"),
        ("%l.g%", "log", "lg"),
        (r"%\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}%", "ip 192.168.0.1 up", "ip 192.168.0 up"),
        ("%[Ee]rror|[Ff]ail%", "request failed: Fail", "all good"),
        ("%bind: address already in use%", "bind: address already in use", "bind: in use"),
    ],
)
def test_regex_operators(pattern: str, hit: str, miss: str) -> None:
    compiled = compile_pattern(pattern)
    assert compiled.matches(hit)
    assert not compiled.matches(miss)


def test_regex_required_terms_only_for_literals() -> None:
    assert compile_pattern("%ERROR 404%").required_terms() == ["ERROR 404"]
    assert compile_pattern("%ERROR.*404%").required_terms() == []


@pytest.mark.parametrize(
    "pattern",
    [
        "%something!%",  # the documented rejection
        "%(ab)+%",
        "%a(b%",
        "%é%",
        "%%",
        "%",
        "%abc",
        "%abc% ERROR",
        "%[abc%",  # does not compile
        "%a\\%",
        r"%\1%",
        "%a'b%",
        "%a{1001}%",  # RE2's limit on repetition counts
        "%a**%",
        "%[z-a]%",
        "%[[:nosuchclass:]]%",
    ],
)
def test_invalid_regex(pattern: str) -> None:
    with pytest.raises(ValueError, match=INVALID):
        compile_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("%a*a*a*a*a*a*a*a*b%", "a" * 40),  # 14 s with a backtracking engine
        ("%^a*a*a*a*a*a*a*a*b$%", "a" * 40),
        ("%a*b%", "a" * 200_000),  # quadratic when backtracking: 0.3 s at 20,000 characters
        ("%[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*1%", "x" * 50_000),
        ("{ $.a = %a*a*a*a*a*a*a*a*b% }", json.dumps({"a": "a" * 40})),
        ("{ $.a != %a*a*a*a*a*a*a*a*b% || $.b = 1 }", json.dumps({"a": "a" * 40})),
        ("[w = %a*a*a*a*a*a*a*a*b%]", "a" * 40),
        ("[w, x != %a*a*a*a*a*a*a*a*b%]", "w " + "a" * 40),
    ],
)
def test_regexes_run_in_linear_time(pattern: str, message: str) -> None:
    matches = compile_pattern(pattern).matches
    started = time.perf_counter()
    for _ in range(10):
        matches(message)
    assert time.perf_counter() - started < 0.5  # milliseconds here; a backtracker takes seconds


def test_regex_matches_like_re_where_re2_differs() -> None:
    # `$` matches before a final newline (Lambda's lines end with one), as in `re` and Java
    done = compile_pattern("%done$%")
    assert done.matches("done") and done.matches("task done\n")
    assert not done.matches("done\nmore") and not done.matches("done\n\n")
    assert compile_pattern("%[$]%").matches("cost: $5")  # in a class `$` is itself
    assert compile_pattern("%[]$]x%").matches("$x")
    assert compile_pattern("%[^]$]x%").matches("ax")
    assert compile_pattern("%[[:digit:]$]x%").matches("$x")
    assert compile_pattern(r"%5\$%").matches("costs 5$ each")
    assert compile_pattern("%a$|^b%").matches("a\n")
    # the shorthand classes are ASCII, as in Java
    assert compile_pattern(r"%^\d+$%").matches("123")
    assert not compile_pattern(r"%^\d+$%").matches("١٢٣")
    # messages with any characters (a lone surrogate, NUL) are searched, not rejected
    assert compile_pattern("%b.c%").matches("a\ud800b\x00c")


# -- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        '{ $.eventType = "UpdateTrail" }',
        "{ $.eventType = UpdateTrail }",
        "{ $.sourceIPAddress != 123.123.* }",
        '{ $.arrayKey[0] = "value" }',
        '{ $.arrayKey[1] = "another value" }',
        "{ $.objectList[1].id = 2 }",
        "{ $.SomeObject IS NULL }",
        "{ $.SomeOtherObject NOT EXISTS }",
        "{ $.ThisFlag IS TRUE }",
        "{ $.latency NOT EXISTS }",
        '{ $.eventType = "*" && $.sourceIPAddress != 123.123.* }',
        "{ $.eventType = *Trail }",
        "{ $.eventType = Update* }",
        "{ $.eventType = *dateTr* }",
        "{ $.eventType = %^Update[A-Z]% }",
        "{ $.eventType != %Delete% }",
        "{$.eventType=UpdateTrail}",
    ],
)
def test_json_patterns_that_match_the_trail_event(pattern: str) -> None:
    assert compile_pattern(pattern).matches(TRAIL)


@pytest.mark.parametrize(
    "pattern",
    [
        '{ $.eventType = "DeleteTrail" }',
        "{ $.eventType != UpdateTrail }",
        "{ $.sourceIPAddress != 111.111.* }",
        '{ $.arrayKey[0] = "another value" }',
        '{ $.arrayKey[2] = "value" }',  # out of range
        '{ $.eventType[0] = "U" }',  # not an array
        "{ $.objectList[1].id = 1 }",
        "{ $.objectList[0].missing = 1 }",
        "{ $.eventType IS NULL }",
        "{ $.Missing IS NULL }",
        "{ $.SomeObject NOT EXISTS }",
        "{ $.ThisFlag IS FALSE }",
        "{ $.SomeObject IS TRUE }",
        "{ $.eventType = Ev*ent }",  # * in the middle is itself
        "{ $.eventType = %^Delete% }",
    ],
)
def test_json_patterns_that_do_not_match_the_trail_event(pattern: str) -> None:
    assert not compile_pattern(pattern).matches(TRAIL)


def test_json_wildcard_only_at_the_ends() -> None:
    compiled = compile_pattern("{ $.name = Ev*ent }")
    assert compiled.matches('{"name": "Ev*ent"}')
    assert not compiled.matches('{"name": "EvXent"}')
    assert compile_pattern("{ $.name = *Event }").matches('{"name": "PutEvent"}')
    assert compile_pattern("{ $.name = Event* }").matches('{"name": "EventName"}')
    assert not compile_pattern("{ $.name = Event* }").matches('{"name": "PutEvent"}')


def test_json_is_false_and_boolean_text() -> None:
    assert compile_pattern("{ $.flag IS FALSE }").matches('{"flag": false}')
    assert not compile_pattern("{ $.flag IS FALSE }").matches('{"flag": 0}')
    assert compile_pattern("{ $.flag = true }").matches('{"flag": true}')


def test_json_or_from_earlier_guide() -> None:
    bar, baz = '{"foo": "bar"}', '{"foo": "baz"}'
    assert matching("{$.foo = bar}", [bar, baz]) == [bar]
    assert matching("{$.foo = baz }", [bar, baz]) == [baz]
    assert matching("{$.foo = bar || $.foo = baz }", [bar, baz]) == [bar, baz]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', True),
        ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', False),
        (
            '{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = "nonmatch"'
            ' && $.actions[2] = "nonmatch" }',
            True,
        ),
        (
            '{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = "nonmatch")'
            ' && $.actions[2] = "nonmatch" }',
            False,
        ),
        ("{ $.coordinates[2][0] = 7 && $.coordinates[1][2] > 5 }", True),
        ("{ ((($.user.id = 1))) }", True),
        ('{ $.actions[1] = "PUT" && ($.user.id = 2 || $.users[1].id = 3) }', True),
    ],
)
def test_json_compound_conditions(pattern: str, expected: bool) -> None:
    assert compile_pattern(pattern).matches(USERS) is expected


@pytest.mark.parametrize(
    ("pattern", "hit", "miss"),
    [
        ("{ $.bandwidth > 75 }", '{"bandwidth": 76}', '{"bandwidth": 75}'),
        ("{ $.latency < 50 }", '{"latency": 49.9}', '{"latency": 50}'),
        ("{ $.refreshRate >= 60 }", '{"refreshRate": 60}', '{"refreshRate": 59}'),
        ("{ $.responseTime <= 5 }", '{"responseTime": 5}', '{"responseTime": 5.01}'),
        ("{ $.errorCode = 400}", '{"errorCode": 400}', '{"errorCode": 401}'),
        ("{ $.errorCode != 500 }", '{"errorCode": 404}', '{"errorCode": 500}'),
        ("{ $.number[0] = 1e-3 }", '{"number": [0.001]}', '{"number": [1]}'),
        ("{ $.number[0] != 1e+3 }", '{"number": [999]}', '{"number": [1000]}'),
        ("{ $.latency >= 500 }", '{"latency": 500}', '{"latency": 499}'),
        ("{ $.numbers[0] < 10e3 }", '{"numbers": [9999]}', '{"numbers": [10000]}'),
        ("{ $.numbers[0] < 10e-3 }", '{"numbers": [0.001]}', '{"numbers": [0.01]}'),
        (
            "{ $.processes[4].averageRuntime <= 55.5 }",
            '{"processes": [{}, {}, {}, {}, {"averageRuntime": 55.5}]}',
            '{"processes": [{}, {}, {}, {}, {"averageRuntime": 55.6}]}',
        ),
        ("{ $.latency > +1000 }", '{"latency": 1001}', '{"latency": 1000}'),
        ("{ $.delta > -1 }", '{"delta": 0}', '{"delta": -2}'),
        ("{ $.latency = * }", '{"latency": 50}', '{"other": 50}'),
        ("{ $.status = 4* }", '{"status": 404}', '{"status": 500}'),
    ],
)
def test_json_numeric_comparisons(pattern: str, hit: str, miss: str) -> None:
    compiled = compile_pattern(pattern)
    assert compiled.matches(hit)
    assert not compiled.matches(miss)


def test_json_numeric_comparisons_need_numbers() -> None:
    compiled = compile_pattern("{ $.latency > 10 }")
    assert not compiled.matches('{"latency": "50"}')
    assert not compiled.matches('{"latency": true}')
    assert not compiled.matches('{"latency": null}')
    assert not compiled.matches('{"latency": [50]}')
    # Equality with a number also accepts the same text in a string.
    assert compile_pattern("{ $.code = 400 }").matches('{"code": "400"}')
    assert compile_pattern('{ $.code = "400" }').matches('{"code": 400}')


def test_json_selector_on_object_or_array_never_matches() -> None:
    message = '{"users": [1, 2, 3], "user": {"id": 1}}'
    for pattern in ["{$.users = 1}", "{$.users != 1}", "{$.user = *}", "{$.user != x}"]:
        assert not compile_pattern(pattern).matches(message), pattern


def test_json_not_equal_needs_the_field() -> None:
    compiled = compile_pattern("{ $.level != ERROR }")
    assert compiled.matches('{"level": "INFO"}')
    assert not compiled.matches('{"message": "no level"}')


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "",
        "UpdateTrail",
        '2024-01-01T00:00:00Z\tabc\tINFO\t{"eventType": "UpdateTrail"}',
        '{"eventType": "UpdateTrail"',  # truncated
        '{"eventType": "UpdateTrail"} trailing',
        '"UpdateTrail"',
    ],
)
def test_json_pattern_never_matches_non_json(message: str) -> None:
    assert not compile_pattern('{ $.eventType = "UpdateTrail" }').matches(message)
    assert not compile_pattern("{ $.eventType NOT EXISTS }").matches(message)


def test_json_message_details() -> None:
    compiled = compile_pattern("{ $.level = ERROR }")
    assert compiled.matches('  {"level": "ERROR"}\n')
    assert compiled.matches('{"level": "ERROR", "big": 123456789012345678901234567890}')
    assert compiled.matches('{"level": "ERR\\u004fR"}')  # JSON escapes are decoded
    assert compile_pattern("{ $[1].a = 2 }").matches('[{"a": 1}, {"a": 2}]')
    lambda_json = (
        '{"timestamp":"2024-05-01T12:00:00Z","level":"ERROR","message":"boom",'
        '"logger":"root","requestId":"79b4f56e-95b1-4643-9700-2807f4e68189"}'
    )
    assert compiled.matches(lambda_json)
    assert compiled.required_terms() == []


def test_json_messages_are_objects_unless_a_selector_indexes_the_root() -> None:
    assert not compile_pattern("{ $.x NOT EXISTS }").matches("[1, 2]")
    assert compile_pattern("{ $.x NOT EXISTS }").matches('{"y": 1}')
    assert compile_pattern("{ $[0] = 1 }").matches("[1, 2]")
    assert not compile_pattern("{ $[0] = 1 }").matches("[INFO] 1")


def test_json_keywords_and_hyphenated_names() -> None:
    assert compile_pattern("{ $.x is null }").matches('{"x": null}')
    assert compile_pattern("{ $.x not exists }").matches("{}")
    assert compile_pattern("{ $.request-id = abc_1 }").matches('{"request-id": "abc_1"}')


def test_json_empty_string_value() -> None:
    compiled = compile_pattern('{ $.name = "" }')
    assert compiled.matches('{"name": ""}')
    assert not compiled.matches('{"name": "x"}')


@pytest.mark.parametrize(
    "pattern",
    [
        "{}",
        "{ }",
        "{ $.a = }",
        "{ $.a }",
        "{ $.a == 1 }",
        "{ a = 1 }",
        "{ $ = 1 }",
        "{ $.a. = 1 }",
        "{ $.a[x] = 1 }",
        "{ $.a[-1] = 1 }",
        "{ $.a IS NOT NULL }",
        "{ $.a EXISTS }",
        "{ $.a IS MAYBE }",
        "{ $.a NOT THERE }",
        "{ $.a > abc }",
        '{ $.a < "x" }',
        "{ $.a > %1% }",
        "{ ($.a = 1 }",
        "{ $.a = 1) }",
        "{ $.a = 1 && }",
        "{ $.a = 1 & $.b = 2 }",
        "{ $.a = 1 | $.b = 2 }",
        "{ $.a = 1 $.b = 2 }",
        "{ $.a = 1, $.b = 2 }",
        '{ $.a = "x }',
        "{ $.a = %x }",
        "{ $.a = 1",
        "{ $.a = @x }",
        "{ $.a = %a% || $.b = %b% || $.c = %c% }",
        "{ $.a = %a(b)% }",
    ],
)
def test_invalid_json_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match=INVALID):
        compile_pattern(pattern)


# -- space-delimited ---------------------------------------------------------------------------

APACHE = [APACHE_404, APACHE_200, APACHE_500, APACHE_403, APACHE_410]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[ip, user, username, timestamp, request, status_code, bytes]", APACHE),
        ("[..., status_code, bytes]", APACHE),
        ("[ip, user, ..., status_code, bytes]", APACHE),
        ("[ip, user, ...]", APACHE),
        ("[ip, user, username, timestamp, request, status_code, bytes > 1000]", APACHE[:3]),
        ("[ip, user, username, timestamp, request, status_code = 200, bytes]", [APACHE_200]),
        (
            "[ip, user, username, timestamp, request, status_code = 4*, bytes]",
            [APACHE_404, APACHE_403, APACHE_410],
        ),
        (
            "[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]",
            [APACHE_404, APACHE_403, APACHE_410],
        ),
        (
            "[ip, user, username, timestamp, request =*.html*, status_code = 4*, bytes]",
            [APACHE_404, APACHE_403, APACHE_410],
        ),
        ("[..., request =*.html*, status_code = 4*, bytes]", [APACHE_404, APACHE_403, APACHE_410]),
        (
            "[ip, user, username, timestamp, request, status_code = 4* && status_code != 403,"
            " bytes]",
            [APACHE_404, APACHE_410],
        ),
        (
            "[ip, user, username, timestamp, request =*.html*,"
            " status_code = 404 || status_code = 410, bytes]",
            [APACHE_404, APACHE_410],
        ),
        ("[..., request=*.html*, status_code=4*,]", [APACHE_404, APACHE_403, APACHE_410]),
        ("[ip, server, username, timestamp, request, status_code, bytes > 1000]", APACHE[:3]),
        ("[ip = 10.*, ...]", [APACHE_403, APACHE_410]),
        ("[ip, user = Prod, ...]", [APACHE_404]),
        ('[..., request = "GET /index.html HTTP/1.0", status_code, bytes]', [APACHE_404]),
        ("[..., timestamp = 10/Oct/2000:13:25:15*, request, status_code, bytes]", APACHE[:2]),
        ("[..., status_code = %^4[0-9]{2}$%, bytes]", [APACHE_404, APACHE_403, APACHE_410]),
        ("[..., status_code != %^4%, bytes]", [APACHE_200, APACHE_500]),
        ("[..., status_code >= 403 && status_code < 410, bytes]", [APACHE_404, APACHE_403]),
        ("[..., status_code, bytes <= 999]", [APACHE_403, APACHE_410]),
        ("[ip, user, username, timestamp, request, status_code]", []),  # one field short
        ("[ip, user, username, timestamp, request, status_code, bytes, extra]", []),
    ],
)
def test_space_delimited_apache_logs(pattern: str, expected: list[str]) -> None:
    assert matching(pattern, APACHE) == expected


def test_space_delimited_word_order() -> None:
    messages = ["ERROR message", "WARNING message", "INFO message", "ERROR WARN message"]
    assert matching("[w1=ERROR, w2]", messages) == ["ERROR message"]
    assert matching("[w1=ERROR || W1=WARNING, w2]", messages) == messages[:2]
    assert matching("[w1!=ERROR && w1!=WARNING, w2]", messages) == ["INFO message"]
    assert matching("[w1=ERROR, ...]", messages) == ["ERROR message", "ERROR WARN message"]


def test_space_delimited_field_splitting() -> None:
    compiled = compile_pattern('[a, b = "two words", c = x, d = "", e = "it\'s"]')
    assert compiled.matches('1  "two words"\tx "" it\'s')
    assert not compiled.matches('1 "two words" x "" its')
    assert compile_pattern("[level = ERROR, rest]").matches("[ERROR] failed")
    assert compile_pattern("[a, b]").matches('x "unclosed quote with spaces')
    assert not compile_pattern("[a]").matches("")
    assert compile_pattern("[...]").matches("")
    assert compile_pattern("[a,,c = 3]").matches("1 2 3")


def test_space_delimited_numbers() -> None:
    compiled = compile_pattern("[..., bytes > 1000]")
    assert compiled.matches("GET 1000.5")
    assert compiled.matches("GET 1e4")
    assert not compiled.matches("GET 1_000_000")  # not a number in a log
    assert not compiled.matches("GET inf")
    assert not compiled.matches("GET -")
    assert compile_pattern("[..., code = 200]").matches("GET 200.0")
    assert compile_pattern("[..., code != 200]").matches("GET -")


def test_space_delimited_conditions_across_fields_and_parentheses() -> None:
    compiled = compile_pattern("[a, b = 2 && (a = 1 || a = 3)]")
    assert compiled.matches("1 2")
    assert compiled.matches("3 2")
    assert not compiled.matches("2 2")
    assert compile_pattern("[a, b]").required_terms() == []


@pytest.mark.parametrize(
    "pattern",
    [
        "[]",
        "[ ]",
        "[a",
        "[a, ..., b, ...]",
        "[a = ]",
        "[a =]",
        "[= 1]",
        "[a >= x]",
        "[a b]",
        "[a.b]",
        "[a, b = 1 && zz = 2]",
        '["a"]',
        "[a == 1]",
        "[(a = 1, b]",
        "[a = 1 &&, b]",
        "[a = %x%, b = %y%, c = %z%]",
        "[a = %x(y)%]",
        "[a < %x%]",
        "[..., ... = 1]",
    ],
)
def test_invalid_space_delimited_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match=INVALID):
        compile_pattern(pattern)


@pytest.mark.parametrize(
    ("template", "message"),
    [("{ %s$.a = 1%s }", '{"a": 1}'), ("[%sa = 1%s]", "1"), ("[w, %sa = 1%s]", "w 1")],
)
def test_parentheses_nest_at_most_max_depth(template: str, message: str) -> None:
    deepest = compile_pattern(template % ("(" * MAX_DEPTH, ")" * MAX_DEPTH))
    assert deepest.matches(message)
    for depth in (MAX_DEPTH + 1, 400):  # 400: a RecursionError (a 500) before the cap
        with pytest.raises(ValueError, match=INVALID + "parentheses nest more than 50 deep"):
            compile_pattern(template % ("(" * depth, ")" * depth))


def test_kinds() -> None:
    assert compile_pattern("").kind == "all"
    assert compile_pattern("ERROR").kind == "terms"
    assert compile_pattern("%ERROR%").kind == "regex"
    assert compile_pattern("{ $.a = 1 }").kind == "json"
    assert compile_pattern("[a, b]").kind == "delimited"


def test_matching_a_million_messages_stays_fast() -> None:
    messages = [f"[INFO] request {index} served in {index % 97} ms" for index in range(100_000)]
    messages[5_000] = "[ERROR] request failed: timeout"
    compiled = compile_pattern('ERROR "failed:" -retry')
    matches = compiled.matches
    started = time.perf_counter()
    hits = [message for message in messages if matches(message)]
    elapsed = time.perf_counter() - started
    assert hits == ["[ERROR] request failed: timeout"]
    assert elapsed < 1.0  # about 0.02 s here; a million messages well under a second
