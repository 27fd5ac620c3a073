"""The host reached, as a proxy sees it: evstream against boto3 for the same arguments, environment and
profiles (every partition x FIPS x dualstack, endpoint URLs from the environment and from profiles).

boto3 and evstream both go through the recording proxy, which records the CONNECT target and refuses
it (no traffic leaves the machine); the two clients must have asked for the same targets and failed
with the same class (botocore's ProxyConnectionError), or failed alike when building the client (an
endpoint botocore cannot construct).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from fidelity_support import (
    FAKE_KEYS,
    FLAVOURS,
    Outcome,
    Profiles,
    assert_same_failure,
    boto3_stream,
    evstream_stream,
    isolated,
    one_attempt,
    profiles,
    proxy,
    stream_params,
)
from recording_proxy import ProxiedRequest, RecordingProxy

__all__ = ["isolated", "profiles", "proxy"]

REGIONS = (
    "us-west-2",  # aws
    "cn-north-1",  # aws-cn
    "us-gov-west-1",  # aws-us-gov
    "us-iso-east-1",  # aws-iso
    "us-isob-east-1",  # aws-iso-b
    "eu-isoe-west-1",  # aws-iso-e
    "us-isof-south-1",  # aws-iso-f
    "eusc-de-east-1",  # aws-eusc
)
SERVICES = ("sagemaker-runtime", "bedrock-runtime")


def assert_same_route(
    proxy: RecordingProxy,
    flavour: str,
    client_kwargs: dict[str, Any],
    service: str = "sagemaker-runtime",
    *,
    expect_proxy: bool = True,
) -> tuple[Outcome, list[ProxiedRequest]]:
    """Run the streaming call in boto3, then in evstream; both must ask the proxy for the same targets
    and end the same way. Returns boto3's outcome and what the proxy saw from it."""
    proxy.clear()
    oracle = boto3_stream(service, client_kwargs, stream_params(service, tokens=1))
    seen_oracle = proxy.requests
    proxy.clear()
    ours = evstream_stream(flavour, service, client_kwargs, stream_params(service, tokens=1))
    seen_ours = proxy.requests
    if expect_proxy:
        assert oracle.stage == "build" or seen_oracle, f"the oracle did not use the proxy: {oracle}"
    described = [(r.method, r.target) for r in seen_oracle]
    assert [(r.method, r.target) for r in seen_ours] == described, (
        f"proxy saw from evstream {[(r.method, r.target) for r in seen_ours]}, from boto3 {described}"
        f"\nevstream {ours}\nboto3    {oracle}"
    )
    for mine, theirs in zip(seen_ours, seen_oracle):
        expected_host = theirs.headers.get("host")
        if expected_host is not None:
            assert mine.headers.get("host") == expected_host, (
                f"Host to the proxy: {mine.headers}, boto3 {theirs.headers}"
            )
        elif "host" in mine.headers:  # boto3's CONNECT sends none on Python 3.11; one sent names the target
            assert mine.headers["host"] in (mine.authority, mine.authority.rsplit(":", 1)[0]), mine.headers
    assert_same_failure(ours, oracle)
    return oracle, seen_oracle


# -- partitions x FIPS x dualstack -------------------------------------------------------------------


def _partition_cases() -> list[Any]:
    """Every partition x FIPS x dualstack for SageMaker; for Bedrock, whose endpoints come from the same
    resolver, one region of each DNS scheme."""
    cases = []
    for service in SERVICES:
        regions = (
            REGIONS if service == "sagemaker-runtime" else ("us-west-2", "us-iso-east-1", "eu-isoe-west-1")
        )
        for region in regions:
            for fips in (False, True):
                for dualstack in (False, True):
                    name = f"{service}-{region}-{'fips' if fips else 'plain'}-{'dualstack' if dualstack else 'ipv4'}"
                    cases.append(pytest.param(service, region, fips, dualstack, id=name))
    return cases


@pytest.mark.parametrize(("service", "region", "fips", "dualstack"), _partition_cases())
def test_partition_variant_host(
    isolated: Any,
    proxy: RecordingProxy,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    region: str,
    fips: bool,
    dualstack: bool,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    config = one_attempt(use_fips_endpoint=fips, use_dualstack_endpoint=dualstack)
    oracle, seen = assert_same_route(
        proxy, "sync", {"region_name": region, "config": config, **FAKE_KEYS}, service
    )
    if oracle.stage != "build":
        assert len(seen) == 1 and seen[0].method == "CONNECT" and seen[0].target.endswith(":443"), seen


@pytest.mark.parametrize("dualstack", [False, True], ids=["ipv4", "dualstack"])
@pytest.mark.parametrize("fips", [False, True], ids=["plain", "fips"])
@pytest.mark.parametrize("region", ["us-iso-east-1", "cn-north-1", "us-isof-south-1", "eusc-de-east-1"])
def test_partition_variant_host_async(
    isolated: Any,
    proxy: RecordingProxy,
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    fips: bool,
    dualstack: bool,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    config = one_attempt(use_fips_endpoint=fips, use_dualstack_endpoint=dualstack)
    assert_same_route(proxy, "async", {"region_name": region, "config": config, **FAKE_KEYS})


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("region", ["us-gov-west-1", "us-iso-east-1", "us-west-2"])
def test_fips_and_dualstack_from_environment(
    isolated: Any, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, flavour: str, region: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    monkeypatch.setenv("AWS_USE_DUALSTACK_ENDPOINT", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    _, seen = assert_same_route(proxy, flavour, {"region_name": region, **FAKE_KEYS})
    assert "fips" in seen[0].target, seen


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_region_fips_and_dualstack_from_profile(
    profiles: Profiles, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    profiles.config(
        "[default]\nregion = eu-west-1\n\n"
        "[profile tenant]\nregion = us-isob-east-1\nuse_fips_endpoint = true\n"
        "use_dualstack_endpoint = true\nmax_attempts = 1\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "tenant")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    _, seen = assert_same_route(proxy, flavour, dict(FAKE_KEYS))
    assert "us-isob-east-1" in seen[0].target, seen


# -- endpoint URLs from the environment and from profiles -------------------------------------------

_GLOBAL_URL = "https://global.internal.test:8443"
_SERVICE_URL = "https://service.internal.test:9443"
ENDPOINT_SOURCES: dict[str, tuple[dict[str, str], str, dict[str, Any]]] = {
    # name: (environment, config file, extra client kwargs)
    "AWS_ENDPOINT_URL": ({"AWS_ENDPOINT_URL": _GLOBAL_URL}, "", {}),
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": (
        {"AWS_ENDPOINT_URL": _GLOBAL_URL, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": _SERVICE_URL},
        "",
        {},
    ),
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME-not-for-sagemaker": (
        {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": _SERVICE_URL},
        "",
        {},
    ),
    "profile-endpoint_url": ({}, "[default]\nendpoint_url = https://profile.internal.test:7443\n", {}),
    "profile-services-section": (
        {},
        "[default]\nservices = local\nendpoint_url = https://profile.internal.test:7443\n\n"
        "[services local]\nsagemaker_runtime =\n  endpoint_url = https://services.internal.test:6443\n",
        {},
    ),
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": (
        {"AWS_ENDPOINT_URL": _GLOBAL_URL, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
        "[default]\nendpoint_url = https://profile.internal.test:7443\n",
        {},
    ),
    "endpoint_url-argument-wins": (
        {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": _SERVICE_URL},
        "",
        {"endpoint_url": "https://argument.internal.test"},
    ),
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("source", list(ENDPOINT_SOURCES))
def test_endpoint_url_sources(
    profiles: Profiles, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, flavour: str, source: str
) -> None:
    environment, config_file, extra = ENDPOINT_SOURCES[source]
    profiles.config(config_file)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    assert_same_route(
        proxy, flavour, {"region_name": "us-west-2", "config": one_attempt(), **FAKE_KEYS, **extra}
    )


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_bedrock_endpoint_url_from_environment(
    isolated: Any, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", _SERVICE_URL)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", _GLOBAL_URL)
    _, seen = assert_same_route(
        proxy, flavour, {"region_name": "us-east-1", "config": one_attempt(), **FAKE_KEYS}, "bedrock-runtime"
    )
    assert seen[0].target == "service.internal.test:9443", seen


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_session_argument(
    profiles: Profiles, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    """``session=boto3.Session(profile_name=...)``: the profile's region and endpoint settings, not the
    default profile's."""
    profiles.config(
        "[default]\nregion = us-west-2\n\n"
        "[profile tenant]\nregion = eu-isoe-west-1\nuse_fips_endpoint = true\n"
    )
    profiles.credentials("[tenant]\naws_access_key_id = AKIDTENANT\naws_secret_access_key = tenant-secret\n")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    session = boto3.Session(profile_name="tenant")
    _, seen = assert_same_route(proxy, flavour, {"session": session, "config": one_attempt()})
    assert [r.target for r in seen] == ["runtime.sagemaker-fips.eu-isoe-west-1.cloud.adc-e.uk:443"], seen
