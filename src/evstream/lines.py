"""Text, lines, server-sent events and JSON values reassembled from byte chunks cut anywhere.

Model servers stream records (TGI and OpenAI-compatible servers: SSE events; DJL/LMI: JSON lines;
Bedrock: one JSON object per chunk, no separator), and the transport cuts them into parts without
regard for records, lines or UTF-8 characters. The parsers here are push parsers (``feed(chunk) ->
list``, ``close() -> list``), wrapped as iterators over any iterable or async iterable of bytes-like
chunks, so they serve the evstream client, botocore, httpx and aiohttp alike. What each model server
puts in its records (the generated text, the final usage, in-band errors) is :mod:`evstream.formats`.

Nothing is dropped: the last line is delivered without a trailing newline, and a pending SSE event is
dispatched at the end of the stream. Memory is bounded: a line, a pending SSE event or a JSON value
longer than ``max_line_length`` characters raises :class:`LineTooLong`. Bytes that are not UTF-8,
including a character cut off by the end of the stream, raise ``UnicodeDecodeError``; JSON that does not
parse (cut off, or nested deeper than the interpreter can parse) raises :class:`InvalidJSON`.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Union

if TYPE_CHECKING:
    from .formats import AsyncRecordStream, AsyncTokenStream, RecordStream, TokenStream

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_RETRY",
    "InBandError",
    "InvalidJSON",
    "LineIterator",
    "LineSplitter",
    "LineTooLong",
    "RecordError",
    "SSEEvent",
    "SSEParser",
    "TextDecoder",
    "aiter_json",
    "aiter_lines",
    "aiter_sse",
    "aiter_text",
    "aiter_tokens",
    "iter_json",
    "iter_lines",
    "iter_sse",
    "iter_text",
    "iter_tokens",
    "token_text",
]

MAX_LINE_LENGTH = 1 << 20
# A larger ``retry:`` is kept as this many milliseconds: beyond any real reconnection delay, and parsing
# thousands of digits would cost quadratic time (Python refuses over 4300 digits).
MAX_RETRY = 10**18 - 1

Chunk = Union[bytes, bytearray, memoryview]
T = TypeVar("T")


class RecordError(ValueError):
    """The stream's text cannot be read as records of its format."""


class LineTooLong(RecordError):
    """A line, a pending SSE event or a JSON value grew past ``max_line_length`` characters."""

    def __init__(self, limit: int, what: str = "Line") -> None:
        super().__init__(f"{what} longer than max_line_length={limit} characters")
        self.limit = limit


class InvalidJSON(RecordError, json.JSONDecodeError):
    """A record that is not JSON (also a ``json.JSONDecodeError``, so existing handlers keep working)."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        json.JSONDecodeError.__init__(self, msg, doc[:200], min(pos, 200))
        self.pos = pos


class InBandError(Exception):
    """The model server reported an error inside a stream that had started (HTTP 200): TGI, vLLM,
    SGLang and OpenAI-compatible ``{"error": ...}`` records, SSE ``error`` events, LMI's
    ``finish_reason: "error"``, Anthropic's ``{"type": "error"}``. ``message`` is the model's words;
    ``error_type`` and ``code`` are its classification when it gave one; ``record`` is the whole record.
    """

    def __init__(
        self, message: str, *, error_type: str | None = None, code: Any = None, record: Any = None
    ) -> None:
        super().__init__(f"{error_type}: {message}" if error_type else message)
        self.message = message
        self.error_type = error_type
        self.code = code
        self.record = record

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return _rebuild_in_band_error, (self.message, self.error_type, self.code, self.record)


def _rebuild_in_band_error(message: str, error_type: str | None, code: Any, record: Any) -> InBandError:
    return InBandError(message, error_type=error_type, code=code, record=record)


class _Parser(Protocol[T]):
    def feed(self, data: Chunk) -> list[T]: ...

    def close(self) -> list[T]: ...


class RecordDecoder:
    """Incremental UTF-8 for records, one C call per chunk: a character cut across chunks comes out
    whole with the later one, and a leading byte-order mark is dropped (it is not text: the HTML
    standard drops it before parsing SSE, and JSON would not parse with it)."""

    __slots__ = ("_pending", "_started")

    def __init__(self) -> None:
        self._pending = b""  # the start of a character cut by the end of the last chunk
        self._started = False

    def __call__(self, data: Chunk, final: bool = False) -> str:
        if self._pending:
            data = self._pending + bytes(data)
        text, used = codecs.utf_8_decode(data, "strict", final)
        self._pending = bytes(data[used:]) if used < len(data) else b""
        if not self._started and text:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        return text


class TextDecoder:
    """Incremental UTF-8: a character split across chunks comes out whole with the later chunk."""

    def __init__(self) -> None:
        self._decode = codecs.getincrementaldecoder("utf-8")().decode

    def feed(self, data: Chunk) -> list[str]:
        text = self._decode(data)
        return [text] if text else []

    def close(self) -> list[str]:
        self._decode(b"", True)  # raises for a character cut off by the end of the stream
        return []


class LineSplitter:
    """Lines ended by ``\\n``, ``\\r\\n`` or a lone ``\\r``, returned without their terminator.

    A leading byte-order mark is dropped. A ``\\r`` at the end of a chunk ends its line at once; a
    ``\\n`` starting the next chunk then completes the same terminator.
    """

    def __init__(self, max_line_length: int = MAX_LINE_LENGTH) -> None:
        self._decode = RecordDecoder()
        self._limit = max_line_length
        self._parts: list[str] = []  # the line in progress, joined once when it ends
        self._size = 0
        self._skip_lf = False  # the previous chunk ended with "\r"

    def feed(self, data: Chunk) -> list[str]:
        return self.split(self._decode(data))

    def split(self, text: str) -> list[str]:
        """The lines completed by this decoded text."""
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            if text:
                self._size += len(text)
                if self._size > self._limit:
                    raise LineTooLong(self._limit)
                self._parts.append(text)
            return []
        lines = text.split("\n")
        if self._parts:
            self._parts.append(lines[0])
            lines[0] = "".join(self._parts)
            self._parts.clear()
        tail = lines.pop()
        self._size = len(tail)
        if tail:
            self._parts.append(tail)
        limit = self._limit
        if self._size > limit or max(map(len, lines)) > limit:
            raise LineTooLong(limit)
        return lines

    def close(self) -> list[str]:
        self._decode(b"", True)  # raises for a character cut off by the end of the stream
        return self.finish()

    def finish(self) -> list[str]:
        """The last line, which the end of the stream terminates."""
        if not self._parts:
            return []
        line = "".join(self._parts)
        self._parts.clear()
        self._size = 0
        return [line]


@dataclasses.dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: ``data`` is the ``data:`` fields joined by newlines."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Server-sent events as the HTML standard parses them (fields, comments, multi-line data).

    Two additions: the event pending at the end of the stream is dispatched (a server may end without
    the blank line), and the data of one event is bounded by ``max_line_length`` characters in total.
    ``extra_fields`` names non-standard fields to keep: such a line sets the event type to the field
    name and its value becomes data (llama.cpp's server reports errors as ``error: {...}``).
    """

    # What an event is made into: readers that need only the type and data pass a cheaper function.
    make_event: Callable[[str, str, str | None, int | None], Any] = SSEEvent

    def __init__(self, max_line_length: int = MAX_LINE_LENGTH, extra_fields: tuple[str, ...] = ()) -> None:
        self._lines = LineSplitter(max_line_length)
        self._limit = max_line_length
        self._extra = extra_fields
        self._data: list[str] = []
        self._size = 0
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, data: Chunk) -> list[SSEEvent]:
        return self.events(self._lines.feed(data))

    def close(self) -> list[SSEEvent]:
        return self.events(self._lines.close()) + self.flush()

    def flush(self) -> list[SSEEvent]:
        """The pending event: a stream may end without the blank line that dispatches it."""
        event = self._dispatch()
        return [event] if event is not None else []

    def events(self, lines: list[str]) -> list[SSEEvent]:
        """The events completed by these lines."""
        events = []
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                continue
            field, colon, value = line.partition(":")
            if not field:
                continue  # a comment
            if colon and value[:1] == " ":
                value = value[1:]
            if field == "data":
                self._append(value)
            elif field == "event":
                self._event = value
            elif field == "id":
                if "\0" not in value:
                    self._id = value
            elif field == "retry":
                if value.isascii() and value.isdigit():
                    digits = value.lstrip("0") or "0"
                    self._retry = int(digits) if len(digits) < 19 else MAX_RETRY
            elif field in self._extra:
                self._event = field
                self._append(value)
        return events

    def _append(self, value: str) -> None:
        self._size += len(value) + 1
        if self._size > self._limit:
            raise LineTooLong(self._limit, "Event data")
        self._data.append(value)

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event: SSEEvent = self.make_event(
            "\n".join(self._data), self._event or "message", self._id, self._retry
        )
        self._data = []
        self._size = 0
        self._event = ""
        return event


def __getattr__(name: str) -> Any:
    # The JSON framing lives in evstream.records (this module stays about lines); the names stay here too.
    if name in ("JSONParser", "JSONSequence"):
        from . import records

        return getattr(records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def token_text(value: Any) -> str | None:
    """The generated text in one streamed record of any format :mod:`evstream.formats` knows, told
    apart by its shape; None for records that carry none. (Streams are read with the format detected
    once per stream: see :func:`iter_tokens`.)"""
    from .families import record_text

    return record_text(value)


# -- LineIterator: the class of the AWS blog post, the SageMaker Python SDK and LangChain --------------


class LineIterator:
    """Bytes lines from a SageMaker or Bedrock response stream: the interface of the ``LineIterator``
    that the AWS blog post, the SageMaker Python SDK and LangChain copy, so switching is one import.

    ``stream`` is boto3's ``response["Body"]`` (events ``{"PayloadPart": {"Bytes": ...}}``, or Bedrock's
    ``{"chunk": {"bytes": ...}}``), evstream's stream, or any iterable of bytes. Each line comes out
    without its ``\\n`` (or ``\\r\\n``). Unlike the copied class it ends when the stream ends even if the
    last line has no newline (that line is returned), keeps only the line in progress (at most
    ``max_line_length`` bytes, else :class:`LineTooLong`), and skips events that carry no bytes.
    """

    def __init__(self, stream: Iterable[Any], max_line_length: int = MAX_LINE_LENGTH) -> None:
        self.byte_iterator = iter(stream)
        self._limit = max_line_length
        self._pending = bytearray()
        self._lines: list[bytes] = []
        self._next = 0
        self._ended = False

    def __iter__(self) -> LineIterator:
        return self

    def __next__(self) -> bytes:
        while self._next >= len(self._lines):
            if self._ended:
                raise StopIteration
            self._lines, self._next = self._read(), 0
        line = self._lines[self._next]
        self._next += 1
        return line

    def _read(self) -> list[bytes]:
        try:
            event = next(self.byte_iterator)
        except StopIteration:
            self._ended = True
            last = bytes(self._pending)
            self._pending.clear()
            return [last[:-1] if last[-1:] == b"\r" else last] if last else []
        data = _event_bytes(event)
        if not data:
            return []
        data = bytes(data)
        if b"\n" not in data:
            self._pending += data
            if len(self._pending) > self._limit:
                raise LineTooLong(self._limit)
            return []
        lines = data.split(b"\n")
        if self._pending:
            lines[0] = bytes(self._pending) + lines[0]
            self._pending.clear()
        self._pending += lines.pop()
        if len(self._pending) > self._limit or max(map(len, lines)) > self._limit + 1:
            raise LineTooLong(self._limit)
        return [line[:-1] if line[-1:] == b"\r" else line for line in lines]


def _event_bytes(event: Any) -> Any:
    if isinstance(event, (bytes, bytearray, memoryview)):
        return event
    if isinstance(event, Mapping):
        for outer, inner in (("PayloadPart", "Bytes"), ("chunk", "bytes")):
            part = event.get(outer)
            if isinstance(part, Mapping) and isinstance(part.get(inner), (bytes, bytearray, memoryview)):
                return part[inner]
    return None


# -- iterators --------------------------------------------------------------------------------------


def _run(parser: _Parser[T], chunks: Iterable[Chunk]) -> Iterator[T]:
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()


async def _arun(parser: _Parser[T], chunks: AsyncIterable[Chunk]) -> AsyncIterator[T]:
    async for chunk in chunks:
        for item in parser.feed(chunk):
            yield item
    for item in parser.close():
        yield item


def iter_text(chunks: Iterable[Chunk]) -> Iterator[str]:
    return _run(TextDecoder(), chunks)


def iter_lines(chunks: Iterable[Chunk], *, max_line_length: int = MAX_LINE_LENGTH) -> Iterator[str]:
    return _run(LineSplitter(max_line_length), chunks)


def iter_sse(chunks: Iterable[Chunk], *, max_line_length: int = MAX_LINE_LENGTH) -> Iterator[SSEEvent]:
    return _run(SSEParser(max_line_length), chunks)


def iter_json(
    chunks: Iterable[Chunk], *, format: str | None = None, max_line_length: int = MAX_LINE_LENGTH
) -> RecordStream:
    """The JSON records of a model stream (format detected, or ``format=``); in-band errors raise
    :class:`InBandError`; ``.finish_reason``/``.usage`` are set once iterated."""
    from .formats import RecordStream

    return RecordStream(chunks, format=format, max_line_length=max_line_length)


def iter_tokens(
    chunks: Iterable[Chunk], *, format: str | None = None, max_line_length: int = MAX_LINE_LENGTH
) -> TokenStream:
    """The generated text of a model stream, piece by piece (see :class:`evstream.formats.TokenStream`)."""
    from .formats import TokenStream

    return TokenStream(chunks, format=format, max_line_length=max_line_length)


def aiter_text(chunks: AsyncIterable[Chunk]) -> AsyncIterator[str]:
    return _arun(TextDecoder(), chunks)


def aiter_lines(
    chunks: AsyncIterable[Chunk], *, max_line_length: int = MAX_LINE_LENGTH
) -> AsyncIterator[str]:
    return _arun(LineSplitter(max_line_length), chunks)


def aiter_sse(
    chunks: AsyncIterable[Chunk], *, max_line_length: int = MAX_LINE_LENGTH
) -> AsyncIterator[SSEEvent]:
    return _arun(SSEParser(max_line_length), chunks)


def aiter_json(
    chunks: AsyncIterable[Chunk], *, format: str | None = None, max_line_length: int = MAX_LINE_LENGTH
) -> AsyncRecordStream:
    from .formats import AsyncRecordStream

    return AsyncRecordStream(chunks, format=format, max_line_length=max_line_length)


def aiter_tokens(
    chunks: AsyncIterable[Chunk], *, format: str | None = None, max_line_length: int = MAX_LINE_LENGTH
) -> AsyncTokenStream:
    from .formats import AsyncTokenStream

    return AsyncTokenStream(chunks, format=format, max_line_length=max_line_length)
