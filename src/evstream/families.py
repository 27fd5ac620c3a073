"""The formats of model streams: what model servers put in their streamed records (the generated text,
the finish reason and token usage at the end, in-band errors), for every major container and Bedrock
family.

=============  =========  ================================================================================
format         framing    records (one per token unless said)
=============  =========  ================================================================================
``tgi``        SSE        Hugging Face TGI ``/generate_stream``: ``{"token": {"text", "special"}, ...}``;
                          the last adds ``generated_text`` and ``details``
``lmi``        JSON lines DJL Serving / LMI rolling batch: ``{"token": {"text", "log_prob"}}``, the last
                          with ``generated_text`` and ``details``; dynamic batch ``{"outputs": ["..."]}``
``openai``     SSE        vLLM, SGLang, TGI Messages API, llama.cpp ``/v1``: ``chat.completion.chunk``
                          (``choices[].delta.content``) and ``text_completion`` (``choices[].text``),
                          a usage chunk, ``data: [DONE]``
``llamacpp``   SSE        llama.cpp server ``/completion``: ``{"content", "stop"}``, the last with
                          ``stop_type``, ``tokens_predicted``, ``tokens_evaluated``
``anthropic``  JSON       Bedrock, Anthropic Claude messages: ``message_start``, ``content_block_delta``
                          (``delta.text``), ``message_delta`` (``stop_reason``, usage), ``message_stop``
``nova``       JSON       Bedrock, Amazon Nova (Converse-style): ``contentBlockDelta.delta.text``,
                          ``messageStop.stopReason``, ``metadata.usage``
``titan``      JSON       Bedrock, Amazon Titan Text: ``outputText``, ``completionReason``
``llama``      JSON       Bedrock, Meta Llama: ``generation``, ``stop_reason``
``cohere``     JSON       Bedrock, Cohere Command: ``text`` (``event_type: text-generation``),
                          ``is_finished``, ``finish_reason``
``mistral``    JSON       Bedrock, Mistral: ``outputs[].text``, ``outputs[].stop_reason``
``text``       none       plain text: the decoded text is the output
=============  =========  ================================================================================

Bedrock sends one JSON object per chunk with no separator; the last carries
``amazon-bedrock-invocationMetrics`` (token counts), read for every Bedrock family. The framing (SSE,
JSON values, plain text) is told by the start of the stream, and the format by the first record that
has a known shape; ``format=`` names it instead. Reading a stream with them: :mod:`evstream.formats`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from .lines import InBandError

__all__ = [
    "ALIASES",
    "FORMATS",
    "Format",
    "StreamState",
    "Usage",
    "detect_format",
    "record_error",
    "record_text",
    "resolve_format",
]

Record = dict[str, Any]


@dataclasses.dataclass
class Usage:
    """Token counts the stream reported (None where it did not)."""

    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclasses.dataclass
class StreamState:
    """What the stream's records said about the whole generation, complete once it is iterated."""

    finish_reason: str | None = None
    usage: Usage | None = None

    def count(self, input_tokens: Any = None, output_tokens: Any = None) -> None:
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if isinstance(value, int) and not isinstance(value, bool):
                if self.usage is None:
                    self.usage = Usage()
                setattr(self.usage, name, value)

    def finish(self, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self.finish_reason = reason


def _dict(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# -- the formats ----------------------------------------------------------------------------------------


def _tgi_text(r: Record) -> str | None:
    token = r.get("token")
    if isinstance(token, dict):
        if token.get("special") or token.get("special_token"):
            return None  # end-of-sequence and other control tokens are not text
        return _str(token.get("text"))
    outputs = r.get("outputs")  # LMI dynamic batch
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        return outputs[0]
    return None


def _tgi_final(r: Record, state: StreamState) -> None:
    details = r.get("details")
    if isinstance(details, dict):
        reason = details.get("finish_reason")
        if reason == "error":  # LMI's in-band error: an empty special token and this reason
            raise InBandError("generation failed (finish_reason: error)", error_type="error", record=r)
        state.finish(reason)
        state.count(output_tokens=details.get("generated_tokens"))


def _choices(r: Record) -> list[Record]:
    choices = r.get("choices")
    if type(choices) is not list:
        return []
    if len(choices) == 1 and type(choices[0]) is dict and choices[0].get("index", 0) == 0:
        return choices  # the usual chunk: one choice
    return [c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0]


def _openai_text(r: Record) -> str | None:
    for choice in _choices(r):
        delta = choice.get("delta")
        if isinstance(delta, dict):
            return _str(delta.get("content"))
        message = choice.get("message")  # Mistral chat models on Bedrock
        if isinstance(message, dict):
            return _str(message.get("content"))
        return _str(choice.get("text"))
    return None


def _openai_final(r: Record, state: StreamState) -> None:
    for choice in _choices(r):
        state.finish(choice.get("finish_reason") or choice.get("stop_reason"))
    usage = r.get("usage")
    if isinstance(usage, dict):
        state.count(usage.get("prompt_tokens"), usage.get("completion_tokens"))


def _llamacpp_final(r: Record, state: StreamState) -> None:
    if r.get("stop") is True:
        reason = r.get("stop_type")
        if not reason:  # servers before stop_type
            reason = next((n for n in ("eos", "limit", "word") if r.get(f"stopped_{n}")), None)
        state.finish(reason)
        state.count(r.get("tokens_evaluated"), r.get("tokens_predicted"))


_ANTHROPIC_TYPES = frozenset(
    ("message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
     "message_stop", "ping")
)  # fmt: skip


def _anthropic_text(r: Record) -> str | None:
    if r.get("type") == "content_block_delta":
        delta = _dict(r.get("delta"))
        return _str(delta.get("text")) if delta.get("type", "text_delta") == "text_delta" else None
    return _str(r.get("completion"))  # the older text completions API


def _anthropic_final(r: Record, state: StreamState) -> None:
    kind = r.get("type")
    if kind == "message_start":
        usage = _dict(_dict(r.get("message")).get("usage"))
        state.count(usage.get("input_tokens"), usage.get("output_tokens"))
    elif kind == "message_delta":
        state.finish(_dict(r.get("delta")).get("stop_reason"))
        state.count(output_tokens=_dict(r.get("usage")).get("output_tokens"))
    elif kind is None:
        state.finish(r.get("stop_reason"))


_NOVA_KEYS = ("contentBlockDelta", "messageStart", "contentBlockStart", "contentBlockStop", "messageStop")


def _nova_text(r: Record) -> str | None:
    block = r.get("contentBlockDelta")
    return _str(_dict(_dict(block).get("delta")).get("text")) if block is not None else None


def _nova_final(r: Record, state: StreamState) -> None:
    stop = r.get("messageStop")
    if isinstance(stop, dict):
        state.finish(stop.get("stopReason"))
    usage = _dict(_dict(r.get("metadata")).get("usage"))
    if usage:
        state.count(usage.get("inputTokens"), usage.get("outputTokens"))


def _titan_final(r: Record, state: StreamState) -> None:
    state.finish(r.get("completionReason"))
    state.count(r.get("inputTextTokenCount"), r.get("totalOutputTextTokenCount"))


def _llama_final(r: Record, state: StreamState) -> None:
    state.finish(r.get("stop_reason"))
    state.count(r.get("prompt_token_count"), r.get("generation_token_count"))


def _cohere_text(r: Record) -> str | None:
    if r.get("event_type", "text-generation") == "text-generation" and "text" in r:
        return _str(r.get("text"))
    generations = r.get("generations")
    if isinstance(generations, list) and generations and isinstance(generations[0], dict):
        return _str(generations[0].get("text"))
    return None


def _cohere_final(r: Record, state: StreamState) -> None:
    state.finish(r.get("finish_reason"))
    units = _dict(_dict(_dict(r.get("response")).get("meta")).get("billed_units"))
    state.count(units.get("input_tokens"), units.get("output_tokens"))


def _mistral_output(r: Record) -> Record:
    outputs = r.get("outputs")
    return outputs[0] if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict) else {}


def _mistral_final(r: Record, state: StreamState) -> None:
    state.finish(_mistral_output(r).get("stop_reason"))


def _no_final(r: Record, state: StreamState) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class Format:
    """One model server's record shapes: how to recognize a record, and what it carries."""

    name: str
    source: str
    detect: Callable[[Record], bool]
    text: Callable[[Record], str | None]
    final: Callable[[Record, StreamState], None]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "tgi",
            "Hugging Face TGI /generate_stream (SSE); LMI with output_formatter=sse",
            lambda r: isinstance(r.get("token"), dict),
            _tgi_text,
            _tgi_final,
        ),
        Format(
            "lmi",
            "DJL Serving / LMI (JSON lines): rolling batch tokens, dynamic batch outputs",
            lambda r: (
                isinstance(r.get("token"), dict)
                or (
                    isinstance(r.get("outputs"), list)
                    and bool(r["outputs"])
                    and isinstance(r["outputs"][0], str)
                )
            ),
            _tgi_text,
            _tgi_final,
        ),
        Format(
            "openai",
            "OpenAI-compatible chat and completions chunks: vLLM, SGLang, TGI Messages API, llama.cpp /v1",
            lambda r: isinstance(r.get("choices"), list),
            _openai_text,
            _openai_final,
        ),
        Format(
            "llamacpp",
            "llama.cpp server /completion",
            lambda r: "content" in r and "stop" in r,
            lambda r: _str(r.get("content")),
            _llamacpp_final,
        ),
        Format(
            "anthropic",
            "Bedrock: Anthropic Claude messages (and the older text completions)",
            lambda r: r.get("type") in _ANTHROPIC_TYPES or ("completion" in r and "stop_reason" in r),
            _anthropic_text,
            _anthropic_final,
        ),
        Format(
            "nova",
            "Bedrock: Amazon Nova, Converse-style events",
            lambda r: any(key in r for key in _NOVA_KEYS),
            _nova_text,
            _nova_final,
        ),
        Format(
            "titan",
            "Bedrock: Amazon Titan Text",
            lambda r: "outputText" in r,
            lambda r: _str(r.get("outputText")),
            _titan_final,
        ),
        Format(
            "llama",
            "Bedrock: Meta Llama",
            lambda r: "generation" in r,
            lambda r: _str(r.get("generation")),
            _llama_final,
        ),
        Format(
            "cohere",
            "Bedrock: Cohere Command",
            lambda r: "is_finished" in r or "generations" in r,
            _cohere_text,
            _cohere_final,
        ),
        Format(
            "mistral",
            "Bedrock: Mistral text models",
            lambda r: bool(_mistral_output(r)),
            lambda r: _str(_mistral_output(r).get("text")),
            _mistral_final,
        ),
        Format("text", "plain text", lambda r: False, lambda r: None, _no_final),
    )
}
ALIASES = {
    "vllm": "openai",
    "sglang": "openai",
    "djl": "lmi",
    "llama.cpp": "llamacpp",
    "claude": "anthropic",
    "converse": "nova",
    "meta": "llama",
    "raw": "text",
}
# The order records are recognized in: "lmi" shares TGI's token records, so a stream of them is "tgi"
# when it is SSE (TGI, or LMI with output_formatter=sse) and "lmi" when it is JSON lines.
_DETECTION = [f for f in FORMATS.values() if f.name != "text"]


def resolve_format(name: str | None) -> Format | None:
    if name is None:
        return None
    key = ALIASES.get(name.lower(), name.lower())
    if key not in FORMATS:
        known = ", ".join([*FORMATS, *ALIASES])
        raise ValueError(f"unknown stream format {name!r}; known: {known}")
    return FORMATS[key]


def record_error(record: Any) -> InBandError | None:
    """The error a record reports, if it is an in-band error record."""
    if not isinstance(record, dict):
        return None
    error = record.get("error")
    if error:
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or json.dumps(error)
            kind, code = error.get("type"), error.get("code", record.get("code"))
        else:
            message, kind, code = str(error), record.get("error_type"), record.get("code")
        return InBandError(str(message), error_type=_str(kind), code=code, record=record)
    if record.get("object") == "error" and "message" in record:  # vLLM before it wrapped errors
        kind, code = _str(record.get("type")), record.get("code")
        return InBandError(str(record["message"]), error_type=kind, code=code, record=record)
    return None


def detect_format(record: Any) -> Format | None:
    if isinstance(record, dict):
        for fmt in _DETECTION:
            if fmt.detect(record):
                return fmt
    return None


def record_text(record: Any) -> str | None:
    """The generated text in one record, whatever its format (None for records that carry none)."""
    fmt = detect_format(record)
    return fmt.text(record) if fmt is not None else None
