"""``python -m evstream bench``: run the suites, print the table, write JSON and the chart."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .cases import MODES, Mode, Sets, cleanup, crc_sets, decode_sets, e2e_sets, encode_sets, replay_sets
from .machine import load_average, machine_facts, pin_allocator
from .measure import Result, measure_set
from .peers import Skip
from .progress import Progress
from .report import format_table, make_report

__all__ = ["SUITES", "add_bench_arguments", "main", "run_bench", "run_cli"]

SUITES = ("crc32", "decode", "encode", "e2e", "trickle")


def run_bench(
    mode: Mode,
    suites: Iterable[str] = SUITES,
    capture: str | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
    pin_malloc: bool = False,
) -> dict[str, Any]:
    facts = machine_facts()
    # The default allocator is what users run; pinning is for separating the codecs' cost from page faults.
    facts["allocator"] = pin_allocator() if pin_malloc else "default"
    skips: list[Skip] = []
    shape = None
    from .trickle import trickle_plan, trickle_sets

    builders = {
        "crc32": crc_sets,
        "decode": decode_sets,
        "encode": encode_sets,
        "e2e": e2e_sets,
        "trickle": trickle_sets,
    }
    # Each suite is built right before it runs, so that nothing it starts (the end-to-end endpoint
    # process) competes with the suites before it; the counts only size the progress bar.
    expected = {
        "crc32": len(mode.crc_sizes),
        "decode": len(mode.decode_matrix),
        "encode": len(mode.encode_kinds),
        "e2e": 1,
        "trickle": len(trickle_plan(mode.name)),
    }
    suites = list(suites)
    bar = Progress(sum(expected[s] for s in suites) + (1 if capture else 0), enabled=progress)
    results: list[Result] = []
    try:
        plan: list[Callable[[], Sets]] = []
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
        for exc in cleanup():
            print(f"warning: cleanup failed: {exc}", file=sys.stderr)
    return make_report(mode, facts, results, skips, shape, load_average())


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
        "--pin-malloc",
        action="store_true",
        help="keep freed memory in the process (glibc: mmap threshold 32 MiB, no trimming) for every "
        "implementation, so that large frames are timed without first-touch page faults (very noisy in "
        "VMs); by default the allocator is left as users have it",
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
        pin_malloc=args.pin_malloc,
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
        from .chart import plot

        plot(report, args.plot)
        print(f"chart written to {args.plot}", file=sys.stderr)
    wrong = [r for r in report["results"] if not r["correct"] and r["evstream"]]
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evstream bench", description="Benchmark evstream against its peers on this machine."
    )
    add_bench_arguments(parser)
    return run_cli(parser.parse_args(argv))
