"""Property tests (hypothesis): round trips, random chunkings, mutations, twin agreement."""

from __future__ import annotations

import uuid
import zlib
from types import ModuleType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstream

from frames import recrc

header_names = st.text(min_size=1, max_size=20).filter(
    lambda s: len(s.encode("utf-8", "surrogatepass")) <= 255
)
header_values = st.one_of(
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-128, 127).map(evstream.Int8),
    st.integers(-(2**15), 2**15 - 1).map(evstream.Int16),
    st.integers(-(2**63), 2**63 - 1).map(evstream.Int64),
    st.integers(-(2**63), 2**63 - 1).map(evstream.Timestamp),
    st.binary(max_size=64),
    st.text(max_size=64),
    st.uuids(),
)
headers_st = st.dictionaries(header_names, header_values, max_size=8)
messages_st = st.lists(st.tuples(headers_st, st.binary(max_size=300)), min_size=1, max_size=6)

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _valid(headers: dict[str, object]) -> bool:
    try:
        for name, value in headers.items():
            name.encode()
            if isinstance(value, str):
                value.encode()
    except UnicodeEncodeError:
        return False
    return True


@SETTINGS
@given(messages=messages_st, data=st.data())
def test_round_trip_any_chunking(
    codec: ModuleType, messages: list[tuple[dict[str, object], bytes]], data: st.DataObject
) -> None:
    messages = [(h, p) for h, p in messages if _valid(h)]
    stream = b"".join(codec.encode(h, p) for h, p in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder = codec.Decoder()
    decoded = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        decoded += decoder.feed(stream[previous:cut])
        previous = cut
    decoder.close()
    assert [(m.headers, m.payload) for m in decoded] == messages
    for message, (headers, _) in zip(decoded, messages):
        assert [type(v) for v in message.headers.values()] == [type(v) for v in headers.values()]
    assert b"".join(codec.encode(m.headers, m.payload) for m in decoded) == stream


def _outcome(codec: ModuleType, frame: bytes, chunk: int) -> object:
    decoder = codec.Decoder()
    messages = []
    try:
        for pos in range(0, len(frame), chunk):
            messages += decoder.feed(frame[pos : pos + chunk])
        decoder.close()
    except evstream.EventStreamError as exc:
        return [(m.headers, m.payload) for m in messages], type(exc), str(exc)
    return [(m.headers, m.payload) for m in messages]


@SETTINGS
@given(
    headers=headers_st,
    payload=st.binary(max_size=100),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    fix_crc=st.booleans(),
    chunk=st.integers(1, 64),
)
def test_mutated_frames_twins_agree(
    both_codecs: tuple[ModuleType, ModuleType],
    headers: dict[str, object],
    payload: bytes,
    edits: list[tuple[int, int]],
    fix_crc: bool,
    chunk: int,
) -> None:
    if not _valid(headers):
        return
    c, py = both_codecs
    frame = bytearray(py.encode(headers, payload))
    for where, value in edits:
        frame[where % len(frame)] = value
    mutated = recrc(bytes(frame)) if fix_crc and len(frame) >= 16 else bytes(frame)
    outcome = _outcome(py, mutated, chunk)
    assert _outcome(c, mutated, chunk) == outcome
    if isinstance(outcome, list):  # accepted: re-encoding gives back the same bytes
        assert b"".join(py.encode(h, p) for h, p in outcome) == mutated


@SETTINGS
@given(data=st.binary(max_size=300), chunk=st.integers(1, 32))
def test_random_bytes_twins_agree(
    both_codecs: tuple[ModuleType, ModuleType], data: bytes, chunk: int
) -> None:
    c, py = both_codecs
    assert _outcome(c, data, chunk) == _outcome(py, data, chunk)


@SETTINGS
@given(data=st.binary(max_size=2000), seed=st.integers(0, 2**32 - 1), offset=st.integers(0, 63))
def test_crc32_matches_zlib(codec: ModuleType, data: bytes, seed: int, offset: int) -> None:
    view = memoryview(bytes(offset) + data)[offset:]
    assert codec.crc32(view, seed) == zlib.crc32(data, seed)


def test_uuid_values_keep_their_type(codec: ModuleType) -> None:
    value = uuid.uuid4()
    assert codec.decode(codec.encode({"u": value}))[0].headers["u"] == value
