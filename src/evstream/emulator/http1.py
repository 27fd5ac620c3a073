"""The endpoint's HTTP/1.1: a strict request parser with limits and timeouts, and the response writers.

Anything a client sends that is not a well-formed request within the limits becomes an
:class:`HTTPError` (400, 408, 413, 431 or 501) that the server answers before closing the connection;
nothing a client sends reaches a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from .recording import RecordedRequest

__all__ = [
    "ChunkedSender",
    "HTTPError",
    "Limits",
    "chunk",
    "read_request",
    "response_head",
    "write_error",
    "write_simple",
]


class HTTPError(Exception):
    """An error response: status, the service's error type (``x-amzn-ErrorType``) and message."""

    def __init__(self, status: int, error_type: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.extra = extra


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may take: sizes, and time (a client that trickles bytes cannot hold a connection)."""

    max_body: int = 6 * 1024 * 1024  # SageMaker's payload limit
    max_header_count: int = 100
    max_head_bytes: int = 32 * 1024  # request line and headers together
    idle_timeout: float = 60.0  # seconds a kept-alive connection may wait for its next request
    request_timeout: float = 30.0  # seconds from a request's first byte to its last


REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Payload Too Large",
    424: "Failed Dependency",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")  # visible ASCII, no space or control character
_VERSION = re.compile(rb"HTTP/1\.[01]")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab
_BAD_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile(rb"[0-9]{1,19}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


_T = TypeVar("_T")


async def _within(seconds: float, awaitable: Awaitable[_T]) -> _T:
    """``awaitable``, or asyncio.TimeoutError after ``seconds``."""
    if sys.version_info >= (3, 11):  # a timer on this task; wait_for makes a task per call
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


def _bad(message: str) -> HTTPError:
    return HTTPError(400, "BadRequest", message)


async def _line(reader: asyncio.StreamReader, budget: list[int]) -> bytes:
    """One CRLF-terminated line without its terminator, charged to the head's byte budget."""
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HTTPError(431, "BadRequest", "request header fields too large") from None
    budget[0] -= len(raw)
    if budget[0] < 0:
        raise HTTPError(431, "BadRequest", "request header fields too large")
    if not raw.endswith(b"\r\n"):
        raise _bad("lines must end with CRLF")
    return raw[:-2]


async def _head(reader: asyncio.StreamReader, first: bytes, limits: Limits) -> RecordedRequest:
    budget = [limits.max_head_bytes - len(first)]
    if not first.endswith(b"\r\n"):
        raise _bad("lines must end with CRLF")
    parts = first[:-2].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
        raise _bad("malformed request line")
    if not _VERSION.fullmatch(parts[2]):
        raise HTTPError(400, "BadRequest", "only HTTP/1.0 and HTTP/1.1 are served")
    headers: dict[str, str] = {}
    count = 0
    while line := await _line(reader, budget):
        if line[:1] in (b" ", b"\t"):
            raise _bad("folded header lines are not accepted")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _bad("malformed header line")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise _bad("control character in a header value")
        count += 1
        if count > limits.max_header_count:
            raise HTTPError(431, "BadRequest", f"more than {limits.max_header_count} header fields")
        key = name.decode("ascii").lower()
        text = value.decode("latin-1")
        if key in headers:
            if key in ("content-length", "host", "transfer-encoding", "authorization"):
                raise _bad(f"repeated {key} header")
            text = f"{headers[key]}, {text}"
        headers[key] = text
    return RecordedRequest(parts[0].decode("ascii"), parts[1].decode("ascii"), headers, b"")


async def _chunked_body(reader: asyncio.StreamReader, limits: Limits) -> bytes:
    parts: list[bytes] = []
    size = 0
    budget = [limits.max_head_bytes]  # size lines and trailers
    while True:
        size_line = (await _line(reader, budget)).split(b";", 1)[0].strip(b" \t")
        if not _HEX.fullmatch(size_line):
            raise _bad("malformed chunk size")
        n = int(size_line, 16)
        if n == 0:
            while await _line(reader, budget):
                pass
            return b"".join(parts)
        size += n
        if size > limits.max_body:
            raise HTTPError(413, "ValidationError", f"request body over {limits.max_body} bytes")
        parts.append(await reader.readexactly(n))
        if await reader.readexactly(2) != b"\r\n":
            raise _bad("chunk data must end with CRLF")


def _body_length(headers: Mapping[str, str], limits: Limits) -> int | None:
    """The body's length from Content-Length (0 without one), or None for a chunked body."""
    encoding = headers.get("transfer-encoding")
    if encoding is not None:
        if "content-length" in headers:
            raise _bad("both Content-Length and Transfer-Encoding")
        if encoding.strip().lower() != "chunked":
            raise HTTPError(501, "BadRequest", f"transfer coding {encoding!r} is not supported")
        return None
    length_text = headers.get("content-length", "0").encode("latin-1")
    if not _DIGITS.fullmatch(length_text):
        raise _bad("malformed Content-Length")
    length = int(length_text)
    if length > limits.max_body:
        raise HTTPError(413, "ValidationError", f"request body over {limits.max_body} bytes")
    return length


async def _rest(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes, limits: Limits
) -> RecordedRequest:
    request = await _head(reader, first, limits)
    length = _body_length(request.headers, limits)  # refused before the client is told to send it
    if request.headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if length is None:
        request.body = await _chunked_body(reader, limits)
    else:
        request.body = await reader.readexactly(length)
    return request


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits
) -> RecordedRequest | None:
    """The next request on the connection, or None when the client closed it or stayed idle too long.

    Raises :class:`HTTPError` for a request that is malformed, over a limit or too slow to arrive,
    and ``asyncio.IncompleteReadError`` when the client closed the connection inside a request.
    """
    try:
        first = await _within(limits.idle_timeout, reader.readuntil(b"\n"))
    except asyncio.TimeoutError:
        return None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError:
        raise HTTPError(431, "BadRequest", "request line too long") from None
    try:
        return await _within(limits.request_timeout, _rest(reader, writer, first, limits))
    except asyncio.TimeoutError:
        raise HTTPError(408, "RequestTimeout", "request not received in time") from None


def response_head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    for name, value in headers.items():
        if _BAD_TEXT.search(name + value):  # never let a reflected value split the response
            raise ValueError(f"control character in response header {name}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def write_simple(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str,
    extra: Mapping[str, str] | None = None,
) -> None:
    headers = {**(extra or {}), "Content-Type": content_type, "Content-Length": str(len(body))}
    writer.write(response_head(status, headers) + body)


def write_error(
    writer: asyncio.StreamWriter, exc: HTTPError, request_id: str, *, close: bool = False
) -> None:
    body = json.dumps({"Message": str(exc), **exc.extra}).encode()
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": f"{exc.error_type}:"}
    if close:
        headers["Connection"] = "close"
    write_simple(writer, exc.status, body, "application/json", headers)


class ChunkedSender:
    """Writes frames as HTTP chunks, grouped by ``group`` frames or re-cut every ``cut`` bytes.

    With ``coalesce``, several HTTP chunks go out in one socket write (up to 16 KiB): the chunk framing
    is unchanged, only the number of system calls drops, as in a busy real server.
    """

    _COALESCE = 16384

    def __init__(
        self, writer: asyncio.StreamWriter, *, group: int = 1, cut: int = 0, coalesce: bool = False
    ) -> None:
        self.writer = writer
        self.group = group
        self.cut = cut
        self.coalesce = coalesce
        self.pending: list[bytes] = []
        self.carry = b""
        self.out: list[bytes] = []
        self.out_size = 0

    async def frame(self, frame: bytes) -> None:
        self.pending.append(frame)
        if len(self.pending) >= self.group:
            await self._emit()

    async def _emit(self) -> None:
        data = b"".join(self.pending)
        self.pending.clear()
        if self.cut:
            data = self.carry + data
            whole = len(data) - len(data) % self.cut
            self.carry = data[whole:]
            chunks = b"".join(chunk(data[i : i + self.cut]) for i in range(0, whole, self.cut))
        else:
            chunks = chunk(data)
        if not self.coalesce:
            self.writer.write(chunks)
            await self.writer.drain()
            return
        self.out.append(chunks)
        self.out_size += len(chunks)
        if self.out_size >= self._COALESCE:
            await self._write_out()

    async def _write_out(self) -> None:
        if self.out:
            self.writer.write(b"".join(self.out))
            self.out.clear()
            self.out_size = 0
        await self.writer.drain()

    async def flush(self) -> None:
        """Everything so far onto the socket (before a pause, a fault or the end)."""
        if self.pending:
            await self._emit()
        await self._write_out()

    async def end(self) -> None:
        await self.flush()
        if self.carry:
            self.writer.write(chunk(self.carry))
            self.carry = b""
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
