"""Frames built by hand with struct and zlib, valid or not: the one frame builder of the benchmarks and
the tests, written independently of both codecs (so it can judge them).
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["header", "raw_frame", "recrc", "string_header", "token_frame"]


def raw_frame(
    headers_block: bytes = b"",
    payload: bytes = b"",
    *,
    total_length: int | None = None,
    headers_length: int | None = None,
    prelude_crc: int | None = None,
    message_crc: int | None = None,
) -> bytes:
    """A frame with correct lengths and CRCs unless one is given."""
    if total_length is None:
        total_length = 16 + len(headers_block) + len(payload)
    if headers_length is None:
        headers_length = len(headers_block)
    prelude = struct.pack(">II", total_length, headers_length)
    if prelude_crc is None:
        prelude_crc = zlib.crc32(prelude)
    body = prelude + struct.pack(">I", prelude_crc) + headers_block + payload
    if message_crc is None:
        message_crc = zlib.crc32(body)
    return body + struct.pack(">I", message_crc)


def header(name: bytes | str, type_byte: int, value: bytes = b"") -> bytes:
    """One header as wire bytes: the value bytes are given raw (length prefixes included)."""
    raw = name.encode() if isinstance(name, str) else name
    return bytes((len(raw),)) + raw + bytes((type_byte,)) + value


def string_header(name: str, value: str) -> bytes:
    raw = value.encode()
    return header(name, 7, struct.pack(">H", len(raw)) + raw)


def recrc(frame: bytes) -> bytes:
    """The same bytes with both CRCs made right for the lengths the prelude states."""
    prelude = frame[:8]
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + frame[12:-4]
    return body + struct.pack(">I", zlib.crc32(body))


def token_frame(text: str | bytes = "Hello") -> bytes:
    """A SageMaker PayloadPart event."""
    block = (
        string_header(":event-type", "PayloadPart")
        + string_header(":content-type", "application/octet-stream")
        + string_header(":message-type", "event")
    )
    return raw_frame(block, text.encode() if isinstance(text, str) else text)
