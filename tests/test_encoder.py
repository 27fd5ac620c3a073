"""Encoder: every header type, the checks peers make, typed values that round-trip."""

from __future__ import annotations

import datetime
import struct
import uuid
import zlib
from types import ModuleType

import pytest

import evstream

from frames import header, raw_frame


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (True, b"\x00"),
        (False, b"\x01"),
        (evstream.Int8(-2), b"\x02\xfe"),
        (evstream.Int16(-2), b"\x03\xff\xfe"),
        (7, b"\x04\0\0\0\x07"),
        (-(2**31), b"\x04\x80\0\0\0"),
        (2**31, b"\x05\0\0\0\0\x80\0\0\0"),  # a plain int past int32 becomes a long
        (evstream.Int64(7), b"\x05" + b"\0" * 7 + b"\x07"),
        (b"ab", b"\x06\0\x02ab"),
        (bytearray(b"ab"), b"\x06\0\x02ab"),
        (memoryview(b"xab")[1:], b"\x06\0\x02ab"),
        ("€", b"\x07\0\x03\xe2\x82\xac"),
        ("", b"\x07\0\0"),
        (evstream.Timestamp(1000), b"\x08" + struct.pack(">q", 1000)),
        (
            datetime.datetime(1970, 1, 1, 0, 0, 1, 999, tzinfo=datetime.timezone.utc),
            b"\x08" + struct.pack(">q", 1000),
        ),
        (datetime.datetime(1969, 12, 31, 23, 59, 59, 999_999), b"\x08" + struct.pack(">q", -1)),
        (uuid.UUID(int=1), b"\x09" + b"\0" * 15 + b"\x01"),
    ],
)
def test_header_types(codec: ModuleType, value: object, wire: bytes) -> None:
    frame = codec.encode({"n": value}, b"p")
    assert frame == raw_frame(b"\x01n" + wire, b"p")
    [message] = codec.decode(frame)
    assert codec.encode(message.headers, message.payload) == frame


def test_frame_layout(codec: ModuleType) -> None:
    frame = codec.encode({"a": "b"}, b"payload")
    total, headers_length, prelude_crc = struct.unpack(">III", frame[:12])
    assert total == len(frame) == 16 + 6 + 7
    assert headers_length == 6
    assert prelude_crc == zlib.crc32(frame[:8])
    assert struct.unpack(">I", frame[-4:])[0] == zlib.crc32(frame[:-4])
    assert codec.encode({}) == raw_frame()


def test_header_order_kept(codec: ModuleType) -> None:
    headers = {"z": 1, "a": 2, "m": 3}
    [message] = codec.decode(codec.encode(headers))
    assert list(message.headers) == ["z", "a", "m"]


def test_any_mapping_and_payload_buffer(codec: ModuleType) -> None:
    import types

    frame = codec.encode(types.MappingProxyType({"k": "v"}), bytearray(b"p"))
    assert frame == codec.encode({"k": "v"}, b"p")
    with pytest.raises(TypeError, match=r"^headers must be a mapping, not list$"):
        codec.encode([("k", "v")])
    with pytest.raises(TypeError, match=r"^a bytes-like object is required, not 'str'$"):
        codec.encode({}, "text")


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ({"": 1}, evstream.InvalidHeaderName, r"^Invalid header name: 0 bytes, must be 1 to 255$"),
        ({"x" * 256: 1}, evstream.InvalidHeaderName, r"^Invalid header name: 256 bytes, must be 1 to 255$"),
        ({"é" * 128: 1}, evstream.InvalidHeaderName, r"^Invalid header name: 256 bytes"),
        ({1: 1}, evstream.InvalidHeaderName, r"^Invalid header name: expected str, got int$"),
        ({"\ud800": 1}, evstream.InvalidHeaderName, r"^Invalid header name: not valid UTF-8$"),
        ({"a": "\ud800"}, evstream.InvalidHeaderValue, r"^Invalid value for header 'a': not valid UTF-8$"),
        (
            {"a": "x" * 32768},
            evstream.InvalidHeaderValue,
            r"^Invalid value for header 'a': string of 32768 bytes exceeds the maximum of 32767$",
        ),
        (
            {"a": b"x" * 32768},
            evstream.InvalidHeaderValue,
            r"byte_array of 32768 bytes exceeds the maximum of 32767$",
        ),
        (
            {"a": 2**63},
            evstream.InvalidHeaderValue,
            r"^Invalid value for header 'a': int 9223372036854775808 does not fit in 64 bits$",
        ),
        ({"a": 1.5}, evstream.InvalidHeaderValue, r"^Invalid value for header 'a': unsupported type float$"),
        ({"a": None}, evstream.InvalidHeaderValue, r"unsupported type NoneType$"),
    ],
)
def test_encode_rejects(
    codec: ModuleType, headers: dict[object, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        codec.encode(headers)


def test_limits_of_the_format_accepted(codec: ModuleType) -> None:
    frame = codec.encode({"x" * 255: "y" * 32767, "b": b"z" * 32767, "l": -(2**63)})
    assert codec.decode(frame)[0].headers["x" * 255] == "y" * 32767


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (evstream.Int8, 128),
        (evstream.Int8, -129),
        (evstream.Int16, 2**15),
        (evstream.Int64, 2**63),
        (evstream.Timestamp, -(2**63) - 1),
    ],
)
def test_typed_values_check_their_range(kind: type[int], value: int) -> None:
    with pytest.raises(evstream.InvalidHeaderValue, match=r"is outside \["):
        kind(value)


def test_typed_values() -> None:
    assert repr(evstream.Int8(3)) == "Int8(3)"
    assert evstream.Int16(3) == 3 and isinstance(evstream.Int64(3), int)
    ts = evstream.Timestamp.from_datetime(
        datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
    )
    assert ts == 1714979289123
    assert ts.to_datetime() == datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.timezone.utc)
    import pickle

    assert pickle.loads(pickle.dumps(ts)) == ts and type(pickle.loads(pickle.dumps(ts))) is evstream.Timestamp


def test_twins_encode_identically(both_codecs: tuple[ModuleType, ModuleType]) -> None:
    c, py = both_codecs
    headers = {"a": True, "b": evstream.Int8(1), "c": "s", "d": b"b", "e": uuid.UUID(int=5), "f": 2**40}
    assert c.encode(headers, b"x" * 1000) == py.encode(headers, b"x" * 1000)
    for bad in ({"a": 1.0}, {"": 1}, {"a": "x" * 40000}):
        errors = []
        for codec in (c, py):
            with pytest.raises(evstream.EventStreamError) as exc:
                codec.encode(bad)
            errors.append((type(exc.value), str(exc.value)))
        assert errors[0] == errors[1]


def test_decoded_header_block_survives_unusual_names(codec: ModuleType) -> None:
    frame = raw_frame(header("名前".encode(), 0), b"")
    assert codec.decode(frame)[0].headers == {"名前": True}


def test_fast_uuid_is_a_real_uuid() -> None:
    import pickle
    import uuid

    from evstream.headers import uuid_from_bytes

    for raw in (bytes(16), bytes(range(16)), b"\xff" * 16):
        fast, slow = uuid_from_bytes(raw), uuid.UUID(bytes=raw)
        assert fast == slow and hash(fast) == hash(slow) and str(fast) == str(slow)
        assert fast.is_safe is slow.is_safe and fast.bytes == raw
        assert pickle.loads(pickle.dumps(fast)) == slow
