"""SigV4 event signing (evstream.sagemaker.event_signing) against published vectors and the official signer.

Vectors:

* awslabs/aws-c-auth ``tests/test_event_signing.c`` (``sigv4_event_signing_test``): a request signed with
  ``STREAMING-AWS4-HMAC-SHA256-EVENTS``, then events "A", "B", "C" and the empty end event, one second
  apart, each with its expected signature. The CRT (awscrt) is the signer of the AWS SDKs for C++, Java
  (CRT), Python (botocore's CRT mode) and Swift.
* awslabs/smithy-rs ``aws/rust-runtime/aws-sigv4/src/event_stream.rs`` (``string_to_sign``): the exact
  string to sign for an encoded message with one string header, which also pins our encoder's bytes.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import sys

import pytest

from evstream import Timestamp, decode, encode
from evstream.emulator.sigv4 import verify_sigv4
from evstream.sagemaker.event_signing import (
    EVENT_STREAM_PAYLOAD,
    EventSignatureError,
    EventSigner,
    EventVerifier,
    date_header,
    string_to_sign,
)

# -- aws-c-auth tests/test_event_signing.c -----------------------------------------------------------

CRT_REQUEST_TIME = calendar.timegm((1981, 1, 16, 6, 30, 0))
CRT_REQUEST_SIGNATURE = "e1d8e8c8815e60969f2a34765c9a15945ffc0badbaa4b7e3b163ea19131e949b"
CRT_EVENTS = [
    (b"A", "7aabf85b765e6a4d0d500b6e968657b14726fa3e1eb7e839302728ffd77629a5"),
    (b"B", "f72aa9642f571d24a6e1ae42f10f073ad9448d8a028b6bcd82da081335adda02"),
    (b"C", "632af120435b57ec241d8bfbb12e496dfd5e2730a1a02ac0ab6eaa230ae02e9a"),
    (b"", "c6f679ddb3af68f5e82f0cf6761244cb2338cf11e7d01a24130aea1b7c17e53e"),
]


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_request_signature_of_the_crt_vector() -> None:
    # The seed of the chain: the request signed as the client signs it (awscrt), and accepted by the
    # endpoint's independent verifier.
    pytest.importorskip("awscrt")
    import datetime

    from awscrt import auth, http

    request = http.HttpRequest(
        "POST",
        "/streaming",
        http.HttpHeaders(
            [
                ("host", "demo.us-east-1.amazonaws.com"),
                ("Content-Encoding", "application/vnd.amazon.eventstream"),
            ]
        ),
    )
    config = auth.AwsSigningConfig(
        credentials_provider=auth.AwsCredentialsProvider.new_static("access", "secret"),
        region="us-east-1",
        service="demo",
        date=datetime.datetime(1981, 1, 16, 6, 30, tzinfo=datetime.timezone.utc),
        signed_body_value=EVENT_STREAM_PAYLOAD,
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
    )
    auth.aws_sign_request(request, config).result(10)
    authorization = request.headers.get("Authorization")
    assert authorization == (
        "AWS4-HMAC-SHA256 Credential=access/19810116/us-east-1/demo/aws4_request, "
        "SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date, "
        f"Signature={CRT_REQUEST_SIGNATURE}"
    )
    headers = {name.lower(): value for name, value in request.headers}
    problem = verify_sigv4(
        "POST",
        "/streaming",
        headers,
        EVENT_STREAM_PAYLOAD,
        {"access": "secret"},
        service="demo",
        max_skew=1e10,
    )
    assert problem is None


def test_event_chain_of_the_crt_vector() -> None:
    clock = Clock(CRT_REQUEST_TIME)
    signer = EventSigner("secret", "us-east-1", "demo", CRT_REQUEST_SIGNATURE, clock=clock)
    frames = []
    for seconds, (payload, expected) in enumerate(CRT_EVENTS, 1):
        clock.now = CRT_REQUEST_TIME + seconds + 0.75  # sub-second time is truncated, as the CRT does
        frame = signer.end() if not payload else signer.sign(payload)
        (message,) = decode(frame)
        assert message.headers[":chunk-signature"].hex() == expected
        assert message.headers[":date"] == Timestamp((CRT_REQUEST_TIME + seconds) * 1000)
        assert message.payload == payload
        frames.append(message)
    verifier = EventVerifier("secret", "us-east-1", "demo", CRT_REQUEST_SIGNATURE, clock=clock)
    assert [verifier.verify(m.headers, m.payload) for m in frames] == [b"A", b"B", b"C", b""]
    assert verifier.ended and verifier.verified == 4


# -- smithy-rs aws-sigv4 event_stream.rs --------------------------------------------------------------


def test_string_to_sign_of_the_rust_sdk_vector() -> None:
    message = encode({"some-header": "value"}, b"test payload")
    prior = hashlib.sha256(b"last message sts").hexdigest()
    text = string_to_sign(123_456_789_000, "19731129/us-east-1/testservice/aws4_request", prior, message)
    assert text == (
        "AWS4-HMAC-SHA256-PAYLOAD\n"
        "19731129T213309Z\n"
        "19731129/us-east-1/testservice/aws4_request\n"
        "be1f8c7d79ef8e1abc5254a2c70e4da3bfaf4f07328f527444e1fc6ea67273e2\n"
        "0c0e3b3bf66b59b976181bd7d401927bbd624107303c713fd1e5f3d3c8dd1b1e\n"
        "f2eba0f2e95967ee9fbc6db5e678d2fd599229c0d04b11e4fc8e0f2a02a806c6"
    )
    assert hashlib.sha256(date_header(123_456_789_000)).hexdigest().startswith("0c0e3b3b")


# -- the verifier's refusals ----------------------------------------------------------------------------


def signed(count: int, clock: Clock) -> list[tuple[dict[str, object], bytes]]:
    signer = EventSigner("secret", "us-west-2", "sagemaker", "ab" * 32, clock=clock)
    frames = [signer.sign(encode({":event-type": "PayloadPart"}, b"%d" % i)) for i in range(count)]
    frames.append(signer.end())
    return [(dict(m.headers), m.payload) for frame in frames for m in decode(frame)]


def verifier(clock: Clock) -> EventVerifier:
    return EventVerifier("secret", "us-west-2", "sagemaker", "ab" * 32, clock=clock)


def test_tampered_signature_is_refused() -> None:
    clock = Clock(1_700_000_000.0)
    (headers, payload), *_ = signed(2, clock)
    headers[":chunk-signature"] = bytes(32)
    with pytest.raises(EventSignatureError, match="does not match"):
        verifier(clock).verify(headers, payload)


def test_tampered_payload_is_refused() -> None:
    clock = Clock(1_700_000_000.0)
    (headers, payload), *_ = signed(2, clock)
    with pytest.raises(EventSignatureError, match="does not match"):
        verifier(clock).verify(headers, payload[:-1] + b"X")


def test_reordered_events_are_refused() -> None:
    clock = Clock(1_700_000_000.0)
    _, second, _ = signed(2, clock)
    with pytest.raises(EventSignatureError, match="does not match"):
        verifier(clock).verify(*second)


def test_wrong_seed_or_key_is_refused() -> None:
    clock = Clock(1_700_000_000.0)
    first, *_ = signed(1, clock)
    for other in (
        EventVerifier("secret", "us-west-2", "sagemaker", "cd" * 32, clock=clock),
        EventVerifier("other", "us-west-2", "sagemaker", "ab" * 32, clock=clock),
        EventVerifier("secret", "us-east-1", "sagemaker", "ab" * 32, clock=clock),
    ):
        with pytest.raises(EventSignatureError):
            other.verify(*first)


def test_unsigned_event_and_events_after_the_end_are_refused() -> None:
    clock = Clock(1_700_000_000.0)
    check = verifier(clock)
    with pytest.raises(EventSignatureError, match="signed envelope"):
        check.verify({":event-type": "PayloadPart"}, b"raw")
    events = signed(1, clock)
    for headers, payload in events:
        check.verify(headers, payload)
    with pytest.raises(EventSignatureError, match="after the signed end"):
        check.verify(*events[0])


def test_skewed_date_is_refused() -> None:
    clock = Clock(1_700_000_000.0)
    first, *_ = signed(1, clock)
    clock.now += 301
    with pytest.raises(EventSignatureError, match="Signature expired"):
        verifier(clock).verify(*first)


def test_signing_after_the_end_is_an_error() -> None:
    signer = EventSigner("secret", "us-west-2", "sagemaker", "ab" * 32)
    signer.end()
    with pytest.raises(RuntimeError):
        signer.sign(b"x")
    with pytest.raises(RuntimeError):
        signer.end()


def test_chain_crosses_midnight() -> None:
    clock = Clock(calendar.timegm((2026, 1, 1, 23, 59, 59)))
    signer = EventSigner("secret", "us-west-2", "sagemaker", "ab" * 32, clock=clock)
    check = verifier(clock)
    for _ in range(3):
        (message,) = decode(signer.sign(b"event"))
        check.verify(message.headers, message.payload)
        clock.now += 1


# -- the official SDK's signer (aws-sdk-signers, Python >= 3.12) ------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 12), reason="aws-sdk-signers needs Python 3.12+")
def test_official_event_signer_agrees() -> None:
    signers = pytest.importorskip("aws_sdk_signers")
    events = pytest.importorskip("smithy_aws_event_stream.events")

    identity = signers.AWSCredentialIdentity(access_key_id="AKID", secret_access_key="secret")
    properties = {"region": "us-west-2", "service": "sagemaker"}
    seed = "ab" * 32
    parts = [({":event-type": "PayloadPart", "DataType": "UTF8"}, b"hello %d" % i) for i in range(3)]

    async def official() -> list[bytes]:
        signer = signers.AsyncEventSigner(
            initial_signature=seed.encode(), event_encoder_cls=events.EventHeaderEncoder
        )
        out = []
        for headers, payload in parts:
            signed_event = await signer.sign(
                event=events.EventMessage(headers=dict(headers), payload=payload),
                identity=identity,
                properties=properties,
            )
            out.append(signed_event.encode())
        final = await signer.sign_empty(event=events.EventMessage(), identity=identity, properties=properties)
        out.append(final.encode())
        return out

    frames = asyncio.run(official())
    check = EventVerifier("secret", "us-west-2", "sagemaker", seed)
    received = [check.verify(m.headers, m.payload) for frame in frames for m in decode(frame)]
    assert received == [*(encode(headers, payload) for headers, payload in parts), b""]
