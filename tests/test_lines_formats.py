"""Real-shaped streams of every container and Bedrock family through tokens() and json(), cut anywhere.

The fixtures (tests/fixtures/streams, sources in its README) are written from each project's documented
format, independently of evstream's local endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstream import formats, lines
from evstream.emulator.workloads import FINISH_REASONS, Behavior, format_records, generate_text, split_parts
from evstream.emulator.workloads import FORMATS as FORMATS_OF_THE_ENDPOINT

FIXTURES = Path(__file__).parent / "fixtures" / "streams"
STREAMS = {path.stem: json.loads(path.read_text("utf-8")) for path in sorted(FIXTURES.glob("*.json"))}
NAMES = sorted(STREAMS)


def body(name: str) -> bytes:
    return "".join(STREAMS[name]["chunks"]).encode()


def cut(data: bytes, points: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted({p for p in points if 0 <= p <= len(data)}), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def read_tokens(name: str, chunks: list[bytes], **kwargs: Any) -> tuple[str, formats.TokenStream]:
    """The text read from the chunks, and the stream (an in-band error is checked, then the text so far)."""
    stream = lines.iter_tokens(chunks, **kwargs)
    expected = STREAMS[name]
    pieces: list[str] = []
    if expected["error"]:
        with pytest.raises(lines.InBandError) as caught:
            for piece in stream:
                pieces.append(piece)
        assert caught.value.message == expected["error"]
    else:
        pieces.extend(stream)
    return "".join(pieces), stream


def check(name: str, chunks: list[bytes], **kwargs: Any) -> None:
    expected = STREAMS[name]
    text, stream = read_tokens(name, chunks, **kwargs)
    assert text == expected["text"]
    assert stream.format == expected["format"]
    if not expected["error"]:
        assert stream.finish_reason == expected["finish_reason"]
        usage = expected["usage"]
        assert stream.usage == (formats.Usage(**usage) if usage else None)


def test_every_family_has_a_fixture() -> None:
    assert {s["format"] for s in STREAMS.values()} == set(formats.FORMATS) - {"text"}
    assert all(s["source"] for s in STREAMS.values())


@pytest.mark.parametrize("name", NAMES)
def test_records_as_sent(name: str) -> None:
    check(name, [chunk.encode() for chunk in STREAMS[name]["chunks"]])


@pytest.mark.parametrize("name", NAMES)
def test_whole_and_byte_by_byte(name: str) -> None:
    data = body(name)
    check(name, [data])
    check(name, [data[i : i + 1] for i in range(len(data))])


@pytest.mark.parametrize(
    "name", ["tgi", "vllm-chat", "llamacpp", "bedrock-anthropic", "bedrock-cohere", "lmi"]
)
def test_every_single_split(name: str) -> None:
    data = body(name)
    for point in range(len(data) + 1):
        check(name, cut(data, [point]))


@given(st.sampled_from(NAMES), st.lists(st.integers(0, 6000), max_size=40))
@settings(max_examples=400, deadline=None)
def test_any_split(name: str, points: list[int]) -> None:
    check(name, cut(body(name), points))


@pytest.mark.parametrize("name", NAMES)
def test_named_format(name: str) -> None:
    check(name, cut(body(name), range(0, 10_000, 37)), format=STREAMS[name]["format"])


@pytest.mark.parametrize("name", NAMES)
def test_async(name: str) -> None:
    async def agen(chunks: list[bytes]) -> AsyncIterator[bytes]:
        for chunk in chunks:
            await asyncio.sleep(0)
            yield chunk

    async def run() -> tuple[str, formats.AsyncTokenStream, lines.InBandError | None]:
        stream = lines.aiter_tokens(agen(cut(body(name), range(0, 10_000, 13))))
        pieces = []
        try:
            async for piece in stream:
                pieces.append(piece)
        except lines.InBandError as exc:
            return "".join(pieces), stream, exc
        return "".join(pieces), stream, None

    text, stream, error = asyncio.run(run())
    expected = STREAMS[name]
    assert text == expected["text"]
    assert (error.message if error else None) == expected["error"]
    if not error:
        assert stream.finish_reason == expected["finish_reason"]
        assert stream.format == expected["format"]


@pytest.mark.parametrize("name", NAMES)
def test_json_records(name: str) -> None:
    expected = STREAMS[name]
    records = []
    for chunk in expected["chunks"]:
        field, _, value = chunk.partition(":")
        if field == "data" and value.strip() == "[DONE]":
            break
        records.append(json.loads(value) if field == "data" else {"error": json.loads(value)} if field == "error"
                       else json.loads(chunk))  # fmt: skip
    stream = lines.iter_json(cut(body(name), range(0, 10_000, 11)))
    got: list[Any] = []
    if expected["error"]:
        with pytest.raises(lines.InBandError) as caught:
            got.extend(stream)
        assert caught.value.message == expected["error"]
    else:
        got.extend(stream)
        assert stream.finish_reason == expected["finish_reason"]
    assert got == records[: len(got)]
    assert len(got) >= 1


def test_in_band_error_fields_and_pickle() -> None:
    chunks = [chunk.encode() for chunk in STREAMS["vllm-error"]["chunks"]]
    with pytest.raises(lines.InBandError) as caught:
        list(lines.iter_tokens(chunks))
    error = caught.value
    assert (error.error_type, error.code) == ("BadRequestError", 400)
    assert str(error) == "BadRequestError: The decoder prompt is longer than the maximum model length"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.error_type, copy.code, copy.record) == (
        error.message,
        error.error_type,
        error.code,
        error.record,
    )


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b'data:{"error":"Input validation error: max_new_tokens","error_type":"validation"}\n\n', "Input"),
        (b'{"error": "invoke handler failure", "code": 424}\n', "invoke handler failure"),
        (b'data: {"object": "error", "message": "old vLLM", "type": "x", "code": 400}\n\n', "old vLLM"),
        (b"event: error\ndata: upstream closed\n\n", "upstream closed"),
        (b'event: error\ndata: {"type": "error", "error": {"message": "Overloaded"}}\n\n', "Overloaded"),
        (b'{"type":"error","error":{"type":"overloaded_error","message":"Busy"}}', "Busy"),
    ],
)
def test_in_band_errors_raise(stream: bytes, message: str) -> None:
    with pytest.raises(lines.InBandError, match=message):
        list(lines.iter_tokens([stream]))
    with pytest.raises(lines.InBandError, match=message):
        list(lines.iter_json([stream]))


def test_bedrock_objects_without_separator() -> None:
    objects = [{"outputText": "a{"}, {"outputText": '"}'}, {"outputText": "\\"}]
    data = "".join(json.dumps(o) for o in objects).encode()
    for point in range(len(data) + 1):
        assert list(lines.iter_json(cut(data, [point]))) == objects
        assert "".join(lines.iter_tokens(cut(data, [point]))) == 'a{"}\\'


def test_plain_text_and_unknown_format() -> None:
    stream = lines.iter_tokens([b" Hello ", "wörld".encode()[:2], "wörld".encode()[2:]])
    assert "".join(stream) == " Hello wörld"
    assert stream.format == "text"
    assert "".join(lines.iter_tokens([b'{"a": 1}'], format="text")) == '{"a": 1}'
    with pytest.raises(ValueError, match="unknown stream format 'nope'"):
        lines.iter_tokens([], format="nope")
    with pytest.raises(lines.InvalidJSON):
        list(lines.iter_json([b"plain text\n"]))
    assert "".join(lines.iter_tokens([b'data: {"x": 1}\n\n'])) == ""  # no known shape: no text


def test_aliases() -> None:
    data = body("vllm-chat")
    assert "".join(lines.iter_tokens([data], format="vllm")) == STREAMS["vllm-chat"]["text"]
    assert "".join(lines.iter_tokens([body("llamacpp")], format="llama.cpp")) == STREAMS["llamacpp"]["text"]


@pytest.mark.parametrize(
    ("record", "text"),
    [
        ({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}, "Hi"),
        ({"type": "content_block_delta", "delta": {"type": "input_json_delta", "partial_json": "{"}}, None),
        ({"completion": " old claude", "stop_reason": None}, " old claude"),
        ({"contentBlockDelta": {"delta": {"text": "nova"}}}, "nova"),
        ({"outputText": "titan"}, "titan"),
        ({"generation": "llama"}, "llama"),
        ({"is_finished": False, "event_type": "text-generation", "text": "cohere"}, "cohere"),
        ({"is_finished": True, "event_type": "stream-end", "response": {"text": "all"}}, None),
        ({"generations": [{"text": "old cohere"}]}, "old cohere"),
        ({"outputs": [{"text": "mistral", "stop_reason": None}]}, "mistral"),
        ({"choices": [{"index": 0, "message": {"role": "assistant", "content": "large"}}]}, "large"),
        ({"choices": [{"index": 1, "delta": {"content": "second choice"}}]}, None),
        ({"content": "cpp", "stop": False}, "cpp"),
    ],
)
def test_token_text_of_each_shape(record: dict[str, Any], text: str | None) -> None:
    assert lines.token_text(record) == text


def test_finish_reason_of_older_llamacpp() -> None:
    stream = lines.iter_tokens([b'data: {"content": "x", "stop": true, "stopped_limit": true}\n\n'])
    assert list(stream) == ["x"]
    assert stream.finish_reason == "limit"


def test_close_stops_the_source() -> None:
    closed = []

    def source() -> Iterable[bytes]:
        try:
            while True:
                yield b'{"outputText": "x"}'
        finally:
            closed.append(True)

    stream = lines.iter_tokens(source())
    assert next(stream) == "x"
    stream.close()
    assert closed == [True]
    assert list(stream) == []


@pytest.mark.parametrize("fmt", FORMATS_OF_THE_ENDPOINT)
@pytest.mark.parametrize("straddle", [False, True])
def test_every_format_of_the_local_endpoint(fmt: str, straddle: bool) -> None:
    behavior = Behavior(format=fmt, tokens=45, straddle=straddle, seed=3)
    stream = lines.iter_tokens(list(split_parts(behavior)))
    assert "".join(stream) == generate_text(behavior)
    assert stream.format == formats.resolve_format("text" if fmt == "raw" else fmt.split("-")[0]).name  # type: ignore[union-attr]
    if fmt != "raw":
        assert stream.finish_reason == FINISH_REASONS[fmt]
        assert stream.usage is not None and stream.usage.output_tokens == 45


TYPED_ERRORS = (lines.RecordError, lines.InBandError, UnicodeDecodeError)


@given(
    st.sampled_from(NAMES),
    st.lists(st.tuples(st.integers(0, 6000), st.integers(0, 255)), max_size=4),
    st.integers(0, 6000),
    st.lists(st.integers(0, 6000), max_size=10),
)
@settings(max_examples=500, deadline=None)
def test_mutated_streams_raise_only_typed_errors(
    name: str, flips: list[tuple[int, int]], cut_at: int, points: list[int]
) -> None:
    data = bytearray(body(name))
    for position, value in flips:
        if position < len(data):
            data[position] = value
    mutated = bytes(data[: max(1, cut_at)])
    for view in (lines.iter_tokens, lines.iter_json):
        try:
            for item in view(cut(mutated, points)):
                assert isinstance(item, (str, dict, list, int, float, bool, type(None)))
        except TYPED_ERRORS:
            pass


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_typed_errors(data: bytes, points: list[int]) -> None:
    for view in (lines.iter_tokens, lines.iter_json, lines.iter_sse, lines.iter_lines):
        with contextlib.suppress(*TYPED_ERRORS):
            list(view(cut(data, points)))


def test_a_stream_that_raised_gives_nothing_more() -> None:
    chunks = [chunk.encode() for chunk in STREAMS["tgi-error"]["chunks"]] + [
        b'data:{"token": {"text": "x"}}\n\n'
    ]
    stream = lines.iter_tokens(chunks)
    with pytest.raises(lines.InBandError):
        list(stream)
    assert list(stream) == []
    broken = lines.iter_json([b'{"a": 1}\n{"b": }\n', b'{"c": 3}\n'])
    assert next(broken) == {"a": 1}
    with pytest.raises(lines.InvalidJSON):
        next(broken)
    assert list(broken) == []


class SourceFailed(Exception):
    pass


def test_a_failing_source_ends_the_stream_sync_and_async() -> None:
    # The source's own error comes through once, after the text before it; then the stream gives nothing.
    def source() -> Iterable[bytes]:
        yield b'{"outputText": "a"}\n'
        raise SourceFailed

    stream = formats.TokenStream(source())
    assert next(stream) == "a"
    with pytest.raises(SourceFailed):
        next(stream)
    assert list(stream) == []

    async def asource() -> AsyncIterator[bytes]:
        yield b'{"outputText": "a"}\n'
        raise SourceFailed

    async def run() -> tuple[list[str], list[str]]:
        stream = formats.AsyncTokenStream(asource())
        pieces = [await stream.__anext__()]
        with pytest.raises(SourceFailed):
            await stream.__anext__()
        return pieces, [piece async for piece in stream]

    assert asyncio.run(run()) == (["a"], [])


def test_async_streams_raise_once_and_close_their_source() -> None:
    closed = []

    async def source(chunks: list[bytes]) -> AsyncIterator[bytes]:
        try:
            for chunk in chunks:
                yield chunk
            while True:
                yield b'{"outputText": "x"}\n'
        finally:
            closed.append(True)

    async def run() -> tuple[list[Any], Any, list[Any], bool]:
        error_chunks = [chunk.encode() for chunk in STREAMS["tgi-error"]["chunks"]]
        stream = formats.AsyncRecordStream(source(error_chunks))
        with pytest.raises(lines.InBandError):
            async for _ in stream:
                pass
        after_error = [record async for record in stream]
        endless = formats.AsyncTokenStream(source([]), format="titan")
        first = await endless.__anext__()
        await endless.aclose()
        return after_error, first, [piece async for piece in endless], closed == [True]

    after_error, first, after_close, source_closed = asyncio.run(run())
    assert (after_error, first, after_close, source_closed) == ([], "x", [], True)


@given(
    st.sampled_from([f for f in FORMATS_OF_THE_ENDPOINT if f != "raw"]),
    st.lists(st.text(max_size=6), min_size=1, max_size=12),
    st.lists(st.integers(0, 3000), max_size=30),
)
@settings(max_examples=400, deadline=None)
def test_any_generated_text_any_split(fmt: str, tokens: list[str], points: list[int]) -> None:
    # Tokens with quotes, braces, backslashes, CR/LF, "data:", "[DONE]", any Unicode: the text survives.
    data = b"".join(format_records(fmt, tokens))
    stream = lines.iter_tokens(cut(data, points))
    assert "".join(stream) == "".join(tokens)
    assert stream.finish_reason == FINISH_REASONS[fmt]
