"""The event-stream frames the endpoint sends, as the real services shape them."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from .. import encode

__all__ = ["EVENT_HEADERS", "bedrock_chunk", "exception_frame", "payload_part"]

EVENT_HEADERS = {
    ":event-type": "PayloadPart",
    ":content-type": "application/octet-stream",
    ":message-type": "event",
}
_CHUNK_HEADERS = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}


def payload_part(part: bytes) -> bytes:
    """A SageMaker ``PayloadPart`` event."""
    return encode(EVENT_HEADERS, part)


def bedrock_chunk(part: bytes) -> bytes:
    """A Bedrock ``chunk`` event: base64 in JSON."""
    # "p" pads the event as Bedrock does, so frame sizes do not reveal the token length.
    payload = {
        "bytes": base64.b64encode(part).decode(),
        "p": "abcdefghijklmnopqrstuvwxyz"[: 1 + len(part) % 26],
    }
    return encode(_CHUNK_HEADERS, json.dumps(payload).encode())


def exception_frame(exception_type: str, body: Mapping[str, Any]) -> bytes:
    """A modelled in-stream exception."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode(headers, json.dumps(body).encode())
