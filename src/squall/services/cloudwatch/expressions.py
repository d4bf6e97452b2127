"""Metric math for GetMetricData: arithmetic over other queries' time series.

Supported: numbers, query ids, `+ - * /`, unary minus, parentheses, arrays `[m1, m2]`, and the
functions SUM, AVG, MIN, MAX (of an array: one series, point by point; of one series: a
scalar over its points), ABS and METRICS() / METRICS("text") (the metric queries of the
request, or those whose label contains the text). Between two series an operator applies at
the timestamps both have; a point divided by zero is dropped, as CloudWatch does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

TimeSeries = dict[int, float]  # timestamp (epoch seconds) → value
Value = float | TimeSeries | list[TimeSeries]

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r'|(?P<string>"[^"]*")'
    r"|(?P<op>[-+*/(),\[\]]))"
)


class ExpressionError(ValueError):
    """The expression cannot be parsed or evaluated."""


Resolve = Callable[[str], Value]
Metrics = Callable[[str | None], list[TimeSeries]]


def evaluate(expression: str, resolve: Resolve, metrics: Metrics) -> Value:
    return _Parser(expression, resolve, metrics).run()


class _Parser:
    def __init__(self, text: str, resolve: Resolve, metrics: Metrics) -> None:
        self.tokens = _tokenize(text)
        self.position = 0
        self.resolve = resolve
        self.metrics = metrics

    def run(self) -> Value:
        value = self.expression()
        if self.peek() is not None:
            raise ExpressionError(f"Unexpected {self.peek()[1]!r} in the expression.")  # type: ignore[index]
        return value

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, text: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ExpressionError("The expression ends unexpectedly.")
        if text is not None and token[1] != text:
            raise ExpressionError(f"Expected {text!r} but found {token[1]!r}.")
        self.position += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token == ("op", text):
            self.position += 1
            return True
        return False

    def expression(self) -> Value:
        value = self.term()
        while True:
            if self.accept("+"):
                value = combine(value, self.term(), lambda a, b: a + b)
            elif self.accept("-"):
                value = combine(value, self.term(), lambda a, b: a - b)
            else:
                return value

    def term(self) -> Value:
        value = self.unary()
        while True:
            if self.accept("*"):
                value = combine(value, self.unary(), lambda a, b: a * b)
            elif self.accept("/"):
                value = combine(value, self.unary(), _divide)
            else:
                return value

    def unary(self) -> Value:
        if self.accept("-"):
            return combine(-1.0, self.unary(), lambda a, b: a * b)
        if self.accept("+"):
            return self.unary()
        return self.primary()

    def primary(self) -> Value:
        kind, text = self.take()
        if kind == "number":
            return float(text)
        if kind == "op" and text == "(":
            value = self.expression()
            self.take(")")
            return value
        if kind == "op" and text == "[":
            items: list[TimeSeries] = []
            if not self.accept("]"):
                while True:
                    items.extend(_as_array(self.expression()))
                    if self.accept("]"):
                        break
                    self.take(",")
            return items
        if kind == "name":
            if self.accept("("):
                return self.call(text.upper())
            return self.resolve(text)
        raise ExpressionError(f"Unexpected {text!r} in the expression.")

    def call(self, function: str) -> Value:
        if function == "METRICS":
            token = self.peek()
            search = None
            if token is not None and token[0] == "string":
                search = self.take()[1][1:-1]
            self.take(")")
            return self.metrics(search)
        argument = self.expression()
        self.take(")")
        if function == "ABS":
            return combine(argument, 0.0, lambda a, _: abs(a))
        reducer = _REDUCERS.get(function)
        if reducer is None:
            raise ExpressionError(f"Unsupported function {function}.")
        if isinstance(argument, list):
            return _pointwise(argument, reducer)
        if isinstance(argument, dict):
            values = list(argument.values())
            return reducer(values) if values else math.nan
        return argument


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"Unexpected character {text[position:].strip()[0]!r}.")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    if not tokens:
        raise ExpressionError("The expression is empty.")
    return tokens


def _divide(a: float, b: float) -> float:
    return a / b if b != 0 else math.nan


def combine(left: Value, right: Value, op: Callable[[float, float], float]) -> Value:
    """`left op right` for scalars, series and arrays of series."""
    if isinstance(left, list):
        return [_as_series(combine(item, right, op)) for item in left]
    if isinstance(right, list):
        return [_as_series(combine(left, item, op)) for item in right]
    if isinstance(left, dict) and isinstance(right, dict):
        return _finite({ts: op(v, right[ts]) for ts, v in left.items() if ts in right})
    if isinstance(left, dict):
        return _finite({ts: op(v, float(right)) for ts, v in left.items()})  # type: ignore[arg-type]
    if isinstance(right, dict):
        return _finite({ts: op(float(left), v) for ts, v in right.items()})
    return op(float(left), float(right))


def _finite(series: TimeSeries) -> TimeSeries:
    return {ts: v for ts, v in series.items() if math.isfinite(v)}


def _as_series(value: Value) -> TimeSeries:
    if isinstance(value, dict):
        return value
    raise ExpressionError("An array must hold time series.")


def _as_array(value: Value) -> list[TimeSeries]:
    if isinstance(value, list):
        return value
    return [_as_series(value)]


def _pointwise(items: list[TimeSeries], reducer: Callable[[list[float]], float]) -> TimeSeries:
    stamps = sorted({ts for item in items for ts in item})
    return {ts: reducer([item[ts] for item in items if ts in item]) for ts in stamps}


_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "SUM": math.fsum,
    "AVG": lambda values: math.fsum(values) / len(values),
    "MIN": min,
    "MAX": max,
}
