"""What the load test sends (prompts, and bodies from :mod:`.templates`) and how the output tokens of
each stream are counted.

Prompts come from a JSONL file (one object per line with ``prompt``, ``text`` or ``inputs``, and
optionally ``max_tokens``) or are generated with input and output token counts drawn from
distributions (see :class:`evstream.emulator.latency.Distribution`; here without units).
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping
from typing import Any

from ..emulator.latency import DUE_FIELD, STAMP_FIELD, Distribution
from ..formats import FORMATS, RecordParser
from .templates import BEDROCK_FAMILIES, STREAM_FORMATS, TEMPLATES

__all__ = [
    "Prompt",
    "TokenCounter",
    "Workload",
    "load_prompts",
]


class TokenCounter:
    """Counts the output tokens in each payload of one stream and picks up the local endpoint's stamps
    (``sent_ns`` and ``due_ns``, see :mod:`evstream.emulator.latency`).

    ``mode="parse"`` reads every record with :class:`evstream.formats.RecordParser` (records cut
    anywhere, in-band errors raise) and counts those that carry text; ``mode="events"`` counts one
    token per payload and reads only the stamps, for endpoints known to send one token per event (no
    JSON parsing on the client's hot path).
    """

    __slots__ = ("_parser", "_text", "events_only")

    def __init__(self, stream_format: str, mode: str = "parse") -> None:
        if mode not in ("parse", "events"):
            raise ValueError(f"token counting must be 'parse' or 'events', not {mode!r}")
        self.events_only = mode == "events"
        self._parser = None if self.events_only else RecordParser(stream_format)
        self._text = FORMATS[self._parser.format or "text"].text if self._parser is not None else None

    def feed(self, payload: bytes) -> tuple[int, int, int]:
        """(tokens, send stamp or 0, due time or 0) of this payload."""
        parser = self._parser
        if parser is None:
            sent, due = find_stamps(payload)
            return 1, sent, due
        return self._count(parser.feed(payload))

    def _count(self, records: list[Any]) -> tuple[int, int, int]:
        tokens = sent = due = 0
        text = self._text
        for record in records:
            if type(record) is dict:
                if text is not None and text(record):
                    tokens += 1
                sent = record.get(STAMP_FIELD) or sent
                due = record.get(DUE_FIELD) or due
        return tokens, sent, due

    def close(self) -> int:
        """The end of the stream: the tokens of a last record without a separator (a record cut short
        raises, as the client's views do)."""
        if self._parser is None:
            return 0
        return self._count(self._parser.close())[0]


_SENT_KEY = b'"' + STAMP_FIELD.encode() + b'":'
_DUE_KEY = b'"' + DUE_FIELD.encode() + b'":'


def find_stamps(payload: bytes) -> tuple[int, int]:
    """(sent_ns, due_ns) of the last stamped record in a payload, 0 where absent; without parsing it
    (the endpoint writes them as the record's last members: ``,"due_ns":D,"sent_ns":S}``)."""
    head, found, tail = payload.rpartition(_SENT_KEY)
    if not found:
        return 0, 0
    try:
        sent = int(tail.partition(b"}")[0])
        _, found, due = head.rpartition(_DUE_KEY)
        return sent, (int(due[:-1]) if found else 0)  # due ends with the comma before "sent_ns"
    except ValueError:
        return 0, 0


# -- prompts ----------------------------------------------------------------------------------------

# Common short English words: about one token each in the tokenizers of the models above.
_WORDS = tuple(
    " ".join(
        (
            "the of and to in a is that for it as was with be by on not he this are or his from at which",
            "but have an they you were her she there been one all we their has would when if so no what up",
            "more out time can said about other into some could them see only its then now two first may",
        )
    ).split()
)


@dataclasses.dataclass(frozen=True)
class Prompt:
    text: str
    max_tokens: int


_TEXT = _WORDS * 64  # a fixed word sequence long enough for prompts to start anywhere in it


def _prompt_text(start: int, n: int) -> str:
    """A generated prompt of about ``n`` tokens: ``n`` words of the fixed sequence from word ``start``."""
    words = _TEXT[start : start + n]
    while len(words) < n:
        words += _TEXT[: n - len(words)]
    return " ".join(words)


def load_prompts(path: str, default_max_tokens: int) -> list[Prompt]:
    """Prompts from a JSONL file; a clear ValueError names the first bad line."""
    prompts = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
            text = item.get(next((k for k in ("prompt", "text", "inputs") if k in item), "prompt"))
            max_tokens = item.get("max_tokens", default_max_tokens)
            if not isinstance(text, str) or not isinstance(max_tokens, int) or max_tokens < 1:
                raise ValueError(
                    f'{path}:{number}: want {{"prompt": "...", "max_tokens": N >= 1 (optional)}}'
                )
            prompts.append(Prompt(text, max_tokens))
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


# Bodies a workload keeps (see Workload.request): a few MB at most for prompts of a few hundred tokens.
_KEPT_BODIES = 4096


@dataclasses.dataclass
class Workload:
    """The request bodies of a run: a template, and prompts from a list or generated per request.

    ``emulator`` (a dict) is added to every body as ``"emulator"``: the local endpoint's per-request
    options (its output length, latency profile, send-time stamps).
    """

    template: str = "tgi"
    prompts: list[Prompt] | None = None
    input_tokens: Distribution = dataclasses.field(default_factory=lambda: Distribution("constant", 32))
    output_tokens: Distribution = dataclasses.field(default_factory=lambda: Distribution("constant", 64))
    emulator: Mapping[str, Any] | None = None
    count: str = "parse"
    stream_format: str = ""  # what the answers are in (see evstream.formats); default: the template's
    _bodies: dict[tuple[int, ...], bytes] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"template must be one of {', '.join(TEMPLATES)}, not {self.template!r}")

    @property
    def bedrock(self) -> bool:
        return self.template in BEDROCK_FAMILIES

    def body(self, rng: random.Random) -> bytes:
        """The next request body."""
        return self.request(rng)[0]

    def request(self, rng: random.Random) -> tuple[bytes, int]:
        """The next request body, and the output length it asks for.

        A body is a function of a few draws (which prompt, or where a generated one starts and how
        long it is; the output length), so the bodies made are kept and made again only for new
        draws: a request starts on the event loop that delivers the other streams' events, and the
        JSON encoding of a cold body held it longer than the lookup."""
        if self.prompts:
            index = rng.randrange(len(self.prompts))
            key: tuple[int, ...] = (index,)
            max_tokens = self.prompts[index].max_tokens
        else:
            n = max(1, round(self.input_tokens.sample(rng)))
            start = rng.randrange(len(_WORDS))
            max_tokens = max(1, round(self.output_tokens.sample(rng)))
            key = (start, n, max_tokens)
        body = self._bodies.get(key)
        if body is None:
            text = self.prompts[key[0]].text if self.prompts else _prompt_text(key[0], key[1])
            document = TEMPLATES[self.template](text, max_tokens)
            if self.emulator is not None:
                document["emulator"] = {**self.emulator, "tokens": max_tokens}
            body = json.dumps(document).encode()
            if len(self._bodies) >= _KEPT_BODIES:
                self._bodies.clear()
            self._bodies[key] = body
        return body, max_tokens

    def counter(self) -> TokenCounter:
        return TokenCounter(self.stream_format or STREAM_FORMATS[self.template], self.count)
