"""Several client processes for one step: local processes, or actors on a Ray cluster.

Each worker is an asyncio client in its own process. The target (an evstream client, which pickles
to its configuration, and the workload) is shipped by pickling; each step is split evenly across the
workers, which start together at a wall-clock time and send back their :class:`StepResult` as a
dict. The coordinator merges them exactly: histogram counts add up (see :mod:`.histogram`), and each
worker's own load stays visible.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from .measure import StepResult
from .runner import Step, Target, run_step_sync

__all__ = ["LocalPool", "Pool", "RayPool", "SinglePool", "run_split"]

# Workers start a step together this long after the coordinator hands it out (Ray actors receive
# their calls at slightly different times).
START_DELAY = 1.0


class Pool:
    """Runs one step on every worker and returns the worker results."""

    workers = 1

    def run(self, steps: list[Step]) -> list[StepResult]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SinglePool(Pool):
    """This process."""

    def __init__(
        self, target: Target, loop: str = "auto", progress: Callable[..., None] | None = None
    ) -> None:
        self.target = target
        self.loop = loop
        self.progress = progress

    def run(self, steps: list[Step]) -> list[StepResult]:
        from ..emulator.loops import run as run_loop
        from .runner import run_step

        target = self.target

        async def main() -> StepResult:
            try:
                return await run_step(target, steps[0], self.progress)
            finally:
                await target.client.close()

        return [run_loop(main(), self.loop)]


def _serve(connection: Any, target: Target, loop: str) -> None:
    """A worker process: run each step received, send back its result, until None."""
    from ..emulator.latency import clock_ns  # noqa: F401  (import before the first step, not during it)

    while True:
        step = connection.recv()
        if step is None:
            break
        try:
            connection.send(run_step_sync(target, step, loop).to_dict())
        except Exception as exc:  # sent back and raised in the coordinator
            connection.send({"error": f"{type(exc).__name__}: {exc}"})
    connection.close()


class LocalPool(Pool):
    """``workers`` processes on this machine (spawned: no state inherited from the coordinator)."""

    def __init__(self, target: Target, workers: int, loop: str = "auto") -> None:
        context = multiprocessing.get_context("spawn")
        self.workers = workers
        self.processes = []
        self.connections = []
        try:
            for _ in range(workers):
                parent, child = context.Pipe()
                process = context.Process(target=_serve, args=(child, target, loop), daemon=True)
                process.start()
                child.close()
                self.processes.append(process)
                self.connections.append(parent)
        except BaseException:
            self.close()
            raise

    def run(self, steps: list[Step]) -> list[StepResult]:
        for connection, step in zip(self.connections, steps):
            connection.send(step)
        results = []
        for connection in self.connections:
            try:
                data = connection.recv()
            except EOFError:
                raise RuntimeError("a load-test worker process died") from None
            if "error" in data:
                raise RuntimeError(f"a load-test worker failed: {data['error']}")
            results.append(StepResult.from_dict(data))
        return results

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError, BrokenPipeError):
                connection.send(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
        for connection in self.connections:
            connection.close()
        self.connections = []
        self.processes = []


class _RayWorker:
    """The actor: holds the unpickled target and runs steps."""

    def __init__(self, target: Target, loop: str) -> None:
        self.target = target
        self.loop = loop

    def run(self, step: Step) -> dict[str, Any]:
        return run_step_sync(self.target, step, self.loop).to_dict()


class RayPool(Pool):
    """``workers`` actors on a Ray cluster: ``address`` "auto" (a running cluster), "local" (start one
    on this machine, stopped on close) or a cluster address (``ray://host:10001`` or ``host:6379``)."""

    def __init__(
        self,
        target: Target,
        workers: int,
        address: str = "auto",
        loop: str = "auto",
        cpus_per_worker: float = 1.0,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("--ray needs Ray: pip install 'evstream[ray]'") from None
        self.ray = ray
        self.workers = workers
        self.started = False
        if not ray.is_initialized():
            if address == "local":
                ray.init(
                    num_cpus=max(math.ceil(workers * cpus_per_worker), 1),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            self.started = True
        actor: Any = ray.remote(num_cpus=cpus_per_worker)(_RayWorker)
        self.actors: list[Any] = [actor.remote(target, loop) for _ in range(workers)]

    def run(self, steps: list[Step]) -> list[StepResult]:
        calls = [actor.run.remote(step) for actor, step in zip(self.actors, steps)]
        return [StepResult.from_dict(data) for data in self.ray.get(calls)]

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        self.actors = []
        if self.started:
            self.ray.shutdown()
            self.started = False


def run_split(pool: Pool, step: Step) -> StepResult:
    """Run ``step`` split across the pool's workers, starting together, and merge the results."""
    workers = pool.workers
    if workers == 1 and isinstance(pool, SinglePool):
        return StepResult.merged(pool.run([step]))
    start_at = time.time() + START_DELAY
    parts = [dataclasses.replace(step.split(workers, i), start_at=start_at) for i in range(workers)]
    return StepResult.merged(pool.run(parts))
