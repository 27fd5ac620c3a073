"""Encode: a token event, every header type, large payloads; evstream C vs its pure-Python twin and smithy."""

from __future__ import annotations

from typing import Any

import pytest

from evstream import bench

from conftest import params, run_case

_SETS, _SKIPS = bench.encode_sets(bench.suite_mode())


@pytest.mark.parametrize("case", params([c for s in _SETS for c in s], _SKIPS))
def test_encode(benchmark: Any, case: Any) -> None:
    run_case(benchmark, case)
