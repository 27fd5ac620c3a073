"""Shared helpers of the client and endpoint tests (imported by the test modules, not a conftest)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evstream.emulator import EmulatorThread


@pytest.fixture(scope="module")
def endpoint() -> Iterator[EmulatorThread]:
    with EmulatorThread() as server:
        yield server


# The event loops the endpoint runs on: `serve` picks uvloop when it is installed, asyncio's otherwise.
ENDPOINT_LOOPS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param(
        "uvloop",
        id="uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed (pip install uvloop)"
        ),
    ),
]


@pytest.fixture(scope="module", params=ENDPOINT_LOOPS)
def endpoint_loop(request: pytest.FixtureRequest) -> str:
    """Each event loop the endpoint runs on, in turn (uvloop skipped, with the reason, when missing)."""
    loop: str = request.param
    return loop


@pytest.fixture(scope="module")
def endpoint_on_each_loop(endpoint_loop: str) -> Iterator[EmulatorThread]:
    """The endpoint with its default behaviour, on asyncio's loop and then on uvloop."""
    with EmulatorThread(loop=endpoint_loop) as server:
        yield server


def body(**emulator: Any) -> bytes:
    """A request body that sets the endpoint's behaviour for this request."""
    return json.dumps({"inputs": "hello", "emulator": emulator}).encode()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for ``localhost`` and 127.0.0.1 (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder / "cert.pem"
