"""``loadtest --bidirectional``: SageMaker's and Bedrock's bidirectional streams over HTTP/2 against the
local endpoint, timed like response streams."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from evstream.__main__ import main
from evstream.emulator.loops import resolve_loop
from evstream.loadtest.bidi import BidiClient

pytest.importorskip("awscrt", reason="the HTTP/2 client is awscrt's")
pytest.importorskip("h2", reason="the local endpoint's HTTP/2 listener needs h2")
pytest.importorskip(
    "trustme", reason="the local endpoint's HTTP/2 listener makes its certificate with trustme"
)

SHORT = ["--duration", "0.8", "--warmup", "0.3", "--ttft", "30ms", "--itl", "4ms", "--quiet", "--json", "-"]


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
    assert f"1 process(es) on {resolve_loop('auto')};" in out  # the loop the step ran on
    rows = steps_of(out)
    assert [r["concurrency"] for r in rows] == [1, 3]
    for row in rows:
        requests = row["requests"]
        assert isinstance(requests, int) and requests > 0 and row["errors"] == 0
        assert row["output_tokens"] == 5 * requests  # the generation answered in 5 events
        assert row["ttft_count"] == row["e2e_count"] == requests
        assert row["itl_count"] == 4 * requests
        assert row["ttft_p50_ms"] >= 30 and row["itl_p50_ms"] >= 3  # the profile: TTFT 30 ms, ITL 4 ms
        assert row["e2e_p50_ms"] >= 30 + 4 * 4
        # Every event stamped by the endpoint as it sent it: the client's delay, as for response streams.
        assert row["delay_count"] == 5 * requests
        assert 0 < row["delay_p50_ms"] < row["ttft_p50_ms"]


def test_bedrock_bidirectional_streams(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["loadtest", "--local", "--bidirectional", "--template", "anthropic", "--concurrency", "2"]
    assert main([*argv, "--output-tokens", "5", *SHORT]) == 0
    (row,) = steps_of(capsys.readouterr().out)
    requests = row["requests"]
    assert isinstance(requests, int) and requests > 0 and row["errors"] == 0
    # The family's records, one chunk event each, parsed: 5 with text, the others the family's
    # opening and closing events (stamped too).
    assert row["output_tokens"] == 5 * requests
    assert row["ttft_count"] == requests and row["itl_count"] == 4 * requests
    assert row["delay_count"] > 5 * requests


def test_boto3_cannot_run_bidirectional_streams(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadtest", "--local", "--bidirectional", "--compare-boto3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: boto3 has no bidirectional streams") and err.count("\n") == 1


def test_the_bidirectional_client_pickles_as_its_arguments() -> None:
    client = BidiClient(True, region_name="us-east-1", endpoint_url="https://127.0.0.1:1")
    copy = pickle.loads(pickle.dumps(client))
    assert (copy.bedrock, copy.kwargs) == (True, client.kwargs)
    assert copy._client is None  # opened on first use, in the worker
