from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import evstream

from conftest import PURE_PYTHON_RUN


def test_c_extension_loaded() -> None:
    # Guards against running the slow path unknowingly (aiohttp's test_c_parser_loaded).
    if PURE_PYTHON_RUN:
        pytest.skip("EVSTREAM_NO_EXTENSIONS=1")
    assert evstream.IMPLEMENTATION == "c"
    assert evstream.crc32 is evstream._codec.crc32


def _isort_key(name: str) -> tuple[int, list[object]]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions; digits compared as numbers.
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def test_all_is_sorted_and_complete() -> None:
    assert evstream.__all__ == sorted(evstream.__all__, key=_isort_key)
    assert len(set(evstream.__all__)) == len(evstream.__all__)
    for name in evstream.__all__:
        assert hasattr(evstream, name), name


def test_error_tree() -> None:
    assert issubclass(evstream.EventStreamError, ValueError)
    for name in evstream.__all__:
        obj = getattr(evstream, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, evstream.EventStreamError), name


def _import_in_subprocess(env_value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVSTREAM_NO_EXTENSIONS": env_value}
    return subprocess.run(
        [sys.executable, "-c", "import evstream; print(evstream.IMPLEMENTATION)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("value", "expected"), [("1", "python"), ("true", "python"), ("0", None), ("", None)]
)
def test_no_extensions_switch_is_parsed_strictly(value: str, expected: str | None) -> None:
    result = _import_in_subprocess(value)
    assert result.returncode == 0, result.stderr
    if expected is None:  # "0" means off: whatever this build has
        expected = "python" if PURE_PYTHON_RUN else "c"
        if PURE_PYTHON_RUN:
            pytest.skip("the C extension is not part of this run")
    assert result.stdout.strip() == expected


def test_no_extensions_switch_rejects_garbage() -> None:
    result = _import_in_subprocess("maybe")
    assert result.returncode != 0
    assert "EVSTREAM_NO_EXTENSIONS='maybe'" in result.stderr
