"""Bidirectional streaming over HTTP/2: evstream (sync, asyncio) against the official SageMaker Runtime
HTTP2 SDK (aws-sdk-sagemaker-runtime-http2, Python 3.12+), all against ``python -m evstream serve
--http2-port`` in a child process (TLS, every request and event signature verified), so the timers see the
client alone.

* round trip: send one ``PayloadPart``, wait for its echo, repeat; wall-clock time per message
  (``rtt_us`` in ``extra_info``, the median round).
* streaming: send N messages while their echoes stream back; the client's CPU (``time.process_time``,
  user + system of this process, awscrt's threads included) per event, an event being one message sent
  or one received (``cpu_us_per_event``).

Each case first checks that every echo came back, in order, before it is timed.

    python -m pytest benchmarks/bench_http2.py --benchmark-group-by=group
    # the official SDK's rows need Python 3.12+ with evstream[test] installed

EVSTREAM_BENCH_MODE=tiny runs 50 round trips / 200 streamed messages instead of 500 / 5,000.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("awscrt", reason="the client needs the client extra")
pytest.importorskip("h2", reason="the endpoint's HTTP/2 needs the http2 extra")
pytest.importorskip("trustme", reason="the endpoint's TLS needs the http2 extra")
from evstream.emulator import EmulatorProcess

TINY = os.environ.get("EVSTREAM_BENCH_MODE", "full") == "tiny"
ROUND_TRIPS = 50 if TINY else 500
STREAMED = 200 if TINY else 5_000
ROUNDS = 3 if TINY else 5
ACCESS_KEY, SECRET_KEY = "AKIDBENCH", "bench-secret"
KEYS = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, "region_name": "us-west-2"}
PEERS = ["evstream sync", "evstream asyncio", "official SDK"]

Run = Callable[[int, bool], list[bytes]]  # (messages, ping-pong?) -> the echoes received


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str]]:
    env = {"EVSTREAM_ENDPOINT_SECRET_ACCESS_KEY": SECRET_KEY}
    with EmulatorProcess("--http2-port", "0", "--access-key", ACCESS_KEY, env=env) as endpoint:
        yield endpoint.listening.http2_url, endpoint.listening.ca_file


def messages(count: int) -> list[bytes]:
    return [b"message %06d" % i for i in range(count)]


def evstream_sync(url: str, ca_file: str) -> Run:
    from evstream.sagemaker import http2_client

    runtime = http2_client(endpoint_url=url, verify=ca_file, **KEYS)

    def run(count: int, ping_pong: bool) -> list[bytes]:
        with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="bench") as stream:
            if ping_pong:
                out = []
                for message in messages(count):
                    stream.send(message, data_type="UTF8", completion_state="COMPLETE")
                    out.append(next(stream)["PayloadPart"]["Bytes"])
                stream.close_input()
                return out

            def send() -> None:
                for message in messages(count):
                    stream.send(message, data_type="UTF8", completion_state="COMPLETE")
                stream.close_input()

            sender = threading.Thread(target=send)
            sender.start()
            out = [event["PayloadPart"]["Bytes"] for event in stream]
            sender.join()
            return out

    return run


def evstream_asyncio(url: str, ca_file: str) -> Run:
    from evstream.sagemaker import async_http2_client

    loop = asyncio.new_event_loop()
    runtime = async_http2_client(endpoint_url=url, verify=ca_file, **KEYS)

    async def exchange(count: int, ping_pong: bool) -> list[bytes]:
        stream = await runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="bench")
        async with stream:
            if ping_pong:
                out = []
                for message in messages(count):
                    await stream.send(message, data_type="UTF8", completion_state="COMPLETE")
                    out.append((await stream.__anext__())["PayloadPart"]["Bytes"])
                await stream.close_input()
                return out

            async def send() -> None:
                for message in messages(count):
                    await stream.send(message, data_type="UTF8", completion_state="COMPLETE")
                await stream.close_input()

            sending = asyncio.ensure_future(send())
            out = [event["PayloadPart"]["Bytes"] async for event in stream]
            await sending
            return out

    return lambda count, ping_pong: loop.run_until_complete(exchange(count, ping_pong))


def official_sdk(url: str, ca_file: str) -> Run:
    if sys.version_info < (3, 12):
        pytest.skip("the official SDK needs Python 3.12+")
    client_module = pytest.importorskip("aws_sdk_sagemaker_runtime_http2.client")
    config_module = pytest.importorskip("aws_sdk_sagemaker_runtime_http2.config")
    models = pytest.importorskip("aws_sdk_sagemaker_runtime_http2.models")
    crt = pytest.importorskip("smithy_http.aio.crt")
    from awscrt import io as crt_io

    class TrustingTransport(crt.AWSCRTHTTPClient):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            options = crt_io.TlsContextOptions()
            options.override_default_trust_store_from_path(None, ca_file)
            self._tls_ctx = crt_io.ClientTlsContext(options)

    loop = asyncio.new_event_loop()

    async def make() -> Any:
        config = await config_module.AsyncSageMakerRuntimeHTTP2Config.resolve(
            endpoint_uri=url,
            region="us-west-2",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            transport=TrustingTransport(),
        )
        return client_module.AsyncSageMakerRuntimeHTTP2Client(config=config)

    client = loop.run_until_complete(make())

    def part(message: bytes) -> Any:
        value = models.RequestPayloadPart(bytes_=message, data_type="UTF8", completion_state="COMPLETE")
        return models.RequestStreamEventPayloadPart(value=value)

    async def exchange(count: int, ping_pong: bool) -> list[bytes]:
        stream = await client.invoke_endpoint_with_bidirectional_stream(
            models.InvokeEndpointWithBidirectionalStreamInput(endpoint_name="bench")
        )
        if ping_pong:
            _, receiver = await stream.await_output()
            events = receiver.__aiter__()
            out = []
            for message in messages(count):
                await stream.input_stream.send(part(message))
                out.append((await events.__anext__()).value.bytes_)
            await stream.input_stream.close()
            return out

        async def send() -> None:
            for message in messages(count):
                await stream.input_stream.send(part(message))
            await stream.input_stream.close()

        sending = asyncio.ensure_future(send())
        _, receiver = await stream.await_output()
        out = [event.value.bytes_ async for event in receiver]
        await sending
        return out

    return lambda count, ping_pong: loop.run_until_complete(exchange(count, ping_pong))


MAKERS = {"evstream sync": evstream_sync, "evstream asyncio": evstream_asyncio, "official SDK": official_sdk}


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {}


def peer_run(runs: dict[str, Run], served: tuple[str, str], peer: str) -> Run:
    if peer not in runs:
        runs[peer] = MAKERS[peer](*served)
    return runs[peer]


@pytest.mark.parametrize("peer", PEERS)
def test_round_trip(benchmark: Any, runs: dict[str, Run], served: tuple[str, str], peer: str) -> None:
    run = peer_run(runs, served, peer)
    benchmark.group = f"HTTP/2 round trip: {ROUND_TRIPS} messages, one at a time"
    correct = run(ROUND_TRIPS, True) == messages(ROUND_TRIPS)
    benchmark.extra_info.update(implementation=peer, correct=correct, messages=ROUND_TRIPS)
    assert correct, f"{peer}: echoes missing or out of order; not timed"
    rounds: list[float] = []

    def timed() -> list[bytes]:
        start = time.perf_counter()
        out = run(ROUND_TRIPS, True)
        rounds.append((time.perf_counter() - start) / ROUND_TRIPS)
        return out

    benchmark.pedantic(timed, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info["rtt_us"] = round(statistics.median(rounds) * 1e6, 1)


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("peer", PEERS)
def test_streaming_cpu(benchmark: Any, runs: dict[str, Run], served: tuple[str, str], peer: str) -> None:
    run = peer_run(runs, served, peer)
    benchmark.group = f"HTTP/2 client CPU: {STREAMED} messages each way, interleaved"
    correct = run(STREAMED, False) == messages(STREAMED)
    benchmark.extra_info.update(
        implementation=peer, correct=correct, events=2 * STREAMED, timer="process_time"
    )
    assert correct, f"{peer}: echoes missing or out of order; not timed"
    rounds: list[float] = []

    def timed() -> list[bytes]:
        start = time.process_time()
        out = run(STREAMED, False)
        rounds.append(time.process_time() - start)
        return out

    benchmark.pedantic(timed, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info["cpu_us_per_event"] = round(min(rounds) / (2 * STREAMED) * 1e6, 3)
