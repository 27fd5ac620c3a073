# ruff: noqa: B023  (each trial's closures run and finish inside that trial)
"""Threads: crc32 and decoders under concurrency, in both implementations.

* crc32 (every kernel) is right when called from many threads at once on large inputs, and releases
  the GIL above 256 KiB (so does Decoder.feed around its CRC of a large chunk);
* separate Decoders in parallel threads each decode their own stream exactly;
* one Decoder shared between threads either works or raises a clear RuntimeError; it never returns a
  wrong, duplicated or lost message.

The tests shrink the switch interval so threads interleave as much as possible. On a free-threaded
build they run unchanged (nothing here depends on the GIL being there).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import evstream

from conftest import PURE_PYTHON_RUN
from frames import header, raw_frame, string_header

KiB = 1024
MiB = 1024 * KiB
# Where the evstream under test was imported from (the source tree or site-packages), for children.
SRC = str(Path(evstream.__file__).resolve().parent.parent)
TESTS = str(Path(__file__).resolve().parent)
BUSY = r"another thread"


@contextmanager
def fast_switching(interval: float = 1e-6) -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def run_threads(targets: list[Any], timeout: float = 60) -> None:
    errors: list[BaseException] = []

    def wrap(target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # reported in the main thread
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "thread hung"
    if errors:
        raise errors[0]


# ------------------------------------------------------------------------------------------ crc32


def crc_functions(codec: ModuleType) -> list[Any]:
    if not hasattr(codec, "_crc32_available_tiers"):
        return [codec.crc32]
    tiers = codec._crc32_available_tiers()
    return [codec.crc32] + [lambda d, v=0, t=t: codec._crc32_with(t, d, v) for t in tiers]


def test_crc32_from_many_threads(codec: ModuleType) -> None:
    rng = random.Random(5)
    sizes = [256 * KiB - 1, 256 * KiB, 256 * KiB + 1, 1 * MiB + 3, 3 * MiB + 5]
    blobs = [rng.randbytes(n) for n in sizes]
    misaligned = memoryview(b"\x01" + blobs[-1])[1:]
    cases = [(b, v) for b in blobs for v in (0, 0xFFFFFFFF, 12345)] + [(misaligned, 7)]
    expected = {i: zlib.crc32(b, v) for i, (b, v) in enumerate(cases)}
    functions = crc_functions(codec)
    results: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        order = list(range(len(cases)))
        random.Random(seed).shuffle(order)
        for fn_index, fn in enumerate(functions):
            for i in order:
                data, value = cases[i]
                got = fn(data, value)
                with lock:
                    results.append((fn_index, i, got))

    with fast_switching():
        run_threads([lambda s=s: worker(s) for s in range(8)])
    assert len(results) == 8 * len(functions) * len(cases)
    wrong = [(f, i, got) for f, i, got in results if got != expected[i]]
    assert not wrong


GIL_PROBE = r"""
import sys, threading, time, json
sys.path[:0] = [{tests!r}]
import importlib
codec = importlib.import_module({module!r})
from frames import raw_frame
big = bytes(range(256)) * ({size} // 256)
frame = raw_frame(b"", big)
def call_crc():
    return codec.crc32(big)
def call_feed():
    decoder = codec.Decoder(max_payload_length=len(big))
    assert decoder.feed(frame[:12]) == []
    ready.set()
    return decoder.feed(frame[12:])  # one chunk: the CRC of {size} bytes
def call_feed_whole():
    decoder = codec.Decoder(max_payload_length=len(big))
    ready.set()
    return decoder.feed(frame)
calls = {{"crc32": call_crc, "feed": call_feed, "feed_whole": call_feed_whole}}
out = {{}}
for name, call in calls.items():
    ready = threading.Event()
    times = {{}}
    def worker():
        if name == "crc32":
            ready.set()
        call()
        times["end"] = time.perf_counter()
    t = threading.Thread(target=worker)
    t.start()
    ready.wait()
    time.sleep(0.02)            # the worker is inside the CRC now
    woke = time.perf_counter()  # needs the GIL: only possible before the CRC ends if it was released
    t.join()
    out[name] = {{"early_by": times["end"] - woke}}
print(json.dumps(out))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="timing probe written for POSIX")
@pytest.mark.parametrize("module", ["evstream._codec", "evstream._codec_py"])
def test_large_crc_releases_the_gil(module: str) -> None:
    import json

    if module == "evstream._codec" and PURE_PYTHON_RUN:
        pytest.skip("EVSTREAM_NO_EXTENSIONS=1")
    env = dict(os.environ, EVSTREAM_CRC32="software")  # slowest kernel: a CRC long enough to observe
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    # 96 MiB: about 0.2 s with the table kernel, 0.1 s with zlib
    code = GIL_PROBE.format(tests=TESTS, module=module, size=96 * MiB)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    # The main thread ran while the CRC was still going: it ended after the main thread woke up.
    for name, probe in got.items():
        assert probe["early_by"] > 0, (name, got)


# ------------------------------------------------------------------------------ separate decoders


def stream_for(tag: int, count: int, rng: random.Random) -> tuple[bytes, list[tuple[dict[str, Any], bytes]]]:
    messages = []
    for i in range(count):
        size = rng.choice([0, 5, 300, 5000, 70_000, 300_000])
        headers = {":event-type": "PayloadPart", "thread": f"{tag}", "seq": f"{i}"}
        messages.append((headers, rng.randbytes(size)))
    frames = b"".join(raw_frame(b"".join(string_header(k, v) for k, v in h.items()), p) for h, p in messages)
    return frames, messages


def chunked(data: bytes, rng: random.Random) -> Iterator[memoryview]:
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 7, 100, 4096, 65536, 300_000, 1_000_000])
        yield view[pos : pos + size]
        pos += size


def test_separate_decoders_in_parallel(codec: ModuleType) -> None:
    streams = [stream_for(t, 40, random.Random(t)) for t in range(6)]
    barrier = threading.Barrier(len(streams))

    def worker(tag: int) -> None:
        data, expected = streams[tag]
        rng = random.Random(100 + tag)
        decoder = codec.Decoder()
        got = []
        barrier.wait()
        for _ in range(3):
            for chunk in chunked(data, rng):
                got += decoder.feed(chunk)
            decoder.close()
        assert [(m.headers, m.payload) for m in got] == expected * 3, f"thread {tag}"

    with fast_switching():
        run_threads([lambda t=t: worker(t) for t in range(len(streams))])


def test_separate_decoders_failing_in_parallel(codec: ModuleType) -> None:
    # Errors in one thread's decoder never leak into another's.
    good, expected = stream_for(0, 20, random.Random(1))
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x40

    def worker(tag: int) -> None:
        rng = random.Random(tag)
        for _ in range(5):
            decoder = codec.Decoder()
            data = bytes(bad) if tag % 2 else good
            got = []
            try:
                for chunk in chunked(data, rng):
                    got += decoder.feed(chunk)
                decoder.close()
            except evstream.EventStreamError:
                assert tag % 2, "a good stream failed"
                assert [(m.headers, m.payload) for m in got] == expected[: len(got)]
            else:
                assert tag % 2 == 0, "a corrupted stream was accepted"
                assert [(m.headers, m.payload) for m in got] == expected

    with fast_switching():
        run_threads([lambda t=t: worker(t) for t in range(4)])


# --------------------------------------------------------------------------------- shared decoder


def feed_retrying(decoder: Any, chunk: Any, busy: list[str]) -> list[Any]:
    """feed(); a RuntimeError means another thread was feeding: nothing was consumed, try again."""
    while True:
        try:
            return decoder.feed(chunk)  # type: ignore[no-any-return]
        except RuntimeError as exc:
            busy.append(str(exc))


def test_shared_decoder_whole_frames_from_many_threads(codec: ModuleType) -> None:
    # Every feed() carries whole frames, so any order of the calls is a valid stream: each call must
    # return exactly its own frames (or raise RuntimeError and consume nothing).
    rng = random.Random(3)
    per_thread = []
    for tag in range(4):
        _, messages = stream_for(tag, 30, rng)
        per_thread.append(messages)
    decoder = codec.Decoder()
    busy: list[str] = []

    def worker(tag: int) -> None:
        for headers, payload in per_thread[tag]:
            frame = raw_frame(b"".join(string_header(k, v) for k, v in headers.items()), payload)
            got = feed_retrying(decoder, frame, busy)
            assert [(m.headers, m.payload) for m in got] == [(headers, payload)], f"thread {tag}"

    with fast_switching():
        run_threads([lambda t=t: worker(t) for t in range(4)])
    assert all(re.search(BUSY, m) for m in busy), busy
    decoder.close()  # a clean boundary: nothing half-fed
    assert len(decoder.feed(raw_frame(b"", b"after"))) == 1


def test_shared_decoder_empty_feeds_never_take_messages(codec: ModuleType) -> None:
    # Thread A feeds a stream in large chunks (frames straddle them); thread B keeps calling
    # feed(b""). Whenever B's call lands, it is a no-op: it must return [] or raise RuntimeError, and
    # A must get every message exactly once, in order.
    frames = [(f"{i}", bytes([i]) * 300_000) for i in range(40)]
    stream = b"".join(raw_frame(string_header("n", n), p) for n, p in frames)
    for _trial in range(3):  # the race is likely, not certain, in one trial
        decoder = codec.Decoder()
        done = threading.Event()
        got_a: list[Any] = []
        got_b: list[Any] = []
        busy: list[str] = []

        def a() -> None:
            try:
                view = memoryview(stream)
                for pos in range(0, len(stream), 300_007):  # > 256 KiB: the C CRC runs without the GIL
                    got_a.extend(feed_retrying(decoder, view[pos : pos + 300_007], busy))
            finally:
                done.set()

        def b() -> None:
            while not done.is_set():
                got_b.extend(feed_retrying(decoder, b"", busy))

        with fast_switching():
            run_threads([a, b])
        assert not got_b, f"feed(b'') returned {len(got_b)} message(s) fed by another thread"
        assert [(m.headers["n"], m.payload) for m in got_a] == frames
        assert all(re.search(BUSY, m) for m in busy), busy
        decoder.close()


def test_shared_decoder_close_from_another_thread(codec: ModuleType) -> None:
    # close() racing a feed(): whatever happens is a typed error or RuntimeError, the decoder ends up
    # failed or clean, and no message is ever wrong.
    frames = [(f"{i}", bytes([i]) * 2_000_000) for i in range(4)]
    stream = b"".join(raw_frame(string_header("n", n), p) for n, p in frames)
    for _ in range(5):
        decoder = codec.Decoder(max_payload_length=4 * MiB)
        started = threading.Event()
        got: list[Any] = []
        outcome: dict[str, Any] = {}

        def a() -> None:
            view = memoryview(stream)
            try:
                for pos in range(0, len(stream), 700_001):
                    started.set()
                    got.extend(decoder.feed(view[pos : pos + 700_001]))
                outcome["a"] = None
            except (evstream.EventStreamError, RuntimeError) as exc:
                outcome["a"] = exc
            started.set()

        def b() -> None:
            started.wait()
            try:
                decoder.close()
                outcome["b"] = None
            except (evstream.EventStreamError, RuntimeError) as exc:
                outcome["b"] = exc

        with fast_switching():
            run_threads([a, b])
        assert [(m.headers["n"], m.payload) for m in got] == frames[: len(got)]
        if isinstance(outcome["b"], evstream.TruncatedStream):
            # the decoder is failed for good
            with pytest.raises(evstream.EventStreamError):
                decoder.feed(b"")
            assert isinstance(outcome["a"], (evstream.EventStreamError, type(None)))


SHARED_PROBE = r"""
import sys, threading, json
sys.path[:0] = [{tests!r}]
import importlib
codec = importlib.import_module({module!r})
from frames import header, raw_frame, string_header
sys.setswitchinterval(1e-6)
frames = [(str(i), bytes([i]) * 1_000_000) for i in range(30)]
stream = b"".join(raw_frame(string_header("n", n), p) for n, p in frames)
report = {{"busy": [], "got_b": 0, "a_ok": [], "errors": []}}
for trial in range(3):
    decoder = codec.Decoder()
    done = threading.Event()
    got_a, got_b = [], []
    def feed(chunk):
        while True:
            try:
                return decoder.feed(chunk)
            except RuntimeError as exc:
                report["busy"].append(str(exc))
    def a():
        try:
            view = memoryview(stream)
            for pos in range(0, len(stream), 1_500_007):
                got_a.extend(feed(view[pos : pos + 1_500_007]))
        except Exception as exc:
            report["errors"].append(repr(exc))
        finally:
            done.set()
    def b():
        try:
            while not done.is_set():
                got_b.extend(feed(b""))
        except Exception as exc:
            report["errors"].append(repr(exc))
    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads: t.start()
    for t in threads: t.join()
    report["got_b"] += len(got_b)
    report["a_ok"].append([(m.headers["n"], m.payload) for m in got_a] == frames)
report["busy"] = report["busy"][:3] + [len(report["busy"])]
print(json.dumps(report))
"""


@pytest.mark.parametrize("module", ["evstream._codec", "evstream._codec_py"])
def test_shared_decoder_concurrent_feed_raises_runtime_error(module: str) -> None:
    # With the slow CRC kernel a feed() of a 1.5 MiB chunk spends milliseconds outside the GIL (C) or
    # in zlib without it (twin), so the other thread's feed(b"") really runs during it: it must raise
    # RuntimeError (nothing consumed), never take a message, never derail the feeding thread.
    import json

    if module == "evstream._codec" and PURE_PYTHON_RUN:
        pytest.skip("EVSTREAM_NO_EXTENSIONS=1")
    env = dict(os.environ, EVSTREAM_CRC32="software")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    code = SHARED_PROBE.format(tests=TESTS, module=module)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == [], report
    assert report["got_b"] == 0, report
    assert report["a_ok"] == [True, True, True], report
    *messages, count = report["busy"]
    assert count > 0, f"no RuntimeError although feed() calls overlapped: {report}"
    assert all(re.search(BUSY, m) for m in messages), report


def test_close_racing_header_decoding_never_returns_a_wrong_message(
    codec: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frame assembled across chunks; its uuid headers are decoded through Python code
    # (headers.uuid_from_bytes), where the GIL can pass to another thread. Here that is made certain:
    # the function the decoder calls is replaced by one that, the first time, lets thread B call
    # close() and waits for it. The feeding thread must then get the right message or an error; never
    # a message with a lost payload (and, under ASan, the rest of the headers block must not be read
    # after close() freed it).
    from evstream.headers import uuid_from_bytes

    in_decode, closed = threading.Event(), threading.Event()

    def pausing(raw: bytes) -> Any:
        if not in_decode.is_set():
            in_decode.set()
            closed.wait(10)  # releases the GIL: B runs close() now
        return uuid_from_bytes(raw)

    monkeypatch.setattr(codec, "uuid_from_bytes", pausing)
    block = header(b"i8", 2, b"\x05") + b"".join(
        header(f"u{i}".encode(), 9, bytes(range(16))) for i in range(50)
    )
    frame = raw_frame(block, b"p" * 5000)
    decoder = codec.Decoder()
    got: list[Any] = []
    outcome: dict[str, Any] = {}

    def a() -> None:
        try:
            assert decoder.feed(frame[:-2]) == []
            got.extend(decoder.feed(frame[-2:]))  # completes the frame: headers decoded now
        except (evstream.EventStreamError, RuntimeError) as exc:
            outcome["a"] = exc

    def b() -> None:
        assert in_decode.wait(10)
        try:
            decoder.close()
            outcome["b"] = None
        except (evstream.EventStreamError, RuntimeError) as exc:
            outcome["b"] = exc
        finally:
            closed.set()

    run_threads([a, b])
    assert in_decode.is_set()
    assert "b" in outcome
    for message in got:
        assert message.payload == b"p" * 5000, f"wrong message returned after a racing close(): {message!r}"[
            :300
        ]
        assert message.headers["i8"] == 5 and len(message.headers) == 51
    assert got or "a" in outcome
