"""Proxies as boto3 uses them: HTTPS_PROXY/https_proxy/HTTP_PROXY, NO_PROXY, Config(proxies=...), and an
endpoint URL with an explicit default port, sync and asyncio, checked against boto3 through the
recording proxy. Where the proxy tunnels to the local endpoint, the call must succeed end to end with the
endpoint verifying the SigV4 signature (so the Host that was signed is the Host that was sent)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from fidelity_support import (
    FAKE_KEYS,
    FLAVOURS,
    assert_same_failure,
    boto3_stream,
    certificate,
    endpoint,
    evstream_stream,
    isolated,
    one_attempt,
    port_of,
    received,
    stream_params,
    tls_endpoint,
)
from recording_proxy import RecordingProxy

from evstream.emulator import EmulatorThread

__all__ = ["certificate", "endpoint", "isolated", "tls_endpoint"]

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there


def run_both(
    proxy: RecordingProxy, flavour: str, client_kwargs: dict[str, Any], server: EmulatorThread | None = None
) -> dict[str, Any]:
    """The call in boto3 then evstream; the proxy's records and the endpoint's requests of each."""
    seen: dict[str, Any] = {}
    for name in ("boto3", "evstream"):
        proxy.clear()
        params = stream_params(tokens=2)
        if name == "boto3":
            outcome = boto3_stream("sagemaker-runtime", client_kwargs, params)
        else:
            outcome = evstream_stream(flavour, "sagemaker-runtime", client_kwargs, params)
        requests = received(server, params) if server is not None else []
        seen[name] = (outcome, proxy.requests, requests)
    (oracle, proxied_oracle, _), (ours, proxied_ours, _) = seen["boto3"], seen["evstream"]
    assert [(r.method, r.target) for r in proxied_ours] == [(r.method, r.target) for r in proxied_oracle], (
        f"proxy saw from evstream {proxied_ours}\nfrom boto3 {proxied_oracle}\nevstream {ours}\nboto3    {oracle}"
    )
    assert_same_failure(ours, oracle)
    return seen


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    "source", ["HTTPS_PROXY", "https_proxy", "Config.proxies", "Config.proxies-over-env"]
)
def test_https_proxy_sources(
    isolated: Any, monkeypatch: pytest.MonkeyPatch, flavour: str, source: str
) -> None:
    with RecordingProxy() as proxy:
        options: dict[str, Any] = {}
        if source in ("HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(source, proxy.url)
        else:
            options["proxies"] = {"https": proxy.url}
            if source.endswith("over-env"):
                monkeypatch.setenv("HTTPS_PROXY", DEAD_PROXY)
        kwargs = {"region_name": "us-iso-east-1", "config": one_attempt(**options), **FAKE_KEYS}
        seen = run_both(proxy, flavour, kwargs)
        oracle, proxied, _ = seen["boto3"]
        assert [r.target for r in proxied] == ["runtime.sagemaker.us-iso-east-1.c2s.ic.gov:443"], proxied
        assert oracle.stage == "call"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("source", ["HTTP_PROXY", "Config.proxies"])
def test_http_endpoint_is_forwarded(
    isolated: Any, monkeypatch: pytest.MonkeyPatch, endpoint: EmulatorThread, flavour: str, source: str
) -> None:
    """Plain HTTP goes to the proxy as an absolute URI; the proxy forwards it to the local endpoint."""
    url = f"http://localhost:{port_of(endpoint)}"
    with RecordingProxy(routes={f"localhost:{port_of(endpoint)}": port_of(endpoint)}) as proxy:
        options: dict[str, Any] = {}
        if source == "HTTP_PROXY":
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
        else:
            options["proxies"] = {"http": proxy.url}
        kwargs = {
            "region_name": "us-east-1",
            "endpoint_url": url,
            "config": one_attempt(**options),
            **FAKE_KEYS,
        }
        seen = run_both(proxy, flavour, kwargs, endpoint)
        for name, (outcome, proxied, requests) in seen.items():
            assert outcome.stage == "done" and len(outcome.events) == 2, f"{name}: {outcome}"
            assert [r.method for r in proxied] == ["POST"], f"{name}: {proxied}"
            assert proxied[0].target.startswith(f"{url}/endpoints/fidelity/"), f"{name}: {proxied}"
            assert [r.signature_valid for r in requests] == [True], f"{name}: {requests}"
        assert seen["evstream"][2][0].headers["host"] == seen["boto3"][2][0].headers["host"]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    "setup", ["tunnel", "NO_PROXY-host", "NO_PROXY-star", "NO_PROXY-with-Config.proxies"]
)
def test_no_proxy(
    isolated: Any,
    monkeypatch: pytest.MonkeyPatch,
    tls_endpoint: EmulatorThread,
    certificate: Path,
    flavour: str,
    setup: str,
) -> None:
    """NO_PROXY exempts a host from the environment's proxy (the proxy then sees nothing)."""
    port = port_of(tls_endpoint)
    with RecordingProxy(routes={f"localhost:{port}": port}) as proxy:
        options: dict[str, Any] = {}
        if setup == "NO_PROXY-with-Config.proxies":
            options["proxies"] = {"https": proxy.url}
        else:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        if setup != "tunnel":
            monkeypatch.setenv("NO_PROXY", "*" if setup == "NO_PROXY-star" else "example.test,localhost")
        kwargs = {
            "region_name": "us-east-1",
            "endpoint_url": f"https://localhost:{port}",
            "verify": str(certificate),
            "config": one_attempt(**options),
            **FAKE_KEYS,
        }
        seen = run_both(proxy, flavour, kwargs, tls_endpoint)
        for name, (outcome, _, requests) in seen.items():
            assert outcome.stage == "done", f"{name}: {outcome}"
            assert [r.signature_valid for r in requests] == [True], f"{name}: {requests}"
        if setup in ("NO_PROXY-host", "NO_PROXY-star"):
            assert seen["boto3"][1] == [], "boto3 was expected to bypass the proxy"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_explicit_default_port_signs_and_works(
    isolated: Any,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: EmulatorThread,
    tls_endpoint: EmulatorThread,
    certificate: Path,
    flavour: str,
    scheme: str,
) -> None:
    """``https://localhost:443`` (``http://localhost:80``): the proxy carries it to the local endpoint,
    which checks the signature over the Host header it received."""
    server, default_port = (tls_endpoint, 443) if scheme == "https" else (endpoint, 80)
    with RecordingProxy(routes={f"localhost:{default_port}": port_of(server)}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY", proxy.url)
        kwargs = {
            "region_name": "us-east-1",
            "endpoint_url": f"{scheme}://localhost:{default_port}",
            "verify": str(certificate),
            "config": one_attempt(),
            **FAKE_KEYS,
        }
        seen = run_both(proxy, flavour, kwargs, server)
        for name, (outcome, proxied, requests) in seen.items():
            assert outcome.stage == "done" and len(outcome.events) == 2, f"{name}: {outcome}"
            assert [r.authority for r in proxied] == [f"localhost:{default_port}"], f"{name}: {proxied}"
            assert [r.signature_valid for r in requests] == [True], f"{name}: {requests}"
        assert seen["evstream"][2][0].headers["host"] == seen["boto3"][2][0].headers["host"]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("trust", ["proxy_ca_bundle", "none"])
def test_https_proxy_with_proxies_config(isolated: Any, certificate: Path, flavour: str, trust: str) -> None:
    """An HTTPS proxy: its certificate is checked against ``proxies_config["proxy_ca_bundle"]``; trusted,
    it sees the CONNECT; not trusted, the client gives up in the handshake and the proxy sees nothing."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, certificate.with_name("key.pem"))
    with RecordingProxy(tls=context) as proxy:
        proxies_config = {"proxy_ca_bundle": str(certificate)} if trust == "proxy_ca_bundle" else {}
        config = one_attempt(proxies={"https": proxy.url}, proxies_config=proxies_config)
        seen = run_both(proxy, flavour, {"region_name": "us-isof-south-1", "config": config, **FAKE_KEYS})
        proxied = seen["boto3"][1]
        if trust == "none":
            assert proxied == [], proxied
        else:
            assert [r.target for r in proxied] == ["runtime.sagemaker.us-isof-south-1.csp.hci.ic.gov:443"], (
                proxied
            )
