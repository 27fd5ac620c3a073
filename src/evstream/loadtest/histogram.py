"""Latency histograms that merge exactly: log-linear buckets, and the raw samples while they are few.

Percentiles cannot be averaged across workers; counts can be added. A :class:`Histogram` keeps every
sample (integers, nanoseconds) up to ``exact_limit`` of them, so small runs report exact percentiles;
past that it keeps only bucket counts. The buckets are HDR-style: each power of two is cut into
``2**SUB_BITS`` equal parts, so a value reported from its bucket is off by at most
``1 / 2**(SUB_BITS + 1)`` of itself (0.2 % with 8 sub-bucket bits). Merging adds counts bucket by bucket,
so a merged histogram is the one a single process would have recorded.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["EXACT_LIMIT", "RELATIVE_ERROR", "SUB_BITS", "Histogram"]

SUB_BITS = 8
SUB_COUNT = 1 << SUB_BITS
RELATIVE_ERROR = 1.0 / (1 << (SUB_BITS + 1))
EXACT_LIMIT = 20_000


def bucket_of(value: int) -> int:
    """The bucket index of a value >= 0. Values below 2**SUB_BITS have a bucket each (exact)."""
    shift = value.bit_length() - SUB_BITS - 1
    if shift <= 0:
        return value
    # Bucket (shift, top SUB_BITS+1 bits of value); the top bit is always 1, so subtract it.
    return (shift << SUB_BITS) + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The values [low, high] that fall into bucket ``index``."""
    if index < 2 * SUB_COUNT:
        return index, index
    shift = (index >> SUB_BITS) - 1
    low = (index - (shift << SUB_BITS)) << shift
    return low, low + (1 << shift) - 1


class Histogram:
    """Counts of non-negative integer samples (nanoseconds by convention) with min, max and sum exact."""

    __slots__ = ("_buckets", "_count", "_max", "_min", "_pending", "_samples", "_total", "exact_limit")

    # Recording only appends to a list (a stream's hot path pays ~0.1 us per value); the values are
    # folded into the buckets when anything reads the histogram, or every _PENDING values. A fold costs
    # about 0.45 us per value on the event loop that records, all at once: 512 values hold the loop
    # about 0.2 ms, where 65,536 held it 30 ms (at a thousand streams, every second or two, a stall
    # the next events' delays then carried).
    _PENDING = 512

    def __init__(self, exact_limit: int = EXACT_LIMIT) -> None:
        self.exact_limit = exact_limit
        self._buckets: dict[int, int] = {}
        self._samples: list[int] | None = []  # None once there were more than exact_limit
        self._pending: list[int] = []
        self._count = 0
        self._total = 0
        self._min = 0
        self._max = 0

    def record(self, value: int) -> None:
        pending = self._pending
        pending.append(value)
        if len(pending) >= self._PENDING:
            self._fold()

    def record_many(self, values: Iterable[int]) -> None:
        for value in values:
            self.record(value)

    def _fold(self) -> None:
        values = [v if v > 0 else 0 for v in self._pending]
        self._pending.clear()
        if not values:
            return
        buckets = self._buckets
        for value in values:
            index = bucket_of(value)
            buckets[index] = buckets.get(index, 0) + 1
        low, high = min(values), max(values)
        if self._count == 0 or low < self._min:
            self._min = low
        self._max = max(self._max, high)
        self._count += len(values)
        self._total += sum(values)
        samples = self._samples
        if samples is not None:
            if len(samples) + len(values) <= self.exact_limit:
                samples.extend(values)
            else:
                self._samples = None

    @property
    def buckets(self) -> dict[int, int]:
        self._fold()
        return self._buckets

    @property
    def samples(self) -> list[int] | None:
        self._fold()
        return self._samples

    @property
    def count(self) -> int:
        self._fold()
        return self._count

    @property
    def total(self) -> int:
        self._fold()
        return self._total

    @property
    def minimum(self) -> int:
        self._fold()
        return self._min

    @property
    def maximum(self) -> int:
        self._fold()
        return self._max

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other``'s counts into this histogram (in place) and return it."""
        self._fold()
        if other.count == 0:
            return self
        for index, n in other.buckets.items():
            self._buckets[index] = self._buckets.get(index, 0) + n
        if self._count == 0 or other.minimum < self._min:
            self._min = other.minimum
        self._max = max(self._max, other.maximum)
        self._count += other.count
        self._total += other.total
        theirs = other.samples
        if self._samples is not None and theirs is not None and self._count <= self.exact_limit:
            self._samples.extend(theirs)
        else:
            self._samples = None
        return self

    @property
    def exact(self) -> bool:
        """True when percentiles come from the samples themselves."""
        return self.samples is not None

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100), nearest-rank: the smallest value with at least q % of the
        samples at or below it. NaN when empty."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be between 0 and 100, not {q}")
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q / 100.0 * self.count))
        if rank >= self.count:
            return float(self.maximum)
        if self.samples is not None:
            return float(sorted(self.samples)[rank - 1])
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                low, high = bucket_bounds(index)
                # The middle of the bucket, kept inside what was actually seen.
                return float(min(max((low + high) / 2.0, self.minimum), self.maximum))
        return float(self.maximum)

    def percentiles(self, qs: Iterable[float]) -> dict[float, float]:
        if self.samples is not None and self.count:
            ordered = sorted(self.samples)
            result = {}
            for q in qs:
                rank = max(1, math.ceil(q / 100.0 * self.count))
                result[q] = float(ordered[min(rank, self.count) - 1])
            return result
        return {q: self.percentile(q) for q in qs}

    def fraction_above(self, threshold: int) -> float:
        """The share of samples above ``threshold`` (exact with samples, bucket-bounded otherwise)."""
        if self.count == 0:
            return 0.0
        if self.samples is not None:
            ordered = sorted(self.samples)
            return (len(ordered) - bisect.bisect_right(ordered, threshold)) / self.count
        above = sum(n for index, n in self.buckets.items() if bucket_bounds(index)[0] > threshold)
        return above / self.count

    # -- transport (workers send these back to the coordinator) --------------------------------------

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """Plain data (JSON-able); without ``samples`` the copy keeps only the buckets (smaller, and
        percentiles within the relative error)."""
        return {
            "count": self.count,
            "total": self.total,
            "min": self.minimum,
            "max": self.maximum,
            "exact_limit": self.exact_limit,
            "buckets": {str(k): v for k, v in sorted(self.buckets.items())},
            "samples": self.samples if samples else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        histogram = cls(int(data["exact_limit"]))
        histogram._count = int(data["count"])
        histogram._total = int(data["total"])
        histogram._min = int(data["min"])
        histogram._max = int(data["max"])
        histogram._buckets = {int(k): int(v) for k, v in data["buckets"].items()}
        samples = data["samples"]
        histogram._samples = None if samples is None else [int(v) for v in samples]
        if sum(histogram._buckets.values()) != histogram._count:
            raise ValueError("histogram counts do not add up")
        return histogram

    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = self.from_dict(state)
        for name in self.__slots__:
            setattr(self, name, getattr(other, name))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self.count:
            return "Histogram(empty)"
        p50, p99 = self.percentile(50), self.percentile(99)
        return f"Histogram(n={self.count}, p50={p50:.0f}, p99={p99:.0f}, max={self.maximum})"
