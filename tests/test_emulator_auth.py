"""The local endpoint with credentials: every route needs a valid SigV4 signature over the body it
received, scoped to the right service and region; nothing of an unauthenticated request is kept or
acted on; the secret never needs a command line."""

from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_checks import no_tracebacks

from evstream.emulator import EmulatorProcess, EmulatorThread
from evstream.emulator.sigv4 import ACCESS_KEY_ENV, SECRET_KEY_ENV, credentials_env, load_credentials

botocore_auth = pytest.importorskip("botocore.auth")
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

__all__ = ["no_tracebacks"]

ACCESS_KEY, SECRET = "AKIDAUTHTEST", "auth-test-secret"
STREAM = "/endpoints/e/invocations-response-stream"
BODY = b'{"inputs": "hi", "emulator": {"format": "raw", "tokens": 3}}'


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorThread]:
    with EmulatorThread(credentials={ACCESS_KEY: SECRET}, region="us-east-1") as running:
        yield running


def sign(
    server: EmulatorThread | EmulatorProcess,
    path: str,
    body: bytes,
    *,
    method: str = "POST",
    service: str = "sagemaker",
    region: str = "us-east-1",
    secret: str = SECRET,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers botocore's own signer gives this request."""
    request = AWSRequest(method=method, url=server.url + path, data=body, headers=dict(extra or {}))
    botocore_auth.SigV4Auth(Credentials(ACCESS_KEY, secret), service, region).add_auth(request)
    return dict(request.headers.items())


def send(
    server: EmulatorThread | EmulatorProcess,
    path: str,
    body: bytes,
    headers: dict[str, str],
    method: str = "POST",
) -> tuple[int, bytes]:
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def message(answer: bytes) -> str:
    return str(json.loads(answer)["Message"])


def test_a_signed_request_streams(server: EmulatorThread) -> None:
    status, _ = send(server, STREAM, BODY, sign(server, STREAM, BODY))
    assert status == 200
    assert server.emulator.requests[-1].signature_valid is True


def test_a_captured_request_does_not_replay_with_another_body(server: EmulatorThread) -> None:
    # The client states the body's hash and signs it: the endpoint hashes what it received.
    claimed = {"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()}
    headers = sign(server, STREAM, BODY, extra=claimed)
    assert send(server, STREAM, BODY, headers)[0] == 200
    other = BODY.replace(b'"tokens": 3', b'"tokens": 9, "fault": "validation"')
    status, answer = send(server, STREAM, other, headers)
    assert status == 403 and "x-amz-content-sha256" in message(answer)
    # Without the header, the signature itself covers the body's hash.
    status, answer = send(server, STREAM, other, sign(server, STREAM, BODY))
    assert status == 403 and "signature" in message(answer)


def test_an_unsigned_payload_claim_is_refused(server: EmulatorThread) -> None:
    headers = sign(server, STREAM, BODY, extra={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert send(server, STREAM, BODY, headers)[0] == 403


@pytest.mark.parametrize(
    ("service", "region", "word"),
    [("bedrock", "us-east-1", "service"), ("sagemaker", "eu-west-1", "region")],
)
def test_the_credential_scope_is_checked(
    server: EmulatorThread, service: str, region: str, word: str
) -> None:
    status, answer = send(server, STREAM, BODY, sign(server, STREAM, BODY, service=service, region=region))
    assert status == 403 and word in message(answer)


def test_the_scope_terminator_is_checked(server: EmulatorThread) -> None:
    headers = sign(server, STREAM, BODY)
    headers["Authorization"] = headers["Authorization"].replace("/aws4_request", "/aws4_other")
    status, answer = send(server, STREAM, BODY, headers)
    assert status == 403 and "aws4_request" in message(answer)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential, SignedHeaders, Signature",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 Credential=AKIDAUTHTEST/x/y/z/aws4_request,SignedHeaders=,Signature=",
    ],
)
def test_a_malformed_authorization_is_a_403(server: EmulatorThread, authorization: str) -> None:
    headers = sign(server, STREAM, BODY)
    headers["Authorization"] = authorization
    status, answer = send(server, STREAM, BODY, headers)
    assert status == 403 and message(answer)


ROUTES = [
    ("POST", "/invocations"),
    ("GET", "/ping"),
    ("POST", "/endpoints/e/invocations"),
    ("POST", "/model/m/invoke-with-response-stream"),
    ("POST", "/nowhere"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_signature(server: EmulatorThread, method: str, path: str) -> None:
    # The per-request options (here a stall of an hour) are not honoured for an unsigned request.
    stalling = b'{"emulator": {"fault": "stall-headers", "stall": 3600}}'
    status, answer = send(server, path, stalling, {"Content-Type": "application/json"}, method)
    assert status == 403 and message(answer) == "Missing Authentication Token"


def test_signed_container_route_works(server: EmulatorThread) -> None:
    status, answer = send(server, "/invocations", BODY, sign(server, "/invocations", BODY))
    assert status == 200 and answer


def test_nothing_of_a_refused_request_is_kept(server: EmulatorThread) -> None:
    big = b"x" * (1024 * 1024)
    before = server.emulator.requests.bytes
    status, _ = send(server, STREAM, big, sign(server, STREAM, BODY))
    assert status == 403
    refused = server.emulator.requests[-1]
    assert refused.signature_valid is False and refused.body == b""
    assert server.emulator.requests.bytes - before < 10_000


def test_a_wrong_secret_is_refused(server: EmulatorThread) -> None:
    status, answer = send(server, STREAM, BODY, sign(server, STREAM, BODY, secret="not-it"))
    assert status == 403 and "signature" in message(answer)


def test_credentials_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert load_credentials(environ={}) is None
    assert load_credentials(environ=credentials_env("AK", "SK")) == {"AK": "SK"}
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    assert load_credentials("AK", str(secret_file), environ={}) == {"AK": "from-file"}
    assert load_credentials(None, str(secret_file), environ={ACCESS_KEY_ENV: "AK2"}) == {"AK2": "from-file"}
    with pytest.raises(ValueError, match="go together"):
        load_credentials("AK", environ={})
    with pytest.raises(ValueError, match="go together"):
        load_credentials(environ={SECRET_KEY_ENV: "SK"})


def test_serve_takes_its_keys_from_the_environment_not_argv() -> None:
    with EmulatorProcess(env=credentials_env(ACCESS_KEY, SECRET)) as endpoint:
        cmdline = Path(f"/proc/{endpoint.process.pid}/cmdline")
        if cmdline.exists():  # what `ps` shows every user of the machine
            assert SECRET.encode() not in cmdline.read_bytes()
        assert send(endpoint, STREAM, BODY, {})[0] == 403  # unsigned: the keys are in force
        assert send(endpoint, STREAM, BODY, sign(endpoint, STREAM, BODY))[0] == 200
