"""The load test on a Ray cluster: a local one, started and stopped here, gives the figures of a run in
one process (merged histograms, not averaged percentiles). One short run: Ray takes ~10 s to start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evstream import sagemaker
from evstream.emulator import EmulatorProcess
from evstream.emulator.latency import Distribution
from evstream.loadtest import RayPool, SinglePool, Step, Target, Workload, run_split

pytest.importorskip("ray", reason="Ray is not installed (pip install 'evstream[ray]')")
pytest.importorskip("aiohttp", reason="the load tester drives the asyncio client (aiohttp)")
pytest.importorskip("awscrt", reason="the client signs with awscrt")

TTFT_MS, ITL_MS, TOKENS = 40, 4, 10


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with EmulatorProcess("--ttft", f"{TTFT_MS}ms", "--itl", f"{ITL_MS}ms", "--stamp") as endpoint:
        client = sagemaker.async_client(
            endpoint_url=endpoint.url,
            region_name="us-east-1",
            aws_access_key_id="AKIDTEST",
            aws_secret_access_key="secret",
            max_pool_connections=16,
            max_attempts=1,
        )
        workload = Workload("tgi", output_tokens=Distribution("constant", TOKENS), emulator={})
        yield Target(client, "model", workload)


def test_ray_workers_merge_to_the_single_process_figures(target: Target) -> None:
    step = Step(concurrency=6, duration=1.5, warmup=0.5)
    with RayPool(target, workers=2, address="local", loop="asyncio") as pool:
        on_ray = run_split(pool, step)
    with SinglePool(target, loop="asyncio") as pool:
        alone = run_split(pool, step)

    assert on_ray.errors == {} and alone.errors == {}
    assert on_ray.concurrency == alone.concurrency == 6
    assert len(on_ray.workers) == 2 and len({w.name for w in on_ray.workers}) == 2
    assert sum(w.streams for w in on_ray.workers) == 6
    # Merged exactly: the histograms hold every measured request and token of both workers.
    assert on_ray.ttft.count == on_ray.e2e.count == on_ray.requests
    assert on_ray.itl.count == on_ray.requests * (TOKENS - 1)
    assert on_ray.output_tokens == on_ray.requests * TOKENS
    # The same load gives the same figures, within noise.
    assert on_ray.requests == pytest.approx(alone.requests, rel=0.35)
    for result in (on_ray, alone):
        assert TTFT_MS <= result.ttft.percentile(50) / 1e6 < TTFT_MS + 25
        assert ITL_MS - 1 <= result.itl.percentile(50) / 1e6 < ITL_MS + 5
    assert abs(on_ray.ttft.percentile(50) - alone.ttft.percentile(50)) < 20e6
