"""The load test's output: a table per run, JSON, CSV, and the chart of latency against throughput."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from .histogram import RELATIVE_ERROR
from .measure import BUSY_CPU_SHARE, BUSY_LAG_P99_NS, StepResult

__all__ = ["comparison", "csv_text", "json_document", "plot", "summary", "table", "warnings"]

QUANTILES = (50, 90, 99)
LATENCIES = ("ttft", "itl", "e2e", "delay", "late")
# The local endpoint running behind its latency profile by more than this (p99) is worth a warning.
ENDPOINT_LATE_MS = 5.0


def summary(result: StepResult) -> dict[str, Any]:
    """The figures of one step as plain numbers (milliseconds, per second)."""
    row: dict[str, Any] = {
        "client": result.client,
        "concurrency": result.concurrency,
        "rate": result.rate,
        "requests": result.requests,
        "errors": result.error_count,
        "errors_by_class": dict(sorted(result.errors.items())),
        "requests_per_s": result.requests_per_s,
        "output_tokens_per_s": result.tokens_per_s,
        "output_tokens": result.output_tokens,
        "window_s": result.window_ns / 1e9,
    }
    for name in LATENCIES:
        histogram = getattr(result, name)
        values = histogram.percentiles(QUANTILES) if histogram.count else {q: math.nan for q in QUANTILES}
        for q in QUANTILES:
            row[f"{name}_p{q}_ms"] = values[q] / 1e6
        row[f"{name}_max_ms"] = histogram.maximum / 1e6 if histogram.count else math.nan
        row[f"{name}_count"] = histogram.count
    tps = result.stream_tps
    row["stream_tokens_per_s_p50"] = tps.percentile(50) / 1000 if tps.count else math.nan
    cpu = sum(w.cpu_s for w in result.workers)
    events = sum(w.events for w in result.workers)
    row["client_cpu_us_per_event"] = cpu * 1e6 / events if events else math.nan
    row["client_cpu_share_max"] = max((w.cpu_share for w in result.workers), default=0.0)
    row["client_cpu_wait_share_max"] = max((w.wait_share for w in result.workers), default=0.0)
    row["loop_lag_p99_ms"] = result.lag.percentile(99) / 1e6 if result.lag.count else math.nan
    row["loop_lag_max_ms"] = result.lag.maximum / 1e6 if result.lag.count else math.nan
    row["gc_pause_max_ms"] = max((w.gc_pause_max_ns for w in result.workers), default=0) / 1e6
    # The local endpoint, measured by each worker over its window (the windows coincide): its CPU per
    # event the clients received, its share of a core, its time waiting for a CPU.
    row["endpoint_cpu_us_per_event"] = row["endpoint_cpu_share"] = row["endpoint_cpu_wait_share"] = math.nan
    endpoint = max(result.workers, key=lambda w: w.endpoint_cpu_s, default=None)
    if endpoint is not None and endpoint.endpoint_cpu_s > 0 and endpoint.span_s > 0:
        if events:
            row["endpoint_cpu_us_per_event"] = endpoint.endpoint_cpu_s * 1e6 / events
        row["endpoint_cpu_share"] = endpoint.endpoint_cpu_s / endpoint.span_s
        row["endpoint_cpu_wait_share"] = endpoint.endpoint_wait_s / endpoint.span_s
    row["in_flight_mean"] = result.in_flight
    row["workers"] = len(result.workers)
    row["client_bound"] = bool(result.busy_workers)
    row["machine_busy"] = any(w.starved for w in result.workers)
    row["exact_percentiles"] = all(getattr(result, n).exact for n in LATENCIES)
    return row


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _number(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def table(results: Sequence[StepResult], out: TextIO) -> None:
    """Two tables: latencies (ms, p50/p90/p99/max) and throughput with the client's own load."""
    out.write(
        f"{'client':<9}{'load':>7} {'TTFT p50/p90/p99/max':>26} {'ITL p50/p90/p99/max':>26}"
        f" {'E2E p50/p99':>15} {'client delay p50/p99/max':>26}\n"
    )
    for result in results:
        row = summary(result)

        def cell(
            name: str, qs: Iterable[str] = ("p50", "p90", "p99", "max"), row: dict[str, Any] = row
        ) -> str:
            return "/".join(_ms(row[f"{name}_{q}_ms"]) for q in qs)

        delay = cell("delay", ("p50", "p99", "max")) if row["delay_count"] else "(no stamps)"
        out.write(
            f"{result.client:<9}{result.label:>7} {cell('ttft'):>26} {cell('itl'):>26}"
            f" {cell('e2e', ('p50', 'p99')):>15} {delay:>26}\n"
        )
    out.write(
        f"\n{'client':<9}{'load':>7} {'in flight':>9} {'req/s':>8} {'tok/s':>9} {'tok/s/stream':>13}"
        f" {'done':>6}"
        f" {'errors':>7} {'CPU us/ev':>10} {'CPU':>5} {'wait':>5} {'lag p99':>8} {'GC max':>7}"
        f" {'workers':>8} {'endpoint: us/ev':>16} {'CPU':>5} {'wait':>5} {'late p99':>9}\n"
    )
    for result in results:
        row = summary(result)
        flag = "  client-bound" if row["client_bound"] else ("  machine busy" if row["machine_busy"] else "")
        out.write(
            f"{result.client:<9}{result.label:>7} {row['in_flight_mean']:>9.0f} {row['requests_per_s']:>8.1f}"
            f" {row['output_tokens_per_s']:>9.0f}"
            f" {_ms(row['stream_tokens_per_s_p50']):>13} {row['requests']:>6} {row['errors']:>7}"
            f" {row['client_cpu_us_per_event']:>10.1f} {row['client_cpu_share_max']:>5.0%}"
            f" {row['client_cpu_wait_share_max']:>5.0%}"
            f" {_ms(row['loop_lag_p99_ms']):>8} {_ms(row['gc_pause_max_ms']):>7} {row['workers']:>8}"
            f" {_number(row['endpoint_cpu_us_per_event'], '.1f'):>16}"
            f" {_number(row['endpoint_cpu_share'], '.0%'):>5}"
            f" {_number(row['endpoint_cpu_wait_share'], '.0%'):>5}"
            f" {_ms(row['late_p99_ms']):>9}{flag}\n"
        )
    if any(len(r.workers) > 1 for r in results):
        out.write(f"\n{'client':<9}{'load':>7} {'worker':<28} {'streams':>8} {'events':>8}")
        out.write(f" {'CPU us/ev':>10} {'CPU':>5} {'wait':>5} {'lag p99':>8}\n")
        for result in results:
            for w in result.workers:
                out.write(
                    f"{result.client:<9}{result.label:>7} {w.name:<28} {w.streams:>8} {w.events:>8}"
                    f" {w.cpu_us_per_event:>10.1f} {w.cpu_share:>5.0%} {w.wait_share:>5.0%}"
                    f" {_ms(w.lag_p99_ns / 1e6):>8}\n"
                )
    for line in comparison(results):
        out.write(f"\n{line}")
    for line in warnings(results):
        out.write(f"\n{line}")
    out.write("\n")


def comparison(results: Sequence[StepResult]) -> list[str]:
    """For each load run by both clients: what boto3's threads add to what they report."""
    lines = []
    ours = {(r.concurrency, r.rate): r for r in results if r.client == "evstream"}
    for theirs in results:
        mine = ours.get((theirs.concurrency, theirs.rate))
        if theirs.client != "boto3" or mine is None:
            continue
        a, b = summary(mine), summary(theirs)
        if a["delay_count"] and b["delay_count"]:
            lines.append(
                f"at {mine.label}: client delay p99 {_ms(a['delay_p99_ms'])} ms with evstream, "
                f"{_ms(b['delay_p99_ms'])} ms with boto3 threads; ITL p99 as reported: "
                f"{_ms(a['itl_p99_ms'])} vs {_ms(b['itl_p99_ms'])} ms"
            )
    return lines


def warnings(results: Sequence[StepResult]) -> list[str]:
    """Plain-language notes: errors by class, client-bound workers, inexact percentiles."""
    lines = []
    for result in results:
        if result.errors:
            errors = ", ".join(f"{name} x{n}" for name, n in sorted(result.errors.items()))
            lines.append(f"{result.client} at {result.label}: errors: {errors}")
        for worker in result.busy_workers:
            lines.append(
                f"{result.client} at {result.label}: client-bound ({worker.name}: CPU "
                f"{worker.cpu_share:.0%} of a core, event-loop lag p99 {worker.lag_p99_ns / 1e6:.2f} ms; "
                f"limits {BUSY_CPU_SHARE:.0%} and {BUSY_LAG_P99_NS / 1e6:g} ms): the latencies above "
                "include time spent waiting for the client"
            )
        for worker in result.workers:
            if worker.late_timers:
                lines.append(
                    f"{result.client} at {result.label}: event-loop timers ran "
                    f"{worker.lag_p99_ns / 1e6:.1f} ms late at p99 with the client mostly idle "
                    f"({worker.cpu_share:.0%} of a core): the machine's wake-up latency, or a blocking call"
                )
        if not result.requests and not result.errors:
            lines.append(
                f"{result.client} at {result.label}: nothing measured: no request both started in the "
                "window and ended (requests outlast it); give a longer --warmup and --duration"
            )
        if result.concurrency and result.window_ns and result.in_flight < 0.9 * result.concurrency:
            lines.append(
                f"{result.client} at {result.label}: only {result.in_flight:.0f} streams were open on "
                f"average, not {result.concurrency}: the client could not keep up the load it was asked for"
            )
        waiting = [w for w in result.workers if w.starved]
        if waiting:
            worst = max(waiting, key=lambda w: w.wait_share)
            lines.append(
                f"{result.client} at {result.label}: the machine is busy: the client was ready to run but "
                f"waited for a CPU {worst.wait_share:.0%} of the time ({worst.name}); latencies include it"
            )
        if result.late.count and result.late.percentile(99) / 1e6 > ENDPOINT_LATE_MS:
            lines.append(
                f"{result.client} at {result.label}: the local endpoint fell behind its latency profile "
                f"(records sent {result.late.percentile(99) / 1e6:.1f} ms late at p99): TTFT and ITL show "
                "the loaded endpoint, not the emulated model (the client delay is measured from the actual "
                "send time either way)"
            )
        if not all(getattr(result, n).exact for n in LATENCIES):
            lines.append(
                f"{result.client} at {result.label}: percentiles from histogram buckets "
                f"(within {RELATIVE_ERROR:.2%} of the value)"
            )
    return lines


def json_document(
    results: Sequence[StepResult], meta: dict[str, Any], histograms: bool = True
) -> dict[str, Any]:
    steps = []
    for result in results:
        step = {"summary": summary(result), "workers": [vars(w) for w in result.workers]}
        if histograms:
            step["histograms"] = {n: getattr(result, n).to_dict(samples=False) for n in (*LATENCIES, "lag")}
        steps.append(step)
    return {"meta": meta, "steps": steps}


def dump_json(results: Sequence[StepResult], meta: dict[str, Any], out: TextIO) -> None:
    # NaN is not JSON: empty percentiles become null.
    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    json.dump(clean(json_document(results, meta)), out, indent=1)
    out.write("\n")


def csv_text(results: Sequence[StepResult]) -> str:
    rows = [summary(r) for r in results]
    buffer = io.StringIO()
    fields = [k for k in rows[0] if k != "errors_by_class"] if rows else []
    writer = csv.DictWriter(buffer, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buffer.getvalue()


def plot(results: Sequence[StepResult], path: str, title: str = "") -> None:
    """Latency percentiles against total output tokens/s, one line per client and percentile; a
    second panel with the client-induced delay (when the endpoint stamps) against the load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = list(dict.fromkeys(r.client for r in results))
    stamped = any(r.delay.count for r in results)
    figure, axes = plt.subplots(1, 3 if stamped else 2, figsize=(15 if stamped else 10, 4.5))
    styles = {"p50": "-", "p99": "--"}
    for client in clients:
        mine = [summary(r) for r in results if r.client == client]
        x = [row["output_tokens_per_s"] for row in mine]
        for panel, name in zip(axes, ("ttft", "itl")):
            for q, style in styles.items():
                panel.plot(
                    x, [row[f"{name}_{q}_ms"] for row in mine], style, marker="o", label=f"{client} {q}"
                )
        if stamped:
            loads = [row["concurrency"] or row["rate"] for row in mine]
            for q, style in styles.items():
                axes[2].plot(
                    loads, [row[f"delay_{q}_ms"] for row in mine], style, marker="o", label=f"{client} {q}"
                )
            for row, load in zip(mine, loads):
                axes[0].annotate(str(load), (row["output_tokens_per_s"], row["ttft_p50_ms"]), fontsize=7)
    axes[0].set_title("time to first token")
    axes[1].set_title("inter-token latency")
    for panel in axes[:2]:
        panel.set_xlabel("total output tokens/s")
        panel.set_ylabel("ms")
        panel.set_xscale("log")
        panel.set_yscale("log")
        panel.grid(True, alpha=0.3)
        panel.legend(fontsize=8)
    if stamped:
        axes[2].set_title("client-induced delay (receive - send stamp)")
        axes[2].set_xlabel("concurrent streams" if results[0].concurrency else "requests/s")
        axes[2].set_ylabel("ms")
        axes[2].set_xscale("log")
        axes[2].set_yscale("log")
        axes[2].grid(True, alpha=0.3)
        axes[2].legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
