"""The local endpoint, checked with the real boto3 client (the independent side of these tests)."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_support import body, endpoint, endpoint_loop, endpoint_on_each_loop, wait_for

import evstream
from evstream.emulator import Behavior, Emulator, EmulatorThread, generate_records, generate_text, split_parts

boto3 = pytest.importorskip("boto3")
botocore_exceptions = pytest.importorskip("botocore.exceptions")

__all__ = ["endpoint", "endpoint_loop", "endpoint_on_each_loop"]

KEYS = {"aws_access_key_id": "AKIDEMULATOR", "aws_secret_access_key": "emulator-secret"}


def boto_client(url: str, **kwargs: Any) -> Any:
    from botocore.config import Config

    options = {**KEYS, **kwargs}
    config = Config(retries={"max_attempts": 0}, read_timeout=10, connect_timeout=5)
    return boto3.client(
        "sagemaker-runtime", region_name="us-east-1", endpoint_url=url, config=config, **options
    )


def stream_bytes(response: dict[str, Any]) -> bytes:
    return b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"])


# -- generators -------------------------------------------------------------------------------------


def test_formats_carry_the_same_text() -> None:
    text = generate_text(Behavior(tokens=40))
    assert "🙂" in text and "\n" in text  # multi-byte characters and newlines inside tokens
    tgi = [json.loads(r[5:]) for r in generate_records(Behavior(format="tgi", tokens=40))]
    assert "".join(r["token"]["text"] for r in tgi) == text
    assert tgi[-1]["generated_text"] == text and tgi[0]["generated_text"] is None
    lmi = [json.loads(r) for r in generate_records(Behavior(format="lmi", tokens=40))]
    assert "".join(r["token"]["text"] for r in lmi) == text
    openai = list(generate_records(Behavior(format="openai", tokens=40)))
    assert openai[-1] == b"data: [DONE]\n\n"
    assert "".join(json.loads(r[6:])["choices"][0]["delta"]["content"] for r in openai[:-1]) == text
    assert b"".join(generate_records(Behavior(format="raw", tokens=40))).decode() == text


def test_straddled_parts_cut_records_and_characters() -> None:
    behavior = Behavior(format="tgi", tokens=60, straddle=True)
    parts = list(split_parts(behavior))
    assert b"".join(parts) == b"".join(generate_records(behavior))
    undecodable = 0
    for part in parts:
        try:
            part.decode()
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable > 0  # some part ends inside a character
    assert any(b"\n" not in p and not p.startswith(b"data:") for p in parts)


def test_behavior_rejects_unknown_options() -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        Behavior(format="xml")
    with pytest.raises(ValueError, match="fault must be one of"):
        Behavior(fault="meteor")
    with pytest.raises(ValueError, match="unknown emulator options: colour"):
        Behavior().replace({"colour": "red"})


# -- the endpoint through boto3 -----------------------------------------------------------------------


def test_the_endpoint_runs_on_the_loop_it_was_given(
    endpoint_on_each_loop: EmulatorThread, endpoint_loop: str
) -> None:
    kind = type(endpoint_on_each_loop.loop).__module__.split(".")[0]
    assert kind == endpoint_loop


@pytest.mark.parametrize("fmt", ["tgi", "lmi", "openai", "raw"])
def test_boto3_streams_from_the_endpoint(endpoint_on_each_loop: EmulatorThread, fmt: str) -> None:
    client = boto_client(endpoint_on_each_loop.url)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="my-endpoint",
        Body=body(format=fmt, tokens=30, straddle=True),
        CustomAttributes="trace=1",
    )
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    assert response["ResponseMetadata"]["HTTPHeaders"]["transfer-encoding"] == "chunked"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "trace=1"
    assert (
        response["ContentType"]
        == {
            "tgi": "text/event-stream",
            "lmi": "application/jsonlines",
            "openai": "text/event-stream",
            "raw": "text/plain; charset=utf-8",
        }[fmt]
    )
    assert stream_bytes(response) == b"".join(generate_records(Behavior(format=fmt, tokens=30)))


def test_every_request_parameter_is_recorded(endpoint: EmulatorThread) -> None:
    client = boto_client(endpoint.url)
    params = {
        "ContentType": "application/json",
        "Accept": "text/event-stream",
        "CustomAttributes": "a=b; c=d",
        "TargetVariant": "variant-1",
        "TargetContainerHostname": "container-2",
        "InferenceId": "inference 42",
        "InferenceComponentName": "component-3",
        "SessionId": "session-4",
    }
    client.invoke_endpoint_with_response_stream(EndpointName="params", Body=body(tokens=1), **params)
    request = endpoint.emulator.requests[-1]
    assert request.path == "/endpoints/params/invocations-response-stream"
    assert {
        k: request.headers[k] for k in request.headers if k.startswith("x-amzn") or k == "content-type"
    } == {
        "content-type": "application/json",
        "x-amzn-sagemaker-accept": "text/event-stream",
        "x-amzn-sagemaker-custom-attributes": "a=b; c=d",
        "x-amzn-sagemaker-target-variant": "variant-1",
        "x-amzn-sagemaker-target-container-hostname": "container-2",
        "x-amzn-sagemaker-inference-id": "inference 42",
        "x-amzn-sagemaker-inference-component": "component-3",
        "x-amzn-sagemaker-session-id": "session-4",
    }


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 16, 33, 100])
def test_frames_split_across_http_chunks(endpoint_on_each_loop: EmulatorThread, chunk_bytes: int) -> None:
    client = boto_client(endpoint_on_each_loop.url)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="split", Body=body(format="raw", tokens=12, chunk_bytes=chunk_bytes)
    )
    assert stream_bytes(response) == generate_text(Behavior(tokens=12)).encode()


def test_many_frames_per_chunk(endpoint_on_each_loop: EmulatorThread) -> None:
    client = boto_client(endpoint_on_each_loop.url)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="grouped", Body=body(format="raw", tokens=200, chunk_events=64)
    )
    assert stream_bytes(response) == generate_text(Behavior(tokens=200)).encode()


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("model-stream-error", "ModelStreamError"),
        ("internal-stream-failure", "InternalStreamFailure"),
        ("error-event", "EmulatedError"),
    ],
)
def test_in_stream_errors_reach_boto3(endpoint_on_each_loop: EmulatorThread, fault: str, code: str) -> None:
    client = boto_client(endpoint_on_each_loop.url)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="faulty", Body=body(format="raw", tokens=10, fault=fault, after=3)
    )
    events = []
    with pytest.raises(botocore_exceptions.EventStreamError) as info:
        for event in response["Body"]:
            events.append(event)
    assert len(events) == 3
    assert info.value.response["Error"]["Code"] == code


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("validation", 400, "ValidationError"),
        ("model-error", 424, "ModelError"),
        ("service-unavailable", 503, "ServiceUnavailable"),
        ("internal-failure", 500, "InternalFailure"),
        ("throttling", 400, "ThrottlingException"),
    ],
)
def test_http_errors_reach_boto3(
    endpoint_on_each_loop: EmulatorThread, fault: str, status: int, code: str
) -> None:
    client = boto_client(endpoint_on_each_loop.url)
    with pytest.raises(botocore_exceptions.ClientError) as info:
        client.invoke_endpoint_with_response_stream(EndpointName="faulty", Body=body(fault=fault))
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if code == "ModelError":
        assert info.value.response["OriginalStatusCode"] == 500
        assert info.value.response["LogStreamArn"].startswith("arn:aws:logs:")


def test_fault_times_fails_only_the_first_attempts(endpoint: EmulatorThread) -> None:
    client = boto_client(endpoint.url)
    request_body = body(fault="internal-failure", fault_times=1, tokens=2, seed=991)
    with pytest.raises(botocore_exceptions.ClientError):
        client.invoke_endpoint_with_response_stream(EndpointName="once", Body=request_body)
    response = client.invoke_endpoint_with_response_stream(EndpointName="once", Body=request_body)
    assert stream_bytes(response)


def test_truncated_and_disconnected_bodies(endpoint_on_each_loop: EmulatorThread) -> None:
    """boto3 ends quietly on a frame cut short (what evstream's client must not do) and raises a raw
    urllib3 error on a lost connection: the endpoint produces both shapes."""
    client = boto_client(endpoint_on_each_loop.url)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="cut", Body=body(format="raw", tokens=10, fault="truncate", after=4)
    )
    assert len(list(response["Body"])) == 4
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="cut", Body=body(format="raw", tokens=10, fault="disconnect", after=4)
    )
    with pytest.raises(Exception, match=r"ended prematurely|IncompleteRead|Connection broken"):
        list(response["Body"])


def test_non_streaming_invocation(endpoint: EmulatorThread) -> None:
    client = boto_client(endpoint.url)
    response = client.invoke_endpoint(EndpointName="whole", Body=body(format="lmi", tokens=5))
    assert response["ContentType"] == "application/jsonlines"
    assert response["Body"].read() == b"".join(generate_records(Behavior(format="lmi", tokens=5)))


def test_ping_and_unknown_route(endpoint: EmulatorThread) -> None:
    with urllib.request.urlopen(endpoint.url + "/ping", timeout=5) as answer:
        assert answer.status == 200
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(endpoint.url + "/nowhere", data=b"{}"), timeout=5)
    assert info.value.code == 404


def test_binds_loopback_by_default() -> None:
    assert Emulator().host == "127.0.0.1"


def test_sigv4_verification() -> None:
    with EmulatorThread(credentials={KEYS["aws_access_key_id"]: KEYS["aws_secret_access_key"]}) as server:
        client = boto_client(server.url)
        response = client.invoke_endpoint_with_response_stream(EndpointName="signed", Body=body(tokens=3))
        assert stream_bytes(response)
        assert server.emulator.requests[-1].signature_valid is True
        forged = boto_client(server.url, aws_secret_access_key="not-the-secret")
        with pytest.raises(botocore_exceptions.ClientError) as info:
            forged.invoke_endpoint_with_response_stream(EndpointName="signed", Body=body(tokens=3))
        assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert server.emulator.requests[-1].signature_valid is False


@pytest.fixture()
def proxied() -> Iterator[tuple[EmulatorThread, EmulatorThread]]:
    with EmulatorThread() as container, EmulatorThread(upstream=container.url) as front:
        yield container, front


def test_proxy_mode_fronts_a_container(proxied: tuple[EmulatorThread, EmulatorThread]) -> None:
    container, front = proxied
    client = boto_client(front.url)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="proxied", Body=body(format="lmi", tokens=8), CustomAttributes="x=1"
    )
    assert response["ContentType"] == "application/jsonlines"
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"]]
    # One PayloadPart per chunk the container sent, as SageMaker does.
    assert parts == list(generate_records(Behavior(format="lmi", tokens=8)))
    upstream = container.emulator.requests[-1]
    assert upstream.path == "/invocations"
    assert upstream.headers["x-amzn-sagemaker-custom-attributes"] == "x=1"
    whole = client.invoke_endpoint(EndpointName="proxied", Body=body(format="raw", tokens=4))
    assert whole["Body"].read() == generate_text(Behavior(tokens=4)).encode()


def test_proxy_mode_reports_container_errors() -> None:
    with EmulatorThread() as container, EmulatorThread(upstream=container.url + "/") as front:
        client = boto_client(front.url)
        # The container route refuses unknown options with a 400: the front answers ModelError 424.
        with pytest.raises(botocore_exceptions.ClientError) as info:
            client.invoke_endpoint_with_response_stream(EndpointName="p", Body=body(colour="red"))
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 400


def test_stall_closes_on_server_stop() -> None:
    server = EmulatorThread().start()
    client = boto_client(server.url)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="stall", Body=body(format="raw", tokens=5, fault="stall", after=1, stall=60)
    )
    events = iter(response["Body"])
    assert next(events)
    assert wait_for(lambda: server.emulator.open_connections == 1)
    server.stop()  # must not wait for the 60 s stall
    assert server.emulator.open_connections == 0


def test_records_are_bounded() -> None:
    emulator = Emulator(record=3)
    assert emulator.requests.maxlen == 3


def test_event_frames_are_real_event_stream(endpoint: EmulatorThread) -> None:
    raw = io.BytesIO()
    request = urllib.request.Request(
        endpoint.url + "/endpoints/raw/invocations-response-stream", data=body(format="raw", tokens=3)
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        raw.write(answer.read())
    messages = evstream.decode(raw.getvalue())
    assert [m.headers for m in messages] == [
        {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}
    ] * 3
    assert b"".join(m.payload for m in messages).decode() == generate_text(Behavior(tokens=3))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"emulator": "tokens=3"}',
        b'{"parameters": [1]}',
        b'{"emulator": {"tokens": "x"}}',
        b'{"emulator": {"tokens": 1.5}}',
        b'{"emulator": {"tokens": true}}',
        b'{"emulator": {"straddle": 1}}',
        b'{"emulator": {"tokens": 100000000}}',  # a whole response of gigabytes
        b'{"emulator": {"chunk_events": 1000000}}',  # every frame held for one chunk
    ],
)
def test_bad_options_are_a_validation_error(endpoint: EmulatorThread, payload: bytes) -> None:
    client = boto_client(endpoint.url)
    with pytest.raises(botocore_exceptions.ClientError) as info:
        client.invoke_endpoint_with_response_stream(EndpointName="bad", Body=payload)
    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_any_body_is_a_model_input(endpoint: EmulatorThread) -> None:
    client = boto_client(endpoint.url)
    for payload in (b"", b"plain text", b"[1, 2]", b"{not json", b'{"a":' * 100_000):
        response = client.invoke_endpoint_with_response_stream(EndpointName="any", Body=payload)
        assert stream_bytes(response) == b"".join(generate_records(Behavior()))
