"""Reading a model stream: chunks in, its records or its generated text out, in-band errors raised, and
the finish reason and usage kept for after the loop. The formats it knows are :mod:`evstream.families`
(their names, sources and record shapes); this module re-exports those names.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .families import (
    ALIASES,
    FORMATS,
    Format,
    StreamState,
    Usage,
    detect_format,
    record_error,
    record_text,
    resolve_format,
)
from .lines import MAX_LINE_LENGTH, Chunk, InBandError
from .records import JSONParser

__all__ = [
    "ALIASES",
    "FORMATS",
    "AsyncRecordStream",
    "AsyncTokenStream",
    "Format",
    "InBandError",
    "RecordParser",
    "RecordStream",
    "StreamState",
    "TokenParser",
    "TokenStream",
    "Usage",
    "detect_format",
    "record_error",
    "record_text",
    "resolve_format",
]

T = TypeVar("T")


# -- push parsers ---------------------------------------------------------------------------------------


class RecordParser:
    """Chunks in, the stream's JSON records out; in-band error records raise :class:`InBandError`,
    and ``state`` collects the finish reason and usage."""

    plain_text = False  # whether a stream that is neither SSE nor JSON is plain text (else InvalidJSON)

    def __init__(self, format: str | None = None, max_line_length: int = MAX_LINE_LENGTH) -> None:
        self._format = resolve_format(format)
        text = self._format is not None and self._format.name == "text"
        self._json = JSONParser(
            max_line_length,
            framing="text" if text else None,
            text_fallback=self.plain_text and format is None,
        )
        self.state = StreamState()
        self.error: InBandError | None = None  # raised once the records before it are delivered

    @property
    def format(self) -> str | None:
        """The format named or detected (None until a record told it)."""
        if self._format is None and self._json.framing == "text":
            self._format = FORMATS["text"]
        return self._format.name if self._format is not None else None

    def feed(self, data: Chunk) -> list[Any]:
        values = self._json.feed(data)
        return self._records(values) if values else values

    def close(self) -> list[Any]:
        return self._records(self._json.close())

    def raise_error(self) -> None:
        """Raise the in-band error the stream reported, if any (after the records before it)."""
        if self.error is not None:
            raise self.error

    def _records(self, values: list[Any]) -> list[Any]:
        if self.error is not None:
            raise self.error
        if self._json.framing == "text":
            return values
        fmt, state = self._format, self.state
        for index, value in enumerate(values):
            if type(value) is not dict:
                continue
            if "error" in value or value.get("object") == "error":
                self.error = record_error(value)
                if self.error is not None:
                    return values[:index]
            if fmt is None:
                fmt = self._format = detect_format(value)
                if fmt is None:
                    continue
                if fmt.name == "tgi" and self._json.framing == "json":
                    fmt = self._format = FORMATS["lmi"]
            try:
                fmt.final(value, state)
            except InBandError as exc:
                self.error = exc
                return values[:index]
            metrics = value.get("amazon-bedrock-invocationMetrics")
            if isinstance(metrics, dict):
                state.count(metrics.get("inputTokenCount"), metrics.get("outputTokenCount"))
        return values


class TokenParser(RecordParser):
    """Chunks in, the generated text out, piece by piece (empty pieces are left out)."""

    plain_text = True

    def feed(self, data: Chunk) -> list[str]:
        values = self._json.feed(data)
        return self._tokens(self._records(values)) if values else values

    def close(self) -> list[str]:
        return self._tokens(self._records(self._json.close()))

    def _tokens(self, records: list[Any]) -> list[str]:
        if self._json.framing == "text":
            return records
        fmt = self._format
        if fmt is None:
            return []
        tokens = []
        text = fmt.text
        for record in records:
            if type(record) is dict:
                piece = text(record)
                if piece:
                    tokens.append(piece)
        return tokens


# -- iterators ------------------------------------------------------------------------------------------


class _ModelStream:
    """What the sync and asyncio streams share: the parser, the records it gave that are not yet
    delivered, and ``format``, ``finish_reason`` and ``usage`` of the stream being read."""

    _parser_class: type[RecordParser]  # records or text
    _chunks: Any  # the chunk source (an iterator or an async iterator); None once it has run out

    def __init__(self, format: str | None, max_line_length: int) -> None:
        self._parser = self._parser_class(format, max_line_length)
        self._ready: list[Any] = []
        self._next = 0
        self._finished = False  # ended or raised: like a generator, it gives nothing more

    @property
    def format(self) -> str | None:
        """The stream's format, named or detected."""
        return self._parser.format

    @property
    def finish_reason(self) -> str | None:
        """Why generation stopped, in the model's words ("length", "stop", "end_turn", ...), once read."""
        return self._parser.state.finish_reason

    @property
    def usage(self) -> Usage | None:
        """Token counts, once the records that carry them (usually the last) are read."""
        return self._parser.state.usage

    def _source(self) -> Any:
        """The chunk source to read next; None once nothing more will come. The in-band error the
        parser holds is raised instead (once: the stream is finished after it)."""
        if self._finished:
            return None
        if self._parser.error is not None:
            self._finished = True
            raise self._parser.error
        if self._chunks is None:
            self._finished = True
        return self._chunks

    def _parse(self, parse: Callable[..., list[Any]], *args: Chunk) -> None:
        """Make ready what ``parse(*args)`` gives (the parser's ``feed`` of a chunk, or its ``close`` at the
        end of the chunks); a parse that raises finishes the stream."""
        try:
            ready = parse(*args)
        except BaseException:
            self._finished = True
            raise
        self._ready, self._next = ready, 0

    def _stop(self) -> Any:
        """Stop reading: the chunk source, to be closed by the caller."""
        chunks, self._chunks = self._chunks, None
        self._ready, self._finished = [], True
        return chunks


class _SyncStream(_ModelStream, Generic[T]):
    def __init__(
        self, chunks: Iterable[Chunk], *, format: str | None = None, max_line_length: int = MAX_LINE_LENGTH
    ) -> None:
        super().__init__(format, max_line_length)
        self._chunks: Iterator[Chunk] | None = iter(chunks)

    def __iter__(self) -> _SyncStream[T]:
        return self

    def __next__(self) -> T:
        while self._next >= len(self._ready):
            chunks = self._source()
            if chunks is None:
                raise StopIteration
            try:
                chunk = next(chunks)
            except StopIteration:
                self._chunks = None
                self._parse(self._parser.close)
            except BaseException:
                self._finished = True
                raise
            else:
                self._parse(self._parser.feed, chunk)
        item: T = self._ready[self._next]
        self._next += 1
        return item

    def close(self) -> None:
        """Stop reading: closes the chunk source when it can be closed (a generator, a stream)."""
        close = getattr(self._stop(), "close", None)
        if close is not None:
            close()


class _AsyncStream(_ModelStream, Generic[T]):
    def __init__(
        self,
        chunks: AsyncIterable[Chunk],
        *,
        format: str | None = None,
        max_line_length: int = MAX_LINE_LENGTH,
    ) -> None:
        super().__init__(format, max_line_length)
        self._chunks: AsyncIterator[Chunk] | None = chunks.__aiter__()

    def __aiter__(self) -> _AsyncStream[T]:
        return self

    async def __anext__(self) -> T:
        while self._next >= len(self._ready):
            chunks = self._source()
            if chunks is None:
                raise StopAsyncIteration
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                self._chunks = None
                self._parse(self._parser.close)
            except BaseException:
                self._finished = True
                raise
            else:
                self._parse(self._parser.feed, chunk)
        item: T = self._ready[self._next]
        self._next += 1
        return item

    async def aclose(self) -> None:
        """Stop reading: closes the chunk source when it can be closed."""
        aclose = getattr(self._stop(), "aclose", None)
        if aclose is not None:
            await aclose()


class TokenStream(_SyncStream[str]):
    """The generated text of a model stream, piece by piece; after the loop, ``finish_reason``,
    ``usage`` and ``format`` say how it ended. In-band errors raise :class:`InBandError`."""

    _parser_class = TokenParser


class RecordStream(_SyncStream[Any]):
    """The JSON records of a model stream (``data: [DONE]`` ends them); the same ``finish_reason``,
    ``usage`` and ``format`` as :class:`TokenStream`, and in-band errors raise."""

    _parser_class = RecordParser


class AsyncTokenStream(_AsyncStream[str]):
    """:class:`TokenStream` over an async iterable of chunks (``async for``)."""

    _parser_class = TokenParser


class AsyncRecordStream(_AsyncStream[Any]):
    """:class:`RecordStream` over an async iterable of chunks (``async for``)."""

    _parser_class = RecordParser
