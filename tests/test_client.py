"""The sync client against the local endpoint: boto3's shape, typed errors, timeouts, retries, pooling."""

from __future__ import annotations

import io
import json
import os
import pickle
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from client_faults import FAULTS
from emulator_support import body, endpoint, wait_for

import evstream

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
import evstream.sagemaker as sm
from evstream.emulator import Behavior, EmulatorThread, generate_records, generate_text
from evstream.sagemaker.config import Config

__all__ = ["endpoint"]

KEYS = {"aws_access_key_id": "AKIDCLIENT", "aws_secret_access_key": "client-secret"}


def make_client(url: str, **kwargs: Any) -> sm.Client:  # type: ignore[name-defined]
    options: dict[str, Any] = {"region_name": "us-east-1", "endpoint_url": url, "backoff_base": 0.01, **KEYS}
    options.update(kwargs)
    return sm.client(**options)


@pytest.fixture()
def client(endpoint: EmulatorThread) -> Iterator[Any]:
    with make_client(endpoint.url) as runtime:
        yield runtime


# -- shape ---------------------------------------------------------------------------------------------


def test_same_events_as_boto3(endpoint: EmulatorThread, client: Any) -> None:
    boto3 = pytest.importorskip("boto3")
    reference = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=endpoint.url, **KEYS)
    request = {
        "EndpointName": "same",
        "Body": body(format="tgi", tokens=50, straddle=True),
        "CustomAttributes": "k=v",
    }
    theirs = reference.invoke_endpoint_with_response_stream(**request)
    ours = client.invoke_endpoint_with_response_stream(**request)
    assert list(ours["Body"]) == list(theirs["Body"])
    for key in ("ContentType", "InvokedProductionVariant", "CustomAttributes"):
        assert ours[key] == theirs[key]
    assert set(ours) == set(theirs)
    assert ours["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (
        ours["ResponseMetadata"]["RequestId"] == ours["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    )


def test_optional_members_absent_like_boto3(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(EndpointName="plain", Body=body(tokens=1))
    assert "CustomAttributes" not in response
    list(response["Body"])


@pytest.mark.parametrize("fmt", ["tgi", "lmi", "openai"])
def test_typed_views(client: Any, fmt: str) -> None:
    expected = generate_text(Behavior(tokens=64))
    stream = client.invoke_endpoint_with_response_stream(
        EndpointName="views", Body=body(format=fmt, tokens=64, straddle=True)
    )["Body"]
    assert "".join(stream.tokens()) == expected
    stream = client.invoke_endpoint_with_response_stream(
        EndpointName="views", Body=body(format=fmt, tokens=64, straddle=True)
    )["Body"]
    assert b"".join(stream.payloads()) == b"".join(generate_records(Behavior(format=fmt, tokens=64)))


def test_lines_and_sse_views(client: Any) -> None:
    stream = client.invoke_endpoint_with_response_stream(
        EndpointName="views", Body=body(format="lmi", tokens=20, straddle=True)
    )["Body"]
    lines = list(stream.lines())
    assert [json.loads(line)["token"]["text"] for line in lines] == [
        json.loads(r)["token"]["text"] for r in generate_records(Behavior(format="lmi", tokens=20))
    ]
    stream = client.invoke_endpoint_with_response_stream(
        EndpointName="views", Body=body(format="openai", tokens=5, straddle=True)
    )["Body"]
    events = list(stream.sse())
    assert events[-1].data == "[DONE]" and len(events) == 6
    text = client.invoke_endpoint_with_response_stream(
        EndpointName="views", Body=body(format="raw", tokens=30, straddle=True)
    )["Body"].text()
    assert "".join(text) == generate_text(Behavior(tokens=30))


def test_body_as_file_and_str(endpoint: EmulatorThread, client: Any) -> None:
    payload = body(tokens=2)
    for value in (io.BytesIO(payload), io.StringIO(payload.decode()), payload.decode(), bytearray(payload)):
        list(client.invoke_endpoint_with_response_stream(EndpointName="file", Body=value)["Body"])
        assert endpoint.emulator.requests[-1].body == payload


def test_every_parameter_becomes_its_header(endpoint: EmulatorThread, client: Any) -> None:
    params = {
        "ContentType": "application/json",
        "Accept": "application/jsonlines",
        "CustomAttributes": "a=b",
        "TargetVariant": "v1",
        "TargetContainerHostname": "c1",
        "InferenceId": "id-1",
        "InferenceComponentName": "ic-1",
        "SessionId": "s-1",
    }
    list(client.invoke_endpoint_with_response_stream(EndpointName="hdr", Body=b"{}", **params)["Body"])
    headers = endpoint.emulator.requests[-1].headers
    assert headers["content-type"] == "application/json"
    assert headers["x-amzn-sagemaker-accept"] == "application/jsonlines"
    assert headers["x-amzn-sagemaker-custom-attributes"] == "a=b"
    assert headers["x-amzn-sagemaker-target-variant"] == "v1"
    assert headers["x-amzn-sagemaker-target-container-hostname"] == "c1"
    assert headers["x-amzn-sagemaker-inference-id"] == "id-1"
    assert headers["x-amzn-sagemaker-inference-component"] == "ic-1"
    assert headers["x-amzn-sagemaker-session-id"] == "s-1"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"CustomAttributes": "x" * 1025}, "CustomAttributes is 1025 characters long; the maximum is 1024"),
        ({"CustomAttributes": "line\r\n\tX-Evil: 1"}, "Invalid value for parameter CustomAttributes"),
        ({"ContentType": "x\r\n\tX-Evil: 1"}, "Invalid value for parameter ContentType"),
        ({"Accept": "a\x00b"}, "Invalid value for parameter Accept"),
        ({"CustomAttributes": "café"}, "Invalid value for parameter CustomAttributes"),
        ({"InferenceId": ""}, "InferenceId must be 1-64 characters"),
        ({"InferenceId": "i" * 65}, "InferenceId is 65 characters long; the maximum is 64"),
        ({"InferenceId": " leading"}, "Invalid InferenceId"),
        ({"EndpointName": "bad_name"}, "Invalid EndpointName 'bad_name'"),
        ({"EndpointName": "-x"}, "Invalid EndpointName"),
        ({"TargetVariant": "a" * 64}, "TargetVariant is 64 characters long"),
        ({"SessionId": 5}, "Invalid type for parameter SessionId"),
        ({"Body": b"x" * (6 * 1024 * 1024 + 1)}, "Body is over the service's limit"),
        ({"Body": 3.5}, "Invalid type for parameter Body"),
        ({"Colour": "red"}, "Unknown parameter\\(s\\) Colour"),
    ],
)
def test_parameters_validated_before_sending(
    endpoint: EmulatorThread, client: Any, params: dict[str, Any], message: str
) -> None:
    before = len(endpoint.emulator.requests)
    request = {"EndpointName": "valid", "Body": b"{}", **params}
    with pytest.raises(sm.ParamValidationError, match=message):
        client.invoke_endpoint_with_response_stream(**request)
    assert len(endpoint.emulator.requests) == before


def test_missing_required_parameters(client: Any) -> None:
    with pytest.raises(sm.ParamValidationError, match='Missing required parameter in input: "EndpointName"'):
        client.invoke_endpoint_with_response_stream(Body=b"")
    with pytest.raises(sm.ParamValidationError, match='Missing required parameter in input: "Body"'):
        client.invoke_endpoint_with_response_stream(EndpointName="x")


# -- errors --------------------------------------------------------------------------------------------


def read_all(response: dict[str, Any]) -> list[bytes]:
    parts: list[bytes] = []
    for event in response["Body"]:
        parts.append(event["PayloadPart"]["Bytes"])
    return parts


def test_model_stream_error_keeps_error_code(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e",
        Body=body(format="raw", tokens=9, fault="model-stream-error", after=4, error_code="StreamBroken"),
    )
    parts: list[bytes] = []
    with pytest.raises(sm.ModelStreamError) as info:
        for event in response["Body"]:
            parts.append(event["PayloadPart"]["Bytes"])
    assert len(parts) == 4
    assert info.value.error_code == "StreamBroken"
    assert info.value.message == "Emulated model stream error"
    assert info.value.response["Error"] == {
        "Code": "ModelStreamError",
        "Message": "Emulated model stream error",
        "ErrorCode": "StreamBroken",
    }
    assert not info.value.retryable
    assert info.value.request_id == response["ResponseMetadata"]["RequestId"]


def test_internal_stream_failure_after_events_is_raised_not_retried(
    endpoint: EmulatorThread, client: Any
) -> None:
    before = len(endpoint.emulator.requests)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=body(format="raw", tokens=9, fault="internal-stream-failure", after=2)
    )
    with pytest.raises(sm.InternalStreamFailure) as info:
        read_all(response)
    assert info.value.retryable
    assert len(endpoint.emulator.requests) == before + 1


def test_internal_stream_failure_before_first_event_is_retried(endpoint: EmulatorThread, client: Any) -> None:
    before = len(endpoint.emulator.requests)
    request_body = body(
        format="raw", tokens=6, fault="internal-stream-failure", after=0, fault_times=2, seed=11
    )
    response = client.invoke_endpoint_with_response_stream(EndpointName="e", Body=request_body)
    assert b"".join(read_all(response)) == generate_text(Behavior(tokens=6, seed=11)).encode()
    assert len(endpoint.emulator.requests) == before + 3


def test_unmodelled_error_event(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=body(format="raw", tokens=5, fault="error-event", after=1)
    )
    with pytest.raises(sm.UnmodelledStreamError) as info:
        read_all(response)
    assert info.value.code == "EmulatedError"
    assert info.value.message == "Emulated unmodelled error"
    assert isinstance(info.value, sm.StreamError)


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("validation", sm.ValidationError, 400),
        ("model-error", sm.ModelError, 424),
        ("service-unavailable", sm.ServiceUnavailable, 503),
        ("internal-failure", sm.InternalFailure, 500),
        ("throttling", sm.ThrottlingException, 400),
    ],
)
def test_http_errors_are_typed(
    endpoint: EmulatorThread, fault: str, error: type[Exception], status: int
) -> None:
    with make_client(endpoint.url, max_attempts=1) as runtime, pytest.raises(error) as info:
        runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(fault=fault))
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status  # type: ignore[attr-defined]
    assert isinstance(info.value, sm.ServiceError)
    assert isinstance(info.value, getattr(runtime.exceptions, error.__name__))
    if error is sm.ModelError:
        assert info.value.original_status_code == 500  # type: ignore[attr-defined]
        assert info.value.original_message == "model container failed"  # type: ignore[attr-defined]
        assert info.value.log_stream_arn.startswith("arn:aws:logs:")  # type: ignore[attr-defined]


def test_retries_with_backoff_then_succeeds(endpoint: EmulatorThread, client: Any) -> None:
    request_body = body(format="raw", tokens=3, fault="service-unavailable", fault_times=2, seed=21)
    response = client.invoke_endpoint_with_response_stream(EndpointName="e", Body=request_body)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert b"".join(read_all(response)) == generate_text(Behavior(tokens=3, seed=21)).encode()


def test_retries_are_bounded(endpoint: EmulatorThread) -> None:
    before = len(endpoint.emulator.requests)
    with make_client(endpoint.url, max_attempts=2) as runtime, pytest.raises(sm.ThrottlingException):
        runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(fault="throttling"))
    assert len(endpoint.emulator.requests) == before + 2


def test_validation_error_is_not_retried(endpoint: EmulatorThread, client: Any) -> None:
    before = len(endpoint.emulator.requests)
    with pytest.raises(sm.ValidationError):
        client.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(fault="validation"))
    assert len(endpoint.emulator.requests) == before + 1


def test_frame_cut_short_raises(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=body(format="raw", tokens=9, fault="truncate", after=3)
    )
    with pytest.raises(sm.IncompleteStream) as info:
        read_all(response)
    assert isinstance(info.value, evstream.TruncatedStream)
    assert "inside an event-stream frame" in str(info.value)


def test_body_cut_short_raises(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=body(format="raw", tokens=9, fault="disconnect", after=3)
    )
    with pytest.raises(sm.IncompleteStream, match="before the end of the chunked body"):
        read_all(response)


def test_corrupt_frame_raises_codec_error(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=body(format="raw", tokens=9, fault="corrupt", after=2)
    )
    with pytest.raises(evstream.MessageChecksumMismatch):
        read_all(response)


def test_huge_length_is_refused_up_front(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=body(format="raw", tokens=9, fault="huge-length", after=2)
    )
    with pytest.raises(evstream.InvalidPayloadLength):
        read_all(response)


# -- timeouts ------------------------------------------------------------------------------------------


def test_first_byte_timeout(endpoint: EmulatorThread) -> None:
    with make_client(endpoint.url, first_byte_timeout=0.3, max_attempts=1) as runtime:
        start = time.monotonic()
        with pytest.raises(sm.FirstByteTimeout, match=r"first_byte_timeout=0\.3 s"):
            runtime.invoke_endpoint_with_response_stream(
                EndpointName="e", Body=body(fault="stall-headers", stall=2)
            )
        assert time.monotonic() - start < 2


def test_first_event_timeout_after_headers(endpoint: EmulatorThread) -> None:
    with make_client(endpoint.url, first_byte_timeout=0.3, max_attempts=1) as runtime:
        response = runtime.invoke_endpoint_with_response_stream(
            EndpointName="e", Body=body(format="raw", tokens=3, fault="stall", after=0, stall=2)
        )
        with pytest.raises(sm.FirstByteTimeout):
            read_all(response)


def test_event_timeout(endpoint: EmulatorThread) -> None:
    with make_client(endpoint.url, event_timeout=0.3, first_byte_timeout=5) as runtime:
        response = runtime.invoke_endpoint_with_response_stream(
            EndpointName="e", Body=body(format="raw", tokens=9, fault="stall", after=2, stall=2)
        )
        parts: list[bytes] = []
        start = time.monotonic()
        with pytest.raises(sm.EventTimeout, match=r"event_timeout=0\.3 s") as info:
            for event in response["Body"]:
                parts.append(event["PayloadPart"]["Bytes"])
        assert len(parts) == 2
        assert time.monotonic() - start < 2
        assert isinstance(info.value, TimeoutError)
        assert not info.value.retryable


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime = make_client(f"http://127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(sm.ConnectionFailed, match="Could not connect"):
        runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=b"{}")


def test_connect_timeout() -> None:
    # A listener that never accepts, its backlog filled: further SYNs go unanswered.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
                fillers.append(filler)
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            with make_client(url, connect_timeout=0.3, max_attempts=1) as runtime:
                start = time.monotonic()
                with pytest.raises((sm.ConnectTimeout, sm.FirstByteTimeout)) as info:
                    runtime.invoke_endpoint_with_response_stream(
                        EndpointName="e",
                        Body=b"{}",
                    )
                assert time.monotonic() - start < 3
                if isinstance(info.value, sm.FirstByteTimeout):
                    pytest.skip("this kernel completed the handshake for a full backlog")
                assert info.value.retryable
        finally:
            for filler in fillers:
                filler.close()


# -- connections ---------------------------------------------------------------------------------------


def test_connection_reused_across_calls(endpoint: EmulatorThread) -> None:
    with make_client(endpoint.url) as runtime:
        before = endpoint.emulator.accepted_connections
        for _ in range(20):
            read_all(runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(tokens=3)))
        assert endpoint.emulator.accepted_connections - before == 1


@pytest.fixture()
def own_endpoint() -> Iterator[EmulatorThread]:
    """An endpoint of the test's own, so connections of other tests (stalls) do not count."""
    with EmulatorThread() as server:
        yield server


def test_early_close_releases_the_connection(own_endpoint: EmulatorThread) -> None:
    endpoint = own_endpoint
    with make_client(endpoint.url) as runtime:
        response = runtime.invoke_endpoint_with_response_stream(
            EndpointName="e", Body=body(format="raw", tokens=1000, rate=200)
        )
        stream = response["Body"]
        events = iter(stream)
        next(events)
        next(events)
        stream.close()
        assert wait_for(lambda: endpoint.emulator.open_connections == 0)
        assert list(events) == []  # a closed stream yields nothing more
        # The pool still works after the closed connection.
        assert read_all(runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(tokens=2)))


def test_context_manager_closes_stream(own_endpoint: EmulatorThread) -> None:
    endpoint = own_endpoint
    with make_client(endpoint.url) as runtime:
        response = runtime.invoke_endpoint_with_response_stream(
            EndpointName="e", Body=body(format="raw", tokens=1000, rate=200)
        )
        with response["Body"] as stream:
            next(iter(stream))
        assert wait_for(lambda: endpoint.emulator.open_connections == 0)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("streams", [300, pytest.param(10_000, marks=pytest.mark.slow)])
def test_no_leak_over_sequential_streams(own_endpoint: EmulatorThread, streams: int) -> None:
    endpoint = own_endpoint
    with make_client(endpoint.url) as runtime:
        read_all(runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(tokens=2)))
        fds = _open_fds()
        deadline = time.monotonic() + 60
        for n in range(streams):
            response = runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(tokens=2))
            if n % 3 == 0:
                response["Body"].close()  # some closed early, the rest read to the end
            else:
                assert len(read_all(response)) == 2
            assert time.monotonic() < deadline
        assert _open_fds() <= fds + 2
    assert wait_for(lambda: endpoint.emulator.open_connections == 0)


# -- configuration -------------------------------------------------------------------------------------


def test_client_pickles_and_rebuilds(endpoint: EmulatorThread) -> None:
    runtime = make_client(endpoint.url, event_timeout=7.0)
    clone = pickle.loads(pickle.dumps(runtime))
    assert clone.config == runtime.config and clone.config.event_timeout == 7.0
    assert read_all(clone.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(tokens=2)))
    assert pickle.loads(pickle.dumps(runtime.config)) == runtime.config
    assert "client-secret" not in repr(runtime.config)


def test_endpoint_resolution() -> None:
    keys = {**KEYS}
    assert (
        sm.client(region_name="us-west-2", **keys).endpoint_url
        == "https://runtime.sagemaker.us-west-2.amazonaws.com"
    )
    fips = sm.client(region_name="us-east-1", use_fips_endpoint=True, **keys)
    assert fips.endpoint_url == "https://runtime-fips.sagemaker.us-east-1.amazonaws.com"
    assert sm.client(region_name="cn-north-1", **keys).endpoint_url.endswith(".amazonaws.com.cn")
    assert sm.client(region_name="eu-west-1", endpoint_url="https://vpce.example/", **keys).endpoint_url == (
        "https://vpce.example"
    )


def test_botocore_config_is_accepted() -> None:
    from botocore.config import Config as BotocoreConfig

    config = BotocoreConfig(
        connect_timeout=3, read_timeout=9, max_pool_connections=5, retries={"max_attempts": 4}
    )
    runtime = sm.client(region_name="us-east-1", config=config, **KEYS)
    assert (runtime.config.connect_timeout, runtime.config.first_byte_timeout) == (3, 9)
    assert (runtime.config.max_pool_connections, runtime.config.max_attempts) == (5, 5)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="event_timeout must be a positive number of seconds"):
        Config(event_timeout=0)
    with pytest.raises(ValueError, match="max_attempts"):
        Config(max_attempts=0)


def test_request_matches_boto3_for_every_parameter(endpoint: EmulatorThread, client: Any) -> None:
    """botocore's own serializer is the reference for path and headers."""
    boto3 = pytest.importorskip("boto3")
    reference = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=endpoint.url, **KEYS)
    params = {
        "EndpointName": "every-param",
        "Body": body(tokens=1),
        "ContentType": "application/json",
        "Accept": "text/event-stream",
        "CustomAttributes": "k=v; trace=on",
        "TargetVariant": "variant-a",
        "TargetContainerHostname": "host-b",
        "InferenceId": "id 7",
        "InferenceComponentName": "component-c",
        "SessionId": "session-d",
    }
    model = reference.meta.service_model.operation_model("InvokeEndpointWithResponseStream")
    if "PrefixAwareId" in model.input_shape.members:
        params["PrefixAwareId"] = "prefix-1"
    list(reference.invoke_endpoint_with_response_stream(**params)["Body"])
    theirs = endpoint.emulator.requests[-1]
    list(client.invoke_endpoint_with_response_stream(**params)["Body"])
    ours = endpoint.emulator.requests[-1]

    def relevant(headers: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k.startswith("x-amzn-sagemaker") or k == "content-type"}

    assert ours.path == theirs.path
    assert ours.body == theirs.body
    assert relevant(ours.headers) == relevant(theirs.headers)
    assert len(relevant(ours.headers)) == len(params) - 2  # all but EndpointName and Body


class _FixedLengthHandler(socketserver.StreamRequestHandler):
    """Answers with event-stream frames in a body with a Content-Length instead of chunks."""

    frames = b"".join(
        evstream.encode({":event-type": "PayloadPart", ":message-type": "event"}, b"part%d" % i)
        for i in range(5)
    )
    claimed = len(frames)

    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b""):
            pass
        self.rfile.read(2)  # the b"{}" body
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
            f"Content-Length: {self.claimed}\r\nConnection: close\r\n\r\n"
        )
        self.wfile.write(head.encode() + self.frames)


@pytest.mark.parametrize("short", [False, True])
def test_body_with_content_length(short: bool) -> None:
    handler = type(
        "Handler", (_FixedLengthHandler,), {"claimed": _FixedLengthHandler.claimed + (7 if short else 0)}
    )
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            runtime = make_client(f"http://127.0.0.1:{server.server_address[1]}", max_attempts=1)
            stream = runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=b"{}")["Body"]
            if short:
                with pytest.raises(sm.IncompleteStream, match="cut short"):
                    list(stream.payloads())
            else:
                assert list(stream.payloads()) == [b"part%d" % i for i in range(5)]
        finally:
            server.shutdown()


@pytest.mark.parametrize(("fault", "error"), FAULTS)
def test_faults_give_typed_errors_and_release_the_connection(
    own_endpoint: EmulatorThread, fault: str, error: type[Exception]
) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0

    with make_client(own_endpoint.url, event_timeout=0.3) as runtime:
        # Warm: one pooled connection (and its server side, in this process) exists before and after.
        assert (
            len(read_all(runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(tokens=2))))
            == 2
        )
        fds = open_fds()
        start = time.monotonic()
        response = runtime.invoke_endpoint_with_response_stream(
            EndpointName="e", Body=body(format="raw", tokens=8, fault=fault, after=3, stall=1)
        )
        with pytest.raises(error):
            read_all(response)
        assert time.monotonic() - start < 1.5
        # Released: the next call works, and no descriptor is left behind.
        assert (
            len(read_all(runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=body(tokens=2))))
            == 2
        )
        assert wait_for(lambda: open_fds() <= fds)
