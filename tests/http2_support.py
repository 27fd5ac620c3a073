"""What the HTTP/2 tests share: the local endpoint over TLS with signatures checked, its CA, and the
arguments that point a client at it. A test module takes the fixtures by importing them
(``from http2_support import endpoint as endpoint``)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("awscrt")
pytest.importorskip("h2")
pytest.importorskip("trustme")

from evstream.emulator.http2 import Bidi, Http2EndpointThread, tls_context

KEYS: dict[str, Any] = {
    "aws_access_key_id": "AKIDHTTP2",
    "aws_secret_access_key": "http2-secret",
    "region_name": "us-west-2",
}
CREDENTIALS = {"AKIDHTTP2": "http2-secret"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """The endpoint's TLS context and the file of the CA that signed its certificate."""
    return tls_context(str(tmp_path_factory.mktemp("http2-tls")))


@pytest.fixture(scope="module")
def endpoint(tls: tuple[ssl.SSLContext, str]) -> Iterator[Http2EndpointThread]:
    with Http2EndpointThread(ssl=tls[0], credentials=CREDENTIALS, region="us-west-2") as server:
        yield server


@pytest.fixture
def ca_file(tls: tuple[ssl.SSLContext, str]) -> str:
    return tls[1]


def local(server: Http2EndpointThread, ca: str, **kwargs: Any) -> dict[str, Any]:
    """boto3.client's arguments for ``server`` (its CA trusted, the test keys), ``kwargs`` over them."""
    return {"endpoint_url": server.url, "verify": ca, **KEYS, **kwargs}


def last_exchange(server: Http2EndpointThread) -> tuple[int, int, bool, str]:
    """What the endpoint recorded of its latest stream: events in, events out, whether the input ended
    with its signed end, and the error it found (empty when none)."""
    exchange = server.endpoint.exchanges[-1]
    return exchange.events_in, exchange.events_out, exchange.signed_end, exchange.error


@contextlib.contextmanager
def behaving(server: Http2EndpointThread, bidi: Bidi) -> Iterator[None]:
    """The endpoint's default behaviour for the duration (Bedrock requests carry no query string)."""
    saved = server.endpoint.bidi
    server.endpoint.bidi = bidi
    try:
        yield
    finally:
        server.endpoint.bidi = saved
