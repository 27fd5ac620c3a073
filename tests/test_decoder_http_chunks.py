"""The decoder's fast path for chunked response bodies (``Decoder._http_chunks``), both codecs.

What it takes must be exactly what the general path (the response-body reader, without the fast path)
makes of the same bytes; where it stops, the general path goes on, so every error keeps its class and
its place. It never changes the decoder's state.
"""

from __future__ import annotations

import json
import random
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frames import raw_frame, string_header, token_frame

pytest.importorskip("botocore", reason="the response-body reader comes with the client extra")
import evstream
from evstream.sagemaker import reader as body_reader
from evstream.sagemaker.operations import BEDROCK, SAGEMAKER

SLICE, BATCH = body_reader.SLICE, body_reader.BATCH
BOTO = ("PayloadPart", "PayloadPart", "Bytes", None, SLICE, BATCH)
RAW = ("PayloadPart", None, "Bytes", None, SLICE, BATCH)


def chunk(data: bytes, size: str | None = None) -> bytes:
    return (size if size is not None else f"{len(data):x}").encode() + b"\r\n" + data + b"\r\n"


def event(name: str = "PayloadPart", text: bytes = b"tok") -> bytes:
    headers = string_header(":event-type", name) + string_header(":message-type", "event")
    return raw_frame(headers, text)


def error_frame() -> bytes:
    headers = string_header(":message-type", "exception") + string_header(
        ":exception-type", "ModelStreamError"
    )
    return raw_frame(headers, b'{"Message": "boom"}')


def take(decoder: Any, data: bytes, quick: tuple[Any, ...] = BOTO, pos: int = 0) -> tuple[list[Any], int]:
    """(events, where they end): what the fast path takes of ``data`` from ``pos``."""
    events: list[Any] = []
    return events, decoder._http_chunks(data, pos, events, *quick)


def without_fast_path(reader: Any) -> Any:
    reader._quick = None
    reader._at_boundary = False
    return reader


def general(data: bytes, boto_shape: bool, operation: Any = SAGEMAKER) -> list[Any]:
    """What the reader's general path makes of ``data`` (whole chunks, no last chunk)."""
    reader = without_fast_path(body_reader.BodyReader(operation, boto_shape=boto_shape))
    events = reader.feed(data)
    while reader.pending:
        events += reader.feed(b"")
    return events


def test_whole_chunks_of_data_events(codec: ModuleType) -> None:
    data = b"".join(chunk(event(text=b"t%d" % i)) for i in range(5))
    data += chunk(event(text=b"a") + event(text=b"b"))  # two frames in one chunk
    decoder = codec.Decoder()
    events, used = take(decoder, data)
    assert used == len(data)
    assert events == general(data, True)
    assert [e["PayloadPart"]["Bytes"] for e in events] == [b"t0", b"t1", b"t2", b"t3", b"t4", b"a", b"b"]
    raw, used = take(decoder, data, RAW)
    assert raw == [b"t0", b"t1", b"t2", b"t3", b"t4", b"a", b"b"] and used == len(data)


@pytest.mark.parametrize(
    "stopper",
    [
        pytest.param(chunk(event("SomethingElse")), id="another event"),
        pytest.param(chunk(error_frame()), id="an error"),
        pytest.param(b"0\r\n\r\n", id="the last chunk"),
        pytest.param(chunk(event(), size=f"{len(event()):x};ext=1"), id="an extension"),
        pytest.param(chunk(event(), size=f"{len(event()):x} "), id="whitespace"),
        pytest.param(chunk(event(), size="0" * 16 + f"{len(event()):x}"), id="17 digits"),
        pytest.param(chunk(event())[:-1], id="a cut chunk"),
        pytest.param(chunk(event())[:-2] + b"\n\r", id="a bad chunk end"),
        pytest.param(chunk(event()[:-3]), id="a frame across chunks"),
        pytest.param(chunk(event() + event()[:5]), id="a cut frame"),
        pytest.param(chunk(event()[:-1] + b"\x00"), id="a bad message CRC"),
        pytest.param(chunk(b"\x00" * 12 + event()[12:]), id="a bad prelude"),
        pytest.param(chunk(raw_frame(b"\x05:even\x09", b"x")), id="a bad header type"),
        pytest.param(chunk(b"x" * (SLICE + 1)), id="over the largest chunk"),
        pytest.param(b"zz\r\n", id="not hex"),
    ],
)
def test_stops_before_anything_else(codec: ModuleType, stopper: bytes) -> None:
    head = chunk(event(text=b"first")) + chunk(event(text=b"second"))
    decoder = codec.Decoder()
    events, used = take(decoder, head + stopper + chunk(event()))
    assert used == len(head)
    assert events == general(head, True)
    assert decoder.buffered == 0 and decoder.error is None


def test_starts_where_told(codec: ModuleType) -> None:
    one = chunk(event(text=b"a"))
    data = b"junk" + one + one
    assert take(codec.Decoder(), data, pos=4) == ([{"PayloadPart": {"Bytes": b"a"}}] * 2, len(data))
    assert take(codec.Decoder(), data, pos=len(data)) == ([], len(data))
    for pos in (-1, len(data) + 1):
        with pytest.raises(ValueError):
            take(codec.Decoder(), data, pos=pos)


def test_keeps_to_the_limit_at_chunk_boundaries(codec: ModuleType) -> None:
    data = b"".join(chunk(event() * 3) for _ in range(10))
    events, used = take(codec.Decoder(), data, ("PayloadPart", None, "Bytes", None, SLICE, 7))
    assert len(events) == 9  # three whole chunks: the limit is checked between chunks
    assert used == 3 * len(chunk(event() * 3))


def test_nothing_on_a_decoder_inside_a_frame_or_failed(codec: ModuleType) -> None:
    data = chunk(event())
    decoder = codec.Decoder()
    decoder.feed(event()[:7])
    assert take(decoder, data) == ([], 0)
    failed = codec.Decoder()
    with pytest.raises(evstream.PreludeChecksumMismatch):
        failed.feed(b"\x00" * 16)
    assert take(failed, data) == ([], 0)


def test_bedrock_payloads_are_decoded(codec: ModuleType) -> None:
    body = json.dumps({"bytes": "aGVsbG8="}).encode()
    frame = raw_frame(string_header(":event-type", "chunk") + string_header(":message-type", "event"), body)
    data = chunk(frame) + chunk(frame)
    quick = (BEDROCK.event_type, BEDROCK.outer, BEDROCK.inner, BEDROCK.decode, SLICE, BATCH)
    events, used = take(codec.Decoder(), data, quick)
    assert used == len(data)
    assert events == general(data, True, BEDROCK) == [{"chunk": {"bytes": b"hello"}}] * 2
    bad = raw_frame(string_header(":event-type", "chunk"), b"not json")
    events, used = take(codec.Decoder(), data + chunk(bad), quick)
    assert used == len(data)  # the general path raises the decoding error


def test_only_plain_headers_are_judged(both_codecs: tuple[ModuleType, ModuleType]) -> None:
    """Non-ASCII names or values, or more than 16 headers: left to the general path, in both codecs."""
    event_type = string_header(":event-type", "PayloadPart")
    for extra in (
        string_header("x-note", "caf\u00e9"),
        string_header("caf\u00e9", "x"),
        b"".join(string_header(f"h{i}", "v") for i in range(16)),
    ):
        data = chunk(raw_frame(event_type + extra, b"x"))
        assert [take(codec.Decoder(), data, BOTO) for codec in both_codecs] == [([], 0)] * 2
        assert general(data, True) == [{"PayloadPart": {"Bytes": b"x"}}]
    many = b"".join(string_header(f"h{i}", "v") for i in range(15))
    data = chunk(raw_frame(event_type + many, b"x"))
    assert [take(codec.Decoder(), data, BOTO)[1] for codec in both_codecs] == [len(data)] * 2


def test_every_header_type_beside_the_event_type(both_codecs: tuple[ModuleType, ModuleType]) -> None:
    block = string_header(":event-type", "PayloadPart")
    for type_byte, value in [
        (0, b""),
        (1, b""),
        (2, b"\x01"),
        (3, b"\x00\x02"),
        (4, bytes(4)),
        (5, bytes(8)),
    ]:
        block += bytes([2, 104, 48 + type_byte, type_byte]) + value
    block += b"\x02h6\x06\x00\x03\xff\x00\x01" + b"\x02h8\x08" + bytes(8) + b"\x02h9\x09" + bytes(16)
    block += string_header(":message-type", "event")
    data = chunk(raw_frame(block, b"p"))
    for codec in both_codecs:
        assert take(codec.Decoder(), data, BOTO) == ([{"PayloadPart": {"Bytes": b"p"}}], len(data))
    assert general(data, True) == [{"PayloadPart": {"Bytes": b"p"}}]


WIDTHS = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # fixed-width header values by type byte


@settings(max_examples=400, deadline=None)
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from([":event-type", ":message-type", "x", "y", "\u00e9"]),
            st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            st.binary(max_size=20),
            st.booleans(),
        ),
        max_size=3,
    ),
    event_value=st.sampled_from([b"PayloadPart", b"Payload", b"PayloadPart\xc3\xa9"]),
)
def test_random_header_blocks(
    both_codecs: tuple[ModuleType, ModuleType],
    headers: list[tuple[str, int, bytes, bool]],
    event_value: bytes,
) -> None:
    """Any header block, valid or not: the fast path takes the frame only where the general path
    makes a data event of it, and both codecs take the same frames."""
    block = string_header(":event-type", event_value.decode())
    for name, type_byte, value, well_formed in headers:
        raw = name.encode()
        if type_byte in (6, 7):
            if well_formed and type_byte == 7:
                value = bytes(b & 0x7F for b in value)
            value = len(value).to_bytes(2, "big") + value
        elif well_formed and type_byte in WIDTHS:
            value = (value + bytes(16))[: WIDTHS[type_byte]]
        block += bytes([len(raw)]) + raw + bytes([type_byte]) + value
    data = chunk(raw_frame(block, b"p"))
    results = [take(codec.Decoder(), data, BOTO) for codec in both_codecs]
    assert results[0] == results[1]
    if results[0][1]:
        assert results[0][0] == general(data, True) == [{"PayloadPart": {"Bytes": b"p"}}]
    else:
        assert results[0][0] == []


PIECES = [
    chunk(event(text=b"x")),
    chunk(event(text=b"y") + event(text=b"z")),
    chunk(token_frame("t")),
    chunk(event("Other")),
    chunk(error_frame()),
    chunk(event(), size=f"{len(event()):x};a=b"),
]


@settings(max_examples=300, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(PIECES) - 1), max_size=12),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=2),
    cut=st.integers(0, 10_000),
)
def test_differential_against_the_general_path(
    both_codecs: tuple[ModuleType, ModuleType], picks: list[int], flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(b"".join(PIECES[i] for i in picks))
    for at, xor in flips:
        if data:
            data[at % len(data)] ^= xor
    data = bytes(data[: cut % (len(data) + 1)])
    results = [take(codec.Decoder(), data, BOTO) for codec in both_codecs]
    assert results[0] == results[1]  # the C and Python codecs agree exactly
    events, used = results[0]
    if used:
        assert events == general(data[:used], True)


def test_random_streams_read_the_same_with_and_without_it(codec: ModuleType, monkeypatch: Any) -> None:
    monkeypatch.setattr(body_reader, "Decoder", codec.Decoder)
    rng = random.Random(7)
    for _ in range(50):
        # Data events, an ignored event, a chunk with an extension: piece -> the data events in it.
        kinds = {0: 1, 1: 2, 2: 1, 3: 0, 5: 1}
        picks = [rng.choice(list(kinds)) for _ in range(rng.randrange(1, 40))]
        data = b"".join(PIECES[i] for i in picks) + b"0\r\n\r\n"
        fast = body_reader.BodyReader(SAGEMAKER, boto_shape=True)
        slow = without_fast_path(body_reader.BodyReader(SAGEMAKER, boto_shape=True))
        pos, got, expected = 0, [], []
        while pos < len(data):
            step = rng.randrange(1, 200)
            for reader, out in ((fast, got), (slow, expected)):
                out += reader.feed(data[pos : pos + step])
                while reader.pending:
                    out += reader.feed(b"")
            pos += step
        fast.eof()
        slow.eof()
        assert got == expected and fast.done and slow.done
        assert len(got) == sum(kinds[i] for i in picks)
