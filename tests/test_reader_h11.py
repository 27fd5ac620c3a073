"""The reader's chunked framing against h11's, differentially: random bodies, random mutations, random
splits. Where both accept, the bytes agree; where h11 refuses, so does the reader; where only the reader
refuses, it is for one of its documented stricter rules (see ``_STRICTER``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

h11 = pytest.importorskip("h11")
pytest.importorskip("botocore", reason="the client needs the client extra")

from evstream.sagemaker.errors import IncompleteStream  # noqa: E402
from evstream.sagemaker.http1 import Head, RawBody  # noqa: E402
from evstream.sagemaker.reader import CHUNKED  # noqa: E402

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

# What the reader refuses and h11 takes, each a deliberate choice (the error message, and a test of the
# input that must hold for it):
_STRICTER: list[tuple[str, re.Pattern[bytes]]] = [
    # more than 16 hex digits (h11 takes 20): a size over 2**64 is no size
    ("invalid chunk size line", re.compile(rb"(?:^|\n)[0-9A-Fa-f]{17}")),
    # a CR inside a chunk extension (h11 reads to the first CRLF)
    ("invalid chunk size line", re.compile(rb"(?:^|\n)[0-9A-Fa-f]+;[^\n]*\r[^\n]")),
    # a trailer line ended by a bare LF (h11 takes LF alone in header blocks)
    ("does not end with CRLF", re.compile(rb"[^\r]\n")),
    # obsolete line folding in the trailers
    ("invalid or too many trailer lines", re.compile(rb"\n[ \t]")),
]


def ours(body: bytes, cuts: list[int]) -> tuple[str, bytes]:
    reader = RawBody(Head(200, {}, {}, CHUNKED, 0, True), 1 << 30)
    pos = 0
    try:
        for cut in [*sorted(cuts), len(body)]:
            piece = body[pos:cut]
            pos = max(pos, cut)
            if piece:
                reader.feed(piece)
                while reader.pending:
                    reader.feed(b"")
            if reader.done:
                break
        reader.eof()
    except IncompleteStream as exc:
        return "error", str(exc).encode()
    return "ok", bytes(reader.data)


def theirs(body: bytes, cuts: list[int]) -> tuple[str, bytes]:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    data = bytearray()
    pos = 0
    pieces = [HEAD]
    for cut in [*sorted(cuts), len(body)]:
        if body[pos:cut]:
            pieces.append(body[pos:cut])
        pos = max(pos, cut)
    pieces.append(b"")  # EOF (h11 reads an empty piece as one)
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Data):
                    data += event.data
                elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                    return "ok", bytes(data)
    except h11.ProtocolError:
        return "error", b""
    return "error", b""


def compare(body: bytes, cuts: list[int]) -> None:
    mine, reference = ours(body, cuts), theirs(body, cuts)
    if mine[0] == reference[0] == "ok":
        assert mine[1] == reference[1]
    elif reference[0] == "error":
        assert mine[0] == "error", f"h11 refuses {body!r}, the reader took it"
    else:
        message = mine[1].decode()
        assert any(words in message and rule.search(body) for words, rule in _STRICTER), (
            f"the reader refuses {body!r} ({message}), h11 takes it"
        )


_TOKEN_CHARS = st.sampled_from(list("abcXYZ-09"))


@st.composite
def chunked_bodies(draw: Any) -> bytes:
    parts = []
    for data in draw(st.lists(st.binary(min_size=1, max_size=40), max_size=5)):
        size = b"%x" % len(data)
        if draw(st.booleans()):
            size = size.upper()
        if draw(st.integers(0, 4)) == 0:
            size = b"0" * draw(st.integers(1, 14)) + size
        extension = b""
        if draw(st.integers(0, 3)) == 0:
            name = draw(st.text(_TOKEN_CHARS, min_size=1, max_size=6)).encode()
            extension = b";" + name + (b"=" + name if draw(st.booleans()) else b"")
        parts.append(size + extension + b"\r\n" + data + b"\r\n")
    trailers = b""
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.text(_TOKEN_CHARS, min_size=1, max_size=6)).encode()
        trailers += b"X-" + name + b": " + name + b"\r\n"
    return b"".join(parts) + b"0\r\n" + trailers + b"\r\n"


@st.composite
def mutated(draw: Any) -> bytes:
    body = bytearray(draw(chunked_bodies()))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 3))
        at = draw(st.integers(0, max(0, len(body) - 1)))
        if kind == 0 and body:
            body[at] = draw(st.sampled_from(b"\r\n ;:0aFgz-\t\x00\xff"))
        elif kind == 1:
            body.insert(at, draw(st.sampled_from(b"\r\n ;0f")))
        elif kind == 2 and body:
            del body[at]
        else:
            del body[at:]
    return bytes(body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_bodies(), st.lists(st.integers(0, 400), max_size=6))
def test_valid_bodies_agree_with_h11(body: bytes, cuts: list[int]) -> None:
    compare(body, cuts)
    assert ours(body, cuts)[0] == "ok"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.lists(st.integers(0, 400), max_size=6))
def test_mutated_bodies_agree_with_h11(body: bytes, cuts: list[int]) -> None:
    compare(body, cuts)


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nhello\r\n0\r\n\r\n",
        b"0000000000000005\r\nhello\r\n0\r\n\r\n",
        b"5;a=b;c\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n",
    ],
)
def test_known_cases_agree_with_h11(body: bytes) -> None:
    compare(body, [])
    compare(body, list(range(len(body))))  # byte by byte
