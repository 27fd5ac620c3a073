"""One HTTP/1.1 connection of the asyncio client, as an ``asyncio.Protocol``: the response head is parsed
by :func:`.http1.parse_head`, the body is fed to a :class:`BodyReader` straight from ``data_received``,
and the consuming task is woken once per batch of ready events. Works on any event loop (uvloop too)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .errors import ConnectionClosed, IncompleteStream
from .http1 import MAX_HEAD, Head, RawBody, parse_head
from .reader import BodyReader

__all__ = ["Connection"]

MAX_ERROR_BODY = 1 << 20  # bytes of an error answer kept for its message
HIGH_WATER = 1024  # events waiting for the consumer before the socket stops being read

# Where a connection is.
_IDLE, _HEAD, _HEAD_READY, _BODY, _DONE = range(5)


class Connection(asyncio.Protocol):
    """The state the transport's callbacks and the consuming task share. The consumer waits with
    :meth:`wait`; callbacks set ``head``/``ready``/``error``/``finished`` and wake it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self.lost = False  # closed, or unusable for another request
        self.forwarding = False  # requests go to a proxy with absolute URLs (no tunnel)
        self.ready: list[Any] = []  # events for the consumer
        self.error: BaseException | None = None
        self.finished = False  # the body ended where its framing says
        self.head: Head | None = None
        self.deadline = 0.0  # the consumer's wait fails at this loop time...
        self.on_timeout: Callable[[], BaseException] | None = None  # ...with this error
        self._state = _IDLE
        self._method = "POST"
        self._buffer = bytearray()  # head bytes; after the head, bytes no reader has taken yet
        self._reader: BodyReader | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.paused = False  # the transport stopped reading (the consumer is behind)

    # -- transport callbacks ------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._state == _BODY:
            reader: Any = self._reader
            try:
                events = reader.feed(data)
            except BaseException as exc:  # the consumer raises it
                self._fail(exc)
                return
            if events:
                if self.ready:
                    self.ready += events
                    if len(self.ready) >= HIGH_WATER:
                        self._pause()
                else:
                    self.ready = events
                waiter = self._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)  # one wake-up for the whole batch
            if reader.pending:
                self._pause()
            if reader.done:
                self.finished = True
                self._wake()
        elif self._state == _HEAD:
            self._buffer += data
            try:
                head = parse_head(self._buffer, request_method=self._method)
            except IncompleteStream as exc:
                self._fail(exc)
                return
            if head is not None:
                self.head = head
                self._state = _HEAD_READY
                self._hold()
                self._wake()
        elif self._state == _HEAD_READY:
            self._buffer += data  # the consumer has not chosen how to read the body yet
            self._hold()
        else:  # bytes nobody asked for: the connection cannot be trusted again
            self.lost = True
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool | None:
        if self._state == _BODY:
            self._end_of_body()
        self.lost = True
        self._wake()
        return None  # let the transport close

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self._cancel_timer()
        reason = f": {exc}" if exc else ""
        if self.error is None and not self.finished:
            if self._state == _HEAD:
                self.error = ConnectionClosed(f"The connection closed before the response head{reason}")
            elif self._state == _BODY and not (self._reader is not None and self._reader.pending):
                self.error = IncompleteStream(f"The connection failed inside the response body{reason}")
        self._wake()

    # -- request, head, body ------------------------------------------------------------------------

    def send(self, data: bytes, method: str = "POST") -> None:
        """Write a request; the head of its answer comes to :attr:`head`."""
        self._state = _HEAD
        self._method = method
        self.head = None
        self.finished = False
        self.error = None
        self.ready = []
        self._buffer = bytearray()
        self.transport.write(data)

    def read_body(self, reader: BodyReader) -> None:
        """Feed the body to ``reader`` from now on (starting with the bytes already here)."""
        self._reader = reader
        self._state = _BODY
        early, self._buffer = bytes(self._buffer), bytearray()
        if early:
            self.data_received(early)
        if self.lost and not reader.pending:
            self._end_of_body()
        if not reader.pending:
            self._resume()

    def _refill(self) -> None:
        """After the consumer took :attr:`ready` from a paused connection: the input the reader still
        holds comes next, then reading resumes."""
        reader = self._reader
        if reader is not None and reader.pending:
            try:
                self.ready = reader.feed(b"")
                if reader.done:
                    self.finished = True
            except BaseException as exc:
                self._fail(exc)
            if not reader.pending and self.lost:
                self._end_of_body()
        if reader is None or not reader.pending:
            self._resume()

    def take(self) -> list[Any]:
        """The ready events, handed to the consumer; a paused connection then refills :attr:`ready`."""
        batch, self.ready = self.ready, []
        if self.paused:
            self._refill()
        return batch

    async def read_error_body(self) -> bytes:
        """The first MiB of a body that is not an event stream (an error answer)."""
        assert self.head is not None
        raw = RawBody(self.head, MAX_ERROR_BODY)
        self.read_body(raw)
        while not self.finished and self.error is None:  # a RawBody makes no events: nothing to take
            await self.wait()
        return bytes(raw.data)

    def _end_of_body(self) -> None:
        if self.finished or self.error is not None or self._reader is None:
            return
        try:
            self._reader.eof()
            self.finished = True
        except BaseException as exc:
            self._fail(exc)

    def _hold(self) -> None:
        if len(self._buffer) > MAX_HEAD:  # nobody reads the body yet: stop taking it in
            self._pause()

    # -- the consumer -------------------------------------------------------------------------------

    def wait(self) -> asyncio.Future[None]:
        """A future done when the callbacks have news, or when :attr:`deadline` passes (then
        :attr:`error` is set). A plain future, not a coroutine: one object less per wake-up."""
        timer = self._timer
        if timer is not None and timer.when() > self.deadline:  # a shorter timeout from now on
            timer.cancel()
            timer = self._timer = None
        if timer is None and self.on_timeout is not None:
            self._timer = self.loop.call_at(self.deadline, self._on_timer)
        waiter = self._waiter = self.loop.create_future()
        return waiter

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self.error is not None or self.finished:
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
        if not self.paused and self.transport is not None and not self.lost:
            self.paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self.paused and self.transport is not None and not self.lost:
            self.paused = False
            self.transport.resume_reading()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the pool's view ----------------------------------------------------------------------------

    def reusable(self) -> bool:
        """Whether this connection can carry another request now that its answer was read."""
        reader = self._reader
        if self.lost or self.error is not None or not self.finished or self._buffer or reader is None:
            return False
        return self.head is not None and self.head.keep_alive and reader.reusable and not reader.pending

    def park(self) -> None:
        """Idle in the pool: any byte or close from now on makes it unusable."""
        self._cancel_timer()
        self._state = _IDLE
        self._reader = None
        self.on_timeout = None
        self._resume()

    def close(self) -> None:
        self._cancel_timer()
        self._state = _DONE
        self.lost = True
        if self.transport is not None:
            self.transport.close()
