"""Proxy mode in front of a container it does not trust: TLS verified for an https upstream (other
schemes refused), and a broken container answer becomes a ModelError, never a traceback."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
from emulator_checks import exchange, no_tracebacks, status

import evstream
from evstream.emulator import Behavior, Emulator, EmulatorThread, generate_text
from evstream.emulator.proxy import Upstream

__all__ = ["no_tracebacks"]

STREAM = "/endpoints/e/invocations-response-stream"


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n%s" % (
        path.encode(),
        len(body),
        extra,
        body,
    )


def error(response: bytes) -> dict[str, object]:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "127.0.0.1:8080", "http://", "unix:///tmp/socket"])
def test_only_http_and_https_upstreams(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        Emulator(upstream=url)


def test_https_upstream_defaults_to_verified_tls() -> None:
    upstream = Upstream("https://model.example:8443")
    assert upstream.ssl is not None and upstream.port == 8443
    assert upstream.ssl.verify_mode == ssl.CERT_REQUIRED and upstream.ssl.check_hostname
    assert Upstream("https://model.example").port == 443
    assert Upstream("http://model.example").ssl is None


@pytest.fixture(scope="module")
def certificate_authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """A server context for 127.0.0.1 signed by a new private CA, and the CA's certificate file."""
    pytest.importorskip("trustme")
    from evstream.emulator.http2 import tls_context

    return tls_context(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def tls_container(certificate_authority: tuple[ssl.SSLContext, str]) -> Iterator[EmulatorThread]:
    with EmulatorThread(ssl=certificate_authority[0]) as container:
        yield container


def test_an_untrusted_certificate_is_refused(tls_container: EmulatorThread) -> None:
    with EmulatorThread(upstream=tls_container.url) as front:
        response = exchange(front, post(STREAM, b'{"emulator": {"format": "raw", "tokens": 3}}'))
    assert status(response) == 424
    assert "certificate" in str(error(response)["Message"]).lower()
    assert not tls_container.emulator.requests or tls_container.emulator.requests[-1].path != "/invocations"


def test_a_trusted_certificate_carries_the_stream_over_tls(
    certificate_authority: tuple[ssl.SSLContext, str], tls_container: EmulatorThread
) -> None:
    trusted = ssl.create_default_context(cafile=certificate_authority[1])
    with EmulatorThread(upstream=tls_container.url, upstream_ssl=trusted) as front:
        response = exchange(front, post(STREAM, b'{"emulator": {"format": "raw", "tokens": 5}}'))
    assert status(response) == 200
    body = response.split(b"\r\n\r\n", 1)[1]
    payload = b"".join(m.payload for m in evstream.decode(_unchunk(body)))
    assert payload == generate_text(Behavior(tokens=5)).encode()
    assert tls_container.emulator.requests[-1].path == "/invocations"


def _unchunk(body: bytes) -> bytes:
    out, rest = b"", body
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2 :]


class FakeContainer:
    """A container that answers every connection with fixed bytes, then closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    self.received = connection.recv(65536)
                    connection.sendall(self.answer)
                except OSError:  # the endpoint hung up first (it stops reading at its limits)
                    pass

    def close(self) -> None:
        self.listener.close()


BROKEN = {
    "not-http": b"garbage\r\n\r\n",
    "bad-status": b"HTTP/1.1 abc OK\r\n\r\n",
    "cr-in-header": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\rInjected: yes\r\n\r\n",
    "folded-header": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n  folded\r\n\r\n",
    "bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
    "nothing": b"",
    "endless-header": b"HTTP/1.1 200 OK\r\nX: " + b"x" * 200_000,
}
# A body delimited by the connection's close over the payload limit: streamed, it is a stream of
# PayloadParts like any other; answered whole, it must not be buffered past the limit.
OVERSIZED = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (7 * 1024 * 1024)


@pytest.mark.parametrize("answer", BROKEN.values(), ids=BROKEN.keys())
@pytest.mark.parametrize("path", [STREAM, "/endpoints/e/invocations"])
def test_a_broken_container_answer_is_a_model_error(answer: bytes, path: str) -> None:
    container = FakeContainer(answer)
    try:
        with EmulatorThread(upstream=container.url) as front:
            response = exchange(front, post(path, b"{}"))
    finally:
        container.close()
    if status(response) == 200:  # the stream had begun: the break is an in-stream ModelStreamError
        assert b"ModelStreamError" in response and response.endswith(b"0\r\n\r\n")
    else:
        assert status(response) == 424 and error(response)["Message"]
    assert b"Injected" not in response


def test_an_oversized_whole_answer_is_not_buffered() -> None:
    container = FakeContainer(OVERSIZED)
    try:
        with EmulatorThread(upstream=container.url) as front:
            response = exchange(front, post("/endpoints/e/invocations", b"{}"))
    finally:
        container.close()
    assert status(response) == 424 and len(response) < 10_000


def test_control_characters_never_reach_the_container() -> None:
    container = FakeContainer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    try:
        with EmulatorThread(upstream=container.url) as front:
            attributes = b"X-Amzn-SageMaker-Custom-Attributes: a\rInjected: b\r\n"
            assert status(exchange(front, post("/endpoints/e/invocations", b"{}", attributes))) == 400
            assert container.received == b""
            clean = b"X-Amzn-SageMaker-Custom-Attributes: a=1\r\n"
            assert status(exchange(front, post("/endpoints/e/invocations", b"{}", clean))) == 200
            assert b"x-amzn-sagemaker-custom-attributes: a=1\r\n" in container.received.lower()
    finally:
        container.close()
