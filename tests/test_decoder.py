"""Streaming decoder: chunking, error order, limits, failure semantics, headers."""

from __future__ import annotations

import contextlib
import struct
import tracemalloc
import uuid
from types import ModuleType

import pytest

import evstream

from frames import header, raw_frame, recrc, string_header, token_frame


def feed_all(codec: ModuleType, data: bytes, sizes: list[int]) -> list[object]:
    decoder = codec.Decoder()
    messages: list[object] = []
    pos = 0
    for size in sizes:
        messages += decoder.feed(data[pos : pos + size])
        pos += size
    messages += decoder.feed(data[pos:])
    decoder.close()
    return messages


STREAM = b"".join(token_frame(f"token {i} é") for i in range(20)) + raw_frame(b"", b"x" * 5000)


def test_whole_stream(codec: ModuleType) -> None:
    messages = codec.decode(STREAM)
    assert len(messages) == 21
    assert messages[3].payload == "token 3 é".encode()
    assert messages[3].headers == {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    assert messages[-1].headers == {} and messages[-1].payload == b"x" * 5000


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 12, 13, 16, 64, 100, 4096])
def test_fixed_chunk_sizes(codec: ModuleType, size: int) -> None:
    decoder = codec.Decoder()
    messages = []
    for pos in range(0, len(STREAM), size):
        messages += decoder.feed(STREAM[pos : pos + size])
    decoder.close()
    assert messages == codec.decode(STREAM)


def test_every_split_point_of_one_frame(codec: ModuleType) -> None:
    frame = token_frame("split me")
    [expected] = codec.decode(frame)
    for cut in range(len(frame) + 1):
        assert feed_all(codec, frame, [cut]) == [expected]


def test_any_buffer_type(codec: ModuleType) -> None:
    frame = token_frame()
    [expected] = codec.decode(frame)
    misaligned = memoryview(b"\0" + frame)[1:]
    for data in (bytearray(frame), memoryview(frame), misaligned):
        assert codec.decode(data) == [expected]
    with pytest.raises(TypeError, match=r"^a bytes-like object is required, not 'str'$"):
        codec.Decoder().feed("text")
    with pytest.raises(BufferError):
        codec.Decoder().feed(memoryview(frame * 2)[::2])


def test_feed_returns_messages_before_a_bad_frame(codec: ModuleType) -> None:
    good = token_frame("a") + token_frame("b")
    bad = bytearray(token_frame("c"))
    bad[-6] ^= 1
    decoder = codec.Decoder()
    messages = decoder.feed(good + bytes(bad) + token_frame("d"))
    assert [m.payload for m in messages] == [b"a", b"b"]
    with pytest.raises(evstream.MessageChecksumMismatch) as first:
        decoder.feed(b"")
    # A failed decoder stays failed, with the same error.
    with pytest.raises(evstream.MessageChecksumMismatch) as second:
        decoder.feed(token_frame("e"))
    assert second.value is first.value
    with pytest.raises(evstream.MessageChecksumMismatch):
        decoder.close()


def test_error_without_messages_raises_at_once(codec: ModuleType) -> None:
    decoder = codec.Decoder()
    with pytest.raises(evstream.PreludeChecksumMismatch):
        decoder.feed(b"\0" * 16)


def test_prelude_checked_before_the_frame_arrives(codec: ModuleType) -> None:
    frame = bytearray(token_frame())
    frame[2] ^= 0x10  # total_length changed, prelude CRC now wrong
    decoder = codec.Decoder()
    assert decoder.feed(frame[:11]) == []
    with pytest.raises(evstream.PreludeChecksumMismatch, match=r"^Prelude checksum mismatch"):
        decoder.feed(frame[11:12])


@pytest.mark.parametrize("cut", [1, 11, 12, 13, 40, -1])
def test_truncated_stream(codec: ModuleType, cut: int) -> None:
    frame = token_frame()
    decoder = codec.Decoder()
    assert decoder.feed(frame + frame[:cut]) != []
    buffered = cut % len(frame)
    expected = (
        f"{buffered} bytes of an incomplete prelude"
        if buffered < 12
        else f"{buffered} of {len(frame)} bytes of a frame"
    )
    with pytest.raises(
        evstream.TruncatedStream, match=f"^Stream ended inside a frame: {expected} buffered$"
    ) as exc:
        decoder.close()
    assert exc.value.buffered == buffered
    with pytest.raises(evstream.TruncatedStream):
        decoder.close()
    with pytest.raises(evstream.TruncatedStream):
        codec.decode(frame[:cut])


def test_buffered(codec: ModuleType) -> None:
    frame = token_frame()
    decoder = codec.Decoder()
    assert decoder.buffered == 0
    decoder.feed(frame[:5])
    assert decoder.buffered == 5
    decoder.feed(frame[5:30])
    assert decoder.buffered == 30
    assert len(decoder.feed(frame[30:] + frame[:3])) == 1
    assert decoder.buffered == 3


def test_close_on_clean_boundary(codec: ModuleType) -> None:
    decoder = codec.Decoder()
    decoder.close()
    assert len(decoder.feed(token_frame())) == 1
    decoder.close()


@pytest.mark.parametrize(
    ("total", "headers_length", "message"),
    [
        (15, 0, r"^Invalid frame: total length 15, headers length 0 \(the minimum frame is 16 bytes\)$"),
        (0, 0, r"^Invalid frame: total length 0, headers length 0 \(the minimum frame is 16 bytes\)$"),
        (20, 5, r"^Invalid frame: total length 20, headers length 5 \(the headers do not fit in 4 bytes\)$"),
    ],
)
def test_impossible_lengths(codec: ModuleType, total: int, headers_length: int, message: str) -> None:
    frame = raw_frame(b"\0" * 4, total_length=total, headers_length=headers_length)
    with pytest.raises(evstream.InvalidFrameLength, match=message):
        codec.Decoder().feed(frame)


def test_limits(codec: ModuleType) -> None:
    frame = raw_frame(string_header("h", "v" * 10), b"p" * 100)
    assert codec.Decoder(max_payload_length=100, max_headers_length=15).feed(frame)
    with pytest.raises(
        evstream.InvalidPayloadLength, match=r"^Payload length of 100 exceeded the maximum of 99$"
    ):
        codec.Decoder(max_payload_length=99).feed(frame[:12])
    with pytest.raises(
        evstream.InvalidHeadersLength, match=r"^Headers length of 15 exceeded the maximum of 14$"
    ):
        codec.Decoder(max_headers_length=14).feed(frame[:12])


def test_default_limits_are_botocore_s(codec: ModuleType) -> None:
    assert codec.DEFAULT_MAX_PAYLOAD_LENGTH == 24 * 1024 * 1024
    assert codec.DEFAULT_MAX_HEADERS_LENGTH == 128 * 1024
    over = raw_frame(total_length=16 + 24 * 1024 * 1024 + 1)
    with pytest.raises(evstream.InvalidPayloadLength):
        codec.Decoder().feed(over[:12])
    over = raw_frame(total_length=16 + 128 * 1024 + 1, headers_length=128 * 1024 + 1)
    with pytest.raises(evstream.InvalidHeadersLength):
        codec.Decoder().feed(over[:12])


@pytest.mark.parametrize("bad", [-1, 2**32, "10", 1.5, True])
def test_limit_arguments_checked(codec: ModuleType, bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        codec.Decoder(max_payload_length=bad)


def test_announced_frame_costs_nothing_until_it_arrives(codec: ModuleType) -> None:
    # A peer that announces a 20 MiB frame and stalls must not cost 20 MiB.
    prelude = raw_frame(total_length=16 + 20 * 1024 * 1024)[:12]
    decoder = codec.Decoder()
    tracemalloc.start()
    try:
        decoder.feed(prelude)
        decoder.feed(b"x" * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_large_frame_in_many_chunks(codec: ModuleType) -> None:
    payload = bytes(range(256)) * 4096 * 3  # 3 MiB
    frame = raw_frame(string_header("k", "v"), payload)
    decoder = codec.Decoder()
    messages = []
    for pos in range(0, len(frame), 65536):
        messages += decoder.feed(frame[pos : pos + 65536])
    decoder.close()
    assert len(messages) == 1 and messages[0].payload == payload


def test_corrupted_large_frame_in_many_chunks(codec: ModuleType) -> None:
    frame = bytearray(raw_frame(b"", b"y" * 300_000))
    frame[200_000] ^= 0x80
    decoder = codec.Decoder()
    with pytest.raises(evstream.MessageChecksumMismatch):
        for pos in range(0, len(frame), 4096):
            decoder.feed(frame[pos : pos + 4096])


ALL_TYPES = (
    header(b"t", 0)
    + header(b"f", 1)
    + header(b"i8", 2, b"\xff")
    + header(b"i16", 3, b"\x80\x00")
    + header(b"i32", 4, b"\x7f\xff\xff\xff")
    + header(b"i64", 5, b"\x80" + b"\0" * 7)
    + header(b"bytes", 6, b"\0\x03\x00\xff\x01")
    + header(b"str", 7, b"\0\x04\xe2\x82\xac!")
    + header(b"ts", 8, struct.pack(">q", -1))
    + header(b"uuid", 9, bytes(range(16)))
    + header(b"empty", 7, b"\0\0")
    + header("é".encode(), 6, b"\0\0")
)


def test_all_header_types(codec: ModuleType) -> None:
    frame = raw_frame(ALL_TYPES, b"body")
    [message] = codec.decode(frame)
    assert message.headers == {
        "t": True,
        "f": False,
        "i8": -1,
        "i16": -32768,
        "i32": 2**31 - 1,
        "i64": -(2**63),
        "bytes": b"\x00\xff\x01",
        "str": "€!",
        "ts": -1,
        "uuid": uuid.UUID(bytes=bytes(range(16))),
        "empty": "",
        "é": b"",
    }
    types = [type(v) for v in message.headers.values()]
    assert types == [
        bool,
        bool,
        evstream.Int8,
        evstream.Int16,
        int,
        evstream.Int64,
        bytes,
        str,
        evstream.Timestamp,
        uuid.UUID,
        str,
        bytes,
    ]
    assert codec.encode(message.headers, message.payload) == frame


BAD_HEADERS = [
    (header(b"", 0), evstream.InvalidHeaderName, r"^Invalid header name: empty name$"),
    (
        b"\x05abc",
        evstream.InvalidHeaderName,
        r"^Invalid header name: name needs 5 bytes, 3 left in the headers block$",
    ),
    (header(b"\xff", 0), evstream.InvalidHeaderName, r"^Invalid header name: not valid UTF-8$"),
    (
        b"\x01a",
        evstream.InvalidHeaderValue,
        r"^Invalid value for header 'a': type byte needs 1 bytes, 0 left in the headers block$",
    ),
    (header(b"a", 10), evstream.UnknownHeaderType, r"^Unknown header type 10 for header 'a'$"),
    (header(b"a", 255), evstream.UnknownHeaderType, r"^Unknown header type 255 for header 'a'$"),
    (
        header(b"a", 4, b"\0\0\0"),
        evstream.InvalidHeaderValue,
        r"^Invalid value for header 'a': integer value needs 4 bytes, 3 left in the headers block$",
    ),
    (
        header(b"a", 5, b""),
        evstream.InvalidHeaderValue,
        r"^Invalid value for header 'a': long value needs 8 bytes, 0 left",
    ),
    (header(b"a", 2, b""), evstream.InvalidHeaderValue, r"byte value needs 1 bytes, 0 left"),
    (header(b"a", 3, b"\0"), evstream.InvalidHeaderValue, r"short value needs 2 bytes, 1 left"),
    (header(b"a", 8, b"\0"), evstream.InvalidHeaderValue, r"timestamp value needs 8 bytes, 1 left"),
    (header(b"a", 9, b"\0" * 15), evstream.InvalidHeaderValue, r"uuid value needs 16 bytes, 15 left"),
    (header(b"a", 7, b"\0"), evstream.InvalidHeaderValue, r"string value needs 2 bytes, 1 left"),
    (header(b"a", 7, b"\0\x05abc"), evstream.InvalidHeaderValue, r"string value needs 5 bytes, 3 left"),
    (header(b"a", 6, b"\0\x05abc"), evstream.InvalidHeaderValue, r"byte_array value needs 5 bytes, 3 left"),
    (
        header(b"a", 7, b"\x80\x00" + b"x" * 32768),
        evstream.InvalidHeaderValue,
        r"^Invalid value for header 'a': string of 32768 bytes exceeds the maximum of 32767$",
    ),
    (
        header(b"a", 7, b"\0\x02\xc3\x28"),
        evstream.InvalidHeaderValue,
        r"^Invalid value for header 'a': not valid UTF-8$",
    ),
    (header(b"a", 7, b"\0\x03\xed\xa0\x80"), evstream.InvalidHeaderValue, r"not valid UTF-8"),  # a surrogate
    (header(b"a", 0) + header(b"a", 1), evstream.DuplicateHeader, r"^Duplicate header present: 'a'$"),
]


@pytest.mark.parametrize(("block", "error", "message"), BAD_HEADERS)
def test_bad_headers(codec: ModuleType, block: bytes, error: type[Exception], message: str) -> None:
    frame = raw_frame(block, b"payload")
    with pytest.raises(error, match=message):
        codec.decode(frame)
    # The same error when the frame arrives a byte at a time (the assembled path).
    decoder = codec.Decoder()
    with pytest.raises(error, match=message):
        for i in range(len(frame)):
            decoder.feed(frame[i : i + 1])


def test_header_run_past_block_into_payload(codec: ModuleType) -> None:
    # The string claims 6 bytes; 3 are in the block, the rest would be payload: rejected.
    frame = raw_frame(header(b"a", 7, b"\0\x06abc"), b"def")
    with pytest.raises(evstream.InvalidHeaderValue, match="needs 6 bytes, 3 left"):
        codec.decode(frame)


def test_mutations_rejected(codec: ModuleType) -> None:
    frame = token_frame("mutate me")
    for i in range(len(frame)):
        for bit in (0x01, 0x80):
            mutated = bytearray(frame)
            mutated[i] ^= bit
            with pytest.raises(evstream.EventStreamError):
                codec.decode(bytes(mutated))


def test_recrc_mutations_never_leak_other_errors(codec: ModuleType) -> None:
    # Corrupt the header bytes and fix both CRCs: whatever happens must be a typed error or a message.
    frame = token_frame("x")
    for i in range(12, 12 + 60):
        for value in (0, 1, 0x7F, 0x80, 0xFF):
            mutated = bytearray(frame)
            mutated[i] = value
            with contextlib.suppress(evstream.EventStreamError):
                codec.decode(recrc(bytes(mutated)))


def test_message_repr_and_equality(codec: ModuleType) -> None:
    message = codec.Message({"a": 1}, b"p")
    assert message == codec.Message({"a": 1}, b"p")
    assert message != codec.Message({"a": 2}, b"p")
    assert repr(message) == "Message(headers={'a': 1}, payload=b'p')"
    with pytest.raises(TypeError):
        hash(message)


def test_twins_raise_identical_errors(both_codecs: tuple[ModuleType, ModuleType]) -> None:
    c, py = both_codecs
    for block, _, _ in BAD_HEADERS:
        frame = raw_frame(block)
        errors = []
        for codec in (c, py):
            with pytest.raises(evstream.EventStreamError) as exc:
                codec.decode(frame)
            errors.append((type(exc.value), str(exc.value)))
        assert errors[0] == errors[1]


def test_error_property(codec: ModuleType) -> None:
    decoder = codec.Decoder()
    assert decoder.error is None
    bad = bytearray(token_frame())
    bad[-1] ^= 1
    assert len(decoder.feed(token_frame() + bytes(bad))) == 1
    assert isinstance(decoder.error, evstream.MessageChecksumMismatch)
    with pytest.raises(evstream.MessageChecksumMismatch) as exc:
        decoder.feed(b"")
    assert exc.value is decoder.error


def test_untyped_values_are_botocore_s(codec: ModuleType) -> None:
    frame = raw_frame(ALL_TYPES, b"body")
    [message] = codec.Decoder(typed_values=False).feed(frame)
    assert [type(v) for v in message.headers.values()] == [
        bool,
        bool,
        int,
        int,
        int,
        int,
        bytes,
        str,
        int,
        bytes,
        str,
        bytes,
    ]
    assert message.headers["uuid"] == bytes(range(16))
    assert message.headers["i64"] == -(2**63) and message.headers["ts"] == -1


def test_message_type_and_frame_fields(codec: ModuleType) -> None:
    class Tagged(codec.Message):  # type: ignore[name-defined,misc]
        __slots__ = ()

        def tag(self) -> str:
            return "tagged"

    frame = token_frame("abc")
    for chunk in (len(frame), 1):
        decoder = codec.Decoder(message_type=Tagged)
        messages = []
        for pos in range(0, len(frame), chunk):
            messages += decoder.feed(frame[pos : pos + chunk])
        [message] = messages
        assert type(message) is Tagged and message.tag() == "tagged"
        assert message.payload == b"abc"
        assert message._headers_length == struct.unpack(">I", frame[4:8])[0]
        assert message._crc == struct.unpack(">I", frame[-4:])[0]
    with pytest.raises(TypeError, match=r"^message_type must be Message or a subclass of it"):
        codec.Decoder(message_type=dict)
