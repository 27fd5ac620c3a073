"""What a generation produces: the token text, its records in each container format, and the parts.

One token generator for the whole project: the endpoint streams it, the tests and the benchmarks
compute the text a client must reassemble from it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .faults import FAULTS
from .latency import check_profile

__all__ = [
    "BEDROCK_FORMATS",
    "CONTENT_TYPES",
    "FINISH_REASONS",
    "FORMATS",
    "PROMPT_TOKENS",
    "Behavior",
    "format_records",
    "generate_records",
    "generate_text",
    "split_parts",
    "token",
]

# Container formats (SageMaker) and Bedrock model families, named as evstream.formats names them, plus
# "openai-completions" (the completions API of the same servers) and "raw" (the token bytes alone).
SSE, JSON_LINES, JSON = "text/event-stream", "application/jsonlines", "application/json"
CONTENT_TYPES = {
    "tgi": SSE,
    "lmi": JSON_LINES,
    "openai": SSE,
    "openai-completions": SSE,
    "llamacpp": SSE,
    "anthropic": JSON,
    "nova": JSON,
    "titan": JSON,
    "llama": JSON,
    "cohere": JSON,
    "mistral": JSON,
    "raw": "text/plain; charset=utf-8",
}
FORMATS = tuple(CONTENT_TYPES)
BEDROCK_FORMATS = ("anthropic", "nova", "titan", "llama", "cohere", "mistral")
PROMPT_TOKENS = 8  # the input token count the formats that report usage report
FINISH_REASONS = {
    "tgi": "length",
    "lmi": "length",
    "openai": "length",
    "openai-completions": "length",
    "llamacpp": "limit",
    "anthropic": "max_tokens",
    "nova": "max_tokens",
    "titan": "LENGTH",
    "llama": "length",
    "cohere": "MAX_TOKENS",
    "mistral": "length",
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


MAX_TOKENS = 1_000_000
MAX_CHUNK_EVENTS = 4096


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
        for field in dataclasses.fields(self):
            value, default = getattr(self, field.name), field.default
            # JSON gives ints for floats; a bool is an int to Python, but never a count here.
            wanted = (int, float) if isinstance(default, float) else type(default)
            if not isinstance(value, wanted) or (isinstance(value, bool) and not isinstance(default, bool)):
                raise ValueError(f"{field.name} must be a {type(default).__name__}, not {value!r}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.fault and self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, not {self.fault!r}")
        if self.tokens < 0 or self.chunk_events < 1 or self.chunk_bytes < 0 or self.rate < 0:
            raise ValueError("tokens, rate and chunk_bytes must be >= 0 and chunk_events >= 1")
        # What one request may make the endpoint hold: a whole response, or the frames of one HTTP chunk.
        if self.tokens > MAX_TOKENS or self.chunk_events > MAX_CHUNK_EVENTS:
            raise ValueError(f"at most {MAX_TOKENS} tokens and {MAX_CHUNK_EVENTS} events per chunk")
        check_profile(self.ttft, self.itl, self.stamp, self.straddle)

    def replace(self, overrides: Mapping[str, Any]) -> Behavior:
        fields = {f.name: f.type for f in dataclasses.fields(self)}
        unknown = set(overrides) - set(fields)
        if unknown:
            raise ValueError(f"unknown emulator options: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)

    def for_request(self, body: bytes) -> Behavior:
        """This behaviour with a request body's overrides: its ``"emulator"`` object, and TGI's
        ``parameters.max_new_tokens`` as the token count. Any body is a valid model input; only a JSON
        object can carry options. ValueError for options that are not valid."""
        try:
            document = json.loads(body) if body[:1] == b"{" else {}
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            document = {}
        overrides = document.get("emulator") or {}
        params = document.get("parameters") or {}
        if not isinstance(overrides, dict) or not isinstance(params, dict):
            raise ValueError('"emulator" and "parameters" must be JSON objects')
        if "max_new_tokens" in params and "tokens" not in overrides:
            overrides = {**overrides, "tokens": params["max_new_tokens"]}
        try:
            return self.replace(overrides) if overrides else self
        except TypeError as exc:
            raise ValueError(str(exc)) from None


def token(i: int, seed: int = 0) -> str:
    """Token ``i`` of the generation with this seed."""
    return _WORDS[(i + seed) % len(_WORDS)]


def generate_text(behavior: Behavior) -> str:
    """The text of a whole generation: what a client must reassemble from the stream."""
    return "".join(token(i, behavior.seed) for i in range(behavior.tokens))


def generate_records(behavior: Behavior) -> Iterator[bytes]:
    """The records of a generation in the format's wire form, one per token plus the format's opening
    and closing records (role chunk, finish reason, usage, ``[DONE]``), as each server sends them:
    SSE events, JSON lines, or Bedrock's JSON objects with no separator. The last token's record
    carries the finish reason (see ``FINISH_REASONS``) and usage (``PROMPT_TOKENS`` in, ``tokens`` out)."""
    return format_records(behavior.format, [token(i, behavior.seed) for i in range(behavior.tokens)])


def format_records(fmt: str, tokens: list[str]) -> Iterator[bytes]:
    """The records of a generation of these tokens in format ``fmt`` (see :func:`generate_records`)."""
    if fmt == "raw":
        return (tok.encode() for tok in tokens)
    return _RECORDS[fmt](tokens)


def _dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def _sse(record: dict[str, Any], prefix: bytes = b"data: ") -> bytes:
    return prefix + _dumps(record) + b"\n\n"


_METRICS = "amazon-bedrock-invocationMetrics"


def _bedrock_metrics(n: int) -> dict[str, Any]:
    return {
        "inputTokenCount": PROMPT_TOKENS,
        "outputTokenCount": n,
        "invocationLatency": 1,
        "firstByteLatency": 1,
    }


def _tgi(tokens: list[str]) -> Iterator[bytes]:
    n = len(tokens)
    for i, tok in enumerate(tokens):
        last = i == n - 1
        record = {
            "index": i + 1,
            "token": {"id": 1000 + i, "text": tok, "logprob": -0.97, "special": False},
            "generated_text": "".join(tokens) if last else None,
            "details": {"finish_reason": "length", "generated_tokens": n, "seed": None} if last else None,
        }
        yield _sse(record, b"data:")


def _lmi(tokens: list[str]) -> Iterator[bytes]:
    n = len(tokens)
    for i, tok in enumerate(tokens):
        record: dict[str, Any] = {"token": {"id": i, "text": tok, "log_prob": -0.5}}
        if i == n - 1:
            record["generated_text"] = "".join(tokens)
            record["details"] = {"finish_reason": "length", "generated_tokens": n, "inputs": "emulator"}
        yield _dumps(record) + b"\n"


def _openai(tokens: list[str], chat: bool = True) -> Iterator[bytes]:
    # One chunk per token (vLLM's role chunk aside), the last with the finish reason and, as vLLM and
    # SGLang send with stream_options.continuous_usage_stats, the usage; then [DONE].
    n = len(tokens)
    head: dict[str, Any] = {"id": "cmpl-emulator", "created": 0, "model": "emulator"}
    head["object"] = "chat.completion.chunk" if chat else "text_completion"
    for i, tok in enumerate(tokens):
        choice = {"index": 0, "delta": {"content": tok}} if chat else {"index": 0, "text": tok}
        record = {**head, "choices": [{**choice, "logprobs": None, "finish_reason": None}]}
        if i == n - 1:
            record["choices"][0]["finish_reason"] = "length"
            record["usage"] = {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": n,
                "total_tokens": PROMPT_TOKENS + n,
            }
        yield _sse(record)
    yield b"data: [DONE]\n\n"


def _llamacpp(tokens: list[str]) -> Iterator[bytes]:
    n = len(tokens)
    for i, tok in enumerate(tokens):
        yield _sse(
            {"index": 0, "content": tok, "tokens": [], "stop": False, "id_slot": 0, "tokens_predicted": i + 1}
        )
    final = {"index": 0, "content": "", "tokens": [], "stop": True, "model": "emulator", "stop_type": "limit"}
    final.update(tokens_predicted=n, tokens_evaluated=PROMPT_TOKENS, truncated=False)
    yield _sse(final)


def _anthropic(tokens: list[str]) -> Iterator[bytes]:
    message = {
        "id": "msg_emulator",
        "type": "message",
        "role": "assistant",
        "model": "emulator",
        "content": [],
    }
    usage = {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}
    yield _dumps({"type": "message_start", "message": {**message, "stop_reason": None, "usage": usage}})
    yield _dumps({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    for tok in tokens:
        yield _dumps(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": tok}}
        )
    yield _dumps({"type": "content_block_stop", "index": 0})
    delta = {"stop_reason": "max_tokens", "stop_sequence": None}
    yield _dumps({"type": "message_delta", "delta": delta, "usage": {"output_tokens": len(tokens)}})
    yield _dumps({"type": "message_stop", _METRICS: _bedrock_metrics(len(tokens))})


def _nova(tokens: list[str]) -> Iterator[bytes]:
    yield _dumps({"messageStart": {"role": "assistant"}})
    for tok in tokens:
        yield _dumps({"contentBlockDelta": {"delta": {"text": tok}, "contentBlockIndex": 0}})
    yield _dumps({"contentBlockStop": {"contentBlockIndex": 0}})
    yield _dumps({"messageStop": {"stopReason": "max_tokens"}})
    usage = {"inputTokens": PROMPT_TOKENS, "outputTokens": len(tokens)}
    yield _dumps({"metadata": {"usage": usage, "metrics": {}}, _METRICS: _bedrock_metrics(len(tokens))})


def _titan(tokens: list[str]) -> Iterator[bytes]:
    n = len(tokens)
    for i, tok in enumerate(tokens):
        record: dict[str, Any] = {"outputText": tok, "index": 0, "totalOutputTextTokenCount": i + 1}
        record.update(completionReason=None, inputTextTokenCount=PROMPT_TOKENS)
        if i == n - 1:
            record.update({"completionReason": "LENGTH", _METRICS: _bedrock_metrics(n)})
        yield _dumps(record)


def _llama(tokens: list[str]) -> Iterator[bytes]:
    n = len(tokens)
    for i, tok in enumerate(tokens):
        record: dict[str, Any] = {"generation": tok, "prompt_token_count": PROMPT_TOKENS if i == 0 else None}
        record.update(generation_token_count=i + 1, stop_reason=None)
        if i == n - 1:
            record.update({"stop_reason": "length", _METRICS: _bedrock_metrics(n)})
        yield _dumps(record)


def _cohere(tokens: list[str]) -> Iterator[bytes]:
    yield _dumps({"is_finished": False, "event_type": "stream-start", "generation_id": "emulator"})
    for tok in tokens:
        yield _dumps({"is_finished": False, "event_type": "text-generation", "text": tok})
    units = {"input_tokens": PROMPT_TOKENS, "output_tokens": len(tokens)}
    response = {"text": "".join(tokens), "finish_reason": "MAX_TOKENS", "meta": {"billed_units": units}}
    yield _dumps(
        {"is_finished": True, "event_type": "stream-end", "response": response, "finish_reason": "MAX_TOKENS",
         _METRICS: _bedrock_metrics(len(tokens))}
    )  # fmt: skip


def _mistral(tokens: list[str]) -> Iterator[bytes]:
    n = len(tokens)
    for i, tok in enumerate(tokens):
        record: dict[str, Any] = {"outputs": [{"text": tok, "stop_reason": "length" if i == n - 1 else None}]}
        if i == n - 1:
            record[_METRICS] = _bedrock_metrics(n)
        yield _dumps(record)


_RECORDS: dict[str, Callable[[list[str]], Iterator[bytes]]] = {
    "tgi": _tgi,
    "lmi": _lmi,
    "openai": _openai,
    "openai-completions": lambda tokens: _openai(tokens, chat=False),
    "llamacpp": _llamacpp,
    "anthropic": _anthropic,
    "nova": _nova,
    "titan": _titan,
    "llama": _llama,
    "cohere": _cohere,
    "mistral": _mistral,
}


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
