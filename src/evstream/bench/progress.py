"""The one progress bar of the CLI (``bench`` and ``demo``): one line on stderr, redrawn in place."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

__all__ = ["Progress"]

_WIDTH = 119


class Progress:
    """Progress towards ``total`` units, drawn on a terminal; off a terminal, one line per labelled step.

    Two ways to drive it: ``step(label)`` returns a callback taking the fraction of that step done, and
    ``finish_step()`` ends it (the bench: one step per workload); or ``advance(amount, label)`` for
    units of work (the demo: events received).
    """

    def __init__(self, total: float, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(1.0, float(total))
        self.done = 0.0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.label = ""
        self._steps = 0
        self._shown = ""

    def step(self, label: str) -> Callable[[float], None]:
        self.label = label
        self._steps += 1
        if self.enabled and not self.tty:
            print(f"[{self._steps}/{self.total:g}] {label}", file=self.stream, flush=True)
        base = self.done

        def tick(fraction: float) -> None:
            self._draw(base + fraction)

        self._draw(base)
        return tick

    def finish_step(self) -> None:
        self.done += 1
        self._draw(self.done)

    def advance(self, amount: float = 1.0, label: str | None = None) -> None:
        if label is not None:
            self.label = label
        self.done += amount
        self._draw(self.done)

    def _draw(self, position: float) -> None:
        if not (self.enabled and self.tty):
            return
        fraction = min(1.0, position / self.total)
        filled = int(30 * fraction)
        bar = "#" * filled + "." * (30 - filled)
        elapsed = time.perf_counter() - self.start
        line = f"\r[{bar}] {100 * fraction:3.0f}% {elapsed:5.1f}s  {self.label}"[:_WIDTH].ljust(_WIDTH)
        if line != self._shown:  # redraw only when something visible changed
            self._shown = line
            self.stream.write(line)
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * _WIDTH + "\r")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
