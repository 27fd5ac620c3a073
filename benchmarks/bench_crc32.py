"""CRC-32: evstream (default kernel and every CPU tier) vs binascii, isal, zlib-ng, awscrt; 8 B to 16 MiB."""

from __future__ import annotations

from typing import Any

import pytest

from evstream import bench

from conftest import params, run_case

_SETS, _SKIPS = bench.crc_sets(bench.suite_mode())


@pytest.mark.parametrize("case", params([c for s in _SETS for c in s], _SKIPS))
def test_crc32(benchmark: Any, case: Any) -> None:
    run_case(benchmark, case)
