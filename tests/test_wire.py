"""The wire constants exist once (``evstream._wire``, and ``_wire.pxd`` for the C codec): both codecs,
both files and the botocore adapter must agree with them, in their values and in what they do."""

from __future__ import annotations

import re
import struct
import uuid
import zlib
from pathlib import Path
from types import ModuleType

import pytest

import evstream
from evstream import _wire
from evstream.headers import Int8, Int16, Int64, Timestamp

from frames import header, raw_frame, string_header

PXD = Path(_wire.__file__).with_suffix(".pxd")


def _pxd_values() -> dict[str, int]:
    text = PXD.read_text()
    values = {name: int(value) for name, value in re.findall(r"^\s+([A-Z_]+) = (\d+)$", text, re.M)}
    (frame_max,) = re.findall(r"#define EVS_MAX_FRAME_LENGTH (0x[0-9A-F]+)ULL", text)
    values["MAX_FRAME_LENGTH"] = int(frame_max, 16)
    return values


def test_the_pxd_says_what_the_module_says() -> None:
    values = _pxd_values()
    assert len(values) >= 15
    assert {name: getattr(_wire, name) for name in values} == values


def test_the_compiled_codec_was_built_from_those_values(codec: ModuleType) -> None:
    if codec.__name__ != "evstream._codec":
        pytest.skip("compile-time constants exist in the C codec only")
    compiled = codec._wire_constants()
    assert compiled == {name: getattr(_wire, name) for name in compiled}
    assert set(compiled) == set(_pxd_values())


def test_default_limits(codec: ModuleType) -> None:
    assert codec.DEFAULT_MAX_PAYLOAD_LENGTH == _wire.DEFAULT_MAX_PAYLOAD_LENGTH
    assert codec.DEFAULT_MAX_HEADERS_LENGTH == _wire.DEFAULT_MAX_HEADERS_LENGTH
    assert evstream.DEFAULT_MAX_PAYLOAD_LENGTH == _wire.DEFAULT_MAX_PAYLOAD_LENGTH
    # Refused from the prelude alone: one byte over the default payload limit, nothing more sent.
    prelude = struct.pack(">II", _wire.MIN_FRAME_LENGTH + _wire.DEFAULT_MAX_PAYLOAD_LENGTH + 1, 0)
    with pytest.raises(evstream.InvalidPayloadLength):
        codec.Decoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))
    at_limit = struct.pack(">II", _wire.MIN_FRAME_LENGTH + _wire.DEFAULT_MAX_PAYLOAD_LENGTH, 0)
    assert codec.Decoder().feed(at_limit + struct.pack(">I", zlib.crc32(at_limit))) == []


def test_frame_layout(codec: ModuleType) -> None:
    empty = codec.encode({})
    assert len(empty) == _wire.MIN_FRAME_LENGTH == _wire.PRELUDE_LENGTH + _wire.MESSAGE_CRC_LENGTH
    frame = codec.encode({"a": "b"}, b"xyz")
    assert frame[_wire.PRELUDE_LENGTH : _wire.PRELUDE_LENGTH + 1] == b"\x01"  # the name length byte
    assert frame[-_wire.MESSAGE_CRC_LENGTH - 3 : -_wire.MESSAGE_CRC_LENGTH] == b"xyz"


TYPED = [
    (_wire.BOOL_TRUE, True, b""),
    (_wire.BOOL_FALSE, False, b""),
    (_wire.BYTE, Int8(-7), struct.pack(">b", -7)),
    (_wire.SHORT, Int16(1234), struct.pack(">h", 1234)),
    (_wire.INTEGER, -123456, struct.pack(">i", -123456)),
    (_wire.LONG, Int64(1 << 40), struct.pack(">q", 1 << 40)),
    (_wire.BYTE_ARRAY, b"\x00\xff", struct.pack(">H", 2) + b"\x00\xff"),
    (_wire.STRING, "h\u00e9", struct.pack(">H", 3) + "h\u00e9".encode()),
    (_wire.TIMESTAMP, Timestamp(1_700_000_000_123), struct.pack(">q", 1_700_000_000_123)),
    (_wire.UUID, uuid.UUID(int=7), uuid.UUID(int=7).bytes),
]


@pytest.mark.parametrize(("type_byte", "value", "raw"), TYPED, ids=lambda v: repr(v)[:12])
def test_type_codes(codec: ModuleType, type_byte: int, value: object, raw: bytes) -> None:
    frame = raw_frame(header(b"h", type_byte, raw))
    assert codec.encode({"h": value}) == frame
    (message,) = codec.decode(frame)
    assert message.headers == {"h": value} and type(message.headers["h"]) is type(value)
    assert _wire.TYPE_NAMES[type_byte]


def test_unknown_type_code_is_the_next_one(codec: ModuleType) -> None:
    assert len(_wire.TYPE_NAMES) == _wire.UUID + 1
    with pytest.raises(evstream.UnknownHeaderType):
        codec.decode(raw_frame(header(b"h", _wire.UUID + 1)))


def test_name_and_value_length_limits(codec: ModuleType) -> None:
    longest = "n" * _wire.MAX_NAME_LENGTH
    assert codec.decode(codec.encode({longest: True}))[0].headers == {longest: True}
    with pytest.raises(evstream.InvalidHeaderName):
        codec.encode({longest + "n": True})
    value = "v" * _wire.MAX_VALUE_LENGTH
    assert codec.decode(raw_frame(string_header("s", value)))[0].headers == {"s": value}
    with pytest.raises(evstream.InvalidHeaderValue, match=f"maximum of {_wire.MAX_VALUE_LENGTH}"):
        codec.encode({"s": value + "v"})


def test_botocore_adapter_uses_the_same_defaults() -> None:
    adapter = pytest.importorskip("evstream.botocore")
    assert adapter.MAX_PAYLOAD_LENGTH == _wire.DEFAULT_MAX_PAYLOAD_LENGTH
    assert adapter.MAX_HEADERS_LENGTH == _wire.DEFAULT_MAX_HEADERS_LENGTH
