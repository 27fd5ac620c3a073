"""The response-body reader alone (sans I/O): framing, classification, bounds, errors; both codecs."""

from __future__ import annotations

import json
import random
import tracemalloc
from types import ModuleType
from typing import Any

import pytest

from frames import raw_frame, string_header, token_frame

pytest.importorskip("botocore", reason="the client needs the client extra")
import evstream
import evstream.sagemaker as sm
from evstream.sagemaker import reader as body_reader
from evstream.sagemaker.operations import BEDROCK, SAGEMAKER
from evstream.sagemaker.reader import CHUNKED, LENGTH, UNTIL_CLOSE, BodyReader

TOKENS = [token_frame(f"t{i}") for i in range(50)]


def chunked(*frames: bytes, trailers: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n" + trailers + b"\r\n"


@pytest.fixture()
def make(codec: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A reader factory whose decoder is the codec under test."""
    monkeypatch.setattr(body_reader, "Decoder", codec.Decoder)

    def new(framing: str = CHUNKED, **kwargs: Any) -> BodyReader:
        kwargs.setdefault("boto_shape", False)
        return BodyReader(kwargs.pop("operation", SAGEMAKER), framing=framing, **kwargs)

    return new


def read(reader: BodyReader, data: bytes, sizes: Any = None) -> list[Any]:
    """Everything ``data`` gives when fed in pieces of ``sizes`` (an iterator of lengths), then EOF."""
    events: list[Any] = []
    pos = 0
    while pos < len(data):
        n = next(sizes) if sizes is not None else len(data)
        events += reader.feed(data[pos : pos + n])
        while reader.pending:
            events += reader.feed(b"")
        pos += n
    reader.eof()
    return events


def texts(n: int) -> list[bytes]:
    return [f"t{i}".encode() for i in range(n)]


# -- framing ---------------------------------------------------------------------------------------


def test_any_split_gives_the_same_events(make: Any) -> None:
    body = chunked(*TOKENS, trailers=b"X-Checksum: abc\r\n")
    rng = random.Random(7)
    for _ in range(100):
        reader = make()
        sizes = iter(lambda: rng.choice((1, 2, 3, 7, 40, 500)), None)
        assert read(reader, body, sizes) == texts(50)
        assert reader.done and reader.reusable


def test_many_frames_in_one_chunk_and_frames_across_chunks(make: Any) -> None:
    stream = b"".join(TOKENS)
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (stream[:100], stream[100:1001], stream[1001:]))
    assert read(make(), body + b"0\r\n\r\n") == texts(50)


def test_boto3_shape_and_bedrock_chunks(make: Any) -> None:
    assert read(make(boto_shape=True), chunked(TOKENS[0])) == [{"PayloadPart": {"Bytes": b"t0"}}]
    chunk = raw_frame(
        string_header(":event-type", "chunk") + string_header(":message-type", "event"),
        json.dumps({"bytes": "aGk="}).encode(),
    )
    reader = make(operation=BEDROCK, boto_shape=True)
    assert read(reader, chunked(chunk)) == [{"chunk": {"bytes": b"hi"}}]


def test_unknown_events_are_skipped_and_errors_are_typed(make: Any) -> None:
    unknown = raw_frame(string_header(":event-type", "Later") + string_header(":message-type", "event"))
    error = raw_frame(
        string_header(":exception-type", "ModelStreamError")
        + string_header(":message-type", "exception")
        + string_header(":content-type", "application/json"),
        json.dumps({"Message": "boom", "ErrorCode": "StreamBroken"}).encode(),
    )
    reader = make()
    events = reader.feed(chunked(TOKENS[0], unknown, TOKENS[1], error, TOKENS[2]))
    assert events == [b"t0", b"t1"]  # what came before the error first...
    assert reader.pending and reader.delivered
    with pytest.raises(sm.ModelStreamError):  # ...then the error
        reader.feed(b"")
    with pytest.raises(sm.ModelStreamError):  # and it stays failed
        reader.feed(b"more")


def test_content_length_body(make: Any) -> None:
    stream = b"".join(TOKENS)
    reader = make(LENGTH, length=len(stream))
    assert read(reader, stream, iter(lambda: 33, None)) == texts(50)
    assert reader.done and reader.reusable
    short = make(LENGTH, length=len(stream) + 5)
    with pytest.raises(sm.IncompleteStream, match="5 bytes of the Content-Length never came"):
        read(short, stream)
    longer = make(LENGTH, length=len(stream))
    assert longer.feed(stream + b"junk") == texts(50)
    assert longer.done and not longer.reusable  # bytes past the body: the connection is not reused


def test_body_until_close(make: Any) -> None:
    reader = make(UNTIL_CLOSE)
    assert read(reader, b"".join(TOKENS)) == texts(50)
    assert not reader.reusable
    cut = make(UNTIL_CLOSE)
    with pytest.raises(sm.IncompleteStream, match="inside an event-stream frame"):
        read(cut, TOKENS[0] + TOKENS[1][:9])


# -- hostile framing: the right error, never a quiet end ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"-3\r\n", "invalid chunk size line"),
        (b"+5\r\nhello\r\n0\r\n\r\n", "invalid chunk size line"),
        (b"0x5\r\nhello\r\n0\r\n\r\n", "invalid chunk size line"),
        (b"5_0\r\n", "invalid chunk size line"),
        (b" 5\r\n", "invalid chunk size line"),
        (b"\r\n", "invalid chunk size line"),
        (b"zz\r\n", "invalid chunk size line"),
        (b"1" + b"0" * 16 + b"\r\n", "invalid chunk size line"),  # 17 digits
        (b"0" * 1030 + b"\r\n\r\n", "invalid chunk size line"),  # not a quiet "0"
        (b"5\nhello\r\n", "does not end with CRLF"),
        (b"5;" + b"e" * 70000, "longer than 65536 bytes"),
        (b"0\r\nX-A: 1\nX-B: 2\r\n\r\n", "does not end with CRLF"),
        (b"0\r\nnot a trailer\r\n\r\n", "invalid or too many trailer lines"),
        (b"0\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", "invalid or too many trailer lines"),
        (b"0\r\nX-A: " + b"v" * 70000, "longer than 65536 bytes"),
    ],
)
def test_malformed_chunked_framing_is_incomplete_stream(make: Any, body: bytes, match: str) -> None:
    for sizes in (None, iter(lambda: 1, None), iter(lambda: 1000, None)):
        reader = make()
        with pytest.raises(sm.IncompleteStream, match=match) as info:
            read(reader, body, sizes)
        assert "Malformed chunked response body" in str(info.value)
        assert info.value.malformed  # what the retry policy refuses to send again


def test_chunk_longer_than_its_size_line_says(make: Any) -> None:
    frame = TOKENS[0]
    body = b"%x\r\n%sXY\r\n0\r\n\r\n" % (len(frame), frame)
    with pytest.raises(sm.IncompleteStream, match="longer than its size line"):
        read(make(), body)


def test_huge_chunk_size_is_no_overflow(make: Any) -> None:
    reader = make()
    assert reader.feed(b"ffffffffffffffff\r\n" + TOKENS[0]) == [b"t0"]  # 2**64 - 1: read as it comes
    with pytest.raises(sm.IncompleteStream, match="before the end of the chunked body"):
        reader.eof()


@pytest.mark.parametrize(
    "body",
    [b"", b"5\r\nhel", b"%x\r\n" % len(TOKENS[0]) + TOKENS[0], chunked(TOKENS[0])[:-2], b"0\r\nX-A: 1\r\n"],
)
def test_every_cut_is_an_error(make: Any, body: bytes) -> None:
    reader = make()
    with pytest.raises(sm.IncompleteStream):
        read(reader, body, iter(lambda: 3, None))


def test_cut_inside_a_frame_says_so(make: Any) -> None:
    frame = TOKENS[0]
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (10, frame[:10])
    with pytest.raises(sm.IncompleteStream, match="inside an event-stream frame") as info:
        read(make(), body)
    assert isinstance(info.value, evstream.TruncatedStream)


def test_codec_errors_keep_their_class(make: Any) -> None:
    bad = bytearray(TOKENS[1])
    bad[-1] ^= 1
    reader = make()
    assert reader.feed(chunked(TOKENS[0], bytes(bad))) == [b"t0"]
    with pytest.raises(evstream.MessageChecksumMismatch):
        reader.feed(b"")


# -- bounds ------------------------------------------------------------------------------------------


def _peak(run: Any) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_chunk_is_never_held_whole(make: Any) -> None:
    """256 MiB announced, a bad frame prelude at its start: the error comes from the first bytes."""
    reader = make()
    head = b"10000000\r\n" + b"\xff" * 16

    def run() -> None:
        with pytest.raises(evstream.EventStreamError):
            reader.feed(head)

    assert _peak(run) < 512 << 10


def test_a_huge_chunk_of_empty_frames_comes_out_in_batches(make: Any) -> None:
    """2 MiB of empty unknown events (50,000 messages), fed as a transport would (64 KiB reads): memory
    stays bounded by one read, not the chunk."""
    empty = raw_frame(string_header(":event-type", "Later"))
    piece = empty * (65536 // len(empty))
    reads = (2 << 20) // len(piece)
    reader = make()
    reader.feed(b"%x\r\n" % (reads * len(piece)))

    def run() -> None:
        for _ in range(reads):
            assert reader.feed(piece) == []
            while reader.pending:
                assert reader.feed(b"") == []

    assert _peak(run) < 512 << 10


def test_events_per_feed_are_bounded(make: Any) -> None:
    """Many data events in one read come out BATCH at a time."""
    empty = token_frame("")
    reader = make()
    events = reader.feed(chunked(*[empty] * 5000))
    sizes = [len(events)]
    while reader.pending:
        sizes.append(len(reader.feed(b"")))
    assert max(sizes) <= body_reader.BATCH + body_reader.SLICE // len(empty)
    assert sum(sizes) == 5000 and reader.done


def test_feeding_more_while_pending_is_refused(make: Any) -> None:
    reader = make()
    reader.feed(chunked(*[token_frame("")] * 2000))
    assert reader.pending
    with pytest.raises(RuntimeError, match="pending"):
        reader.feed(b"x")


# -- retry decisions ----------------------------------------------------------------------------------


def test_may_retry() -> None:
    from evstream.sagemaker.errors import stream_exception

    failure = stream_exception(
        {":message-type": "exception", ":exception-type": "InternalStreamFailure"}, b"{}", None
    )
    assert isinstance(failure, sm.InternalStreamFailure)
    assert body_reader.may_retry(failure, delivered=False)
    assert not body_reader.may_retry(failure, delivered=True)
    cut = sm.IncompleteStream("The response body was cut short")
    assert body_reader.may_retry(cut, delivered=False)  # a dropped connection: a retry may mend it
    assert not body_reader.may_retry(cut, delivered=True)
    assert not body_reader.may_retry(ValueError("x"), delivered=False)


@pytest.mark.parametrize("boto_shape", [False, True])
@pytest.mark.parametrize("framing", [CHUNKED, LENGTH, UNTIL_CLOSE])
def test_views_of_a_reused_buffer(make: Any, framing: str, boto_shape: bool) -> None:
    # The sync transport reads each time into the same buffer and feeds a view of it: every event, and
    # every byte the reader keeps between reads (a frame or a chunk-size line split across reads), must
    # be a copy, never a view that the next read overwrites.
    rng = random.Random(7)
    tokens = texts(60)
    frames = [token_frame(token) for token in tokens]
    frames.insert(
        30, raw_frame(string_header(":event-type", "Unknown") + string_header(":message-type", "event"))
    )
    body = chunked(*frames) if framing == CHUNKED else b"".join(frames)
    reader = make(framing, length=len(body), boto_shape=boto_shape)
    buffer = bytearray(64)
    events: list[Any] = []
    pos = 0
    while pos < len(body):
        piece = body[pos : pos + rng.choice((1, 3, 17, 64))]
        pos += len(piece)
        buffer[: len(piece)] = piece
        view = memoryview(buffer)[: len(piece)]
        events += reader.feed(view)
        while reader.pending:
            events += reader.feed(b"")
        buffer[:] = b"\xff" * len(buffer)  # the next read lands here
    if framing != LENGTH:
        reader.eof()
    payloads = [event["PayloadPart"]["Bytes"] for event in events] if boto_shape else events
    assert payloads == tokens
    assert all(type(payload) is bytes for payload in payloads)
