"""One HTTP/1.1 connection of the asyncio client, as an ``asyncio.Protocol``: the response head is parsed
with h11, an event-stream body is fed to a :class:`BodyReader` straight from ``data_received``, and the
consumer is woken once per batch of ready events. Works on any event loop (uvloop included)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import h11

from .errors import ConnectionFailed, IncompleteStream
from .reader import CHUNKED, LENGTH, UNTIL_CLOSE, BodyReader

__all__ = ["Connection", "Head"]

MAX_HEAD = 65536  # bytes of a response head (status line and headers)
MAX_ERROR_BODY = 1 << 20  # bytes of an error answer kept for its message
HIGH_WATER = 1024  # events waiting for the consumer before the socket stops being read

# Where a connection is.
_IDLE, _HEAD, _HEAD_READY, _BODY, _ERROR_BODY, _DONE = range(6)


class Head:
    """A parsed response head."""

    __slots__ = ("headers", "lowered", "status")

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self.lowered = {k.lower(): v for k, v in headers.items()}


class Connection(asyncio.Protocol):
    """The state the transport's callbacks and the consuming task share. The consumer waits with
    :meth:`wait`; callbacks set ``ready``/``error``/``finished`` and wake it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self.lost = False  # closed, or unusable for another request
        self.ready: list[Any] = []  # events for the consumer
        self.error: BaseException | None = None
        self.finished = False  # the body ended as framed (or the error answer was read)
        self.head: Head | None = None
        self.deadline = 0.0  # the consumer's wait fails at this loop time...
        self.on_timeout: Callable[[], BaseException] | None = None  # ...with this error
        self._state = _IDLE
        self._buffer = bytearray()  # head bytes; after the head, bytes the body has not taken yet
        self._reader: BodyReader | None = None
        self._h11: h11.Connection | None = None
        self._error_body = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._keep_alive = False
        self.forwarding = False  # requests go to a proxy with absolute URLs (no tunnel)

    # -- transport callbacks ------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state == _BODY:
            reader = self._reader
            assert reader is not None
            try:
                events = reader.feed(data)
            except BaseException as exc:  # the consumer raises it
                self._fail(exc)
                return
            if events:
                if self.ready:
                    self.ready += events
                else:
                    self.ready = events
            if reader.pending or len(self.ready) >= HIGH_WATER:
                self._pause()
            if reader.done:
                self.finished = True
            waiter = self._waiter
            if waiter is not None and (events or reader.done) and not waiter.done():
                waiter.set_result(None)
        elif state == _HEAD:
            self._buffer += data
            self._parse_head()
        elif state == _HEAD_READY:
            self._buffer += data  # the consumer has not chosen how to read the body yet
            if len(self._buffer) > MAX_HEAD:
                self._pause()
        elif state == _ERROR_BODY:
            self._error_data(data)
        else:  # bytes nobody asked for: the connection cannot be trusted again
            self.lost = True
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool | None:
        state = self._state
        if state == _BODY and self._reader is not None and not self._reader.pending:
            try:
                self._reader.eof()
                self.finished = True
            except BaseException as exc:
                self._fail(exc)
        elif state == _ERROR_BODY:
            self._error_data(b"", eof=True)
        self.lost = True
        self._wake()
        return None  # let the transport close

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self._cancel_timer()
        state = self._state
        if self.error is None and not self.finished and state not in (_IDLE, _DONE):
            if state == _HEAD:
                self.error = ConnectionFailed(
                    f"The connection closed before the response head{f': {exc}' if exc else ''}"
                )
            elif state == _ERROR_BODY:
                self.finished = True
            elif not (state == _BODY and self._reader is not None and self._reader.pending):
                self.error = IncompleteStream(
                    f"The connection failed inside the response body{f': {exc}' if exc else ''}"
                )
        self._wake()

    # -- request and head ---------------------------------------------------------------------------

    def send(self, data: bytes, method: str, target: str, host: str) -> None:
        """Write a request; the head of its answer comes to :attr:`head`."""
        self._state = _HEAD
        self.head = None
        self.finished = False
        self.error = None
        self.ready = []
        self._buffer = bytearray()
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        # h11 checks the answer against this request (a CONNECT's 200 has no body, ...).
        self._h11.send(h11.Request(method=method, target=target, headers=[("Host", host)]))
        self._h11.send(h11.EndOfMessage())
        self.transport.write(data)

    def _parse_head(self) -> None:
        buffer = self._buffer
        while self._state == _HEAD:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._fail(IncompleteStream(f"The response head is longer than {MAX_HEAD} bytes"))
                return
            if end + 4 > MAX_HEAD:
                self._fail(IncompleteStream(f"The response head is longer than {MAX_HEAD} bytes"))
                return
            conn = self._h11
            assert conn is not None
            try:
                conn.receive_data(bytes(buffer[: end + 4]))
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(IncompleteStream(f"Malformed HTTP response head: {exc}"))
                return
            del buffer[: end + 4]
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue and the like: the answer follows
            if not isinstance(event, h11.Response):
                self._fail(IncompleteStream(f"Malformed HTTP response head: {event!r}"))
                return
            headers: dict[str, str] = {}
            for name, value in event.headers.raw_items():
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            self.head = Head(event.status_code, headers)
            connection = self.head.lowered.get("connection", "").lower()
            self._keep_alive = event.http_version == b"1.1" and "close" not in connection
            self._state = _HEAD_READY
            if len(buffer) > MAX_HEAD:
                self._pause()
            self._wake()

    def framing(self) -> tuple[str, int]:
        """How the body of :attr:`head` is delimited, for :class:`BodyReader`."""
        assert self.head is not None
        lowered = self.head.lowered
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            return CHUNKED, 0
        if "content-length" in lowered:
            return LENGTH, int(lowered["content-length"])  # h11 checked it is one decimal number
        return UNTIL_CLOSE, 0

    # -- body ---------------------------------------------------------------------------------------

    def read_body(self, reader: BodyReader) -> None:
        """Feed the event-stream body to ``reader`` from now on (starting with bytes already here)."""
        self._reader = reader
        self._state = _BODY
        early, self._buffer = bytes(self._buffer), bytearray()
        if early:
            self.data_received(early)
        if self.lost and not self.finished and self.error is None and not reader.pending:
            self.eof_received()
        if not reader.pending:
            self._resume()

    def take(self) -> list[Any]:
        """The ready events (the consumer's batch); reading resumes if it had stopped."""
        ready = self.ready
        self.ready = []
        if self._paused:
            reader = self._reader
            if reader is not None and reader.pending:
                try:
                    self.ready = reader.feed(b"")
                    if reader.done:
                        self.finished = True
                except BaseException as exc:
                    self._fail(exc)
                if not reader.pending and self.lost and not self.finished and self.error is None:
                    self.eof_received()
            if reader is None or not reader.pending:
                self._resume()
        return ready

    async def read_error_body(self) -> bytes:
        """The first MiB of a body that is not an event stream (an error answer)."""
        self._state = _ERROR_BODY
        early, self._buffer = bytes(self._buffer), bytearray()
        if early:
            self._error_data(early)
        if self.lost and not self.finished:
            self._error_data(b"", eof=True)
        self._resume()
        while not self.finished and self.error is None and not self.lost:
            await self.wait()
        return bytes(self._error_body[:MAX_ERROR_BODY])

    def _error_data(self, data: bytes, eof: bool = False) -> None:
        conn = self._h11
        assert conn is not None
        if not data and not eof:
            return
        try:
            conn.receive_data(data)  # b"": the connection closed
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Data):
                    if len(self._error_body) < MAX_ERROR_BODY:
                        self._error_body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self.finished = True
                    self.lost = self.lost or conn.their_state is not h11.DONE
                    break
                else:  # NEED_DATA, or the connection closed
                    break
        except h11.RemoteProtocolError:
            self.finished = True
            self.lost = True
        self._wake()

    # -- the consumer -------------------------------------------------------------------------------

    async def wait(self) -> None:
        """Until the callbacks have news, or :attr:`deadline` passes (then :attr:`error` is set)."""
        timer = self._timer
        if timer is not None and timer.when() > self.deadline:  # a shorter timeout from now on
            timer.cancel()
            timer = self._timer = None
        if timer is None and self.on_timeout is not None:
            self._timer = self.loop.call_at(self.deadline, self._on_timer)
        waiter = self._waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiter is None or self.error is not None or self.finished:
            return  # nobody waits: the next wait() sets the timer again
        if self.loop.time() < self.deadline - 0.001:  # the deadline moved: an event was delivered
            self._timer = self.loop.call_at(self.deadline, self._on_timer)
            return
        assert self.on_timeout is not None
        self.error = self.on_timeout()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.lost = True
        self._wake()

    def _pause(self) -> None:
        if not self._paused and self.transport is not None and not self.lost:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self.transport is not None and not self.lost:
            self._paused = False
            self.transport.resume_reading()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the pool's view ----------------------------------------------------------------------------

    def reusable(self) -> bool:
        """Whether this connection can carry another request now that its answer was read."""
        reader = self._reader
        if self.lost or self.error is not None or not self.finished or self._buffer or not self._keep_alive:
            return False
        return self._state == _ERROR_BODY or (reader is not None and reader.reusable and not reader.pending)

    def park(self) -> None:
        """Idle in the pool: any byte or close from now on makes it unusable."""
        self._cancel_timer()
        self._state = _IDLE
        self._reader = None
        self._h11 = None
        self._error_body = bytearray()
        self.on_timeout = None
        self._resume()

    def close(self) -> None:
        self._cancel_timer()
        self._state = _DONE
        self.lost = True
        if self.transport is not None:
            self.transport.close()
