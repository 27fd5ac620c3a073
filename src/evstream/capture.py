"""Capture files: the chunks of a real event stream, as they arrived, for replay and inspection.

Format (JSON lines, UTF-8): a first line describing the capture, then one line per chunk::

    {"format": "evstream-capture", "version": 1, "source": "...", "created": "2025-01-01T00:00:00Z"}
    {"t": 0.000812, "data": "AAAAhQAAAFT..."}
    {"t": 0.041377, "data": "..."}

``t`` is seconds since the capture started (monotonic clock), ``data`` the chunk's bytes in base64,
exactly as the reader received them: the chunk boundaries are the point of a capture, since they decide
how a decoder is exercised. JSON lines keep a capture appendable while the stream runs, readable with any
tool, and safe to truncate (every complete line is a valid chunk).

Writers: :class:`CaptureWriter` (``write(chunk)`` per chunk) and :func:`tee` (wrap any iterable of chunks,
e.g. an HTTP response body, recording while passing the chunks on). Readers: :func:`read_capture`, and
:func:`load_chunks`, which also accepts a raw event-stream file. ``python -m evstream decode`` dumps a
capture or raw stream file as JSON lines of decoded messages (:func:`message_to_json` is one line).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Union

__all__ = [
    "FORMAT",
    "VERSION",
    "Capture",
    "CaptureError",
    "CaptureWriter",
    "is_capture",
    "load_chunks",
    "message_to_json",
    "parse_capture",
    "read_capture",
    "rechunk",
    "tee",
]

FORMAT = "evstream-capture"
VERSION = 1

PathLike = Union[str, Path]


class CaptureError(ValueError):
    """A file that claims to be a capture but cannot be read as one."""


@dataclass
class Capture:
    """The chunks of one stream, their arrival offsets (seconds) and the header line's fields."""

    chunks: list[bytes]
    offsets: list[float]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(len(c) for c in self.chunks)

    @property
    def duration(self) -> float:
        return self.offsets[-1] if self.offsets else 0.0


class CaptureWriter:
    """Appends chunks to a capture file (a path, or a text stream opened for writing)."""

    def __init__(self, target: PathLike | IO[str], *, source: str = "", **meta: Any) -> None:
        if isinstance(target, (str, Path)):
            self._fp: IO[str] = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._fp = target
            self._owned = False
        self._start: float | None = None
        self.chunks = 0
        self.nbytes = 0
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        header = {"format": FORMAT, "version": VERSION, "source": source, "created": created, **meta}
        self._fp.write(json.dumps(header) + "\n")

    def write(self, chunk: bytes | bytearray | memoryview, t: float | None = None) -> None:
        """Record one chunk; ``t`` (seconds since the start) defaults to now on a monotonic clock."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
        offset = now - self._start if t is None else t
        data = base64.b64encode(bytes(chunk)).decode("ascii")
        self._fp.write(f'{{"t": {offset:.6f}, "data": "{data}"}}\n')
        self.chunks += 1
        self.nbytes += len(chunk)

    def flush(self) -> None:
        self._fp.flush()

    def close(self) -> None:
        if self._owned:
            self._fp.close()
        else:
            self._fp.flush()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def tee(chunks: Iterable[bytes], target: PathLike | IO[str], *, source: str = "") -> Iterator[bytes]:
    """Yield ``chunks`` unchanged while recording them to a capture (closed when the iteration ends)."""
    with CaptureWriter(target, source=source) as writer:
        for chunk in chunks:
            writer.write(chunk)
            yield chunk


def is_capture(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a capture (a raw stream starts with a length, not '{')."""
    return head.lstrip()[:1] == b"{" and FORMAT.encode() in head[:200]


def read_capture(path: PathLike | IO[str]) -> Capture:
    """Read a capture file; a truncated last line (a capture cut short) is ignored."""
    if isinstance(path, (str, Path)):
        with open(path, encoding="utf-8") as fp:
            return parse_capture(fp.read())
    return parse_capture(path.read())


def parse_capture(text: str) -> Capture:
    """A capture from its text (see :func:`read_capture`)."""
    lines = text.splitlines()
    if not lines:
        raise CaptureError("empty file")
    try:
        meta = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise CaptureError(f"line 1 is not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CaptureError(f"line 1 does not declare format {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise CaptureError(f"unsupported capture version {meta.get('version')!r} (this reader: {VERSION})")
    chunks: list[bytes] = []
    offsets: list[float] = []
    last = len(lines)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            chunk = base64.b64decode(record["data"], validate=True)
            offset = float(record.get("t", 0.0))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            if number == last:
                break  # a capture cut short mid-line: keep the complete chunks
            raise CaptureError(f"line {number}: {exc}") from None
        chunks.append(chunk)
        offsets.append(offset)
    return Capture(chunks, offsets, meta)


def load_chunks(path: PathLike, chunk_size: int | None = None) -> Capture:
    """A capture as recorded, or a raw event-stream file cut into ``chunk_size`` chunks (default: one)."""
    with open(path, "rb") as fp:
        head = fp.read(256)
    if is_capture(head):
        capture = read_capture(path)
        if chunk_size:
            capture = Capture(rechunk(b"".join(capture.chunks), chunk_size), [], capture.meta)
        return capture
    raw = Path(path).read_bytes()
    chunks = rechunk(raw, chunk_size) if chunk_size else ([raw] if raw else [])
    return Capture(chunks, [0.0] * len(chunks), {"format": "raw", "source": str(path)})


def rechunk(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into ``size``-byte chunks (the last one shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def _value_to_json(value: Any) -> Any:
    # Plain JSON where the wire type is the obvious one (str, bool, int32); a tagged object otherwise,
    # so a dump says which wire type each header had.
    if isinstance(value, bool) or type(value) in (int, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"type": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return {"type": "uuid", "value": str(value)}
    if isinstance(value, int):
        kind = type(value).__name__.lower()  # Int8, Int16, Int64, Timestamp
        if kind == "timestamp":
            when = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
                milliseconds=int(value)
            )
            return {"type": "timestamp", "value": int(value), "iso": when.isoformat()}
        return {"type": kind, "value": int(value)}
    return {"type": type(value).__name__, "repr": repr(value)}


def message_to_json(message: Any, index: int) -> dict[str, Any]:
    """One decoded message as a JSON-ready dict: headers, then the payload as text or base64."""
    out: dict[str, Any] = {
        "index": index,
        "headers": {name: _value_to_json(v) for name, v in message.headers.items()},
        "payload_length": len(message.payload),
    }
    try:
        out["payload"] = message.payload.decode("utf-8")
    except UnicodeDecodeError:
        out["payload_base64"] = base64.b64encode(message.payload).decode("ascii")
    return out
