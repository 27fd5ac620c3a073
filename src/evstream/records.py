"""JSON records in a model stream: JSON lines, objects one after another (Bedrock), or SSE ``data:``.

:class:`JSONParser` tells the framing from the start of the stream; :class:`JSONSequence` reads values
separated by whitespace or by nothing, cut anywhere. What the records mean is :mod:`evstream.formats`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .lines import (
    MAX_LINE_LENGTH,
    Chunk,
    InvalidJSON,
    LineTooLong,
    RecordDecoder,
    SSEParser,
)

__all__ = ["FRAMINGS", "JSONParser", "JSONSequence", "load_json"]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRUCTURE = re.compile(r'[{}\[\]"]')
_STRING_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.S)  # stops at the closing quote or a lone "\"
_SCALAR = re.compile(r'[^ \t\n\r{}\[\]",:]*')
_decoder = json.JSONDecoder()
# A value cut across chunks is parsed whole at most this many times, and only while it is this short;
# then it is scanned (linear whatever the chunking).
_ATTEMPTS = 8
_RETRY_LENGTH = 16384


def load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(exc.msg, text, exc.pos) from None
    except RecursionError:
        raise InvalidJSON("JSON nested too deeply", text, 0) from None


def _invalid(exc: json.JSONDecodeError) -> bool:
    """Whether a parse error is bad JSON rather than the end of a value that has not arrived yet: the
    parser stopped well before the end (further than a cut-off literal, number or escape reaches), and
    not inside a string that may still be arriving."""
    return len(exc.doc) - exc.pos > 8 and not exc.msg.startswith("Unterminated string")


class JSONSequence:
    """JSON values one after another, separated by whitespace or by nothing: JSON lines, and the
    objects Bedrock sends one per chunk (``{...}{...}``), cut anywhere.

    A value that is complete within one chunk costs one ``raw_decode``. A value cut across chunks is
    parsed again when a chunk brings a closing bracket, a few times at most; then it is scanned for its
    end (strings, brackets) once and parsed once, so feeding byte by byte stays linear. Only the value
    in progress is kept.
    """

    def __init__(self, max_length: int = MAX_LINE_LENGTH) -> None:
        self._limit = max_length
        self._parts: list[str] = []  # the value in progress
        self._size = 0
        # "" between values; "retry": an object or array parsed whole when a closing bracket arrives;
        # "nested": the same, scanned; "string" (a top-level string) or "scalar" (number, literal)
        self._mode = ""
        self._attempts = 0
        self._depth = 0
        self._in_string = False
        self._escape = False  # a chunk ended with the "\" of an escape inside a string

    def feed(self, text: str) -> list[Any]:
        values: list[Any] = []
        i, n = 0, len(text)
        if self._mode == "retry":
            if "}" not in text and "]" not in text:
                self._keep(text)
                return values
            text = "".join(self._parts) + text
            self._parts.clear()
            i, n = self._retry(text, values), len(text)
            if i < 0:
                return values
        while i < n:
            start = i
            if not self._mode:
                i = _WHITESPACE.match(text, i).end()  # type: ignore[union-attr]
                if i == n:
                    break
                start = i
                first = text[i]
                if first in "{[":
                    try:
                        value, i = _decoder.raw_decode(text, i)
                    except json.JSONDecodeError as exc:
                        if not _invalid(exc):
                            self._mode, self._attempts = "retry", 1  # cut off, most likely
                            self._keep(text[start:])
                            break
                        self._mode, self._depth, self._in_string, self._escape = "nested", 1, False, False
                        i = start + 1  # invalid: scan to its end, then report it
                    except RecursionError:
                        raise InvalidJSON("JSON nested too deeply", text[i:], 0) from None
                    else:
                        values.append(value)
                        continue
                elif first == '"':
                    self._mode, self._in_string, i = "string", True, i + 1
                elif first in "}],:":
                    load_json(text[i:])  # raises: a value cannot start here
                else:
                    self._mode = "scalar"
            end = self._scan(text, i)
            if end < 0:
                self._keep(text[start:])
                break
            piece = text[start:end]
            if self._parts:
                self._parts.append(piece)
                piece = "".join(self._parts)
                self._parts.clear()
            self._size = 0
            self._mode = ""
            values.append(load_json(piece))
            i = end
        return values

    def _keep(self, text: str) -> None:
        self._size += len(text)
        if self._size > self._limit:
            raise LineTooLong(self._limit, "JSON value")
        self._parts.append(text)

    def _retry(self, text: str, values: list[Any]) -> int:
        """Parse the pending value (all of ``text`` so far); where to go on in ``text``, or -1."""
        try:
            value, end = _decoder.raw_decode(text, 0)
        except json.JSONDecodeError as exc:
            self._attempts += 1
            if self._attempts <= _ATTEMPTS and len(text) <= _RETRY_LENGTH and not _invalid(exc):
                self._size = 0
                self._keep(text)
                return -1
            # Still no value: find its end by scanning from the start, once.
            self._mode, self._depth, self._in_string, self._escape = "nested", 1, False, False
            self._size = 0
            end = self._scan(text, 1)
            if end < 0:
                self._keep(text)
                return -1
            self._mode = ""
            values.append(load_json(text[:end]))
            return end
        except RecursionError:
            raise InvalidJSON("JSON nested too deeply", text, 0) from None
        self._mode, self._size = "", 0
        values.append(value)
        return end

    def close(self) -> list[Any]:
        """The value pending at the end: a number, or an error for a value cut off."""
        if not self._mode:
            return []
        text = "".join(self._parts)
        self._parts.clear()
        self._mode = ""
        return [load_json(text)]

    def _scan(self, text: str, i: int) -> int:
        """Where the value in progress ends in ``text`` (past its last character), or -1."""
        n = len(text)
        if self._mode == "scalar":
            end = _SCALAR.match(text, i).end()  # type: ignore[union-attr]
            return -1 if end == n else end
        if self._escape:
            self._escape = False
            i += 1
        depth, in_string = self._depth, self._in_string
        while i < n:
            if in_string:
                i = _STRING_BODY.match(text, i).end()  # type: ignore[union-attr]
                if i >= n:
                    break
                if text[i] == "\\":  # the last character: its escaped character is in the next chunk
                    self._escape = True
                    i = n
                    break
                i += 1
                in_string = False
                if depth == 0:
                    self._in_string = False
                    return i  # a top-level string
                continue
            match = _STRUCTURE.search(text, i)
            if match is None:
                break
            i = match.end()
            char = text[i - 1]
            if char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            else:
                depth -= 1
                if depth <= 0:
                    self._depth, self._in_string = 0, False
                    return i
        self._depth, self._in_string = depth, in_string
        return -1


_SSE_FIELDS = ("data", "event", "id", "retry", "error")
FRAMINGS = ("sse", "json", "text")


def _type_and_data(data: str, kind: str, _id: str | None, _retry: int | None) -> tuple[str, str]:
    return kind, data


class JSONParser:
    """JSON values from SSE ``data:`` fields, or from JSON lines and concatenated JSON objects; which
    one is told by the start of the stream (a leading byte-order mark is dropped).

    An SSE ``data: [DONE]`` ends the values; what follows it is read and ignored. An SSE event of type
    ``error`` (and llama.cpp's ``error:`` field) comes out as ``{"error": value}``, the shape in-band
    errors have elsewhere, so that :mod:`evstream.formats` raises it. With ``text_fallback``, a stream
    that starts as neither (plain text) has the framing ``"text"`` and its decoded text comes out as is.
    """

    def __init__(
        self,
        max_line_length: int = MAX_LINE_LENGTH,
        *,
        framing: str | None = None,
        text_fallback: bool = False,
    ) -> None:
        if framing not in (None, *FRAMINGS):
            raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, not {framing!r}")
        self._decode = RecordDecoder()
        self._limit = max_line_length
        self._text_fallback = text_fallback
        self._start = ""  # text before the framing is known
        self._sse: SSEParser | None = None
        self._json: JSONSequence | None = None
        self.framing = framing
        if framing is not None:
            self._begin(framing)
        self.done = False

    def feed(self, data: Chunk) -> list[Any]:
        if self._json is not None:
            return self._json.feed(self._decode(data))
        return self._values(self._decode(data), False)

    def close(self) -> list[Any]:
        return self._values(self._decode(b"", True), True)

    def _begin(self, framing: str) -> None:
        self.framing = framing
        if framing == "sse":
            self._sse = SSEParser(self._limit, extra_fields=("error",))
            self._sse.make_event = _type_and_data
        elif framing == "json":
            self._json = JSONSequence(self._limit)

    def _detect(self, text: str, final: bool) -> str:
        """The text to parse once the framing is known from the first record's start."""
        self._start += text
        if len(self._start) > self._limit:
            raise LineTooLong(self._limit)
        head = self._start.lstrip()
        if not head and not final:
            return ""  # whitespace before the first record: nothing is known yet
        if head[:1] in ("{", "["):
            framing = "json"
        else:
            line = re.split(r"[\r\n]", head, maxsplit=1)
            if len(line) == 1 and len(head) < 7 and not final:
                return ""  # "data" or "data:"? wait for more
            name = line[0].partition(":")[0]
            if name in _SSE_FIELDS or (not name and head):
                framing = "sse"
            else:
                framing = "text" if self._text_fallback else "json"
        self._begin(framing)
        text, self._start = self._start, ""
        return text

    def _values(self, text: str, final: bool) -> list[Any]:
        if self.framing is None:
            text = self._detect(text, final)
            if self.framing is None:
                return []
        if self._json is not None:
            values = self._json.feed(text)
            return values + self._json.close() if final else values
        if self._sse is None:
            return [text] if text else []
        lines = self._sse._lines.split(text)
        if final:
            lines += self._sse._lines.finish()
        elif not lines:
            return []  # a part of a line: nothing completed
        events: list[Any] = self._sse.events(lines)  # (type, data) pairs: see _type_and_data
        if final:
            events += self._sse.flush()
        if self.done:
            return []
        values = []
        for kind, data in events:
            if kind == "error":
                try:
                    error = json.loads(data)
                except (ValueError, RecursionError):
                    error = data
                values.append({"error": error})
                continue
            if data[:1] == "{":
                values.append(load_json(data))
                continue
            stripped = data.strip()
            if stripped == "[DONE]":
                self.done = True
                break
            if stripped:
                values.append(load_json(data))
        return values
