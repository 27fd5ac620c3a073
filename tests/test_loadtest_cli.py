"""``python -m evstream loadtest``: the one-command local run, its outputs, and its errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from evstream.__main__ import main

pytest.importorskip("aiohttp", reason="the load tester drives the asyncio client (aiohttp)")
pytest.importorskip("awscrt", reason="the client signs with awscrt")

SHORT = ["--duration", "0.6", "--warmup", "0.2", "--ttft", "30ms", "--itl", "normal:3ms,1ms", "--quiet"]


def test_local_run_writes_table_json_csv_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("boto3")
    pytest.importorskip("matplotlib")
    paths = {name: tmp_path / f"out.{name}" for name in ("json", "csv", "png")}
    argv = ["loadtest", "--local", "--concurrency", "1,3", "--output-tokens", "6", "--compare-boto3", *SHORT]
    argv += ["--json", str(paths["json"]), "--csv", str(paths["csv"]), "--plot", str(paths["png"])]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Load test of local endpoint" in out and "client delay" in out
    assert "at 3: client delay p99" in out and "with boto3 threads" in out
    document = json.loads(paths["json"].read_text())
    rows = [step["summary"] for step in document["steps"]]
    assert [(r["client"], r["concurrency"]) for r in rows] == [
        ("evstream", 1),
        ("boto3", 1),
        ("evstream", 3),
        ("boto3", 3),
    ]
    for row in rows:
        assert row["requests"] > 0 and row["errors"] == 0
        assert row["output_tokens"] == 6 * row["requests"]
        assert row["ttft_p50_ms"] >= 30 and row["delay_count"] == row["output_tokens"]
        assert 0 < row["delay_p50_ms"] < 30
        if sys.platform == "linux":  # the local endpoint's CPU is measured beside the client's
            assert row["endpoint_cpu_us_per_event"] > 0 and 0 < row["endpoint_cpu_share"] < 1
    histogram = document["steps"][0]["histograms"]["ttft"]
    assert histogram["count"] == rows[0]["requests"]
    with paths["csv"].open() as handle:
        table = list(csv.DictReader(handle))
    assert [t["client"] for t in table] == ["evstream", "boto3", "evstream", "boto3"]
    assert paths["png"].read_bytes().startswith(b"\x89PNG")


def test_local_open_loop_run_with_two_worker_processes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["loadtest", "--local", "--rate", "20", "--workers", "2", "--output-tokens", "4", *SHORT]
    assert main([*argv, "--json", "-"]) == 0
    out = capsys.readouterr().out
    document = json.loads(out[out.index("{\n") : out.rindex("}") + 1])
    (step,) = document["steps"]
    assert step["summary"]["rate"] == 20 and step["summary"]["workers"] == 2
    assert len({w["name"] for w in step["workers"]}) == 2  # two processes
    assert step["summary"]["requests"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["loadtest"], "name an endpoint"),
        (["loadtest", "--local", "--workers", "3", "--concurrency", "2"], "at least 3"),
        (["loadtest", "--local", "--prompts", "/nonexistent/prompts.jsonl"], "No such file"),
        (["loadtest", "my-endpoint", "--profile", "no-such-profile-here"], "no-such-profile-here"),
        (["loadtest", "--local", "--json", "/nonexistent/dir/out.json"], "no such directory"),
    ],
)
def test_mistakes_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--quiet"]) in (1, 2)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [["--concurrency", "0"], ["--concurrency", "x"], ["--itl", "20"], ["--concurrency", "1", "--rate", "1"]],
)
def test_bad_arguments_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["loadtest", "--local", *argv])
    assert exit_info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
