"""Concurrency accounting: the account's limit, functions' reserved concurrency, throttling.

Every running invocation holds one unit. A function with reserved concurrency draws from its
own reservation only; every other function shares what is left of the account's limit (the
unreserved pool). Counting is in memory: it is the running invocations of this process.
"""

from __future__ import annotations

from dataclasses import dataclass

# The throttle reasons Lambda reports in TooManyRequestsException's `Reason`.
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
# Lambda keeps this much of the account's limit unreserved.
MIN_UNRESERVED = 100


@dataclass(frozen=True, slots=True)
class Throttled:
    reason: str


class ConcurrencyLimiter:
    """In-flight invocations per function (any version or alias) against the limits."""

    def __init__(self, account_limit: int = 1000) -> None:
        self.account_limit = account_limit
        self._reserved: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}
        self._unreserved_in_flight = 0

    @property
    def total_reserved(self) -> int:
        return sum(self._reserved.values())

    @property
    def unreserved_limit(self) -> int:
        return max(0, self.account_limit - self.total_reserved)

    @property
    def min_unreserved(self) -> int:
        return min(MIN_UNRESERVED, self.account_limit)

    def reserved(self, function: str) -> int | None:
        return self._reserved.get(function)

    def set_reserved(self, function: str, count: int | None) -> None:
        """Reserve `count` for `function` (None: share the unreserved pool again).

        Invocations already running keep their unit wherever they took it from; the counts
        settle as they finish.
        """
        was_reserved = function in self._reserved
        running = self._in_flight.get(function, 0)
        if count is None:
            self._reserved.pop(function, None)
            if was_reserved:
                self._unreserved_in_flight += running
        else:
            self._reserved[function] = count
            if not was_reserved:
                self._unreserved_in_flight -= running

    def available_for_reservation(self, function: str) -> int:
        """The most `function` may reserve while leaving the minimum unreserved."""
        others = self.total_reserved - self._reserved.get(function, 0)
        return self.account_limit - others - self.min_unreserved

    def try_acquire(self, function: str) -> Throttled | None:
        """Take a unit for one invocation of `function`, or say why it is throttled."""
        running = self._in_flight.get(function, 0)
        reserved = self._reserved.get(function)
        if reserved is not None:
            if running >= reserved:
                return Throttled(RESERVED_LIMIT)
        elif self._unreserved_in_flight >= self.unreserved_limit:
            return Throttled(ACCOUNT_LIMIT)
        else:
            self._unreserved_in_flight += 1
        self._in_flight[function] = running + 1
        return None

    def release(self, function: str) -> None:
        running = self._in_flight.get(function, 0) - 1
        if running > 0:
            self._in_flight[function] = running
        else:
            self._in_flight.pop(function, None)
        if function not in self._reserved:
            self._unreserved_in_flight = max(0, self._unreserved_in_flight - 1)

    def in_flight(self, function: str | None = None) -> int:
        if function is None:
            return sum(self._in_flight.values())
        return self._in_flight.get(function, 0)
