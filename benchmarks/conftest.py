"""pytest-benchmark suites (outside the default test run; each file's docstring gives its command).

Cases come from :mod:`evstream.bench`, the harness behind ``python -m evstream bench``, so both measure
the same workloads and the same peer adapters. Sizes follow EVSTREAM_BENCH_MODE (full by default; ``tiny``
is what tests/test_bench_smoke.py runs). Every case checks its answer on the timed input first and records
``implementation`` and ``correct`` in ``extra_info``; peers that are not installed are skipped with the
reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import evstream
from evstream import bench


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # The files are named bench_*.py (orjson's convention), which pytest does not collect by default;
    # a file named on the command line pytest collects itself.
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def params(cases: list[bench.Case], skips: list[bench.Skip]) -> list[Any]:
    """pytest params for cases (id "key-implementation") plus one skipping param per missing peer."""
    out = [pytest.param(c, id=f"{c.key}-{c.impl.name}".replace(" ", "_")) for c in cases]
    out += [pytest.param(s, id=f"{s.group}-{s.impl}-skipped".replace(" ", "_")) for s in dict.fromkeys(skips)]
    return out


def run_case(benchmark: Any, case: bench.Case | bench.Skip) -> None:
    if isinstance(case, bench.Skip):
        pytest.skip(f"{case.impl}: {case.reason}")
    benchmark.group = f"{case.group} {case.label}"
    try:
        correct = bool(case.check())
    except Exception as exc:  # a wrong answer is reported as one, whatever form it takes
        correct = False
        benchmark.extra_info["error"] = f"{type(exc).__name__}: {exc}"
    benchmark.extra_info.update(
        implementation=case.impl.name,
        evstream=case.impl.evstream,
        correct=correct,
        key=case.key,
        bytes=case.nbytes,
        messages=case.nmessages,
        crc32_backend=evstream.CRC32_BACKEND,
    )
    assert correct, f"{case.impl.name} gave a wrong answer for {case.key}: not timed"
    benchmark(case.impl.func, *case.args)


def pytest_benchmark_update_json(config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
    # Throughput next to the times, so a saved run reads like the CLI table.
    for entry in output_json.get("benchmarks", []):
        info, median = entry.get("extra_info", {}), entry.get("stats", {}).get("median")
        if median:
            info["bytes_per_s"] = info.get("bytes", 0) / median
            info["messages_per_s"] = info.get("messages", 0) / median


def time_cpu_per_event(
    benchmark: Any,
    group: str,
    peer: str,
    run: Callable[[], Any],
    events: int,
    correct: bool,
    rounds: int,
    **info: Any,
) -> float:
    """Time ``run`` on process CPU time once its answer was checked (``correct``); the best CPU seconds per
    event, also kept in the report's ``extra_info``."""
    benchmark.group = group
    benchmark.extra_info.update(
        implementation=peer, correct=correct, events=events, timer="process_time", **info
    )
    assert correct, f"{peer}: the streams were incomplete or different; not timed"
    taken: list[float] = []

    def timed() -> Any:
        start = time.process_time()
        data = run()
        taken.append(time.process_time() - start)
        return data

    benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=1)
    best = min(taken) / events
    benchmark.extra_info["cpu_us_per_event"] = round(best * 1e6, 3)
    return best
