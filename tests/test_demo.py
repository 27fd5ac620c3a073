"""The command line: demo, serve and invoke, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import evstream
from evstream.__main__ import main
from evstream.emulator import Behavior, generate_text

# Where the evstream under test was imported from (the source tree or site-packages), for children.
pytest.importorskip("awscrt", reason="the demo needs the client extra (awscrt has no wheel here)")

SRC = str(Path(evstream.__file__).resolve().parent.parent)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    return env


def test_demo_streams_and_compares(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("boto3")
    assert main(["demo", "--events", "2000", "--rounds", "1", "--rate", "0"]) == 0
    out = capsys.readouterr().out
    assert generate_text(Behavior(tokens=48)).replace("\n", "\n  ") in out  # tokens printed as they arrive
    assert "complete: 48 tokens" in out
    assert out.count("complete and identical") == 2
    assert "less client CPU per event than boto3" in out
    assert out.rstrip().endswith("OK")


@pytest.fixture()
def served() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "evstream", "serve", "--port", "0", "--format", "lmi", "--tokens", "7"],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("evstream endpoint listening on http://127.0.0.1:")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM is a clean stop
        if process.stdout is not None:
            process.stdout.close()


def test_serve_then_invoke(served: str) -> None:
    env = child_env()
    env.update(AWS_ACCESS_KEY_ID="AKIDCLI", AWS_SECRET_ACCESS_KEY="cli-secret", AWS_REGION="us-east-1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "evstream",
            "invoke",
            "cli-endpoint",
            '{"inputs": "hi"}',
            "--endpoint-url",
            served,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = generate_text(Behavior(tokens=7))
    assert result.stdout == (text if text.endswith("\n") else text + "\n")
    raw = subprocess.run(
        [
            sys.executable,
            "-m",
            "evstream",
            "invoke",
            "cli-endpoint",
            "{}",
            "--endpoint-url",
            served,
            "--output",
            "lines",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert [json.loads(line)["token"]["id"] for line in raw.stdout.splitlines()] == list(range(7))


def test_invoke_reports_typed_errors(served: str) -> None:
    env = child_env()
    env.update(AWS_ACCESS_KEY_ID="AKIDCLI", AWS_SECRET_ACCESS_KEY="cli-secret", AWS_REGION="us-east-1")
    body = json.dumps({"emulator": {"fault": "model-stream-error", "after": 2, "error_code": "StreamBroken"}})
    result = subprocess.run(
        [sys.executable, "-m", "evstream", "invoke", "cli-endpoint", body, "--endpoint-url", served],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "ModelStreamError: Emulated model stream error (ErrorCode: StreamBroken)" in result.stderr


def test_subcommands_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "serve", "invoke"):
        assert command in out
