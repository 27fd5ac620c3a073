"""Every codec test runs against both implementations in the same run.

The ``codec`` fixture yields the C module and the pure-Python module. The C case fails (it is not
skipped) when the extension was expected but did not load; it is skipped only when the run asked for
the pure-Python package with EVSTREAM_NO_EXTENSIONS=1.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

import evstream

VECTORS = Path(__file__).parent / "vectors"


def load_codec(name: str) -> ModuleType:
    if name == "python":
        return importlib.import_module("evstream._codec_py")
    if evstream.NO_EXTENSIONS:
        pytest.skip("EVSTREAM_NO_EXTENSIONS=1: testing the pure-Python package only")
    try:
        return importlib.import_module("evstream._codec")
    except ImportError as exc:  # pragma: no cover - the failure this guards against
        pytest.fail(f"the C extension was expected but did not load: {exc}")


@pytest.fixture(scope="session", params=["c", "python"])
def codec(request: pytest.FixtureRequest) -> ModuleType:
    return load_codec(request.param)


@pytest.fixture(scope="session")
def both_codecs() -> tuple[ModuleType, ModuleType]:
    """(C, Python), for tests that compare the two directly."""
    return load_codec("c"), load_codec("python")
