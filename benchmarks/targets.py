"""The project's speed targets, checked against a report of ``python -m evstream bench --json FILE``.

    python -m evstream bench --json bench.json && python benchmarks/targets.py bench.json

Each target is a ratio of medians from the same run (the reference's time over evstream's); a pure-Python
run gives no verdict on the codec targets, which are for the C build. Exit status 1 when one is missed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TARGETS", "Target", "evaluate", "main"]


@dataclass(frozen=True)
class Target:
    text: str
    key: str
    impl: str  # "primary" or an implementation name on the evstream side
    peers: tuple[str, ...]  # the fastest of these is the reference
    ratio: float  # required peer_time / evstream_time


_FAST_CRC = ("isal", "zlib-ng")
# Every CRC size the harness runs from 1 KiB to 16 MiB (a mode runs a subset; absent rows give no verdict).
_CRC_KEYS = ("1KiB", "4KiB", "16KiB", "64KiB", "256KiB", "1MiB", "4MiB", "16MiB")
TARGETS = (
    *(
        Target(
            f"crc32 {k[:-3]} {k[-3:]} >= 0.95x the faster of isal, zlib-ng",
            f"crc32/{k}",
            "primary",
            _FAST_CRC,
            0.95,
        )
        for k in _CRC_KEYS
    ),
    Target("crc32 1 MiB >= 8x binascii", "crc32/1MiB", "primary", ("binascii",), 8.0),
    Target("crc32 64 B per call no slower than isal", "crc32/64B", "primary", ("isal",), 1.0),
    Target(
        "decode token events, 64 KiB chunks >= 25x botocore",
        "decode/tokens/64KiB",
        "primary",
        ("botocore",),
        25,
    ),
    Target(
        "decode 16 MiB frames, 64 KiB chunks >= 40x botocore",
        "decode/16MiB/64KiB",
        "primary",
        ("botocore",),
        40,
    ),
    Target(
        "encode token event >= 10x the pure-Python twin",
        "encode/tokens",
        "primary",
        ("evstream (pure Python)",),
        10.0,
    ),
    Target(
        "drop-in, token events, 64 KiB chunks >= 10x botocore",
        "decode/tokens/64KiB",
        "evstream drop-in",
        ("botocore",),
        10.0,
    ),
    Target(
        "drop-in, token events, 1 frame per chunk >= 10x botocore",
        "decode/tokens/frame",
        "evstream drop-in",
        ("botocore",),
        10.0,
    ),
    Target(
        "client CPU per event, one event per chunk, <= 1/4 of boto3's",
        "e2e/tokens/1-per-chunk",
        "primary",
        ("boto3",),
        4.0,
    ),
)


def evaluate(results: Sequence[dict[str, Any]], targets: Sequence[Target] = TARGETS) -> list[dict[str, Any]]:
    """One verdict per target the report has the rows for."""
    out = []
    for t in targets:
        rows = [r for r in results if r["key"] == t.key and r["correct"]]
        mine = next((r for r in rows if (r["primary"] if t.impl == "primary" else r["impl"] == t.impl)), None)
        peers = [r for r in rows if r["impl"] in t.peers]
        pure_python_codec = t.key.startswith(("decode/", "encode/")) and any(
            r["primary"] and "Python" in r["impl"] for r in rows
        )
        if mine is None or not peers or pure_python_codec:
            continue
        best = min(peers, key=lambda r: r["median_s"])
        ratio = best["median_s"] / mine["median_s"]
        out.append(
            {
                "target": t.text,
                "implementation": mine["impl"],
                "reference": best["impl"],
                "required": t.ratio,
                "measured": ratio,
                "met": ratio >= t.ratio,
            }
        )
    return out


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        verdicts = evaluate(json.load(handle)["results"])
    for v in verdicts:
        missed = f"MISSED by {100 * (1 - v['measured'] / v['required']):.0f}%"
        print(
            f"{'ok  ' if v['met'] else 'MISS'} {v['target']}: {v['measured']:.2f}x vs {v['reference']}"
            f" (needs {v['required']:g}x){'' if v['met'] else ' ' + missed}"
        )
    return 0 if all(v["met"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
