"""Hostile servers against both clients (sync and asyncio): a malformed or abusive HTTP/1.1 response gets
the right typed error, never a quiet end, never unbounded memory, never a bare OverflowError/ValueError."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from frames import raw_frame, string_header, token_frame

pytest.importorskip("awscrt", reason="the client needs the client extra")
import evstream
import evstream.sagemaker as sm

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
    b"Transfer-Encoding: chunked\r\nx-amzn-RequestId: hostile\r\n\r\n"
)
TOKEN = token_frame("tok")
UNKNOWN = raw_frame(string_header(":event-type", "Later") + string_header(":message-type", "event"))

Script = Callable[[socket.socket], None]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                return
            data += more
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        while len(rest) < length:
            rest += sock.recv(65536)
        self.server.requests += 1
        with contextlib.suppress(OSError):  # the client hung up: what some tests want to see
            self.server.script(sock)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.requests = 0


@pytest.fixture()
def serve() -> Iterator[Callable[[Script], _Server]]:
    servers: list[_Server] = []

    def start(script: Script) -> _Server:
        server = _Server(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _client_options(server: _Server, **kwargs: Any) -> dict[str, Any]:
    return {
        "region_name": "us-east-1",
        "endpoint_url": f"http://127.0.0.1:{server.server_address[1]}",
        "aws_access_key_id": "AKIDHOSTILE",
        "aws_secret_access_key": "hostile",
        "max_attempts": 3,
        **kwargs,
    }


def consume(transport: str, server: _Server, **kwargs: Any) -> tuple[list[bytes], BaseException | None]:
    """The payloads one stream delivered, and the error it ended with (None: it ended as framed)."""
    events: list[bytes] = []
    if transport == "sync":
        try:
            with sm.client(**_client_options(server, **kwargs)) as runtime:
                response = runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=b"{}")
                for payload in response["Body"].payloads():
                    events.append(payload)
        except Exception as exc:
            return events, exc
        return events, None

    async def main() -> BaseException | None:
        try:
            async with sm.async_client(**_client_options(server, **kwargs)) as runtime:
                response = await runtime.invoke_endpoint_with_response_stream(EndpointName="e", Body=b"{}")
                async for payload in response["Body"].payloads():
                    events.append(payload)
        except Exception as exc:
            return exc
        return None

    return events, asyncio.run(main())


TRANSPORTS = ["sync", "asyncio"]


def _send(*parts: bytes, close: bool = True, stall: float = 0.0) -> Script:
    def script(sock: socket.socket) -> None:
        for part in parts:
            sock.sendall(part)
        if stall:
            time.sleep(stall)
        if not close:
            time.sleep(2)

    return script


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("body", "match", "delivered"),
    [
        (b"-3\r\n" + TOKEN, "invalid chunk size line", 1),
        (b"0" * 1030 + b"\r\n\r\n", "invalid chunk size line", 1),  # once a quiet "0": events went missing
        (b"f" * 20 + b"\r\n" + TOKEN, "invalid chunk size line", 1),  # once a bare OverflowError
        (b"0x5\r\nhello\r\n0\r\n\r\n", "invalid chunk size line", 1),
        (chunk(TOKEN)[:-2] + b"XX0\r\n\r\n", "longer than its size line", 2),
        (chunk(TOKEN) + b"0\r\nX: 1\n\r\n", "does not end with CRLF", 2),
    ],
)
def test_malformed_chunked_body(
    serve: Callable[[Script], _Server], transport: str, body: bytes, match: str, delivered: int
) -> None:
    server = serve(_send(HEAD + chunk(TOKEN) + body))
    events, error = consume(transport, server)
    assert isinstance(error, sm.IncompleteStream), repr(error)
    assert match in str(error)
    assert events == [b"tok"] * delivered  # what came before the bad framing was delivered
    assert server.requests == 1  # the server answered: never sent again


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_body_cut_short_is_never_a_quiet_end(serve: Callable[[Script], _Server], transport: str) -> None:
    for body in (chunk(TOKEN), chunk(TOKEN) + b"0\r\n", chunk(TOKEN) + b"1a"):
        server = serve(_send(HEAD + body))
        events, error = consume(transport, server)
        assert isinstance(error, sm.IncompleteStream), (body, error)
        assert events == [b"tok"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_long_chunk_extension_is_fine(serve: Callable[[Script], _Server], transport: str) -> None:
    extension = b";name=" + b"v" * 4000
    server = serve(_send(HEAD + b"%x%s\r\n%s\r\n0\r\n\r\n" % (len(TOKEN), extension, TOKEN)))
    assert consume(transport, server) == ([b"tok"], None)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_head_is_not_retried(serve: Callable[[Script], _Server], transport: str) -> None:
    server = serve(
        _send(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nbad header\r\n\r\n")
    )
    _, error = consume(transport, server)
    assert isinstance(error, sm.IncompleteStream), repr(error)
    assert "Malformed HTTP response head" in str(error)
    assert server.requests == 1


def _peak_while(run: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_huge_chunk_with_a_bad_prelude_fails_at_once(
    serve: Callable[[Script], _Server], transport: str
) -> None:
    """256 MiB announced; the first frame's prelude is bad: the error comes before the chunk is read."""

    def script(sock: socket.socket) -> None:
        sock.sendall(HEAD + b"10000000\r\n" + b"\xff" * 16)
        filler = b"\0" * 65536
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the rest of the chunk, until the client hangs up
            sock.sendall(filler)

    server = serve(script)
    start = time.monotonic()
    (_, error), peak = _peak_while(lambda: consume(transport, server))
    assert isinstance(error, evstream.EventStreamError), repr(error)
    assert time.monotonic() - start < 4
    assert peak < 8 << 20


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_huge_chunk_of_empty_frames_is_bounded(serve: Callable[[Script], _Server], transport: str) -> None:
    """32 MiB in one chunk, all empty unknown events: read with memory bounded by a read, not the chunk."""
    block = UNKNOWN * (65536 // len(UNKNOWN))
    blocks = (32 << 20) // len(block)

    def script(sock: socket.socket) -> None:
        sock.sendall(HEAD + b"%x\r\n" % (blocks * len(block) + len(TOKEN)))
        for _ in range(blocks):
            sock.sendall(block)
        sock.sendall(TOKEN + b"\r\n0\r\n\r\n")

    server = serve(script)
    (events, error), peak = _peak_while(lambda: consume(transport, server, first_byte_timeout=20))
    assert (events, error) == ([b"tok"], None)
    assert peak < 8 << 20


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ["trickled bytes", "unknown events"])
def test_event_timeout_is_a_deadline_since_the_last_event(
    serve: Callable[[Script], _Server], transport: str, kind: str
) -> None:
    def script(sock: socket.socket) -> None:
        sock.sendall(HEAD + chunk(TOKEN))
        deadline = time.monotonic() + 3
        if kind == "trickled bytes":
            body = chunk(TOKEN)
            for byte in body:  # a byte every 50 ms: each read is quick, the event never completes
                if time.monotonic() > deadline:
                    return
                sock.sendall(bytes((byte,)))
                time.sleep(0.05)
        else:
            while time.monotonic() < deadline:  # events nobody reads, every 50 ms
                sock.sendall(chunk(UNKNOWN))
                time.sleep(0.05)

    server = serve(script)
    start = time.monotonic()
    events, error = consume(transport, server, event_timeout=0.5, first_byte_timeout=5)
    assert isinstance(error, sm.EventTimeout), repr(error)
    assert events == [b"tok"]
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_first_event_deadline_is_not_moved_by_bytes(
    serve: Callable[[Script], _Server], transport: str
) -> None:
    def script(sock: socket.socket) -> None:
        sock.sendall(HEAD)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            sock.sendall(chunk(UNKNOWN))
            time.sleep(0.05)

    server = serve(script)
    start = time.monotonic()
    events, error = consume(transport, server, first_byte_timeout=0.5, max_attempts=1)
    assert isinstance(error, sm.FirstByteTimeout), repr(error)
    assert events == [] and time.monotonic() - start < 2
