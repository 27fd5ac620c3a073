"""TLS is verified by default, against a given bundle, or off on request."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_support import body, certificate

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
import evstream.sagemaker as sm
from evstream.emulator import EmulatorThread

__all__ = ["certificate"]

KEYS = {"aws_access_key_id": "AKIDTLS", "aws_secret_access_key": "tls-secret", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def tls_endpoint(certificate: Path) -> Iterator[EmulatorThread]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, certificate.with_name("key.pem"))
    with EmulatorThread(ssl=context) as server:
        assert server.url.startswith("https://127.0.0.1:")
        yield server


def stream(runtime: Any) -> int:
    response = runtime.invoke_endpoint_with_response_stream(EndpointName="tls", Body=body(tokens=3))
    return len(list(response["Body"]))


def test_unknown_certificate_is_refused(tls_endpoint: EmulatorThread) -> None:
    runtime = sm.client(endpoint_url=tls_endpoint.url, max_attempts=1, **KEYS)
    # botocore's SSLError, as boto3 raises it (evstream's TLSFailed).
    with pytest.raises(sm.TLSFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        stream(runtime)


def test_given_bundle_is_trusted(tls_endpoint: EmulatorThread, certificate: Path) -> None:
    runtime = sm.client(endpoint_url=tls_endpoint.url, verify=str(certificate), **KEYS)
    assert stream(runtime) == 3


def test_aws_ca_bundle_is_honoured(
    tls_endpoint: EmulatorThread, certificate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(certificate))
    assert stream(sm.client(endpoint_url=tls_endpoint.url, **KEYS)) == 3


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_off(tls_endpoint: EmulatorThread) -> None:
    assert stream(sm.client(endpoint_url=tls_endpoint.url, verify=False, **KEYS)) == 3


def test_async_client_verifies(tls_endpoint: EmulatorThread, certificate: Path) -> None:
    async def main(verify: Any) -> int:
        async with sm.async_client(
            endpoint_url=tls_endpoint.url, verify=verify, max_attempts=1, **KEYS
        ) as runtime:
            response = await runtime.invoke_endpoint_with_response_stream(
                EndpointName="tls", Body=body(tokens=2)
            )
            return len([event async for event in response["Body"]])

    assert asyncio.run(main(str(certificate))) == 2
    with pytest.raises(sm.TLSFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        asyncio.run(main(True))
