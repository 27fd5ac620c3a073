"""Build tests/c/test_crc32.c with the ext/ CRC sources and run it: every CRC tier this machine has
against a bitwise reference, with gcc (warnings are errors), clang when installed, and the aarch64 kernels
under qemu-aarch64 when the cross compiler and qemu are installed.

The C program prints one "tier NAME ok|FAILED|unavailable" line per tier and "N passed, N failed" last.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "ext"
SOURCES = [EXT / "crc32.c", EXT / "crc32_x86.c", EXT / "crc32_arm.c", EXT / "cpu.c"]
TEST_C = ROOT / "tests" / "c" / "test_crc32.c"
BENCH_C = ROOT / "tests" / "c" / "bench_crc32.c"
AVX512_EMULATED_C = ROOT / "tests" / "c" / "avx512_emulated.c"
WARN = ["-Wall", "-Wextra", "-Werror"]
IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def build(
    cc: list[str],
    out: Path,
    main: Path = TEST_C,
    flags: tuple[str, ...] = ("-O2",),
    extra: tuple[Path, ...] = (),
) -> Path:
    cmd = [*cc, *flags, *WARN, f"-I{EXT}", str(main), *map(str, (*extra, *SOURCES)), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout}{res.stderr}"
    assert not res.stderr.strip(), f"compiler printed diagnostics:\n{res.stderr}"
    return out


def run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", last)
    assert m and int(m.group(1)) > 0 and m.group(2) == "0", out
    return out


def tiers(out: str) -> dict[str, str]:
    return dict(re.findall(r"^tier (\S+)\s+(\S+)$", out, re.M))


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed")
    return path


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_native(compiler: str, tmp_path: Path) -> None:
    cc = need(compiler)
    out = run([str(build([cc], tmp_path / "test_crc32"))])
    found = tiers(out)
    assert found.get("software") == "ok", out
    assert "FAILED" not in found.values(), out
    if IS_X86:
        assert set(found) == {"software", "pclmulqdq", "vpclmulqdq-avx2", "vpclmulqdq-avx512"}, out


def test_native_O0(tmp_path: Path) -> None:
    """Unoptimised builds: where plain (non-zero-extending) vector casts have given wrong results."""
    cc = need("gcc")
    run([str(build([cc], tmp_path / "test_crc32_O0", flags=("-O0",))), "--quick"])


@pytest.mark.skipif(not IS_X86, reason="x86 kernels")
@pytest.mark.parametrize("opt", ["-O2", "-O0"])
def test_avx512_kernel_emulated(opt: str, tmp_path: Path) -> None:
    """The zmm kernel's logic on any machine with the AVX2 tier: tests/c/avx512_emulated.c rebuilds it with
    every 512-bit intrinsic done as four 128-bit ones, and the C test sweeps it like a tier."""
    cc = need("gcc")
    flags = (
        opt,
        "-DEVS_TEST_EXTRA_KERNEL=evs_test_crc32_avx512_emulated",
        '-DEVS_TEST_EXTRA_NAME="vpclmulqdq-avx512-emulated"',
    )
    binary = build([cc], tmp_path / "test_crc32_avx512_emulated", flags=flags, extra=(AVX512_EMULATED_C,))
    out = run([str(binary), "--quick"] if opt == "-O0" else [str(binary)])
    status = tiers(out).get("vpclmulqdq-avx512-emulated")
    if status == "unavailable":
        pytest.skip("this CPU has no vpclmulqdq-avx2 tier to emulate on")
    assert status == "ok", out


def test_bench_builds(tmp_path: Path) -> None:
    """The benchmark must keep compiling warning-free (it is run by hand, not here)."""
    cc = need("gcc")
    build([cc], tmp_path / "bench_crc32", main=BENCH_C)


def qemu_run(binary: Path) -> str:
    # `-cpu max` advertises the CRC32 and PMULL hwcaps, so both ARM kernels run.
    out = run([need("qemu-aarch64"), "-cpu", "max", str(binary), "--quick"])
    found = tiers(out)
    assert found == {"software": "ok", "armv8-crc": "ok", "armv8-crc-pmull": "ok"}, out
    return out


def test_aarch64_gcc_qemu(tmp_path: Path) -> None:
    cc = need("aarch64-linux-gnu-gcc")
    need("qemu-aarch64")
    qemu_run(build([cc, "-static"], tmp_path / "test_crc32_arm64"))


def test_aarch64_clang_qemu(tmp_path: Path) -> None:
    """clang's spelling of the ARM target attributes ("crc", "crc,aes"), linked with the gcc cross
    toolchain's libc and binutils."""
    clang = need("clang")
    need("aarch64-linux-gnu-gcc")
    need("qemu-aarch64")
    sysroot = Path("/usr/aarch64-linux-gnu")
    if not (sysroot / "include").is_dir():
        pytest.skip("no aarch64 sysroot at /usr/aarch64-linux-gnu")
    cc = [
        clang,
        "--target=aarch64-linux-gnu",
        f"--sysroot={sysroot}",
        "-isystem",
        str(sysroot / "include"),
        "-B/usr/bin/aarch64-linux-gnu-",
        "-fuse-ld=bfd",
        "-static",
    ]
    qemu_run(build(cc, tmp_path / "test_crc32_arm64_clang"))
