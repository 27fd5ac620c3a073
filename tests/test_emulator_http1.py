"""The local endpoint's HTTP/1.1 on a hostile network: every malformed or oversized request gets a
4xx answer (never a traceback, never a hang), slow clients are timed out, and what it keeps is bounded."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from emulator_checks import exchange, no_tracebacks, status

from evstream.emulator import EmulatorThread, Limits
from evstream.emulator.recording import AttemptCounter, RecordedRequest, RequestLog

__all__ = ["no_tracebacks"]

LIMITS = Limits(
    max_body=64 * 1024, max_header_count=20, max_head_bytes=4096, idle_timeout=0.5, request_timeout=1.0
)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorThread]:
    with EmulatorThread(limits=LIMITS) as running:
        yield running


def error_body(response: bytes) -> dict[str, str]:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


MALFORMED = {
    "not-http": b"GARBAGE\r\n\r\n",
    "two-spaces": b"GET  /ping HTTP/1.1\r\n\r\n",
    "bad-version": b"GET /ping HTTP/9.9\r\n\r\n",
    "control-in-target": b"GET /pi\x01ng HTTP/1.1\r\n\r\n",
    "bare-lf": b"GET /ping HTTP/1.1\nHost: x\n\n",
    "no-colon": b"GET /ping HTTP/1.1\r\nHost x\r\n\r\n",
    "space-before-colon": b"GET /ping HTTP/1.1\r\nHost : x\r\n\r\n",
    "folded": b"GET /ping HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n",
    "bare-cr-in-value": b"GET /ping HTTP/1.1\r\nX-A: a\rInjected: b\r\n\r\n",
    "nul-in-value": b"GET /ping HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
    "letters-length": b"POST /invocations HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    "negative-length": b"POST /invocations HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    "two-lengths": b"POST /invocations HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "length-and-chunked": (
        b"POST /invocations HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bad-chunk-size": b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk-without-crlf": b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_get_400_and_the_connection_closes(
    server: EmulatorThread, request_bytes: bytes
) -> None:
    response = exchange(server, request_bytes)
    assert status(response) == 400, response
    assert b"Connection: close" in response
    assert error_body(response)["Message"]


def test_unknown_transfer_coding_is_501(server: EmulatorThread) -> None:
    response = exchange(server, b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert status(response) == 501


def test_header_count_and_size_limits(server: EmulatorThread) -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(LIMITS.max_header_count + 1))
    assert status(exchange(server, b"GET /ping HTTP/1.1\r\n" + many + b"\r\n")) == 431
    within = b"".join(b"X-%d: v\r\n" % i for i in range(LIMITS.max_header_count))
    assert status(exchange(server, b"GET /ping HTTP/1.1\r\n" + within + b"Connection: close\r\n\r\n")) == 431
    huge = b"X-Big: " + b"v" * LIMITS.max_head_bytes + b"\r\n"
    assert status(exchange(server, b"GET /ping HTTP/1.1\r\n" + huge + b"\r\n")) == 431
    long_target = b"GET /" + b"a" * (2 * LIMITS.max_head_bytes) + b" HTTP/1.1\r\n\r\n"
    assert status(exchange(server, long_target)) == 431
    ok = b"GET /ping HTTP/1.1\r\n" + within[: -len(b"X-19: v\r\n")] + b"Connection: close\r\n\r\n"
    assert status(exchange(server, ok)) == 200


def test_body_limit_is_checked_before_reading(server: EmulatorThread) -> None:
    head = b"POST /invocations HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (LIMITS.max_body + 1)
    assert status(exchange(server, head)) == 413  # answered without waiting for the body
    chunked = b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (
        LIMITS.max_body + 1
    )
    assert status(exchange(server, chunked)) == 413


def test_an_oversized_body_is_refused_before_100_continue(server: EmulatorThread) -> None:
    head = b"POST /invocations HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
    refused = exchange(server, head % (LIMITS.max_body + 1))
    assert status(refused) == 413 and b"100 Continue" not in refused
    accepted = exchange(server, head % 2 + b"{}")
    assert accepted.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_idle_connections_are_closed(server: EmulatorThread) -> None:
    start = time.monotonic()
    assert exchange(server, b"") == b""  # nothing sent: closed without an answer
    assert time.monotonic() - start < LIMITS.idle_timeout + 2


def test_a_trickled_request_times_out(server: EmulatorThread) -> None:
    # Slowloris: a byte now and then keeps no connection past the request timeout.
    with socket.create_connection(("127.0.0.1", server.emulator.port), timeout=5) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /invocations HTTP/1.1\r\n")
        received = b""
        for _ in range(20):
            try:
                sock.sendall(b"X: y\r\n")
            except OSError:  # closed by the server
                break
            time.sleep(0.2)
            sock.setblocking(False)
            try:
                received += sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if received:
                break
        assert status(received) == 408
        assert time.monotonic() - start < LIMITS.request_timeout + 2


def test_a_slow_body_times_out(server: EmulatorThread) -> None:
    head = b"POST /invocations HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part of it"
    start = time.monotonic()
    assert status(exchange(server, head)) == 408
    assert time.monotonic() - start < LIMITS.request_timeout + 2


def test_keep_alive_serves_several_requests(server: EmulatorThread) -> None:
    two = b"GET /ping HTTP/1.1\r\n\r\n" + b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n"
    assert exchange(server, two).count(b"HTTP/1.1 200 OK") == 2


def test_request_log_keeps_a_byte_budget() -> None:
    log = RequestLog(maxlen=100, max_bytes=10_000)
    for i in range(50):
        log.append(RecordedRequest("POST", f"/{i}", {}, b"x" * 3000))
    assert log.bytes <= 10_000 and len(log) == 3
    assert log[-1].path == "/49"
    huge = RecordedRequest("POST", "/huge", {}, b"x" * 50_000)
    log.append(huge)
    assert list(log) == [huge]  # the newest is kept, alone, even over the budget


def test_the_endpoint_keeps_what_its_budget_allows() -> None:
    body = b'{"emulator": {"tokens": 1}}' + b" " * 20_000
    with EmulatorThread(record_bytes=50_000) as small:
        request = b"POST /invocations HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        keep_alive = request * 10 + b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n"
        assert exchange(small, keep_alive).count(b"HTTP/1.1 200 OK") == 11
        assert small.emulator.requests.bytes <= 50_000


def test_retry_bookkeeping_is_lru_and_keeps_no_bodies() -> None:
    attempts = AttemptCounter(maxlen=3)
    for body in (b"a", b"b", b"a", b"c", b"d"):  # "b" is the least recently used when "d" arrives
        attempts.count(body)
    assert len(attempts) == 3
    assert attempts.count(b"a") == 3
    assert attempts.count(b"b") == 1  # forgotten, counted afresh
    assert all(len(key) == 32 for key in attempts._counts)  # digests, not bodies
