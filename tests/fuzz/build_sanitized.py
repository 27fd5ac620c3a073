"""Build evstream's C extension with ASan + UBSan (and libFuzzer coverage) into a separate tree.

    python tests/fuzz/build_sanitized.py OUTDIR

Copies src/evstream and ext/ of this checkout to OUTDIR and builds ``evstream._codec`` in place there
with clang (or gcc when CC=gcc), so the checkout's own build is untouched; then every Python source
there is replaced by a symlink to the checkout's, so ``PYTHONPATH=OUTDIR/src`` imports the live Python
code with the sanitized extension. Used by tests/fuzz/sanitize.sh, which also sets LD_PRELOAD.

Flags: -fsanitize=address,undefined -fno-sanitize-recover=undefined (any UB aborts), -fno-wrapv, -O1
-g, frame pointers kept; with clang also -fsanitize=fuzzer-no-link so atheris sees the C code's coverage.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def c_sources(out: Path) -> list[str]:
    """The C files setup.py lists, as they exist in this checkout (kernels may be in progress)."""
    text = (ROOT / "setup.py").read_text()
    match = re.search(r"C_SOURCES\s*=\s*\[([^\]]*)\]", text)
    listed = re.findall(r"[\"']([^\"']+\.c)[\"']", match.group(1)) if match else []
    present = [s for s in listed if (out / s).exists()]
    missing = [s for s in listed if not (out / s).exists()]
    if missing:
        print(f"build_sanitized: not in the checkout (skipped): {', '.join(missing)}", file=sys.stderr)
    return present


def link_live_sources(out: Path) -> None:
    """Replace the copied Python sources by symlinks to the checkout's, keeping only the built .so.

    Others edit the package while the suite runs: the tests must meet the same Python code as in the
    checkout, with only the extension swapped for the sanitized one.
    """
    package = out / "src" / "evstream"
    live = ROOT / "src" / "evstream"
    for entry in live.iterdir():
        if entry.name.startswith("_codec") and entry.suffix in (".so", ".pyd", ".c"):
            continue
        if entry.name == "__pycache__":
            continue
        target = package / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        target.symlink_to(entry)


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    cc = os.environ.get("CC", "clang")
    is_clang = "clang" in cc
    (out / "src").mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        ROOT / "src" / "evstream",
        out / "src" / "evstream",
        ignore=shutil.ignore_patterns("*.so", "_codec.c", "__pycache__", "*.pyd"),
        dirs_exist_ok=True,
    )
    shutil.copytree(ROOT / "ext", out / "ext", dirs_exist_ok=True)
    sources = c_sources(out)
    sanitize = "-fsanitize=address,undefined"
    if is_clang and os.environ.get("EVS_SANITIZE_FUZZER", "1") == "1":
        sanitize += ",fuzzer-no-link"
    # -fno-wrapv undoes the -fwrapv in CPython's CFLAGS, so signed overflow is checked too.
    cflags = [
        sanitize,
        "-fno-sanitize-recover=undefined",
        "-fno-omit-frame-pointer",
        "-g",
        "-O1",
        "-fno-wrapv",
    ]
    # The undefined-symbol check would reject the sanitizer symbols the preloaded runtime provides.
    ldflags = [sanitize.replace(",fuzzer-no-link", ""), "-shared"]
    script = f"""
import sys
from setuptools import Extension, setup
from Cython.Build import cythonize
setup(
    script_args=["build_ext", "--inplace", "-q"],
    package_dir={{"": "src"}},
    ext_modules=cythonize(
        [Extension("evstream._codec", ["src/evstream/_codec.pyx", *{sources!r}], include_dirs=["ext"],
                   extra_compile_args={cflags!r}, extra_link_args={ldflags!r})],
        compiler_directives={{"language_level": 3, "embedsignature": True, "binding": False}},
        quiet=True,
    ),
)
"""
    env = dict(os.environ, CC=cc, LDSHARED=f"{cc} -shared")
    env.pop("LD_PRELOAD", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=out, env=env)
    if result.returncode:
        return result.returncode
    built = list((out / "src" / "evstream").glob("_codec*.so"))
    if not built:
        print("build_sanitized: no extension built", file=sys.stderr)
        return 1
    link_live_sources(out)
    symbols = subprocess.run(["nm", "-D", str(built[0])], capture_output=True, text=True).stdout
    for needed in ("__asan_report_load", "__ubsan_handle_"):
        if needed not in symbols:
            print(f"build_sanitized: {built[0]} is not instrumented ({needed} missing)", file=sys.stderr)
            return 1
    print(built[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
