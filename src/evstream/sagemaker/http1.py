"""HTTP/1.1 response heads, parsed strictly (sans I/O), and the raw body of an answer that is not an event
stream. The asyncio transport uses them; the sync one has urllib3 read the head."""

from __future__ import annotations

import re
from typing import Any

from .errors import IncompleteStream
from .reader import CHUNKED, LENGTH, UNTIL_CLOSE, BodyReader

__all__ = ["MAX_HEAD", "Head", "RawBody", "parse_head"]

MAX_HEAD = 65536  # bytes of a response head: status line and header lines

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?")
_VCHARS = rb"[\x21-\x7e\x80-\xff]+"
# field-name ":" OWS field-value OWS (RFC 9110); obsolete line folding is refused.
_FIELD_LINE = re.compile(
    rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(" + _VCHARS + rb"(?:[ \t]+" + _VCHARS + rb")*)?[ \t]*"
)


class Head:
    """A response head: status, headers (names as sent), the body's framing, and whether the connection
    can carry another request after this answer."""

    __slots__ = ("framing", "headers", "keep_alive", "length", "lowered", "status")

    def __init__(self, status: int, headers: dict[str, str], framing: str, length: int, keep_alive: bool):
        self.status = status
        self.headers = headers
        self.lowered = {k.lower(): v for k, v in headers.items()}
        self.framing = framing
        self.length = length
        self.keep_alive = keep_alive


def _malformed(detail: str) -> IncompleteStream:
    error = IncompleteStream(f"Malformed HTTP response head: {detail}")
    return error


def parse_head(buffer: bytearray, *, request_method: str = "POST") -> Head | None:
    """The first final response head in ``buffer`` (removed from it, with any 1xx heads before it), or
    None while it is incomplete. Raises :class:`IncompleteStream` for a malformed or oversized head."""
    while True:
        end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD)
        if end < 0:
            if len(buffer) >= MAX_HEAD:
                raise _malformed(f"longer than {MAX_HEAD} bytes")
            return None
        lines = bytes(buffer[:end]).split(b"\r\n")
        del buffer[: end + 4]
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise _malformed(f"status line {lines[0][:60]!r}")
        status = int(status_line[2])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            field = _FIELD_LINE.fullmatch(line)
            if field is None:
                raise _malformed(f"header line {line[:60]!r}")
            name = field[1].decode("ascii")
            value = (field[2] or b"").decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if 100 <= status < 200:
            continue  # 100 Continue and the like: the answer follows
        return _framed(status, headers, status_line[1] == b"1", request_method)


def _framed(status: int, headers: dict[str, str], http11: bool, method: str) -> Head:
    lowered = {k.lower(): v for k, v in headers.items()}
    connection = {token.strip().lower() for token in lowered.get("connection", "").split(",")}
    keep_alive = http11 and "close" not in connection
    encoding = lowered.get("transfer-encoding")
    length_value = lowered.get("content-length")
    if method == "CONNECT" and 200 <= status < 300:
        return Head(status, headers, LENGTH, 0, False)
    if status in (204, 304):
        return Head(status, headers, LENGTH, 0, keep_alive)
    if encoding is not None:
        if encoding.strip().lower() != "chunked":
            raise _malformed(f"Transfer-Encoding {encoding!r} (only chunked is understood)")
        if length_value is not None:
            raise _malformed("both Transfer-Encoding and Content-Length")
        return Head(status, headers, CHUNKED, 0, keep_alive)
    if length_value is not None:
        values = {value.strip() for value in length_value.split(",")}
        value = values.pop()
        if values or not value.isdigit() or not value.isascii() or len(value) > 18:
            raise _malformed(f"Content-Length {length_value!r}")
        return Head(status, headers, LENGTH, int(value), keep_alive)
    return Head(status, headers, UNTIL_CLOSE, 0, False)


class RawBody(BodyReader):
    """The bytes of a body that is not an event stream (an error answer): framed as :class:`BodyReader`
    frames, the first ``limit`` bytes kept in ``data``."""

    __slots__ = ("data", "limit")

    def __init__(self, head: Head, limit: int) -> None:
        super().__init__(None, framing=head.framing, length=head.length)
        self.data = bytearray()
        self.limit = limit

    def _decode(self, data: bytes, events: list[Any]) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += data[:room]

    def _finish_decoder(self) -> None:
        pass
