"""The `fuzz` marker (also worth listing in pyproject's markers) and its opt-in.

Tests marked `fuzz` run for about a minute each, so they run only when asked for: `pytest -m fuzz`
(or EVSTREAM_FUZZ=1); a plain `pytest` skips them with that reason.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: bounded coverage-guided fuzz run (~60 s); opt in with -m fuzz")


def fuzz_requested(config: pytest.Config) -> bool:
    expression = config.getoption("markexpr") or ""
    return os.environ.get("EVSTREAM_FUZZ", "") == "1" or (
        "fuzz" in expression and "not fuzz" not in expression
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if fuzz_requested(config):
        return
    skip = pytest.mark.skip(reason="fuzz run (~60 s): select it with `pytest -m fuzz` or EVSTREAM_FUZZ=1")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)
