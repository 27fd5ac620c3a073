"""An emulated model's latency profile, and the send-time stamp on each record.

Time to first token and the gaps between tokens follow distributions given as text
(:meth:`Distribution.parse`): ``200ms`` (constant), ``normal:20ms,4ms`` (mean, standard deviation),
``lognormal:20ms,4ms`` (mean, standard deviation of the distribution itself), ``uniform:15ms,25ms``.
The second parameter is the jitter; draws below zero are taken as zero.

With ``stamp`` each JSON record carries ``"sent_ns"``: :func:`clock_ns` read just before the record
is written to the socket. The clock is the system-wide monotonic clock (CLOCK_MONOTONIC on Linux,
the same in every process of the machine), so a client on the same machine measures how long the
record took from the server's ``write()`` to its own hands: receive time minus ``sent_ns``. Paced
streams also carry ``"due_ns"``, when the profile wanted the record sent: ``sent_ns - due_ns`` is how
far the endpoint itself fell behind (a loaded machine), which is not the model's profile either.

Paced streams are sent by one timer per event loop (:func:`pace`), so a thousand streams cost a heap
of due times rather than a thousand sleeping tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import heapq
import itertools
import math
import random
import re
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "DUE_FIELD",
    "KINDS",
    "STAMP_FIELD",
    "Distribution",
    "Pacing",
    "add_latency_arguments",
    "check_profile",
    "clock_ns",
    "distribution",
    "pace",
    "paced_parts",
    "parse_duration",
    "sleep_until",
    "stamp_record",
    "streamed_parts",
]

KINDS = ("constant", "normal", "lognormal", "uniform")
STAMP_FIELD = "sent_ns"
DUE_FIELD = "due_ns"  # when the profile wanted the record sent (paced streams): sent - due is lateness
_STAMP_KEY = STAMP_FIELD.encode()
_DUE_KEY = DUE_FIELD.encode()

# perf_counter is CLOCK_MONOTONIC on Linux, mach_absolute_time on macOS and QueryPerformanceCounter on
# Windows: one clock for all processes of a machine, so stamps compare across the client and the server.
clock_ns: Callable[[], int] = time.perf_counter_ns
_clock_s: Callable[[], float] = time.perf_counter  # the same clock, in seconds: every due time here
_TICK = 0.001  # how often a paced sender wakes at most


async def sleep_until(due_ns: int) -> None:
    """Sleep until :func:`clock_ns` reaches ``due_ns``: never less (uvloop's timers fire up to a
    millisecond early, its time being millisecond-coarse), at most about a millisecond more."""
    wait = (due_ns - clock_ns()) / 1e9
    while wait > 0:
        await asyncio.sleep(wait)
        left = (due_ns - clock_ns()) / 1e9
        wait = max(left, _TICK) if left > 0 else 0.0  # woken early: sleep again, rather than spin


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|µs|ms|s)?\s*$")
_requests = itertools.count()


def parse_duration(text: str) -> float:
    """``"200ms"`` -> 0.2 (seconds); the unit (ns, us, ms, s) is required."""
    match = _NUMBER.match(text)
    if match is None or match.group(2) is None:
        raise ValueError(f"not a duration: {text!r} (give a number and a unit: 200ms, 0.2s, 150us)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _parse_number(text: str, durations: bool) -> float:
    if durations:
        return parse_duration(text)
    match = _NUMBER.match(text)
    if match is None or match.group(2) is not None:
        raise ValueError(f"not a number: {text!r}")
    return float(match.group(1))


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A distribution of non-negative values: ``kind`` with parameters ``a`` and ``b`` (see the module)."""

    kind: str
    a: float
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"distribution must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not (math.isfinite(self.a) and math.isfinite(self.b)) or self.a < 0 or self.b < 0:
            raise ValueError(f"{self.kind} parameters must be finite and >= 0")
        if self.kind == "uniform" and self.b < self.a:
            raise ValueError("uniform:LOW,HIGH needs LOW <= HIGH")
        if self.kind == "lognormal" and self.a <= 0:
            raise ValueError("lognormal needs a mean > 0")

    @classmethod
    def parse(cls, text: str, *, durations: bool = True) -> Distribution:
        """Parse ``KIND:A,B`` or a bare value (constant). Durations need a unit; counts must not have one."""
        if not isinstance(text, str):
            raise ValueError(f"a distribution is text, not {text!r}")
        return _parse_distribution(text, durations)

    @classmethod
    def _parse(cls, text: str, durations: bool) -> Distribution:
        kind, sep, params = text.partition(":")
        if not sep:
            return cls("constant", _parse_number(text, durations))
        kind = kind.strip().lower()
        values = [_parse_number(p, durations) for p in params.split(",")]
        wanted = 1 if kind == "constant" else 2
        if kind not in KINDS:
            raise ValueError(f"distribution must be one of {', '.join(KINDS)}, not {kind!r}")
        if len(values) != wanted:
            raise ValueError(f"{kind} takes {wanted} parameter{'s' if wanted > 1 else ''}: {text!r}")
        return cls(kind, *values)

    @property
    def mean(self) -> float:
        """The mean before clipping at zero."""
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    def sample(self, rng: random.Random) -> float:
        kind = self.kind
        if kind == "constant":
            return self.a
        if kind == "uniform":
            return rng.uniform(self.a, self.b)
        if kind == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        # lognormal with this mean and standard deviation: sigma^2 = ln(1 + (sd/mean)^2)
        sigma2 = math.log1p((self.b / self.a) ** 2)
        return rng.lognormvariate(math.log(self.a) - sigma2 / 2, math.sqrt(sigma2))

    def __str__(self) -> str:
        if self.kind == "constant":
            return f"{self.a:g}"
        return f"{self.kind}:{self.a:g},{self.b:g}"


# Every request of a load test names the same profile: parse each text once.
_parse_distribution = functools.lru_cache(maxsize=256)(Distribution._parse)


class Pacing:
    """When each token of one generation is due, in seconds after the request arrived.

    Token 0 comes after a TTFT draw (or at once), each next one an ITL draw later (or ``1 / rate``).
    Each generation draws from its own generator, numbered in order of arrival, so a run is repeatable.
    """

    def __init__(self, ttft: Distribution | None, itl: Distribution | None, rate: float, seed: int) -> None:
        self.ttft = ttft
        self.itl = itl
        self.interval = 1.0 / rate if rate else 0.0
        self.rng = random.Random(f"{seed}:{next(_requests)}")
        self.due = 0.0

    @classmethod
    def of(cls, ttft: str, itl: str, rate: float, seed: int) -> Pacing | None:
        """The pacing of a behavior, None when tokens go out as fast as the connection takes them."""
        if not (ttft or itl or rate):
            return None
        return cls(
            Distribution.parse(ttft) if ttft else None, Distribution.parse(itl) if itl else None, rate, seed
        )

    def next_due(self, n: int) -> float:
        """The time token ``n`` is due; call with n = 0, 1, 2, ... in order."""
        if n == 0:
            self.due = self.ttft.sample(self.rng) if self.ttft is not None else 0.0
        elif self.itl is not None:
            self.due += self.itl.sample(self.rng)
        else:
            self.due += self.interval
        return self.due


def distribution(text: str) -> str:
    """``text`` if it parses as a duration distribution, or "" for none (an argparse ``type``, which
    argparse also applies to the default "")."""
    if text:
        Distribution.parse(text)
    return text


def add_latency_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` options of the latency profile."""
    parser.add_argument(
        "--ttft",
        type=distribution,
        default="",
        help="time to first token: 200ms, normal:200ms,20ms, lognormal:MEAN,SD or uniform:LOW,HIGH",
    )
    parser.add_argument("--itl", type=distribution, default="", help="time between tokens (as --ttft)")
    parser.add_argument(
        "--stamp",
        action="store_true",
        help=f'add the send time ("{STAMP_FIELD}", ns) and when the profile wanted it sent ("{DUE_FIELD}") '
        "to each JSON record",
    )


def check_profile(ttft: str, itl: str, stamp: bool, straddle: bool) -> None:
    """ValueError for a profile that does not parse, or stamps on parts cut across records."""
    for text in (ttft, itl):
        if text:
            Distribution.parse(text)
    if stamp and straddle:
        raise ValueError("stamp needs one record per part: it cannot be combined with straddle")


def stamp_record(record: bytes, due_ns: int = 0) -> bytes:
    """The record with ``"sent_ns": <now>`` (last) added to its JSON object (the last ``}``), after
    ``"due_ns"`` when given; records without one (``data: [DONE]``, raw text) are returned unchanged.
    One formatting step: the paced sender calls it per record."""
    end = record.rfind(b"}")
    if end < 0:
        return record
    head, tail = record[:end], record[end:]
    if due_ns:
        return b'%s,"%s":%d,"%s":%d%s' % (head, _DUE_KEY, due_ns, _STAMP_KEY, clock_ns(), tail)
    return b'%s,"%s":%d%s' % (head, _STAMP_KEY, clock_ns(), tail)


# The generations a load test asks for are few and alike: remember their parts (up to this many tokens)
# rather than encode the same JSON records for every request.
_CACHED_TOKENS = 4096


def paced_parts(behavior: Any) -> Sequence[bytes]:
    """``split_parts(behavior)``, remembered for generations of up to 4,096 tokens."""
    if behavior.tokens > _CACHED_TOKENS:
        from .workloads import split_parts

        return list(split_parts(behavior))
    return _parts(behavior.format, behavior.tokens, behavior.seed, behavior.straddle)


def streamed_parts(behavior: Any) -> Iterable[bytes]:
    """``split_parts(behavior)`` as they are sent: the remembered parts for up to 4,096 tokens, else
    made one by one (a generation of a million tokens is never held whole)."""
    if behavior.tokens > _CACHED_TOKENS:
        from .workloads import split_parts

        return split_parts(behavior)
    return _parts(behavior.format, behavior.tokens, behavior.seed, behavior.straddle)


@functools.lru_cache(maxsize=16)
def _parts(format: str, tokens: int, seed: int, straddle: bool) -> tuple[bytes, ...]:
    from .workloads import Behavior, split_parts

    return tuple(split_parts(Behavior(format=format, tokens=tokens, seed=seed, straddle=straddle)))


# -- sending paced streams ----------------------------------------------------------------------------

# A reader this far behind (bytes buffered for its socket) gets no more records until it catches up.
_MAX_BUFFERED = 1 << 18  # 256 KiB: a thousand stalled readers hold 256 MiB at most


class _PacedStream:
    """One paced response: its parts, its next due time, and how it ended."""

    __slots__ = (
        "done",
        "due",
        "event",
        "offset",
        "pacing",
        "parts",
        "sent",
        "stamp",
        "start",
        "start_ns",
        "transport",
    )

    def __init__(
        self, transport: Any, parts: Sequence[bytes], pacing: Pacing, event: Any, stamp: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        self.transport = transport
        self.parts = parts
        self.pacing = pacing
        self.event = event
        self.stamp = stamp
        self.start_ns = clock_ns()
        self.start = self.start_ns / 1e9  # seconds of clock_ns's clock, as every due time here
        self.offset = pacing.next_due(0)  # seconds after the start
        self.due = self.start + self.offset
        self.sent = 0
        self.done: asyncio.Future[bool] = loop.create_future()

    def send(self) -> bool:
        """Send the part that is due; True while there are more."""
        if self.done.done():  # cancelled
            return False
        transport = self.transport
        if transport.is_closing():
            self.done.set_result(False)
            return False
        if transport.get_write_buffer_size() > _MAX_BUFFERED:
            self.due += 0.005  # the client is not reading: wait for it (the record will be late)
            return True
        sent = self.sent
        part = self.parts[sent]
        if self.stamp:
            part = stamp_record(part, self.start_ns + round(self.offset * 1e9))
        data = self.event(part)
        sent += 1
        self.sent = sent
        if sent == len(self.parts):
            transport.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))  # the last chunk and the end
            self.done.set_result(True)
            return False
        transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.offset = self.pacing.next_due(sent)
        self.due = self.start + self.offset
        return True


class _Ticker:
    """One timer per event loop sends the due records of every paced stream: a stream costs a heap
    entry between its tokens, not a sleeping task and a timer of its own.

    The timer fires at most once a tick and sends every record due by then, so a record goes out at
    its due time or within about a tick after it, never before, and the sends of a tick go out
    together: each wake-up, here and in the client reading them, then serves many streams rather than
    one. Due times are read on :func:`clock_ns`'s clock, not the loop's: uvloop keeps a millisecond-
    coarse time and its timers fire up to a millisecond early, which would send records early.
    """

    _BATCH = 512

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, _PacedStream]] = []
        self.order = itertools.count()
        self.timer: asyncio.Handle | None = None
        self.armed = 0.0
        self.next_tick = 0.0  # the earliest the timer may fire again

    def add(self, stream: _PacedStream) -> None:
        heapq.heappush(self.heap, (stream.due, next(self.order), stream))
        self._arm()

    def _arm(self) -> None:
        if not self.heap:
            return
        when = max(self.heap[0][0], self.next_tick)
        if self.timer is not None:
            if self.armed <= when:
                return
            self.timer.cancel()
        self.armed = when  # uvloop's timer handles have no when()
        self.timer = self.loop.call_later(max(0.0, when - _clock_s()), self._fire)

    def _fire(self) -> None:
        # Each due stream sends once per pass, at most _BATCH of them: a loop that has fallen behind
        # still reads requests and accepts connections between passes instead of catching up first.
        now = _clock_s()
        if now < self.armed:
            # Woken early, as uvloop's millisecond timers can be: wait out the rest, rounded up to
            # the millisecond so that uvloop does not wake again at once.
            self.timer = self.loop.call_later(math.ceil((self.armed - now) * 1e3) / 1e3, self._fire)
            return
        self.timer = None
        heap = self.heap
        self.next_tick = now + _TICK
        due: list[_PacedStream] = []
        while heap and heap[0][0] <= now and len(due) < self._BATCH:
            due.append(heapq.heappop(heap)[2])
        push, order = heapq.heappush, self.order
        for stream in due:
            if stream.send():
                push(heap, (stream.due, next(order), stream))
        self._arm()


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Ticker] = weakref.WeakKeyDictionary()


async def pace(
    writer: asyncio.StreamWriter, parts: Sequence[bytes], pacing: Pacing, event: Any, stamp: bool
) -> tuple[bool, int]:
    """Send ``parts`` as one HTTP chunk each (framed by ``event``), each when ``pacing`` says, then end
    the chunked body. Returns whether the body was sent whole, and how many parts went out."""
    if not parts:
        writer.write(b"0\r\n\r\n")
        return True, 0
    loop = asyncio.get_running_loop()
    ticker = _tickers.get(loop)
    if ticker is None:
        ticker = _tickers[loop] = _Ticker(loop)
    stream = _PacedStream(writer.transport, parts, pacing, event, stamp)
    ticker.add(stream)
    try:
        whole = await stream.done
    finally:
        if not stream.done.done():
            stream.done.cancel()  # the connection was cancelled: the ticker drops the stream
    if whole:
        await writer.drain()
    return whole, stream.sent
