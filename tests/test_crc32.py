"""evstream.crc32 and every CRC-32 kernel against zlib.crc32."""

from __future__ import annotations

import array
import os
import random
import subprocess
import sys
import threading
import zlib
from types import ModuleType

import pytest

from conftest import PURE_PYTHON_RUN, load_codec

DATA = random.Random(1).randbytes(4096 + 64 + 1)


def tiers() -> list[str]:
    if PURE_PYTHON_RUN:
        return []
    return load_codec("c")._crc32_available_tiers()


def test_public_crc32(codec: ModuleType) -> None:
    for size in (0, 1, 7, 8, 15, 16, 63, 64, 65, 255, 1024, 4096):
        assert codec.crc32(DATA[:size]) == zlib.crc32(DATA[:size])
    assert codec.crc32(b"abc", 12345) == zlib.crc32(b"abc", 12345)
    for seed in (-1, 2**32, 2**32 + 5, -(2**40), 2**70 + 3):
        assert codec.crc32(b"abc", seed) == zlib.crc32(b"abc", seed)
    for data in (bytearray(b"xyz"), memoryview(DATA)[3:77], array.array("I", [1, 2, 3])):
        assert codec.crc32(data) == zlib.crc32(data)
    with pytest.raises(TypeError):
        codec.crc32("text")
    with pytest.raises(BufferError):
        codec.crc32(memoryview(DATA)[::2])


def test_backend_name(codec: ModuleType) -> None:
    known = {
        "zlib",
        "software",
        "pclmulqdq",
        "vpclmulqdq-avx2",
        "vpclmulqdq-avx512",
        "armv8-crc",
        "armv8-crc-pmull",
    }
    assert codec.CRC32_BACKEND in known


def test_compiled_build_uses_the_fastest_tier() -> None:
    if PURE_PYTHON_RUN:
        pytest.skip("pure-Python run")
    c = load_codec("c")
    if os.environ.get("EVSTREAM_CRC32"):
        pytest.skip("a tier is forced")
    assert c._crc32_available_tiers()[-1] == c.CRC32_BACKEND


@pytest.mark.parametrize("tier", tiers())
def test_tier_lengths_and_alignments(tier: str) -> None:
    crc_with = load_codec("c")._crc32_with
    view = memoryview(DATA)
    for offset in range(64):
        for size in [*range(300), 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 4095, 4096]:
            chunk = view[offset : offset + size]
            assert crc_with(tier, chunk) == zlib.crc32(chunk), (offset, size)


@pytest.mark.parametrize("tier", tiers())
def test_tier_every_length(tier: str) -> None:
    crc_with = load_codec("c")._crc32_with
    for size in range(4097):
        assert crc_with(tier, DATA[:size], 0xDEADBEEF) == zlib.crc32(DATA[:size], 0xDEADBEEF), size


@pytest.mark.parametrize("tier", tiers())
def test_tier_split_points(tier: str) -> None:
    crc_with = load_codec("c")._crc32_with
    data = DATA[:1500]
    whole = zlib.crc32(data)
    for cut in range(0, len(data) + 1, 7):
        assert crc_with(tier, data[cut:], crc_with(tier, data[:cut])) == whole


@pytest.mark.parametrize("tier", tiers())
def test_tier_large(tier: str) -> None:
    crc_with = load_codec("c")._crc32_with
    big = random.Random(2).randbytes(3 * 1024 * 1024 + 13)
    assert crc_with(tier, big) == zlib.crc32(big)


@pytest.mark.parametrize("tier", tiers())
def test_tier_prefetch_and_alignment_bounds(tier: str) -> None:
    # Sizes where the steady-state loops start or stop prefetching (4 KiB ahead of 128/256/512-byte
    # blocks) and where the zmm tier starts aligning its loads (32 KiB), at every offset from a cache line.
    crc_with = load_codec("c")._crc32_with
    big = memoryview(random.Random(4).randbytes(2 * 1024 * 1024 + 64))
    sizes = [4096 + 128, 4096 + 256 - 1, 4096 + 512 + 1, 32 * 1024 - 1, 32 * 1024, 32 * 1024 + 95]
    for offset in range(64):
        for size in sizes:
            chunk = big[offset : offset + size]
            assert crc_with(tier, chunk, 0x12345678) == zlib.crc32(chunk, 0x12345678), (offset, size)
    for offset in (0, 1, 17, 33, 63):
        chunk = big[offset : offset + 2 * 1024 * 1024 - 7]
        assert crc_with(tier, chunk) == zlib.crc32(chunk), offset


def test_unknown_tier_rejected() -> None:
    if PURE_PYTHON_RUN:
        pytest.skip("pure-Python run")
    with pytest.raises(ValueError, match="unknown CRC-32 tier 'crc32c'"):
        load_codec("c")._crc32_with("crc32c", b"")


def _backend_with(env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import evstream; print(evstream.CRC32_BACKEND)"],
        env={**os.environ, "EVSTREAM_CRC32": env, "EVSTREAM_NO_EXTENSIONS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("tier", tiers())
def test_forcing_a_tier(tier: str) -> None:
    result = _backend_with(tier)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == tier


def test_forcing_clamps_to_the_cpu_and_rejects_unknown_names() -> None:
    if PURE_PYTHON_RUN:
        pytest.skip("pure-Python run")
    available = tiers()
    for forced in ("vpclmulqdq-avx512", "armv8-crc-pmull"):
        result = _backend_with(forced)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() in available
    assert _backend_with("software").stdout.strip() == "software"
    bad = _backend_with("sse42")
    assert bad.returncode != 0 and "EVSTREAM_CRC32='sse42'" in bad.stderr


def test_threads(codec: ModuleType) -> None:
    # Large inputs release the GIL; many threads at once must each get the right answer.
    big = random.Random(3).randbytes(2 * 1024 * 1024)
    expected = zlib.crc32(big)
    results: list[int] = []

    def work() -> None:
        for _ in range(5):
            results.append(codec.crc32(big))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [expected] * 20
