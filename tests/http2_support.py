"""What the HTTP/2 tests share: the local endpoint over TLS with signatures checked, and its CA."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

pytest.importorskip("awscrt")
pytest.importorskip("h2")
pytest.importorskip("trustme")

from evstream.emulator.http2 import Bidi, Http2EndpointThread

KEYS = {"aws_access_key_id": "AKIDHTTP2", "aws_secret_access_key": "http2-secret", "region_name": "us-west-2"}
CREDENTIALS = {"AKIDHTTP2": "http2-secret"}


@contextlib.contextmanager
def behaving(server: Http2EndpointThread, bidi: Bidi) -> Iterator[None]:
    """The endpoint's default behaviour for the duration (Bedrock requests carry no query string)."""
    saved = server.endpoint.bidi
    server.endpoint.bidi = bidi
    try:
        yield
    finally:
        server.endpoint.bidi = saved
