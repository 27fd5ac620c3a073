"""Benchmark harness: ``python -m evstream bench`` and the workloads shared with ``benchmarks/``.

Method, chosen so that the ratios survive a noisy machine:

* every implementation of one workload (evstream and its peers) is measured in the same process and the
  same run, in interleaved rounds (A B C, B C A, ...), so a burst of load elsewhere hits them all alike;
* a round times a calibrated number of back-to-back calls (at least ``round_s`` long) with the GC off;
  the figure is the median over rounds, with the interquartile range kept to show the noise;
* every loop is bounded in time (a per-workload budget; at least 3 rounds);
* each implementation's answer is checked on the very input it is timed on, before timing: a wrong answer
  is reported as such and never gets a ratio.

Ratios are "evstream is N x faster than this" (the peer's median time over evstream's, same workload).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import importlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import random
import statistics
import struct
import sys
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Callable, NamedTuple, TextIO

__all__ = [
    "CRC_SIZES_FULL",
    "CRC_SIZES_QUICK",
    "TARGETS",
    "Case",
    "Impl",
    "Mode",
    "Result",
    "Skip",
    "Stream",
    "add_bench_arguments",
    "crc_impls",
    "decode_impls",
    "encode_impls",
    "encode_workload",
    "machine_facts",
    "main",
    "make_stream",
    "normalize",
    "pin_allocator",
    "run_bench",
    "suite_mode",
]

KiB = 1024
MiB = 1024 * KiB

CRC_SIZES_QUICK = (64, KiB, 64 * KiB, MiB)
CRC_SIZES_FULL = (8, 64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB)

# A normalized message: headers as {name: plain value}, payload bytes. Values are reduced to what every
# implementation can express (botocore gives timestamps as int ms and UUIDs as 16 raw bytes).
NormMessage = tuple[dict[str, Any], bytes]


class Skip(NamedTuple):
    """An implementation (or case) that could not run here, and why: shown, never silently dropped."""

    group: str
    impl: str
    reason: str


@dataclass(frozen=True)
class Impl:
    """One implementation of one operation. ``primary`` marks the evstream build the ratios refer to."""

    name: str
    func: Callable[..., Any]
    primary: bool = False
    evstream: bool = False
    # Decoders: message object -> NormMessage; unused for CRC and encode.
    norm: Callable[[Any], NormMessage] | None = None
    extra_args: tuple[Any, ...] = ()


# ---------------------------------------------------------------------------------------------------------
# Workloads (built here with struct + zlib, independently of the codec under test)


def _frame(headers_block: bytes, payload: bytes) -> bytes:
    total = 16 + len(headers_block) + len(payload)
    prelude = struct.pack(">II", total, len(headers_block))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers_block
    return head + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head)))


def _header(name: str, type_byte: int, value: bytes) -> bytes:
    raw = name.encode()
    return bytes((len(raw),)) + raw + bytes((type_byte,)) + value


def _string_header(name: str, value: str) -> bytes:
    raw = value.encode()
    return _header(name, 7, struct.pack(">H", len(raw)) + raw)


TOKEN_HEADERS = {
    ":event-type": "PayloadPart",
    ":content-type": "application/octet-stream",
    ":message-type": "event",
}
_TOKEN_BLOCK = b"".join(_string_header(k, v) for k, v in TOKEN_HEADERS.items())
_WORDS = ("the", " model", " stream", "ing", " token", " of", " a", " response", ",", " and", " é", " 漢")


def token_payload(i: int) -> bytes:
    """A TGI-style server-sent event of about 150 bytes, as SageMaker streams carry one per PayloadPart."""
    word = _WORDS[i % len(_WORDS)]
    text = json.dumps(
        {
            "token": {
                "id": 1000 + i * 7 % 31000,
                "text": word,
                "logprob": -((i * 37) % 997) / 1000,
                "special": False,
            },
            "generated_text": None,
            "details": None,
        },
        separators=(",", ":"),
    )
    return ("data:" + text + "\n\n").encode()


# Every wire type once: (name, type byte, value bytes, normalized value).
_ALL_TYPES_UUID = uuid.UUID("12345678-9abc-def0-fedc-ba9876543210")
_ALL_TYPES: tuple[tuple[str, int, bytes, Any], ...] = (
    ("bool-true", 0, b"", True),
    ("bool-false", 1, b"", False),
    ("byte", 2, struct.pack(">b", -7), -7),
    ("short", 3, struct.pack(">h", 1234), 1234),
    ("integer", 4, struct.pack(">i", -123456), -123456),
    ("long", 5, struct.pack(">q", 1 << 40), 1 << 40),
    ("bytes", 6, struct.pack(">H", 6) + b"\x00\x01\xfe\xff\x10\x20", b"\x00\x01\xfe\xff\x10\x20"),
    ("string", 7, struct.pack(">H", 6) + "héllo".encode(), "héllo"),
    ("timestamp", 8, struct.pack(">q", 1_700_000_000_123), 1_700_000_000_123),
    ("uuid", 9, _ALL_TYPES_UUID.bytes, _ALL_TYPES_UUID.bytes),
)
_ALL_TYPES_BLOCK = b"".join(_header(n, t, v) for n, t, v, _ in _ALL_TYPES)
_ALL_TYPES_NORM = {n: v for n, _, _, v in _ALL_TYPES}


@dataclass
class Stream:
    """A stream as it is fed to a decoder: ``chunks``, and the messages it must yield."""

    key: str
    label: str
    chunks: list[bytes]
    expected: list[NormMessage]
    frame_size: int
    nbytes: int = 0

    def __post_init__(self) -> None:
        self.nbytes = sum(len(c) for c in self.chunks)


def _chunked(frames: list[bytes], chunk: int | None) -> list[bytes]:
    if chunk is None:
        return frames
    data = b"".join(frames)
    return [data[i : i + chunk] for i in range(0, len(data), chunk)]


def _chunk_label(chunk: int | None) -> str:
    return "1 frame per chunk" if chunk is None else f"{fmt_size(chunk)} chunks"


def _chunk_key(chunk: int | None) -> str:
    return "frame" if chunk is None else fmt_size(chunk).replace(" ", "")


def make_stream(kind: str, chunk: int | None, count: int) -> Stream:
    """``kind``: "tokens" (3 string headers, ~150-byte payload), "headers" (every header type, 64-byte
    payload) or a frame payload size in bytes as a string ("1048576"); ``count`` frames, fed in
    ``chunk``-byte chunks (None: one frame per chunk)."""
    if kind == "tokens":
        payloads = [token_payload(i) for i in range(count)]
        frames = [_frame(_TOKEN_BLOCK, p) for p in payloads]
        expected = [(dict(TOKEN_HEADERS), p) for p in payloads]
        label = "token events"
    elif kind == "headers":
        payloads = [bytes((i + j) % 256 for j in range(64)) for i in range(count)]
        frames = [_frame(_ALL_TYPES_BLOCK, p) for p in payloads]
        expected = [(dict(_ALL_TYPES_NORM), p) for p in payloads]
        label = "all header types"
    else:
        size = int(kind)
        rng = random.Random(size)
        payloads = [rng.getrandbits(size * 8).to_bytes(size, "little") if size else b"" for _ in range(count)]
        frames = [_frame(_TOKEN_BLOCK, p) for p in payloads]
        expected = [(dict(TOKEN_HEADERS), p) for p in payloads]
        label = f"{fmt_size(size)} frames"
    kind_key = kind if kind in ("tokens", "headers") else fmt_size(int(kind)).replace(" ", "")
    key = f"{kind_key}/{_chunk_key(chunk)}"
    return Stream(key, f"{label}, {_chunk_label(chunk)}", _chunked(frames, chunk), expected, len(frames[0]))


def normalize(headers: Any, payload: Any) -> NormMessage:
    """Header values reduced to bool/int/str/bytes (timestamps as int ms, UUIDs as 16 bytes)."""
    out: dict[str, Any] = {}
    for name, value in dict(headers).items():
        if isinstance(value, bool):
            out[name] = value
        elif isinstance(value, uuid.UUID):
            out[name] = value.bytes
        elif isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            out[name] = round(value.timestamp() * 1000)
        elif isinstance(value, int):
            out[name] = int(value)
        elif isinstance(value, (bytearray, memoryview)):
            out[name] = bytes(value)
        else:
            out[name] = value
    return out, bytes(payload)


def encode_workload(kind: str) -> tuple[dict[str, Any], bytes, bytes]:
    """(headers with evstream's typed values, payload, the exact frame expected) for ``kind``:
    "tokens", "headers" or a payload size in bytes."""
    from .headers import Int8, Int16, Int64, Timestamp

    if kind == "tokens":
        payload = token_payload(1)
        return dict(TOKEN_HEADERS), payload, _frame(_TOKEN_BLOCK, payload)
    if kind == "headers":
        typed = {
            "bool-true": True,
            "bool-false": False,
            "byte": Int8(-7),
            "short": Int16(1234),
            "integer": -123456,
            "long": Int64(1 << 40),
            "bytes": b"\x00\x01\xfe\xff\x10\x20",
            "string": "héllo",
            "timestamp": Timestamp(1_700_000_000_123),
            "uuid": _ALL_TYPES_UUID,
        }
        payload = bytes(range(64))
        return typed, payload, _frame(_ALL_TYPES_BLOCK, payload)
    size = int(kind)
    payload = random.Random(size).getrandbits(size * 8).to_bytes(size, "little")
    return dict(TOKEN_HEADERS), payload, _frame(_TOKEN_BLOCK, payload)


# ---------------------------------------------------------------------------------------------------------
# Implementations (peers are imported lazily; a missing one becomes a Skip with the reason)


def _try_import(name: str) -> ModuleType | str:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        return f"not installed ({exc.name or name}): {_INSTALL_HINT.get(name, 'pip install ' + name)}"
    except Exception as exc:  # a peer that is installed but broken is still only a peer
        return f"failed to import: {type(exc).__name__}: {exc}"


_INSTALL_HINT = {
    "isal.isal_zlib": "pip install isal",
    "zlib_ng.zlib_ng": "pip install zlib-ng",
    "awscrt.checksums": "pip install awscrt",
    "botocore.eventstream": "pip install botocore",
    "smithy_aws_event_stream.events": (
        "pip install smithy-aws-event-stream (Python >= 3.12)"
        if sys.version_info >= (3, 12)
        else f"smithy-aws-event-stream needs Python >= 3.12 (this is {platform.python_version()})"
    ),
    "evstream.botocore": "evstream's botocore drop-in is not in this build",
}


def _codecs() -> tuple[list[tuple[str, ModuleType, bool]], list[Skip]]:
    """(label, module, primary) for evstream's implementations: the one ``import evstream`` chose is the
    primary; the pure-Python twin is measured too when the C build is the primary."""
    import evstream

    skips: list[Skip] = []
    py = importlib.import_module("evstream._codec_py")
    if evstream.IMPLEMENTATION == "c":
        c = importlib.import_module("evstream._codec")
        return [("evstream (C)", c, True), ("evstream (pure Python)", py, False)], skips
    why = "EVSTREAM_NO_EXTENSIONS=1" if evstream.NO_EXTENSIONS else "the C extension is not built here"
    skips.append(Skip("*", "evstream (C)", why))
    return [("evstream (pure Python)", py, True)], skips


def crc_impls(tiers: bool = False) -> tuple[list[Impl], list[Skip]]:
    """CRC-32: evstream (and each CPU tier when ``tiers``), binascii, isal, zlib-ng, awscrt."""
    import binascii

    import evstream

    impls = [Impl(f"evstream ({evstream.CRC32_BACKEND})", evstream.crc32, primary=True, evstream=True)]
    skips: list[Skip] = []
    if tiers:
        # Forced tiers go through the _crc32_with test hook, whose tier lookup adds ~100-200 ns a call:
        # compare tiers with each other at 4 KiB and up, and the default kernel with the peers.
        if evstream.IMPLEMENTATION == "c":
            codec = importlib.import_module("evstream._codec")
            for tier in codec._crc32_available_tiers():
                if tier != evstream.CRC32_BACKEND:
                    impls.append(
                        Impl(
                            f"evstream tier {tier} (hook)",
                            codec._crc32_with,
                            evstream=True,
                            extra_args=(tier,),
                        )
                    )
        else:
            skips.append(Skip("crc32", "evstream tiers", "pure-Python build: one tier (zlib)"))
    impls.append(Impl("binascii", binascii.crc32))
    for label, module, attr in (
        ("isal", "isal.isal_zlib", "crc32"),
        ("zlib-ng", "zlib_ng.zlib_ng", "crc32"),
        ("awscrt", "awscrt.checksums", "crc32"),
    ):
        mod = _try_import(module)
        if isinstance(mod, str):
            skips.append(Skip("crc32", label, mod))
        else:
            impls.append(Impl(label, getattr(mod, attr)))
    return impls, skips


def _evstream_decoder(codec: ModuleType) -> Callable[[Sequence[bytes]], list[Any]]:
    decoder_cls = codec.Decoder

    def run(chunks: Sequence[bytes]) -> list[Any]:
        decoder = decoder_cls()
        out: list[Any] = []
        for chunk in chunks:
            out += decoder.feed(chunk)
        decoder.close()
        return out

    return run


def _buffer_decoder(buffer_cls: Any) -> Callable[[Sequence[bytes]], list[Any]]:
    # botocore's EventStreamBuffer API (and evstream's drop-in of it): add_data, then iterate.
    def run(chunks: Sequence[bytes]) -> list[Any]:
        buf = buffer_cls()
        out: list[Any] = []
        for chunk in chunks:
            buf.add_data(chunk)
            out.extend(buf)
        return out

    return run


def _smithy_decoder(events: ModuleType) -> Callable[[Sequence[bytes]], list[Any]]:
    import io

    event_cls = events.Event

    # smithy's decoder pulls from a reader; the chunks are joined outside the timed region (see
    # _smithy_prepare), so this measures its parsing only, which favours it.
    def run(joined: Sequence[bytes]) -> list[Any]:
        source = io.BytesIO(joined[0])
        out: list[Any] = []
        while (event := event_cls.decode(source)) is not None:
            out.append(event)
        return out

    return run


def _norm_msg(m: Any) -> NormMessage:
    return normalize(m.headers, m.payload)


def _norm_smithy(e: Any) -> NormMessage:
    return normalize(e.message.headers, e.message.payload)


def decode_impls() -> tuple[list[Impl], list[Skip]]:
    """Decoders: evstream C and pure Python, evstream's botocore drop-in, botocore, smithy."""
    codecs, skips = _codecs()
    impls = [
        Impl(name, _evstream_decoder(m), primary=p, evstream=True, norm=_norm_msg) for name, m, p in codecs
    ]
    dropin = _try_import("evstream.botocore")
    if isinstance(dropin, str):
        skips.append(Skip("decode", "evstream drop-in", dropin))
    else:
        impls.append(
            Impl("evstream drop-in", _buffer_decoder(dropin.EventStreamBuffer), evstream=True, norm=_norm_msg)
        )
    boto = _try_import("botocore.eventstream")
    if isinstance(boto, str):
        skips.append(Skip("decode", "botocore", boto))
    else:
        impls.append(Impl("botocore", _buffer_decoder(boto.EventStreamBuffer), norm=_norm_msg))
    smithy = _try_import("smithy_aws_event_stream.events")
    if isinstance(smithy, str):
        skips.append(Skip("decode", "smithy", smithy))
    else:
        impls.append(Impl("smithy", _smithy_decoder(smithy), norm=_norm_smithy))
    return impls, skips


def decode_input(impl: Impl, stream: Stream) -> Sequence[bytes]:
    """The argument ``impl.func`` is timed on: the stream's chunks (joined once for pull-style smithy)."""
    return [b"".join(stream.chunks)] if impl.name == "smithy" else stream.chunks


def _smithy_encoder(events: ModuleType) -> Callable[[dict[str, Any], bytes], bytes]:
    message_cls = events.EventMessage

    def run(headers: dict[str, Any], payload: bytes) -> bytes:
        return bytes(message_cls(headers=headers, payload=payload).encode())

    return run


def smithy_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """evstream's typed header values in smithy's vocabulary (Byte/Short/Long, datetime)."""
    events = importlib.import_module("smithy_aws_event_stream.events")
    from .headers import Int8, Int16, Int64, Timestamp

    out: dict[str, Any] = {}
    for name, value in headers.items():
        if isinstance(value, Timestamp):
            out[name] = value.to_datetime()
        elif isinstance(value, Int8):
            out[name] = events.Byte(value)
        elif isinstance(value, Int16):
            out[name] = events.Short(value)
        elif isinstance(value, Int64):
            out[name] = events.Long(value)
        else:
            out[name] = value
    return out


def encode_impls() -> tuple[list[Impl], list[Skip]]:
    """Encoders: evstream C and pure Python, smithy (botocore has no encoder)."""
    codecs, skips = _codecs()
    impls = [Impl(name, m.encode, primary=p, evstream=True) for name, m, p in codecs]
    smithy = _try_import("smithy_aws_event_stream.events")
    if isinstance(smithy, str):
        skips.append(Skip("encode", "smithy", smithy))
    else:
        impls.append(Impl("smithy", _smithy_encoder(smithy)))
    return impls, skips


def encode_args(impl: Impl, headers: dict[str, Any], payload: bytes) -> tuple[Any, ...]:
    return (smithy_headers(headers), payload) if impl.name == "smithy" else (headers, payload)


# ---------------------------------------------------------------------------------------------------------
# Measurement


@dataclass(frozen=True)
class Mode:
    name: str
    round_s: float  # minimum length of one timed round
    rounds: int  # rounds wanted per case
    budget_s: float  # time bound for one workload (all its implementations), after calibration
    crc_sizes: tuple[int, ...]
    crc_tiers: bool
    token_events: int
    decode_matrix: tuple[tuple[str, int | None, int], ...]  # (kind, chunk, frames)
    encode_kinds: tuple[str, ...]
    e2e_events: int = 0  # token events per end-to-end stream


MODES = {
    "quick": Mode(
        "quick",
        0.01,
        7,
        2.0,
        CRC_SIZES_QUICK,
        False,
        1000,
        (
            ("tokens", 64 * KiB, 1000),
            ("tokens", None, 1000),
            ("headers", 64 * KiB, 500),
            (str(MiB), 64 * KiB, 2),
            (str(16 * MiB), 64 * KiB, 1),
        ),
        ("tokens", "headers", str(MiB)),
        2000,
    ),
    "full": Mode(
        "full",
        0.05,
        15,
        8.0,
        CRC_SIZES_FULL,
        True,
        2000,
        (
            ("tokens", 64 * KiB, 2000),
            ("tokens", 4 * KiB, 2000),
            ("tokens", None, 2000),
            ("headers", 64 * KiB, 1000),
            ("headers", None, 1000),
            (str(64 * KiB), 64 * KiB, 16),
            (str(64 * KiB), 4 * KiB, 16),
            (str(64 * KiB), None, 16),
            (str(MiB), 64 * KiB, 4),
            (str(MiB), 4 * KiB, 4),
            (str(MiB), None, 4),
            (str(16 * MiB), 64 * KiB, 1),
            (str(16 * MiB), None, 1),
            # 16 MiB in 4 KiB chunks is left out: botocore's `bytes +=` buffer makes it take minutes.
        ),
        ("tokens", "headers", str(64 * KiB), str(MiB)),
        20000,
    ),
    # Smoke-test sizes: the code paths of "quick" in well under a second; the numbers mean nothing.
    "tiny": Mode(
        "tiny",
        0.0005,
        3,
        0.05,
        (64, 4 * KiB),
        True,
        20,
        (("tokens", 4 * KiB, 20), ("tokens", None, 20), ("headers", None, 5), (str(64 * KiB), 4 * KiB, 1)),
        ("tokens", "headers", str(4 * KiB)),
        50,
    ),
}


def suite_mode() -> Mode:
    """The sizes benchmarks/ runs at: EVSTREAM_BENCH_MODE=full (default), quick or tiny (the smoke test)."""
    name = os.environ.get("EVSTREAM_BENCH_MODE", "").strip().lower() or "full"
    if name not in MODES:
        raise ValueError(f"EVSTREAM_BENCH_MODE={name!r}: expected one of {', '.join(MODES)}")
    return MODES[name]


@dataclass
class Case:
    """One implementation on one workload: what is timed, and how to tell it got the right answer."""

    group: str
    key: str  # workload id, stable across runs ("crc32/1KiB", "decode/tokens/64KiB")
    label: str
    impl: Impl
    args: tuple[Any, ...]
    check: Callable[[], bool]
    nbytes: int
    nmessages: int
    size: int  # x axis of the chart: input size (CRC) or frame size (decode, encode)
    cpu: bool = False  # time with process CPU (end to end: only this process, the client, counts)


@dataclass
class Result:
    group: str
    key: str
    label: str
    impl: str
    primary: bool
    evstream: bool
    correct: bool
    size: int
    nbytes: int
    nmessages: int
    median_s: float = math.nan
    q1_s: float = math.nan
    q3_s: float = math.nan
    min_s: float = math.nan
    rounds: int = 0
    loops: int = 0
    speedup: float | None = None  # peer median / evstream median for this workload
    samples: list[float] = field(default_factory=list, repr=False)

    @property
    def bytes_per_s(self) -> float:
        return self.nbytes / self.median_s if self.median_s > 0 else math.nan

    @property
    def messages_per_s(self) -> float:
        return self.nmessages / self.median_s if self.median_s > 0 else math.nan


def _time_loop(func: Callable[..., Any], args: tuple[Any, ...], loops: int, cpu: bool = False) -> float:
    # Separate loops per arity: `func(*args)` costs ~30 ns, as much as a 64-byte CRC.
    it = itertools.repeat(None, loops)
    clock = time.process_time if cpu else time.perf_counter
    if len(args) == 1:
        (a,) = args
        t0 = clock()
        for _ in it:
            func(a)
    elif len(args) == 2:
        a, b = args
        t0 = clock()
        for _ in it:
            func(a, b)
    else:
        t0 = clock()
        for _ in it:
            func(*args)
    return clock() - t0


def _calibrate(case: Case, round_s: float) -> int:
    """Loops per round so that a round lasts at least ``round_s`` (this doubles as the warm-up)."""
    loops = 1
    while True:
        elapsed = _time_loop(case.impl.func, case.args, loops, case.cpu)
        if elapsed >= round_s:
            return loops
        if elapsed >= round_s / 10:
            return max(loops, math.ceil(loops * round_s / elapsed))
        loops = loops * 10 if elapsed < round_s / 100 else loops * 2


def measure_set(
    cases: Sequence[Case], mode: Mode, tick: Callable[[float], None] | None = None
) -> list[Result]:
    """Check, then time, the implementations of one workload in interleaved rounds."""
    results: list[Result] = []
    live: list[tuple[Case, Result]] = []
    for case in cases:
        try:
            ok = bool(case.check())
        except Exception:  # a peer that raises on valid input is wrong, not fatal to the run
            ok = False
        res = Result(
            case.group,
            case.key,
            case.label,
            case.impl.name,
            case.impl.primary,
            case.impl.evstream,
            ok,
            case.size,
            case.nbytes,
            case.nmessages,
        )
        results.append(res)
        if ok:
            live.append((case, res))
    loops = {id(c): _calibrate(c, mode.round_s) for c, _ in live}
    start = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    try:
        for rnd in range(mode.rounds):
            order = live[rnd % len(live) :] + live[: rnd % len(live)] if live else []
            for case, res in order:
                gc.collect()
                gc.disable()
                try:
                    elapsed = _time_loop(case.impl.func, case.args, loops[id(case)], case.cpu)
                finally:
                    if gc_was_enabled:
                        gc.enable()
                res.samples.append(elapsed / loops[id(case)])
            if tick:
                tick((rnd + 1) / mode.rounds)
            if rnd + 1 >= 3 and time.perf_counter() - start > mode.budget_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    for case, res in live:
        q = statistics.quantiles(res.samples, n=4) if len(res.samples) >= 2 else [res.samples[0]] * 3
        res.median_s = statistics.median(res.samples)
        res.q1_s, res.q3_s = q[0], q[2]
        res.min_s = min(res.samples)
        res.rounds = len(res.samples)
        res.loops = loops[id(case)]
    primary = next((r for r in results if r.primary and r.correct), None)
    for res in results:
        if primary is not None and res.correct and not res.primary:
            res.speedup = res.median_s / primary.median_s
    if tick:
        tick(1.0)
    return results


# ---------------------------------------------------------------------------------------------------------
# Building the case sets


def crc_sets(mode: Mode) -> tuple[list[list[Case]], list[Skip]]:
    impls, skips = crc_impls(tiers=mode.crc_tiers)
    seed = 0x12345678
    sets = []
    for size in mode.crc_sizes:
        data = random.Random(size).getrandbits(size * 8).to_bytes(size, "little")
        want, want_seeded = zlib.crc32(data), zlib.crc32(data, seed)
        cases = []
        for impl in impls:
            args = (*impl.extra_args, data)

            def check(
                impl: Impl = impl,
                args: tuple[Any, ...] = args,
                want: int = want,
                want_seeded: int = want_seeded,
            ) -> bool:
                # Same input, and once more with a running value: the API every caller relies on.
                return bool(impl.func(*args) == want and impl.func(*args, seed) == want_seeded)

            key = f"crc32/{fmt_size(size).replace(' ', '')}"
            cases.append(Case("crc32", key, fmt_size(size), impl, args, check, size, 0, size))
        sets.append(cases)
    return sets, skips


def decode_cases(stream: Stream, impls: Sequence[Impl], group: str = "decode") -> list[Case]:
    cases = []
    for impl in impls:
        arg = decode_input(impl, stream)
        norm = impl.norm
        assert norm is not None

        def check(
            impl: Impl = impl, arg: Sequence[bytes] = arg, norm: Callable[[Any], NormMessage] = norm
        ) -> bool:
            return [norm(m) for m in impl.func(arg)] == stream.expected

        cases.append(
            Case(
                group,
                f"{group}/{stream.key}",
                stream.label,
                impl,
                (arg,),
                check,
                stream.nbytes,
                len(stream.expected),
                stream.frame_size,
            )
        )
    return cases


def decode_sets(mode: Mode) -> tuple[list[list[Case]], list[Skip]]:
    impls, skips = decode_impls()
    return [decode_cases(make_stream(kind, chunk, n), impls) for kind, chunk, n in mode.decode_matrix], skips


def encode_sets(mode: Mode) -> tuple[list[list[Case]], list[Skip]]:
    impls, skips = encode_impls()
    sets = []
    for kind in mode.encode_kinds:
        headers, payload, want = encode_workload(kind)
        label = {"tokens": "token event", "headers": "all header types"}.get(
            kind, f"{fmt_size(len(payload))} payload"
        )
        key = f"encode/{kind if kind in ('tokens', 'headers') else fmt_size(int(kind)).replace(' ', '')}"
        cases = []
        for impl in impls:
            args = encode_args(impl, headers, payload)

            def check(impl: Impl = impl, args: tuple[Any, ...] = args, want: bytes = want) -> bool:
                return bytes(impl.func(*args)) == want

            cases.append(Case("encode", key, label, impl, args, check, len(want), 1, len(want)))
        sets.append(cases)
    return sets, skips


def replay_sets(
    path: str, chunk_size: int | None = None
) -> tuple[list[list[Case]], list[Skip], dict[str, Any]]:
    """The streaming-shape mode: a capture replayed at its chunk boundaries through every decoder.

    There is no independent answer for a real capture, so the reference is what botocore (or, without it,
    the pure-Python twin) decodes; every implementation must agree with it message for message."""
    from .capture import load_chunks

    capture = load_chunks(path, chunk_size)
    impls, skips = decode_impls()
    ref = next((i for i in impls if i.name == "botocore"), None) or next(
        i for i in impls if "Python" in i.name
    )
    assert ref.norm is not None
    expected = [ref.norm(m) for m in ref.func(capture.chunks)]
    stream = Stream(
        "replay",
        f"capture: {os.path.basename(path)}",
        capture.chunks,
        expected,
        max(1, capture.nbytes // max(1, len(expected))),
    )
    shape = {
        "file": path,
        "source": capture.meta.get("source", ""),
        "chunks": len(capture.chunks),
        "events": len(expected),
        "bytes": capture.nbytes,
        "events_per_chunk": len(expected) / max(1, len(capture.chunks)),
        "bytes_per_chunk": capture.nbytes / max(1, len(capture.chunks)),
        "duration_s": capture.duration,
        "reference": ref.name,
    }
    return [decode_cases(stream, impls, group="replay")], skips, shape


# ---------------------------------------------------------------------------------------------------------
# End to end: evstream's client vs boto3 (with and without the drop-in) vs aiobotocore, against the local
# endpoint (`python -m evstream serve`) in another process; the figure is this process's CPU per event.

_CLEANUPS: list[Callable[[], None]] = []
_E2E_KEYS = {"aws_access_key_id": "AKIDEVSTREAMBENCH", "aws_secret_access_key": "bench-secret"}


def e2e_sets(mode: Mode) -> tuple[list[list[Case]], list[Skip]]:
    skips: list[Skip] = []
    for module in ("evstream.sagemaker", "evstream.emulator"):
        found = _try_import(module)
        if isinstance(found, str):
            return [], [Skip("e2e", "all", f"{module}: {found}")]
    if not mode.e2e_events:
        return [], skips
    emulator = importlib.import_module("evstream.emulator")
    sagemaker = importlib.import_module("evstream.sagemaker")
    try:
        endpoint = emulator.EmulatorProcess(
            "--access-key", _E2E_KEYS["aws_access_key_id"], "--secret-key", _E2E_KEYS["aws_secret_access_key"]
        )
    except Exception as exc:
        return [], [Skip("e2e", "all", f"could not start the local endpoint: {exc}")]
    _CLEANUPS.append(endpoint.close)
    events = mode.e2e_events
    body = json.dumps({"emulator": {"format": "raw", "tokens": events, "chunk_events": 1}})
    want = emulator.generate_text(emulator.Behavior(tokens=events)).encode()
    region = {"region_name": "us-east-1", "endpoint_url": endpoint.url, **_E2E_KEYS}

    def consume(response: Any) -> bytes:
        return b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"])

    ours = sagemaker.client(**region)
    _CLEANUPS.append(ours.close)
    impls = [
        Impl(
            "evstream client",
            lambda: consume(ours.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body)),
            primary=True,
            evstream=True,
        )
    ]
    boto3 = _try_import("boto3")
    if isinstance(boto3, str):
        skips.append(Skip("e2e", "boto3", boto3))
    else:
        theirs = boto3.client("sagemaker-runtime", **region)

        def boto3_stream() -> bytes:
            return consume(theirs.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body))

        impls.append(Impl("boto3", boto3_stream))
        dropin = _try_import("evstream.botocore")
        if isinstance(dropin, str):
            skips.append(Skip("e2e", "boto3 + evstream drop-in", dropin))
        else:

            def dropin_stream() -> bytes:
                with dropin.installed():
                    return boto3_stream()

            impls.append(Impl("boto3 + evstream drop-in", dropin_stream, evstream=True))
    aio = _aiobotocore_impl(region, body)
    if isinstance(aio, Skip):
        skips.append(aio)
    else:
        impls.append(aio)
    cases = []
    for impl in impls:

        def check(impl: Impl = impl) -> bool:
            return bool(impl.func() == want)

        label = f"{events} token events, one per HTTP chunk (client CPU)"
        cases.append(
            Case("e2e", "e2e/tokens/1-per-chunk", label, impl, (), check, len(want), events, 0, cpu=True)
        )
    return [cases], skips


def _aiobotocore_impl(region: dict[str, Any], body: str) -> Impl | Skip:
    session_mod = _try_import("aiobotocore.session")
    if isinstance(session_mod, str):
        return Skip("e2e", "aiobotocore", session_mod)
    import asyncio

    loop = asyncio.new_event_loop()
    context = session_mod.get_session().create_client("sagemaker-runtime", **region)
    client = loop.run_until_complete(context.__aenter__())

    def close() -> None:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()

    _CLEANUPS.append(close)

    async def stream() -> bytes:
        response = await client.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body)
        return b"".join([event["PayloadPart"]["Bytes"] async for event in response["Body"]])

    return Impl("aiobotocore", lambda: loop.run_until_complete(stream()))


# ---------------------------------------------------------------------------------------------------------
# Targets (issue 2, and issue 3 once the drop-in exists), evaluated on the medians of this run


@dataclass(frozen=True)
class Target:
    text: str
    key: str
    impl: str  # "primary" or an implementation name on the evstream side
    peers: tuple[str, ...]  # the fastest of these is the reference
    ratio: float  # required peer_time / evstream_time


TARGETS = (
    Target(
        "crc32 1 KiB >= 0.95x the faster of isal, zlib-ng", "crc32/1KiB", "primary", ("isal", "zlib-ng"), 0.95
    ),
    Target(
        "crc32 64 KiB >= 0.95x the faster of isal, zlib-ng",
        "crc32/64KiB",
        "primary",
        ("isal", "zlib-ng"),
        0.95,
    ),
    Target(
        "crc32 1 MiB >= 0.95x the faster of isal, zlib-ng", "crc32/1MiB", "primary", ("isal", "zlib-ng"), 0.95
    ),
    Target("crc32 1 MiB >= 8x binascii", "crc32/1MiB", "primary", ("binascii",), 8.0),
    Target("crc32 64 B per call no slower than isal", "crc32/64B", "primary", ("isal",), 1.0),
    Target(
        "decode token events, 64 KiB chunks >= 25x botocore",
        "decode/tokens/64KiB",
        "primary",
        ("botocore",),
        25.0,
    ),
    Target(
        "decode 16 MiB frames, 64 KiB chunks >= 40x botocore",
        "decode/16MiB/64KiB",
        "primary",
        ("botocore",),
        40.0,
    ),
    Target(
        "encode token event >= 10x the pure-Python twin",
        "encode/tokens",
        "primary",
        ("evstream (pure Python)",),
        10.0,
    ),
    Target(
        "drop-in, token events, 64 KiB chunks >= 10x botocore (issue 3)",
        "decode/tokens/64KiB",
        "evstream drop-in",
        ("botocore",),
        10.0,
    ),
    Target(
        "drop-in, token events, 1 frame per chunk >= 10x botocore (issue 3)",
        "decode/tokens/frame",
        "evstream drop-in",
        ("botocore",),
        10.0,
    ),
    Target(
        "client CPU per event, one event per chunk, <= 1/4 of boto3's (issue 4)",
        "e2e/tokens/1-per-chunk",
        "primary",
        ("boto3",),
        4.0,
    ),
)


def evaluate_targets(results: Sequence[Result]) -> list[dict[str, Any]]:
    out = []
    for t in TARGETS:
        rows = [r for r in results if r.key == t.key and r.correct]
        mine = next((r for r in rows if (r.primary if t.impl == "primary" else r.impl == t.impl)), None)
        peers = [r for r in rows if r.impl in t.peers]
        if (
            mine is None
            or not peers
            # The codec targets are for the C build; a pure-Python run reports no verdict on them.
            or (
                t.key.startswith(("decode/", "encode/"))
                and any(r.primary and "Python" in r.impl for r in rows)
            )
        ):
            continue
        best = min(peers, key=lambda r: r.median_s)
        ratio = best.median_s / mine.median_s
        out.append(
            {
                "target": t.text,
                "key": t.key,
                "implementation": mine.impl,
                "reference": best.impl,
                "required": t.ratio,
                "measured": ratio,
                "met": ratio >= t.ratio,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# Facts, formatting, progress


def pin_allocator() -> str:
    """Keep freed memory in the process (glibc ``mallopt``), as a long-running decoder's heap settles.

    Otherwise glibc hands every large freed block back to the kernel, and the next frame pays a page
    fault per 4 KiB again; in a VM that cost swings 2-10x from call to call (measured here: the same
    16 MiB decode took 2 ms or 22 ms), drowning the codecs' own cost. Applies to every implementation
    alike. Returns what was done, for the report."""
    if not sys.platform.startswith("linux"):
        return "default (not Linux)"
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "default (no mallopt: not glibc)"
    m_trim_threshold, m_mmap_threshold = -1, -3
    # 32 MiB is glibc's ceiling for the mmap threshold; enough for 16 MiB frames and botocore's buffer.
    if mallopt(m_mmap_threshold, 32 * MiB) and mallopt(m_trim_threshold, 1024 * MiB):
        return "glibc: mmap threshold 32 MiB, trim threshold 1 GiB"
    return "default (mallopt refused)"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fp:
            for line in fp:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        import subprocess

        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    import evstream

    tiers: list[str] = []
    if evstream.IMPLEMENTATION == "c":
        tiers = list(importlib.import_module("evstream._codec")._crc32_available_tiers())
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": " ".join(platform.python_build()) + f" {platform.python_compiler()}",
        "evstream": evstream.__version__,
        "implementation": evstream.IMPLEMENTATION,
        "crc32_backend": evstream.CRC32_BACKEND,
        "crc32_tiers": tiers,
        "load_average": list(load) if load else None,
        "peers": {
            d: _version(d) for d in ("botocore", "isal", "zlib-ng", "awscrt", "smithy-aws-event-stream")
        },
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt_size(n: int) -> str:
    for unit, scale in (("MiB", MiB), ("KiB", KiB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def fmt_time(s: float) -> str:
    if math.isnan(s):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def fmt_rate(x: float, unit: str) -> str:
    if math.isnan(x):
        return "-"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def throughput_text(r: Result) -> str:
    if not r.correct:
        return "WRONG ANSWER"
    if r.group == "crc32":
        return fmt_rate(r.bytes_per_s, "B/s")
    return f"{fmt_rate(r.messages_per_s, 'msg/s')}, {fmt_rate(r.bytes_per_s, 'B/s')}"


class Progress:
    """A one-line progress bar on stderr (a line per step when stderr is not a terminal)."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.label = ""

    def step(self, label: str) -> Callable[[float], None]:
        self.label = label
        if self.enabled and not self.tty:
            print(f"[{self.done + 1}/{self.total}] {label}", file=self.stream, flush=True)

        def tick(fraction: float) -> None:
            self._draw(self.done + fraction)

        self._draw(self.done)
        return tick

    def finish_step(self) -> None:
        self.done += 1
        self._draw(self.done)

    def _draw(self, position: float) -> None:
        if not (self.enabled and self.tty):
            return
        width = 30
        filled = int(width * position / self.total)
        elapsed = time.perf_counter() - self.start
        bar = "#" * filled + "." * (width - filled)
        line = f"\r[{bar}] {100 * position / self.total:3.0f}% {elapsed:5.1f}s  {self.label}"
        self.stream.write(line[:119].ljust(119))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * 119 + "\r")
            self.stream.flush()


def format_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"evstream {m['evstream']} benchmark, {report['mode']} mode, {m['date']}",
        f"CPU: {m['cpu']} ({m['cpus']} logical CPUs, {m['machine']})  |  CRC-32 tier: {m['crc32_backend']}"
        f" (available: {', '.join(m['crc32_tiers']) or '-'})",
        f"Python: {m['python']}  |  evstream implementation: {m['implementation']}  |  "
        f"load average at start: {_fmt_load(m['load_average'])}, "
        f"at end: {_fmt_load(report['load_average_end'])}",
        f"Allocator: {m.get('allocator', 'default')}",
        f"Method: median of {report['rounds']} interleaved rounds per case (IQR shown as +-%), "
        "each answer checked before timing",
        "",
    ]
    if report.get("shape"):
        s = report["shape"]
        lines.append(
            f"Capture {s['file']}: {s['events']} events in {s['chunks']} chunks ({s['bytes']} bytes; "
            f"{s['events_per_chunk']:.2f} events and {s['bytes_per_chunk']:.0f} bytes per chunk; "
            f"recorded over {s['duration_s']:.2f} s); reference decoder: {s['reference']}"
        )
        lines.append("")
    header = ("workload", "implementation", "median/call", "+-", "per event", "throughput", "evstream is")
    rows: list[tuple[str, ...]] = []
    last_key = None
    for r in (Result(**{k: v for k, v in d.items()}) for d in report["results"]):
        label = f"{r.group} {r.label}" if r.key != last_key else ""
        if r.key != last_key and last_key is not None:
            rows.append(("",) * len(header))
        last_key = r.key
        spread = f"{50 * (r.q3_s - r.q1_s) / r.median_s:.0f}%" if r.correct and r.median_s > 0 else ""
        per_event = fmt_time(r.median_s / r.nmessages) if r.nmessages and r.correct else ""
        ratio = "(reference)" if r.primary else (f"{r.speedup:.2f}x faster" if r.speedup else "-")
        if r.speedup is not None and r.speedup < 1:
            ratio = f"{r.speedup:.2f}x ({1 / r.speedup:.2f}x slower)"
        rows.append((label, r.impl, fmt_time(r.median_s), spread, per_event, throughput_text(r), ratio))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    if report["skipped"]:
        lines.append("")
        lines.append("Skipped:")
        lines.extend(f"  {s['group']}: {s['impl']}: {s['reason']}" for s in report["skipped"])
    if report["targets"]:
        lines.append("")
        lines.append("Targets (ratio = reference median time / evstream median time):")
        for t in report["targets"]:
            verdict = "met" if t["met"] else f"MISSED by {100 * (1 - t['measured'] / t['required']):.0f}%"
            lines.append(
                f"  {'ok  ' if t['met'] else 'MISS'} {t['target']}: {t['measured']:.2f}x vs {t['reference']}"
                f" (needs {t['required']:g}x) {verdict}"
            )
    return "\n".join(lines) + "\n"


def _fmt_load(load: Sequence[float] | None) -> str:
    return "-" if not load else f"{load[0]:.2f}"


# ---------------------------------------------------------------------------------------------------------
# Chart


def plot(report: dict[str, Any], path: str) -> None:
    """Throughput vs size per implementation: CRC-32 (GB/s) and decode (MB/s, 64 KiB chunks)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:
        raise SystemExit(f"--plot needs matplotlib: pip install 'evstream[bench]' ({exc})") from None
    results = [r for r in report["results"] if r["correct"]]
    panels: list[tuple[str, str, str, str, float, Callable[[dict[str, Any]], bool]]] = [
        ("crc32", "CRC-32 throughput", "input size", "GB/s", 1e9, lambda r: r["group"] == "crc32"),
        (
            "decode",
            "Decode throughput, 64 KiB chunks",
            "frame size",
            "MB/s",
            1e6,
            lambda r: (
                r["group"] == "decode"
                and r["key"].endswith("/64KiB")
                and not r["key"].startswith("decode/headers")
            ),
        ),
    ]
    panels = [p for p in panels if any(p[5](r) for r in results)]
    if not panels:
        raise SystemExit("--plot: nothing to plot (no CRC-32 or 64 KiB-chunk decode results)")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    size_fmt = FuncFormatter(
        lambda x, _pos: fmt_size(int(x)) if x >= 1 and float(x).is_integer() else f"{x:g}"
    )
    for ax, (_, title, xlabel, unit, scale, keep) in zip(axes[0], panels):
        series: dict[str, list[tuple[int, float]]] = {}
        for r in results:
            if keep(r):
                series.setdefault(r["impl"], []).append((r["size"], r["nbytes"] / r["median_s"] / scale))
        for name, points in sorted(series.items(), key=lambda kv: (not kv[0].startswith("evstream"), kv[0])):
            points.sort()
            xs, ys = zip(*points)
            style = "-o" if name.startswith("evstream") else "--s"
            ax.plot(
                xs, ys, style, label=name, linewidth=2 if name.startswith("evstream") else 1.2, markersize=4
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(size_fmt)
        ax.set_xlabel(f"{xlabel} (bytes, log scale)")
        ax.set_ylabel(f"throughput ({unit}, log scale)")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
    m = report["machine"]
    fig.suptitle(
        f"evstream {m['evstream']} ({report['mode']} mode): {m['cpu']}, "
        f"CRC-32 tier {m['crc32_backend']}, {m['python']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# Runner and CLI


SUITES = ("crc32", "decode", "encode", "e2e")


def run_bench(
    mode: Mode,
    suites: Iterable[str] = SUITES,
    capture: str | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
    pin_malloc: bool = True,
) -> dict[str, Any]:
    facts = machine_facts()
    facts["allocator"] = pin_allocator() if pin_malloc else "default (--no-pin-malloc)"
    skips: list[Skip] = []
    shape = None
    builders = {"crc32": crc_sets, "decode": decode_sets, "encode": encode_sets, "e2e": e2e_sets}
    # Each suite is built right before it runs, so that nothing it starts (the end-to-end endpoint
    # process) competes with the suites before it; the counts only size the progress bar.
    expected = {
        "crc32": len(mode.crc_sizes),
        "decode": len(mode.decode_matrix),
        "encode": len(mode.encode_kinds),
        "e2e": 1,
    }
    suites = list(suites)
    bar = Progress(sum(expected[s] for s in suites) + (1 if capture else 0), enabled=progress)
    results: list[Result] = []
    try:
        plan: list[Callable[[], tuple[list[list[Case]], list[Skip]]]] = []
        if capture:
            replay = replay_sets(capture, chunk_size)
            shape = replay[2]
            plan.append(lambda: replay[:2])
        plan += [functools.partial(builders[suite], mode) for suite in suites]
        for build in plan:
            sets, more_skips = build()
            skips += more_skips
            for cases in sets:
                tick = bar.step(f"{cases[0].group}: {cases[0].label}")
                results += measure_set(cases, mode, tick)
                bar.finish_step()
    finally:
        bar.close()
        while _CLEANUPS:
            try:
                _CLEANUPS.pop()()
            except Exception as exc:  # cleanup of a peer client must not hide the results
                print(f"warning: cleanup failed: {exc}", file=sys.stderr)
    unique_skips = list(dict.fromkeys(skips))
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "mode": mode.name,
        "rounds": mode.rounds,
        "machine": facts,
        "load_average_end": list(load_end) if load_end else None,
        "shape": shape,
        "results": [
            {k: v for k, v in asdict(r).items() if k != "samples"} | {"samples": r.samples} for r in results
        ],
        "skipped": [s._asdict() for s in unique_skips],
        "targets": evaluate_targets(results),
    }


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument(
        "--quick", action="store_const", dest="mode", const="quick", help="the main cases in under a minute"
    )
    speed.add_argument(
        "--full",
        action="store_const",
        dest="mode",
        const="full",
        help="every size, tier and chunking (the default; a few minutes)",
    )
    speed.add_argument(
        "--tiny",
        action="store_const",
        dest="mode",
        const="tiny",
        help="smoke-test sizes: checks the harness runs, the numbers mean nothing",
    )
    parser.add_argument(
        "--only", default=None, metavar="SUITES", help=f"comma-separated subset of {','.join(SUITES)}"
    )
    parser.add_argument(
        "--capture",
        metavar="FILE",
        help="streaming-shape mode: replay this capture (or raw stream) at its chunk boundaries "
        "through every decoder and report the cost per event",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="N",
        help="with --capture: re-cut the stream into N-byte chunks",
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="write the results as JSON to FILE (no FILE or -: to stdout, instead of the table)",
    )
    parser.add_argument(
        "--plot", metavar="FILE", help="write a PNG chart of throughput vs size (needs matplotlib)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--no-pin-malloc",
        action="store_true",
        help="leave glibc's allocator at its defaults (large frames then include page-fault "
        "costs, which are very noisy in VMs)",
    )


def run_cli(args: argparse.Namespace) -> int:
    mode = MODES[args.mode or "full"]
    if args.only:
        suites = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = set(suites) - set(SUITES)
        if unknown:
            raise SystemExit(
                f"--only: unknown suite(s) {', '.join(sorted(unknown))}; choose from {', '.join(SUITES)}"
            )
    else:
        suites = [] if args.capture else list(SUITES)
    report = run_bench(
        mode,
        suites,
        capture=args.capture,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
        pin_malloc=not args.no_pin_malloc,
    )
    if args.json == "-":
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(report))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fp:
                json.dump(report, fp, indent=1)
    if args.plot:
        plot(report, args.plot)
        print(f"chart written to {args.plot}", file=sys.stderr)
    wrong = [r for r in report["results"] if not r["correct"] and r["evstream"]]
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evstream bench", description=__doc__.split("\n\n")[0])
    add_bench_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
