"""What one step of a load test measured, how a stream is timed, and how the client measures itself.

Timestamps are :func:`evstream.emulator.latency.clock_ns` (the system-wide monotonic clock), read as
each payload is handed over by the client, before any parsing: TTFT is the first payload with a
token minus the moment the request was sent; ITL the gap between consecutive payloads with tokens;
E2E the end of the stream minus the send. When the endpoint stamps its records with their send time
(the local endpoint's ``stamp``), ``delay`` is receive time minus send time: what the network stack and
the client add, nothing of the model.

The client watches itself: a timer on the event loop (a sleeping thread, for a thread-per-stream
client) records how late it runs; the process's CPU time gives the client's CPU per event and its
share of a core; the main thread's run-queue time (Linux) how long other processes kept it waiting;
the garbage collector's passes are timed; and the time-weighted count of open requests is the load the
client actually kept up. The endpoint's own lateness (its ``due_ns`` stamps) is kept apart, and so
is its CPU time and CPU wait when it runs on this machine (the local endpoint shares its CPUs).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from ..emulator.latency import clock_ns
from .histogram import Histogram

__all__ = [
    "LagProbe",
    "OpenRequests",
    "StepResult",
    "StreamTimer",
    "Window",
    "WorkerLoad",
    "clock_ns",
    "cpu_wait_s",
    "process_times",
]

# A client above these is flagged as possibly distorting what it measures: a core nearly used up, or
# late timers (their resolution is about 1 ms) while the OS was not holding the process off the CPU.
BUSY_CPU_SHARE = 0.75
BUSY_LAG_P99_NS = 2_000_000
# Above this share of the window spent waiting for a CPU, the machine (other processes) is busy.
CPU_WAIT_SHARE = 0.05

# Net new container objects before the collector's youngest generation runs inside the window.
WINDOW_GC_THRESHOLD = 100_000

HISTOGRAMS = ("ttft", "itl", "e2e", "delay", "late", "lag", "stream_tps")


@dataclasses.dataclass
class WorkerLoad:
    """One client process's own load over the measured window."""

    name: str
    window_ns: int = 0
    cpu_s: float = 0.0
    events: int = 0
    lag_p99_ns: float = 0.0
    lag_max_ns: float = 0.0
    streams: int = 0
    wait_s: float = 0.0  # time this process was ready to run but the OS ran something else
    gc_pause_max_ns: int = 0  # the longest garbage-collection pass in the window
    gc_pause_s: float = 0.0
    span_s: float = 0.0  # wall time between begin() and end(): what cpu_s, wait_s and events cover
    endpoint_pid: int = 0  # the local endpoint's process, when it runs on this machine
    endpoint_cpu_s: float = 0.0  # its CPU time over the same span (it shares the machine's CPUs)
    endpoint_wait_s: float = 0.0  # and its time ready to run while the OS ran something else

    @staticmethod
    def prepare() -> None:
        """Shortly before the window: collect, and freeze the objects made so far (connections,
        streams, the event loop's) out of the collector's passes, so that a full collection in the
        window does not walk all of them."""
        gc.collect()
        gc.freeze()

    def begin(self) -> None:
        """The measured window starts: read the CPU clocks, watch the garbage collector."""
        _GC_WATCH.start(self)
        # The wall and CPU clocks are read back to back (no call between them lets other threads
        # run), the run-queue figure after them.
        self.span_s = -clock_ns() / 1e9
        self.cpu_s = -time.process_time()
        self.wait_s = -cpu_wait_s()
        if self.endpoint_pid:
            self.endpoint_cpu_s, self.endpoint_wait_s = (-t for t in process_times(self.endpoint_pid))

    def end(self) -> None:
        self.span_s += clock_ns() / 1e9
        self.cpu_s += time.process_time()
        self.wait_s = max(0.0, self.wait_s + cpu_wait_s())
        if self.endpoint_pid:
            cpu, wait = process_times(self.endpoint_pid)
            self.endpoint_cpu_s = max(0.0, self.endpoint_cpu_s + cpu)
            self.endpoint_wait_s = max(0.0, self.endpoint_wait_s + wait)
        _GC_WATCH.stop()
        gc.unfreeze()

    @property
    def wait_share(self) -> float:
        """The share of the window spent waiting for a CPU: the machine, not the client, was busy."""
        return self.wait_s / self.span_s if self.span_s > 0 else 0.0

    @property
    def cpu_share(self) -> float:
        """The client's CPU time per second (1.0: one core busy)."""
        return self.cpu_s / self.span_s if self.span_s > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        """CPU per payload received over the span the clocks were read (``events`` counts those)."""
        return self.cpu_s * 1e6 / self.events if self.events else 0.0

    @property
    def busy(self) -> bool:
        """The client itself may have distorted what it measured."""
        late = self.lag_p99_ns >= BUSY_LAG_P99_NS and self.cpu_share >= BUSY_CPU_SHARE / 3
        return self.cpu_share >= BUSY_CPU_SHARE or (late and self.wait_share < CPU_WAIT_SHARE)

    @property
    def late_timers(self) -> bool:
        """Timers ran late although the client was mostly idle and had the CPU when it wanted it: the
        machine's wake-up latency, or a blocking call."""
        return self.lag_p99_ns >= BUSY_LAG_P99_NS and not self.busy and not self.starved

    @property
    def starved(self) -> bool:
        """Other processes held this one off the CPU enough to matter."""
        return self.wait_share >= CPU_WAIT_SHARE


@dataclasses.dataclass
class StepResult:
    """One step (a concurrency or a request rate) of one client; mergeable across workers."""

    client: str
    concurrency: int = 0
    rate: float = 0.0
    requests: int = 0  # measured requests that completed
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    output_tokens: int = 0  # of the measured requests
    window_ns: int = 0  # the measured window
    window_tokens: int = 0  # tokens received in the window, by any request
    window_events: int = 0
    window_completions: int = 0  # requests that ended in the window
    events: int = 0  # payloads received in the whole step, by any request
    in_flight: float = 0.0  # requests open on average over the window (workers' add up)
    ttft: Histogram = dataclasses.field(default_factory=Histogram)
    itl: Histogram = dataclasses.field(default_factory=Histogram)
    e2e: Histogram = dataclasses.field(default_factory=Histogram)
    delay: Histogram = dataclasses.field(default_factory=Histogram)  # receive - endpoint's send stamp
    late: Histogram = dataclasses.field(default_factory=Histogram)  # endpoint's send - due (its lateness)
    lag: Histogram = dataclasses.field(default_factory=Histogram)
    stream_tps: Histogram = dataclasses.field(default_factory=Histogram)  # milli-tokens/s per stream
    workers: list[WorkerLoad] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.rate:g}/s" if self.rate else str(self.concurrency)

    @property
    def tokens_per_s(self) -> float:
        return self.window_tokens / (self.window_ns / 1e9) if self.window_ns else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.window_completions / (self.window_ns / 1e9) if self.window_ns else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def busy_workers(self) -> list[WorkerLoad]:
        return [w for w in self.workers if w.busy]

    def merge(self, other: StepResult) -> StepResult:
        """Add another worker's part of the same step (in place)."""
        self.concurrency += other.concurrency
        self.rate += other.rate
        self.requests += other.requests
        for name, n in other.errors.items():
            self.errors[name] = self.errors.get(name, 0) + n
        self.output_tokens += other.output_tokens
        # Workers run their windows at the same time and for the same duration: counts add up and
        # the rates are over the (common) window.
        self.window_tokens += other.window_tokens
        self.window_events += other.window_events
        self.window_completions += other.window_completions
        self.events += other.events
        self.in_flight += other.in_flight
        self.window_ns = max(self.window_ns, other.window_ns)
        for name in HISTOGRAMS:
            getattr(self, name).merge(getattr(other, name))
        self.workers.extend(other.workers)
        return self

    @classmethod
    def merged(cls, parts: Iterable[StepResult]) -> StepResult:
        parts = list(parts)
        if not parts:
            raise ValueError("no results to merge")
        first = parts[0]
        total = cls(first.client)
        for part in parts:
            total.merge(part)
        return total

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in HISTOGRAMS:
            data[name] = getattr(self, name).to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        data = dict(data)
        for name in HISTOGRAMS:
            data[name] = Histogram.from_dict(data[name])
        data["workers"] = [WorkerLoad(**w) for w in data["workers"]]
        return cls(**data)


class Window:
    """The measured part of a step: requests that start inside it are measured, tokens received inside
    it count toward throughput."""

    __slots__ = ("cpu_end", "cpu_start", "end", "measured_started", "measured_target", "start")

    def __init__(self, start: int, end: int, measured_target: int = 0) -> None:
        self.start = start
        self.end = end
        self.measured_target = measured_target  # > 0: a count of requests instead of a duration
        self.measured_started = 0
        self.cpu_start = self.cpu_end = 0.0

    def admits(self, now: int) -> bool:
        """Whether a request starting now is measured."""
        if now < self.start:
            return False
        if self.measured_target:
            if self.measured_started >= self.measured_target:
                return False
            self.measured_started += 1
            return True
        return now < self.end

    @property
    def closed(self) -> bool:
        if self.measured_target:
            return self.measured_started >= self.measured_target
        return clock_ns() >= self.end


class OpenRequests:
    """How many requests are open, and the time-weighted mean of that over the window: the load the
    client actually kept up (a client that cannot keep up its streams opens fewer than asked)."""

    __slots__ = ("area", "count", "last", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.count = 0
        self.area = 0  # request-nanoseconds inside the window
        self.last = clock_ns()

    def change(self, delta: int) -> None:
        now = clock_ns()
        start = max(self.last, self.window.start)
        end = min(now, self.window.end)
        if end > start:
            self.area += self.count * (end - start)
        self.last = now
        self.count += delta

    def mean(self, window_ns: int) -> float:
        self.change(0)
        return self.area / window_ns if window_ns > 0 else 0.0


class StreamTimer:
    """Times one stream and adds what it saw to the step: call :meth:`payload` as each payload arrives,
    then :meth:`finish` or :meth:`fail`."""

    __slots__ = ("counter", "first", "last", "measured", "result", "sent", "tokens", "window")

    def __init__(self, result: StepResult, window: Window, counter: Any, measured: bool) -> None:
        self.result = result
        self.window = window
        self.counter = counter
        self.measured = measured
        self.sent = clock_ns()
        self.first = 0
        self.last = 0
        self.tokens = 0

    def payload(self, now: int, payload: bytes) -> None:
        tokens, sent, due = self.counter.feed(payload)
        result = self.result
        result.events += 1
        if self.measured:
            if sent:
                result.delay.record(now - sent)
                if due:
                    result.late.record(sent - due)
            if tokens:
                if self.first:
                    result.itl.record(now - self.last)
                else:
                    self.first = now
                    result.ttft.record(now - self.sent)
        if tokens:
            self.last = now
            self.tokens += tokens
        window = self.window
        if window.start <= now < window.end:
            result.window_tokens += tokens
            result.window_events += 1

    def finish(self) -> None:
        now = clock_ns()
        self.tokens += self.counter.close()
        result = self.result
        window = self.window
        if window.start <= now < window.end:
            result.window_completions += 1
        if not self.measured:
            return
        result.requests += 1
        result.output_tokens += self.tokens
        result.e2e.record(now - self.sent)
        if self.tokens > 1 and self.last > self.first:
            result.stream_tps.record(round((self.tokens - 1) * 1e12 / (self.last - self.first)))

    def fail(self, exc: BaseException) -> None:
        if self.measured:
            name = error_class(exc)
            self.result.errors[name] = self.result.errors.get(name, 0) + 1


def error_class(exc: BaseException) -> str:
    """The error's service code when it has one (boto3's and evstream's errors agree on those), else
    its class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return type(exc).__qualname__.split(".")[0]


class LagProbe:
    """Wakes up every ``interval`` seconds and records into ``histogram`` how late it ran.

    With ``loop``, a timer on the event loop: a late timer means the loop was busy (or the process
    was off the CPU), and a network event arriving then waits as long. Without, a thread sleeping:
    for a thread-per-stream client, how long a thread waits for the interpreter and a CPU. Timers
    have about a millisecond of resolution, so lags below that are noise.
    """

    def __init__(self, histogram: Histogram, loop: Any = None, interval: float = 0.02) -> None:
        self.histogram = histogram
        self.loop = loop
        self.interval = interval
        self.recording = False
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _tick(self, due: int) -> None:
        now = clock_ns()
        if self.recording:
            self.histogram.record(now - due)
        self._handle = self.loop.call_later(self.interval, self._tick, now + round(self.interval * 1e9))

    def _run(self) -> None:
        step = round(self.interval * 1e9)
        while True:
            due = clock_ns() + step
            if self._stop.wait(self.interval):
                return
            if self.recording:
                self.histogram.record(clock_ns() - due)

    def __enter__(self) -> LagProbe:
        if self.loop is not None:
            self._handle = self.loop.call_later(
                self.interval, self._tick, clock_ns() + round(self.interval * 1e9)
            )
        else:
            self._thread = threading.Thread(target=self._run, name="evstream-lag-probe", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.recording = False
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._stop.set()
            self._thread.join(5)


class _GCWatch:
    """Times the garbage collector's passes into the WorkerLoad being measured, and makes them rare in
    the window: the youngest generation is collected after ``WINDOW_GC_THRESHOLD`` net new objects
    rather than 700. The streams' objects come and go with their requests, so that many are reached
    only by garbage that survives (cycles, a few per request) or by a long window; it bounds what waits
    for collection, and a pass then is still timed and reported."""

    def __init__(self) -> None:
        self.load: WorkerLoad | None = None
        self.started = 0
        self.thresholds: tuple[int, ...] | None = None

    def start(self, load: WorkerLoad) -> None:
        self.load = load
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        if self.thresholds is None:
            self.thresholds = gc.get_threshold()
            gc.set_threshold(max(WINDOW_GC_THRESHOLD, self.thresholds[0]), *self.thresholds[1:])

    def stop(self) -> None:
        self.load = None
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        if self.thresholds is not None:
            gc.set_threshold(*self.thresholds)
            self.thresholds = None

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        load = self.load
        if load is None:
            return
        if phase == "start":
            self.started = clock_ns()
        elif self.started:
            pause = clock_ns() - self.started
            load.gc_pause_max_ns = max(load.gc_pause_max_ns, pause)
            load.gc_pause_s += pause / 1e9


_GC_WATCH = _GCWatch()


def cpu_wait_s() -> float:
    """Seconds the main thread (the event loop's) has spent ready to run while the OS ran something
    else (Linux schedstat; 0 elsewhere): a machine busy with other work, not the client's own load."""
    try:
        with open(f"/proc/self/task/{threading.main_thread().native_id}/schedstat", "rb") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def process_times(pid: int) -> tuple[float, float]:
    """(CPU seconds, seconds ready to run but not running) of another process's main thread so far
    (Linux schedstat, nanoseconds; 0s elsewhere or when it is gone)."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as handle:
            running, waiting = handle.read().split()[:2]
        return int(running) / 1e9, int(waiting) / 1e9
    except (OSError, ValueError):
        return 0.0, 0.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
