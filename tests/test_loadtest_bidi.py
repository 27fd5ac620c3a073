"""``loadtest --bidirectional``: SageMaker's and Bedrock's bidirectional streams over HTTP/2 against the
local endpoint, timed like response streams."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from evstream.__main__ import main
from evstream.loadtest.bidi import BidiClient

pytest.importorskip("awscrt", reason="the HTTP/2 client is awscrt's")
pytest.importorskip("h2", reason="the local endpoint's HTTP/2 listener needs h2")
pytest.importorskip(
    "trustme", reason="the local endpoint's HTTP/2 listener makes its certificate with trustme"
)

SHORT = ["--duration", "0.8", "--warmup", "0.3", "--itl", "4ms", "--quiet", "--json", "-"]


def steps_of(out: str) -> list[dict[str, Any]]:
    document = json.loads(out[out.index("{\n") : out.rindex("}") + 1])
    return [step["summary"] for step in document["steps"]]


def test_sagemaker_bidirectional_streams_send_the_body_and_time_each_output_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["loadtest", "--local", "--bidirectional", "--concurrency", "1,3", "--output-tokens", "5"]
    assert main([*argv, *SHORT]) == 0
    out = capsys.readouterr().out
    assert "bidirectional streams (HTTP/2) of local endpoint" in out
    rows = steps_of(out)
    assert [r["concurrency"] for r in rows] == [1, 3]
    for row in rows:
        requests = row["requests"]
        assert isinstance(requests, int) and requests > 0 and row["errors"] == 0
        assert row["output_tokens"] == 5 * requests  # the conversation answered in 5 events
        assert row["ttft_count"] == row["e2e_count"] == requests
        assert row["itl_count"] == 4 * requests
        assert row["ttft_p50_ms"] >= 4 and row["itl_p50_ms"] >= 3  # each event 4 ms after the last
        assert row["e2e_p50_ms"] >= 5 * 4
        assert row["delay_count"] == 0  # the HTTP/2 listener does not stamp


def test_bedrock_bidirectional_streams(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["loadtest", "--local", "--bidirectional", "--template", "anthropic", "--concurrency", "2"]
    assert main([*argv, *SHORT]) == 0
    (row,) = steps_of(capsys.readouterr().out)
    requests = row["requests"]
    assert isinstance(requests, int) and requests > 0 and row["errors"] == 0
    assert row["output_tokens"] == requests  # Bedrock's turn: one chunk event, one "token"
    assert row["ttft_count"] == requests


def test_boto3_cannot_run_bidirectional_streams(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadtest", "--local", "--bidirectional", "--compare-boto3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: boto3 has no bidirectional streams") and err.count("\n") == 1


def test_the_bidirectional_client_pickles_as_its_arguments() -> None:
    client = BidiClient(False, 0.02, region_name="us-east-1", endpoint_url="https://127.0.0.1:1")
    copy = pickle.loads(pickle.dumps(client))
    assert (copy.bedrock, copy.local_pace, copy.kwargs) == (False, 0.02, client.kwargs)
    assert copy._client is None  # opened on first use, in the worker
