"""One client process running one step: closed-loop concurrency or open-loop Poisson arrivals, on asyncio.

A step has three phases. Warm-up: the users start, spread over its first half, and the load runs
unmeasured (connections open, caches fill).
The measured window: requests that start in it are measured to their end; tokens and completions
inside it give throughput. Cool-down: the load keeps running, unmeasured, until the last measured
request has ended (bounded by ``drain_timeout``), so measured requests never see the load fall
away; then everything left is cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any

from ..emulator.loops import run as run_loop
from .bidi import BidiClient
from .measure import (
    LagProbe,
    OpenRequests,
    StepResult,
    StreamTimer,
    Window,
    WorkerLoad,
    clock_ns,
    worker_name,
)
from .workload import Workload

__all__ = ["Step", "Target", "run_step", "run_step_sync"]

Progress = Callable[[str, StepResult, int], None]


@dataclasses.dataclass
class Step:
    """What one step runs. Exactly one of ``concurrency`` and ``rate`` is set; the window is
    ``duration`` seconds or the first ``requests`` requests after warm-up."""

    concurrency: int = 0
    rate: float = 0.0
    duration: float = 10.0
    requests: int = 0
    warmup: float = 2.0
    drain_timeout: float = 60.0
    max_in_flight: int = 10_000  # open loop: arrivals beyond this many streams are dropped (and counted)
    seed: int = 0
    start_at: float = 0.0  # wall-clock time to begin (workers of one step start together); 0: now

    def __post_init__(self) -> None:
        if (self.concurrency > 0) == (self.rate > 0):
            raise ValueError("a step has either a concurrency or a request rate")
        if self.duration <= 0 and self.requests <= 0:
            raise ValueError("a step needs a duration > 0 or a request count > 0")
        if self.warmup < 0 or self.drain_timeout <= 0 or self.max_in_flight < 1:
            raise ValueError("warm-up must be >= 0, drain timeout > 0, max in flight >= 1")

    def split(self, workers: int, index: int) -> Step:
        """This worker's share: concurrency, rate and request count divided as evenly as possible."""
        if self.concurrency and self.concurrency < workers:
            raise ValueError(f"{workers} workers need a concurrency of at least {workers}")
        if self.requests and self.requests < workers:
            raise ValueError(f"{workers} workers need at least {workers} requests per step")
        concurrency = self.concurrency // workers + (index < self.concurrency % workers)
        requests = self.requests // workers + (index < self.requests % workers) if self.requests else 0
        return dataclasses.replace(
            self,
            concurrency=concurrency,
            rate=self.rate / workers,
            requests=requests,
            seed=self.seed * 1000 + index,
        )


@dataclasses.dataclass
class Target:
    """Where the requests go: an evstream asyncio client (SageMaker or Bedrock), pickled to workers, or a
    :class:`.bidi.BidiClient` for bidirectional streams."""

    client: Any
    name: str  # EndpointName or modelId
    workload: Workload
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # ContentType, Accept, ...
    endpoint_pid: int = 0  # the local endpoint's process: its CPU is measured beside the client's

    async def stream(self, body: bytes) -> Any:
        """The response's event stream (anything with ``payloads()``)."""
        if isinstance(self.client, BidiClient):
            return await self.client.stream(self.name, body, self.params)
        if self.workload.bedrock:
            response = await self.client.invoke_model_with_response_stream(
                modelId=self.name, body=body, **self.params
            )
            return response["body"]
        response = await self.client.invoke_endpoint_with_response_stream(
            EndpointName=self.name, Body=body, **self.params
        )
        return response["Body"]


async def _one(target: Target, body: bytes, timer: StreamTimer) -> None:
    try:
        stream = await target.stream(body)
        payload_at = timer.payload
        async for payload in stream.payloads():
            payload_at(clock_ns(), payload)
        timer.finish()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        timer.fail(exc)


async def run_step(target: Target, step: Step, progress: Progress | None = None) -> StepResult:
    """Run one step in this process's event loop."""
    if step.start_at:
        await asyncio.sleep(max(0.0, step.start_at - time.time()))
    loop = asyncio.get_running_loop()
    result = StepResult("evstream", concurrency=step.concurrency, rate=step.rate)
    rng = random.Random(step.seed)
    workload = target.workload
    start = clock_ns()
    window_start = start + round(step.warmup * 1e9)
    window_end = window_start + round(step.duration * 1e9) if not step.requests else 1 << 62
    window = Window(window_start, window_end, step.requests)
    measured_open = 0
    open_requests = OpenRequests(window)
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    load = WorkerLoad(worker_name(), endpoint_pid=target.endpoint_pid)

    async def request() -> None:
        nonlocal measured_open
        open_requests.change(1)
        body = workload.body(rng)
        measured = window.admits(clock_ns())
        timer = StreamTimer(result, window, workload.counter(), measured)
        if measured:
            measured_open += 1
            if step.requests and window.measured_started == 1:
                window.start = clock_ns()
                probe.recording = True
                load.begin()
        try:
            await _one(target, body, timer)
        finally:
            open_requests.change(-1)
            if measured:
                measured_open -= 1
                if window.closed and not measured_open:
                    done.set()

    async def user(delay: float) -> None:
        await asyncio.sleep(delay)  # users start spread over the first half of the warm-up
        while not done.is_set():
            await request()

    async def arrivals() -> None:
        while not done.is_set():
            await asyncio.sleep(rng.expovariate(step.rate))
            if window.closed:
                if not measured_open:
                    done.set()
                continue  # cool-down keeps the load until the measured requests end
            if len(tasks) >= step.max_in_flight:
                if window.admits(clock_ns()):
                    result.errors["MaxInFlight"] = result.errors.get("MaxInFlight", 0) + 1
                continue
            spawn(request())

    def spawn(coro: Any) -> None:
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def watch() -> None:
        # Closes the window on time (duration mode) even when no request ends then.
        while not done.is_set():
            now = clock_ns()
            if window.closed and not measured_open:
                done.set()
                return
            if progress is not None:
                phase = "warm-up" if now < window.start else ("measure" if now < window.end else "cool-down")
                progress(phase, result, len(tasks))
            await asyncio.sleep(0.25)

    with LagProbe(result.lag, loop) as probe:
        if step.concurrency:
            for n in range(step.concurrency):
                spawn(user(step.warmup / 2 * n / step.concurrency))
        else:
            spawn(arrivals())
        watcher = loop.create_task(watch())
        loop.call_later(step.warmup * 0.75, load.prepare)
        if not step.requests:  # the measured window as the probe and the CPU clocks see it
            loop.call_later(step.warmup, _measure, probe, load, True)
            loop.call_later(step.warmup + step.duration, _measure, probe, load, False)
        try:
            deadline = step.warmup + (step.duration if not step.requests else 0) + step.drain_timeout
            if step.requests:
                deadline += step.requests * 60.0  # a count of requests: bounded by a minute per request
            await asyncio.wait_for(done.wait(), deadline)
        except asyncio.TimeoutError:
            result.errors["DrainTimeout"] = measured_open
        finally:
            now = clock_ns()
            if step.requests:
                window.end = now
            _measure(probe, load, False)
            done.set()
            watcher.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, watcher, return_exceptions=True)
    result.window_ns = max(0, min(window.end, now) - window.start)
    result.in_flight = open_requests.mean(result.window_ns)
    load.window_ns = result.window_ns
    load.events = result.window_events
    load.streams = step.concurrency
    load.lag_p99_ns = result.lag.percentile(99) if result.lag.count else 0.0
    load.lag_max_ns = float(result.lag.maximum)
    result.workers.append(load)
    return result


def _measure(probe: LagProbe, load: WorkerLoad, start: bool) -> None:
    if start:
        probe.recording = True
        load.begin()
    elif probe.recording:
        probe.recording = False
        load.end()


def run_step_sync(target: Target, step: Step, loop: str = "auto") -> StepResult:
    """:func:`run_step` in a fresh event loop (see :func:`evstream.emulator.loops.resolve_loop`); the
    client's connections are closed at the end."""

    async def main() -> StepResult:
        try:
            return await run_step(target, step)
        finally:
            await target.client.close()

    return run_loop(main(), loop)
