"""Clients survive fork and rebuild from a pickle, so worker pools (multiprocessing, Ray, Dask, Spark)
run them unchanged."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_support import body

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
import evstream.sagemaker as sm
from evstream.emulator import Behavior, EmulatorThread, generate_text

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork")

_inherited: Any = None  # set in the parent before forking


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorThread]:
    with EmulatorThread(credentials={"AKIDFORK": "fork-secret"}) as endpoint:
        yield endpoint


def make_client(url: str) -> Any:
    return sm.client(
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDFORK",
        aws_secret_access_key="fork-secret",
    )


def stream_with(runtime: Any, seed: int) -> bytes:
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName="workers", Body=body(format="raw", tokens=50, seed=seed, straddle=True)
    )
    return b"".join(response["Body"].payloads())


def with_inherited(seed: int) -> bytes:
    return stream_with(_inherited, seed)


def with_pickled(args: tuple[Any, int]) -> bytes:
    runtime, seed = args
    return stream_with(runtime, seed)


def with_inherited_async(seed: int) -> bytes:
    async def main() -> bytes:
        response = await _inherited.invoke_endpoint_with_response_stream(
            EndpointName="workers", Body=body(format="raw", tokens=50, seed=seed, straddle=True)
        )
        return b"".join([part async for part in response["Body"].payloads()])

    return asyncio.run(main())


def expected(seed: int) -> bytes:
    return generate_text(Behavior(tokens=50, seed=seed)).encode()


def test_forked_workers_use_an_inherited_client(server: EmulatorThread) -> None:
    global _inherited
    _inherited = make_client(server.url)
    assert stream_with(_inherited, 0) == expected(0)  # the parent now holds a pooled connection
    before = server.emulator.accepted_connections
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(with_inherited, range(1, 9), chunksize=1)
    assert results == [expected(seed) for seed in range(1, 9)]
    # Each worker opened its own connection; none borrowed the parent's socket.
    assert server.emulator.accepted_connections - before >= 2
    after_children = server.emulator.accepted_connections
    assert stream_with(_inherited, 99) == expected(99)
    assert server.emulator.accepted_connections == after_children  # the parent's connection still works
    assert all(r.signature_valid for r in list(server.emulator.requests)[-9:])


def test_spawned_workers_rebuild_from_a_pickle(server: EmulatorThread) -> None:
    runtime = make_client(server.url)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(with_pickled, [(runtime, seed) for seed in range(4)], chunksize=1)
    assert results == [expected(seed) for seed in range(4)]


def test_async_client_after_fork(server: EmulatorThread) -> None:
    global _inherited
    _inherited = sm.async_client(
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id="AKIDFORK",
        aws_secret_access_key="fork-secret",
    )
    asyncio.run(_parent_async_use(_inherited))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(with_inherited_async, range(3), chunksize=1)
    assert results == [expected(seed) for seed in range(3)]


async def _parent_async_use(runtime: Any) -> None:
    response = await runtime.invoke_endpoint_with_response_stream(EndpointName="workers", Body=body(tokens=2))
    assert len([event async for event in response["Body"]]) == 2
    await runtime.close()
