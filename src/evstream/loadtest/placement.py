"""Where the local endpoint and the client run: on CPUs of their own, when that helps.

When a reader's own CPU is busy, the kernel wakes it on the CPU of the writer that woke it, expecting
the writer to sleep next. A paced endpoint sending a tick's records to many streams does not, so on a
machine otherwise idle the endpoint and the client end up sharing one CPU, the client waiting behind
each tick's sends while the other CPU idles (measured: 13 % of the time at 64 streams on 2 vCPUs).
Pinned apart, that wait is gone; but a pinned process cannot move to a CPU another process left free
either, so on a shared machine pinning makes the client's delays worse: hence ``auto``, which pins only
a machine found idle.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

__all__ = ["IDLE_BUSY_SHARE", "cpus_apart", "machine_busy_share"]

# A machine whose CPUs are busy less than this share of the time (before the load test starts) is idle.
IDLE_BUSY_SHARE = 0.10


@contextlib.contextmanager
def cpus_apart(pid: int, client_processes: int, pin: str = "auto") -> Iterator[str]:
    """Run process ``pid`` (the local endpoint) on one CPU and this process, and the processes it
    starts, on the others, while the context lasts; yields a description ("" when left alone).

    ``pin``: "on", "off", or "auto" (on when :func:`machine_busy_share` finds the machine idle). Only
    on Linux, and only with room for ``client_processes`` besides the endpoint's CPU."""
    if pin not in ("auto", "on", "off"):
        raise ValueError(f"pin must be auto, on or off, not {pin!r}")
    getaffinity = getattr(os, "sched_getaffinity", None)
    setaffinity = getattr(os, "sched_setaffinity", None)
    if pin == "off" or getaffinity is None or setaffinity is None:
        yield ""
        return
    mine = sorted(getaffinity(0))
    if len(mine) < client_processes + 1:
        yield ""
        return
    if pin == "auto":
        busy = machine_busy_share()
        if busy is None or busy >= IDLE_BUSY_SHARE:
            yield "" if busy is None else f"not pinned: the CPUs were {busy:.0%} busy at the start"
            return
    endpoint, client = {mine[-1]}, set(mine[:-1])
    try:
        setaffinity(pid, endpoint)
        setaffinity(0, client)
    except OSError:  # not permitted here (a container's policy): leave the scheduler to it
        yield ""
        return
    try:
        yield f"endpoint on CPU {mine[-1]}, client on CPU {','.join(map(str, sorted(client)))}"
    finally:
        setaffinity(0, set(mine))


def machine_busy_share(seconds: float = 0.5) -> float | None:
    """The share of the machine's CPU time spent on anything but idling over the next ``seconds``
    (Linux /proc/stat: steal counts as busy), None where that cannot be read."""

    def totals() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
        return sum(values), values[3] + values[4]  # all, idle + iowait

    try:
        total0, idle0 = totals()
        time.sleep(seconds)
        total1, idle1 = totals()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return 1.0 - (idle1 - idle0) / (total1 - total0)
