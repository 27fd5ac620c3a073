"""The sync HTTP/2 bidirectional client against the local endpoint (TLS, every signature checked)."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from http2_support import CREDENTIALS, KEYS, behaving, last_exchange, local
from http2_support import ca_file as ca_file  # the fixtures
from http2_support import endpoint as endpoint
from http2_support import tls as tls

from evstream import Timestamp, encode
from evstream.emulator.http2 import Bidi, Http2EndpointThread
from evstream.sagemaker import async_http2_client, errors
from evstream.sagemaker._http2_ops import sagemaker_http2_endpoint
from evstream.sagemaker.http2 import (
    InputValidationError,
    InternalServerError,
    SendTimeout,
    ServiceUnavailableError,
    StreamReset,
    bedrock_http2_client,
    http2_client,
)

COUNT = 1000


def client(server: Http2EndpointThread, ca: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return http2_client(**local(server, ca, **kwargs))


def sender(stream, messages: list[bytes], first_echo: threading.Event | None = None, **members: str):  # type: ignore[no-untyped-def]
    """Send in a thread; with ``first_echo``, the second half only once an answer has been read, so the
    exchange is interleaved whatever the scheduling."""

    def run() -> None:
        half = len(messages) // 2
        for index, message in enumerate(messages):
            if first_echo is not None and index == half:
                assert first_echo.wait(30)
            stream.send(message, **members)
        stream.close_input()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_echo_thousand_each_way_interleaved(endpoint: Http2EndpointThread, ca_file: str) -> None:
    runtime = client(endpoint, ca_file)
    messages = [b"message %d" % i for i in range(COUNT)]
    with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="echo", TargetVariant="v1") as stream:
        first_echo = threading.Event()
        thread = sender(stream, messages, first_echo, data_type="UTF8", completion_state="COMPLETE")
        received = []
        for event in stream:
            first_echo.set()
            received.append(event["PayloadPart"])
        thread.join()
        assert stream.response["InvokedProductionVariant"] == "AllTraffic"
        assert stream.response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [part["Bytes"] for part in received] == messages
    assert all(part["DataType"] == "UTF8" and part["CompletionState"] == "COMPLETE" for part in received)
    assert last_exchange(endpoint) == (COUNT, COUNT, True, "")
    assert endpoint.endpoint.exchanges[-1].headers["x-amzn-sagemaker-target-variant"] == "v1"


def test_conversation_thousand_turns(endpoint: Http2EndpointThread, ca_file: str) -> None:
    runtime = client(endpoint, ca_file)
    with runtime.invoke_endpoint_with_bidirectional_stream(
        EndpointName="chat", ModelQueryString="mode=conversation&parts=1"
    ) as stream:
        first_reply = threading.Event()
        thread = sender(
            stream, [b"hello %d" % i for i in range(COUNT)], first_reply, completion_state="COMPLETE"
        )
        replies = []
        for event in stream:
            first_reply.set()
            replies.append(event["PayloadPart"]["Bytes"])
        thread.join()
    assert replies == [b"turn %d: hello %d" % (i + 1, i) for i in range(COUNT)]
    assert last_exchange(endpoint) == (COUNT, COUNT, True, "")


def test_conversation_turn_taking(endpoint: Http2EndpointThread, ca_file: str) -> None:
    runtime = client(endpoint, ca_file)
    with runtime.invoke_endpoint_with_bidirectional_stream(
        EndpointName="chat", ModelQueryString="mode=conversation&parts=3"
    ) as stream:
        for turn in (b"what is ", b"the ", b"answer"):
            stream.send(turn, completion_state="PARTIAL")
        stream.send(b"?", data_type="UTF8", completion_state="COMPLETE")
        answer = [next(stream)["PayloadPart"] for _ in range(3)]
        assert b"".join(part["Bytes"] for part in answer) == b"turn 1: what is the answer?"
        assert [part["CompletionState"] for part in answer] == ["PARTIAL", "PARTIAL", "COMPLETE"]
        stream.send("second", completion_state="COMPLETE")  # str: UTF-8, DataType UTF8
        second = [next(stream)["PayloadPart"] for _ in range(3)]
        assert b"".join(part["Bytes"] for part in second) == b"turn 2: second"
        assert second[0]["DataType"] == "UTF8"
        stream.close_input()
        assert list(stream) == []


def test_connection_reused_across_streams(tls: tuple[ssl.SSLContext, str], ca_file: str) -> None:
    with Http2EndpointThread(ssl=tls[0], credentials=CREDENTIALS) as server:
        runtime = client(server, ca_file)
        for i in range(5):
            with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="reuse") as stream:
                stream.send(b"%d" % i)
                stream.close_input()
                assert [e["PayloadPart"]["Bytes"] for e in stream] == [b"%d" % i]
        # and concurrently: eight streams at once on the same connection
        results: list[bytes] = []

        def one(i: int) -> None:
            with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="reuse") as stream:
                stream.send(b"c%d" % i)
                stream.close_input()
                results.extend(e["PayloadPart"]["Bytes"] for e in stream)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == sorted(b"c%d" % i for i in range(8))
        assert server.endpoint.accepted_connections == 1
        assert runtime.connections == 1
        runtime.close()


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        ("input-validation", InputValidationError),
        ("model-error", errors.ModelError),
        ("internal-server", InternalServerError),
        ("service-unavailable", ServiceUnavailableError),
    ],
)
def test_errors_before_the_stream(endpoint: Http2EndpointThread, ca_file: str, fault: str, cls: type) -> None:
    runtime = client(endpoint, ca_file)
    with runtime.invoke_endpoint_with_bidirectional_stream(
        EndpointName="fault", ModelQueryString=f"fault={fault}"
    ) as stream:
        with pytest.raises(cls) as info:
            stream.response  # noqa: B018
        with pytest.raises(cls):
            next(stream)
        with pytest.raises(cls):
            stream.send(b"late")
    assert isinstance(info.value, errors.ServiceError)  # a botocore ClientError
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 424, 500, 503)
    assert info.value.response["Error"]["Message"] == f"Emulated {fault}"
    if fault == "model-error":
        assert (info.value.original_status_code, info.value.original_message) == (500, "model failed")
        assert info.value.log_stream_arn.endswith("/Endpoints/fault")


@pytest.mark.parametrize(
    ("fault", "cls", "code"),
    [
        ("model-stream-error", errors.ModelStreamError, "ModelStreamError"),
        ("internal-stream-failure", errors.InternalStreamFailure, "InternalStreamFailure"),
        ("reset", StreamReset, "InternalStreamFailure"),
    ],
)
def test_errors_inside_the_stream(
    endpoint: Http2EndpointThread, ca_file: str, fault: str, cls: type, code: str
) -> None:
    runtime = client(endpoint, ca_file)
    with runtime.invoke_endpoint_with_bidirectional_stream(
        EndpointName="fault", ModelQueryString=f"fault={fault}&after=2"
    ) as stream:
        for i in range(5):
            stream.send(b"%d" % i)
        received = []
        with pytest.raises(cls) as info:
            for event in stream:
                received.append(event["PayloadPart"]["Bytes"])
    assert received == [b"0", b"1"]
    assert info.value.response["Error"]["Code"] == code
    if fault == "model-stream-error":
        assert info.value.error_code == "ModelInvocationTimeExceeded"
    # the connection survives a stream's failure
    with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="after") as stream:
        stream.send(b"ok")
        stream.close_input()
        assert [e["PayloadPart"]["Bytes"] for e in stream] == [b"ok"]


def test_stall_is_an_event_timeout(endpoint: Http2EndpointThread, ca_file: str) -> None:
    from botocore.config import Config

    runtime = client(endpoint, ca_file, config=Config(read_timeout=0.5))
    with runtime.invoke_endpoint_with_bidirectional_stream(
        EndpointName="fault", ModelQueryString="fault=stall&after=1&stall=5"
    ) as stream:
        stream.send(b"a")
        stream.send(b"b")
        assert next(stream)["PayloadPart"]["Bytes"] == b"a"
        started = time.monotonic()
        with pytest.raises(errors.EventTimeout):
            next(stream)
        assert 0.4 < time.monotonic() - started < 3


def test_tampered_event_signature(endpoint: Http2EndpointThread, ca_file: str) -> None:
    runtime = client(endpoint, ca_file)
    with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="tamper") as stream:
        stream.send(b"good")
        assert next(stream)["PayloadPart"]["Bytes"] == b"good"
        stream._signer._chain.prior = "00" * 32  # the next signature is chained to the wrong one
        stream.send(b"bad")
        with pytest.raises(InputValidationError, match="signature") as info:
            next(stream)
    assert info.value.response["Error"]["Code"] == "InputValidationError"
    assert "does not match" in endpoint.endpoint.exchanges[-1].error


def test_wrong_secret_is_refused_before_the_stream(endpoint: Http2EndpointThread, ca_file: str) -> None:
    runtime = client(endpoint, ca_file, aws_secret_access_key="wrong")
    stream = runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="auth")
    with stream, pytest.raises(errors.ServiceError) as info:
        stream.response  # noqa: B018
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_consumer_that_stops_reading_holds_memory_bounded(
    tls: tuple[ssl.SSLContext, str], ca_file: str
) -> None:
    # The endpoint echoes; nobody reads. The client's receive window (64 KiB here) fills, the endpoint
    # stops answering and so stops taking input, its window fills, and the sender waits: nothing grows.
    with Http2EndpointThread(ssl=tls[0], credentials=CREDENTIALS, window=65535) as server:
        runtime = client(server, ca_file, window=65536, max_inflight=65536)
        payload = b"x" * 16384
        sent = 0
        with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="flood") as stream:
            with pytest.raises(SendTimeout):
                for _ in range(10_000):  # 160 MiB if nothing pushed back
                    stream.send(payload, timeout=1.0)
                    sent += 1
            buffered = stream._core.buffered
        runtime.close()
    assert sent < 64  # the sender was stopped after a few windows' worth
    assert buffered * len(payload) <= 65536 + 2 * len(payload)


def test_close_mid_stream_then_reuse(endpoint: Http2EndpointThread, ca_file: str) -> None:
    runtime = client(endpoint, ca_file)
    stream = runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="early")
    stream.send(b"one")
    assert next(stream)["PayloadPart"]["Bytes"] == b"one"
    stream.close()  # input still open, events may still come: abandoned
    stream.close()
    with pytest.raises(ValueError):
        stream.send(b"closed")
    with pytest.raises(ValueError, match="closed"):
        next(stream)
    with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="later") as again:
        again.send(b"two")
        again.close_input()
        assert [e["PayloadPart"]["Bytes"] for e in again] == [b"two"]


def test_parameters_are_validated(endpoint: Http2EndpointThread, ca_file: str) -> None:
    runtime = client(endpoint, ca_file)
    with pytest.raises(errors.ParamValidationError, match="EndpointName"):
        runtime.invoke_endpoint_with_bidirectional_stream()
    with pytest.raises(errors.ParamValidationError, match="EndpointName"):
        runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="bad name")
    with pytest.raises(errors.ParamValidationError, match="Unknown"):
        runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="ok", Body=b"x")
    with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="ok") as stream:
        with pytest.raises(errors.ParamValidationError, match="DataType"):
            stream.send(b"x", data_type="TEXT")
        with pytest.raises(errors.ParamValidationError, match="CompletionState"):
            stream.send(b"x", completion_state="DONE")
        with pytest.raises(errors.ParamValidationError):
            stream.send(12)  # type: ignore[arg-type]
        stream.close_input()
        stream.close_input()  # idempotent
        with pytest.raises(ValueError, match="closed"):
            stream.send(b"x")
        assert list(stream) == []


def test_untrusted_certificate_fails(endpoint: Http2EndpointThread) -> None:
    runtime = http2_client(endpoint_url=endpoint.url, **KEYS)
    with pytest.raises(errors.ConnectionFailed, match=r"TLS|tls|CERT|cert"):
        runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="tls")


@pytest.mark.parametrize(
    ("region", "fips", "dualstack", "url"),
    [
        ("us-west-2", False, False, "https://runtime.sagemaker.us-west-2.amazonaws.com:8443"),
        ("us-west-2", True, False, "https://runtime-fips.sagemaker.us-west-2.amazonaws.com:8443"),
        ("us-west-2", False, True, "https://runtime.sagemaker.us-west-2.api.aws:8443"),
        ("us-west-2", True, True, "https://runtime-fips.sagemaker.us-west-2.api.aws:8443"),
        ("cn-north-1", False, False, "https://runtime.sagemaker.cn-north-1.amazonaws.com.cn:8443"),
        ("us-gov-west-1", True, False, "https://runtime-fips.sagemaker.us-gov-west-1.amazonaws.com:8443"),
    ],
)
def test_endpoint_rules(region: str, fips: bool, dualstack: bool, url: str) -> None:
    # The service's endpoint rules (aws-sdk-sagemaker-runtime-http2's model) over botocore's partitions.
    assert sagemaker_http2_endpoint(region, fips=fips, dualstack=dualstack) == url


def test_client_resolves_the_http2_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2", raising=False)
    runtime = http2_client(**KEYS)
    assert runtime.endpoint_url == "https://runtime.sagemaker.us-west-2.amazonaws.com:8443"
    from botocore.config import Config

    fips = http2_client(config=Config(use_fips_endpoint=True), **KEYS)
    assert fips.endpoint_url == "https://runtime-fips.sagemaker.us-west-2.amazonaws.com:8443"
    bedrock = bedrock_http2_client(**KEYS)
    assert bedrock.endpoint_url == "https://bedrock-runtime.us-west-2.amazonaws.com"


# -- Bedrock --------------------------------------------------------------------------------------------


def bedrock(server: Http2EndpointThread, ca: str):  # type: ignore[no-untyped-def]
    return bedrock_http2_client(**local(server, ca))


def test_bedrock_echo(endpoint: Http2EndpointThread, ca_file: str) -> None:
    runtime = bedrock(endpoint, ca_file)
    with runtime.invoke_model_with_bidirectional_stream(modelId="amazon.nova-sonic-v1:0") as stream:
        thread = sender(stream, [b'{"event": %d}' % i for i in range(100)])
        chunks = [event["chunk"]["bytes"] for event in stream]
        thread.join()
    assert chunks == [b'{"event": %d}' % i for i in range(100)]
    exchange = endpoint.endpoint.exchanges[-1]
    assert (exchange.operation, exchange.target, exchange.events_in, exchange.signed_end) == (
        "bedrock",
        "amazon.nova-sonic-v1:0",
        100,
        True,
    )
    assert "/bedrock/aws4_request" in exchange.headers["authorization"]
    with pytest.raises(TypeError):
        stream.send(b"x", data_type="UTF8")


def test_bedrock_client_has_both_streaming_operations(endpoint: Http2EndpointThread, ca_file: str) -> None:
    """boto3's bedrock-runtime method names on one client: the bidirectional stream shares its botocore
    client (credentials, region, endpoint) with the response stream."""
    import evstream.sagemaker as sm

    with sm.bedrock_client(endpoint_url=endpoint.url, verify=ca_file, **KEYS) as runtime:
        with runtime.invoke_model_with_bidirectional_stream(modelId="amazon.nova-sonic-v1:0") as stream:
            thread = sender(stream, [b"one", b"two"])
            chunks = [event["chunk"]["bytes"] for event in stream]
            thread.join()
        assert chunks == [b"one", b"two"]
        assert runtime._http2 is not None and runtime._http2._target.client is runtime._botocore

    async def main() -> list[bytes]:
        async with sm.bedrock_async_client(endpoint_url=endpoint.url, verify=ca_file, **KEYS) as runtime:
            stream = await runtime.invoke_model_with_bidirectional_stream(modelId="m")
            async with stream:
                await stream.send(b"async")
                await stream.close_input()
                return [event["chunk"]["bytes"] async for event in stream]

    import asyncio

    assert asyncio.run(main()) == [b"async"]


def test_bedrock_errors_are_botocores_classes(endpoint: Http2EndpointThread, ca_file: str) -> None:
    from botocore.exceptions import ClientError, EventStreamError

    runtime = bedrock(endpoint, ca_file)
    with behaving(endpoint, Bidi(fault="service-unavailable")):
        stream = runtime.invoke_model_with_bidirectional_stream(modelId="m")
        with stream, pytest.raises(runtime.exceptions.ServiceUnavailableException) as info:
            next(stream)
    assert isinstance(info.value, ClientError) and isinstance(info.value, errors.ServiceUnavailable)
    with behaving(endpoint, Bidi(fault="model-stream-error", after=1)):
        stream = runtime.invoke_model_with_bidirectional_stream(modelId="m")
        with stream:
            stream.send(b"a")
            assert next(stream) == {"chunk": {"bytes": b"a"}}
            with pytest.raises(EventStreamError) as stream_info:
                next(stream)
    assert isinstance(stream_info.value, errors.ModelStreamError)
    assert stream_info.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert stream_info.value.original_status_code == 500


# -- cleartext HTTP/2 (h2c, prior knowledge), with the h2 library as the client -----------------------------


def h2c_exchange(
    server: Http2EndpointThread, body: Callable[[str], bytes], path: str = ""
) -> tuple[bytes, list[Any]]:
    """A request over cleartext HTTP/2 with the h2 library as the client, signed as evstream's client signs;
    ``body(seed)`` makes the request body from the request's signature. Returns (status, messages)."""
    import socket

    import h2.connection
    import h2.events
    from awscrt import auth, http

    from evstream import Decoder
    from evstream.sagemaker.event_signing import EVENT_STREAM_PAYLOAD

    host = server.url.split("//", 1)[1]
    path = path or "/endpoints/h2c/invocations-bidirectional-stream"
    request = http.HttpRequest(
        "POST",
        path,
        http.HttpHeaders([("host", host), ("content-type", "application/vnd.amazon.eventstream")]),
    )
    config = auth.AwsSigningConfig(
        credentials_provider=auth.AwsCredentialsProvider.new_static("AKIDHTTP2", "http2-secret"),
        region="us-west-2",
        service="sagemaker",
        signed_body_value=EVENT_STREAM_PAYLOAD,
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
    )
    auth.aws_sign_request(request, config).result(10)
    seed = request.headers.get("Authorization").rsplit("Signature=", 1)[1]
    connection = h2.connection.H2Connection()
    connection.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", host)]
    headers += [(name.lower(), value) for name, value in request.headers if name.lower() != "host"]
    connection.send_headers(1, headers)
    connection.send_data(1, body(seed), end_stream=True)
    decoder, status, ended, messages = Decoder(), b"", False, []
    with socket.create_connection(host.rsplit(":", 1)) as sock:  # type: ignore[arg-type]
        sock.settimeout(10)
        sock.sendall(connection.data_to_send())
        while not ended:
            data = sock.recv(65536)
            assert data, "the endpoint closed the connection"
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    # an event stream after a 200; an error answer's JSON as it is
                    messages += decoder.feed(event.data) if status == b"200" else [event.data]
                    connection.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(connection.data_to_send())
    return status, messages


def test_cleartext_h2c_with_prior_knowledge() -> None:
    from evstream.sagemaker._http2_ops import sagemaker_input_event
    from evstream.sagemaker.event_signing import EventSigner

    def body(seed: str) -> bytes:
        signer = EventSigner("http2-secret", "us-west-2", "sagemaker", seed)
        return b"".join(signer.sign(sagemaker_input_event(b"part %d" % i)) for i in range(5)) + signer.end()

    with Http2EndpointThread(credentials=CREDENTIALS, region="us-west-2") as server:
        assert server.url.startswith("http://")
        status, messages = h2c_exchange(server, body)
        record = server.endpoint.exchanges[-1]
    assert status == b"200"
    assert [m.payload for m in messages] == [b"part %d" % i for i in range(5)]
    assert (record.events_in, record.signed_end, record.error) == (5, True, "")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (lambda seed: b"not an event stream at all", "Malformed input event stream"),
        (lambda seed: encode({":event-type": "PayloadPart"}, b"unsigned"), "signed envelope"),
        (
            lambda seed: encode({":date": Timestamp(0), ":chunk-signature": b"x" * 32}, b"y"),
            "Signature expired",
        ),
    ],
    ids=["garbage", "unsigned", "stale"],
)
def test_malformed_input_gets_the_services_error(body: Callable[[str], bytes], words: str) -> None:
    with Http2EndpointThread(credentials=CREDENTIALS, region="us-west-2") as server:
        status, messages = h2c_exchange(server, body)
        record = server.endpoint.exchanges[-1]
    assert status == b"200"
    (error,) = messages
    assert (
        error.headers[":message-type"] == "error" and error.headers[":error-code"] == "InputValidationError"
    )
    assert words in error.headers[":error-message"] and words in record.error


def test_unknown_route_and_method() -> None:
    with Http2EndpointThread(credentials=CREDENTIALS, region="us-west-2") as server:
        status, messages = h2c_exchange(server, lambda seed: b"", path="/endpoints/x/invocations")
    assert status == b"404"
    assert b"No operation at /endpoints/x/invocations" in b"".join(messages)


def test_demo_sends_while_receiving() -> None:
    import io

    from evstream.demo import _bidirectional

    out = io.StringIO()
    assert _bidirectional(100.0, out)
    lines = out.getvalue().splitlines()
    sent = [i for i, line in enumerate(lines) if "  ->  " in line]
    received = [i for i, line in enumerate(lines) if "  <-  " in line]
    assert len(sent) == 13 and len(received) == 16
    assert received[0] < sent[-1]  # a reply arrived while the input was still being sent
    assert "the endpoint verified 13 of 13 event signatures" in out.getvalue()


def test_events_larger_than_the_windows(tls: tuple[ssl.SSLContext, str], ca_file: str) -> None:
    # A 600 KiB event through 64 KiB windows both ways: partial frames are credited as they arrive.
    with Http2EndpointThread(ssl=tls[0], credentials=CREDENTIALS, window=65535) as server:
        runtime = client(server, ca_file, window=65536, max_inflight=65536)
        big = bytes(range(256)) * 2400
        with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="big") as stream:
            stream.send(big, data_type="BINARY")
            stream.send(b"small")
            stream.close_input()
            assert [e["PayloadPart"]["Bytes"] for e in stream] == [big, b"small"]
        runtime.close()


@pytest.mark.parametrize(
    "make", [http2_client, bedrock_http2_client, async_http2_client], ids=["sync", "bedrock", "async"]
)
def test_cleartext_endpoint_is_refused_by_the_client(make: Callable[..., Any]) -> None:
    # botocore's frame, then the client's words.
    message = r"^Parameter validation failed:\nHTTP/2 bidirectional streaming needs an https:// endpoint, not http://127\.0\.0\.1:8080$"
    with pytest.raises(errors.ParamValidationError, match=message):
        make(endpoint_url="http://127.0.0.1:8080/", **KEYS)
    assert (
        make(endpoint_url="https://127.0.0.1:8443", **KEYS).exceptions.ClientError.__name__ == "ClientError"
    )


def test_a_proxy_is_refused_not_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(errors.ParamValidationError, match="NO_PROXY"):
        http2_client(endpoint_url="https://example.invalid:8443", **KEYS)
    monkeypatch.setenv("NO_PROXY", "example.invalid")
    assert http2_client(endpoint_url="https://example.invalid:8443", **KEYS).endpoint_url.endswith(":8443")


def test_made_from_an_existing_boto3_client(endpoint: Http2EndpointThread, ca_file: str) -> None:
    import boto3

    made = boto3.client("sagemaker-runtime", endpoint_url=endpoint.url, verify=ca_file, **KEYS)
    runtime = http2_client(made)
    assert runtime.endpoint_url == endpoint.url
    with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="from-boto3") as stream:
        stream.send(b"same credentials, same endpoint")
        stream.close_input()
        assert [e["PayloadPart"]["Bytes"] for e in stream] == [b"same credentials, same endpoint"]
    with pytest.raises(TypeError, match="not both"):
        http2_client(made, region_name="us-east-1")
    with pytest.raises(TypeError, match="bedrock-runtime client is needed"):
        bedrock_http2_client(made)
