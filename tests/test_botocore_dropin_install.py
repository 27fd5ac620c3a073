"""evstream.botocore's install()/uninstall(), and botocore's own event stream unit tests run with the
drop-in installed (from botocore's sdist, when it is unpacked here; .ci/run fetches it)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import evstream

from conftest import PURE_PYTHON_RUN

eventstream = pytest.importorskip("botocore.eventstream")
import botocore  # noqa: E402

import evstream.botocore as eb  # noqa: E402


def _aio_module() -> ModuleType | None:
    try:
        return importlib.import_module("aiobotocore.eventstream")
    except ImportError:  # pragma: no cover - aiobotocore is optional
        return None


@pytest.fixture
def clean_install() -> Iterator[None]:
    eb.uninstall()
    yield
    eb.uninstall()


def test_install_replaces_and_uninstall_restores(clean_install: None) -> None:
    original = eventstream.EventStreamBuffer
    aio_module = _aio_module()
    aio_original = aio_module.EventStreamBuffer if aio_module else None
    assert not eb.is_installed()
    eb.install()
    eb.install()  # twice is harmless
    assert eb.is_installed()
    assert eventstream.EventStreamBuffer is eb.EventStreamBuffer
    if aio_module is not None:
        assert aio_module.EventStreamBuffer is eb.EventStreamBuffer
    eb.uninstall()
    assert eventstream.EventStreamBuffer is original
    if aio_module is not None:
        assert aio_module.EventStreamBuffer is aio_original
    eb.uninstall()  # twice is harmless too
    assert eventstream.EventStreamBuffer is original
    assert not eb.is_installed()


def test_installed_restores_the_previous_state(clean_install: None) -> None:
    original = eventstream.EventStreamBuffer
    with eb.installed():
        assert eventstream.EventStreamBuffer is eb.EventStreamBuffer
    assert eventstream.EventStreamBuffer is original
    eb.install()
    with eb.installed():
        pass
    assert eventstream.EventStreamBuffer is eb.EventStreamBuffer  # it was installed before: stays


def test_uninstall_leaves_a_later_patch_alone(clean_install: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Registered before install(), so the teardown puts botocore's own class back.
    monkeypatch.setattr(eventstream, "EventStreamBuffer", eventstream.EventStreamBuffer)
    eb.install()
    sentinel = type("Other", (), {})
    monkeypatch.setattr(eventstream, "EventStreamBuffer", sentinel)
    eb.uninstall()
    assert eventstream.EventStreamBuffer is sentinel


def test_install_without_aiobotocore(clean_install: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import machinery treat the package as absent.
    monkeypatch.setitem(sys.modules, "aiobotocore", None)
    monkeypatch.setitem(sys.modules, "aiobotocore.eventstream", None)
    eb.install()
    assert eventstream.EventStreamBuffer is eb.EventStreamBuffer
    eb.uninstall()
    assert eventstream.EventStreamBuffer is not eb.EventStreamBuffer


def test_aiobotocore_imported_after_install(clean_install: None, monkeypatch: pytest.MonkeyPatch) -> None:
    if _aio_module() is None:
        pytest.skip("aiobotocore is not installed")
    import aiobotocore

    monkeypatch.setattr(aiobotocore, "eventstream", sys.modules["aiobotocore.eventstream"])
    monkeypatch.delitem(sys.modules, "aiobotocore.eventstream")
    original = eventstream.EventStreamBuffer
    eb.install()
    import aiobotocore.eventstream as fresh  # binds the drop-in, as an import after install() would

    assert fresh.EventStreamBuffer is eb.EventStreamBuffer
    eb.uninstall()
    assert fresh.EventStreamBuffer is original
    assert eventstream.EventStreamBuffer is original


SRC = Path(evstream.__file__).resolve().parent.parent


def test_without_botocore_install_is_a_no_op() -> None:
    code = (
        "import sys; sys.modules['botocore'] = None; sys.modules['aiobotocore'] = None\n"
        "import evstream.botocore as eb, evstream\n"
        "eb.install(); assert not eb.is_installed(); eb.uninstall()\n"
        "b = eb.EventStreamBuffer(); b.add_data(evstream.encode({'a': 'b'}, b'p')); (m,) = b\n"
        "assert (m.headers, m.payload, m.prelude.total_length) == ({'a': 'b'}, b'p', 23)\n"
        "assert issubclass(eb.ChecksumMismatch, evstream.ChecksumMismatch)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


# ------------------------------------------------------------------- botocore's own unit tests, if here

PLUGIN = """
import importlib
import os
import sys
import types
import unittest
from pathlib import Path
from unittest import mock

import botocore.eventstream
import pytest

import evstream
import evstream.botocore

evstream.botocore.install()

# botocore's tests/__init__.py loads every service model (~5 s) for other test files; test_eventstream.py
# takes only `mock` from it (and tests/unit/__init__.py only `unittest`).
_stub = types.ModuleType("tests")
_stub.__path__ = [str(Path("tests").resolve())]
_stub.mock = mock
_stub.unittest = unittest
sys.modules["tests"] = _stub

_CODECS = ["evstream._codec_py"] + ([] if evstream.IMPLEMENTATION == "python" else ["evstream._codec"])


@pytest.fixture(autouse=True, params=_CODECS)
def _evstream_codec(request, monkeypatch):
    # Every test of botocore's runs once per implementation.
    monkeypatch.setattr(evstream, "Decoder", importlib.import_module(request.param).Decoder)


def pytest_collection_finish(session):
    # The tests bind EventStreamBuffer at import: prove they got the drop-in.
    module = sys.modules["tests.unit.test_eventstream"]
    assert module.EventStreamBuffer is evstream.botocore.EventStreamBuffer
    assert botocore.eventstream.EventStreamBuffer is evstream.botocore.EventStreamBuffer
"""


def _botocore_sdist() -> Path | None:
    """An unpacked botocore sdist of the installed version: $BOTOCORE_SDIST, or /tmp/bc/botocore-<v>."""
    candidates = [os.environ.get("BOTOCORE_SDIST", ""), f"/tmp/bc/botocore-{botocore.__version__}"]
    for candidate in filter(None, candidates):
        if (Path(candidate) / "tests" / "unit" / "test_eventstream.py").is_file():
            return Path(candidate)
    return None


def test_botocores_own_eventstream_tests_pass_with_install(tmp_path: Path) -> None:
    sdist = _botocore_sdist()
    if sdist is None:
        pytest.skip(
            f"botocore {botocore.__version__} sdist not unpacked (set BOTOCORE_SDIST, or: pip download --no-deps "
            f"--no-binary :all: botocore=={botocore.__version__} -d /tmp/bc && tar xzf ... -C /tmp/bc)"
        )
    (tmp_path / "evs_dropin_plugin.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path), str(sdist)])}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "evs_dropin_plugin", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, "tests/unit/test_eventstream.py"],
        cwd=sdist,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    implementations = 1 if PURE_PYTHON_RUN else 2
    assert int(summary.split(" passed")[0].split()[-1]) >= 30 * implementations, summary
