"""botocore Config and its environment and profile sources, evstream against boto3 on the local endpoint:
retries (mode, max attempts, what is retried, the SDK request headers), the user agent, CA bundles,
UNSIGNED, parameter validation and the connection pool size."""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.config
import pytest
from fidelity_support import (
    ACCESS_KEY,
    FAKE_KEYS,
    FLAVOURS,
    SECRET_KEY,
    Outcome,
    Profiles,
    assert_same_failure,
    assert_same_response,
    boto3_stream,
    certificate,
    endpoint,
    evstream_client,
    evstream_stream,
    isolated,
    one_attempt,
    port_of,
    profiles,
    received,
    stream_params,
    tls_endpoint,
)

from evstream.emulator import EmulatorThread

__all__ = ["certificate", "endpoint", "isolated", "profiles", "tls_endpoint"]


@pytest.fixture()
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry backoff without the wait (time.sleep and asyncio.sleep yield at once): keeps retry tests fast."""
    real_async_sleep = asyncio.sleep

    async def async_sleep(seconds: float, result: Any = None) -> Any:
        return await real_async_sleep(0, result)

    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setattr(asyncio, "sleep", async_sleep)


def run_both(
    server: EmulatorThread, flavour: str, client_kwargs: dict[str, Any], compare: bool = True, **emulator: Any
) -> dict[str, tuple[Outcome, list[Any]]]:
    """The same call (own body each) in boto3 then evstream: outcomes and the requests received;
    ``compare``: the same stage and exception class."""
    seen = {}
    for name in ("boto3", "evstream"):
        params = stream_params(**emulator)
        if name == "boto3":
            outcome = boto3_stream("sagemaker-runtime", client_kwargs, params)
        else:
            outcome = evstream_stream(flavour, "sagemaker-runtime", client_kwargs, params)
        seen[name] = (outcome, received(server, params))
    if compare:
        assert_same_failure(seen["evstream"][0], seen["boto3"][0])
    return seen


def sdk_request(header: str) -> dict[str, str]:
    """``attempt=2; ttl=...; max=3`` -> {"attempt": "2", "max": "3"} (ttl is a time, left out)."""
    fields = dict(part.strip().split("=", 1) for part in header.split(";"))
    fields.pop("ttl", None)
    return fields


# -- retries ------------------------------------------------------------------------------------------

# name: (environment, config file, Config options, attempts boto3 makes)
RETRY_SOURCES: dict[str, tuple[dict[str, str], str, dict[str, Any], int]] = {
    "default-legacy": ({}, "", {}, 5),
    "Config-legacy-max_attempts": ({}, "", {"retries": {"mode": "legacy", "max_attempts": 2}}, 3),
    "Config-standard": ({}, "", {"retries": {"mode": "standard", "max_attempts": 3}}, 4),  # retries + 1
    "Config-adaptive-total_max_attempts": (
        {},
        "",
        {"retries": {"mode": "adaptive", "total_max_attempts": 2}},
        2,
    ),
    "AWS_RETRY_MODE-AWS_MAX_ATTEMPTS": ({"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "2"}, "", {}, 2),
    "AWS_MAX_ATTEMPTS-legacy": ({"AWS_MAX_ATTEMPTS": "2"}, "", {}, 2),
    "profile": ({}, "[default]\nretry_mode = adaptive\nmax_attempts = 3\n", {}, 3),
    "Config-over-environment": (
        {"AWS_MAX_ATTEMPTS": "5", "AWS_RETRY_MODE": "legacy"},
        "",
        {"retries": {"mode": "standard", "total_max_attempts": 2}},
        2,
    ),
}


def assert_same_attempts(seen: dict[str, tuple[Outcome, list[Any]]], expected: int) -> None:
    (oracle, tried_oracle), (ours, tried_ours) = seen["boto3"], seen["evstream"]
    assert len(tried_oracle) == expected, f"the oracle made {len(tried_oracle)} attempts, expected {expected}"
    assert len(tried_ours) == len(tried_oracle), (
        f"evstream made {len(tried_ours)} attempts, boto3 {len(tried_oracle)}\nevstream {ours}\nboto3    {oracle}"
    )
    for name, tried in seen.items():
        ids = {r.headers.get("amz-sdk-invocation-id") for r in tried[1]}
        assert len(ids) == 1 and None not in ids, (
            f"{name}: one amz-sdk-invocation-id for all attempts, got {ids}"
        )
        uuid.UUID(ids.pop())
    theirs, mine = (
        [sdk_request(r.headers.get("amz-sdk-request", "")) for r in tried[1]] for tried in seen.values()
    )
    # The same attempt numbers, and the same max wherever boto3 sends one (its standard mode sends none
    # with the first attempt; sending it there too tells the service nothing different).
    for attempt, (ours, expected) in enumerate(zip(mine, theirs), 1):
        assert ours.get("attempt") == expected.get("attempt") == str(attempt), (mine, theirs)
        assert "max" not in expected or ours.get("max") == expected["max"], (mine, theirs)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("source", list(RETRY_SOURCES))
def test_retry_attempts_match(
    profiles: Profiles,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: EmulatorThread,
    no_backoff: None,
    flavour: str,
    source: str,
) -> None:
    environment, config_file, options, expected = RETRY_SOURCES[source]
    profiles.config(config_file)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    kwargs = {"region_name": "us-east-1", "endpoint_url": endpoint.url, **FAKE_KEYS}
    if options:
        kwargs["config"] = botocore.config.Config(**options)
    seen = run_both(endpoint, flavour, kwargs, fault="service-unavailable")
    assert_same_attempts(seen, expected)
    (oracle, _), (ours, _) = seen["boto3"], seen["evstream"]
    assert oracle.error is not None and ours.error is not None
    assert ours.error.response["Error"] == oracle.error.response["Error"]  # type: ignore[attr-defined]
    metadata = ours.error.response["ResponseMetadata"]  # type: ignore[attr-defined]
    expected_metadata = oracle.error.response["ResponseMetadata"]  # type: ignore[attr-defined]
    assert set(metadata) == set(expected_metadata), f"ResponseMetadata: {metadata}, boto3 {expected_metadata}"
    assert metadata["RetryAttempts"] == expected_metadata["RetryAttempts"] == expected - 1


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("fault", "mode", "expected"),
    [
        ("throttling", "legacy", 3),
        ("throttling", "standard", 3),
        ("internal-failure", "legacy", 3),
        ("internal-failure", "adaptive", 3),
        ("model-error", "standard", 1),
        ("validation", "standard", 1),
    ],
)
def test_which_errors_are_retried(
    isolated: Any,
    endpoint: EmulatorThread,
    no_backoff: None,
    flavour: str,
    fault: str,
    mode: str,
    expected: int,
) -> None:
    config = botocore.config.Config(retries={"mode": mode, "total_max_attempts": 3})
    kwargs = {"region_name": "us-east-1", "endpoint_url": endpoint.url, "config": config, **FAKE_KEYS}
    assert_same_attempts(run_both(endpoint, flavour, kwargs, fault=fault), expected)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_response_after_a_retry_describes_the_successful_attempt(
    isolated: Any, endpoint: EmulatorThread, no_backoff: None, flavour: str
) -> None:
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 3})
    kwargs = {"region_name": "us-east-1", "endpoint_url": endpoint.url, "config": config, **FAKE_KEYS}
    seen = run_both(endpoint, flavour, kwargs, fault="service-unavailable", fault_times=1, tokens=3)
    (oracle, _), (ours, _) = seen["boto3"], seen["evstream"]
    assert oracle.stage == ours.stage == "done", f"evstream {ours}\nboto3    {oracle}"
    assert ours.events == oracle.events
    assert oracle.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert_same_response(ours.response, oracle.response)
    assert_same_attempts(seen, 2)


# -- user agent ---------------------------------------------------------------------------------------

# Tokens that name boto3 itself or the features a call used (they differ by design between the two).
_PER_CLIENT_TOKEN = re.compile(r"^(m/|Boto3/|md/Botocore#|Botocore/)")


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("source", ["Config", "AWS_SDK_UA_APP_ID", "profile"])
def test_user_agent(
    profiles: Profiles, monkeypatch: pytest.MonkeyPatch, endpoint: EmulatorThread, flavour: str, source: str
) -> None:
    options: dict[str, Any] = {"user_agent_extra": "fidelity/1.0 tenant"}
    if source == "Config":
        options["user_agent_appid"] = "tenant-app"
    elif source == "AWS_SDK_UA_APP_ID":
        monkeypatch.setenv("AWS_SDK_UA_APP_ID", "tenant-app")
    else:
        profiles.config("[default]\nsdk_ua_app_id = tenant-app\n")
    kwargs = {
        "region_name": "us-east-1",
        "endpoint_url": endpoint.url,
        "config": botocore.config.Config(**options),
        **FAKE_KEYS,
    }
    seen = run_both(endpoint, flavour, kwargs, tokens=1)
    agents = {name: requests[0].headers.get("user-agent", "") for name, (_, requests) in seen.items()}
    assert "app/tenant-app" in agents["boto3"].split(), agents
    assert agents["evstream"].endswith(" fidelity/1.0 tenant"), agents
    missing = [
        t for t in agents["boto3"].split() if not _PER_CLIENT_TOKEN.match(t) and t not in agents["evstream"]
    ]
    assert not missing, (
        f"User-Agent lacks boto3's {missing}:\nevstream {agents['evstream']}\nboto3    {agents['boto3']}"
    )


# -- TLS trust: profile ca_bundle, AWS_CA_BUNDLE, verify ----------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("source", ["none", "profile-ca_bundle", "AWS_CA_BUNDLE", "verify-False"])
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_ca_bundle_sources(
    profiles: Profiles,
    monkeypatch: pytest.MonkeyPatch,
    tls_endpoint: EmulatorThread,
    certificate: Path,
    flavour: str,
    source: str,
) -> None:
    kwargs: dict[str, Any] = {
        "region_name": "us-east-1",
        "endpoint_url": f"https://localhost:{port_of(tls_endpoint)}",
        "config": botocore.config.Config(retries={"total_max_attempts": 1}),
        **FAKE_KEYS,
    }
    if source == "profile-ca_bundle":
        profiles.config(f"[default]\nca_bundle = {certificate}\n")
    elif source == "AWS_CA_BUNDLE":
        monkeypatch.setenv("AWS_CA_BUNDLE", str(certificate))
    elif source == "verify-False":
        kwargs["verify"] = False
    seen = run_both(tls_endpoint, flavour, kwargs, tokens=2)
    oracle = seen["boto3"][0]
    assert oracle.stage == ("call" if source == "none" else "done"), oracle
    assert len(seen["evstream"][0].events) == len(oracle.events)


@pytest.fixture(scope="module")
def mtls_endpoint(certificate: Path) -> Iterator[EmulatorThread]:
    """The local endpoint over HTTPS that also requires a client certificate (the test certificate)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, certificate.with_name("key.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(certificate)
    with EmulatorThread(ssl=context, credentials={ACCESS_KEY: SECRET_KEY}) as server:
        yield server


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("client_cert", ["pair", "none"])
def test_client_certificate(
    isolated: Any, mtls_endpoint: EmulatorThread, certificate: Path, flavour: str, client_cert: str
) -> None:
    options: dict[str, Any] = {}
    if client_cert == "pair":
        options["client_cert"] = (str(certificate), str(certificate.with_name("key.pem")))
    kwargs = {
        "region_name": "us-east-1",
        "endpoint_url": f"https://localhost:{port_of(mtls_endpoint)}",
        "verify": str(certificate),
        "config": one_attempt(**options),
        **FAKE_KEYS,
    }
    # Without a certificate the handshake fails either in the handshake (SSLError) or at the first
    # read (ConnectionClosedError), whichever the TLS 1.3 timing gives, boto3 included.
    seen = run_both(mtls_endpoint, flavour, kwargs, compare=client_cert == "pair", tokens=2)
    (oracle, _), (ours, _) = seen["boto3"], seen["evstream"]
    if client_cert == "pair":
        assert oracle.stage == "done" and len(ours.events) == len(oracle.events) == 2, (ours, oracle)
    else:
        refused = (botocore.exceptions.SSLError, botocore.exceptions.ConnectionClosedError)
        assert isinstance(oracle.error, refused), oracle
        assert isinstance(ours.error, refused), f"evstream {ours}\nboto3    {oracle}"


# -- UNSIGNED -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_endpoint() -> Iterator[EmulatorThread]:
    """The local endpoint without signature checks (for UNSIGNED)."""
    with EmulatorThread() as server:
        yield server


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_unsigned_sends_no_signature_and_needs_no_credentials(
    isolated: Any, open_endpoint: EmulatorThread, flavour: str
) -> None:
    config = botocore.config.Config(signature_version=botocore.UNSIGNED)
    kwargs = {"region_name": "us-east-1", "endpoint_url": open_endpoint.url, "config": config}
    seen = run_both(open_endpoint, flavour, kwargs, tokens=2)
    for name, (outcome, requests) in seen.items():
        assert outcome.stage == "done", f"{name}: {outcome}"
        assert len(requests) == 1 and "authorization" not in requests[0].headers, f"{name}: {requests}"
        assert "x-amz-date" not in requests[0].headers, f"{name}: {requests[0].headers}"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_no_credentials_raises_botocore_no_credentials_error(
    isolated: Any, open_endpoint: EmulatorThread, flavour: str
) -> None:
    kwargs = {"region_name": "us-east-1", "endpoint_url": open_endpoint.url}
    seen = run_both(open_endpoint, flavour, kwargs, tokens=2)
    for name, (outcome, requests) in seen.items():
        assert isinstance(outcome.error, botocore.exceptions.NoCredentialsError), f"{name}: {outcome}"
        assert requests == [], f"{name} sent a request without credentials"


# -- parameter validation -----------------------------------------------------------------------------

INVALID_PARAMS: dict[str, dict[str, Any]] = {
    "EndpointName-not-a-string": {"EndpointName": 123},
    "Accept-not-a-string": {"Accept": 5},
    "unknown-parameter": {"Bogus": "1"},
    "Body-not-bytes": {"Body": 12},
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", list(INVALID_PARAMS))
def test_invalid_parameters_raise_param_validation_error(
    isolated: Any, endpoint: EmulatorThread, flavour: str, case: str
) -> None:
    kwargs = {"region_name": "us-east-1", "endpoint_url": endpoint.url, **FAKE_KEYS}
    outcomes = {}
    for name in ("boto3", "evstream"):
        params = {**stream_params(tokens=1), **INVALID_PARAMS[case]}
        before = len(endpoint.emulator.requests)
        if name == "boto3":
            outcomes[name] = boto3_stream("sagemaker-runtime", kwargs, params)
        else:
            outcomes[name] = evstream_stream(flavour, "sagemaker-runtime", kwargs, params)
        assert isinstance(outcomes[name].error, botocore.exceptions.ParamValidationError), (
            f"{name}: {outcomes[name]}"
        )
        assert len(endpoint.emulator.requests) == before, f"{name} sent a request with invalid parameters"
    assert_same_failure(outcomes["evstream"], outcomes["boto3"])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_parameter_validation_off_sends_what_boto3_sends(
    isolated: Any, endpoint: EmulatorThread, flavour: str
) -> None:
    config = botocore.config.Config(parameter_validation=False)
    kwargs = {"region_name": "us-east-1", "endpoint_url": endpoint.url, "config": config, **FAKE_KEYS}
    sent = {}
    for name in ("boto3", "evstream"):
        params = {**stream_params(tokens=1), "EndpointName": 123, "Accept": 5}
        if name == "boto3":
            outcome = boto3_stream("sagemaker-runtime", kwargs, params)
        else:
            outcome = evstream_stream(flavour, "sagemaker-runtime", kwargs, params)
        assert outcome.stage == "done", f"{name}: {outcome}"
        (request,) = received(endpoint, params)
        sent[name] = (request.path, request.headers.get("x-amzn-sagemaker-accept"))
    assert sent["evstream"] == sent["boto3"] == ("/endpoints/123/invocations-response-stream", "5"), sent


# -- connection pool size -----------------------------------------------------------------------------

POOL = 12
# As many streams as the pool holds: a pool that caps concurrency (aiohttp) and one that does not
# (urllib3, as botocore sets it up) must then both hold POOL connections at once and keep them.
CONCURRENT = POOL


def _concurrent_streams(runtime: Any) -> None:
    """CONCURRENT streams from threads, all open at once: each reads its body only once every stream
    has its response headers (so each holds a connection), then all are read to the end."""
    all_open = threading.Barrier(CONCURRENT)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            response = runtime.invoke_endpoint_with_response_stream(**stream_params(tokens=2))
            all_open.wait(5)
            list(response["Body"])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            all_open.abort()

    threads = [threading.Thread(target=one) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


async def _concurrent_streams_async(runtime: Any) -> None:
    opened = 0
    all_open = asyncio.Event()

    async def one() -> None:
        nonlocal opened
        response = await runtime.invoke_endpoint_with_response_stream(**stream_params(tokens=2))
        opened += 1
        if opened == CONCURRENT:
            all_open.set()
        try:
            await asyncio.wait_for(all_open.wait(), 5)
        except asyncio.TimeoutError:
            raise AssertionError(f"only {opened} of {CONCURRENT} streams could be open at once") from None
        [event async for event in response["Body"]]

    await asyncio.gather(*(one() for _ in range(CONCURRENT)))


def _settled(server: EmulatorThread, expected: int) -> int:
    """Open connections at the endpoint, once they reach ``expected`` (or after 5 s)."""
    deadline = time.monotonic() + 5
    while server.emulator.open_connections != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.emulator.open_connections


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_max_pool_connections_is_honoured(isolated: Any, flavour: str) -> None:
    """With ``Config(max_pool_connections=12)``, 12 streams can be open at once and the pool keeps the
    12 connections afterwards, as boto3's does."""
    config = botocore.config.Config(max_pool_connections=POOL)
    with EmulatorThread() as server:
        kwargs: dict[str, Any] = {"region_name": "us-east-1", "endpoint_url": server.url, **FAKE_KEYS}
        oracle = boto3.client("sagemaker-runtime", config=config, **kwargs)
        _concurrent_streams(oracle)
        kept_by_boto3 = _settled(server, POOL)
        oracle.close()
        assert _settled(server, 0) == 0
        assert kept_by_boto3 == POOL, f"boto3 kept {kept_by_boto3} connections"

        if flavour == "sync":
            ours = evstream_client("sync", config=config, **kwargs)
            _concurrent_streams(ours)
            kept = _settled(server, POOL)
            ours.close()
        else:

            async def run() -> int:
                async with evstream_client("async", config=config, **kwargs) as runtime:
                    await _concurrent_streams_async(runtime)
                    return await asyncio.to_thread(_settled, server, POOL)

            kept = asyncio.run(run())
        assert kept == POOL, f"evstream kept {kept} connections open after {CONCURRENT} concurrent streams"
