"""End to end: client CPU per token event, evstream vs boto3 / aiobotocore, endpoint in another process.

Built on :mod:`evstream.bench.e2e` (the harness of ``python -m evstream bench`` and the demo): the timer
is ``time.process_time`` (user + system CPU of this process), so the numbers are the client's cost alone:
the endpoint runs in a child process (``python -m evstream serve``). Each case checks that the streams
arrived complete and identical before it is timed, and records ``implementation``, ``correct`` and
``cpu_us_per_event`` (best round) in ``extra_info``.

    python -m pytest benchmarks/bench_client.py --benchmark-group-by=group

EVSTREAM_BENCH_MODE=tiny (the smoke run) streams 200 events instead of 20,000.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from evstream import IMPLEMENTATION

from conftest import time_cpu_per_event

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
from evstream.bench.e2e import Clients, LocalEndpoint, PeerUnavailable, Runner, Workload, measure_cpu

EVENTS = {"tiny": 200, "quick": 5_000}.get(os.environ.get("EVSTREAM_BENCH_MODE", "full"), 20_000)
ROUNDS = 3 if EVENTS < 20_000 else 7
CONCURRENT = 256
# Tokens per concurrent stream: a short generation. Each request costs ~250 us of client CPU (signing,
# aiohttp's request machinery), which a 78-token stream could not amortise.
CONCURRENT_TOKENS = max(2, EVENTS // 40)


@pytest.fixture(scope="module")
def clients() -> Iterator[Clients]:
    with LocalEndpoint() as endpoint, Clients(endpoint) as made:
        yield made


def runner(clients: Clients, peer: str, workload: Workload) -> Runner:
    try:
        return clients.runner(peer, workload)
    except PeerUnavailable as exc:
        pytest.skip(f"{peer}: {exc}")


def time_case(benchmark: Any, group: str, peer: str, run: Runner, workload: Workload) -> float:
    """Check, then time ``run``; returns the best CPU seconds per event."""
    correct = run() == workload.expected()
    return time_cpu_per_event(
        benchmark, group, peer, run, workload.total_events, correct, ROUNDS, codec=IMPLEMENTATION
    )


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("chunk_events", [1, 64])
@pytest.mark.parametrize("peer", ["evstream client", "evstream payloads()", "boto3"])
def test_sync_stream(benchmark: Any, clients: Clients, peer: str, chunk_events: int) -> None:
    workload = Workload(EVENTS, chunk_events=chunk_events)
    group = f"client CPU: {EVENTS} events, {chunk_events} per HTTP chunk"
    time_case(benchmark, group, peer, runner(clients, peer, workload), workload)


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("peer", ["evstream asyncio", "aiobotocore"])
def test_async_single_stream(benchmark: Any, clients: Clients, peer: str) -> None:
    workload = Workload(EVENTS)
    group = f"asyncio client CPU: {EVENTS} events, 1 stream"
    time_case(benchmark, group, peer, runner(clients, peer, workload), workload)


@pytest.mark.benchmark(timer=time.process_time)
def test_async_concurrent_streams(benchmark: Any, clients: Clients) -> None:
    """256 streams at once in one process: CPU per event next to the single-stream figure of this run."""
    single = Workload(EVENTS)
    baseline = measure_cpu(runner(clients, "evstream asyncio", single), EVENTS, ROUNDS).cpu_per_event
    workload = Workload(CONCURRENT_TOKENS, streams=CONCURRENT)
    run = runner(clients, "evstream asyncio", workload)
    best = time_case(
        benchmark, f"asyncio: {CONCURRENT} concurrent streams", "evstream asyncio", run, workload
    )
    benchmark.extra_info.update(
        single_stream_cpu_us_per_event=round(baseline * 1e6, 3), ratio_to_single=round(best / baseline, 2)
    )
