"""botocore as an oracle: what it decodes, evstream decodes the same; what it rejects, evstream rejects.

botocore's own quirks (PROTOCOL.md) are the documented exceptions: it leaks KeyError / struct.error /
UnicodeDecodeError and silently accepts truncated values, empty names and headers that run into the
payload; evstream raises an InvalidHeader or InvalidFrameLength error there instead.
"""

from __future__ import annotations

import uuid
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstream

from frames import recrc
from test_properties import _valid, headers_st

eventstream = pytest.importorskip("botocore.eventstream")

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def botocore_view(headers: dict[str, object]) -> dict[str, object]:
    """evstream's typed values as botocore gives them (timestamps as int ms, uuids as raw bytes)."""
    return {k: v.bytes if isinstance(v, uuid.UUID) else v for k, v in headers.items()}


def botocore_decode(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(data)
    return [(m.headers, m.payload) for m in buffer]


@SETTINGS
@given(messages=st.lists(st.tuples(headers_st, st.binary(max_size=200)), min_size=1, max_size=4))
def test_same_messages_as_botocore(
    codec: ModuleType, messages: list[tuple[dict[str, object], bytes]]
) -> None:
    stream = b"".join(codec.encode(h, p) for h, p in messages if _valid(h))
    ours = [(botocore_view(m.headers), m.payload) for m in codec.decode(stream)]
    assert ours == botocore_decode(stream)


def _equivalent(theirs: BaseException) -> type[BaseException] | tuple[type[BaseException], ...]:
    if isinstance(theirs, eventstream.ChecksumMismatch):
        return evstream.ChecksumMismatch
    if isinstance(theirs, eventstream.InvalidHeadersLength):
        return evstream.InvalidHeadersLength
    if isinstance(theirs, eventstream.InvalidPayloadLength):
        return evstream.InvalidPayloadLength
    if isinstance(theirs, eventstream.DuplicateHeader):
        # or an earlier header botocore let through (an empty name, a truncated value)
        return evstream.InvalidHeader
    # botocore's leaks: KeyError (unknown type), struct.error (also on impossible lengths),
    # UnicodeDecodeError.
    assert not isinstance(theirs, eventstream.ParserError)
    return (evstream.InvalidHeader, evstream.InvalidFrameLength)


@SETTINGS
@given(
    headers=headers_st,
    payload=st.binary(max_size=64),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=3),
    fix_crc=st.booleans(),
)
def test_rejections_match_botocore(
    codec: ModuleType, headers: dict[str, object], payload: bytes, edits: list[tuple[int, int]], fix_crc: bool
) -> None:
    if not _valid(headers):
        return
    frame = bytearray(codec.encode(headers, payload))
    for where, value in edits:
        frame[where % len(frame)] = value
    data = recrc(bytes(frame)) if fix_crc else bytes(frame)
    try:
        theirs: object = botocore_decode(data)
    except Exception as exc:  # botocore raises more than ParserError: that is the point
        theirs = exc
    decoder = codec.Decoder()
    try:
        ours: object = [(botocore_view(m.headers), m.payload) for m in decoder.feed(data)]
    except evstream.EventStreamError as exc:
        ours = exc
    if isinstance(ours, evstream.InvalidFrameLength):
        # Impossible lengths (total < 16, headers past the frame): botocore does not check them and
        # fails later on whatever it misreads, or waits for bytes that never belong to the frame.
        return
    if isinstance(theirs, BaseException):
        assert isinstance(ours, _equivalent(theirs)), (theirs, ours)
    elif isinstance(ours, evstream.EventStreamError):
        # botocore accepted what evstream rejects: only its documented leniencies.
        assert isinstance(ours, evstream.InvalidHeader), (theirs, ours)
        assert not isinstance(ours, (evstream.DuplicateHeader, evstream.ChecksumMismatch))
    else:
        # botocore yields only complete frames; the rest stays buffered in both.
        assert ours == theirs


def test_known_botocore_leaks_become_typed_errors(codec: ModuleType) -> None:
    from frames import header, raw_frame

    for block in (
        header(b"a", 10),
        header(b"a", 4, b"\0"),
        header(b"a", 7, b"\0\x01\xff"),
        header(b"a", 7, b"\0\x09ab"),
    ):
        frame = raw_frame(block)
        with pytest.raises(evstream.InvalidHeader):
            codec.decode(frame)
