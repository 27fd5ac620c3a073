"""Running the endpoint beside the caller: in a child process or on a thread with its own event loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from .server import Emulator

__all__ = ["EmulatorProcess", "EmulatorThread", "ServerThread"]

_T = TypeVar("_T", bound="ServerThread")


class EmulatorProcess:
    """``python -m evstream serve --port 0 ARGS`` in a child process (benchmarks and the demo measure the
    client's CPU without the endpoint's).

    ``env`` adds environment variables for the child, e.g. the secret key (never put it on argv,
    where ``ps`` shows it to every user of the machine).
    """

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "evstream", "serve", "--port", "0", *args]
        child_env = {**os.environ, **(env or {})}
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, child_env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, env=child_env, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on " not in line:
            self.close()
            raise RuntimeError(f"the endpoint did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[-1].strip()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Server(Protocol):
    @property
    def url(self) -> str: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


class ServerThread:
    """Runs a listener (anything with async ``start()``/``close()`` and a ``url``) on its own event loop
    in a daemon thread: the tests and the demo talk to it from the main thread."""

    def __init__(self, server: _Server, name: str = "evstream-endpoint") -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self: _T) -> _T:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if not self.loop.is_closed():
            self.loop.close()

    def __enter__(self: _T) -> _T:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class EmulatorThread(ServerThread):
    """An :class:`Emulator` (given, or made from ``kwargs``) on its own thread."""

    def __init__(self, emulator: Emulator | None = None, **kwargs: Any) -> None:
        self.emulator = emulator or Emulator(**kwargs)
        super().__init__(self.emulator)
