"""Only the extension modules; everything else is in pyproject.toml.

EVSTREAM_NO_EXTENSIONS=1 builds the pure-Python package on purpose. Otherwise a failed compile fails
the build: there is no silent fallback to the slow path.
"""

import os
import sys
from glob import glob

from setuptools import Extension, setup

_FLAG = os.environ.get("EVSTREAM_NO_EXTENSIONS", "").strip().lower()
if _FLAG not in ("", "0", "false", "no", "off", "1", "true", "yes", "on"):
    sys.exit(f"EVSTREAM_NO_EXTENSIONS={_FLAG!r}: expected 1/0, true/false, yes/no or on/off")
NO_EXTENSIONS = _FLAG in ("1", "true", "yes", "on")

C_SOURCES = ["ext/cpu.c", "ext/crc32.c", "ext/crc32_x86.c", "ext/crc32_arm.c"]

if NO_EXTENSIONS:
    print("*" * 60 + "\n*  evstream: pure Python build (EVSTREAM_NO_EXTENSIONS)\n" + "*" * 60)
    ext_modules = []
else:
    from Cython.Build import cythonize

    print("*" * 60 + "\n*  evstream: accelerated build (Cython + C CRC-32 kernels)\n" + "*" * 60)
    # Kernels carry per-function target attributes, so every file builds with the default flags
    # and one Extension serves every CPU (and macOS universal2).
    ext_modules = cythonize(
        [
            Extension(
                "evstream._codec",
                sources=["src/evstream/_codec.pyx", *C_SOURCES],
                depends=sorted(glob("ext/*.h")),
                include_dirs=["ext"],
                extra_compile_args=["/O2"] if sys.platform == "win32" else ["-O3"],
            )
        ],
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "binding": False,
            # No "freethreading_compatible": the decoder's str caches and state rely on the GIL, so on
            # a free-threaded CPython the module re-enables the GIL at import. No cp3*t wheels are
            # built ([tool.cibuildwheel] skip); see the README.
        },
    )

setup(ext_modules=ext_modules)
