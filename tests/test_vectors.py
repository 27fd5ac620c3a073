"""The official cross-SDK vectors (tests/vectors/README.md), through both implementations."""

from __future__ import annotations

import base64
import json
import uuid
from types import ModuleType

import pytest

import evstream

from conftest import VECTORS

POSITIVE = sorted(p.name for p in (VECTORS / "encoded" / "positive").iterdir())
NEGATIVE = sorted(p.name for p in (VECTORS / "encoded" / "negative").iterdir())
WIRE_TYPES = {
    bool: None,
    evstream.Int8: 2,
    evstream.Int16: 3,
    int: 4,
    evstream.Int64: 5,
    bytes: 6,
    str: 7,
    evstream.Timestamp: 8,
    uuid.UUID: 9,
}


def _expected_value(header: dict[str, object]) -> object:
    value = header["value"]
    if header["type"] in (6, 7, 9):
        raw = base64.b64decode(str(value))
        return raw if header["type"] == 6 else raw.decode() if header["type"] == 7 else uuid.UUID(bytes=raw)
    return value


def test_vector_sets_are_present() -> None:
    assert len(POSITIVE) == 5 and len(NEGATIVE) == 4


@pytest.mark.parametrize("case", POSITIVE)
def test_positive_vector(codec: ModuleType, case: str) -> None:
    frame = (VECTORS / "encoded" / "positive" / case).read_bytes()
    expected = json.loads((VECTORS / "decoded" / "positive" / case).read_text())
    assert len(frame) == expected["total_length"]
    assert codec.crc32(frame[:8]) == expected["prelude_crc"] & 0xFFFFFFFF
    assert codec.crc32(frame[:-4]) == expected["message_crc"] & 0xFFFFFFFF

    [message] = codec.decode(frame)
    assert message.payload == base64.b64decode(expected["payload"])
    assert list(message.headers) == [h["name"] for h in expected["headers"]]
    for header in expected["headers"]:
        value = message.headers[header["name"]]
        assert value == _expected_value(header)
        wire_type = WIRE_TYPES[type(value)]
        if wire_type is None:
            assert header["type"] == (0 if value else 1)
        else:
            assert wire_type == header["type"]
    assert codec.encode(message.headers, message.payload) == frame


@pytest.mark.parametrize("case", NEGATIVE)
def test_negative_vector(codec: ModuleType, case: str) -> None:
    frame = (VECTORS / "encoded" / "negative" / case).read_bytes()
    reason = (VECTORS / "decoded" / "negative" / case).read_text().strip()
    expected = {
        "Prelude checksum mismatch": evstream.PreludeChecksumMismatch,
        "Message checksum mismatch": evstream.MessageChecksumMismatch,
    }[reason]
    with pytest.raises(expected, match=f"^{reason}: expected 0x[0-9a-f]{{8}}, calculated 0x[0-9a-f]{{8}}$"):
        codec.decode(frame)
