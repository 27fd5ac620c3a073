"""Reassembly of text, lines, SSE events and JSON objects from chunks cut anywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstream import lines
from evstream.emulator import Behavior, generate_records, generate_text, split_parts

T = TypeVar("T")

SAMPLE = "héllo wörld\r\n日本語 line\n\n🙂 emoji\nlast line without newline".encode()


def cut(data: bytes, points: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def reference_lines(data: bytes) -> list[str]:
    text = data.decode()
    result = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if result and result[-1] == "":
        result.pop()  # a trailing newline ends the last line; it does not start an empty one
    return result


async def agen(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


def collect(aiterator: AsyncIterator[T]) -> list[T]:
    async def run() -> list[T]:
        return [item async for item in aiterator]

    return asyncio.run(run())


def test_lines_at_every_single_split() -> None:
    expected = reference_lines(SAMPLE)
    assert expected[-1] == "last line without newline"
    for point in range(len(SAMPLE) + 1):
        assert list(lines.iter_lines(cut(SAMPLE, [point]))) == expected


def test_lines_byte_by_byte() -> None:
    assert list(lines.iter_lines([bytes([b]) for b in SAMPLE])) == reference_lines(SAMPLE)


@given(
    st.text(alphabet=st.sampled_from("ab é日🙂\n\r"), max_size=200),
    st.lists(st.integers(0, 800), max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_lines_any_split(text: str, points: list[int]) -> None:
    data = text.replace("\r", "\r\n").encode()
    chunks = cut(data, [p for p in points if p <= len(data)])
    assert list(lines.iter_lines(chunks)) == reference_lines(data)
    assert "".join(lines.iter_text(chunks)) == data.decode()


def test_trailing_newline_and_empty_stream() -> None:
    assert list(lines.iter_lines([b"a\n", b"b\n"])) == ["a", "b"]
    assert list(lines.iter_lines([])) == []
    assert list(lines.iter_lines([b"", b""])) == []
    assert list(lines.iter_lines([b"\n\n"])) == ["", ""]
    assert list(lines.iter_lines([b"x\r"])) == ["x"]


def test_line_length_is_bounded() -> None:
    with pytest.raises(lines.LineTooLong, match="max_line_length=10"):
        list(lines.iter_lines([b"0123456789", b"a"], max_line_length=10))
    with pytest.raises(lines.LineTooLong):
        list(lines.iter_lines([b"short\n" + b"x" * 11 + b"\n"], max_line_length=10))
    assert list(lines.iter_lines([b"0123456789\n"], max_line_length=10)) == ["0123456789"]


def test_splitter_keeps_only_the_open_line() -> None:
    splitter = lines.LineSplitter(max_line_length=100)
    for _ in range(10_000):
        assert splitter.feed(b"abc\n") == ["abc"]
    assert splitter._size == 0 and splitter._parts == []


def test_character_cut_by_the_end_raises() -> None:
    with pytest.raises(UnicodeDecodeError):
        list(lines.iter_lines([b"ok\n", "é".encode()[:1]]))
    with pytest.raises(UnicodeDecodeError):
        list(lines.iter_text([b"\xff"]))


def test_sse_fields() -> None:
    stream = (
        b": a comment\n"
        b"event: token\nid: 7\nretry: 1500\ndata: first\ndata:second\n\n"
        b'data:{"a": 1}\r\n\r\n'
        b"data\n\n"
        b"event: ignored-without-data\n\n"
        b"data: [DONE]\n\n"
        b"data: pending at the end"
    )
    for point in range(len(stream) + 1):
        events = list(lines.iter_sse(cut(stream, [point])))
        assert events == [
            lines.SSEEvent("first\nsecond", "token", "7", 1500),
            lines.SSEEvent('{"a": 1}', "message", "7", 1500),
            lines.SSEEvent("", "message", "7", 1500),
            lines.SSEEvent("[DONE]", "message", "7", 1500),
            lines.SSEEvent("pending at the end", "message", "7", 1500),
        ]


@pytest.mark.parametrize("fmt", ["tgi", "lmi", "openai"])
def test_tokens_from_straddled_parts(fmt: str) -> None:
    behavior = Behavior(format=fmt, tokens=80, straddle=True)
    parts = list(split_parts(behavior))
    assert len(parts) > 80  # parts do not line up with records
    assert "".join(lines.iter_tokens(parts)) == generate_text(behavior)
    assert "".join(collect(lines.aiter_tokens(agen(parts)))) == generate_text(behavior)


def test_json_lines_and_sse_detection() -> None:
    assert list(lines.iter_json([b'{"a": 1}\n\n', b'{"b"', b": 2}"])) == [{"a": 1}, {"b": 2}]
    assert list(lines.iter_json([b'data: {"a": 1}\n\ndata: [1, 2]\n\n'])) == [{"a": 1}, [1, 2]]
    assert list(lines.iter_json([b"\n", b'data: {"x": 0}'])) == [{"x": 0}]  # pending event at the end


def test_json_stops_at_done_but_reads_on() -> None:
    consumed = []

    def chunks() -> Iterable[bytes]:
        for chunk in (b'data: {"a": 1}\n\n', b"data: [DONE]\n\n", b'data: {"after": 1}\n\n'):
            consumed.append(chunk)
            yield chunk

    assert list(lines.iter_json(chunks())) == [{"a": 1}]
    assert len(consumed) == 3  # the rest of the stream is read, so the connection ends cleanly


def test_invalid_json_raises() -> None:
    with pytest.raises(json.JSONDecodeError):
        list(lines.iter_json([b"{not json}\n"]))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"token": {"id": 1, "text": " Deep", "special": False}, "generated_text": None}, " Deep"),
        ({"token": {"id": 2, "text": "</s>", "special": True}}, None),
        ({"token": {"id": 13, "text": " a", "log_prob": -0.1}}, " a"),
        ({"outputs": [" old"]}, " old"),
        ({"choices": [{"delta": {"content": "Hi"}}]}, "Hi"),
        ({"choices": [{"delta": {"role": "assistant"}}]}, None),
        ({"choices": [{"text": "completion"}]}, "completion"),
        ({"usage": {"total_tokens": 3}, "choices": []}, None),
        ([1, 2], None),
    ],
)
def test_token_text(value: Any, text: str | None) -> None:
    assert lines.token_text(value) == text


def test_async_variants_match_sync() -> None:
    chunks = cut(SAMPLE, [1, 2, 3, 5, 8, 13, 21, 34])
    assert collect(lines.aiter_lines(agen(chunks))) == list(lines.iter_lines(chunks))
    assert "".join(collect(lines.aiter_text(agen(chunks)))) == SAMPLE.decode()
    records = b"".join(generate_records(Behavior(format="openai", tokens=5)))
    events = collect(lines.aiter_sse(agen(cut(records, range(0, len(records), 7)))))
    assert [e.data for e in events][-1] == "[DONE]"
    values = collect(lines.aiter_json(agen([records])))
    assert len(values) == 5 and values[-1]["usage"]["completion_tokens"] == 5
