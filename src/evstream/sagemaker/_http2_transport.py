"""HTTP/2 duplex streams on awscrt: connections reused across streams, flow control both ways.

awscrt runs the sockets and the HTTP/2 framing on its own event-loop threads and calls back into Python
with response headers and body bytes. :class:`DuplexCore` is where those callbacks land: it decodes the
body as it arrives and keeps the decoded messages until the reader takes them. The receive window is
managed by hand: the server may only send ``window`` bytes beyond what the reader has taken, so a reader
that stops leaves the server waiting instead of this process buffering. Writes go through
``write_data`` futures that complete once the bytes are on the wire; a writer that gets more than
``max_inflight`` bytes ahead of the wire waits, so a server that stops reading stops the writer.

The sync and asyncio streams wrap one :class:`DuplexCore` each; they differ only in how they wait
(``wake`` is called from awscrt's thread whenever something changed).
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import threading
from collections.abc import Callable
from typing import Any

from awscrt import http as crt_http
from awscrt import io as crt_io

from .. import Decoder, EventStreamError, Message

__all__ = ["ConnectionPool", "DuplexCore", "Endpoint"]


class Endpoint:
    """Where the streams go and how: host, port, TLS (ALPN ``h2``), timeouts."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        verify: bool | str = True,
        connect_timeout: float = 60.0,
        window: int = 1 << 20,
        max_streams_per_connection: int = 100,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.window = window
        self.max_streams = max_streams_per_connection
        options = crt_io.TlsContextOptions()
        if verify is False:
            options.verify_peer = False
        elif isinstance(verify, str):
            options.override_default_trust_store_from_path(None, verify)
        options.alpn_list = ["h2"]
        self._tls = crt_io.ClientTlsContext(options)

    def tls_options(self) -> crt_io.TlsConnectionOptions:
        options = self._tls.new_connection_options()
        options.set_server_name(self.host)
        return options


class ConnectionPool:
    """HTTP/2 connections to one endpoint, each carrying up to ``max_streams`` streams at once.

    A stream takes a slot with :meth:`acquire` (a future, so the asyncio client need not block) and gives it
    back with :meth:`release`; a closed connection is dropped and the next acquire opens a new one.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._connections: dict[crt_http.Http2ClientConnection, int] = {}  # -> open streams
        self._connecting: concurrent.futures.Future[crt_http.Http2ClientConnection] | None = None
        self._waiting = 0  # streams promised a slot on the connection being opened
        self._closed = False

    def acquire(self) -> concurrent.futures.Future[crt_http.Http2ClientConnection]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            for connection, streams in list(self._connections.items()):
                if not connection.is_open():
                    del self._connections[connection]
                elif streams < self.endpoint.max_streams:
                    self._connections[connection] = streams + 1
                    done: concurrent.futures.Future[crt_http.Http2ClientConnection] = (
                        concurrent.futures.Future()
                    )
                    done.set_result(connection)
                    return done
            if self._connecting is None or self._waiting >= self.endpoint.max_streams:
                self._connecting = self._connect()
                self._waiting = 0
            self._waiting += 1
            return self._connecting

    def _connect(self) -> concurrent.futures.Future[crt_http.Http2ClientConnection]:
        endpoint = self.endpoint
        socket_options = crt_io.SocketOptions()
        socket_options.connect_timeout_ms = max(1, int(endpoint.connect_timeout * 1000))
        future = crt_http.Http2ClientConnection.new(
            endpoint.host,
            endpoint.port,
            socket_options=socket_options,
            tls_connection_options=endpoint.tls_options(),
            manual_window_management=True,
            initial_window_size=endpoint.window,
        )
        result: concurrent.futures.Future[crt_http.Http2ClientConnection] = concurrent.futures.Future()

        def connected(done: concurrent.futures.Future[Any]) -> None:
            with self._lock:
                if self._connecting is result:
                    self._connecting = None
                    waiting, self._waiting = self._waiting, 0
                else:
                    waiting = self.endpoint.max_streams
                error = done.exception()
                if error is None:
                    connection = done.result()
                    self._connections[connection] = waiting
                    if self._closed:
                        connection.close()
            if error is None:
                result.set_result(connection)
            else:
                result.set_exception(error)

        future.add_done_callback(connected)
        return result

    def release(self, connection: crt_http.Http2ClientConnection, *, abandoned: bool = False) -> None:
        """Give a stream's slot back; a stream abandoned mid-way closes its connection when it was alone on
        it (nothing else to disturb, and the server stops at once)."""
        with self._lock:
            if connection not in self._connections:
                return
            self._connections[connection] -= 1
            if not (abandoned and self._connections[connection] == 0):
                return
            del self._connections[connection]
        connection.close()

    @property
    def connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._connections if c.is_open())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            connection.close()


class DuplexCore:
    """One HTTP/2 request whose body is written piece by piece while its response is read.

    Thread-safe: awscrt's callbacks, one reader and writers on other threads. The writers' order is the
    caller's business (signed events must go out in the order they were signed).
    """

    def __init__(
        self,
        connection: crt_http.Http2ClientConnection,
        request: crt_http.HttpRequest,
        wake: Callable[[], None],
        *,
        max_inflight: int = 256 * 1024,
        max_frame: int = 16 * 1024 * 1024,
        window: int = 1 << 20,
    ) -> None:
        self._lock = threading.Lock()
        self._wake = wake
        self._decoder = Decoder(max_payload_length=max_frame)
        self._messages: collections.deque[tuple[Message, int]] = collections.deque()
        # Bytes the reader has taken but the server has not been told of yet: a window update is a task on
        # awscrt's thread, so they are returned in batches (well under the window: never a stall).
        self._uncredited = 0
        self._credit_batch = max(1, window // 8)
        self._pending = 0  # received bytes not yet tied to a message
        self._big = max(1, window // 2)  # a partial message this large is credited as it arrives
        self._body: list[bytes] = []  # an error response's body
        self._body_bytes = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.error: BaseException | None = None  # a broken body or a transport failure
        self.complete = False  # the server's half has ended
        self.closed = False  # both halves have
        self.max_inflight = max_inflight
        self._inflight: collections.deque[tuple[concurrent.futures.Future[None], int]] = collections.deque()
        self._inflight_bytes = 0
        self.ended_input = False
        self._discard = False
        self.connection = connection
        self.stream = connection.request(request, self._on_response, self._on_body, manual_write=True)
        self.stream.remote_end_stream_future.add_done_callback(self._on_remote_end)
        self.stream.completion_future.add_done_callback(self._on_complete)
        self.stream.activate()

    # -- awscrt's thread -------------------------------------------------------------------------------

    def _on_response(self, http_stream: Any, status_code: int, headers: Any, **kwargs: Any) -> None:
        with self._lock:
            self.status = status_code
            self.headers = {name.lower(): value for name, value in headers}
        self._wake()

    def _on_body(self, http_stream: Any, chunk: Any, **kwargs: Any) -> None:
        data = bytes(chunk)
        with self._lock:
            if self.status != 200:  # an error answer: keep its first MiB to parse
                if self._body_bytes < 1 << 20:
                    self._body.append(data)
                    self._body_bytes += len(data)
                self.stream.update_window(len(data))
                return
            if self.error is not None or self._discard:
                self.stream.update_window(len(data))
                return
            try:
                messages = self._decoder.feed(data)
            except EventStreamError as exc:
                self.error = exc
                messages = []
            credit, self._pending = self._pending + len(data), 0
            if messages:  # the bytes come back when the chunk's last message is taken
                last = len(messages) - 1
                self._messages.extend((m, credit if i == last else 0) for i, m in enumerate(messages))
                credit = 0
            elif self._decoder.buffered < self._big:
                self._pending, credit = credit, 0
        if credit:
            # Part of a message larger than half the window: credited as it arrives (the decoder's frame
            # limit bounds it), or it could never arrive whole.
            self.stream.update_window(credit)
        if messages or self.error is not None:
            self._wake()

    def _on_remote_end(self, future: concurrent.futures.Future[Any]) -> None:
        # The server's half ended with END_STREAM: nothing more will arrive, whatever our half does. (A
        # reset fails this future with a generic error; the completion callback has the real one.)
        if future.exception() is not None:
            return
        with self._lock:
            if self.status == 200 and self.error is None:
                try:
                    self._decoder.close()
                except EventStreamError as exc:
                    self.error = exc
            self.complete = True
        self._wake()

    def _on_complete(self, future: concurrent.futures.Future[Any]) -> None:
        error = future.exception()
        with self._lock:
            if error is not None and self.error is None and not self.complete:
                self.error = error
            self.complete = True
            self.closed = True
        self._wake()

    # -- the reader ----------------------------------------------------------------------------------

    def take(self) -> Message | None:
        """The next decoded message, or None when there is none yet (or none will come: see ``finished``)."""
        with self._lock:
            if not self._messages:
                return None
            message, credit = self._messages.popleft()
            self._uncredited += credit
            credit = self._uncredited
            if credit < self._credit_batch:
                return message
            self._uncredited = 0
        self.stream.update_window(credit)  # the server may now send that many more bytes
        return message

    @property
    def finished(self) -> bool:
        """No message is buffered and none will arrive."""
        with self._lock:
            return self.complete and not self._messages

    @property
    def buffered(self) -> int:
        with self._lock:
            return len(self._messages)

    def error_body(self) -> bytes:
        with self._lock:
            return b"".join(self._body)

    # -- the writers ---------------------------------------------------------------------------------

    def write(self, data: bytes, end: bool = False) -> concurrent.futures.Future[None]:
        """Queue bytes of the request body; the future completes once they are on the wire."""
        future: concurrent.futures.Future[None] = self.stream.write_data(io.BytesIO(data), end_stream=end)
        with self._lock:
            self._inflight.append((future, len(data)))
            self._inflight_bytes += len(data)
            if end:
                self.ended_input = True
        future.add_done_callback(self._written)
        return future

    def _written(self, future: concurrent.futures.Future[None]) -> None:
        # Writers wait on the futures themselves: nobody to wake here.
        with self._lock:
            while self._inflight and self._inflight[0][0].done():
                self._inflight_bytes -= self._inflight.popleft()[1]

    def backlog(self) -> concurrent.futures.Future[None] | None:
        """A write to wait for before writing more (None: under ``max_inflight``, go ahead)."""
        with self._lock:
            if self._inflight_bytes <= self.max_inflight or not self._inflight:
                return None
            return self._inflight[0][0]

    def abandon(self) -> bool:
        """Stop reading a stream that has not completed: end its input, drop what arrives, and keep the
        window open so the server can finish. Returns whether the stream was still running."""
        with self._lock:
            if self.closed:
                return False
            self._discard = True
            self._messages.clear()
            ended, self.ended_input = self.ended_input, True
        if not ended:
            self.stream.write_data(None, end_stream=True)
        return not self.complete
