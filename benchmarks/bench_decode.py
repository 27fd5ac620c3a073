"""Decode: token events, every header type, 64 KiB / 1 MiB / 16 MiB frames; chunks of one frame, 4 KiB and
64 KiB; evstream C, pure Python and its botocore drop-in vs botocore's EventStreamBuffer and smithy."""

from __future__ import annotations

from typing import Any

import pytest

from evstream import bench

from conftest import params, run_case

_SETS, _SKIPS = bench.decode_sets(bench.suite_mode())


@pytest.mark.parametrize("case", params([c for s in _SETS for c in s], _SKIPS))
def test_decode(benchmark: Any, case: Any) -> None:
    run_case(benchmark, case)
