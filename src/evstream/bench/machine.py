"""What the numbers were measured on: CPU, Python, evstream's build and CRC tier, peers, load; and the
allocator setting that keeps large-frame timings from measuring page faults."""

from __future__ import annotations

import datetime
import importlib
import importlib.metadata
import os
import platform
import sys
from typing import Any

from .workloads import MiB

__all__ = ["load_average", "machine_facts", "pin_allocator"]


def pin_allocator() -> str:
    """Keep freed memory in the process (glibc ``mallopt``), as a long-running decoder's heap settles.

    Otherwise glibc hands every large freed block back to the kernel, and the next frame pays a page
    fault per 4 KiB again; in a VM that cost swings 2-10x from call to call (measured here: the same
    16 MiB decode took 2 ms or 22 ms), drowning the codecs' own cost. Applies to every implementation
    alike. Returns what was done, for the report."""
    if not sys.platform.startswith("linux"):
        return "default (not Linux)"
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "default (no mallopt: not glibc)"
    m_trim_threshold, m_mmap_threshold = -1, -3
    # 32 MiB is glibc's ceiling for the mmap threshold; enough for 16 MiB frames and botocore's buffer.
    if mallopt(m_mmap_threshold, 32 * MiB) and mallopt(m_trim_threshold, 1024 * MiB):
        return "glibc: mmap threshold 32 MiB, trim threshold 1 GiB"
    return "default (mallopt refused)"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fp:
            for line in fp:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        import subprocess

        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_facts() -> dict[str, Any]:
    import evstream

    tiers: list[str] = []
    if evstream.IMPLEMENTATION == "c":
        tiers = list(importlib.import_module("evstream._codec")._crc32_available_tiers())
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": " ".join(platform.python_build()) + f" {platform.python_compiler()}",
        "evstream": evstream.__version__,
        "implementation": evstream.IMPLEMENTATION,
        "crc32_backend": evstream.CRC32_BACKEND,
        "crc32_tiers": tiers,
        "load_average": load_average(),
        "peers": {
            d: _version(d)
            for d in (
                "botocore",
                "boto3",
                "aiobotocore",
                "isal",
                "zlib-ng",
                "awscrt",
                "smithy-aws-event-stream",
            )
        },
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
