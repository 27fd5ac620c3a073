"""What a generation produces: the token text, its records in each container format, and the parts.

One token generator for the whole project: the endpoint streams it, the tests and the benchmarks
compute the text a client must reassemble from it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any

from .faults import FAULTS
from .latency import check_profile

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "Behavior",
    "generate_records",
    "generate_text",
    "split_parts",
    "token",
]

FORMATS = ("tgi", "lmi", "openai", "raw")

# The Content-Type a container of each format answers with.
CONTENT_TYPES = {
    "tgi": "text/event-stream",
    "lmi": "application/jsonlines",
    "openai": "text/event-stream",
    "raw": "text/plain; charset=utf-8",
}
# Multi-byte characters and newlines inside tokens, so parts cut anywhere exercise the reassembly.
_WORDS = (
    " Event",
    " streams",
    " carry",
    " each",
    " token",
    " from",
    " the",
    " model",
    " to",
    " you",
    ",",
    " one",
    " frame",
    " at",
    " a",
    " time",
    ".",
    "\n",
    " Unicode",
    " survives",
    ":",
    " café",
    ",",
    " naïve",
    ",",
    " 日本語",
    ",",
    " emoji",
    " 🙂",
    "🚀",
    ".",
    "\n",
    ' "Quoted"',
    " text",
    " and",
    " tabs",
    "\t",
    " too",
    ".",
    "\n",
)
# Part sizes used when parts straddle records: small and odd, so every cut lands inside lines, JSON
# objects and multi-byte characters at some point.
_STRADDLE_SIZES = (1, 2, 3, 5, 7, 11, 13, 17, 29, 64)


@dataclasses.dataclass
class Behavior:
    """What one streaming invocation produces. Every field can be set per request."""

    format: str = "tgi"
    tokens: int = 16
    rate: float = 0.0  # tokens per second; 0 sends as fast as the connection takes them
    chunk_events: int = 1  # event-stream frames per HTTP chunk
    chunk_bytes: int = 0  # > 0: re-cut the frame bytes into HTTP chunks of this size
    straddle: bool = False  # cut PayloadParts across records and UTF-8 characters
    fault: str = ""
    after: int = 0  # PayloadParts sent before an in-stream fault
    fault_times: int = -1  # how many attempts with the same body get the fault; -1: all of them
    error_code: str = "ModelInvocationTimeExceeded"
    stall: float = 3600.0
    seed: int = 0
    coalesce: bool = True  # when rate is 0: several HTTP chunks per socket write
    ttft: str = ""  # latency profile (see latency.Distribution): time to the first token ...
    itl: str = ""  # ... and between tokens, e.g. "normal:20ms,4ms"
    stamp: bool = False  # add the send time ("sent_ns") to each JSON record

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.fault and self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, not {self.fault!r}")
        if self.tokens < 0 or self.chunk_events < 1 or self.chunk_bytes < 0 or self.rate < 0:
            raise ValueError("tokens, rate and chunk_bytes must be >= 0 and chunk_events >= 1")
        check_profile(self.ttft, self.itl, self.stamp, self.straddle)

    def replace(self, overrides: Mapping[str, Any]) -> Behavior:
        fields = {f.name: f.type for f in dataclasses.fields(self)}
        unknown = set(overrides) - set(fields)
        if unknown:
            raise ValueError(f"unknown emulator options: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)


def token(i: int, seed: int = 0) -> str:
    """Token ``i`` of the generation with this seed."""
    return _WORDS[(i + seed) % len(_WORDS)]


def generate_text(behavior: Behavior) -> str:
    """The text of a whole generation: what a client must reassemble from the stream."""
    return "".join(token(i, behavior.seed) for i in range(behavior.tokens))


def generate_records(behavior: Behavior) -> Iterator[bytes]:
    """One record per token in the container's wire format (SSE event, JSON line or raw text)."""
    fmt, seed = behavior.format, behavior.seed
    text: list[str] = []
    for i in range(behavior.tokens):
        tok = token(i, seed)
        if fmt == "raw":
            yield tok.encode()
        elif fmt == "lmi":
            record: dict[str, Any] = {"token": {"id": i, "text": tok, "log_prob": -0.5}}
            yield json.dumps(record, ensure_ascii=False).encode() + b"\n"
        elif fmt == "tgi":
            text.append(tok)
            last = i == behavior.tokens - 1
            record = {
                "index": i + 1,
                "token": {"id": 1000 + i, "text": tok, "logprob": -0.97, "special": False},
                "generated_text": "".join(text) if last else None,
                "details": None,
            }
            yield b"data:" + json.dumps(record, ensure_ascii=False).encode() + b"\n\n"
        else:
            record = {
                "id": "chatcmpl-emulator",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "emulator",
                "choices": [{"index": 0, "delta": {"content": tok}, "finish_reason": None}],
            }
            yield b"data: " + json.dumps(record, ensure_ascii=False).encode() + b"\n\n"
    if fmt == "openai":
        yield b"data: [DONE]\n\n"


def split_parts(behavior: Behavior) -> Iterator[bytes]:
    """The PayloadPart payloads: one record each, or cut across records when ``straddle`` is set."""
    records = generate_records(behavior)
    if not behavior.straddle:
        yield from records
        return
    pending = bytearray()
    sizes = _STRADDLE_SIZES
    n = behavior.seed
    for record in records:
        pending += record
        while len(pending) >= sizes[n % len(sizes)]:
            size = sizes[n % len(sizes)]
            n += 1
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)
