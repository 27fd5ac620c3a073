"""HTTP/1.1 response heads, parsed strictly (sans I/O), and the raw body of an answer that is not an event
stream. The asyncio transport uses them; the sync one has urllib3 read the head."""

from __future__ import annotations

import re
from typing import Any

from .errors import IncompleteStream
from .reader import CHUNKED, FIELD_LINE, FIELD_NAME, FIELD_VALUE, LENGTH, UNTIL_CLOSE, BodyReader, malformed

__all__ = ["MAX_HEAD", "Head", "RawBody", "parse_head"]

MAX_HEAD = 65536  # bytes of a response head: status line and header lines

# field-name ":" OWS field-value OWS (RFC 9110); obsolete line folding is refused.
_FIELD = rb"(" + FIELD_NAME + rb"):[ \t]*(" + FIELD_VALUE + rb")[ \t]*\r\n"
# A whole head, checked in one pass: the status line, then field lines.
_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?\r\n((?:" + FIELD_LINE + rb"\r\n)*)"
)
_FIELDS = re.compile(_FIELD)


class Head:
    """A response head: status, headers (names as sent), the body's framing, and whether the connection
    can carry another request after this answer."""

    __slots__ = ("framing", "headers", "keep_alive", "length", "lowered", "status")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        lowered: dict[str, str],
        framing: str,
        length: int,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        self.lowered = lowered
        self.framing = framing
        self.length = length
        self.keep_alive = keep_alive


def _malformed(detail: str) -> IncompleteStream:
    return malformed(f"Malformed HTTP response head: {detail}")


def parse_head(buffer: bytearray, *, request_method: str = "POST") -> Head | None:
    """The first final response head in ``buffer`` (removed from it, with any 1xx heads before it), or
    None while it is incomplete. Raises :class:`IncompleteStream` for a malformed or oversized head."""
    while True:
        end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD)
        if end < 0:
            if len(buffer) >= MAX_HEAD:
                raise _malformed(f"longer than {MAX_HEAD} bytes")
            return None
        block = bytes(buffer[: end + 2])
        del buffer[: end + 4]
        head = _HEAD.fullmatch(block)
        if head is None:
            raise _refusal(block)
        status = int(head[2])
        if status < 200:
            continue  # 100 Continue and the like: the answer follows
        headers: dict[str, str] = {}
        lowered: dict[str, str] = {}
        for raw_name, raw_value in _FIELDS.findall(head[3]):
            name = raw_name.decode("ascii")
            value = raw_value.decode("latin-1")
            key = name.lower()
            if key in lowered:  # a repeated field: its values joined, as one list
                value = f"{lowered[key]}, {value}"
                name = next(n for n in headers if n.lower() == key)
            headers[name] = lowered[key] = value
        return _framed(status, headers, lowered, head[1] == b"1", request_method)


def _refusal(block: bytes) -> IncompleteStream:
    """The error for a head that did not parse, naming the first line at fault."""
    lines = block.split(b"\r\n")[:-1]
    for line in lines[1:]:
        if _FIELDS.fullmatch(line + b"\r\n") is None:
            return _malformed(f"header line {line[:60]!r}")
    return _malformed(f"status line {lines[0][:60]!r}")


def _framed(status: int, headers: dict[str, str], lowered: dict[str, str], http11: bool, method: str) -> Head:
    connection = {token.strip().lower() for token in lowered.get("connection", "").split(",")}
    keep_alive = http11 and "close" not in connection
    encoding = lowered.get("transfer-encoding")
    length_value = lowered.get("content-length")
    if method == "CONNECT" and 200 <= status < 300:
        return Head(status, headers, lowered, LENGTH, 0, False)
    if status in (204, 304):
        return Head(status, headers, lowered, LENGTH, 0, keep_alive)
    if encoding is not None:
        if encoding.strip().lower() != "chunked":
            raise _malformed(f"Transfer-Encoding {encoding!r} (only chunked is understood)")
        if length_value is not None:
            raise _malformed("both Transfer-Encoding and Content-Length")
        return Head(status, headers, lowered, CHUNKED, 0, keep_alive)
    if length_value is not None:
        values = {value.strip() for value in length_value.split(",")}
        value = values.pop()
        if values or not value.isdigit() or not value.isascii() or len(value) > 18:
            raise _malformed(f"Content-Length {length_value!r}")
        return Head(status, headers, lowered, LENGTH, int(value), keep_alive)
    return Head(status, headers, lowered, UNTIL_CLOSE, 0, False)


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
