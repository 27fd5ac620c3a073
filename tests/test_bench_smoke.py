"""The benchmark harness never rots: every benchmark runs once at tiny sizes, and so does the CLI.

Numbers are not looked at here, only that every case runs, checks its answer and reports in the
documented shape (ICRAR/crc32c keeps the same kind of smoke test for its benchmarks).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import evstream
from evstream import bench, capture

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(evstream.__file__).resolve().parent.parent)  # the evstream under test
    env["PYTHONPATH"] = src + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else src
    env.update(extra)
    return env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=300
    )


OWN = ["bench_crc32.py", "bench_decode.py", "bench_encode.py"]
OTHERS = sorted(p.name for p in BENCHMARKS.glob("bench_*.py") if p.name not in OWN)


@pytest.mark.parametrize("files", [OWN, *([name] for name in OTHERS)], ids=lambda f: "+".join(f))
def test_pytest_benchmark_suites_run_once_each(files: list[str]) -> None:
    # Each benchmark called once at tiny sizes (the codec suites in one run; each other file on its own,
    # so a failure names its file).
    proc = _run(
        "-m", "pytest", *(str(BENCHMARKS / f) for f in files), "-q", "-p", "no:cacheprovider",
        "--benchmark-disable", "-rs",
        EVSTREAM_BENCH_MODE="tiny",
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert " passed" in out, out[-2000:]
    # Missing peers are reported with a reason, never dropped silently.
    for line in out.splitlines():
        if line.startswith("SKIPPED"):
            assert ": " in line.split("]", 1)[-1], line


def _capture_file(tmp_path: Path) -> tuple[Path, list[bytes]]:
    stream = bench.make_stream("tokens", None, 12)
    path = tmp_path / "tokens.jsonl"
    # Two frames per chunk and one frame cut in three, so replay exercises frames straddling chunks.
    data = b"".join(stream.chunks)
    cuts = [0, 5, 300, 301, len(stream.chunks[0]) * 3, len(data) - 7, len(data)]
    chunks = [data[a:b] for a, b in zip(cuts, cuts[1:])]
    with capture.CaptureWriter(path, source="test") as writer:
        for chunk in chunks:
            writer.write(chunk)
    return path, chunks


def test_cli_bench_tiny_reports_table_json_and_chart(tmp_path: Path) -> None:
    json_path, png_path = tmp_path / "bench.json", tmp_path / "bench.png"
    args = ["-m", "evstream", "bench", "--tiny", "--no-progress", "--json", str(json_path)]
    try:
        import matplotlib  # noqa: F401

        args += ["--plot", str(png_path)]
    except ImportError:
        png_path = None  # type: ignore[assignment]
    proc = _run(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout
    for text in (
        "CPU:",
        "CRC-32 tier:",
        "Python:",
        "median/call",
        "evstream is",
        "crc32 64 B",
        "decode token",
    ):
        assert text in table, table
    report: dict[str, Any] = json.loads(json_path.read_text())
    assert {"mode", "machine", "results", "skipped"} <= report.keys()
    assert report["mode"] == "tiny"
    facts = report["machine"]
    assert facts["cpu"] and facts["python"] and facts["crc32_backend"]
    results = report["results"]
    assert {r["group"] for r in results} >= {"crc32", "decode", "encode"}
    for r in results:
        assert r["correct"], r
        assert r["median_s"] > 0 and r["rounds"] >= 1, r
        assert r["primary"] or r["speedup"] > 0, r
    for skip in report["skipped"]:
        assert skip["reason"], skip
    if png_path is not None:
        assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The project's targets live outside the package; their checker reads this report.
    verdicts = _run(str(BENCHMARKS / "targets.py"), str(json_path))
    assert verdicts.returncode in (0, 1), verdicts.stderr
    lines = verdicts.stdout.splitlines()
    assert lines and all(line.startswith(("ok  ", "MISS ")) for line in lines), verdicts.stdout


def test_targets_are_ratios_of_medians_from_one_report() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import targets
    finally:
        sys.path.remove(str(BENCHMARKS))

    def row(impl: str, median_s: float, primary: bool = False) -> dict[str, Any]:
        return {"key": "crc32/1MiB", "impl": impl, "median_s": median_s, "primary": primary, "correct": True}

    target = targets.Target("t", "crc32/1MiB", "primary", ("binascii",), 8.0)
    met, missed = (
        targets.evaluate([row("evstream", 1.0, True), row("binascii", ratio)], [target])
        for ratio in (9.0, 4.0)
    )
    assert met[0]["met"] and met[0]["measured"] == 9.0
    assert not missed[0]["met"] and missed[0]["measured"] == 4.0
    assert targets.evaluate([row("binascii", 1.0)], [target]) == []  # no evstream row: no verdict


def test_cli_streaming_shape_mode_replays_a_capture(tmp_path: Path) -> None:
    path, chunks = _capture_file(tmp_path)
    proc = _run("-m", "evstream", "bench", "--tiny", "--no-progress", "--capture", str(path), "--json", "-")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["shape"]["chunks"] == len(chunks) and report["shape"]["events"] == 12
    rows = report["results"]
    assert rows and all(r["group"] == "replay" and r["correct"] and r["nmessages"] == 12 for r in rows)


def test_cli_decode_dumps_capture_and_raw_stream(tmp_path: Path) -> None:
    path, chunks = _capture_file(tmp_path)
    proc = _run("-m", "evstream", "decode", str(path))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 12
    assert lines[0]["headers"][":event-type"] == "PayloadPart"
    assert lines[3]["payload"].encode() == bench.token_payload(3)
    raw = tmp_path / "stream.bin"
    raw.write_bytes(b"".join(chunks)[:-3])  # cut short: the messages, then the error, exit status 1
    proc = _run("-m", "evstream", "decode", str(raw), "--chunk-size", "100")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 1
    assert len(lines) == 11 and lines[-1]["index"] == 10
    assert "after message 11: TruncatedStream" in proc.stderr and "Traceback" not in proc.stderr


def test_capture_round_trip_and_damaged_tail(tmp_path: Path) -> None:
    path, chunks = _capture_file(tmp_path)
    got = capture.read_capture(path)
    assert got.chunks == chunks and got.meta["source"] == "test"
    assert got.offsets == sorted(got.offsets)
    # A capture cut mid-line keeps its complete chunks; damage before the end is an error.
    text = path.read_text()
    assert capture.parse_capture(text[:-10]).chunks == chunks[:-1]
    lines = text.splitlines()
    with pytest.raises(capture.CaptureError, match="line 3"):
        capture.parse_capture("\n".join([*lines[:2], "{nope", *lines[3:]]))
    with pytest.raises(capture.CaptureError):
        capture.parse_capture('{"format": "something-else"}\n')
    # tee passes chunks through unchanged while recording them.
    buf = io.StringIO()
    assert list(capture.tee(iter(chunks), buf, source="tee")) == chunks
    assert capture.parse_capture(buf.getvalue()).chunks == chunks


@pytest.mark.parametrize("kind", ["tokens", "headers", "4096"])
def test_workloads_agree_with_evstream(kind: str) -> None:
    # The harness builds its frames independently of the codec; both must agree on them.
    import evstream

    stream = bench.make_stream(kind, 1000, 3)
    assert [bench.normalize(m.headers, m.payload) for m in evstream.decode(b"".join(stream.chunks))] == (
        stream.expected
    )
    headers, payload, frame = bench.encode_workload(kind)
    assert evstream.encode(headers, payload) == frame
