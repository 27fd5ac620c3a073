"""End to end: client CPU per token event, evstream vs boto3 / aiobotocore, endpoint in another process.

The timer is ``time.process_time`` (user + system CPU of this process), so the numbers are the client's
cost alone: the endpoint runs in a child process (``python -m evstream serve``). Each case checks that
the stream arrived complete and identical before it is timed, and records ``implementation``,
``correct`` and ``cpu_us_per_event`` (best round) in ``extra_info``.

    python -m pytest benchmarks/bench_client.py --benchmark-group-by=group

EVSTREAM_BENCH_MODE=tiny (the smoke run) streams 200 events instead of 20,000.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from evstream import IMPLEMENTATION

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
from evstream import sagemaker as sm
from evstream.emulator import Behavior, EmulatorProcess, generate_text

EVENTS = {"tiny": 200, "quick": 5_000}.get(os.environ.get("EVSTREAM_BENCH_MODE", "full"), 20_000)
ROUNDS = 3 if EVENTS < 20_000 else 7
CONCURRENT = 256
# Tokens per concurrent stream: a short generation. Each request costs ~250 us of client CPU (signing,
# aiohttp's request machinery), which a 78-token stream could not amortise.
CONCURRENT_TOKENS = max(2, EVENTS // 40)
KEYS = {"aws_access_key_id": "AKIDBENCH", "aws_secret_access_key": "bench-secret"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with EmulatorProcess() as server:
        yield server.url


class Loop:
    """One event loop for every round and case, so a round times streaming, not loop start-up; the
    async clients made on it are closed with it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closers: list[Callable[[], Awaitable[Any]]] = []

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        for closer in reversed(self.closers):
            self.run(closer())
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    runner = Loop()
    yield runner
    runner.close()


def request_body(events: int, chunk_events: int = 1, seed: int = 0) -> bytes:
    emulator = {"format": "raw", "tokens": events, "chunk_events": chunk_events, "seed": seed}
    return json.dumps({"emulator": emulator}).encode()


def expected(events: int, seed: int = 0) -> bytes:
    return generate_text(Behavior(tokens=events, seed=seed)).encode()


def time_case(
    benchmark: Any, group: str, implementation: str, run: Callable[[], bytes], events: int, want: bytes
) -> float:
    """Check, then time ``run``; returns the best CPU seconds per event."""
    benchmark.group = group
    correct = run() == want
    benchmark.extra_info.update(
        implementation=implementation,
        correct=correct,
        events=events,
        codec=IMPLEMENTATION,
        timer="process_time",
    )
    assert correct, f"{implementation}: the stream was incomplete or different; not timed"
    rounds: list[float] = []

    def timed() -> bytes:
        start = time.process_time()
        data = run()
        rounds.append(time.process_time() - start)
        return data

    benchmark.pedantic(timed, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    best = min(rounds) / events
    benchmark.extra_info["cpu_us_per_event"] = round(best * 1e6, 3)
    return best


def sync_runner(endpoint: str, implementation: str, body: bytes) -> Callable[[], bytes]:
    if implementation == "boto3":
        boto3 = pytest.importorskip("boto3")
        client = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=endpoint, **KEYS)

        def run_boto3() -> bytes:
            response = client.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body)
            return b"".join([event["PayloadPart"]["Bytes"] for event in response["Body"]])

        return run_boto3
    ours = sm.client(region_name="us-east-1", endpoint_url=endpoint, **KEYS)
    if implementation == "evstream":

        def run_boto_shape() -> bytes:
            response = ours.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body)
            return b"".join([event["PayloadPart"]["Bytes"] for event in response["Body"]])

        return run_boto_shape

    def run_payloads() -> bytes:
        response = ours.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body)
        return b"".join(list(response["Body"].payloads()))

    return run_payloads


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("chunk_events", [1, 64])
@pytest.mark.parametrize("implementation", ["evstream", "evstream-payloads", "boto3"])
def test_sync_stream(benchmark: Any, endpoint: str, implementation: str, chunk_events: int) -> None:
    run = sync_runner(endpoint, implementation, request_body(EVENTS, chunk_events))
    group = f"client CPU: {EVENTS} events, {chunk_events} per HTTP chunk"
    time_case(benchmark, group, implementation, run, EVENTS, expected(EVENTS))


def async_runner(
    endpoint: str, implementation: str, loop: Loop, streams: int, events: int
) -> Callable[[], bytes]:
    bodies = [request_body(events, seed=seed) for seed in range(streams)]

    async def collect(events_of: AsyncIterator[dict[str, Any]]) -> bytes:
        return b"".join([event["PayloadPart"]["Bytes"] async for event in events_of])

    if implementation == "aiobotocore":
        session_module = pytest.importorskip("aiobotocore.session")
        from botocore.config import Config

        context = session_module.get_session().create_client(
            "sagemaker-runtime",
            region_name="us-east-1",
            endpoint_url=endpoint,
            config=Config(max_pool_connections=streams),
            **KEYS,
        )
        client = loop.run(context.__aenter__())
        loop.closers.append(lambda: context.__aexit__(None, None, None))
    else:
        client = sm.async_client(
            region_name="us-east-1", endpoint_url=endpoint, max_pool_connections=streams, **KEYS
        )
        loop.closers.append(client.close)

    async def one(body: bytes) -> bytes:
        response = await client.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body)
        return await collect(response["Body"])

    async def all_streams() -> bytes:
        return b"".join(await asyncio.gather(*(one(body) for body in bodies)))

    return lambda: loop.run(all_streams())  # type: ignore[no-any-return]


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("implementation", ["evstream", "aiobotocore"])
def test_async_single_stream(benchmark: Any, endpoint: str, loop: Loop, implementation: str) -> None:
    run = async_runner(endpoint, implementation, loop, 1, EVENTS)
    group = f"asyncio client CPU: {EVENTS} events, 1 stream"
    time_case(benchmark, group, implementation, run, EVENTS, expected(EVENTS))


@pytest.mark.benchmark(timer=time.process_time)
def test_async_concurrent_streams(benchmark: Any, endpoint: str, loop: Loop) -> None:
    """256 streams at once in one process: CPU per event next to the single-stream figure of this run."""
    total = CONCURRENT_TOKENS * CONCURRENT
    want = b"".join(expected(CONCURRENT_TOKENS, seed) for seed in range(CONCURRENT))
    single = async_runner(endpoint, "evstream", loop, 1, EVENTS)
    single()
    baseline = min(_cpu(single) for _ in range(ROUNDS)) / EVENTS
    run = async_runner(endpoint, "evstream", loop, CONCURRENT, CONCURRENT_TOKENS)
    best = time_case(benchmark, f"asyncio: {CONCURRENT} concurrent streams", "evstream", run, total, want)
    benchmark.extra_info.update(
        single_stream_cpu_us_per_event=round(baseline * 1e6, 3), ratio_to_single=round(best / baseline, 2)
    )


def _cpu(run: Callable[[], bytes]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start
