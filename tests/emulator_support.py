"""Shared helpers of the client and endpoint tests (imported by the test modules, not a conftest)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from evstream.emulator import EmulatorThread


@pytest.fixture(scope="module")
def endpoint() -> Iterator[EmulatorThread]:
    with EmulatorThread() as server:
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
