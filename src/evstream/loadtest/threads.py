"""The reference client: boto3, one thread per stream, as LLMPerf and fmbench drive it.

It runs the same steps and the same measurement as the asyncio runner (:mod:`.runner`), so the two
can be compared in one run: what boto3's threads add to the latencies they report is visible in the
``delay`` column (receive time minus the endpoint's send stamp).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from typing import Any

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
from .runner import Step
from .workload import Workload

__all__ = ["Boto3Target", "run_step_threads"]


class Boto3Target:
    """A boto3 ``sagemaker-runtime`` or ``bedrock-runtime`` client made from boto3.client's arguments."""

    def __init__(
        self,
        name: str,
        workload: Workload,
        params: dict[str, Any] | None = None,
        *,
        endpoint_pid: int = 0,
        **kwargs: Any,
    ) -> None:
        self.name = name
        self.workload = workload
        self.params = params or {}
        self.endpoint_pid = endpoint_pid  # the local endpoint's process (see runner.Target)
        self.kwargs = kwargs

    def client(self, pool: int) -> Any:
        import boto3
        from botocore.config import Config

        service = "bedrock-runtime" if self.workload.bedrock else "sagemaker-runtime"
        config = Config(max_pool_connections=pool, retries={"max_attempts": 1}, read_timeout=120)
        return boto3.client(service, config=config, **self.kwargs)

    def payloads(self, client: Any, body: bytes) -> Any:
        if self.workload.bedrock:
            response = client.invoke_model_with_response_stream(modelId=self.name, body=body, **self.params)
            return (event["chunk"]["bytes"] for event in response["body"] if "chunk" in event)
        response = client.invoke_endpoint_with_response_stream(
            EndpointName=self.name, Body=body, **self.params
        )
        return (event["PayloadPart"]["Bytes"] for event in response["Body"] if "PayloadPart" in event)


def run_step_threads(target: Boto3Target, step: Step) -> StepResult:
    """Run one step with a thread per stream (closed loop) or a thread per request (open loop)."""
    if step.start_at:
        time.sleep(max(0.0, step.start_at - time.time()))
    client = target.client(max(10, step.concurrency or step.max_in_flight))
    result = StepResult("boto3", concurrency=step.concurrency, rate=step.rate)
    workload = target.workload
    lock = threading.Lock()  # StepResult is shared: each stream adds to it under the lock
    rng = random.Random(step.seed)
    start = clock_ns()
    window_start = start + round(step.warmup * 1e9)
    window_end = window_start + round(step.duration * 1e9) if not step.requests else 1 << 62
    window = Window(window_start, window_end, step.requests)
    stop = threading.Event()
    state = {"open": 0}  # measured requests open
    open_requests = OpenRequests(window)
    load = WorkerLoad(worker_name(), endpoint_pid=target.endpoint_pid)

    def request() -> None:
        with lock:
            open_requests.change(1)
            measured = window.admits(clock_ns())
            body = workload.body(rng)
            if measured:
                state["open"] += 1
                if step.requests and window.measured_started == 1:
                    window.start = clock_ns()
                    probe.recording = True
        local = StepResult("boto3")
        timer = StreamTimer(local, window, workload.counter(), measured)
        try:
            for payload in target.payloads(client, body):
                timer.payload(clock_ns(), payload)
            timer.finish()
        except Exception as exc:
            timer.fail(exc)
        with lock:
            open_requests.change(-1)
            result.merge(local)
            if measured:
                state["open"] -= 1

    def user(delay: float) -> None:
        time.sleep(delay)  # users start spread over the first half of the warm-up
        while not stop.is_set():
            request()

    threads: list[threading.Thread] = []

    def spawn(target_function: Any) -> None:
        thread = threading.Thread(target=target_function, daemon=True)
        thread.start()
        threads.append(thread)

    # The client's own load is read over the whole step: a thread-per-stream client's main thread
    # can be held off by the others for longer than the window.
    load.prepare()
    load.begin()
    with LagProbe(result.lag) as probe:
        if step.concurrency:
            for n in range(step.concurrency):
                spawn(functools.partial(user, step.warmup / 2 * n / step.concurrency))
        deadline = time.monotonic() + step.warmup + step.drain_timeout
        deadline += step.duration if not step.requests else step.requests * 60.0
        began = False
        next_arrival = time.monotonic()
        while time.monotonic() < deadline:
            now = clock_ns()
            if not began and now >= window.start and not step.requests:
                began = True
                probe.recording = True
            if began and now >= window.end:
                probe.recording = False
            with lock:
                if window.closed and not state["open"]:
                    break
            if step.rate:
                if time.monotonic() >= next_arrival and not window.closed:
                    next_arrival += rng.expovariate(step.rate)
                    alive = sum(t.is_alive() for t in threads)
                    if alive >= step.max_in_flight:
                        with lock:
                            if window.admits(clock_ns()):
                                result.errors["MaxInFlight"] = result.errors.get("MaxInFlight", 0) + 1
                    else:
                        spawn(request)
                        threads[:] = [t for t in threads if t.is_alive()]
                time.sleep(min(0.001, max(0.0, next_arrival - time.monotonic())))
            else:
                time.sleep(0.01)
        else:
            result.errors["DrainTimeout"] = state["open"]
        end = clock_ns()
        probe.recording = False
        stop.set()
    # Threads still streaming (cool-down fillers) stop after their stream; the next step must not
    # share the machine with them.
    join_by = time.monotonic() + step.drain_timeout
    for thread in threads:
        thread.join(max(0.0, join_by - time.monotonic()))
    load.end()
    with lock:
        if step.requests:
            window.end = end
        result.window_ns = max(0, min(window.end, end) - window.start)
        result.in_flight = open_requests.mean(result.window_ns)
        load.window_ns = result.window_ns
        load.events = result.events
        load.streams = step.concurrency
        load.lag_p99_ns = result.lag.percentile(99) if result.lag.count else 0.0
        load.lag_max_ns = float(result.lag.maximum)
        result.workers = [load]
        return result
