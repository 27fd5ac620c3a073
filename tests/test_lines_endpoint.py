"""Every container format and Bedrock family from the local endpoint, through the client's tokens() and
through boto3's events with LineIterator: the stream views end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from evstream import lines
from evstream.emulator import EmulatorThread
from evstream.emulator.workloads import (
    BEDROCK_FORMATS,
    FINISH_REASONS,
    PROMPT_TOKENS,
    Behavior,
    generate_text,
)
from evstream.formats import Usage

pytest.importorskip("awscrt", reason="the client needs the client extra")
import evstream.sagemaker as sm

CONTAINER_FORMATS = ("tgi", "lmi", "openai", "openai-completions", "llamacpp")
TOKENS = 25


@pytest.fixture(scope="module")
def endpoint() -> Iterator[EmulatorThread]:
    with EmulatorThread() as server:
        yield server


def request(fmt: str, straddle: bool = False) -> str:
    return json.dumps({"emulator": {"format": fmt, "tokens": TOKENS, "straddle": straddle, "seed": 5}})


def expected_text() -> str:
    return generate_text(Behavior(tokens=TOKENS, seed=5))


@pytest.mark.parametrize("fmt", CONTAINER_FORMATS)
@pytest.mark.parametrize("straddle", [False, True])
def test_sagemaker_route(endpoint: EmulatorThread, fmt: str, straddle: bool) -> None:
    with sm.client(region_name="us-east-1", endpoint_url=endpoint.url, sign=False) as client:
        body = client.invoke_endpoint_with_response_stream(EndpointName="e", Body=request(fmt, straddle))[
            "Body"
        ]
        tokens = body.tokens()
        assert "".join(tokens) == expected_text()
    assert tokens.finish_reason == FINISH_REASONS[fmt]
    assert tokens.usage is not None and tokens.usage.output_tokens == TOKENS


@pytest.mark.parametrize("fmt", BEDROCK_FORMATS)
def test_bedrock_route(endpoint: EmulatorThread, fmt: str) -> None:
    with sm.bedrock_client(region_name="us-east-1", endpoint_url=endpoint.url, sign=False) as client:
        body = client.invoke_model_with_response_stream(modelId="m", body=request(fmt))["body"]
        tokens = body.tokens()
        assert "".join(tokens) == expected_text()
    assert tokens.format == fmt
    assert tokens.finish_reason == FINISH_REASONS[fmt]
    assert tokens.usage == Usage(PROMPT_TOKENS, TOKENS)


@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
def test_async_client(endpoint: EmulatorThread, fmt: str) -> None:
    async def run() -> tuple[str, str | None]:
        async with sm.async_client(region_name="us-east-1", endpoint_url=endpoint.url, sign=False) as client:
            response = await client.invoke_endpoint_with_response_stream(
                EndpointName="e", Body=request(fmt, True)
            )
            tokens = response["Body"].tokens()
            text = "".join([piece async for piece in tokens])
            return text, tokens.finish_reason

    assert asyncio.run(run()) == (expected_text(), FINISH_REASONS[fmt])


def test_line_iterator_over_boto3_events(endpoint: EmulatorThread) -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore import UNSIGNED
    from botocore.config import Config

    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint.url,
        config=Config(signature_version=UNSIGNED),
    )
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=request("lmi", straddle=True)
    )
    records = [json.loads(line) for line in lines.LineIterator(response["Body"])]
    assert "".join(r["token"]["text"] for r in records) == expected_text()
    assert records[-1]["details"]["finish_reason"] == "length"
