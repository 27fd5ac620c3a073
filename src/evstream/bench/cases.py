"""The case sets of each suite (CRC-32, decode, encode, replay of a capture, end to end) and their sizes."""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .measure import Case
from .peers import Impl, Skip, crc_impls, decode_impls, decode_input, encode_args, encode_impls, try_import
from .workloads import KiB, MiB, NormMessage, Stream, encode_workload, fmt_size, make_stream, size_key

__all__ = [
    "CRC_SIZES_FULL",
    "CRC_SIZES_QUICK",
    "MODES",
    "Mode",
    "cleanup",
    "crc_sets",
    "decode_cases",
    "decode_sets",
    "e2e_sets",
    "encode_sets",
    "replay_sets",
    "start_local_endpoint",
    "suite_mode",
]

CRC_SIZES_QUICK = (64, KiB, 64 * KiB, MiB)
CRC_SIZES_FULL = (8, 64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB)


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

Sets = tuple[list[list[Case]], list[Skip]]


def suite_mode() -> Mode:
    """The sizes benchmarks/ runs at: EVSTREAM_BENCH_MODE=full (default), quick or tiny (the smoke test)."""
    name = os.environ.get("EVSTREAM_BENCH_MODE", "").strip().lower() or "full"
    if name not in MODES:
        raise ValueError(f"EVSTREAM_BENCH_MODE={name!r}: expected one of {', '.join(MODES)}")
    return MODES[name]


def crc_sets(mode: Mode) -> Sets:
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

            key = f"crc32/{size_key(size)}"
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

        key = f"{group}/{stream.key}"
        size = stream.frame_size
        cases.append(
            Case(group, key, stream.label, impl, (arg,), check, stream.nbytes, len(stream.expected), size)
        )
    return cases


def decode_sets(mode: Mode) -> Sets:
    impls, skips = decode_impls()
    return [decode_cases(make_stream(kind, chunk, n), impls) for kind, chunk, n in mode.decode_matrix], skips


def encode_sets(mode: Mode) -> Sets:
    impls, skips = encode_impls()
    sets = []
    for kind in mode.encode_kinds:
        headers, payload, want = encode_workload(kind)
        label = {"tokens": "token event", "headers": "all header types"}.get(
            kind, f"{fmt_size(len(payload))} payload"
        )
        key = f"encode/{kind if kind in ('tokens', 'headers') else size_key(int(kind))}"
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
    from ..capture import load_chunks

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


# What the end-to-end suite started (the endpoint process, the clients), stopped by cleanup().
_CLEANUPS: list[Callable[[], None]] = []


def start_local_endpoint(suite: str) -> tuple[Any, list[Skip]]:
    """The end-to-end endpoint (a child process, stopped by :func:`cleanup`), or None and why ``suite``
    cannot run here."""
    for module in ("evstream.sagemaker", "evstream.emulator"):
        found = try_import(module)
        if isinstance(found, str):
            return None, [Skip(suite, "all", f"{module}: {found}")]
    from .e2e import LocalEndpoint

    try:
        endpoint = LocalEndpoint()
    except Exception as exc:
        return None, [Skip(suite, "all", f"could not start the local endpoint: {exc}")]
    _CLEANUPS.append(endpoint.close)
    return endpoint, []


def e2e_sets(mode: Mode) -> Sets:
    """evstream's client vs boto3 (with and without the drop-in) vs aiobotocore, one event per chunk."""
    if not mode.e2e_events:
        return [], []
    endpoint, skips = start_local_endpoint("e2e")
    if endpoint is None:
        return [], skips
    from .e2e import Clients, Workload, e2e_cases

    clients = Clients(endpoint)
    _CLEANUPS.append(clients.close)
    cases, skips = e2e_cases(clients, Workload(mode.e2e_events))
    return [cases], skips


def cleanup() -> list[Exception]:
    """Stop what the suites started, newest first; returns what failed to stop."""
    errors = []
    while _CLEANUPS:
        try:
            _CLEANUPS.pop()()
        except Exception as exc:  # cleanup of a peer client must not hide the results
            errors.append(exc)
    return errors
