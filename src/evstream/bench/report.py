"""The report of a run: its JSON shape and the table ``python -m evstream bench`` prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .measure import Result
from .peers import Skip

__all__ = ["fmt_rate", "fmt_time", "format_table", "make_report", "throughput_text"]


def make_report(
    mode: Any,
    facts: dict[str, Any],
    results: Sequence[Result],
    skips: Sequence[Skip],
    shape: dict[str, Any] | None,
    load_end: list[float] | None,
) -> dict[str, Any]:
    return {
        "mode": mode.name,
        "rounds": mode.rounds,
        "machine": facts,
        "load_average_end": load_end,
        "shape": shape,
        "results": [
            {k: v for k, v in asdict(r).items() if k != "samples"} | {"samples": r.samples} for r in results
        ],
        "skipped": [s._asdict() for s in dict.fromkeys(skips)],
    }


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


def _fmt_load(load: Sequence[float] | None) -> str:
    return "-" if not load else f"{load[0]:.2f}"


def _preamble(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    lines = [
        f"evstream {m['evstream']} benchmark, {report['mode']} mode, {m['date']}",
        f"CPU: {m['cpu']}, {m['cpus']} logical CPUs  |  ISA: {m.get('isa', m['machine'])}",
        f"CRC-32 tier: {m['crc32_backend']} (available: {', '.join(m['crc32_tiers']) or '-'})",
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
    return lines


def format_table(report: dict[str, Any]) -> str:
    lines = _preamble(report)
    header = ("workload", "implementation", "median/call", "+-", "per event", "throughput", "evstream is")
    rows: list[tuple[str, ...]] = []
    last_key = None
    for r in (Result(**d) for d in report["results"]):
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
    return "\n".join(lines) + "\n"
