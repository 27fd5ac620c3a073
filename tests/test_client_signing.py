"""SigV4 (awscrt) checked by the endpoint's own hashlib verifier, and boto3's credential sources."""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_support import body

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
import evstream.sagemaker as sm
from evstream.emulator import EmulatorThread

KEYS = {
    "AKIDONE": "secret-one",
    "AKIDTWO": "secret-two",
    "AKIDENV": "secret-env",
    "AKIDPROFILE": "secret-profile",
}


@pytest.fixture(scope="module")
def signed_endpoint() -> Iterator[EmulatorThread]:
    with EmulatorThread(credentials=KEYS) as server:
        yield server


@pytest.fixture()
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials anywhere but where a test puts them (and no instance metadata lookups)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    # Clients made without a session use boto3's default one, as boto3.client() does: start it anew.
    boto3 = pytest.importorskip("boto3")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def stream(runtime: Any) -> list[Any]:
    return list(
        runtime.invoke_endpoint_with_response_stream(EndpointName="signed", Body=body(tokens=2))["Body"]
    )


def last_access_key(server: EmulatorThread) -> str:
    request = server.emulator.requests[-1]
    assert request.signature_valid is True
    credential = request.headers["authorization"].split("Credential=", 1)[1].split(",", 1)[0]
    access_key, _date, region, service, _ = credential.split("/")
    assert (region, service) == ("us-east-1", "sagemaker")  # signing name sagemaker, not sagemaker-runtime
    return access_key


def test_explicit_keys(signed_endpoint: EmulatorThread, isolated: Path) -> None:
    runtime = sm.client(
        region_name="us-east-1",
        endpoint_url=signed_endpoint.url,
        aws_access_key_id="AKIDONE",
        aws_secret_access_key="secret-one",
    )
    assert len(stream(runtime)) == 2
    assert last_access_key(signed_endpoint) == "AKIDONE"


def test_wrong_secret_is_refused_and_not_retried(signed_endpoint: EmulatorThread, isolated: Path) -> None:
    runtime = sm.client(
        region_name="us-east-1",
        endpoint_url=signed_endpoint.url,
        aws_access_key_id="AKIDONE",
        aws_secret_access_key="wrong",
    )
    before = len(signed_endpoint.emulator.requests)
    with pytest.raises(sm.ServiceError) as info:
        stream(runtime)
    assert info.value.status_code == 403
    assert info.value.code == "InvalidSignatureException"
    assert len(signed_endpoint.emulator.requests) == before + 1


def test_session_token_is_sent_and_signed(signed_endpoint: EmulatorThread, isolated: Path) -> None:
    runtime = sm.client(
        region_name="us-east-1",
        endpoint_url=signed_endpoint.url,
        aws_access_key_id="AKIDTWO",
        aws_secret_access_key="secret-two",
        aws_session_token="token-xyz",
    )
    stream(runtime)
    request = signed_endpoint.emulator.requests[-1]
    assert request.headers["x-amz-security-token"] == "token-xyz"
    assert "x-amz-security-token" in request.headers["authorization"]
    assert request.signature_valid is True


def test_environment(
    signed_endpoint: EmulatorThread, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-env")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    runtime = sm.client(endpoint_url=signed_endpoint.url)
    assert runtime.region == "us-east-1"
    stream(runtime)
    assert last_access_key(signed_endpoint) == "AKIDENV"


def test_shared_profile(signed_endpoint: EmulatorThread, isolated: Path) -> None:
    (isolated / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDONE\naws_secret_access_key = secret-one\n"
        "[dev]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = secret-profile\n"
    )
    (isolated / "config").write_text("[profile dev]\nregion = us-east-1\n")
    runtime = sm.client(endpoint_url=signed_endpoint.url, profile_name="dev")
    stream(runtime)
    assert last_access_key(signed_endpoint) == "AKIDPROFILE"


def test_boto3_session(signed_endpoint: EmulatorThread, isolated: Path) -> None:
    boto3 = pytest.importorskip("boto3")
    session = boto3.Session(
        aws_access_key_id="AKIDTWO", aws_secret_access_key="secret-two", region_name="us-east-1"
    )
    runtime = sm.client(endpoint_url=signed_endpoint.url, session=session)
    stream(runtime)
    assert last_access_key(signed_endpoint) == "AKIDTWO"


def _expiring(minutes: int, access_key: str = "AKIDONE", secret_key: str = "secret-one") -> dict[str, Any]:
    """Credentials as a provider hands them to botocore, expiring in ``minutes``."""
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    return {
        "access_key": access_key,
        "secret_key": secret_key,
        "token": None,
        "expiry_time": expiry.isoformat(),
    }


def _refreshing_session(first: dict[str, Any], refresh: Callable[[], dict[str, Any]]) -> Any:
    """A botocore session whose credentials renew through ``refresh``."""
    import botocore.credentials
    import botocore.session

    session = botocore.session.Session()
    session._credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        first, refresh, "test"
    )
    return session


def test_refreshable_credentials_rotate(signed_endpoint: EmulatorThread, isolated: Path) -> None:
    keys = itertools.cycle([("AKIDONE", "secret-one"), ("AKIDTWO", "secret-two")])

    def refresh() -> dict[str, Any]:
        # Inside botocore's mandatory refresh window, so every signature asks for fresh keys.
        return _expiring(5, *next(keys))

    session = _refreshing_session(refresh(), refresh)
    runtime = sm.client(region_name="us-east-1", endpoint_url=signed_endpoint.url, session=session)
    seen = set()
    for _ in range(3):
        stream(runtime)
        seen.add(last_access_key(signed_endpoint))
    assert seen == {"AKIDONE", "AKIDTWO"}


def test_no_credentials(isolated: Path) -> None:
    """As boto3: the client is made; the call raises botocore's NoCredentialsError before sending."""
    import botocore.exceptions

    runtime = sm.client(region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(botocore.exceptions.NoCredentialsError, match="Unable to locate credentials") as info:
        stream(runtime)
    assert isinstance(info.value, sm.NoCredentialsError)


def test_unsigned(signed_endpoint: EmulatorThread, isolated: Path) -> None:
    runtime = sm.client(region_name="us-east-1", endpoint_url=signed_endpoint.url, sign=False)
    with pytest.raises(sm.ServiceError) as info:
        stream(runtime)
    assert info.value.status_code == 403
    assert "authorization" not in signed_endpoint.emulator.requests[-1].headers


def test_async_client_signs(signed_endpoint: EmulatorThread, isolated: Path) -> None:

    async def main() -> int:
        async with sm.async_client(
            region_name="us-east-1",
            endpoint_url=signed_endpoint.url,
            aws_access_key_id="AKIDTWO",
            aws_secret_access_key="secret-two",
        ) as runtime:
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="signed", Body=body(tokens=3)
            )
            return len([event async for event in response["Body"]])

    assert asyncio.run(main()) == 3
    assert last_access_key(signed_endpoint) == "AKIDTWO"


def test_async_refresh_runs_off_the_event_loop(signed_endpoint: EmulatorThread, isolated: Path) -> None:
    import threading

    threads: list[threading.Thread] = []

    def refresh() -> dict[str, Any]:
        threads.append(threading.current_thread())
        return _expiring(60)

    # Five minutes left: inside botocore's mandatory refresh window, so the first request must refresh.
    session = _refreshing_session(_expiring(5), refresh)

    async def main() -> None:
        async with sm.async_client(
            region_name="us-east-1", endpoint_url=signed_endpoint.url, session=session
        ) as rt:
            response = await rt.invoke_endpoint_with_response_stream(
                EndpointName="signed", Body=body(tokens=1)
            )
            assert len([event async for event in response["Body"]]) == 1

    asyncio.run(main())
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    assert last_access_key(signed_endpoint) == "AKIDONE"


def test_credentials_due_are_refreshed_once_by_the_control_plane(isolated: Path) -> None:
    refreshed: list[int] = []

    def refresh() -> dict[str, Any]:
        refreshed.append(1)
        return _expiring(60)

    session = _refreshing_session(_expiring(5), refresh)
    signed = sm.client(region_name="us-east-1", endpoint_url="http://127.0.0.1:9", session=session)
    unsigned = sm.client(
        region_name="us-east-1", endpoint_url="http://127.0.0.1:9", session=session, sign=False
    )
    assert not unsigned._control.credentials_refresh_needed()  # nothing is signed: nothing to fetch first
    assert signed._control.credentials_refresh_needed()
    signed._control.refresh_credentials()
    assert refreshed == [1]
    assert not signed._control.credentials_refresh_needed()
