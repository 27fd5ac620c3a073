"""Shared pieces of the boto3-fidelity tests (tests/test_boto3_fidelity_*.py).

boto3 is the oracle: each test builds a boto3 client and an evstream client from the same arguments,
environment and profiles, runs the same call, and compares what the two did (the host a proxy saw,
the request the local endpoint received, the classes raised, ``Error.Code``, ``ResponseMetadata``).

Nothing leaves 127.0.0.1: AWS hosts are only ever reached through the recording proxy, which refuses
them; credentials are fake; instance metadata lookups are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.server
import itertools
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest
from emulator_support import certificate as certificate  # re-exported: the fidelity tests use it
from recording_proxy import RecordingProxy

from evstream.emulator import EmulatorThread

ACCESS_KEY = "AKIDFIDELITY"
SECRET_KEY = "fidelity-secret"
FAKE_KEYS = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}


def one_attempt(**options: Any) -> botocore.config.Config:
    """A Config with these options and one attempt: a refused proxy or an injected error is seen once,
    without backoff sleeps."""
    return botocore.config.Config(retries={"total_max_attempts": 1}, **options)


ONE_ATTEMPT = one_attempt()
FLAVOURS = ("sync", "async")

# service -> (streaming operation, body parameter, response body key, sync factory, async factory)
_SERVICES: dict[str, tuple[str, str, str, str, str]] = {
    "sagemaker-runtime": ("invoke_endpoint_with_response_stream", "Body", "Body", "client", "async_client"),
    "bedrock-runtime": (
        "invoke_model_with_response_stream",
        "body",
        "body",
        "bedrock_client",
        "bedrock_async_client",
    ),
}
# Cleared (any case) with every AWS_* variable, so the machine's own setup cannot leak in.
_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY")

_nonce = itertools.count()


def body(**emulator: Any) -> bytes:
    """A request body setting the endpoint's behaviour; unique, so the endpoint's per-body attempt
    counter (``fault_times``) never mixes two calls."""
    return json.dumps({"inputs": f"call {next(_nonce)}", "emulator": emulator}).encode()


def stream_params(service: str = "sagemaker-runtime", **emulator: Any) -> dict[str, Any]:
    if service == "bedrock-runtime":
        return {"modelId": "fidelity-model", "body": body(**emulator)}
    return {"EndpointName": "fidelity", "Body": body(**emulator)}


# -- the environment ------------------------------------------------------------------------------


def clear_environment(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") or name.upper() in _PROXY_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # boto3.client() reuses a default session, which read the config files once: start a new one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A module without any AWS variable, proxy variable or profile of the machine it runs on."""
    folder = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as monkeypatch:
        clear_environment(monkeypatch, folder)
        yield folder


class Profiles:
    """Writes a test's own AWS config and credentials files (and starts boto3's default session anew)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self.monkeypatch = monkeypatch
        self.config_file = folder / "config"
        self.credentials_file = folder / "credentials"
        clear_environment(monkeypatch, folder)

    def config(self, text: str) -> None:
        self.config_file.write_text(text)
        self.monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    def credentials(self, text: str) -> None:
        self.credentials_file.write_text(text)
        self.monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.fixture()
def profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Profiles:
    return Profiles(monkeypatch, tmp_path)


# -- local servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[EmulatorThread]:
    """The local endpoint; every request must carry a valid SigV4 signature made with FAKE_KEYS."""
    with EmulatorThread(credentials={ACCESS_KEY: SECRET_KEY}) as server:
        yield server


@pytest.fixture(scope="module")
def tls_endpoint(certificate: Path) -> Iterator[EmulatorThread]:
    """The local endpoint over HTTPS (signatures verified, as ``endpoint``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, certificate.with_name("key.pem"))
    with EmulatorThread(ssl=context, credentials={ACCESS_KEY: SECRET_KEY}) as server:
        yield server


@pytest.fixture()
def proxy() -> Iterator[RecordingProxy]:
    with RecordingProxy() as server:
        yield server


def received(server: EmulatorThread, params: Mapping[str, Any]) -> list[Any]:
    """The requests the local endpoint received with this call's (unique) body."""
    body_value = params.get("Body", params.get("body"))
    return [r for r in server.emulator.requests if r.body == body_value]


def port_of(server: EmulatorThread) -> int:
    return int(server.url.rsplit(":", 1)[1])


@dataclasses.dataclass
class Canned:
    """One fixed HTTP answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class CannedEndpoint:
    """Answers every request with one canned response (for the modelled errors the emulator has no
    fault for) and records the requests' headers."""

    def __init__(self, answer: Canned) -> None:
        self.answer = answer
        self.requests: list[dict[str, str]] = []
        handler = self._handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                endpoint.requests.append({k.lower(): v for k, v in self.headers.items()})
                answer = endpoint.answer
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> CannedEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def service_error(status: int, code: str, message: str, **members: Any) -> Canned:
    """A restJson1 error answer as SageMaker Runtime sends it."""
    payload = json.dumps({"Message": message, **members}).encode()
    headers = {
        "x-amzn-RequestId": "11111111-2222-3333-4444-555555555555",
        "x-amzn-ErrorType": f"{code}:",
        "Content-Type": "application/json",
    }
    return Canned(status, headers, payload)


# -- running one call in both clients ---------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """What one client did with one streaming call."""

    stage: str  # where it ended: "build", "call", "stream" (an error) or "done"
    error: BaseException | None = None
    response: dict[str, Any] = dataclasses.field(default_factory=dict)  # without the event stream
    events: list[Any] = dataclasses.field(default_factory=list)
    exceptions: Any = None  # the client's ``exceptions`` (botocore's classes are per client session)

    def __str__(self) -> str:
        if self.error is None:
            return f"{self.stage}: {len(self.events)} events"
        return f"{self.stage}: {type(self.error).__module__}.{type(self.error).__name__}: {self.error}"


def boto3_stream(service: str, client_kwargs: Mapping[str, Any], params: Mapping[str, Any]) -> Outcome:
    """The call in boto3; a ``session`` among the client arguments (as evstream takes it) makes the
    client from that session."""
    operation, _, body_key, _, _ = _SERVICES[service]
    kwargs = dict(client_kwargs)
    session = kwargs.pop("session", None) or boto3
    try:
        client = session.client(service, **kwargs)
    except Exception as exc:
        return Outcome("build", exc)
    try:
        outcome = _sync_call(getattr(client, operation), params, body_key)
    finally:
        client.close()
    outcome.exceptions = client.exceptions
    return outcome


def evstream_client(flavour: str, service: str = "sagemaker-runtime", **client_kwargs: Any) -> Any:
    import evstream.sagemaker as sm  # here: a broken client package fails each test, not the collection

    _, _, _, sync_factory, async_factory = _SERVICES[service]
    return getattr(sm, sync_factory if flavour == "sync" else async_factory)(**client_kwargs)


def evstream_stream(
    flavour: str, service: str, client_kwargs: Mapping[str, Any], params: Mapping[str, Any]
) -> Outcome:
    return evstream_streams(flavour, service, client_kwargs, [params])[0]


def evstream_streams(
    flavour: str, service: str, client_kwargs: Mapping[str, Any], calls: list[Mapping[str, Any]]
) -> list[Outcome]:
    """Several calls, one after the other, with one evstream client."""
    operation, _, body_key, _, _ = _SERVICES[service]
    if flavour == "async":  # built inside the event loop, as asyncio code does
        return asyncio.run(_async_calls(service, client_kwargs, operation, calls, body_key))
    try:
        client = evstream_client(flavour, service, **client_kwargs)
    except Exception as exc:
        return [Outcome("build", exc)]
    try:
        outcomes = [_sync_call(getattr(client, operation), params, body_key) for params in calls]
    finally:
        client.close()
    for outcome in outcomes:
        outcome.exceptions = client.exceptions
    return outcomes


def _sync_call(method: Callable[..., Any], params: Mapping[str, Any], body_key: str) -> Outcome:
    try:
        response = method(**params)
    except Exception as exc:
        return Outcome("call", exc)
    stream = response.pop(body_key)
    events: list[Any] = []
    try:
        for event in stream:
            events.append(event)
    except Exception as exc:
        return Outcome("stream", exc, response, events)
    return Outcome("done", None, response, events)


async def _async_calls(
    service: str,
    client_kwargs: Mapping[str, Any],
    operation: str,
    calls: list[Mapping[str, Any]],
    body_key: str,
) -> list[Outcome]:
    try:
        client = evstream_client("async", service, **client_kwargs)
    except Exception as exc:
        return [Outcome("build", exc)]
    async with client as runtime:
        outcomes = [await _async_stream(runtime, operation, params, body_key) for params in calls]
        for outcome in outcomes:
            outcome.exceptions = runtime.exceptions
        return outcomes


async def _async_stream(runtime: Any, operation: str, params: Mapping[str, Any], body_key: str) -> Outcome:
    try:
        response = await getattr(runtime, operation)(**params)
    except Exception as exc:
        return Outcome("call", exc)
    stream = response.pop(body_key)
    events: list[Any] = []
    try:
        async for event in stream:
            events.append(event)
    except Exception as exc:
        return Outcome("stream", exc, response, events)
    return Outcome("done", None, response, events)


def assert_same_failure(ours: Outcome, oracle: Outcome) -> None:
    """Same stage, and an exception of boto3's class (by type and by name)."""
    assert ours.stage == oracle.stage, f"evstream {ours}\nboto3    {oracle}"
    if oracle.error is None:
        assert ours.error is None, f"evstream {ours}\nboto3    {oracle}"
        return
    expected = type(oracle.error)
    if expected.__module__ == "botocore.errorfactory":
        # Modelled classes are made per client (per session): compare by botocore's name instead.
        bases = [(c.__module__, c.__name__) for c in type(ours.error).__mro__]
        assert (expected.__module__, expected.__name__) in bases, (
            f"evstream raised {type(ours.error).__mro__}, boto3 raised {expected.__mro__}"
        )
    assert isinstance(
        ours.error, expected.__mro__[1] if expected.__module__ == "botocore.errorfactory" else expected
    ), f"evstream raised {type(ours.error).__mro__}, boto3 raised {expected.__mro__}"
    assert type(ours.error).__name__ == type(oracle.error).__name__, f"evstream {ours}\nboto3    {oracle}"


def metadata_keys(response: Mapping[str, Any]) -> set[str]:
    return set(response.get("ResponseMetadata", {}))


def assert_same_response(ours: Mapping[str, Any], oracle: Mapping[str, Any]) -> None:
    """The same keys and values, except the values that differ per request (ids, dates)."""
    assert set(ours) == set(oracle), f"response keys: evstream {sorted(ours)}, boto3 {sorted(oracle)}"
    assert metadata_keys(ours) == metadata_keys(oracle), (
        f"ResponseMetadata keys: evstream {sorted(metadata_keys(ours))}, boto3 {sorted(metadata_keys(oracle))}"
    )
    for key, value in oracle.items():
        if key != "ResponseMetadata":
            assert ours[key] == value, f"{key}: evstream {ours[key]!r}, boto3 {value!r}"
    mine, theirs = ours["ResponseMetadata"], oracle["ResponseMetadata"]
    for key in ("HTTPStatusCode", "RetryAttempts", "MaxAttemptsReached"):
        assert mine.get(key) == theirs.get(key), (
            f"ResponseMetadata[{key!r}]: evstream {mine.get(key)!r}, boto3 {theirs.get(key)!r}"
        )
    assert mine["RequestId"] == mine["HTTPHeaders"].get("x-amzn-requestid", mine["RequestId"]), (
        "RequestId must be the one of the response described (the last attempt's)"
    )
    assert set(mine["HTTPHeaders"]) == set(theirs["HTTPHeaders"]), (
        f"HTTPHeaders: evstream {sorted(mine['HTTPHeaders'])}, boto3 {sorted(theirs['HTTPHeaders'])}"
    )


class WireSink:
    """Keeps every byte any client sends it, answers each connection with a 400 and closes it: a
    witness that nothing reached the wire (it parses nothing, so no malformed request goes unseen)."""

    _ANSWER = (
        b"HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ValidationError:\r\n"
        b"Content-Type: application/json\r\nContent-Length: 17\r\nConnection: close\r\n\r\n"
        b'{"Message":"no"}\n'
    )

    def __init__(self) -> None:
        self.received = bytearray()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def _accept_loop(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                head = b""
                try:
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        data = connection.recv(65536)
                        if not data:
                            break
                        head += data
                    connection.sendall(self._ANSWER)
                except OSError:
                    pass
                with self._lock:
                    self.received += head

    def __enter__(self) -> WireSink:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
