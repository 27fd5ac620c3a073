"""python -m evstream demo: a generation streamed token by token, then three rows of client CPU per event."""

from __future__ import annotations

import pytest

from evstream.__main__ import main
from evstream.emulator import Behavior, generate_text

pytest.importorskip("awscrt", reason="the demo signs with the client extra")


def test_demo_streams_and_compares(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("boto3")
    assert main(["demo", "--events", "2000", "--rounds", "1", "--rate", "0"]) == 0
    out = capsys.readouterr().out
    assert generate_text(Behavior(tokens=48)).replace("\n", "\n  ") in out  # tokens printed as they arrive
    assert "complete: 48 tokens, format tgi, finish reason length" in out
    assert "Anthropic Claude messages" in out and "format anthropic, finish reason max_tokens" in out
    rows = [line for line in out.splitlines() if "us CPU/event" in line]
    assert [row.strip().split("  ")[0] for row in rows] == [
        "boto3",
        "boto3 + evstream.botocore.install()",
        "evstream.sagemaker.client",
    ]
    assert all(row.rstrip().endswith("complete") for row in rows)
    assert "time.process_time" in out and "back to back" in out  # says what the figure is
    assert "less CPU per event than boto3" in out
    assert out.rstrip().endswith("OK")


def test_demo_without_boto3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--events", "500", "--rounds", "1", "--rate", "0", "--no-boto3"]) == 0
    out = capsys.readouterr().out
    assert [line.strip().split("  ")[0] for line in out.splitlines() if "us CPU/event" in line] == [
        "evstream.sagemaker.client"
    ]
    assert "less CPU" not in out


def test_demo_refuses_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--events", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
