"""The SSE parser against the HTML standard's rules, JSON values cut anywhere, hostile input, LineIterator."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstream import lines
from evstream.records import JSONParser, JSONSequence


def cut(data: bytes, points: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted({p for p in points if 0 <= p <= len(data)}), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def whatwg_events(data: bytes) -> list[lines.SSEEvent]:
    """The HTML standard's "interpreting an event stream", written from the text of the standard over the
    whole stream at once, character by character; plus evstream's one documented addition: the event
    pending at the end of the stream is dispatched (the standard discards it)."""
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines_: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\r":
            lines_.append("".join(current))
            current = []
            if text[i + 1 : i + 2] == "\n":
                i += 1
        elif char == "\n":
            lines_.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if current:
        lines_.append("".join(current))  # the last line, ended by the end of the stream
    events = []
    data_buffer, event_type, last_id, retry = "", "", None, None
    for line in [*lines_, ""]:  # the end of the stream dispatches the pending event
        if line == "":
            if data_buffer:
                events.append(lines.SSEEvent(data_buffer[:-1], event_type or "message", last_id, retry))
            data_buffer, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            data_buffer += value + "\n"
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = (
                min(int(value.lstrip("0") or "0"), lines.MAX_RETRY) if len(value) < 100 else lines.MAX_RETRY
            )
    return events


SSE_PIECES = st.sampled_from(
    [
        "data",
        "data:",
        "data: ",
        "event:",
        "id:",
        "id: \0",
        "retry:",
        "retry: 10",
        "retry:0012",
        "retry: 1x",
        "retry:²",
        ":",
        ": comment",
        "x",
        " ",
        "é",
        "🙂",
        "\r",
        "\n",
        "\r\n",
        "\n\n",
        "[DONE]",
        "unknown:",
    ]
)


@given(st.lists(SSE_PIECES, max_size=60), st.booleans(), st.lists(st.integers(0, 400), max_size=20))
@settings(max_examples=600, deadline=None)
def test_sse_matches_the_standard(pieces: list[str], bom: bool, points: list[int]) -> None:
    data = ("\ufeff" if bom else "").encode() + "".join(pieces).encode()
    assert list(lines.iter_sse(cut(data, points))) == whatwg_events(data)


def test_sse_cr_only_line_endings() -> None:
    data = b"event: a\rdata: one\r\rdata: two\r\r"
    for point in range(len(data) + 1):
        assert list(lines.iter_sse(cut(data, [point]))) == [
            lines.SSEEvent("one", "a"),
            lines.SSEEvent("two"),
        ]
    assert list(lines.iter_lines([b"a\r", b"\nb\r", b"c"])) == ["a", "b", "c"]


def test_sse_leading_byte_order_mark_keeps_the_first_event() -> None:
    data = b'\xef\xbb\xbfdata: {"a": 1}\n\n'
    for point in range(len(data) + 1):
        assert [e.data for e in lines.iter_sse(cut(data, [point]))] == ['{"a": 1}']
        assert list(lines.iter_json(cut(data, [point]))) == [{"a": 1}]


def test_sse_pending_data_is_bounded() -> None:
    parser = lines.SSEParser(max_line_length=1000)
    with pytest.raises(lines.LineTooLong, match="Event data longer than max_line_length=1000"):
        for _ in range(1000):
            parser.feed(b"data: xxxxxxxx\n")  # never a blank line
    parser = lines.SSEParser(max_line_length=1000)
    for _ in range(1000):
        parser.feed(b"data: xxxxxxxx\n\n")  # dispatched each time: nothing accumulates


@pytest.mark.parametrize("value", ["²", "١٢", "5" * 5000, "0" * 5000 + "7", "9" * 30])
def test_sse_retry_never_raises(value: str) -> None:
    events = list(lines.iter_sse([f"retry: {value}\ndata: x\n\n".encode()]))
    expected = None
    if value.isascii():
        digits = value.lstrip("0")
        expected = int(digits) if len(digits) < 19 else lines.MAX_RETRY
    assert events == [lines.SSEEvent("x", retry=expected)]


@pytest.mark.parametrize("depth", [10, 5000, 200_000])
def test_deep_nesting_is_a_typed_error(depth: int) -> None:
    data = b"[" * depth + b"]" * depth
    for chunks in ([data], cut(data, [depth // 2, depth + 3])):
        if depth == 10:
            assert list(lines.iter_json(chunks)) == [json.loads(data)]
            continue
        with pytest.raises(lines.InvalidJSON, match="nested too deeply"):
            list(lines.iter_json(chunks))
    with pytest.raises((lines.InvalidJSON, lines.LineTooLong)):
        list(lines.iter_json([b"data: " + b"[" * depth + b"\n\n"], max_line_length=10**6))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab"\\{}[]é🙂\n'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='k"\\}', max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.lists(st.dictionaries(st.text(max_size=3), JSON_VALUES, max_size=3) | st.lists(JSON_VALUES, max_size=3),
             max_size=6),
    st.sampled_from(["", "\n", " ", "\r\n", "\n\n"]),
    st.lists(st.integers(0, 600), max_size=25),
)  # fmt: skip
@settings(max_examples=400, deadline=None)
def test_json_sequence_any_split(values: list[Any], separator: str, points: list[int]) -> None:
    data = separator.join(json.dumps(v, ensure_ascii=False) for v in values).encode()
    assert list(lines.iter_json(cut(data, points))) == values


def test_json_lines_with_scalars_and_errors() -> None:
    assert list(lines.iter_json([b"1\n", b"2", b"3\ntrue\n", b'"s"\nnull'])) == [1, 23, True, "s", None]
    for bad in (b'{"a": 1', b'{"a": }\n', b"[1, 2]]\n", b'{"a": "\\'):
        with pytest.raises(lines.InvalidJSON) as caught:
            list(lines.iter_json([bad]))
        assert isinstance(caught.value, json.JSONDecodeError)


def test_json_value_length_is_bounded() -> None:
    sequence = JSONSequence(max_length=100)
    with pytest.raises(lines.LineTooLong, match="JSON value longer"):
        for _ in range(100):
            sequence.feed('{"a": "' + "x" * 10)


def test_json_byte_by_byte_is_linear() -> None:
    value = {"text": "x" * 200_000, "n": [1] * 1000}
    data = json.dumps(value).encode()
    parser = JSONParser()
    out = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    assert out + parser.close() == [value]


def test_framing_detection_waits_for_enough_text() -> None:
    for stream in ([b"d", b"a", b"t", b"a", b':{"a":1}\n\n'], [b"  \n", b'\n{"a":1}']):
        assert list(lines.iter_json(stream)) == [{"a": 1}]
    assert list(lines.iter_json([b"data"])) == []  # "data" alone is an empty SSE data field
    assert list(lines.iter_json([b""])) == []


class TestLineIterator:
    def events(self, *parts: bytes) -> list[dict[str, Any]]:
        return [{"PayloadPart": {"Bytes": p}} for p in parts]

    def test_blog_interface(self) -> None:
        events = self.events(b'{"a": 1}\n{"b"', b": 2}\r\n", b"last line without newline")
        assert list(lines.LineIterator(events)) == [b'{"a": 1}', b'{"b": 2}', b"last line without newline"]

    def test_bedrock_chunks_raw_bytes_and_unknown_events(self) -> None:
        source = [{"chunk": {"bytes": b"a\nb"}}, {"SomethingElse": {}}, b"c\n", {"PayloadPart": {}}]
        assert list(lines.LineIterator(source)) == [b"a", b"bc"]

    def test_ends_and_is_bounded(self) -> None:
        assert list(lines.LineIterator([])) == []
        assert list(lines.LineIterator(self.events(b"\n\n"))) == [b"", b""]
        with pytest.raises(lines.LineTooLong):
            list(lines.LineIterator(self.events(*[b"x" * 100] * 20), max_line_length=1000))
        with pytest.raises(lines.LineTooLong):
            list(lines.LineIterator(self.events(b"y" * 2000 + b"\n"), max_line_length=1000))

    @given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=10))
    @settings(max_examples=200, deadline=None)
    def test_any_split(self, data: bytes, points: list[int]) -> None:
        expected = data.split(b"\n")
        if expected[-1] == b"":
            expected.pop()
        expected = [line[:-1] if line.endswith(b"\r") else line for line in expected]
        assert list(lines.LineIterator(self.events(*cut(data, points)))) == expected


def test_json_value_cut_into_many_pieces_with_brackets_in_strings() -> None:
    # Every chunk brings a closing bracket inside a string: parsed whole a few times, then scanned.
    value = {"text": "}]" * 3000, "tail": [{"x": "]"}]}
    data = json.dumps(value).encode()
    parser = JSONParser()
    out = []
    for i in range(0, len(data), 2):
        out += parser.feed(data[i : i + 2])
    assert out + parser.close() == [value]


def test_invalid_json_raises_before_the_end_of_the_stream() -> None:
    with pytest.raises(lines.InvalidJSON):
        JSONParser().feed(b"{not json}\n")
    parser = JSONParser()
    parser.feed(b'{"a": tr')  # too short to tell from a value cut off
    with pytest.raises(lines.InvalidJSON):
        parser.feed(b'ash}\n{"b": 1}\n')


@given(
    st.text(alphabet=st.sampled_from("ab é🙂\n\r"), max_size=200), st.lists(st.integers(0, 800), max_size=20)
)
@settings(max_examples=300, deadline=None)
def test_lines_end_at_cr_lf_or_crlf_cut_anywhere(text: str, points: list[int]) -> None:
    data = text.encode()
    expected = re.split(r"\r\n|\r|\n", text)
    if expected[-1] == "":
        expected.pop()  # the terminator of the last line starts no new line
    assert list(lines.iter_lines(cut(data, points))) == expected


def test_bad_json_line_raises_when_the_next_line_arrives() -> None:
    with pytest.raises(lines.InvalidJSON, match="Expecting value"):
        JSONParser().feed(b'{"a": 1}\n{"b": nope}\n{"c": 2}\n')
    parser = JSONParser()
    parser.feed(b'{"b": n')
    with pytest.raises(lines.InvalidJSON):
        parser.feed(b'ope, "more": "data that goes on"}\n')
