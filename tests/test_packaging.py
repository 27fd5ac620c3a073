"""Cheap packaging checks for every test run; the expensive ones (builds, wheels) are in .ci/packaging.sh.

Checks on repository files skip when the file is not there: the suite also runs from an sdist and, in
cibuildwheel, from a copy of tests/ beside pyproject.toml only.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import evstream

from conftest import PURE_PYTHON_RUN

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(evstream.__file__).resolve().parent
STUB_ONLY_IN_C = {"_crc32_tiers", "_crc32_available_tiers", "_crc32_with"}


def repo_file(relative: str) -> Path:
    path = ROOT / relative
    if not path.is_file():
        pytest.skip(f"{relative} is not here (not a source checkout)")
    return path


def pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli")
    with repo_file("pyproject.toml").open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    return data


# ------------------------------------------------------------------------------------- the workflow


def test_wheels_yml_is_a_byte_identical_copy() -> None:
    top = repo_file("wheels.yml").read_bytes()
    github = repo_file(".github/workflows/wheels.yml").read_bytes()
    assert top == github, "wheels.yml and .github/workflows/wheels.yml differ: copy one over the other"


def test_workflow_builds_from_the_sdist_and_publishes_by_trusted_publishing() -> None:
    text = repo_file(".github/workflows/wheels.yml").read_text(encoding="utf-8")
    assert "CIBW_" not in text, "cibuildwheel options belong in pyproject.toml [tool.cibuildwheel]"
    assert re.search(r"uses: pypa/cibuildwheel@v\d+\.\d+\.\d+\n", text), "pin cibuildwheel to a release"
    assert "package-dir: ${{ steps.sdist.outputs.path }}" in text, "wheels must be built from the sdist"
    assert "EVSTREAM_NO_EXTENSIONS=1 python -m build --wheel" in text, "the pure-Python wheel"
    assert "id-token: write" in text and "pypa/gh-action-pypi-publish@release/v1" in text
    assert "password:" not in text, "trusted publishing needs no token"
    for runner in (
        "ubuntu-24.04",
        "ubuntu-24.04-arm",
        "macos-15",
        "macos-15-intel",
        "windows-2025",
        "windows-11-arm",
    ):
        assert re.search(rf"^ +- {re.escape(runner)}$", text, re.M), runner


# ------------------------------------------------------------------------------- supported Pythons


def test_python_versions_agree() -> None:
    """requires-python, the classifiers and the cibuildwheel builds name the same CPythons."""
    config = pyproject()
    project = config["project"]
    classified = sorted(
        int(m.group(1))
        for c in project["classifiers"]
        if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c))
    )
    assert classified == list(range(classified[0], classified[-1] + 1)), classified
    assert project["requires-python"] == f">=3.{classified[0]}"
    cibw = config["tool"]["cibuildwheel"]
    built = sorted(int(s[3:-2]) for s in cibw["build"].split())
    assert cibw["build"].split() == [f"cp3{v}-*" for v in built]
    assert built == classified


def test_free_threaded_builds_are_skipped_explicitly() -> None:
    # The README says so; change both together when the C decoder is audited for free-threading.
    assert "cp3*t-*" in pyproject()["tool"]["cibuildwheel"]["skip"]


def test_cibuildwheel_tests_every_wheel() -> None:
    cibw = pyproject()["tool"]["cibuildwheel"]
    assert "pytest" in cibw["test-command"]
    assert cibw["test-extras"] == ["test"]
    # What the suite reads besides the installed package: its own files, the C sources it compiles,
    # the benchmarks it smoke-tests, and pytest's configuration.
    assert {"tests", "ext", "benchmarks", "pyproject.toml"} <= set(cibw["test-sources"])


# --------------------------------------------------------------------------- version in one place


def test_version_in_one_place() -> None:
    config = pyproject()
    assert "version" not in config["project"]
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "evstream.__version__"}
    source = repo_file("src/evstream/__init__.py").read_text(encoding="utf-8")
    assert len(re.findall(r"^__version__ = ", source, re.M)) == 1
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", evstream.__version__)


def test_changelog_names_the_version() -> None:
    changelog = repo_file("CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[(\d[^\]]*)\]", changelog, re.M)
    assert released, "no released section in CHANGELOG.md"
    assert released[0] == evstream.__version__, "the newest CHANGELOG section is not evstream.__version__"


def test_installed_metadata_matches() -> None:
    try:
        installed = importlib.metadata.version("evstream")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("evstream is imported from the source tree, not installed")
    if PACKAGE == ROOT / "src" / "evstream":
        pytest.skip("this run imports the source tree; the installed metadata may be another build's")
    assert installed == evstream.__version__


# ------------------------------------------------------------------------------------------ typing


def test_py_typed_and_stub_are_shipped() -> None:
    # PACKAGE is the installed package when the suite runs against a wheel.
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_codec.pyi").is_file()
    package_data = pyproject()["tool"]["setuptools"]["package-data"]["evstream"]
    assert "py.typed" in package_data and "*.pyi" in package_data


def _stub_names() -> set[str]:
    tree = ast.parse((PACKAGE / "_codec.pyi").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_stub_matches_the_python_twin() -> None:
    twin = importlib.import_module("evstream._codec_py")
    assert _stub_names() == set(twin.__all__) | STUB_ONLY_IN_C


def test_stub_matches_the_compiled_module() -> None:
    if PURE_PYTHON_RUN:
        pytest.skip("EVSTREAM_NO_EXTENSIONS=1")
    try:
        compiled = importlib.import_module("evstream._codec")
    except ImportError as exc:
        pytest.fail(f"the C extension was expected but did not load: {exc}")
    defined_here = {
        name
        for name, value in vars(compiled).items()
        if getattr(value, "__module__", None) == compiled.__name__ and not name.startswith("__")
    }
    stub = _stub_names()
    assert {name for name in stub if not hasattr(compiled, name)} == set()
    public = {name for name in defined_here if not name.startswith("_")}
    assert public <= stub, f"public in _codec but not in _codec.pyi: {sorted(public - stub)}"


# ----------------------------------------------------------------------------------------- __all__


def test_every_module_all_names_exist() -> None:
    for info in pkgutil.walk_packages(evstream.__path__, "evstream."):
        if info.name == "evstream.__main__":
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError as exc:  # an optional dependency of that module (botocore, boto3, ...)
            if exc.name is not None and exc.name.split(".")[0] == "evstream":
                raise
            continue
        names = getattr(module, "__all__", None)
        if names is None:
            continue
        assert len(set(names)) == len(names), f"{info.name}.__all__ has duplicates"
        assert [n for n in names if not _has(module, n)] == [], info.name


def _has(module: ModuleType, name: str) -> bool:
    try:
        return hasattr(module, name)
    except ImportError as exc:  # a lazy attribute whose optional dependency is not installed
        if exc.name is not None and exc.name.split(".")[0] == "evstream":
            raise
        return True
