"""Every codec test runs against both implementations in the same run.

The ``codec`` fixture yields the C module and the pure-Python module. The C case fails (it is not
skipped) when the extension was expected but did not load; it is skipped only in a pure-Python run:
EVSTREAM_NO_EXTENSIONS=1, or the pure-Python (py3-none-any) wheel installed on purpose.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path
from types import ModuleType

import pytest

import evstream

VECTORS = Path(__file__).parent / "vectors"


def _pure_wheel_installed() -> bool:
    """The evstream imported is an installed py3-none-any wheel: no extension, on purpose."""
    try:
        dist = importlib.metadata.distribution("evstream")
    except importlib.metadata.PackageNotFoundError:
        return False
    installed = Path(str(dist.locate_file("evstream/__init__.py"))).resolve()
    wheel = dist.read_text("WHEEL") or ""
    return "Root-Is-Purelib: true" in wheel and installed == Path(evstream.__file__).resolve()


PURE_PYTHON_RUN = evstream.NO_EXTENSIONS or _pure_wheel_installed()


def load_codec(name: str) -> ModuleType:
    if name == "python":
        return importlib.import_module("evstream._codec_py")
    if PURE_PYTHON_RUN:
        pytest.skip("a pure-Python run (EVSTREAM_NO_EXTENSIONS=1 or the pure-Python wheel)")
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
