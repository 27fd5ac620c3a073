"""The asyncio client against the local endpoint."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest
from client_faults import FAULTS
from emulator_support import body, endpoint, wait_for

import evstream

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
import evstream.sagemaker as sm
from evstream.emulator import Behavior, EmulatorThread, generate_records, generate_text

__all__ = ["endpoint"]

T = TypeVar("T")
KEYS = {"aws_access_key_id": "AKIDASYNC", "aws_secret_access_key": "async-secret"}


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def make_client(url: str, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"region_name": "us-east-1", "endpoint_url": url, "backoff_base": 0.01, **KEYS}
    options.update(kwargs)
    return sm.async_client(**options)


async def read_all(response: dict[str, Any]) -> list[bytes]:
    return [event["PayloadPart"]["Bytes"] async for event in response["Body"]]


@pytest.fixture()
def own_endpoint() -> Iterator[EmulatorThread]:
    with EmulatorThread() as server:
        yield server


def test_stream_and_shape(endpoint: EmulatorThread) -> None:
    async def main() -> None:
        async with make_client(endpoint.url) as runtime:
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(format="tgi", tokens=40, straddle=True), CustomAttributes="c=1"
            )
            assert response["CustomAttributes"] == "c=1"
            assert response["InvokedProductionVariant"] == "AllTraffic"
            parts = await read_all(response)
            assert b"".join(parts) == b"".join(generate_records(Behavior(tokens=40)))
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(format="openai", tokens=40, straddle=True)
            )
            assert "".join([t async for t in response["Body"].tokens()]) == generate_text(Behavior(tokens=40))

    run(main())


def test_same_events_as_aiobotocore(endpoint: EmulatorThread) -> None:
    aiobotocore_session = pytest.importorskip("aiobotocore.session")

    async def main() -> None:
        request = {"EndpointName": "same", "Body": body(format="lmi", tokens=25, straddle=True)}
        session = aiobotocore_session.get_session()
        async with session.create_client(
            "sagemaker-runtime", region_name="us-east-1", endpoint_url=endpoint.url, **KEYS
        ) as reference:
            theirs = await reference.invoke_endpoint_with_response_stream(**request)
            their_events = [event async for event in theirs["Body"]]
        async with make_client(endpoint.url) as runtime:
            ours = await runtime.invoke_endpoint_with_response_stream(**request)
            assert [event async for event in ours["Body"]] == their_events
            assert ours["ContentType"] == theirs["ContentType"]

    run(main())


def test_typed_errors(endpoint: EmulatorThread) -> None:
    async def main() -> None:
        async with make_client(endpoint.url, max_attempts=1) as runtime:
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a",
                Body=body(
                    format="raw", tokens=5, fault="model-stream-error", after=2, error_code="StreamBroken"
                ),
            )
            with pytest.raises(sm.ModelStreamError) as info:
                await read_all(response)
            assert info.value.error_code == "StreamBroken"
            with pytest.raises(sm.ModelError) as model_error:
                await runtime.invoke_endpoint_with_response_stream(
                    EndpointName="a", Body=body(fault="model-error")
                )
            assert model_error.value.original_status_code == 500
            with pytest.raises(sm.ServiceUnavailable):
                await runtime.invoke_endpoint_with_response_stream(
                    EndpointName="a", Body=body(fault="service-unavailable")
                )
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(format="raw", tokens=5, fault="truncate", after=2)
            )
            with pytest.raises(sm.IncompleteStream) as cut:
                await read_all(response)
            assert isinstance(cut.value, evstream.TruncatedStream)
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(format="raw", tokens=5, fault="disconnect", after=2)
            )
            with pytest.raises(sm.IncompleteStream):
                await read_all(response)
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(format="raw", tokens=5, fault="error-event", after=0)
            )
            with pytest.raises(sm.UnmodelledStreamError):
                await read_all(response)

    run(main())


def test_retry_before_first_event(endpoint: EmulatorThread) -> None:
    async def main() -> None:
        async with make_client(endpoint.url) as runtime:
            before = len(endpoint.emulator.requests)
            request_body = body(
                format="raw", tokens=4, fault="internal-stream-failure", after=0, fault_times=2, seed=5
            )
            response = await runtime.invoke_endpoint_with_response_stream(EndpointName="a", Body=request_body)
            assert b"".join(await read_all(response)) == generate_text(Behavior(tokens=4, seed=5)).encode()
            assert len(endpoint.emulator.requests) == before + 3
            request_body = body(format="raw", tokens=4, fault="throttling", fault_times=1, seed=6)
            response = await runtime.invoke_endpoint_with_response_stream(EndpointName="a", Body=request_body)
            assert response["ResponseMetadata"]["RetryAttempts"] == 1

    run(main())


def test_timeouts(endpoint: EmulatorThread) -> None:
    async def main() -> None:
        async with make_client(
            endpoint.url, first_byte_timeout=0.3, event_timeout=0.3, max_attempts=1
        ) as runtime:
            start = time.monotonic()
            with pytest.raises(sm.FirstByteTimeout):
                await runtime.invoke_endpoint_with_response_stream(
                    EndpointName="a", Body=body(fault="stall-headers", stall=2)
                )
            assert time.monotonic() - start < 1.5
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(format="raw", tokens=5, fault="stall", after=2, stall=2)
            )
            parts: list[bytes] = []
            with pytest.raises(sm.EventTimeout):
                async for event in response["Body"]:
                    parts.append(event)
            assert len(parts) == 2

    run(main())


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        async with make_client(f"http://127.0.0.1:{port}", max_attempts=2) as runtime:
            with pytest.raises(sm.ConnectionFailed):
                await runtime.invoke_endpoint_with_response_stream(EndpointName="a", Body=b"{}")

    run(main())


def test_cancellation_releases_the_connection(own_endpoint: EmulatorThread) -> None:
    async def main() -> None:
        async with make_client(own_endpoint.url) as runtime:
            received: list[bytes] = []

            async def consume() -> None:
                response = await runtime.invoke_endpoint_with_response_stream(
                    EndpointName="a", Body=body(format="raw", tokens=1000, rate=100)
                )
                async for event in response["Body"].payloads():
                    received.append(event)

            task = asyncio.ensure_future(consume())
            while len(received) < 2:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.get_running_loop().run_in_executor(
                None, wait_for, lambda: own_endpoint.emulator.open_connections == 0
            )

    run(main())


def test_break_and_close_release_the_connection(own_endpoint: EmulatorThread) -> None:
    async def main() -> None:
        async with make_client(own_endpoint.url) as runtime:
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(format="raw", tokens=1000, rate=100)
            )
            async with response["Body"] as stream:
                async for _ in stream:
                    break
            assert await asyncio.get_running_loop().run_in_executor(
                None, wait_for, lambda: own_endpoint.emulator.open_connections == 0
            )
            # The client is still usable afterwards.
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(tokens=2)
            )
            assert len(await read_all(response)) == 2

    run(main())


@pytest.mark.parametrize(("streams", "tokens"), [(64, 20), (256, 100)])
def test_concurrent_streams_lose_nothing(own_endpoint: EmulatorThread, streams: int, tokens: int) -> None:
    async def one(runtime: Any, seed: int) -> bytes:
        request_body = body(format="raw", tokens=tokens, seed=seed, straddle=True)
        response = await runtime.invoke_endpoint_with_response_stream(EndpointName="many", Body=request_body)
        return b"".join(await read_all(response))

    async def main() -> list[bytes]:
        async with make_client(own_endpoint.url, max_pool_connections=streams) as runtime:
            return await asyncio.wait_for(
                asyncio.gather(*(one(runtime, seed) for seed in range(streams))), 60
            )

    results = run(main())
    assert results == [generate_text(Behavior(tokens=tokens, seed=seed)).encode() for seed in range(streams)]
    assert wait_for(lambda: own_endpoint.emulator.open_connections == 0)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("streams", [300, pytest.param(10_000, marks=pytest.mark.slow)])
def test_no_leak_over_sequential_streams(own_endpoint: EmulatorThread, streams: int) -> None:
    async def main() -> tuple[int, int]:
        async with make_client(own_endpoint.url) as runtime:
            await read_all(
                await runtime.invoke_endpoint_with_response_stream(EndpointName="a", Body=body(tokens=1))
            )
            fds = len(os.listdir("/proc/self/fd"))
            for n in range(streams):
                response = await runtime.invoke_endpoint_with_response_stream(
                    EndpointName="a", Body=body(tokens=2)
                )
                if n % 3 == 0:
                    response["Body"].close()
                else:
                    assert len(await read_all(response)) == 2
            return fds, len(os.listdir("/proc/self/fd"))

    before, after = run(main())
    assert after <= before + 2
    assert wait_for(lambda: own_endpoint.emulator.open_connections == 0)


@pytest.mark.parametrize(("fault", "error"), FAULTS)
def test_faults_give_typed_errors_and_release_the_connection(
    own_endpoint: EmulatorThread, fault: str, error: type[Exception]
) -> None:
    async def main() -> None:
        async with make_client(own_endpoint.url, event_timeout=0.3, max_attempts=1) as runtime:
            start = time.monotonic()
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(format="raw", tokens=8, fault=fault, after=3, stall=1)
            )
            with pytest.raises(error):
                await read_all(response)
            assert time.monotonic() - start < 1.5
            # Closed, or back in the pool when the whole body had arrived before the error.
            assert await asyncio.get_running_loop().run_in_executor(
                None, wait_for, lambda: own_endpoint.emulator.open_connections <= 1
            )
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="a", Body=body(tokens=2)
            )
            assert len(await read_all(response)) == 2
            # A stalled server notices the closed connection only when it writes again.
            assert await asyncio.get_running_loop().run_in_executor(
                None, wait_for, lambda: own_endpoint.emulator.open_connections == 1
            )

    run(main())
