"""Benchmark harness: ``python -m evstream bench`` and the workloads shared with ``benchmarks/``.

Ratios are "evstream is N x faster than this" (the peer's median time over evstream's, same workload,
same run; see :mod:`evstream.bench.measure` for the method). The package, by concern:

* ``frames`` - the hand frame builder (struct + zlib), shared with the tests;
* ``workloads`` - token events, every header type, large frames, chunkings;
* ``peers`` - evstream's implementations and its peers' (a missing peer is a :class:`Skip` with the reason);
* ``measure`` - checked, interleaved, bounded rounds; ``cases`` - the sets of each suite and mode;
* ``e2e`` - the end-to-end client CPU harness (also used by ``benchmarks/`` and the demo);
* ``machine``, ``report``, ``chart``, ``progress``, ``cli``.
"""

from __future__ import annotations

from .cases import (
    CRC_SIZES_FULL,
    CRC_SIZES_QUICK,
    MODES,
    Mode,
    crc_sets,
    decode_cases,
    decode_sets,
    e2e_sets,
    encode_sets,
    replay_sets,
    suite_mode,
)
from .cli import SUITES, add_bench_arguments, main, run_bench, run_cli
from .machine import machine_facts, pin_allocator
from .measure import Case, Result, measure_set
from .peers import Impl, Skip, crc_impls, decode_impls, encode_impls
from .progress import Progress
from .report import format_table
from .workloads import Stream, encode_workload, fmt_size, make_stream, normalize, token_payload

__all__ = [
    "CRC_SIZES_FULL",
    "CRC_SIZES_QUICK",
    "MODES",
    "SUITES",
    "Case",
    "Impl",
    "Mode",
    "Progress",
    "Result",
    "Skip",
    "Stream",
    "add_bench_arguments",
    "crc_impls",
    "crc_sets",
    "decode_cases",
    "decode_impls",
    "decode_sets",
    "e2e_sets",
    "encode_impls",
    "encode_sets",
    "encode_workload",
    "fmt_size",
    "format_table",
    "machine_facts",
    "main",
    "make_stream",
    "measure_set",
    "normalize",
    "pin_allocator",
    "replay_sets",
    "run_bench",
    "run_cli",
    "suite_mode",
    "token_payload",
]
