"""Concurrency accounting: the account's limit, functions' reserved concurrency, throttling.

Every running invocation holds one unit. Limits apply per account and region, as Lambda's
do. A function with reserved concurrency draws from its own reservation only; every other
function of that account and region shares what is left of the limit (the unreserved pool).
Counting is in memory: it is the running invocations of this process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The throttle reasons Lambda reports in TooManyRequestsException's `Reason`.
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
# Lambda keeps this much of the account's limit unreserved.
MIN_UNRESERVED = 100


@dataclass(frozen=True, slots=True)
class Throttled:
    reason: str


@dataclass(slots=True)
class _Scope:
    """One account in one region."""

    reserved: dict[str, int] = field(default_factory=dict)
    total_reserved: int = 0
    unreserved_in_flight: int = 0


def scope_of(function_arn: str) -> tuple[str, str]:
    """(region, account) of a function ARN (`arn:aws:lambda:<region>:<account>:function:…`)."""
    parts = function_arn.split(":", 5)
    return (parts[3], parts[4]) if len(parts) > 4 else ("", "")


class ConcurrencyLimiter:
    """In-flight invocations per function (any version or alias) against the limits.

    Functions are named by their unqualified ARN, which carries the account and region.
    """

    def __init__(self, account_limit: int = 1000) -> None:
        self.account_limit = account_limit
        self._scopes: dict[tuple[str, str], _Scope] = {}
        self._in_flight: dict[str, int] = {}

    def _scope(self, function: str) -> _Scope:
        key = scope_of(function)
        scope = self._scopes.get(key)
        if scope is None:
            scope = self._scopes[key] = _Scope()
        return scope

    @property
    def min_unreserved(self) -> int:
        return min(MIN_UNRESERVED, self.account_limit)

    def unreserved_limit(self, region: str, account: str) -> int:
        scope = self._scopes.get((region, account))
        reserved = scope.total_reserved if scope else 0
        return max(0, self.account_limit - reserved)

    def reserved(self, function: str) -> int | None:
        return self._scope(function).reserved.get(function)

    def set_reserved(self, function: str, count: int | None) -> None:
        """Reserve `count` for `function` (None: share the unreserved pool again).

        Invocations already running keep their unit wherever they took it from; the counts
        settle as they finish.
        """
        scope = self._scope(function)
        previous = scope.reserved.get(function)
        running = self._in_flight.get(function, 0)
        if previous is not None:
            scope.total_reserved -= previous
        if count is None:
            scope.reserved.pop(function, None)
            if previous is not None:
                scope.unreserved_in_flight += running
        else:
            scope.reserved[function] = count
            scope.total_reserved += count
            if previous is None:
                scope.unreserved_in_flight -= running

    def available_for_reservation(self, function: str) -> int:
        """The most `function` may reserve while leaving the minimum unreserved."""
        scope = self._scope(function)
        others = scope.total_reserved - scope.reserved.get(function, 0)
        return self.account_limit - others - self.min_unreserved

    def try_acquire(self, function: str) -> Throttled | None:
        """Take a unit for one invocation of `function`, or say why it is throttled."""
        scope = self._scope(function)
        running = self._in_flight.get(function, 0)
        reserved = scope.reserved.get(function)
        if reserved is not None:
            if running >= reserved:
                return Throttled(RESERVED_LIMIT)
        elif scope.unreserved_in_flight >= self.account_limit - scope.total_reserved:
            return Throttled(ACCOUNT_LIMIT)
        else:
            scope.unreserved_in_flight += 1
        self._in_flight[function] = running + 1
        return None

    def release(self, function: str) -> None:
        scope = self._scope(function)
        running = self._in_flight.get(function, 0) - 1
        if running > 0:
            self._in_flight[function] = running
        else:
            self._in_flight.pop(function, None)
        if function not in scope.reserved:
            scope.unreserved_in_flight = max(0, scope.unreserved_in_flight - 1)

    def in_flight(self, function: str) -> int:
        return self._in_flight.get(function, 0)
