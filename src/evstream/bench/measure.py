"""Measurement: check each implementation's answer, then time them all in interleaved rounds.

Method, chosen so that the ratios survive a noisy machine:

* every implementation of one workload (evstream and its peers) is measured in the same process and the
  same run, in interleaved rounds (A B C, B C A, ...), so a burst of load elsewhere hits them all alike;
* a round times a calibrated number of back-to-back calls (at least ``round_s`` long) with the GC off;
  the figure is the median over rounds, with the interquartile range kept to show the noise;
* every loop is bounded in time (a per-workload budget; at least 3 rounds);
* each implementation's answer is checked on the very input it is timed on, before timing: a wrong answer
  is reported as such and never gets a ratio.
"""

from __future__ import annotations

import gc
import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .peers import Impl

__all__ = ["Case", "Result", "Timing", "measure_set"]


class Timing(Protocol):
    """How long to measure (a :class:`~evstream.bench.cases.Mode` is one)."""

    @property
    def round_s(self) -> float: ...  # minimum length of one timed round
    @property
    def rounds(self) -> int: ...  # rounds wanted per case
    @property
    def budget_s(self) -> float: ...  # time bound for one workload (all its implementations)


@dataclass
class Case:
    """One implementation on one workload: what is timed, and how to tell it got the right answer."""

    group: str
    key: str  # workload id, stable across runs ("crc32/1KiB", "decode/tokens/64KiB")
    label: str
    impl: Impl
    args: tuple[Any, ...]
    check: Callable[[], bool]
    nbytes: int
    nmessages: int
    size: int  # x axis of the chart: input size (CRC) or frame size (decode, encode)
    cpu: bool = False  # time with process CPU (end to end: only this process, the client, counts)


@dataclass
class Result:
    group: str
    key: str
    label: str
    impl: str
    primary: bool
    evstream: bool
    correct: bool
    size: int
    nbytes: int
    nmessages: int
    median_s: float = math.nan
    q1_s: float = math.nan
    q3_s: float = math.nan
    min_s: float = math.nan
    rounds: int = 0
    loops: int = 0
    speedup: float | None = None  # peer median / evstream median for this workload
    samples: list[float] = field(default_factory=list, repr=False)

    @property
    def bytes_per_s(self) -> float:
        return self.nbytes / self.median_s if self.median_s > 0 else math.nan

    @property
    def messages_per_s(self) -> float:
        return self.nmessages / self.median_s if self.median_s > 0 else math.nan


def _time_loop(func: Callable[..., Any], args: tuple[Any, ...], loops: int, cpu: bool = False) -> float:
    # Separate loops per arity: `func(*args)` costs ~30 ns, as much as a 64-byte CRC.
    it = itertools.repeat(None, loops)
    clock = time.process_time if cpu else time.perf_counter
    if len(args) == 1:
        (a,) = args
        t0 = clock()
        for _ in it:
            func(a)
    elif len(args) == 2:
        a, b = args
        t0 = clock()
        for _ in it:
            func(a, b)
    else:
        t0 = clock()
        for _ in it:
            func(*args)
    return clock() - t0


def _calibrate(case: Case, round_s: float) -> int:
    """Loops per round so that a round lasts at least ``round_s`` (this doubles as the warm-up)."""
    loops = 1
    while True:
        elapsed = _time_loop(case.impl.func, case.args, loops, case.cpu)
        if elapsed >= round_s:
            return loops
        if elapsed >= round_s / 10:
            return max(loops, math.ceil(loops * round_s / elapsed))
        loops = loops * 10 if elapsed < round_s / 100 else loops * 2


def _checked(case: Case) -> Result:
    try:
        ok = bool(case.check())
    except Exception:  # a peer that raises on valid input is wrong, not fatal to the run
        ok = False
    impl = case.impl
    return Result(
        case.group,
        case.key,
        case.label,
        impl.name,
        impl.primary,
        impl.evstream,
        ok,
        case.size,
        case.nbytes,
        case.nmessages,
    )


def _summarize(res: Result, loops: int) -> None:
    q = statistics.quantiles(res.samples, n=4) if len(res.samples) >= 2 else [res.samples[0]] * 3
    res.median_s = statistics.median(res.samples)
    res.q1_s, res.q3_s = q[0], q[2]
    res.min_s = min(res.samples)
    res.rounds = len(res.samples)
    res.loops = loops


def measure_set(
    cases: Sequence[Case], timing: Timing, tick: Callable[[float], None] | None = None
) -> list[Result]:
    """Check, then time, the implementations of one workload in interleaved rounds."""
    results = [_checked(case) for case in cases]
    live = [(case, res) for case, res in zip(cases, results) if res.correct]
    loops = {id(c): _calibrate(c, timing.round_s) for c, _ in live}
    start = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    try:
        for rnd in range(timing.rounds):
            order = live[rnd % len(live) :] + live[: rnd % len(live)] if live else []
            for case, res in order:
                if loops[id(case)] == 1 and not case.cpu:
                    # One call is a round (large frames): an untimed call first, so each implementation
                    # is timed on the heap it leaves itself. On the default allocator a peer that churns
                    # large buffers (botocore's) makes glibc return memory to the kernel, and whichever
                    # implementation follows it would pay those page faults in its timed call.
                    case.impl.func(*case.args)
                gc.collect()
                gc.disable()
                try:
                    elapsed = _time_loop(case.impl.func, case.args, loops[id(case)], case.cpu)
                finally:
                    if gc_was_enabled:
                        gc.enable()
                res.samples.append(elapsed / loops[id(case)])
            if tick:
                tick((rnd + 1) / timing.rounds)
            if rnd + 1 >= 3 and time.perf_counter() - start > timing.budget_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    for case, res in live:
        _summarize(res, loops[id(case)])
    primary = next((r for r in results if r.primary and r.correct), None)
    for res in results:
        if primary is not None and res.correct and not res.primary:
            res.speedup = res.median_s / primary.median_s
    if tick:
        tick(1.0)
    return results
