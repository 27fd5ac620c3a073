"""What the numbers were measured on: CPU (vendor, model, the instruction-set extensions the CRC kernels
use), Python, evstream's build and CRC tier, peers, load; and the optional allocator setting that keeps
large-frame timings from measuring page faults."""

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


# Extensions that decide the CRC-32 tier and the copy speed, as /proc/cpuinfo and sysctl spell them.
_X86_FLAGS = ("sse4_2", "pclmulqdq", "avx2", "vpclmulqdq", "avx512f")
_ARM_FEATURES = ("crc32", "pmull", "sha3", "sve", "sve2")
_ARM_VENDORS = {"0x41": "Arm", "0x42": "Broadcom", "0x46": "Fujitsu", "0x48": "HiSilicon", "0x4e": "NVIDIA",
                "0x51": "Qualcomm", "0x61": "Apple", "0xc0": "Ampere"}  # fmt: skip


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo (Linux), lower-case keys; empty elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fp:
            for line in fp:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def _sysctl(name: str) -> str:
    import subprocess

    try:
        return subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_identity() -> dict[str, str]:
    """vendor, model (the marketing name, plus family/model/stepping or part numbers, since VMs often
    report only "AMD EPYC"), and isa (the extensions the kernels use, "no X" for the ones absent)."""
    info = _cpuinfo()
    vendor, model, isa = "", "", ""
    if "vendor_id" in info:  # x86 Linux
        vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(info["vendor_id"], info["vendor_id"])
        model = info.get("model name", "")
        ids = [f"{k} {info[k]}" for k in ("cpu family", "model", "stepping") if k in info]
        model = f"{model} ({', '.join(ids)})" if ids else model
        flags = set(info.get("flags", "").split())
        isa = " ".join(f if f in flags else f"no-{f}" for f in _X86_FLAGS)
    elif "cpu implementer" in info:  # arm64 Linux
        vendor = _ARM_VENDORS.get(info["cpu implementer"].lower(), f"implementer {info['cpu implementer']}")
        model = (
            info.get("model name")
            or f"part {info.get('cpu part', '?')}, variant {info.get('cpu variant', '?')}"
        )
        features = set(info.get("features", "").split())
        isa = " ".join(f if f in features else f"no-{f}" for f in _ARM_FEATURES)
    elif sys.platform == "darwin":
        model = _sysctl("machdep.cpu.brand_string")
        vendor = "Apple" if model.startswith("Apple") else model.split(" ", 1)[0]
        if platform.machine() == "arm64":
            feats = {
                f: _sysctl(f"hw.optional.arm.FEAT_{f.upper()}") == "1" for f in ("crc32", "pmull", "sha3")
            }
            isa = " ".join(f if on else f"no-{f}" for f, on in feats.items())
    if not model:  # Windows: "Intel64 Family 6 Model 106 Stepping 6, GenuineIntel", "ARMv8 (64-bit) ..."
        model = platform.processor() or platform.machine() or "unknown"
    return {"vendor": vendor or "unknown", "model": model, "isa": f"{platform.machine()}: {isa}".rstrip(": ")}


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
    identity = _cpu_identity()
    vendor, model = identity["vendor"], identity["model"]
    return {
        "cpu": model if model.lower().startswith(vendor.lower()) else f"{vendor} {model}",
        "cpu_vendor": identity["vendor"],
        "cpu_model": identity["model"],
        "isa": identity["isa"],
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
