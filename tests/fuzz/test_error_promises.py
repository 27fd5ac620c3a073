"""Errors keep their promises, beyond tests/test_decoder.py.

For every kind of error, in both implementations, immediate or deferred behind good messages:
the decoder stays failed and feed()/close() re-raise the very same object, even for valid input or
a non-buffer argument; close() on a partial frame raises TruncatedStream with the right fields; the
twins raise the same class and message; and whole families of damaged frames (every prefix, every
header byte set to interesting values behind correct CRCs) raise only EventStreamError.
"""

from __future__ import annotations

import pickle
import struct
from types import ModuleType
from typing import Any

import pytest

import evstream

from frames import header, raw_frame, recrc, string_header, token_frame

GOOD = token_frame("good")
BAD_MESSAGE_CRC = bytearray(token_frame("bad"))
BAD_MESSAGE_CRC[-1] ^= 1

ALL_TYPES = (
    header(b"t", 0)
    + header(b"f", 1)
    + header(b"i8", 2, b"\x80")
    + header(b"i16", 3, b"\x80\x00")
    + header(b"i32", 4, b"\x80\0\0\0")
    + header(b"i64", 5, b"\x80" + b"\0" * 7)
    + header(b"b", 6, b"\0\x02\xff\x00")
    + header(b"s", 7, b"\0\x03abc")
    + header(b"ts", 8, struct.pack(">q", -5))
    + header(b"u", 9, bytes(range(16)))
)

# (id, bytes that fail, error class); each is a complete bad frame or a bad prelude
FAILURES = [
    ("prelude-crc", raw_frame(b"", b"x", prelude_crc=1), evstream.PreludeChecksumMismatch),
    ("message-crc", bytes(BAD_MESSAGE_CRC), evstream.MessageChecksumMismatch),
    ("frame-too-short", raw_frame(total_length=15), evstream.InvalidFrameLength),
    (
        "headers-dont-fit",
        raw_frame(b"\0" * 4, total_length=20, headers_length=5),
        evstream.InvalidFrameLength,
    ),
    (
        "payload-limit",
        raw_frame(total_length=16 + evstream.DEFAULT_MAX_PAYLOAD_LENGTH + 1)[:12],
        evstream.InvalidPayloadLength,
    ),
    (
        "headers-limit",
        raw_frame(
            total_length=16 + evstream.DEFAULT_MAX_HEADERS_LENGTH + 1,
            headers_length=evstream.DEFAULT_MAX_HEADERS_LENGTH + 1,
        )[:12],
        evstream.InvalidHeadersLength,
    ),
    ("duplicate", raw_frame(header(b"a", 0) + header(b"a", 0)), evstream.DuplicateHeader),
    ("unknown-type", raw_frame(header(b"a", 42)), evstream.UnknownHeaderType),
    ("bad-name", raw_frame(header(b"", 0)), evstream.InvalidHeaderName),
    ("bad-value", raw_frame(header(b"a", 7, b"\0\x09abc")), evstream.InvalidHeaderValue),
]
IDS = [f[0] for f in FAILURES]


def assert_stays_failed(decoder: Any, error: BaseException) -> None:
    for again in (
        lambda: decoder.feed(b""),
        lambda: decoder.feed(GOOD),
        lambda: decoder.feed(bytearray(GOOD)),
        lambda: decoder.feed("not a buffer"),  # the stored error wins over the type check
        decoder.close,
        decoder.close,
    ):
        with pytest.raises(evstream.EventStreamError) as info:
            again()
        assert info.value is error


@pytest.mark.parametrize(("name", "bad", "error"), FAILURES, ids=IDS)
def test_error_at_once_then_stays_failed(codec: ModuleType, name: str, bad: bytes, error: type) -> None:
    decoder = codec.Decoder()
    with pytest.raises(error) as info:
        decoder.feed(bad)
    assert type(info.value) is error
    assert_stays_failed(decoder, info.value)


@pytest.mark.parametrize(("name", "bad", "error"), FAILURES, ids=IDS)
def test_error_deferred_behind_messages(codec: ModuleType, name: str, bad: bytes, error: type) -> None:
    decoder = codec.Decoder()
    messages = decoder.feed(GOOD + GOOD + bad + GOOD)
    assert [m.payload for m in messages] == [b"good", b"good"]
    with pytest.raises(error) as info:
        decoder.close()  # close() raises the deferred error, not TruncatedStream
    assert_stays_failed(decoder, info.value)


@pytest.mark.parametrize(("name", "bad", "error"), FAILURES, ids=IDS)
def test_error_bytewise_same_as_whole(
    both_codecs: tuple[ModuleType, ModuleType], name: str, bad: bytes, error: type
) -> None:
    seen = []
    for codec in both_codecs:
        for chunking in ("whole", "bytewise"):
            decoder = codec.Decoder()
            with pytest.raises(error) as info:
                if chunking == "whole":
                    decoder.feed(GOOD + bad)
                    decoder.close()
                else:
                    for i in range(len(GOOD + bad)):
                        decoder.feed((GOOD + bad)[i : i + 1])
            seen.append((type(info.value), str(info.value)))
    assert len(set(seen)) == 1, seen


@pytest.mark.parametrize(("name", "bad", "error"), FAILURES, ids=IDS)
def test_errors_pickle(codec: ModuleType, name: str, bad: bytes, error: type) -> None:
    with pytest.raises(error) as info:
        codec.decode(bad)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is type(info.value) and str(copy) == str(info.value)
    assert copy.__dict__ == info.value.__dict__


def test_error_fields(codec: ModuleType) -> None:
    with pytest.raises(evstream.MessageChecksumMismatch) as crc:
        codec.decode(bytes(BAD_MESSAGE_CRC))
    assert crc.value.expected == struct.unpack(">I", BAD_MESSAGE_CRC[-4:])[0]
    assert crc.value.calculated == struct.unpack(">I", token_frame("bad")[-4:])[0]
    with pytest.raises(evstream.InvalidPayloadLength) as limit:
        codec.Decoder(max_payload_length=3).feed(raw_frame(b"", b"four"))
    assert (limit.value.length, limit.value.limit) == (4, 3)
    assert isinstance(limit.value, evstream.InvalidLength) and isinstance(limit.value, ValueError)


@pytest.mark.parametrize("cut", [1, 11, 12, 13, len(GOOD) - 1])
def test_close_on_partial_frame_after_messages(codec: ModuleType, cut: int) -> None:
    decoder = codec.Decoder()
    assert len(decoder.feed(GOOD + GOOD[:cut])) == 1
    with pytest.raises(evstream.TruncatedStream) as info:
        decoder.close()
    assert info.value.buffered == cut
    assert info.value.expected == (len(GOOD) if cut >= 12 else None)
    assert_stays_failed(decoder, info.value)


def test_close_on_clean_boundary_keeps_decoder_usable(codec: ModuleType) -> None:
    decoder = codec.Decoder()
    for _ in range(3):
        assert len(decoder.feed(GOOD)) == 1
        decoder.close()
        decoder.close()
    assert decoder.feed(b"") == []


def _outcome(codec: ModuleType, data: bytes) -> Any:
    try:
        return [(m.headers, m.payload) for m in codec.decode(data)]
    except evstream.EventStreamError as exc:
        return (type(exc), str(exc))
    # anything else propagates and fails the test


def test_every_prefix_raises_only_typed_errors(both_codecs: tuple[ModuleType, ModuleType]) -> None:
    c, py = both_codecs
    stream = raw_frame(ALL_TYPES, b"payload") + GOOD
    for end in range(len(stream) + 1):
        expected = _outcome(c, stream[:end])
        assert expected == _outcome(py, stream[:end]), end
        if end not in (0, len(stream) - len(GOOD), len(stream)):
            assert expected[0] is evstream.TruncatedStream, (end, expected)


def test_every_header_byte_behind_correct_crcs(both_codecs: tuple[ModuleType, ModuleType]) -> None:
    # Each byte of the headers block (and the headers_length) set to interesting values, CRCs fixed:
    # the twins agree, and nothing but EventStreamError comes out.
    c, py = both_codecs
    frame = raw_frame(ALL_TYPES, b"p")
    accepted = rejected = 0
    for i in list(range(4, 8)) + list(range(12, 12 + len(ALL_TYPES))):
        for value in (0, 1, 2, 5, 6, 7, 8, 9, 10, 0x7F, 0x80, 0xFF, frame[i] ^ 1):
            mutated = bytearray(frame)
            mutated[i] = value
            data = recrc(bytes(mutated))
            outcome = _outcome(c, data)
            assert outcome == _outcome(py, data), (i, value)
            if isinstance(outcome, list):
                accepted += 1
                [(headers, payload)] = outcome
                assert c.encode(headers, payload) == data == py.encode(headers, payload)
            else:
                rejected += 1
    assert accepted > 50 and rejected > 200, (accepted, rejected)


def test_limits_are_inclusive_and_zero_is_allowed(codec: ModuleType) -> None:
    empty = raw_frame()
    assert len(codec.Decoder(max_payload_length=0, max_headers_length=0).feed(empty)) == 1
    with pytest.raises(evstream.InvalidPayloadLength):
        codec.Decoder(max_payload_length=0).feed(raw_frame(b"", b"x"))
    with pytest.raises(evstream.InvalidHeadersLength):
        codec.Decoder(max_headers_length=0).feed(raw_frame(header(b"a", 0)))
    block = string_header("h", "v")
    assert codec.Decoder(max_headers_length=len(block)).feed(raw_frame(block))
