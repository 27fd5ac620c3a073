"""evstream.botocore: the drop-in for botocore's EventStreamBuffer, checked against botocore itself.

botocore's own buffer is the oracle for every valid frame (same prelude, headers with the same types,
payload, crc) and for the errors it types; where it leaks KeyError / struct.error / UnicodeDecodeError or
accepts a broken frame, the test pins that behaviour and checks the drop-in raises a ParserError subclass.
Every test runs against both codec implementations.
"""

from __future__ import annotations

import datetime
import pickle
import struct
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import evstream

from frames import header, raw_frame, string_header, token_frame

eventstream = pytest.importorskip("botocore.eventstream")
import botocore  # noqa: E402
import botocore.exceptions  # noqa: E402
import botocore.parsers  # noqa: E402
import botocore.session  # noqa: E402

import evstream.botocore as eb  # noqa: E402

UUID = uuid.UUID("0123456789abcdef0123456789abcdef")
STAMP = 1_700_000_000_123


def typed_frames(codec: ModuleType) -> list[bytes]:
    """Valid frames covering every header type, empty parts, errors and a payload larger than a chunk."""
    frames = [
        raw_frame(),
        raw_frame(b"", b"{'foo':'bar'}"),
        raw_frame(string_header("content-type", "application/json"), b"{'foo':'bar'}"),
        codec.encode({"t": True, "f": False}),
        codec.encode({"byte": evstream.Int8(-1), "short": evstream.Int16(-2), "integer": -3}),
        codec.encode({"long": evstream.Int64(-(2**40)), "ts": evstream.Timestamp(STAMP)}),
        codec.encode({"id": UUID, "raw": b"\x00\xff", "text": "h\u00e9llo \u2603"}, b"x"),
        codec.encode({":message-type": "error", ":error-code": "code", ":error-message": "message"}),
        codec.encode({":message-type": "exception", ":exception-type": "ModelStreamError"}, b"{}"),
        codec.encode({":event-type": "PayloadPart"}, bytes(range(256)) * 300),
        token_frame(" Deep"),
    ]
    return frames


def botocore_messages(data: bytes) -> list[Any]:
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def shape(message: Any) -> tuple[Any, ...]:
    """Everything botocore's message exposes, with the exact type of every header value."""
    prelude = message.prelude
    return (
        prelude.total_length,
        prelude.headers_length,
        prelude.crc,
        prelude.payload_length,
        prelude.payload_end,
        prelude.headers_end,
        [(name, type(value), value) for name, value in message.headers.items()],
        message.payload,
        message.crc,
        message.to_response_dict(),
        message.to_response_dict(status_code=204),
    )


@pytest.fixture
def buffer(codec: ModuleType) -> eb.EventStreamBuffer:
    return eb.EventStreamBuffer(codec=codec)


# ------------------------------------------------------------------------------------------ positive


def test_every_frame_decodes_as_botocore_decodes_it(codec: ModuleType) -> None:
    for frame in typed_frames(codec):
        buffer = eb.EventStreamBuffer(codec=codec)
        buffer.add_data(frame)
        ours = list(buffer)
        assert len(ours) == 1
        assert isinstance(ours[0], eventstream.EventStreamMessage)
        assert shape(ours[0]) == shape(botocore_messages(frame)[0])


def test_prelude_and_crc_are_the_wire_values(codec: ModuleType) -> None:
    # Independent of botocore: read straight from the frame bytes.
    for frame in typed_frames(codec):
        buffer = eb.EventStreamBuffer(codec=codec)
        buffer.add_data(frame)
        (message,) = buffer
        total, headers_length, prelude_crc = struct.unpack(">III", frame[:12])
        assert (message.prelude.total_length, message.prelude.headers_length) == (total, headers_length)
        assert message.prelude.crc == prelude_crc
        assert message.crc == struct.unpack(">I", frame[-4:])[0]
        assert message.prelude.payload_length == len(message.payload) == total - headers_length - 16
        assert frame[message.prelude.headers_end : message.prelude.payload_end] == message.payload


def test_header_values_have_botocores_types(buffer: eb.EventStreamBuffer, codec: ModuleType) -> None:
    buffer.add_data(
        codec.encode(
            {"ts": evstream.Timestamp(STAMP), "id": UUID, "b": evstream.Int8(-1), "l": evstream.Int64(7)}
        )
    )
    (message,) = buffer
    assert message.headers == {"ts": STAMP, "id": UUID.bytes, "b": -1, "l": 7}
    assert [type(v) for v in message.headers.values()] == [int, bytes, int, int]


def test_all_frames_in_one_buffer(buffer: eb.EventStreamBuffer, codec: ModuleType) -> None:
    stream = b"".join(typed_frames(codec))
    buffer.add_data(stream)
    assert [shape(m) for m in buffer] == [shape(m) for m in botocore_messages(stream)]


def test_to_response_dict_status(buffer: eb.EventStreamBuffer, codec: ModuleType) -> None:
    for kind, status in (("event", 200), ("error", 400), ("exception", 400)):
        buffer.add_data(codec.encode({":message-type": kind}, b"body"))
        (message,) = buffer
        response = message.to_response_dict()
        assert response == {"status_code": status, "headers": {":message-type": kind}, "body": b"body"}
        assert response["headers"] is message.headers


def test_message_built_like_botocores() -> None:
    prelude = eventstream.MessagePrelude(16, 0, 0x05C248EB)
    message = eb.EventStreamMessage(prelude, {}, b"", 0x7D98C8FF)
    assert message.prelude is prelude
    assert (message.crc, message.headers, message.payload) == (0x7D98C8FF, {}, b"")
    message.crc = 1
    assert message.crc == 1


# ----------------------------------------------------------------------------- partial and iteration


def test_split_at_every_offset(codec: ModuleType) -> None:
    frames = [raw_frame(), token_frame("a"), codec.encode({"id": UUID}, b"xyz"), token_frame("bc")]
    stream = b"".join(frames)
    ends = [sum(map(len, frames[: i + 1])) for i in range(len(frames))]
    expected = [shape(m) for m in botocore_messages(stream)]
    for cut in range(len(stream) + 1):
        buffer = eb.EventStreamBuffer(codec=codec)
        buffer.add_data(stream[:cut])
        first = [shape(m) for m in buffer]
        assert first == expected[: sum(end <= cut for end in ends)]
        buffer.add_data(stream[cut:])
        assert first + [shape(m) for m in buffer] == expected


def test_byte_at_a_time_stops_until_complete(buffer: eb.EventStreamBuffer) -> None:
    frame = token_frame("tok")
    for i in range(len(frame) - 1):
        buffer.add_data(frame[i : i + 1])
        with pytest.raises(StopIteration):
            buffer.next()
    buffer.add_data(frame[-1:])
    assert next(buffer).payload == b"tok"
    with pytest.raises(StopIteration):
        next(buffer)


def test_next_and_iteration_share_one_queue(buffer: eb.EventStreamBuffer) -> None:
    buffer.add_data(b"".join(token_frame(t) for t in "abcd"))
    assert buffer.next().payload == b"a"
    for message in buffer:
        assert message.payload == b"b"
        break  # the rest stays queued
    assert buffer.__next__().payload == b"c"
    assert [m.payload for m in buffer] == [b"d"]
    assert list(buffer) == []


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_add_data_takes_any_buffer(buffer: eb.EventStreamBuffer, kind: type) -> None:
    stream = token_frame("one") + token_frame("two")
    cut = len(stream) - 5
    head = bytearray(stream[:cut])
    buffer.add_data(kind(head))
    # botocore copies on add_data; a caller reusing its buffer must not change what was decoded.
    head[:] = b"\xff" * len(head)
    buffer.add_data(kind(stream[cut:]))
    assert [m.payload for m in buffer] == [b"one", b"two"]


def test_add_data_rejects_str_like_botocore(buffer: eb.EventStreamBuffer) -> None:
    with pytest.raises(TypeError):
        eventstream.EventStreamBuffer().add_data("text")
    with pytest.raises(TypeError):
        buffer.add_data("text")


def test_close_reports_a_cut_stream(buffer: eb.EventStreamBuffer) -> None:
    frame = token_frame("x")
    buffer.add_data(frame + frame[:20])
    assert [m.payload for m in buffer] == [b"x"]
    with pytest.raises(eb.TruncatedStream) as info:
        buffer.close()
    assert isinstance(info.value, (eventstream.ParserError, evstream.TruncatedStream))
    assert info.value.buffered == 20


def test_close_on_a_frame_boundary(buffer: eb.EventStreamBuffer) -> None:
    buffer.add_data(token_frame("x"))
    buffer.close()
    assert [m.payload for m in buffer] == [b"x"]


# ------------------------------------------------------------------------------------------ negative


def _prelude_only(total: int, headers_length: int) -> bytes:
    return raw_frame(total_length=total, headers_length=headers_length)[:12]


NEGATIVE = {
    # name: (frame, botocore's class, evstream's class)
    "prelude-crc": (
        raw_frame(b"", b"{}", prelude_crc=1),
        eventstream.ChecksumMismatch,
        evstream.PreludeChecksumMismatch,
    ),
    "corrupted-length": (
        b"\x01" + raw_frame(b"", b"{'foo':'bar'}")[1:],
        eventstream.ChecksumMismatch,
        evstream.PreludeChecksumMismatch,
    ),
    "message-crc": (
        raw_frame(b"", b"{}", message_crc=1),
        eventstream.ChecksumMismatch,
        evstream.MessageChecksumMismatch,
    ),
    "corrupted-header": (
        raw_frame(
            string_header("content-type", "json"), message_crc=struct.unpack(">I", raw_frame()[-4:])[0]
        ),
        eventstream.ChecksumMismatch,
        evstream.MessageChecksumMismatch,
    ),
    "duplicate": (
        raw_frame(string_header("test", "asdf") * 2),
        eventstream.DuplicateHeader,
        evstream.DuplicateHeader,
    ),
    "headers-limit": (
        _prelude_only(16 + 128 * 1024 + 1, 128 * 1024 + 1),
        eventstream.InvalidHeadersLength,
        evstream.InvalidHeadersLength,
    ),
    "payload-limit": (
        _prelude_only(16 + 24 * 1024 * 1024 + 1, 0),
        eventstream.InvalidPayloadLength,
        evstream.InvalidPayloadLength,
    ),
}


@pytest.mark.parametrize("name", list(NEGATIVE))
def test_negative_frames(buffer: eb.EventStreamBuffer, name: str) -> None:
    frame, theirs, ours = NEGATIVE[name]
    with pytest.raises(theirs):
        botocore_messages(frame)  # the oracle agrees this frame is bad, and how
    good = token_frame("ok")
    buffer.add_data(good + frame)  # never raises: botocore raises from next()
    assert buffer.next().payload == b"ok"
    for _ in range(2):  # and again on every later call
        with pytest.raises(theirs) as info:
            buffer.next()
        assert isinstance(info.value, ours)
        assert isinstance(info.value, eb.ParserError)
    buffer.add_data(good)
    with pytest.raises(theirs):
        list(buffer)


def test_bad_frame_after_good_ones_in_one_iteration(buffer: eb.EventStreamBuffer) -> None:
    buffer.add_data(token_frame("a") + token_frame("b") + raw_frame(b"", b"{}", message_crc=1))
    seen = []
    with pytest.raises(eventstream.ChecksumMismatch):
        for message in buffer:
            seen.append(message.payload)
    assert seen == [b"a", b"b"]


def test_limits_can_be_set(codec: ModuleType) -> None:
    buffer = eb.EventStreamBuffer(codec=codec, max_payload_length=4, max_headers_length=3)
    buffer.add_data(raw_frame(b"", b"12345"))
    with pytest.raises(eventstream.InvalidPayloadLength) as info:
        buffer.next()
    assert (info.value.length, info.value.limit) == (5, 4)
    buffer = eb.EventStreamBuffer(codec=codec, max_headers_length=3)
    buffer.add_data(raw_frame(header(b"ab", 0)))
    with pytest.raises(eventstream.InvalidHeadersLength):
        buffer.next()


# Frames botocore does not reject with a ParserError: it leaks a raw exception (the class given) or
# returns a message (None). The drop-in raises the evstream/ParserError class given instead.
LEAKS = {
    "unknown-type": (raw_frame(header(b"a", 10)), KeyError, eb.UnknownHeaderType),
    "truncated-int32": (raw_frame(header(b"a", 4, b"\0")), struct.error, eb.InvalidHeaderValue),
    "truncated-int64": (raw_frame(header(b"a", 5, b"\0\0\0")), struct.error, eb.InvalidHeaderValue),
    "missing-type": (raw_frame(b"\x01a"), struct.error, eb.InvalidHeaderValue),
    "bad-utf8-value": (raw_frame(header(b"a", 7, b"\0\x01\xff")), UnicodeDecodeError, eb.InvalidHeaderValue),
    "bad-utf8-name": (raw_frame(header(b"\xff", 0)), UnicodeDecodeError, eb.InvalidHeaderName),
    "truncated-string": (raw_frame(header(b"a", 7, b"\0\x09ab")), None, eb.InvalidHeaderValue),
    "truncated-bytes": (raw_frame(header(b"a", 6, b"\0\x09ab")), None, eb.InvalidHeaderValue),
    "truncated-uuid": (raw_frame(header(b"a", 9, b"12345")), None, eb.InvalidHeaderValue),
    "empty-name": (raw_frame(b"\x00\x00"), None, eb.InvalidHeaderName),
    "headers-past-frame": (raw_frame(headers_length=8), struct.error, eb.InvalidFrameLength),
    "total-under-16": (_prelude_only(12, 0), None, eb.InvalidFrameLength),
    "total-zero": (_prelude_only(0, 0), struct.error, eb.InvalidFrameLength),
}


@pytest.mark.parametrize("name", list(LEAKS))
def test_botocore_leaks_become_parser_errors(buffer: eb.EventStreamBuffer, name: str) -> None:
    frame, leaked, ours = LEAKS[name]
    if leaked is None:
        assert len(botocore_messages(frame)) == 1  # accepted: a message that is not on the wire
    else:
        with pytest.raises(leaked) as theirs:
            botocore_messages(frame)
        assert not isinstance(theirs.value, eventstream.ParserError)
    buffer.add_data(frame)
    with pytest.raises(ours) as info:
        list(buffer)
    assert isinstance(info.value, eventstream.ParserError)
    assert isinstance(info.value, evstream.EventStreamError)


# ---------------------------------------------------------------------------------------- error tree

ERROR_ARGS: dict[type[Exception], tuple[Any, ...]] = {
    eb.ParserError: ("boom",),
    eb.ChecksumMismatch: (1, 2),
    eb.PreludeChecksumMismatch: (1, 2),
    eb.MessageChecksumMismatch: (3, 4),
    eb.InvalidLength: ("bad",),
    eb.InvalidFrameLength: (12, 0),
    eb.InvalidHeadersLength: (5, 4),
    eb.InvalidPayloadLength: (5, 4),
    eb.InvalidHeader: ("bad",),
    eb.DuplicateHeader: ("name",),
    eb.UnknownHeaderType: ("name", 10),
    eb.InvalidHeaderName: ("empty name",),
    eb.InvalidHeaderValue: ("truncated", "name"),
    eb.TruncatedStream: (3, 20),
}
BOTOCORE_BASE = {
    eb.ChecksumMismatch: eventstream.ChecksumMismatch,
    eb.PreludeChecksumMismatch: eventstream.ChecksumMismatch,
    eb.MessageChecksumMismatch: eventstream.ChecksumMismatch,
    eb.InvalidHeadersLength: eventstream.InvalidHeadersLength,
    eb.InvalidPayloadLength: eventstream.InvalidPayloadLength,
    eb.DuplicateHeader: eventstream.DuplicateHeader,
}


@pytest.mark.parametrize("cls", list(ERROR_ARGS), ids=lambda c: c.__name__)
def test_error_classes_are_both(cls: type[Exception]) -> None:
    args = ERROR_ARGS[cls]
    twin = getattr(evstream, cls.__name__, evstream.EventStreamError)
    error = cls(*args)
    assert isinstance(error, twin)
    assert isinstance(error, BOTOCORE_BASE.get(cls, eventstream.ParserError))
    assert str(error) == str(twin(*args))  # evstream's words, from evstream's __init__
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)


def test_every_evstream_error_has_a_drop_in_class() -> None:
    names = [n for n in evstream.__all__ if isinstance(getattr(evstream, n), type)]
    errors = [
        getattr(evstream, n) for n in names if issubclass(getattr(evstream, n), evstream.EventStreamError)
    ]
    for error in errors:
        if error is evstream.EventStreamError:
            assert issubclass(eb.ParserError, error)
        else:
            assert issubclass(getattr(eb, error.__name__), error)


# -------------------------------------------------------------------------------- EventStream wrapper


class RawStream:
    """What botocore's EventStream reads: ``stream()`` yields chunks; ``close()`` is recorded."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = 0

    def stream(self) -> Iterator[bytes]:
        yield from self.chunks

    def close(self) -> None:
        self.closed += 1


OPERATION = "InvokeEndpointWithResponseStream"


@pytest.fixture(scope="module")
def response_stream_shape() -> Any:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    return model.operation_model(OPERATION).output_shape.members["Body"]


@pytest.fixture
def dropin(codec: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """install(), with the buffers botocore creates decoding through ``codec``."""
    monkeypatch.setattr(evstream, "Decoder", codec.Decoder)
    with eb.installed():
        yield


def event_stream(shape: Any, *chunks: bytes) -> Any:
    return eventstream.EventStream(
        RawStream(*chunks), shape, botocore.parsers.EventStreamJSONParser(), OPERATION
    )


def run_stream(shape: Any, *chunks: bytes) -> tuple[list[Any], Any]:
    """(events, error) from iterating an EventStream over these chunks."""
    events: list[Any] = []
    try:
        for event in event_stream(shape, *chunks):
            events.append(event)
    except Exception as exc:
        return events, exc
    return events, None


def exception_frame(codec: ModuleType, kind: str, body: bytes) -> bytes:
    headers = {":message-type": "exception", ":exception-type": kind, ":content-type": "application/json"}
    return codec.encode(headers, body)  # type: ignore[no-any-return]


def test_wrapper_iteration_same_events(dropin: None, codec: ModuleType, response_stream_shape: Any) -> None:
    stream = b"".join(token_frame(t) for t in ("Hello", " wor", "ld", "\u00e9"))
    chunks = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    events, error = run_stream(response_stream_shape, *chunks)
    assert error is None
    assert events == [{"PayloadPart": {"Bytes": t.encode()}} for t in ("Hello", " wor", "ld", "\u00e9")]
    with eb.installed():
        eb.uninstall()  # botocore's own decoder, for the comparison
        assert run_stream(response_stream_shape, *chunks) == (events, None)


@pytest.mark.parametrize(
    ("kind", "body", "code", "message"),
    [
        (
            "ModelStreamError",
            b'{"Message": "timed out", "ErrorCode": "ModelInvocationTimeExceeded"}',
            "ModelStreamError",
            "timed out",
        ),
        ("InternalStreamFailure", b'{"Message": "retry"}', "InternalStreamFailure", "retry"),
    ],
)
def test_wrapper_exception_events_raise_event_stream_error(
    dropin: None,
    codec: ModuleType,
    response_stream_shape: Any,
    kind: str,
    body: bytes,
    code: str,
    message: str,
) -> None:
    stream = token_frame("a") + exception_frame(codec, kind, body) + token_frame("never")
    events, error = run_stream(response_stream_shape, stream)
    assert events == [{"PayloadPart": {"Bytes": b"a"}}]
    assert isinstance(error, botocore.exceptions.EventStreamError)
    assert error.response["Error"] == {"Code": code, "Message": message}
    eb.uninstall()
    theirs_events, theirs = run_stream(response_stream_shape, stream)
    assert theirs_events == events
    assert (type(theirs), theirs.response, str(theirs)) == (type(error), error.response, str(error))


def test_wrapper_error_event(dropin: None, codec: ModuleType, response_stream_shape: Any) -> None:
    frame = codec.encode({":message-type": "error", ":error-code": "code", ":error-message": "message"})
    events, error = run_stream(response_stream_shape, frame)
    assert events == []
    assert isinstance(error, botocore.exceptions.EventStreamError)
    assert error.response["Error"] == {"Code": "code", "Message": "message"}


def test_wrapper_corrupt_frame_raises_botocores_class(dropin: None, response_stream_shape: Any) -> None:
    events, error = run_stream(response_stream_shape, token_frame("a") + raw_frame(b"", b"x", message_crc=0))
    assert events == [{"PayloadPart": {"Bytes": b"a"}}]
    assert isinstance(error, eventstream.ChecksumMismatch)
    assert isinstance(error, evstream.MessageChecksumMismatch)


def test_wrapper_initial_response(dropin: None, codec: ModuleType, response_stream_shape: Any) -> None:
    initial = codec.encode(
        {":message-type": "event", ":event-type": "initial-response", ":content-type": "text/json"},
        b'{"InitialResponse": "sometext"}',
    )
    stream = event_stream(response_stream_shape, initial[:30], initial[30:] + token_frame("t"))
    first = stream.get_initial_response()
    assert isinstance(first, eb.EventStreamMessage)
    assert first.headers[":event-type"] == "initial-response"
    assert first.payload == b'{"InitialResponse": "sometext"}'
    assert list(stream) == [{"PayloadPart": {"Bytes": b"t"}}]


def test_wrapper_initial_response_missing(dropin: None, response_stream_shape: Any) -> None:
    with pytest.raises(eventstream.NoInitialResponseError):
        event_stream(response_stream_shape, token_frame("t")).get_initial_response()
    with pytest.raises(eventstream.NoInitialResponseError):
        event_stream(response_stream_shape, b"").get_initial_response()


def test_wrapper_close(dropin: None, response_stream_shape: Any) -> None:
    raw = RawStream(token_frame("t"))
    stream = eventstream.EventStream(
        raw, response_stream_shape, botocore.parsers.EventStreamJSONParser(), OPERATION
    )
    stream.close()
    assert raw.closed == 1


def test_datetime_timestamp_round_trip(buffer: eb.EventStreamBuffer, codec: ModuleType) -> None:
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
    buffer.add_data(codec.encode({"when": when}))
    (message,) = buffer
    assert message.headers["when"] == int(when.timestamp() * 1000)
    assert message.prelude.total_length == 16 + len(b"\x04when\x08") + 8


# ------------------------------------------------------------------------------------------- install
# (the rest of install()/uninstall() is tested in test_botocore_dropin_install.py)


@pytest.fixture
def clean_install() -> Iterator[None]:
    eb.uninstall()
    yield
    eb.uninstall()


def test_install_after_the_stream_was_created(
    clean_install: None, codec: ModuleType, response_stream_shape: Any
) -> None:
    # EventStream looks EventStreamBuffer up when iteration starts, not when it is built.
    initial = codec.encode({":event-type": "initial-response"})
    stream = event_stream(response_stream_shape, initial)
    eb.install()
    assert isinstance(stream.get_initial_response(), eb.EventStreamMessage)
