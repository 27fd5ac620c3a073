"""What every listener of the endpoint shares (the HTTP/1.1 server, the HTTP/2 one): a TCP server on
the current event loop whose close() also ends every connection still open, stalled ones included."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any

__all__ = ["Listener"]


class Listener:
    """Subclasses implement ``_connection(reader, writer)``; each connection's task is tracked."""

    # Bytes a StreamReader may buffer for one line (None: asyncio's 64 KiB).
    read_limit: int | None = None

    def __init__(self, host: str, port: int, ssl: ssl_module.SSLContext | None) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl
        self.accepted_connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"

    def track(self, task: asyncio.Task[Any]) -> None:
        """End ``task`` with the listener (a connection, or work a connection started)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        options: dict[str, Any] = {"limit": self.read_limit} if self.read_limit else {}
        self._server = await asyncio.start_server(
            self._accepted,
            self.host,
            self.port,
            ssl=self.ssl,
            backlog=1024,  # a thousand clients may connect at once (asyncio's default is 100)
            **options,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.track(task)
        self.accepted_connections += 1
        await self._connection(reader, writer)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
