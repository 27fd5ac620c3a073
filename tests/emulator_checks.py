"""Helpers of the local endpoint's hardening tests: raw exchanges, and a guard against tracebacks."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from evstream.emulator import EmulatorThread


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Nothing a client or a container sends may make the endpoint (or asyncio under it) log a warning."""
    with caplog.at_level(logging.WARNING):
        yield
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not logged, [r.getMessage() for r in logged]


def exchange(server: EmulatorThread, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; everything received until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.emulator.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def status(response: bytes) -> int:
    """The status code of a raw HTTP/1.1 response."""
    return int(response.split(b" ", 2)[1])
