"""Bedrock InvokeModelWithResponseStream through the same machinery, checked against boto3."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from emulator_support import body, endpoint

import evstream

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
import evstream.sagemaker as sm
from evstream.emulator import Behavior, EmulatorThread, generate_records, generate_text
from evstream.sagemaker.bedrock import decode_chunk

__all__ = ["endpoint"]

KEYS = {"aws_access_key_id": "AKIDBEDROCK", "aws_secret_access_key": "bedrock-secret"}
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def make_client(url: str, **kwargs: Any) -> Any:
    return sm.bedrock_client(region_name="us-east-1", endpoint_url=url, backoff_base=0.01, **KEYS, **kwargs)


def test_same_events_as_boto3(endpoint: EmulatorThread) -> None:
    boto3 = pytest.importorskip("boto3")
    request = {
        "modelId": MODEL,
        "body": body(format="lmi", tokens=30, straddle=True),
        "accept": "application/json",
    }
    reference = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=endpoint.url, **KEYS)
    theirs = reference.invoke_model_with_response_stream(**request)
    ours = make_client(endpoint.url).invoke_model_with_response_stream(**request)
    assert ours["contentType"] == theirs["contentType"] == "application/jsonlines"
    their_events = list(theirs["body"])
    assert list(ours["body"]) == their_events
    assert b"".join(e["chunk"]["bytes"] for e in their_events) == b"".join(
        generate_records(Behavior(format="lmi", tokens=30))
    )
    recorded = endpoint.emulator.requests[-1]
    assert recorded.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream"
    assert recorded.headers["x-amzn-bedrock-accept"] == "application/json"


def test_signed_for_bedrock() -> None:
    with EmulatorThread(credentials={KEYS["aws_access_key_id"]: KEYS["aws_secret_access_key"]}) as server:
        runtime = make_client(server.url)
        response = runtime.invoke_model_with_response_stream(
            modelId=MODEL, body=body(format="openai", tokens=5)
        )
        assert "".join(response["body"].tokens()) == generate_text(Behavior(tokens=5))
        request = server.emulator.requests[-1]
        assert request.signature_valid is True
        assert "/us-east-1/bedrock/aws4_request" in request.headers["authorization"]


def test_in_stream_and_http_errors(endpoint: EmulatorThread) -> None:
    runtime = make_client(endpoint.url, max_attempts=1)
    response = runtime.invoke_model_with_response_stream(
        modelId=MODEL, body=body(format="raw", tokens=5, fault="model-stream-error", after=2)
    )
    parts: list[bytes] = []
    with pytest.raises(sm.ModelStreamError) as info:
        for part in response["body"].payloads():
            parts.append(part)
    assert len(parts) == 2
    assert info.value.original_status_code == 500 and info.value.original_message == "model failed"
    with pytest.raises(sm.ModelError) as model_error:
        runtime.invoke_model_with_response_stream(modelId=MODEL, body=body(fault="model-error"))
    assert model_error.value.code == "ModelErrorException" and model_error.value.original_status_code == 500
    with pytest.raises(sm.ThrottlingException):
        runtime.invoke_model_with_response_stream(modelId=MODEL, body=body(fault="throttling"))
    with pytest.raises(sm.ValidationError):
        runtime.invoke_model_with_response_stream(modelId=MODEL, body=body(fault="validation"))


def test_internal_server_exception_before_first_event_is_retried(endpoint: EmulatorThread) -> None:
    runtime = make_client(endpoint.url)
    request_body = body(
        format="raw", tokens=3, fault="internal-stream-failure", after=0, fault_times=1, seed=77
    )
    response = runtime.invoke_model_with_response_stream(modelId=MODEL, body=request_body)
    assert b"".join(response["body"].payloads()) == generate_text(Behavior(tokens=3, seed=77)).encode()


def test_async_bedrock(endpoint: EmulatorThread) -> None:

    async def main() -> bytes:
        async with sm.bedrock_async_client(
            region_name="us-east-1", endpoint_url=endpoint.url, **KEYS
        ) as runtime:
            response = await runtime.invoke_model_with_response_stream(
                modelId=MODEL, body=body(format="raw", tokens=9)
            )
            return b"".join([event["chunk"]["bytes"] async for event in response["body"]])

    assert asyncio.run(main()) == generate_text(Behavior(tokens=9)).encode()


def test_parameters_validated() -> None:
    runtime = sm.bedrock_client(region_name="us-east-1", **KEYS)
    assert runtime.endpoint_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    with pytest.raises(sm.ParamValidationError, match='Missing required parameter in input: "modelId"'):
        runtime.invoke_model_with_response_stream(body=b"{}")
    with pytest.raises(sm.ParamValidationError, match="Invalid trace 'on'"):
        runtime.invoke_model_with_response_stream(modelId=MODEL, body=b"{}", trace="on")
    with pytest.raises(sm.ParamValidationError, match="Invalid guardrailVersion"):
        runtime.invoke_model_with_response_stream(modelId=MODEL, body=b"{}", guardrailVersion="v1")
    with pytest.raises(sm.ParamValidationError, match="Unknown parameter"):
        runtime.invoke_model_with_response_stream(modelId=MODEL, body=b"{}", EndpointName="x")


def test_malformed_chunk_is_an_error() -> None:
    assert decode_chunk(json.dumps({"bytes": base64.b64encode(b"ok").decode()}).encode()) == b"ok"
    with pytest.raises(sm.IncompleteStream, match="Malformed Bedrock chunk"):
        decode_chunk(b'{"no": "bytes"}')
    with pytest.raises(evstream.TruncatedStream):
        decode_chunk(b'{"bytes": "***"}')
