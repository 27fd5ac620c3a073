"""A pickled client keeps its identity: built from ``session=boto3.Session(profile_name="tenant")`` it
unpickles with the tenant's region and credentials (the local endpoint verifies the signature with the
tenant's keys, scoped to the tenant's region), or pickling refuses with a TypeError saying why."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator

import boto3
import pytest
from fidelity_support import ONE_ATTEMPT, Profiles, body, evstream_client, profiles

from evstream.emulator import EmulatorThread

__all__ = ["profiles"]

TENANT = ("AKIDTENANT", "secret-tenant", "us-west-2")
DEFAULT = ("AKIDDEFAULT", "secret-default", "eu-west-1")


@pytest.fixture(scope="module")
def tenant_endpoint() -> Iterator[EmulatorThread]:
    """Knows both keys but accepts only signatures scoped to the tenant's region."""
    keys = {TENANT[0]: TENANT[1], DEFAULT[0]: DEFAULT[1]}
    with EmulatorThread(credentials=keys, region=TENANT[2]) as server:
        yield server


@pytest.fixture()
def two_profiles(profiles: Profiles) -> Profiles:
    profiles.config(f"[default]\nregion = {DEFAULT[2]}\n\n[profile tenant]\nregion = {TENANT[2]}\n")
    profiles.credentials(
        f"[default]\naws_access_key_id = {DEFAULT[0]}\naws_secret_access_key = {DEFAULT[1]}\n\n"
        f"[tenant]\naws_access_key_id = {TENANT[0]}\naws_secret_access_key = {TENANT[1]}\n"
    )
    return profiles


def signed_with(server: EmulatorThread, payload: bytes) -> tuple[str, bool | None]:
    (request,) = [r for r in server.emulator.requests if r.body == payload]
    credential = request.headers["authorization"].split("Credential=", 1)[1].split(",", 1)[0]
    access_key, _, region = credential.split("/")[:3]
    return f"{access_key}/{region}", request.signature_valid


def test_the_oracle_signs_as_the_tenant(two_profiles: Profiles, tenant_endpoint: EmulatorThread) -> None:
    session = boto3.Session(profile_name="tenant")
    client = session.client("sagemaker-runtime", endpoint_url=tenant_endpoint.url, config=ONE_ATTEMPT)
    payload = body(tokens=1)
    list(client.invoke_endpoint_with_response_stream(EndpointName="tenant", Body=payload)["Body"])
    assert signed_with(tenant_endpoint, payload) == (f"{TENANT[0]}/{TENANT[2]}", True)


def test_pickled_client_keeps_the_tenant(two_profiles: Profiles, tenant_endpoint: EmulatorThread) -> None:
    session = boto3.Session(profile_name="tenant")
    client = evstream_client("sync", session=session, endpoint_url=tenant_endpoint.url, config=ONE_ATTEMPT)
    blob = pickle.dumps(client)
    client.close()
    assert TENANT[1].encode() not in blob, (
        "the profile's secret key was pickled (the profile name should travel)"
    )
    restored = pickle.loads(blob)
    try:
        assert restored.meta.region_name == TENANT[2]
        payload = body(tokens=2)
        response = restored.invoke_endpoint_with_response_stream(EndpointName="tenant", Body=payload)
        assert len(list(response["Body"])) == 2
        assert signed_with(tenant_endpoint, payload) == (f"{TENANT[0]}/{TENANT[2]}", True)
    finally:
        restored.close()


def test_pickled_async_client_keeps_the_tenant(
    two_profiles: Profiles, tenant_endpoint: EmulatorThread
) -> None:
    session = boto3.Session(profile_name="tenant")
    payload = body(tokens=2)

    async def build() -> bytes:
        return pickle.dumps(evstream_client("async", session=session, endpoint_url=tenant_endpoint.url))

    async def use(blob: bytes) -> int:
        async with pickle.loads(blob) as runtime:
            assert runtime.meta.region_name == TENANT[2]
            response = await runtime.invoke_endpoint_with_response_stream(EndpointName="tenant", Body=payload)
            return len([event async for event in response["Body"]])

    assert asyncio.run(use(asyncio.run(build()))) == 2
    assert signed_with(tenant_endpoint, payload) == (f"{TENANT[0]}/{TENANT[2]}", True)


def test_explicit_settings_travel(two_profiles: Profiles, tenant_endpoint: EmulatorThread) -> None:
    client = evstream_client(
        "sync",
        region_name=TENANT[2],
        endpoint_url=tenant_endpoint.url,
        aws_access_key_id=TENANT[0],
        aws_secret_access_key=TENANT[1],
        config=ONE_ATTEMPT,
    )
    restored = pickle.loads(pickle.dumps(client))
    client.close()
    try:
        payload = body(tokens=1)
        list(restored.invoke_endpoint_with_response_stream(EndpointName="tenant", Body=payload)["Body"])
        assert signed_with(tenant_endpoint, payload) == (f"{TENANT[0]}/{TENANT[2]}", True)
    finally:
        restored.close()


def test_session_with_injected_credentials_refuses_to_pickle(
    two_profiles: Profiles, tenant_endpoint: EmulatorThread
) -> None:
    session = boto3.Session(
        aws_access_key_id=TENANT[0], aws_secret_access_key=TENANT[1], region_name=TENANT[2]
    )
    client = evstream_client("sync", session=session, endpoint_url=tenant_endpoint.url)
    try:
        with pytest.raises(TypeError, match=r"(?i)credential") as caught:
            pickle.dumps(client)
        assert TENANT[1] not in str(caught.value), "the message must not show the secret"
    finally:
        client.close()
