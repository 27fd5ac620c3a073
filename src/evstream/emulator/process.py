"""Running the endpoint beside the caller: in a child process or on a thread with its own event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any, Protocol, TypeVar

from .loops import new_event_loop
from .server import Emulator

__all__ = [
    "CA_LINE",
    "ENDPOINT_LINE",
    "HTTP2_LINE",
    "EmulatorProcess",
    "EmulatorThread",
    "Listening",
    "ServerThread",
    "read_listening",
]

_T = TypeVar("_T", bound="ServerThread")


@dataclasses.dataclass
class Listening:
    """Where a ``serve`` process listens, from the lines it prints as it starts."""

    url: str = ""  # the HTTP/1.1 endpoint
    http2_url: str = ""  # HTTP/2 over TLS (--http2-port)
    http2_cleartext_url: str = ""  # h2c (--http2-cleartext-port)
    ca_file: str = ""  # the CA that signed the HTTP/2 listener's certificate


# The start-up lines serve prints (each followed by a URL or a path), and read_listening reads.
ENDPOINT_LINE = "evstream endpoint listening on "
HTTP2_LINE = "evstream HTTP/2 endpoint listening on "
CA_LINE = "evstream HTTP/2 CA certificate: "


def read_listening(stdout: IO[str], *, http2: bool = False, cleartext: bool = False) -> Listening:
    """Read the start-up lines of ``serve`` (run with ``--http2-port`` when ``http2``, with
    ``--http2-cleartext-port`` when ``cleartext``) from its output: exactly the lines those listeners
    print, so that the output can be read on. RuntimeError when the endpoint printed anything else
    (it failed to start, and said why on stderr) or ended."""
    found = Listening()
    for _ in range(1 + 2 * http2 + cleartext):
        line = stdout.readline()
        value = line.rstrip("\n").rsplit(" ", 1)[-1]
        if line.startswith(ENDPOINT_LINE):
            found.url = value
        elif line.startswith(HTTP2_LINE + "https://"):
            found.http2_url = value
        elif line.startswith(HTTP2_LINE + "http://"):
            found.http2_cleartext_url = value
        elif line.startswith(CA_LINE):
            found.ca_file = line[len(CA_LINE) :].rstrip("\n")
        else:
            raise RuntimeError(f"the endpoint did not start: {line!r}")
    expected = {"url": True, "http2_url": http2, "ca_file": http2, "http2_cleartext_url": cleartext}
    missing = [name for name, wanted in expected.items() if wanted and not getattr(found, name)]
    if missing:
        raise RuntimeError(f"the endpoint did not print its {', '.join(missing)}: {found}")
    return found


class EmulatorProcess:
    """``python -m evstream serve --port 0 ARGS`` in a child process (benchmarks and the demo measure the
    client's CPU without the endpoint's); ``listening`` says where (HTTP/2 too, when ARGS ask for it).

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
        try:
            self.listening = read_listening(
                self.process.stdout, http2="--http2-port" in args, cleartext="--http2-cleartext-port" in args
            )
        except RuntimeError:
            self.close()
            raise
        self.url = self.listening.url

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
    in a daemon thread: the tests and the demo talk to it from the main thread. ``loop``: asyncio's
    default loop, or "uvloop" or "auto" (see :func:`.loops.resolve_loop`)."""

    def __init__(self, server: _Server, name: str = "evstream-endpoint", loop: str = "asyncio") -> None:
        self.server = server
        self.loop = new_event_loop(loop)
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

    def __init__(self, emulator: Emulator | None = None, *, loop: str = "asyncio", **kwargs: Any) -> None:
        self.emulator = emulator or Emulator(**kwargs)
        super().__init__(self.emulator, loop=loop)
