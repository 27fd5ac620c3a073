"""What ``import evstream.sagemaker`` costs: the sync client only. The asyncio client (and asyncio itself),
Bedrock's clients and the HTTP/2 clients are imported when first named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import evstream.sagemaker

# Modules a sync-only program must not pay for.
_LAZY_MODULES = [
    "asyncio",
    "aiohttp",
    "evstream.sagemaker._async",
    "evstream.sagemaker._aio_connection",
    "evstream.sagemaker.bedrock",
    "evstream.sagemaker.http2",
    "evstream.sagemaker._http2_async",
    "evstream.formats",
]


def _modules_after(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout))


def test_import_loads_no_asyncio_side() -> None:
    loaded = _modules_after("import evstream.sagemaker")
    assert "evstream.sagemaker._sync" in loaded  # the probe sees what the import did
    assert loaded.isdisjoint(_LAZY_MODULES), sorted(loaded.intersection(_LAZY_MODULES))


def test_naming_an_async_class_imports_it() -> None:
    loaded = _modules_after("import evstream.sagemaker\nevstream.sagemaker.AsyncClient")
    assert "evstream.sagemaker._async" in loaded
    assert "asyncio" in loaded


@pytest.mark.parametrize("name", evstream.sagemaker.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(evstream.sagemaker, name) is not None
    assert name in dir(evstream.sagemaker)


def test_public_names_are_the_modules_own() -> None:
    from evstream.sagemaker import _async, bedrock

    assert evstream.sagemaker.AsyncClient is _async.AsyncClient
    assert evstream.sagemaker.AsyncEventStream is _async.AsyncEventStream
    assert evstream.sagemaker.BedrockClient is bedrock.BedrockClient
    assert evstream.sagemaker.bedrock_async_client is bedrock.bedrock_async_client


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'evstream.sagemaker' has no attribute 'Nope'$"):
        evstream.sagemaker.Nope  # noqa: B018
