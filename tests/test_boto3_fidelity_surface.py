"""The client surface next to the fast path, against boto3: the streaming response itself, the delegated
operations (``invoke_endpoint``, ``invoke_endpoint_async``), ``meta``, ``exceptions``, and turning an
existing boto3 client into a fast one."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.eventstream
import botocore.exceptions
import pytest
from fidelity_support import (
    FAKE_KEYS,
    FLAVOURS,
    Profiles,
    assert_same_response,
    body,
    boto3_stream,
    endpoint,
    evstream_client,
    evstream_stream,
    evstream_streams,
    isolated,
    profiles,
    stream_params,
)

from evstream.emulator import EmulatorThread

__all__ = ["endpoint", "isolated", "profiles"]


def kwargs_for(server: EmulatorThread, **extra: Any) -> dict[str, Any]:
    return {"region_name": "us-east-1", "endpoint_url": server.url, **FAKE_KEYS, **extra}


# -- the streaming response ---------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("service", ["sagemaker-runtime", "bedrock-runtime"])
def test_stream_response_matches(isolated: Any, endpoint: EmulatorThread, flavour: str, service: str) -> None:
    extra = (
        {"CustomAttributes": "tenant=1", "TargetVariant": "blue"} if service == "sagemaker-runtime" else {}
    )
    emulator = {"tokens": 6, "straddle": True, "chunk_events": 2}
    oracle = boto3_stream(service, kwargs_for(endpoint), {**stream_params(service, **emulator), **extra})
    ours = evstream_stream(
        flavour, service, kwargs_for(endpoint), {**stream_params(service, **emulator), **extra}
    )
    assert oracle.stage == "done" and len(oracle.events) >= 6, oracle
    assert ours.stage == "done", ours
    assert ours.events == oracle.events
    assert_same_response(ours.response, oracle.response)


# -- delegated operations -----------------------------------------------------------------------------


def test_invoke_endpoint_is_delegated(isolated: Any, endpoint: EmulatorThread) -> None:
    oracle_client = boto3.client("sagemaker-runtime", **kwargs_for(endpoint))
    ours_client = evstream_client("sync", **kwargs_for(endpoint))
    try:
        payload = body(tokens=4)
        expected = oracle_client.invoke_endpoint(
            EndpointName="fidelity", Body=payload, CustomAttributes="a=1"
        )
        got = ours_client.invoke_endpoint(EndpointName="fidelity", Body=payload, CustomAttributes="a=1")
        assert got["Body"].read() == expected["Body"].read()
        del got["Body"], expected["Body"]
        assert_same_response(got, expected)
    finally:
        oracle_client.close()
        ours_client.close()


def test_invoke_endpoint_async_is_delegated(isolated: Any, endpoint: EmulatorThread) -> None:
    """The local endpoint has no async-invocations route: both clients send it and get its 404."""
    errors = []
    for client in (
        boto3.client("sagemaker-runtime", **kwargs_for(endpoint)),
        evstream_client("sync", **kwargs_for(endpoint)),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            client.invoke_endpoint_async(EndpointName="fidelity", InputLocation="s3://bucket/input.json")
        client.close()
        errors.append(caught.value)
        assert endpoint.emulator.requests[-1].path == "/endpoints/fidelity/async-invocations"
    assert errors[1].response["Error"] == errors[0].response["Error"]
    assert type(errors[1]).__name__ == type(errors[0]).__name__


# -- meta ---------------------------------------------------------------------------------------------

META_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "partition-and-config": (
        "",
        {
            "region_name": "us-iso-east-1",
            "config": botocore.config.Config(
                retries={"mode": "standard", "max_attempts": 2},
                user_agent_extra="fidelity/1",
                read_timeout=7,
                use_fips_endpoint=True,
                max_pool_connections=25,
            ),
        },
    ),
    "endpoint_url": ("", {"region_name": "eu-west-1", "endpoint_url": "https://vpce.internal.test:8443"}),
    "profile-region": ("[default]\nregion = cn-north-1\nretry_mode = adaptive\n", {}),
}


def _meta(client: Any, given_pool: bool) -> dict[str, Any]:
    config = client.meta.config
    return {
        "region_name": client.meta.region_name,
        "endpoint_url": client.meta.endpoint_url,
        "partition": client.meta.partition,
        "service": client.meta.service_model.service_name,
        "retries": config.retries,
        "user_agent_extra": config.user_agent_extra,
        "read_timeout": config.read_timeout,
        "connect_timeout": config.connect_timeout,
        "signature_version": config.signature_version,
        # evstream's default pool is larger than botocore's 10 (on purpose); a value given is kept.
        "max_pool_connections": config.max_pool_connections if given_pool else None,
    }


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", list(META_CASES))
def test_meta_matches(profiles: Profiles, flavour: str, case: str) -> None:
    config_file, kwargs = META_CASES[case]
    given_pool = "config" in kwargs and kwargs["config"].max_pool_connections != 10
    profiles.config(config_file)
    expected = _meta(boto3.client("sagemaker-runtime", **kwargs, **FAKE_KEYS), given_pool)

    async def in_loop() -> dict[str, Any]:
        async with evstream_client("async", **kwargs, **FAKE_KEYS) as runtime:
            return _meta(runtime, given_pool)

    if flavour == "sync":
        client = evstream_client("sync", **kwargs, **FAKE_KEYS)
        got = _meta(client, given_pool)
        client.close()
    else:
        got = asyncio.run(in_loop())
    assert got == expected


# -- exceptions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("service", ["sagemaker-runtime", "bedrock-runtime"])
def test_exceptions_are_botocores(isolated: Any, flavour: str, service: str) -> None:
    oracle = boto3.client(service, region_name="us-east-1", **FAKE_KEYS)
    codes = sorted(oracle.exceptions._code_to_exception)
    assert codes, "boto3 models no exceptions for this service?"

    async def in_loop() -> Any:
        async with evstream_client("async", service, region_name="us-east-1", **FAKE_KEYS) as runtime:
            return runtime.exceptions

    if flavour == "sync":
        exceptions = evstream_client("sync", service, region_name="us-east-1", **FAKE_KEYS).exceptions
    else:
        exceptions = asyncio.run(in_loop())
    assert exceptions.ClientError is botocore.exceptions.ClientError
    for code in codes:
        cls = getattr(exceptions, code, None)
        assert cls is not None, f"client.exceptions lacks {code}"
        assert issubclass(cls, botocore.exceptions.ClientError), cls.__mro__
        assert cls.__name__ == code
        assert exceptions.from_code(code) is cls
    assert exceptions.from_code("NotAModelledCode") is botocore.exceptions.ClientError


# -- an existing boto3 client made fast ---------------------------------------------------------------


def test_wrapping_an_existing_boto3_client(isolated: Any, endpoint: EmulatorThread) -> None:
    config = botocore.config.Config(user_agent_appid="wrapped-app", retries={"total_max_attempts": 1})
    original = boto3.client("sagemaker-runtime", config=config, **kwargs_for(endpoint))
    import evstream.sagemaker as sm

    fast = sm.client(original)
    try:
        assert fast.meta.region_name == original.meta.region_name
        assert fast.meta.endpoint_url == original.meta.endpoint_url
        payload = body(tokens=3)
        response = fast.invoke_endpoint_with_response_stream(EndpointName="fidelity", Body=payload)
        assert len(list(response["Body"])) == 3
        (request,) = [r for r in endpoint.emulator.requests if r.body == payload]
        assert request.signature_valid, "signed with the boto3 client's credentials"
        assert "app/wrapped-app" in request.headers.get("user-agent", "").split(), request.headers
        answer = fast.invoke_endpoint(EndpointName="fidelity", Body=body(tokens=1))
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        fast.close()
        original.close()


@pytest.mark.parametrize("service", ["sagemaker-runtime", "bedrock-runtime"])
def test_get_initial_response(isolated: Any, endpoint: EmulatorThread, service: str) -> None:
    """These services send no initial-response event: both raise NoInitialResponseError. boto3 loses
    the event it looked at; evstream keeps it (README, "Differences from boto3")."""
    operation, body_key = (
        ("invoke_endpoint_with_response_stream", "Body")
        if service == "sagemaker-runtime"
        else ("invoke_model_with_response_stream", "body")
    )
    results = []
    for client in (
        boto3.client(service, **kwargs_for(endpoint)),
        evstream_client("sync", service, **kwargs_for(endpoint)),
    ):
        stream = getattr(client, operation)(**stream_params(service, tokens=3))[body_key]
        with pytest.raises(botocore.eventstream.NoInitialResponseError):
            stream.get_initial_response()
        results.append(len(list(stream)))
        client.close()
    assert results[1] == results[0] + 1, (
        f"events left after get_initial_response: evstream {results[1]}, boto3 {results[0]}"
    )


# -- Bedrock specifics: API keys (bearer tokens), model ids with dot segments ---------------------------


@pytest.fixture(scope="module")
def open_endpoint() -> Iterator[EmulatorThread]:
    """The local endpoint without signature checks (bearer tokens are not SigV4)."""
    with EmulatorThread() as server:
        yield server


def _bedrock_requests(flavour: str, server: EmulatorThread, model_ids: list[str]) -> dict[str, list[Any]]:
    """The requests boto3 and evstream sent for the same model ids (one call each)."""
    kwargs = {"region_name": "us-east-1", "endpoint_url": server.url}
    sent: dict[str, list[Any]] = {}
    for name in ("boto3", "evstream"):
        calls = [{"modelId": model_id, "body": body(tokens=1)} for model_id in model_ids]
        if name == "boto3":
            outcomes = [boto3_stream("bedrock-runtime", kwargs, params) for params in calls]
        else:
            outcomes = evstream_streams(flavour, "bedrock-runtime", kwargs, calls)
        assert [o.stage for o in outcomes] == ["done"] * len(calls), f"{name}: {[str(o) for o in outcomes]}"
        sent[name] = [next(r for r in server.emulator.requests if r.body == c["body"]) for c in calls]
    return sent


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_bedrock_api_key_is_sent_as_boto3_sends_it(
    isolated: Any, monkeypatch: pytest.MonkeyPatch, open_endpoint: EmulatorThread, flavour: str
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-fidelity")
    sent = _bedrock_requests(flavour, open_endpoint, ["model-a"])
    expected = sent["boto3"][0].headers.get("authorization")
    assert expected == "Bearer bedrock-api-key-fidelity", "the oracle did not use the API key"
    assert sent["evstream"][0].headers.get("authorization") == expected


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_bedrock_model_ids_keep_their_dot_segments(
    isolated: Any, open_endpoint: EmulatorThread, flavour: str
) -> None:
    model_ids = [
        ".",
        "..",
        "a/../b",
        "anthropic.claude-v2:1",
        "arn:aws:bedrock:us-east-1::foundation-model/x.y",
    ]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEYS["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_KEYS["aws_secret_access_key"])
        sent = _bedrock_requests(flavour, open_endpoint, model_ids)
    paths = {name: [r.path for r in requests] for name, requests in sent.items()}
    # The same model id once percent-decoding is undone (evstream may encode a lone "." or ".." as
    # %2E so that nothing on the way treats it as a dot segment); none is collapsed.
    for model_id, ours, theirs in zip(model_ids, paths["evstream"], paths["boto3"]):
        assert urllib.parse.unquote(ours) == urllib.parse.unquote(theirs), paths
        segment = ours.split("/")[2]
        assert urllib.parse.unquote(segment) == model_id, f"{model_id!r} sent as {ours!r}"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_userinfo_in_endpoint_url_is_not_shown(isolated: Any, flavour: str) -> None:
    """A password in ``endpoint_url`` stays out of the client's repr and its errors (boto3 shows it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    kwargs = {
        "region_name": "us-east-1",
        "endpoint_url": f"http://user:hunter2secret@127.0.0.1:{port}",
        "config": botocore.config.Config(retries={"total_max_attempts": 1}),
        **FAKE_KEYS,
    }
    outcome = evstream_stream(flavour, "sagemaker-runtime", kwargs, stream_params(tokens=1))
    assert isinstance(outcome.error, botocore.exceptions.EndpointConnectionError), outcome
    assert "hunter2secret" not in str(outcome.error) and "hunter2secret" not in repr(outcome.error)
    client = evstream_client("sync", **kwargs)
    try:
        assert "hunter2secret" not in repr(client)
    finally:
        client.close()
