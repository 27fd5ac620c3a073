""".ci/run finds the Python 3.12 of the HTTP/2 interop tests where .ci/packaging.sh finds pyenv's Pythons:
under ``$PYENV_ROOT`` (default ``$HOME/.pyenv``), not a fixed path."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _discovery() -> str:
    """The lines of .ci/run that choose the 3.12 interpreter, and a line that prints the choice."""
    text = (ROOT / ".ci" / "run").read_text()
    found = re.search(r'^py312="".*?^done$', text, re.M | re.S)
    assert found, "the 3.12 discovery loop of .ci/run moved"
    return found.group(0) + '\necho "$py312"\n'


def _fake_python(root: Path) -> Path:
    python = root / "versions" / "3.12.9" / "bin" / "python3.12"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 0\n")  # answers the version check
    python.chmod(0o755)
    return python


def _choose(tmp_path: Path, **env: str) -> str:
    bin_dir = tmp_path / "bin"  # a PATH without python3.12
    bin_dir.mkdir(exist_ok=True)
    for tool in ("sh", "bash"):
        found = shutil.which(tool)
        assert found
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    result = subprocess.run(
        ["bash", "-c", _discovery()],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path / "nohome"), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.skipif(os.name != "posix", reason="bash")
def test_python312_is_found_under_pyenv_root(tmp_path: Path) -> None:
    python = _fake_python(tmp_path / "pyenv")
    assert _choose(tmp_path, PYENV_ROOT=str(tmp_path / "pyenv")) == str(python)


@pytest.mark.skipif(os.name != "posix", reason="bash")
def test_python312_is_found_under_home_pyenv_by_default(tmp_path: Path) -> None:
    python = _fake_python(tmp_path / "home" / ".pyenv")
    assert _choose(tmp_path, HOME=str(tmp_path / "home")) == str(python)
    assert _choose(tmp_path) == ""  # nowhere to look: the interop tests are skipped with a message
