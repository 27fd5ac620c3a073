"""The chart of a run (``--plot``): throughput against size, per implementation (needs matplotlib)."""

from __future__ import annotations

from typing import Any, Callable

from .workloads import fmt_size

__all__ = ["plot"]


def plot(report: dict[str, Any], path: str) -> None:
    """Throughput vs size per implementation: CRC-32 (GB/s) and decode (MB/s, 64 KiB chunks)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:
        raise SystemExit(f"--plot needs matplotlib: pip install 'evstream[bench]' ({exc})") from None
    results = [r for r in report["results"] if r["correct"]]
    panels: list[tuple[str, str, str, str, float, Callable[[dict[str, Any]], bool]]] = [
        ("crc32", "CRC-32 throughput", "input size", "GB/s", 1e9, lambda r: r["group"] == "crc32"),
        (
            "decode",
            "Decode throughput, 64 KiB chunks",
            "frame size",
            "MB/s",
            1e6,
            lambda r: (
                r["group"] == "decode"
                and r["key"].endswith("/64KiB")
                and not r["key"].startswith("decode/headers")
            ),
        ),
    ]
    panels = [p for p in panels if any(p[5](r) for r in results)]
    if not panels:
        raise SystemExit("--plot: nothing to plot (no CRC-32 or 64 KiB-chunk decode results)")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    size_fmt = FuncFormatter(
        lambda x, _pos: fmt_size(int(x)) if x >= 1 and float(x).is_integer() else f"{x:g}"
    )
    for ax, (_, title, xlabel, unit, scale, keep) in zip(axes[0], panels):
        series: dict[str, list[tuple[int, float]]] = {}
        for r in results:
            if keep(r):
                series.setdefault(r["impl"], []).append((r["size"], r["nbytes"] / r["median_s"] / scale))
        for name, points in sorted(series.items(), key=lambda kv: (not kv[0].startswith("evstream"), kv[0])):
            points.sort()
            xs, ys = zip(*points)
            style = "-o" if name.startswith("evstream") else "--s"
            ax.plot(
                xs, ys, style, label=name, linewidth=2 if name.startswith("evstream") else 1.2, markersize=4
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(size_fmt)
        ax.set_xlabel(f"{xlabel} (bytes, log scale)")
        ax.set_ylabel(f"throughput ({unit}, log scale)")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
    m = report["machine"]
    fig.suptitle(
        f"evstream {m['evstream']} ({report['mode']} mode): {m['cpu']}, "
        f"CRC-32 tier {m['crc32_backend']}, {m['python']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
