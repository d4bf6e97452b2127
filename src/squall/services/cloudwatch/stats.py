"""Statistic sets with the samples percentiles need, and the statistics CloudWatch computes.

An `Aggregate` is what one bucket (or one period of a query) knows about a metric: sample
count, sum, minimum, maximum, and the values themselves as a map value → weight. The map stays
exact up to `MAX_SAMPLES` distinct values; past that it is folded into logarithmic bins of 1%
relative width (as a DDSketch does), so percentiles keep an error of at most 1% and a bucket
never grows without bound. Percentiles are only answered when every sample of the period is
known (statistic sets without raw values hide them), as CloudWatch does.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable

MAX_SAMPLES = 2048
GAMMA = 1.02  # relative width of a bin once a bucket's samples are folded
_LOG_GAMMA = math.log(GAMMA)

STANDARD_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")

_PERCENTILE = re.compile(r"[pP](\d{1,3}(?:\.\d+)?)")
_TRIMMED = re.compile(r"(?:tm|TM)(\d{1,3}(?:\.\d+)?)")
_TRIMMED_RANGE = re.compile(r"(?:tm|TM)\((\d{1,3}(?:\.\d+)?)%:(\d{1,3}(?:\.\d+)?)%\)")


class Aggregate:
    """Sample count, sum, min, max and (weighted) samples of some values."""

    __slots__ = ("count", "maximum", "minimum", "samples", "total")

    def __init__(self) -> None:
        self.count = 0.0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.samples: dict[float, float] = {}

    def add(self, value: float, weight: float = 1.0) -> None:
        if weight <= 0:
            return
        self.count += weight
        self.total += value * weight
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        samples = self.samples
        samples[value] = samples.get(value, 0.0) + weight
        if len(samples) > MAX_SAMPLES:
            self.samples = fold(samples)

    def add_statistics(self, count: float, total: float, minimum: float, maximum: float) -> None:
        """A statistic set; its values are known only when they are all the same."""
        if count <= 0:
            return
        self.count += count
        self.total += total
        self.minimum = min(self.minimum, minimum)
        self.maximum = max(self.maximum, maximum)
        if minimum == maximum:
            self.samples[minimum] = self.samples.get(minimum, 0.0) + count
            if len(self.samples) > MAX_SAMPLES:
                self.samples = fold(self.samples)

    def merge(self, other: Aggregate, *, with_samples: bool = True) -> None:
        if other.count <= 0:
            return
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        if with_samples and other.samples:
            samples = self.samples
            for value, weight in other.samples.items():
                samples[value] = samples.get(value, 0.0) + weight
            if len(samples) > MAX_SAMPLES:
                self.samples = fold(samples)

    def copy(self) -> Aggregate:
        clone = Aggregate()
        clone.count, clone.total = self.count, self.total
        clone.minimum, clone.maximum = self.minimum, self.maximum
        clone.samples = dict(self.samples)
        return clone

    @property
    def average(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def complete(self) -> bool:
        """Whether every sample is known (percentiles can be answered)."""
        known = math.fsum(self.samples.values())
        return self.count > 0 and abs(known - self.count) <= 1e-9 * max(1.0, self.count)

    def pack_samples(self) -> bytes | None:
        if not self.samples:
            return None
        flat = array("d")
        for value, weight in self.samples.items():
            flat.append(value)
            flat.append(weight)
        return flat.tobytes()

    @classmethod
    def from_row(
        cls, count: float, total: float, minimum: float, maximum: float, samples: bytes | None
    ) -> Aggregate:
        aggregate = cls()
        aggregate.count, aggregate.total = count, total
        aggregate.minimum, aggregate.maximum = minimum, maximum
        if samples:
            flat = array("d")
            flat.frombytes(samples)
            aggregate.samples = dict(zip(flat[0::2], flat[1::2], strict=True))
        return aggregate


def fold(samples: dict[float, float]) -> dict[float, float]:
    """Samples binned logarithmically (1% wide bins); idempotent on already folded values."""
    folded: dict[float, float] = {}
    for value, weight in samples.items():
        key = _representative(value)
        folded[key] = folded.get(key, 0.0) + weight
    return folded


def _representative(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = abs(value)
    index = math.ceil(math.log(magnitude) / _LOG_GAMMA - 1e-12)
    middle = 2 * GAMMA**index / (GAMMA + 1)  # inside (GAMMA**(index-1), GAMMA**index]
    return math.copysign(middle, value)


def percentile(samples: dict[float, float], fraction: float) -> float | None:
    """The smallest value with at least `fraction` of the weight at or below it."""
    if not samples:
        return None
    ordered = sorted(samples.items())
    total = math.fsum(weight for _, weight in ordered)
    threshold = fraction * total
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= threshold - 1e-9 * total:
            return value
    return ordered[-1][0]


def trimmed_mean(samples: dict[float, float], low: float, high: float) -> float | None:
    """The mean of the values ranked between the `low` and `high` fractions of the weight."""
    if not samples or high <= low:
        return None
    ordered = sorted(samples.items())
    total = math.fsum(weight for _, weight in ordered)
    start, end = low * total, high * total
    running = weighted = kept = 0.0
    for value, weight in ordered:
        overlap = min(running + weight, end) - max(running, start)
        if overlap > 0:
            weighted += value * overlap
            kept += overlap
        running += weight
    return weighted / kept if kept > 0 else None


Statistic = Callable[[Aggregate], float | None]


def parse_statistic(name: str) -> Statistic | None:
    """The statistic a name such as `Sum`, `p99`, `p99.9`, `tm90`, `TM(10%:90%)` or `IQM` means;
    None when CloudWatch would not accept the name."""
    if name in STANDARD_STATISTICS:
        return _STANDARD[name]
    if name == "IQM":
        return _trimmed(25.0, 75.0)
    if match := _PERCENTILE.fullmatch(name):
        point = float(match.group(1))
        if point > 100:
            return None
        return lambda aggregate: (
            percentile(aggregate.samples, point / 100) if aggregate.complete else None
        )
    if match := _TRIMMED.fullmatch(name):
        high = float(match.group(1))
        return _trimmed(0.0, high) if 0 < high <= 100 else None
    if match := _TRIMMED_RANGE.fullmatch(name):
        low, high = float(match.group(1)), float(match.group(2))
        return _trimmed(low, high) if 0 <= low < high <= 100 else None
    return None


def needs_samples(name: str) -> bool:
    """Whether a statistic is computed from the samples (percentiles, trimmed means)."""
    return name not in STANDARD_STATISTICS


def _trimmed(low: float, high: float) -> Statistic:
    return lambda aggregate: (
        trimmed_mean(aggregate.samples, low / 100, high / 100) if aggregate.complete else None
    )


_STANDARD: dict[str, Statistic] = {
    "SampleCount": lambda a: a.count,
    "Average": lambda a: a.average,
    "Sum": lambda a: a.total,
    "Minimum": lambda a: a.minimum,
    "Maximum": lambda a: a.maximum,
}
