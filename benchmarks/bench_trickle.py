"""The trickled regime: client CPU per event when events arrive a few milliseconds apart, each its own TCP
segment (how a model streams tokens), next to the floor of this machine measured in the same run.

Built on :mod:`evstream.bench.trickle`: asyncio, 256 and 1,000 concurrent streams x 100 events 10 ms apart
on the default loop and on uvloop (floor: a bare ``asyncio.Protocol`` per connection feeding a queue a
consumer task drains; peer: aiobotocore); sync, one stream x 400 events 2.5 ms apart (floor: a blocking
``recv`` loop; peer: boto3). The endpoint runs in a child process; the timer is ``time.process_time``.
Each case records ``cpu_us_per_event`` and, once its floor ran (the first case of each group),
``over_floor``.

    python -m pytest benchmarks/bench_trickle.py --benchmark-group-by=group

EVSTREAM_BENCH_MODE=tiny (the smoke run) streams 8 x 20 events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from conftest import time_cpu_per_event

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
from evstream.bench.e2e import Clients, LocalEndpoint, PeerUnavailable, Workload
from evstream.bench.trickle import (
    ASYNC_WORKLOADS,
    SYNC_WORKLOAD,
    TINY_ASYNC_WORKLOAD,
    TINY_SYNC_WORKLOAD,
    floor_asyncio,
    floor_ran,
    floor_sync,
)

TINY = os.environ.get("EVSTREAM_BENCH_MODE") == "tiny"
ROUNDS = 2 if TINY else 5
ASYNC = [TINY_ASYNC_WORKLOAD] if TINY else list(ASYNC_WORKLOADS)
SYNC = TINY_SYNC_WORKLOAD if TINY else SYNC_WORKLOAD
FLOORS: dict[str, float] = {}  # group -> the floor's CPU seconds per event, this run


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint() as made:
        yield made


def time_case(benchmark: Any, group: str, peer: str, run: Callable[[], bytes], workload: Workload) -> None:
    correct = floor_ran(run) if peer == "floor" else run() == workload.expected()
    best = time_cpu_per_event(benchmark, group, peer, run, workload.total_events, correct, ROUNDS)
    if peer == "floor":
        FLOORS[group] = best
    elif group in FLOORS:
        benchmark.extra_info["over_floor"] = round(best / FLOORS[group], 3)


# First, while the process is as small as a sync program's (see evstream.bench.trickle.trickle_plan).
@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("peer", ["floor", "evstream client", "boto3"])
def test_trickled_sync(benchmark: Any, endpoint: LocalEndpoint, peer: str) -> None:
    with Clients(endpoint) as clients:
        try:
            run = floor_sync(clients, SYNC) if peer == "floor" else clients.runner(peer, SYNC)
        except PeerUnavailable as exc:
            pytest.skip(f"{peer}: {exc}")
        time_case(benchmark, f"trickled sync: {SYNC.label}", peer, run, SYNC)


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("peer", ["floor", "evstream asyncio", "aiobotocore"])
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("workload", ASYNC, ids=lambda w: w.key)
def test_trickled_asyncio(
    benchmark: Any, endpoint: LocalEndpoint, workload: Workload, loop: str, peer: str
) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with Clients(endpoint, loop=loop) as clients:
        try:
            run = floor_asyncio(clients, workload) if peer == "floor" else clients.runner(peer, workload)
        except PeerUnavailable as exc:
            pytest.skip(f"{peer}: {exc}")
        time_case(benchmark, f"trickled {loop}: {workload.label}", peer, run, workload)
