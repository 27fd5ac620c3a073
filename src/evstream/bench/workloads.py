"""The benchmark workloads, built with the hand frame builder (independently of the codec under test)."""

from __future__ import annotations

import datetime
import json
import random
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from ..capture import rechunk
from ..emulator.workloads import token
from .frames import header, raw_frame, string_header

__all__ = [
    "TOKEN_HEADERS",
    "KiB",
    "MiB",
    "NormMessage",
    "Stream",
    "encode_workload",
    "fmt_size",
    "make_stream",
    "normalize",
    "size_key",
    "token_payload",
]

KiB = 1024
MiB = 1024 * KiB

# A normalized message: headers as {name: plain value}, payload bytes. Values are reduced to what every
# implementation can express (botocore gives timestamps as int ms and UUIDs as 16 raw bytes).
NormMessage = tuple[dict[str, Any], bytes]

TOKEN_HEADERS = {
    ":event-type": "PayloadPart",
    ":content-type": "application/octet-stream",
    ":message-type": "event",
}
_TOKEN_BLOCK = b"".join(string_header(k, v) for k, v in TOKEN_HEADERS.items())


def fmt_size(n: int) -> str:
    for unit, scale in (("MiB", MiB), ("KiB", KiB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def size_key(n: int) -> str:
    """A size as it appears in case keys ("64KiB")."""
    return fmt_size(n).replace(" ", "")


def token_payload(i: int) -> bytes:
    """A TGI-style server-sent event of about 150 bytes, as SageMaker streams carry one per PayloadPart."""
    text = json.dumps(
        {
            "token": {
                "id": 1000 + i * 7 % 31000,
                "text": token(i),
                "logprob": -((i * 37) % 997) / 1000,
                "special": False,
            },
            "generated_text": None,
            "details": None,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return ("data:" + text + "\n\n").encode()


# Every wire type once: (name, type byte, value bytes, normalized value).
_ALL_TYPES_UUID = uuid.UUID("12345678-9abc-def0-fedc-ba9876543210")
_ALL_TYPES: tuple[tuple[str, int, bytes, Any], ...] = (
    ("bool-true", 0, b"", True),
    ("bool-false", 1, b"", False),
    ("byte", 2, struct.pack(">b", -7), -7),
    ("short", 3, struct.pack(">h", 1234), 1234),
    ("integer", 4, struct.pack(">i", -123456), -123456),
    ("long", 5, struct.pack(">q", 1 << 40), 1 << 40),
    ("bytes", 6, struct.pack(">H", 6) + b"\x00\x01\xfe\xff\x10\x20", b"\x00\x01\xfe\xff\x10\x20"),
    ("string", 7, struct.pack(">H", 6) + "héllo".encode(), "héllo"),
    ("timestamp", 8, struct.pack(">q", 1_700_000_000_123), 1_700_000_000_123),
    ("uuid", 9, _ALL_TYPES_UUID.bytes, _ALL_TYPES_UUID.bytes),
)
_ALL_TYPES_BLOCK = b"".join(header(n, t, v) for n, t, v, _ in _ALL_TYPES)
_ALL_TYPES_NORM = {n: v for n, _, _, v in _ALL_TYPES}


@dataclass
class Stream:
    """A stream as it is fed to a decoder: ``chunks``, and the messages it must yield."""

    key: str
    label: str
    chunks: list[bytes]
    expected: list[NormMessage]
    frame_size: int
    nbytes: int = 0

    def __post_init__(self) -> None:
        self.nbytes = sum(len(c) for c in self.chunks)


def _random_bytes(size: int) -> bytes:
    return random.Random(size).getrandbits(size * 8).to_bytes(size, "little") if size else b""


def make_stream(kind: str, chunk: int | None, count: int) -> Stream:
    """``kind``: "tokens" (3 string headers, ~150-byte payload), "headers" (every header type, 64-byte
    payload) or a frame payload size in bytes as a string ("1048576"); ``count`` frames, fed in
    ``chunk``-byte chunks (None: one frame per chunk)."""
    if kind == "tokens":
        payloads = [token_payload(i) for i in range(count)]
        frames = [raw_frame(_TOKEN_BLOCK, p) for p in payloads]
        expected = [(dict(TOKEN_HEADERS), p) for p in payloads]
        label = "token events"
    elif kind == "headers":
        payloads = [bytes((i + j) % 256 for j in range(64)) for i in range(count)]
        frames = [raw_frame(_ALL_TYPES_BLOCK, p) for p in payloads]
        expected = [(dict(_ALL_TYPES_NORM), p) for p in payloads]
        label = "all header types"
    else:
        size = int(kind)
        rng = random.Random(size)
        payloads = [rng.getrandbits(size * 8).to_bytes(size, "little") if size else b"" for _ in range(count)]
        frames = [raw_frame(_TOKEN_BLOCK, p) for p in payloads]
        expected = [(dict(TOKEN_HEADERS), p) for p in payloads]
        label = f"{fmt_size(size)} frames"
    kind_key = kind if kind in ("tokens", "headers") else size_key(int(kind))
    chunk_key = "frame" if chunk is None else size_key(chunk)
    chunk_label = "1 frame per chunk" if chunk is None else f"{fmt_size(chunk)} chunks"
    key = f"{kind_key}/{chunk_key}"
    chunks = frames if chunk is None else rechunk(b"".join(frames), chunk)
    return Stream(key, f"{label}, {chunk_label}", chunks, expected, len(frames[0]))


def normalize(headers: Any, payload: Any) -> NormMessage:
    """Header values reduced to bool/int/str/bytes (timestamps as int ms, UUIDs as 16 bytes)."""
    out: dict[str, Any] = {}
    for name, value in dict(headers).items():
        if isinstance(value, bool):
            out[name] = value
        elif isinstance(value, uuid.UUID):
            out[name] = value.bytes
        elif isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            out[name] = round(value.timestamp() * 1000)
        elif isinstance(value, int):
            out[name] = int(value)
        elif isinstance(value, (bytearray, memoryview)):
            out[name] = bytes(value)
        else:
            out[name] = value
    return out, bytes(payload)


def encode_workload(kind: str) -> tuple[dict[str, Any], bytes, bytes]:
    """(headers with evstream's typed values, payload, the exact frame expected) for ``kind``:
    "tokens", "headers" or a payload size in bytes."""
    from ..headers import Int8, Int16, Int64, Timestamp

    if kind == "tokens":
        payload = token_payload(1)
        return dict(TOKEN_HEADERS), payload, raw_frame(_TOKEN_BLOCK, payload)
    if kind == "headers":
        typed = {
            "bool-true": True,
            "bool-false": False,
            "byte": Int8(-7),
            "short": Int16(1234),
            "integer": -123456,
            "long": Int64(1 << 40),
            "bytes": b"\x00\x01\xfe\xff\x10\x20",
            "string": "héllo",
            "timestamp": Timestamp(1_700_000_000_123),
            "uuid": _ALL_TYPES_UUID,
        }
        payload = bytes(range(64))
        return typed, payload, raw_frame(_ALL_TYPES_BLOCK, payload)
    payload = _random_bytes(int(kind))
    return dict(TOKEN_HEADERS), payload, raw_frame(_TOKEN_BLOCK, payload)
