"""``python -m evstream decode``: the messages of a capture or raw event-stream file, or the text and
generated tokens they carry (the arguments are declared in ``__main__``)."""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from . import Decoder, EventStreamError
from .capture import Capture, CaptureError, is_capture, load_chunks, message_to_json, parse_capture
from .cli import CommandError, UsageError, write_text

__all__ = ["run_decode"]


def _load(args: argparse.Namespace) -> Capture:
    try:
        if args.file != "-":
            return load_chunks(args.file, args.chunk_size)
        raw = sys.stdin.buffer.read()
        if is_capture(raw[:256]):
            capture = parse_capture(raw.decode("utf-8"))
        else:
            capture = Capture([raw] if raw else [], [0.0])
        if args.chunk_size:
            data = b"".join(capture.chunks)
            size = args.chunk_size
            capture = Capture([data[i : i + size] for i in range(0, len(data), size)], [], capture.meta)
        return capture
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except (CaptureError, UnicodeDecodeError) as exc:
        raise UsageError(f"{args.file} is not a readable capture: {exc}") from None


def _messages(capture: Capture, name: str) -> Iterator[Any]:
    """The decoded messages; a corrupt stream raises CommandError after the messages before it."""
    decoder = Decoder()
    count = 0
    try:
        for chunk in capture.chunks:
            for message in decoder.feed(chunk):
                count += 1
                yield message
        decoder.close()
    except EventStreamError as exc:
        if count == 0:
            raise CommandError(
                f"{name} is not an event stream or an evstream capture (its first message does not decode: "
                f"{exc})"
            ) from None
        raise CommandError(
            f"the stream is corrupt after message {count}: {type(exc).__name__}: {exc}"
        ) from None
    if count == 0 and capture.chunks and any(capture.chunks):
        raise CommandError(f"{name} holds no event-stream message")


def _payload(message: Any) -> bytes | None:
    """The model's bytes in a data event (SageMaker PayloadPart, Bedrock chunk); None for others."""
    headers = message.headers
    kind = headers.get(":message-type", "event")
    if kind != "event":
        detail = message.payload.decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("message") or json.loads(detail).get("Message") or detail
        code = headers.get(":exception-type") or headers.get(":error-code") or "error"
        raise CommandError(f"the stream carries an error: {code}: {' '.join(str(detail).split())}")
    event_type = headers.get(":event-type")
    if event_type == "chunk":
        try:
            data: bytes = base64.b64decode(json.loads(message.payload)["bytes"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise CommandError(f"a Bedrock chunk event does not carry base64 bytes: {exc}") from None
        return data
    if event_type in ("PayloadPart", None):
        return bytes(message.payload)
    return None


def run_decode(args: argparse.Namespace) -> int:
    from . import lines

    if args.format is not None and not args.tokens:
        raise UsageError("--format applies to --tokens")
    capture = _load(args)
    out: TextIO
    if args.output == "-":
        out = sys.stdout
    else:
        try:
            out = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    try:
        messages = _messages(capture, args.file)
        if not (args.text or args.tokens):
            for index, message in enumerate(messages):
                out.write(json.dumps(message_to_json(message, index), ensure_ascii=False) + "\n")
            return 0
        payloads = (p for p in map(_payload, messages) if p is not None)
        if args.tokens:
            pieces: Iterator[str] = lines.iter_tokens(payloads, format=args.format)
        else:
            pieces = lines.iter_text(payloads)
        write_text(pieces, out)
        return 0
    finally:
        if out is not sys.stdout:
            out.close()
