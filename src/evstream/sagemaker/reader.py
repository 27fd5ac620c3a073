"""The response-body reader, sans I/O: the bytes of an HTTP/1.1 response body in, in any split; the data
events of an event stream out. Both transports are loops around it.

It owns the HTTP/1.1 body framing (chunked, strictly; Content-Length; until close), the event-stream
decoding and the classification of each message: a data event (its payload, or boto3's shape), a typed
error (raised), or an event to ignore. It holds at most one frame (the decoder's) and one read buffer,
whatever the chunk sizes: chunk data goes to the decoder as it arrives, never gathered whole.
"""

from __future__ import annotations

import re
from typing import Any

from .. import Decoder
from ..errors import TruncatedStream
from ._base import Operation, incomplete_frame, non_payload
from .errors import IncompleteStream, SageMakerRuntimeError

__all__ = [
    "CHUNKED",
    "FIELD_LINE",
    "FIELD_NAME",
    "FIELD_VALUE",
    "LENGTH",
    "UNTIL_CLOSE",
    "BodyReader",
    "malformed",
    "may_retry",
]

# How the body is delimited.
CHUNKED = "chunked"
LENGTH = "length"
UNTIL_CLOSE = "close"

MAX_LINE = 65536  # a chunk-size line (with extensions) or a trailer line: http.client's _MAXLINE
MAX_TRAILERS = 100  # trailer lines: http.client's _MAXHEADERS
MAX_SIZE_DIGITS = 16  # hex digits of a chunk size: up to 2**64 - 1
SLICE = 16384  # the most bytes the decoder gets at once: it makes at most SLICE // 16 messages
BATCH = 256  # data events per feed() before the rest of the input waits for the next call

# chunk-size [ ";" chunk-ext ] OWS, as h11 reads it; the extension is skipped (nothing uses them).
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,%d})(?:;[^\r\n]*|[ \t]*)" % MAX_SIZE_DIGITS)
# A header field (RFC 9110 field-name ":" OWS field-value OWS; no obsolete folding): the trailers here,
# the response head in .http1.
_VCHARS = rb"[\x21-\x7e\x80-\xff]+"
FIELD_NAME = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
FIELD_VALUE = rb"(?:" + _VCHARS + rb"(?:[ \t]+" + _VCHARS + rb")*)?"
FIELD_LINE = FIELD_NAME + rb":[ \t]*" + FIELD_VALUE + rb"[ \t]*"
_TRAILER_LINE = re.compile(FIELD_LINE)

# States of the chunked framing.
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class BodyReader:
    """One response body. :meth:`feed` it the bytes as they arrive; it returns the data events they
    complete, at most :data:`BATCH` at a time (``pending`` then says input is left: call ``feed(b"")``).
    Call :meth:`eof` when the connection closes. Errors are raised, never a quiet end: any framing
    problem is :class:`IncompleteStream`; error messages in the stream raise their typed errors; codec
    errors (checksums, lengths) are the codec's. Events completed before an error are returned first.

    ``done``: the body ended where its framing says. ``delivered``: a data event was handed out (a retry
    must not happen after that). ``reusable``: the connection can carry another request.
    """

    __slots__ = (
        "_at_boundary",
        "_crlf",
        "_data",
        "_decoder",
        "_error",
        "_line",
        "_mode",
        "_operation_name",
        "_pos",
        "_quick",
        "_remaining",
        "_shape",
        "_state",
        "_take_chunks",
        "_trailers",
        "delivered",
        "done",
        "pending",
        "request_id",
        "reusable",
    )

    def __init__(
        self,
        operation: Operation | None,
        *,
        framing: str = CHUNKED,
        length: int = 0,
        boto_shape: bool = True,
        request_id: str | None = None,
    ) -> None:
        if framing not in (CHUNKED, LENGTH, UNTIL_CLOSE):
            raise ValueError(f"unknown body framing {framing!r}")
        self._mode = framing
        self._decoder = Decoder()
        self._shape = (
            (operation.event_type, operation.outer, operation.inner, operation.decode, boto_shape)
            if operation is not None
            else None
        )
        # The codec's fast path for chunked bodies: its arguments, or None where it does not apply.
        self._quick = (
            (
                operation.event_type,
                operation.outer if boto_shape else None,
                operation.inner,
                operation.decode,
                SLICE,
                BATCH,
            )
            if operation is not None and framing == CHUNKED
            else None
        )
        self._take_chunks = self._decoder._http_chunks
        # Nothing pending, no error, on a chunk boundary: where feed() tries the fast path first.
        self._at_boundary = self._quick is not None
        self.request_id = request_id
        self._operation_name = operation.name if operation is not None else ""
        self._state = _SIZE
        self._remaining = length  # LENGTH: body bytes to come; CHUNKED: bytes left in this chunk
        self._line = bytearray()  # a size or trailer line split across reads
        self._crlf = 0  # bytes of the CRLF after a chunk's data seen so far
        self._trailers = 0
        self._data = b""  # input not consumed yet (pending)
        self._pos = 0
        self._error: BaseException | None = None
        self.delivered = False
        self.pending = False
        self.done = framing == LENGTH and length == 0
        self.reusable = framing != UNTIL_CLOSE

    # -- input ------------------------------------------------------------------------------------

    def feed(self, data: bytes | memoryview) -> list[Any]:
        """The data events ``data`` completes (payload bytes, or boto3's event dicts). ``data`` may be a
        view of a buffer the caller reads into again: what the reader keeps of it, it copies."""
        if self._at_boundary:
            # Whole chunks of data events in one call to the codec: how tokens arrive.
            events: list[Any] = []
            pos = self._take_chunks(data, 0, events, *self._quick)  # type: ignore[misc]
            if pos == len(data):
                if events:
                    self.delivered = True
                return events
            return self._feed(bytes(data), pos, events, fast=False)  # it was just tried at pos
        return self._feed(bytes(data), 0, [], fast=True)

    def _feed(self, data: bytes, pos: int, events: list[Any], fast: bool) -> list[Any]:
        """The general path; ``fast``: try the codec's fast path at ``pos`` first."""
        if self._error is not None:
            raise self._error
        if self.pending:
            if data:
                raise RuntimeError("feed(b'') until pending is False before feeding more input")
            data, pos = self._data, self._pos
        end = len(data)
        try:
            if self._quick is not None:
                # The general path takes what the codec's fast path cannot, one chunk at a time.
                while pos < end and len(events) < BATCH:
                    if fast and self._state == _SIZE and not self._line:
                        pos = self._take_chunks(data, pos, events, *self._quick)
                        if pos == end or len(events) >= BATCH:
                            break
                    pos = self._chunked(data, pos, events, one_chunk=True)
                    fast = True
            elif self._mode == CHUNKED:
                pos = self._chunked(data, pos, events)
            elif self.done:
                self.reusable = self.reusable and not data
                pos = end
            else:
                pos = self._plain(data, pos, events)
        except Exception as exc:  # typed, or a codec error (checksum, lengths): the codec's own class
            self._fail(exc, events)
        # Input left over, or an error to raise after these events: the caller comes back.
        self.pending = pos < end or self._error is not None
        self._data, self._pos = (data, pos) if pos < end else (b"", 0)
        self._at_boundary = (
            self._quick is not None and self._state == _SIZE and not self._line and not self.pending
        )
        if events:
            self.delivered = True
        return events

    def eof(self) -> None:
        """The connection closed: raise unless the body was complete."""
        if self._error is not None:
            raise self._error
        if self._mode == UNTIL_CLOSE:
            self._finish_decoder()
            self.done = True
            return
        if self.done:
            return
        if self._mode == LENGTH:
            what = f"{self._remaining} bytes of the Content-Length never came"
        else:
            what = "the connection closed before the end of the chunked body"
        self._error = IncompleteStream(f"The response body was cut short: {what}", request_id=self.request_id)
        self._at_boundary = False
        raise self._error

    def _fail(self, exc: BaseException, events: list[Any]) -> None:
        self._error = exc
        self._at_boundary = False
        self.reusable = False
        if not events:
            raise exc

    # -- framing ----------------------------------------------------------------------------------

    def _plain(self, data: bytes, pos: int, events: list[Any]) -> int:
        """A body delimited by Content-Length or by the connection closing."""
        end = len(data)
        if self._mode == LENGTH and end - pos >= self._remaining:
            # Bytes past the announced length are not ours: the connection cannot be reused.
            if end - pos > self._remaining:
                self.reusable = False
            end = pos + self._remaining
        while pos < end and len(events) < BATCH:
            step = min(end - pos, SLICE)
            self._decode(data[pos : pos + step] if step != len(data) else data, events)
            pos += step
            if self._mode == LENGTH:
                self._remaining -= step
        if self._mode == LENGTH and not self._remaining:
            self._finish_decoder()
            self.done = True
            return len(data)
        return pos

    def _chunked(self, data: bytes, pos: int, events: list[Any], one_chunk: bool = False) -> int:
        """The general path; ``one_chunk``: return at the next chunk boundary (for the fast path)."""
        end = len(data)
        state = self._state
        while pos < end:
            if state == _DATA:
                step = min(self._remaining, end - pos, SLICE)
                self._decode(data[pos : pos + step], events)
                pos += step
                self._remaining -= step
                if not self._remaining:
                    state = self._state = _DATA_END
                if len(events) >= BATCH:
                    break
            elif state == _SIZE:
                line, pos = self._take_line(data, pos, "chunk size")
                if line is None:
                    break
                match = _SIZE_LINE.fullmatch(line)
                if match is None:
                    raise self._framing(f"invalid chunk size line {bytes(line[:40])!r}")
                self._remaining = int(match[1], 16)
                state = self._state = _DATA if self._remaining else _TRAILER
            elif state == _DATA_END:
                # The CRLF after the data; it may arrive split.
                while pos < end and self._crlf < 2:
                    if data[pos] != b"\r\n"[self._crlf]:
                        raise self._framing("an HTTP chunk is longer than its size line says")
                    pos += 1
                    self._crlf += 1
                if self._crlf == 2:
                    self._crlf = 0
                    state = self._state = _SIZE
                    if one_chunk:
                        break
            elif state == _TRAILER:
                line, pos = self._take_line(data, pos, "trailer")
                if line is None:
                    break
                if not line:
                    state = self._state = _DONE
                    self._finish_decoder()
                    self.done = True
                    continue
                self._trailers += 1
                if self._trailers > MAX_TRAILERS or _TRAILER_LINE.fullmatch(line) is None:
                    raise self._framing(f"invalid or too many trailer lines ({bytes(line[:40])!r})")
            else:  # _DONE: anything after the body is not ours
                self.reusable = False
                return end
        return pos

    def _take_line(self, data: bytes, pos: int, what: str) -> tuple[bytes | None, int]:
        """A CRLF-terminated line (without the CRLF), or None with everything buffered."""
        end = data.find(b"\n", pos, pos + MAX_LINE + 2 - len(self._line))
        if end < 0:
            if len(self._line) + len(data) - pos > MAX_LINE + 1:
                raise self._framing(f"a {what} line is longer than {MAX_LINE} bytes")
            self._line += data[pos:]
            return None, len(data)
        if self._line:
            self._line += data[pos : end + 1]
            line = bytes(self._line)
            self._line = bytearray()
        else:
            line = data[pos : end + 1]
        if line[-2:-1] != b"\r":
            raise self._framing(f"a {what} line does not end with CRLF")
        return line[:-2], end + 1

    def _framing(self, detail: str) -> IncompleteStream:
        return malformed(f"Malformed chunked response body: {detail}", self.request_id)

    # -- messages ---------------------------------------------------------------------------------

    def _decode(self, data: bytes, events: list[Any]) -> None:
        decoder = self._decoder
        messages = decoder.feed(data)
        if messages:
            event_type, outer, inner, decode, boto_shape = self._shape  # type: ignore[misc]
            for message in messages:
                headers = message.headers
                if headers.get(":event-type") == event_type:
                    payload = message.payload if decode is None else decode(message.payload)
                    events.append({outer: {inner: payload}} if boto_shape else payload)
                else:
                    error = non_payload(headers, message.payload, self.request_id, self._operation_name)
                    if error is not None:
                        raise error
            if decoder.error is not None:  # messages came before a bad frame: raise after them
                raise decoder.error.with_traceback(None)

    def _finish_decoder(self) -> None:
        try:
            self._decoder.close()
        except TruncatedStream as exc:
            raise incomplete_frame(exc, self.request_id) from None


def malformed(message: str, request_id: str | None = None) -> IncompleteStream:
    """The error for an answer that breaks HTTP/1.1 (its head or its body's framing). Unlike a body cut
    short (a dropped connection, which a retry may mend before the first event), it is never sent again:
    the server answered, and would answer the same way."""
    error = IncompleteStream(message, request_id=request_id)
    error.malformed = True
    return error


def may_retry(error: BaseException, delivered: bool) -> bool:
    """Whether a failure while reading a body allows another attempt: only before the first event is
    delivered, only for errors that say a retry can help (the retry policy refuses a malformed answer)."""
    if delivered or not isinstance(error, SageMakerRuntimeError):
        return False
    return bool(error.retryable)
