"""Text, lines, server-sent events and JSON objects reassembled from byte chunks cut anywhere.

Model servers stream records (TGI and OpenAI-compatible servers: SSE events; DJL/LMI: JSON lines), and
SageMaker cuts them into PayloadParts without regard for records, lines or UTF-8 characters. The parsers
here are push parsers (``feed(chunk) -> list``, ``close() -> list``), wrapped as iterators over any
iterable or async iterable of bytes-like chunks, so they serve the evstream client, botocore, httpx and
aiohttp alike.

Nothing is dropped: the last line is delivered without a trailing newline, and a pending SSE event is
dispatched at the end of the stream. Memory is bounded: a line longer than ``max_line_length``
characters raises :class:`LineTooLong`. Bytes that are not UTF-8, including a character cut off by the
end of the stream, raise ``UnicodeDecodeError``.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Protocol, TypeVar, Union

__all__ = [
    "MAX_LINE_LENGTH",
    "JSONParser",
    "LineSplitter",
    "LineTooLong",
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

Chunk = Union[bytes, bytearray, memoryview]
T = TypeVar("T")


class LineTooLong(ValueError):
    """A line grew past ``max_line_length`` characters without a newline."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Line longer than max_line_length={limit} characters")
        self.limit = limit


class _Parser(Protocol[T]):
    def feed(self, data: Chunk) -> list[T]: ...

    def close(self) -> list[T]: ...


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
    """Lines ended by ``\\n`` or ``\\r\\n``, returned without their terminator."""

    def __init__(self, max_line_length: int = MAX_LINE_LENGTH) -> None:
        self._decode = codecs.getincrementaldecoder("utf-8")().decode
        self._limit = max_line_length
        self._parts: list[str] = []  # the line in progress, joined once when it ends
        self._size = 0

    def feed(self, data: Chunk) -> list[str]:
        text = self._decode(data)
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
        if "\r" in text or lines[0][-1:] == "\r":  # the first line may have begun in earlier chunks
            lines = [line[:-1] if line[-1:] == "\r" else line for line in lines]
        limit = self._limit
        if self._size > limit or max(map(len, lines)) > limit:
            raise LineTooLong(limit)
        return lines

    def close(self) -> list[str]:
        self._decode(b"", True)  # raises for a character cut off by the end of the stream
        if not self._parts:
            return []
        line = "".join(self._parts)
        self._parts.clear()
        self._size = 0
        return [line[:-1] if line[-1:] == "\r" else line]


@dataclasses.dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: ``data`` is the ``data:`` fields joined by newlines."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Server-sent events as the HTML standard parses them (fields, comments, multi-line data)."""

    def __init__(self, max_line_length: int = MAX_LINE_LENGTH) -> None:
        self._lines = LineSplitter(max_line_length)
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, data: Chunk) -> list[SSEEvent]:
        return self._events(self._lines.feed(data))

    def close(self) -> list[SSEEvent]:
        return self._events(self._lines.close()) + self.flush()

    def flush(self) -> list[SSEEvent]:
        """The pending event: a stream may end without the blank line that dispatches it."""
        event = self._dispatch()
        return [event] if event is not None else []

    def _events(self, lines: list[str]) -> list[SSEEvent]:
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
                self._data.append(value)
            elif field == "event":
                self._event = value
            elif field == "id":
                if "\0" not in value:
                    self._id = value
            elif field == "retry" and value.isdigit():
                self._retry = int(value)
        return events

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent("\n".join(self._data), self._event or "message", self._id, self._retry)
        self._data = []
        self._event = ""
        return event


class JSONParser:
    """JSON values from JSON lines or from SSE ``data:`` fields, told apart by the first line.

    An SSE ``data: [DONE]`` ends the values; what follows it is read and ignored.
    """

    def __init__(self, max_line_length: int = MAX_LINE_LENGTH) -> None:
        self._lines = LineSplitter(max_line_length)
        self._sse: SSEParser | None = None
        self._mode: str | None = None  # "sse" or "lines", from the first non-blank line
        self.done = False

    def feed(self, data: Chunk) -> list[Any]:
        return self._values(self._lines.feed(data))

    def close(self) -> list[Any]:
        values = self._values(self._lines.close())
        if self._sse is not None and not self.done:
            values += self._from_events(self._sse.flush())
        return values

    def _values(self, lines: list[str]) -> list[Any]:
        if self.done or not lines:
            return []
        if self._mode is None:
            first = next((line for line in lines if line.strip()), None)
            if first is None:
                return []
            self._mode = "sse" if first.startswith(("data:", "event:", "id:", "retry:", ":")) else "lines"
            if self._mode == "sse":
                self._sse = SSEParser()
        if self._sse is not None:
            return self._from_events(self._sse._events(lines))
        return [json.loads(line) for line in lines if line.strip()]

    def _from_events(self, events: list[SSEEvent]) -> list[Any]:
        values = []
        for event in events:
            if self.done:
                break
            data = event.data
            if data.strip() == "[DONE]":
                self.done = True
            elif data.strip():
                values.append(json.loads(data))
        return values


def token_text(value: Any) -> str | None:
    """The generated text in one streamed JSON object of TGI, DJL/LMI or an OpenAI-compatible server;
    None for objects that carry none (TGI special tokens, role-only or usage chunks)."""
    if not isinstance(value, dict):
        return None
    token = value.get("token")
    if isinstance(token, dict):  # TGI and LMI
        return None if token.get("special") else token.get("text")
    choices = value.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):  # OpenAI
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            return content if isinstance(content, str) else None
        text = choice.get("text")
        return text if isinstance(text, str) else None
    outputs = value.get("outputs")  # older LMI
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        return outputs[0]
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


def iter_json(chunks: Iterable[Chunk], *, max_line_length: int = MAX_LINE_LENGTH) -> Iterator[Any]:
    return _run(JSONParser(max_line_length), chunks)


def iter_tokens(chunks: Iterable[Chunk], *, max_line_length: int = MAX_LINE_LENGTH) -> Iterator[str]:
    for value in iter_json(chunks, max_line_length=max_line_length):
        text = token_text(value)
        if text:
            yield text


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


def aiter_json(chunks: AsyncIterable[Chunk], *, max_line_length: int = MAX_LINE_LENGTH) -> AsyncIterator[Any]:
    return _arun(JSONParser(max_line_length), chunks)


async def aiter_tokens(
    chunks: AsyncIterable[Chunk], *, max_line_length: int = MAX_LINE_LENGTH
) -> AsyncIterator[str]:
    async for value in aiter_json(chunks, max_line_length=max_line_length):
        text = token_text(value)
        if text:
            yield text
