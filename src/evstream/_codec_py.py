"""Pure-Python event stream codec: the twin of ``_codec.pyx``, with the same behaviour and errors.

Chosen with ``EVSTREAM_NO_EXTENSIONS=1`` or where the extension is not built. Frames are checked in
botocore's order: prelude CRC, lengths against the limits, whole frame, message CRC, then headers.
"""

from __future__ import annotations

import datetime
import re
import struct
import threading
import uuid
import zlib
from collections.abc import Mapping
from typing import Any

from ._wire import (
    BOOL_FALSE,
    BOOL_TRUE,
    BYTE,
    BYTE_ARRAY,
    DEFAULT_MAX_HEADERS_LENGTH,
    DEFAULT_MAX_PAYLOAD_LENGTH,
    INTEGER,
    LONG,
    MAX_FRAME_LENGTH,
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    MIN_FRAME_LENGTH,
    PRELUDE_LENGTH,
    SHORT,
    STRING,
    TIMESTAMP,
    UUID,
)
from .errors import (
    DuplicateHeader,
    EventStreamError,
    InvalidFrameLength,
    InvalidHeaderName,
    InvalidHeadersLength,
    InvalidHeaderValue,
    InvalidPayloadLength,
    MessageChecksumMismatch,
    PreludeChecksumMismatch,
    TruncatedStream,
    UnknownHeaderType,
)
from .headers import Int8, Int16, Int64, Timestamp, _SizedInt, uuid_from_bytes

__all__ = [
    "CRC32_BACKEND",
    "DEFAULT_MAX_HEADERS_LENGTH",
    "DEFAULT_MAX_PAYLOAD_LENGTH",
    "Decoder",
    "Message",
    "crc32",
    "decode",
    "encode",
]

CRC32_BACKEND = "zlib"

_prelude = struct.Struct(">III")
_u32 = struct.Struct(">I")
_u16 = struct.Struct(">H")
FAST_HEADERS = 16  # the most headers a data event may have for Decoder._http_chunks
_CHUNK_HEAD = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n")  # an HTTP/1.1 chunk-size line, no extension
_TYPE_BYTE = [bytes((t,)) for t in range(UUID + 1)]
# Fixed-width header types: wire type -> (struct, value class).
_FIXED = {
    BYTE: (struct.Struct(">b"), Int8),
    SHORT: (struct.Struct(">h"), Int16),
    INTEGER: (struct.Struct(">i"), int),
    LONG: (struct.Struct(">q"), Int64),
    TIMESTAMP: (struct.Struct(">q"), Timestamp),
}


def crc32(data: Any, value: int = 0, /) -> int:
    """IEEE CRC-32 of any bytes-like object, continuing from ``value`` (same as ``zlib.crc32``)."""
    return zlib.crc32(data, value)


class Message:
    """One decoded frame: ``headers`` (a dict in wire order) and ``payload`` (bytes).

    A decoder also records the frame's headers-block length and message CRC (``_headers_length``,
    ``_crc``; 0 for a message built by hand), for adapters that show the frame layout (botocore's
    ``prelude`` and ``crc``).
    """

    __slots__ = ("_crc", "_headers_length", "headers", "payload")

    def __init__(self, headers: dict[str, Any], payload: bytes) -> None:
        self.headers = headers
        self.payload = payload
        self._headers_length = 0
        self._crc = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self.headers == other.headers and self.payload == other.payload

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Message(headers={self.headers!r}, payload={self.payload!r})"


def _as_bytes_view(data: Any) -> memoryview:
    try:
        view = memoryview(data)
    except TypeError:
        # The words of PyObject_GetBuffer, which the C implementation raises.
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'") from None
    if not view.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _check_limit(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_FRAME_LENGTH:
        raise ValueError(f"{name} must be between 0 and {MAX_FRAME_LENGTH}, got {value}")
    return value


def _check_message_type(message_type: Any) -> type[Message]:
    if not (isinstance(message_type, type) and issubclass(message_type, Message)):
        raise TypeError(f"message_type must be Message or a subclass of it, not {message_type!r}")
    return message_type


class Decoder:
    """Incremental decoder: feed chunks of any size, get every message they complete.

    ``message_type`` (Message or a subclass) is the class of the messages made. With
    ``typed_values=False`` header values come as botocore gives them: every integer width and
    timestamps as plain int, uuids as 16 raw bytes (they then no longer re-encode to the same types).
    """

    __slots__ = (
        "_buffer",
        "_busy",
        "_error",
        "_frame_length",
        "max_headers_length",
        "max_payload_length",
        "message_type",
        "typed_values",
    )

    def __init__(
        self,
        max_payload_length: int = DEFAULT_MAX_PAYLOAD_LENGTH,
        max_headers_length: int = DEFAULT_MAX_HEADERS_LENGTH,
        *,
        message_type: type[Message] = Message,
        typed_values: bool = True,
    ) -> None:
        self.max_payload_length = _check_limit("max_payload_length", max_payload_length)
        self.max_headers_length = _check_limit("max_headers_length", max_headers_length)
        self.message_type = _check_message_type(message_type)
        self.typed_values = bool(typed_values)
        # Bytes of the one frame in progress; grows only as its bytes arrive.
        self._buffer = bytearray()
        # total_length of the frame in progress once its prelude is verified, else 0.
        self._frame_length = 0
        self._error: EventStreamError | None = None
        # Held by feed(): a second thread feeding the same decoder gets a RuntimeError, as in C.
        self._busy = threading.Lock()

    @property
    def error(self) -> EventStreamError | None:
        """The error this decoder failed with (raised again by every call), or None."""
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held (0 on a frame boundary)."""
        return len(self._buffer)

    def feed(self, data: Any) -> list[Message]:
        """Every message completed by ``data``.

        If ``data`` completes messages and then holds a bad frame, the messages are returned and
        the error is raised by the next ``feed()`` or ``close()``; a failed decoder stays failed.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("Decoder.feed() called while another thread is feeding the same decoder")
        messages: list[Message] = []
        try:
            self._feed(_as_bytes_view(data), messages)
        except EventStreamError as exc:
            self._error = exc
            if not messages:
                raise
        finally:
            self._busy.release()
        return messages

    def close(self) -> None:
        """Raise ``TruncatedStream`` if part of a frame is buffered (or the error already raised)."""
        if self._busy.locked():
            raise RuntimeError("Decoder.close() called while another thread is feeding the same decoder")
        if self._error is not None:
            raise self._error.with_traceback(None)
        if self._buffer:
            self._error = TruncatedStream(len(self._buffer), self._frame_length or None)
            raise self._error

    def _http_chunks(
        self,
        data: Any,
        pos: int,
        events: list[Any],
        event_type: str,
        outer: Any,
        inner: Any,
        decode: Any,
        max_chunk: int,
        limit: int,
    ) -> int:
        """Append to ``events`` the data events of the whole HTTP/1.1 chunks in ``data`` from ``pos``;
        return where they end.

        The fast path of a response-body reader, one call per read where tokens arrive one chunk at a
        time. A chunk is taken when it is ``SIZE CRLF data CRLF`` (1-16 hex digits, no extension,
        0 < size <= ``max_chunk``), all inside ``data``, and its data is whole valid frames whose
        ``:event-type`` header equals ``event_type``. Each payload is passed through ``decode`` (when
        not None) and wrapped as ``{outer: {inner: payload}}`` (when ``outer`` is not None). It stops
        before the first chunk that is anything else (an error, another message, the last chunk, a
        frame across chunks), and once ``events`` holds ``limit``; the caller's general path takes it
        from there. The decoder's state is never changed, so that path raises each error exactly as it
        would have.
        """
        if self._error is not None or self._buffer or self._busy.locked():
            return pos
        view = _as_bytes_view(data)
        size = len(view)
        if not 0 <= pos <= size:
            raise ValueError(f"pos {pos} is outside the {size} bytes given")
        while pos < size and len(events) < limit:
            match = _CHUNK_HEAD.match(view[pos : pos + 18].tobytes())
            if match is None:
                break
            chunk = int(match[1], 16)
            start = pos + match.end()
            stop = start + chunk
            if not 0 < chunk <= max_chunk or stop + 2 > size or view[stop : stop + 2].tobytes() != b"\r\n":
                break
            if not self._data_events(view, start, stop, event_type, outer, inner, decode, events):
                break
            pos = stop + 2
        return pos

    def _data_events(
        self,
        view: memoryview,
        pos: int,
        end: int,
        event_type: str,
        outer: Any,
        inner: Any,
        decode: Any,
        events: list[Any],
    ) -> bool:
        """Append the data events of the whole frames in ``view[pos:end]``; False (and nothing
        appended) if they are anything else."""
        mark = len(events)
        while pos < end:
            try:
                taken = end - pos >= PRELUDE_LENGTH
                if taken:
                    total = self._check_prelude(view, pos)
                    taken = total <= end - pos
                if taken:
                    message = self._parse_frame(view, pos, total)
                    taken = message.headers.get(":event-type") == event_type and _judged_fast(message.headers)
                if taken:
                    payload = message.payload if decode is None else decode(message.payload)
            except Exception:  # the general path raises it, in its place among the events
                taken = False
            if not taken:
                del events[mark:]
                return False
            events.append(payload if outer is None else {outer: {inner: payload}})
            pos += total
        return True

    def _feed(self, data: memoryview, messages: list[Message]) -> None:
        size = len(data)
        pos = 0
        buffer = self._buffer
        if buffer:
            if not self._frame_length:
                pos = min(PRELUDE_LENGTH - len(buffer), size)
                buffer += data[:pos]
                if len(buffer) < PRELUDE_LENGTH:
                    return
                self._frame_length = self._check_prelude(buffer, 0)
            taken = min(self._frame_length - len(buffer), size - pos)
            buffer += data[pos : pos + taken]
            pos += taken
            if len(buffer) < self._frame_length:
                return
            messages.append(self._parse_frame(memoryview(buffer), 0, self._frame_length))
            self._buffer = buffer = bytearray()
            self._frame_length = 0
        # Whole frames straight from the chunk, no buffering.
        while size - pos >= PRELUDE_LENGTH:
            total = self._check_prelude(data, pos)
            if size - pos < total:
                self._frame_length = total
                break
            messages.append(self._parse_frame(data, pos, total))
            pos += total
        if pos < size:
            buffer += data[pos:]

    def _check_prelude(self, data: Any, pos: int) -> int:
        total, headers_length, expected = _prelude.unpack_from(data, pos)
        calculated = zlib.crc32(data[pos : pos + 8])
        if calculated != expected:
            raise PreludeChecksumMismatch(expected, calculated)
        # botocore's order: the headers limit, then (what botocore does not check) the lengths
        # agreeing, then the payload limit.
        if headers_length > self.max_headers_length:
            raise InvalidHeadersLength(headers_length, self.max_headers_length)
        if total < MIN_FRAME_LENGTH or headers_length > total - MIN_FRAME_LENGTH:
            raise InvalidFrameLength(total, headers_length)
        payload_length = total - headers_length - MIN_FRAME_LENGTH
        if payload_length > self.max_payload_length:
            raise InvalidPayloadLength(payload_length, self.max_payload_length)
        return total  # type: ignore[no-any-return]

    def _parse_frame(self, data: memoryview, pos: int, total: int) -> Message:
        crc_at = pos + total - 4
        (expected,) = _u32.unpack_from(data, crc_at)
        calculated = zlib.crc32(data[pos:crc_at])
        if calculated != expected:
            raise MessageChecksumMismatch(expected, calculated)
        (headers_length,) = _u32.unpack_from(data, pos + 4)
        headers_end = pos + PRELUDE_LENGTH + headers_length
        headers = _decode_headers(data, pos + PRELUDE_LENGTH, headers_end, self.typed_values)
        message = self.message_type.__new__(self.message_type)
        message.headers = headers
        message.payload = data[headers_end:crc_at].tobytes()
        message._headers_length = headers_length
        message._crc = expected
        return message


def _judged_fast(headers: dict[str, Any]) -> bool:
    """The headers the C codec's fast path judges without decoding: ASCII names and string values,
    at most FAST_HEADERS of them (so both codecs take the same chunks)."""
    return len(headers) <= FAST_HEADERS and all(
        name.isascii() and (type(value) is not str or value.isascii()) for name, value in headers.items()
    )


def _decode_headers(data: memoryview, pos: int, end: int, typed: bool = True) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    while pos < end:
        name_length = data[pos]
        pos += 1
        if name_length == 0:
            raise InvalidHeaderName("empty name")
        if pos + name_length > end:
            raise InvalidHeaderName.truncated(name_length, end - pos)
        try:
            name = str(data[pos : pos + name_length], "utf-8")
        except UnicodeDecodeError:
            raise InvalidHeaderName("not valid UTF-8") from None
        pos += name_length
        if pos >= end:
            raise InvalidHeaderValue.truncated(name, None, 1, 0)
        type_byte = data[pos]
        pos += 1
        value: Any
        if type_byte == BOOL_TRUE:
            value = True
        elif type_byte == BOOL_FALSE:
            value = False
        elif type_byte in _FIXED:
            unpacker, kind = _FIXED[type_byte]
            if pos + unpacker.size > end:
                raise InvalidHeaderValue.truncated(name, type_byte, unpacker.size, end - pos)
            (number,) = unpacker.unpack_from(data, pos)
            # int.__new__ skips the typed constructors' range check: the wire width guarantees it.
            value = int.__new__(kind, number) if typed and kind is not int else number
            pos += unpacker.size
        elif type_byte in (BYTE_ARRAY, STRING):
            if pos + 2 > end:
                raise InvalidHeaderValue.truncated(name, type_byte, 2, end - pos)
            (length,) = _u16.unpack_from(data, pos)
            pos += 2
            if length > MAX_VALUE_LENGTH:
                raise InvalidHeaderValue.too_long(name, type_byte, length)
            if pos + length > end:
                raise InvalidHeaderValue.truncated(name, type_byte, length, end - pos)
            if type_byte == BYTE_ARRAY:
                value = data[pos : pos + length].tobytes()
            else:
                try:
                    value = str(data[pos : pos + length], "utf-8")
                except UnicodeDecodeError:
                    raise InvalidHeaderValue("not valid UTF-8", name) from None
            pos += length
        elif type_byte == UUID:
            if pos + 16 > end:
                raise InvalidHeaderValue.truncated(name, type_byte, 16, end - pos)
            value = data[pos : pos + 16].tobytes()
            if typed:
                value = uuid_from_bytes(value)
            pos += 16
        else:
            raise UnknownHeaderType(name, type_byte)
        if name in headers:
            raise DuplicateHeader(name)
        headers[name] = value
    return headers


def decode(data: Any, **limits: Any) -> list[Message]:
    """Every message of a whole stream; an incomplete tail raises ``TruncatedStream``."""
    decoder = Decoder(**limits)
    messages = decoder.feed(data)
    decoder.close()
    return messages


def _encode_value(name: str, value: Any) -> bytes:
    """The type byte and value bytes of one header."""
    if value is True:
        return _TYPE_BYTE[BOOL_TRUE]
    if value is False:
        return _TYPE_BYTE[BOOL_FALSE]
    if isinstance(value, _SizedInt):
        unpacker = _FIXED[value.wire_type][0]
        return bytes((value.wire_type,)) + unpacker.pack(value)
    if isinstance(value, int):
        if -0x8000_0000 <= value <= 0x7FFF_FFFF:
            return _TYPE_BYTE[INTEGER] + _FIXED[INTEGER][0].pack(value)
        if -0x8000_0000_0000_0000 <= value <= 0x7FFF_FFFF_FFFF_FFFF:
            return _TYPE_BYTE[LONG] + _FIXED[LONG][0].pack(value)
        raise InvalidHeaderValue(f"int {value} does not fit in 64 bits", name)
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidHeaderValue("not valid UTF-8", name) from None
        type_byte = STRING
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = _as_bytes_view(value).tobytes()
        type_byte = BYTE_ARRAY
    elif isinstance(value, uuid.UUID):
        return _TYPE_BYTE[UUID] + value.bytes
    elif isinstance(value, datetime.datetime):
        return _TYPE_BYTE[TIMESTAMP] + _FIXED[TIMESTAMP][0].pack(Timestamp.from_datetime(value))
    else:
        raise InvalidHeaderValue(f"unsupported type {type(value).__name__}", name)
    if len(raw) > MAX_VALUE_LENGTH:
        raise InvalidHeaderValue.too_long(name, type_byte, len(raw))
    return bytes((type_byte,)) + _u16.pack(len(raw)) + raw


def _encode_headers(headers: Mapping[str, Any]) -> bytes:
    parts = []
    for name, value in headers.items():
        if not isinstance(name, str):
            raise InvalidHeaderName(f"expected str, got {type(name).__name__}")
        try:
            raw_name = name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidHeaderName("not valid UTF-8") from None
        if not 0 < len(raw_name) <= MAX_NAME_LENGTH:
            raise InvalidHeaderName(f"{len(raw_name)} bytes, must be 1 to {MAX_NAME_LENGTH}")
        parts.append(bytes((len(raw_name),)))
        parts.append(raw_name)
        parts.append(_encode_value(name, value))
    return b"".join(parts)


def encode(headers: Mapping[str, Any], payload: Any = b"") -> bytes:
    """One frame with these headers (in iteration order) and this payload."""
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping, not {type(headers).__name__}")
    block = _encode_headers(headers)
    body = _as_bytes_view(payload)
    total = MIN_FRAME_LENGTH + len(block) + len(body)
    if total > MAX_FRAME_LENGTH:
        raise InvalidPayloadLength(len(body), MAX_FRAME_LENGTH - MIN_FRAME_LENGTH - len(block))
    head = _prelude.pack(total, len(block), zlib.crc32(_u32.pack(total) + _u32.pack(len(block))))
    head += block
    return b"".join((head, body, _u32.pack(zlib.crc32(body, zlib.crc32(head)))))
