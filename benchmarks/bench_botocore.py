"""evstream.botocore vs botocore: the EventStreamBuffer API, and boto3 end to end.

1. ``EventStreamBuffer``: TGI-sized PayloadPart events (~230-byte frames) fed in 64 KiB chunks and in
   one-frame chunks, through botocore's buffer and through the drop-in (C and pure-Python codecs). Each
   drop-in case records ``ratio_vs_botocore`` (botocore's best time / the drop-in's best, measured in the
   same run) in ``extra_info``; the target is >= 10 at both chunk sizes.
2. boto3 ``invoke_endpoint_with_response_stream`` against the emulator in a child process, with and without
   ``install()`` (the harness of :mod:`evstream.bench.e2e`): client CPU per event (``time.process_time``),
   and the share of it that is still botocore's (event parsing, HTTP) once the frames decode through
   evstream.

    python -m pytest benchmarks/bench_botocore.py --benchmark-group-by=group

EVSTREAM_BENCH_MODE=tiny streams 200 events instead of 20,000.
"""

from __future__ import annotations

import functools
import importlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import evstream
from evstream.bench.e2e import Clients, LocalEndpoint, Workload
from evstream.capture import rechunk
from evstream.emulator import Behavior, generate_records, split_parts

eventstream = pytest.importorskip("botocore.eventstream")
import evstream.botocore as eb  # noqa: E402

MODE = os.environ.get("EVSTREAM_BENCH_MODE", "full")
EVENTS = {"tiny": 200, "quick": 5_000}.get(MODE, 20_000)
ROUNDS = 3 if EVENTS < 20_000 else 7
EVENT_HEADERS = {
    ":event-type": "PayloadPart",
    ":content-type": "application/octet-stream",
    ":message-type": "event",
}

PAYLOADS = list(generate_records(Behavior(format="tgi", tokens=EVENTS)))
FRAMES = [evstream.encode(EVENT_HEADERS, p) for p in PAYLOADS]


def chunked(frames: Sequence[bytes], size: int) -> list[bytes]:
    return rechunk(b"".join(frames), size)


CHUNKINGS = {"64KiB": chunked(FRAMES, 64 * 1024), "one-frame": FRAMES}


def drain(buffer_type: Callable[[], Any], chunks: Sequence[bytes]) -> int:
    """botocore's EventStream loop: add a chunk, take every message it completed; touch what it reads."""
    buffer = buffer_type()
    count = 0
    for chunk in chunks:
        buffer.add_data(chunk)
        for message in buffer:
            headers, payload = message.headers, message.payload  # noqa: F841 - what a consumer reads
            count += 1
    return count


def payloads(buffer_type: Callable[[], Any], chunks: Sequence[bytes]) -> list[bytes]:
    buffer = buffer_type()
    out = []
    for chunk in chunks:
        buffer.add_data(chunk)
        out += [(m.headers[":event-type"], m.payload) for m in buffer]
    return [p for kind, p in out if kind == "PayloadPart"]


def best_time(run: Callable[[], Any], rounds: int, timer: Callable[[], float] = time.perf_counter) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = timer()
        run()
        best = min(best, timer() - start)
    return best


_botocore_best: dict[str, float] = {}


def botocore_best(chunking: str) -> float:
    """botocore's best time on this workload, measured once per run (the ratio's denominator)."""
    if chunking not in _botocore_best:
        chunks = CHUNKINGS[chunking]
        run = functools.partial(drain, eventstream.EventStreamBuffer, chunks)
        _botocore_best[chunking] = best_time(run, ROUNDS, time.process_time)
    return _botocore_best[chunking]


def buffer_types() -> dict[str, Callable[[], Any]]:
    types: dict[str, Callable[[], Any]] = {"botocore": eventstream.EventStreamBuffer}
    modules = ["python"] if evstream.NO_EXTENSIONS else ["c", "python"]
    for name in modules:
        codec = importlib.import_module("evstream._codec" if name == "c" else "evstream._codec_py")
        types[f"evstream drop-in ({name})"] = functools.partial(eb.EventStreamBuffer, codec=codec)
    return types


BUFFERS = buffer_types()


# CPU time: on a shared machine it varies far less than wall time, and botocore's best (the ratio's
# denominator) is taken with the same timer.
@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("implementation", list(BUFFERS))
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_event_stream_buffer(benchmark: Any, chunking: str, implementation: str) -> None:
    chunks, buffer_type = CHUNKINGS[chunking], BUFFERS[implementation]
    benchmark.group = f"EventStreamBuffer: {EVENTS} TGI token events, {chunking} chunks"
    correct = payloads(buffer_type, chunks) == PAYLOADS
    benchmark.extra_info.update(implementation=implementation, correct=correct, messages=EVENTS)
    assert correct, f"{implementation} decoded something else: not timed"
    benchmark.pedantic(drain, args=(buffer_type, chunks), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable (the smoke run): nothing was timed
        return
    best = benchmark.stats.stats.min
    benchmark.extra_info["messages_per_s"] = round(EVENTS / best)
    benchmark.extra_info["ns_per_message"] = round(best / EVENTS * 1e9)
    if implementation != "botocore":
        benchmark.extra_info["ratio_vs_botocore"] = round(botocore_best(chunking) / best, 1)


# ------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def clients() -> Iterator[Clients]:
    pytest.importorskip("boto3")
    with LocalEndpoint() as endpoint, Clients(endpoint) as made:
        yield made


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("chunk_events", [1, 64])
@pytest.mark.parametrize("dropin", [False, True], ids=["boto3", "boto3+install()"])
def test_boto3_stream_cpu(benchmark: Any, clients: Clients, dropin: bool, chunk_events: int) -> None:
    workload = Workload(EVENTS, chunk_events=chunk_events)
    peer = "boto3 + evstream drop-in" if dropin else "boto3"
    run = clients.runner(peer, workload)
    benchmark.group = f"boto3 client CPU: {EVENTS} events, {chunk_events} per HTTP chunk"
    eb.uninstall()
    correct = run() == workload.expected()
    benchmark.extra_info.update(implementation=peer, correct=correct)
    assert correct, "the stream was incomplete or different: not timed"
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:
        return
    per_event = benchmark.stats.stats.min / EVENTS
    benchmark.extra_info["cpu_us_per_event"] = round(per_event * 1e6, 3)
    # What decoding alone costs per event on this machine (the same buffers, one frame per chunk or
    # 64 frames per chunk), to say how much of the client's CPU is decoding and how much is the rest.
    # CPU time of the same raw-token frames, so it compares with the process_time above.
    frames = [evstream.encode(EVENT_HEADERS, p) for p in split_parts(Behavior(format="raw", tokens=2000))]
    chunks = chunked(frames, len(b"".join(frames[:chunk_events]))) if chunk_events > 1 else frames
    buffer_type = eb.EventStreamBuffer if dropin else eventstream.EventStreamBuffer
    decode = best_time(lambda: drain(buffer_type, chunks), 5, time.process_time) / len(frames)
    benchmark.extra_info["decode_us_per_event"] = round(decode * 1e6, 3)
    benchmark.extra_info["share_not_decoding"] = round(1 - decode / per_event, 3)
