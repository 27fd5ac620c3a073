"""What a bidirectional stream of the local endpoint does: echo, conversation, generate, and the faults.

Independent of HTTP/2: a :class:`Model` reads input events from and writes response events to a
:class:`Channel` (the HTTP/2 listener's stream, with its flow control and signature checks).

Every answer follows the endpoint's latency profile (the ``ttft``, ``itl`` and ``rate`` of its
:class:`.workloads.Behavior`, as the HTTP/1.1 listener's response streams do): the first event of a
turn goes out a TTFT draw after the turn's input ended, each next one an ITL draw later. ``echo``
answers each input part as a turn of one event; ``conversation`` answers a turn in ``parts`` events;
``generate`` takes each turn as a model request (its JSON ``"emulator"`` object sets the generation,
as a response stream's body does) and answers with the generation's records in the endpoint's
format, one event each, stamped with their send and due times (``stamp``, see :mod:`.latency`).
Echoed and conversation answers carry the client's own bytes, which are never stamped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .. import encode
from ..sagemaker.event_signing import EventSignatureError
from .events import bedrock_chunk, exception_frame
from .latency import Pacing, clock_ns, sleep_until, stamp_record, streamed_parts
from .workloads import Behavior

__all__ = [
    "BIDI_FAULTS",
    "HTTP_FAULTS",
    "MODES",
    "STREAM_FAULTS",
    "Bidi",
    "Channel",
    "Exchange",
    "Model",
    "input_error",
]

# fault -> (status, SageMaker error type, Bedrock error type) for faults before the stream.
HTTP_FAULTS = {
    "input-validation": (400, "InputValidationError", "ValidationException"),
    "model-error": (424, "ModelError", "ModelErrorException"),
    "internal-server": (500, "InternalServerError", "InternalServerException"),
    "service-unavailable": (503, "ServiceUnavailableError", "ServiceUnavailableException"),
}
# Faults inside the stream, after `after` response events.
STREAM_FAULTS = ("model-stream-error", "internal-stream-failure", "reset", "stall")
BIDI_FAULTS = (*HTTP_FAULTS, *STREAM_FAULTS)
MODES = ("echo", "conversation", "generate")


@dataclasses.dataclass(frozen=True)
class Bidi:
    """What a bidirectional stream does."""

    mode: str = "echo"
    parts: int = 1  # conversation: response parts per turn
    fault: str = ""
    after: int = 0  # response events before an in-stream fault
    stall: float = 30.0  # seconds the "stall" fault holds the stream silent
    delay: float = 0.0  # seconds before each response event (a model producing tokens at a pace)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.fault and self.fault not in BIDI_FAULTS:
            raise ValueError(f"fault must be one of {', '.join(BIDI_FAULTS)}")
        if self.parts < 1 or self.after < 0 or self.stall < 0 or not 0 <= self.delay <= 60:
            raise ValueError("parts must be >= 1, after and stall >= 0, delay 0-60 s")

    def with_query(self, query: str) -> Bidi:
        """Overrides from a ``ModelQueryString`` (unknown names are the model's, and ignored)."""
        values = dict(urllib.parse.parse_qsl(query))
        changes: dict[str, Any] = {}
        names = (
            ("mode", str),
            ("parts", int),
            ("fault", str),
            ("after", int),
            ("stall", float),
            ("delay", float),
        )
        for name, kind in names:
            if name in values:
                changes[name] = kind(values[name])
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class Exchange:
    """One bidirectional stream as the endpoint saw it (kept, bounded, for tests)."""

    operation: str  # "sagemaker" or "bedrock"
    target: str  # endpoint name or model id
    headers: dict[str, str]
    events_in: int = 0  # input events whose signature was verified
    events_out: int = 0
    signed_end: bool = False  # the input ended with its signed empty envelope
    error: str = ""  # why the endpoint ended the stream early


class Channel(Protocol):
    """One stream as the model sees it."""

    exchange: Exchange

    async def receive(self) -> tuple[dict[str, Any], bytes] | None:
        """The next input event (headers, payload), None at the end of the input; raises
        :class:`EventSignatureError` for an input the service would refuse."""

    async def send(self, frame: bytes, end: bool = False) -> None:
        """Send one encoded response event (``end``: and end the stream)."""

    def reset(self) -> None:
        """Reset the stream (RST_STREAM INTERNAL_ERROR)."""


def input_error(message: str, bedrock: bool) -> bytes:
    if bedrock:
        return exception_frame("validationException", {"message": message})
    headers = {
        ":message-type": "error",
        ":error-code": "InputValidationError",
        ":error-message": message,
    }
    return encode(headers, b"")


class Model:
    """The behaviour of one stream: reads input events, writes response events (paced by ``profile``),
    injects the fault."""

    def __init__(
        self, channel: Channel, behavior: Bidi, bedrock: bool, profile: Behavior | None = None
    ) -> None:
        self.channel = channel
        self.exchange = channel.exchange
        self.behavior = behavior
        self.profile = profile or Behavior()
        self.bedrock = bedrock
        self.reset = False
        self.turn: list[bytes] = []
        self.turns = 0

    async def run(self) -> None:
        if self.behavior.fault and self.behavior.after == 0 and await self._fault():
            return
        mode = self.behavior.mode
        while (item := await self.channel.receive()) is not None:
            headers, payload = item
            part = self._part(headers, payload)
            if part is None:
                continue
            data, data_type, state = part
            if mode == "echo":
                if await self._send_turn([data], data_type, state):
                    return
                continue
            self.turn.append(data)
            if state != "PARTIAL" and await self._reply(data_type):
                return
        if self.turn:  # a last turn the client left open
            await self._reply("UTF8")

    def _part(self, headers: Mapping[str, Any], payload: bytes) -> tuple[bytes, str, str] | None:
        expected = "chunk" if self.bedrock else "PayloadPart"
        if headers.get(":message-type", "event") != "event" or headers.get(":event-type") != expected:
            raise EventSignatureError(f"Expected {expected} events, got {headers.get(':event-type')!r}")
        if self.bedrock:
            try:
                return base64.b64decode(json.loads(payload)["bytes"], validate=True), "BINARY", "COMPLETE"
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise EventSignatureError(f"Malformed chunk event: {exc}") from None
        return (
            payload,
            str(headers.get("DataType", "BINARY")),
            str(headers.get("CompletionState", "COMPLETE")),
        )

    async def _reply(self, data_type: str) -> bool:
        self.turns += 1
        text = b"".join(self.turn)
        self.turn.clear()
        if self.behavior.mode == "generate":
            return await self._generate(text)
        answer = b"turn %d: %s" % (self.turns, text)
        count = self.behavior.parts
        size = -(-len(answer) // count)
        pieces = [answer[index * size : (index + 1) * size] for index in range(count)]
        return await self._send_turn(pieces, data_type, "COMPLETE")

    async def _generate(self, request: bytes) -> bool:
        """Answer a turn with the generation its body asks for; a body with bad options ends the
        stream with a validation error, as the service refuses a malformed input."""
        try:
            generation = self.profile.for_request(request)
        except ValueError as exc:
            self.exchange.error = str(exc)
            await self.channel.send(input_error(str(exc), self.bedrock), end=True)
            self.reset = True  # the stream has ended
            return True
        parts = streamed_parts(dataclasses.replace(generation, straddle=False))
        return await self._send_turn(parts, "UTF8", "COMPLETE", generation)

    async def _send_turn(
        self, pieces: Iterable[bytes], data_type: str, state: str, generation: Behavior | None = None
    ) -> bool:
        """Send one answer, each piece when the profile has it due (the last one with ``state``, the
        others PARTIAL); a ``generation`` stamps its records. True when a fault ended the stream."""
        profile = generation or self.profile
        pacing = Pacing.of(profile.ttft, profile.itl, profile.rate, profile.seed)
        stamp = generation is not None and generation.stamp
        start_ns = clock_ns()  # the turn's input has ended
        remaining = iter(pieces)
        piece = next(remaining, None)
        n = 0
        while piece is not None:
            after = next(remaining, None)  # one ahead: the last piece carries the turn's state
            due_ns = 0
            if pacing is not None:
                due_ns = start_ns + round(pacing.next_due(n) * 1e9)
                await sleep_until(due_ns)
            if await self._answer(piece, data_type, state if after is None else "PARTIAL", stamp, due_ns):
                return True
            piece, n = after, n + 1
        return False

    async def _answer(
        self, data: bytes, data_type: str, state: str, stamp: bool = False, due_ns: int = 0
    ) -> bool:
        """Send one response event (``stamp``: with its send time, and ``due_ns`` when paced); True
        when a fault ended the stream."""
        if self.behavior.delay:
            await asyncio.sleep(self.behavior.delay)
        if stamp:
            data = stamp_record(data, due_ns)
        if self.bedrock:
            frame = bedrock_chunk(data)
        else:
            headers = {
                ":event-type": "PayloadPart",
                ":content-type": "application/octet-stream",
                ":message-type": "event",
                "DataType": data_type,
                "CompletionState": state,
            }
            frame = encode(headers, data)
        await self.channel.send(frame)
        self.exchange.events_out += 1
        if self.behavior.fault and self.exchange.events_out == self.behavior.after:
            return await self._fault()
        return False

    async def _fault(self) -> bool:
        fault = self.behavior.fault
        self.exchange.error = fault
        if fault == "stall":
            await asyncio.sleep(self.behavior.stall)
            return False
        if fault == "reset":
            self.channel.reset()
            self.reset = True
            return True
        if fault == "model-stream-error":
            if self.bedrock:
                body = {"message": "Emulated model stream error", "originalStatusCode": 500,
                        "originalMessage": "model failed"}  # fmt: skip
                frame = exception_frame("modelStreamErrorException", body)
            else:
                body = {"Message": "Emulated model stream error", "ErrorCode": "ModelInvocationTimeExceeded"}
                frame = exception_frame("ModelStreamError", body)
        else:
            name = "internalServerException" if self.bedrock else "InternalStreamFailure"
            frame = exception_frame(name, {"Message": "Emulated internal stream failure"})
        await self.channel.send(frame, end=True)
        self.reset = True  # the stream has ended
        return True
