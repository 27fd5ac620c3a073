"""A local SageMaker Runtime endpoint that streams real event-stream frames.

Only the standard library (asyncio) is used, so the endpoint controls every byte it sends: HTTP chunk
boundaries, frames cut short, stalls. It serves:

* ``POST /endpoints/{name}/invocations-response-stream``: event-stream frames over chunked HTTP, with the
  response headers of the real service (a boto3 ``sagemaker-runtime`` client works unchanged against it);
* ``POST /endpoints/{name}/invocations``: the whole generation in one response;
* ``POST /invocations`` and ``GET /ping``: the model container API, streaming the raw token bytes chunked,
  so one emulator can stand in for a container behind another one running in proxy mode.

What a request produces is set by the server's :class:`Behavior`, overridden per request by an
``"emulator"`` object in a JSON request body (``{"inputs": "...", "emulator": {"tokens": 5}}``);
``parameters.max_new_tokens`` sets the token count as TGI does.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import datetime
import hashlib
import hmac
import json
import os
import socket
import ssl as ssl_module
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from . import encode

__all__ = [
    "FAULTS",
    "FORMATS",
    "Behavior",
    "Emulator",
    "EmulatorProcess",
    "EmulatorThread",
    "RecordedRequest",
    "generate_records",
    "generate_text",
    "split_parts",
]

FORMATS = ("tgi", "lmi", "openai", "raw")

# Faults before the stream (an HTTP error or a stall before the response headers) and inside it
# (after `after` PayloadParts).
HTTP_FAULTS: dict[str, tuple[int, str, str]] = {
    "validation": (400, "ValidationError", "Emulated validation error"),
    "model-error": (424, "ModelError", "Received server error (500) from primary with message"),
    "service-unavailable": (503, "ServiceUnavailable", "Emulated service unavailable"),
    "internal-failure": (500, "InternalFailure", "Emulated internal failure"),
    "throttling": (400, "ThrottlingException", "Rate exceeded"),
}
STREAM_FAULTS = (
    "model-stream-error",  # :exception-type=ModelStreamError with ErrorCode
    "internal-stream-failure",  # :exception-type=InternalStreamFailure
    "error-event",  # unmodelled :message-type=error
    "truncate",  # a frame cut in half, then a clean end of the chunked body
    "disconnect",  # the connection closed without the terminating chunk
    "stall",  # no bytes for `stall` seconds, then the rest
    "corrupt",  # a frame whose message CRC is wrong
    "huge-length",  # a prelude claiming a 1 GiB frame
    "garbage",  # bytes that are not a frame at all
    "reset",  # the connection reset (TCP RST) in the middle of the body
)
FAULTS = (*HTTP_FAULTS, "stall-headers", *STREAM_FAULTS)

_EVENT_HEADERS = {
    ":event-type": "PayloadPart",
    ":content-type": "application/octet-stream",
    ":message-type": "event",
}
_CONTENT_TYPES = {
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

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.fault and self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, not {self.fault!r}")
        if self.tokens < 0 or self.chunk_events < 1 or self.chunk_bytes < 0 or self.rate < 0:
            raise ValueError("tokens, rate and chunk_bytes must be >= 0 and chunk_events >= 1")

    def replace(self, overrides: Mapping[str, Any]) -> Behavior:
        fields = {f.name: f.type for f in dataclasses.fields(self)}
        unknown = set(overrides) - set(fields)
        if unknown:
            raise ValueError(f"unknown emulator options: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)


def _token(i: int, seed: int) -> str:
    return _WORDS[(i + seed) % len(_WORDS)]


def generate_text(behavior: Behavior) -> str:
    """The text of a whole generation: what a client must reassemble from the stream."""
    return "".join(_token(i, behavior.seed) for i in range(behavior.tokens))


def generate_records(behavior: Behavior) -> Iterator[bytes]:
    """One record per token in the container's wire format (SSE event, JSON line or raw text)."""
    fmt, seed = behavior.format, behavior.seed
    text: list[str] = []
    for i in range(behavior.tokens):
        tok = _token(i, seed)
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


@dataclasses.dataclass
class RecordedRequest:
    """A request as the endpoint saw it (kept for tests and for `serve --verbose`)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    signature_valid: bool | None = None


class _HTTPError(Exception):
    def __init__(self, status: int, error_type: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.extra = extra


_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    424: "Failed Dependency",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_MAX_BODY = 6 * 1024 * 1024


def _response_head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Sender:
    """Writes frames as HTTP chunks, grouped by ``chunk_events`` or re-cut by ``chunk_bytes``.

    With ``coalesce``, several HTTP chunks go out in one socket write (up to 16 KiB): the chunk framing
    is unchanged, only the number of system calls drops, as in a busy real server.
    """

    _COALESCE = 16384

    def __init__(self, writer: asyncio.StreamWriter, behavior: Behavior) -> None:
        self.writer = writer
        self.group = behavior.chunk_events
        self.cut = behavior.chunk_bytes
        self.coalesce = behavior.coalesce and not behavior.rate
        self.pending: list[bytes] = []
        self.carry = b""
        self.out: list[bytes] = []
        self.out_size = 0

    async def frame(self, frame: bytes) -> None:
        self.pending.append(frame)
        if len(self.pending) >= self.group:
            await self._emit()

    async def _emit(self) -> None:
        data = b"".join(self.pending)
        self.pending.clear()
        if self.cut:
            data = self.carry + data
            whole = len(data) - len(data) % self.cut
            self.carry = data[whole:]
            chunks = b"".join(_chunk(data[i : i + self.cut]) for i in range(0, whole, self.cut))
        else:
            chunks = _chunk(data)
        if not self.coalesce:
            self.writer.write(chunks)
            await self.writer.drain()
            return
        self.out.append(chunks)
        self.out_size += len(chunks)
        if self.out_size >= self._COALESCE:
            await self._write_out()

    async def _write_out(self) -> None:
        if self.out:
            self.writer.write(b"".join(self.out))
            self.out.clear()
            self.out_size = 0
        await self.writer.drain()

    async def flush(self) -> None:
        """Everything so far onto the socket (before a pause, a fault or the end)."""
        if self.pending:
            await self._emit()
        await self._write_out()

    async def end(self) -> None:
        await self.flush()
        if self.carry:
            self.writer.write(_chunk(self.carry))
            self.carry = b""
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()


class Emulator:
    """The endpoint, run on the current event loop (see :class:`EmulatorThread` for a thread)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        behavior: Behavior | None = None,
        credentials: Mapping[str, str] | None = None,
        upstream: str | None = None,
        variant: str = "AllTraffic",
        record: int = 1000,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.behavior = behavior or Behavior()
        # access key id -> secret key; when set, every request must carry a valid SigV4 signature.
        self.credentials = dict(credentials) if credentials else None
        self.upstream = urllib.parse.urlsplit(upstream) if upstream else None
        self.variant = variant
        self.ssl = ssl
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=record)
        self.open_connections = 0
        self.accepted_connections = 0
        self._attempts: collections.Counter[bytes] = collections.Counter()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open_connections += 1
        self.accepted_connections += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self.open_connections -= 1
            self._tasks.discard(task)
            writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> RecordedRequest | None:
        line = await reader.readline()
        if not line.strip():
            return None
        method, target, _version = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            size = 0
            while True:
                n = int((await reader.readline()).split(b";")[0], 16)
                if n == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                size += n
                if size > _MAX_BODY:
                    raise ConnectionError("request body too large")
                parts.append(await reader.readexactly(n))
                await reader.readexactly(2)
            body = b"".join(parts)
        else:
            length = int(headers.get("content-length", "0"))
            if length > _MAX_BODY:
                raise ConnectionError("request body too large")
            body = await reader.readexactly(length)
        return RecordedRequest(method, target, headers, body)

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request = await self._read_request(reader, writer)
        if request is None:
            return False
        self.requests.append(request)
        keep_alive = request.headers.get("connection", "").lower() != "close"
        path = urllib.parse.urlsplit(request.path).path
        parts = path.strip("/").split("/")
        try:
            if request.method == "GET" and path == "/ping":
                self._write_simple(writer, 200, b"", "text/plain")
            elif request.method != "POST":
                raise _HTTPError(404, "UnknownOperationException", f"No route for {request.method}")
            elif path == "/invocations":
                behavior = self._behavior(request)
                await self._container(writer, behavior)
            elif (
                len(parts) == 3
                and parts[0] == "endpoints"
                and parts[2]
                in (
                    "invocations-response-stream",
                    "invocations",
                )
            ):
                self._check_signature(request)
                if self.upstream is not None:
                    return await self._proxy(request, writer, parts[2] == "invocations") and keep_alive
                behavior = self._behavior(request)
                behavior = await self._pre_stream_fault(request, behavior)
                if parts[2] == "invocations":
                    self._invoke(request, writer, behavior)
                else:
                    return await self._stream(request, writer, behavior) and keep_alive
            elif (
                len(parts) == 3
                and parts[0] == "model"
                and parts[2] in ("invoke-with-response-stream", "invoke")
            ):
                # Bedrock Runtime: the same framing, chunk events carrying base64 in JSON.
                self._check_signature(request)
                behavior = self._behavior(request)
                behavior = await self._pre_stream_fault(request, behavior, bedrock=True)
                if parts[2] == "invoke":
                    body = b"".join(generate_records(dataclasses.replace(behavior, straddle=False)))
                    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
                    self._write_simple(writer, 200, body, _CONTENT_TYPES[behavior.format], headers)
                else:
                    return await self._stream(request, writer, behavior, bedrock=True) and keep_alive
            else:
                raise _HTTPError(404, "UnknownOperationException", f"No route for {path}")
        except _HTTPError as exc:
            self._write_error(writer, exc)
        await writer.drain()
        return keep_alive

    # -- requests -----------------------------------------------------------------------------

    def _behavior(self, request: RecordedRequest) -> Behavior:
        # Any body is a valid model input; only a JSON object can carry options.
        try:
            document = json.loads(request.body) if request.body[:1] == b"{" else {}
        except ValueError:
            document = {}
        overrides = document.get("emulator") or {}
        params = document.get("parameters") or {}
        if not isinstance(overrides, dict) or not isinstance(params, dict):
            raise _HTTPError(400, "ValidationError", '"emulator" and "parameters" must be JSON objects')
        if "max_new_tokens" in params and "tokens" not in overrides:
            overrides = {**overrides, "tokens": params["max_new_tokens"]}
        try:
            return self.behavior.replace(overrides) if overrides else self.behavior
        except (TypeError, ValueError) as exc:
            raise _HTTPError(400, "ValidationError", str(exc)) from None

    async def _pre_stream_fault(
        self, request: RecordedRequest, behavior: Behavior, *, bedrock: bool = False
    ) -> Behavior:
        """Raise or stall for a fault before the stream; returns the behavior for the stream itself."""
        if not behavior.fault:
            return behavior
        if behavior.fault_times >= 0:
            # Attempts are told apart by body, so a client's retries see the fault `fault_times` times.
            self._attempts[request.body] += 1
            if self._attempts[request.body] > behavior.fault_times:
                return dataclasses.replace(behavior, fault="")
        if behavior.fault == "stall-headers":
            await asyncio.sleep(behavior.stall)
            return dataclasses.replace(behavior, fault="")
        elif behavior.fault in HTTP_FAULTS:
            status, error_type, message = HTTP_FAULTS[behavior.fault]
            if bedrock:
                status, error_type = _BEDROCK_ERRORS[error_type]
                if error_type == "ModelErrorException":
                    raise _HTTPError(
                        status, error_type, message, originalStatusCode=500, resourceName="model"
                    )
                raise _HTTPError(status, error_type, message)
            if error_type == "ModelError":
                raise _HTTPError(
                    status,
                    error_type,
                    message,
                    OriginalStatusCode=500,
                    OriginalMessage="model container failed",
                    LogStreamArn="arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/emulator",
                )
            raise _HTTPError(status, error_type, message)
        return behavior

    def _response_headers(self, request: RecordedRequest, content_type: str) -> dict[str, str]:
        headers = {
            "x-amzn-RequestId": str(uuid.uuid4()),
            "X-Amzn-Invoked-Production-Variant": request.headers.get(
                "x-amzn-sagemaker-target-variant", self.variant
            ),
            "X-Amzn-SageMaker-Content-Type": content_type,
        }
        attributes = request.headers.get("x-amzn-sagemaker-custom-attributes")
        if attributes is not None:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        headers["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
        return headers

    def _write_simple(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        headers = {**(extra or {}), "Content-Type": content_type, "Content-Length": str(len(body))}
        writer.write(_response_head(status, headers) + body)

    def _write_error(self, writer: asyncio.StreamWriter, exc: _HTTPError) -> None:
        body = json.dumps({"Message": str(exc), **exc.extra}).encode()
        headers = {"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": f"{exc.error_type}:"}
        self._write_simple(writer, exc.status, body, "application/json", headers)

    def _invoke(self, request: RecordedRequest, writer: asyncio.StreamWriter, behavior: Behavior) -> None:
        body = b"".join(generate_records(dataclasses.replace(behavior, straddle=False)))
        headers = self._response_headers(request, _CONTENT_TYPES[behavior.format])
        content_type = headers.pop("X-Amzn-SageMaker-Content-Type")
        self._write_simple(writer, 200, body, content_type, headers)

    async def _stream(
        self,
        request: RecordedRequest,
        writer: asyncio.StreamWriter,
        behavior: Behavior,
        *,
        bedrock: bool = False,
    ) -> bool:
        if bedrock:
            headers = {
                "x-amzn-RequestId": str(uuid.uuid4()),
                "X-Amzn-Bedrock-Content-Type": _CONTENT_TYPES[behavior.format],
            }
        else:
            headers = self._response_headers(request, _CONTENT_TYPES[behavior.format])
        headers["Content-Type"] = "application/vnd.amazon.eventstream"
        headers["Transfer-Encoding"] = "chunked"
        writer.write(_response_head(200, headers))
        sender = _Sender(writer, behavior)
        interval = 1.0 / behavior.rate if behavior.rate else 0.0
        start = time.monotonic()
        loop_yield = 0
        for n, part in enumerate(split_parts(behavior)):
            if n == behavior.after and behavior.fault in STREAM_FAULTS:
                outcome = await self._stream_fault(sender, behavior, bedrock)
                if outcome != "continue":
                    return outcome == "ended"
            if interval:
                await sender.flush()
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await sender.frame(_bedrock_chunk(part) if bedrock else encode(_EVENT_HEADERS, part))
            loop_yield += 1
            if loop_yield == 256:  # let other streams run when the socket never pushes back
                loop_yield = 0
                await asyncio.sleep(0)
        if behavior.after >= behavior.tokens and behavior.fault in STREAM_FAULTS:
            outcome = await self._stream_fault(sender, behavior, bedrock)
            if outcome != "continue":
                return outcome == "ended"
        await sender.end()
        return True

    async def _stream_fault(self, sender: _Sender, behavior: Behavior, bedrock: bool = False) -> str:
        """Inject the fault: "continue" the stream, "ended" (body ended cleanly) or "dropped"."""
        fault = behavior.fault
        await sender.flush()
        if fault == "stall":
            await asyncio.sleep(behavior.stall)
            return "continue"
        if fault == "model-stream-error" and bedrock:
            body: dict[str, Any] = {
                "message": "Emulated model stream error",
                "originalStatusCode": 500,
                "originalMessage": "model failed",
            }
            frame = _exception_frame("modelStreamErrorException", body)
        elif fault == "internal-stream-failure" and bedrock:
            frame = _exception_frame("internalServerException", {"message": "Emulated internal server error"})
        elif fault == "model-stream-error":
            body = {"Message": "Emulated model stream error", "ErrorCode": behavior.error_code}
            frame = _exception_frame("ModelStreamError", body)
        elif fault == "internal-stream-failure":
            frame = _exception_frame("InternalStreamFailure", {"Message": "Emulated internal stream failure"})
        elif fault == "error-event":
            frame = encode(
                {
                    ":message-type": "error",
                    ":error-code": "EmulatedError",
                    ":error-message": "Emulated unmodelled error",
                }
            )
        elif fault == "truncate":
            frame = encode(_EVENT_HEADERS, b"cut short")
            sender.writer.write(_chunk(frame[: len(frame) // 2]) + b"0\r\n\r\n")
            await sender.writer.drain()
            return "ended"  # the HTTP body itself ended cleanly: the connection stays usable
        elif fault == "disconnect":
            sender.writer.close()
            return "dropped"
        elif fault == "reset":
            sock = sender.writer.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sender.writer.transport.abort()
            return "dropped"
        elif fault == "garbage":
            sender.writer.write(_chunk(b"this is not an event stream frame, just text"))
            await sender.writer.drain()
            return "continue"
        elif fault == "corrupt":
            corrupted = bytearray(encode(_EVENT_HEADERS, b"corrupted payload"))
            corrupted[-6] ^= 0xFF
            sender.writer.write(_chunk(bytes(corrupted)))
            await sender.writer.drain()
            return "continue"
        else:  # huge-length: a valid prelude for a 1 GiB frame; a decoder must refuse it up front
            prelude = (1 << 30).to_bytes(4, "big") + (0).to_bytes(4, "big")
            sender.writer.write(_chunk(prelude + zlib.crc32(prelude).to_bytes(4, "big")))
            await sender.writer.drain()
            sender.writer.close()
            return "dropped"
        # Real SageMaker ends the stream after an in-stream exception, with a clean end of the body.
        sender.writer.write(_chunk(frame) + b"0\r\n\r\n")
        await sender.writer.drain()
        return "ended"

    async def _container(self, writer: asyncio.StreamWriter, behavior: Behavior) -> None:
        """The model container API: raw records as chunked HTTP, as a TGI or LMI container sends them."""
        headers = {"Content-Type": _CONTENT_TYPES[behavior.format], "Transfer-Encoding": "chunked"}
        writer.write(_response_head(200, headers))
        interval = 1.0 / behavior.rate if behavior.rate else 0.0
        start = time.monotonic()
        for n, record in enumerate(generate_records(behavior)):
            if interval:
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            writer.write(_chunk(record))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async def _proxy(self, request: RecordedRequest, writer: asyncio.StreamWriter, whole: bool) -> bool:
        """Front a model container as SageMaker does: each body chunk it sends becomes a PayloadPart."""
        assert self.upstream is not None
        host = self.upstream.hostname or "127.0.0.1"
        port = self.upstream.port or 80
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise _HTTPError(
                424, "ModelError", f"cannot reach the container: {exc}", OriginalStatusCode=502
            ) from None
        try:
            forward = {
                "Host": f"{host}:{port}",
                "Content-Type": request.headers.get("content-type", "application/json"),
                "Accept": request.headers.get("x-amzn-sagemaker-accept", "*/*"),
                "Content-Length": str(len(request.body)),
                "Connection": "close",
            }
            for name in ("x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-inference-id"):
                if name in request.headers:
                    forward[name] = request.headers[name]
            head = "".join(f"{k}: {v}\r\n" for k, v in forward.items())
            up_writer.write(f"POST /invocations HTTP/1.1\r\n{head}\r\n".encode("latin-1") + request.body)
            status_line = await up_reader.readline()
            status = int(status_line.split()[1])
            up_headers: dict[str, str] = {}
            while (raw := await up_reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = raw.decode("latin-1").partition(":")
                up_headers[name.strip().lower()] = value.strip()
            content_type = up_headers.get("content-type", "application/octet-stream")
            chunks = _upstream_body(up_reader, up_headers)
            if status != 200 or whole:
                body = b"".join([c async for c in chunks])
                if status != 200:
                    raise _HTTPError(
                        424,
                        "ModelError",
                        f"Received client error ({status}) from primary with message",
                        OriginalStatusCode=status,
                        OriginalMessage=body.decode("utf-8", "replace"),
                    )
                headers = self._response_headers(request, content_type)
                del headers["X-Amzn-SageMaker-Content-Type"]
                self._write_simple(writer, 200, body, content_type, headers)
                return True
            headers = self._response_headers(request, content_type)
            headers["Content-Type"] = "application/vnd.amazon.eventstream"
            headers["Transfer-Encoding"] = "chunked"
            writer.write(_response_head(200, headers))
            try:
                async for data in chunks:
                    writer.write(_chunk(encode(_EVENT_HEADERS, data)))
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                body_ = {"Message": "The model container closed the stream", "ErrorCode": "StreamBroken"}
                writer.write(_chunk(_exception_frame("ModelStreamError", body_)) + b"0\r\n\r\n")
                await writer.drain()
                return False
            writer.write(b"0\r\n\r\n")
            return True
        finally:
            up_writer.close()

    # -- SigV4 ----------------------------------------------------------------------------------

    def _check_signature(self, request: RecordedRequest) -> None:
        if self.credentials is None:
            return
        problem = verify_sigv4(request, self.credentials)
        request.signature_valid = problem is None
        if problem is not None:
            raise _HTTPError(403, "InvalidSignatureException", problem)


async def _upstream_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> Any:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise ConnectionError("container closed the connection inside the body")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                return
            data = await reader.readexactly(n)
            await reader.readexactly(2)
            yield data
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while data := await reader.read(65536):
            yield data


_BEDROCK_ERRORS = {
    "ValidationError": (400, "ValidationException"),
    "ModelError": (424, "ModelErrorException"),
    "ServiceUnavailable": (503, "ServiceUnavailableException"),
    "InternalFailure": (500, "InternalServerException"),
    "ThrottlingException": (429, "ThrottlingException"),
}
_CHUNK_HEADERS = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}


def _bedrock_chunk(part: bytes) -> bytes:
    # "p" pads the event as Bedrock does, so frame sizes do not reveal the token length.
    payload = {
        "bytes": base64.b64encode(part).decode(),
        "p": "abcdefghijklmnopqrstuvwxyz"[: 1 + len(part) % 26],
    }
    return encode(_CHUNK_HEADERS, json.dumps(payload).encode())


def _exception_frame(exception_type: str, body: Mapping[str, Any]) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode(headers, json.dumps(body).encode())


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def verify_sigv4(
    request: RecordedRequest, credentials: Mapping[str, str], *, max_skew: float = 300.0
) -> str | None:
    """Check an AWS4-HMAC-SHA256 Authorization header; returns what is wrong, or None.

    Written from the SigV4 specification with hashlib only, so it checks the client's signer (awscrt)
    against an independent implementation.
    """
    auth = request.headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "Missing Authentication Token"
    fields = dict(item.strip().split("=", 1) for item in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    try:
        access_key, date, region, service, terminator = fields["Credential"].split("/")
        signed_headers = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        return "Malformed Authorization header"
    if access_key not in credentials:
        return "The security token included in the request is invalid"
    amz_date = request.headers.get("x-amz-date", "")
    try:
        stamp = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "Missing or malformed X-Amz-Date"
    if abs(stamp.timestamp() - time.time()) > max_skew:
        return "Signature expired"
    if "host" not in signed_headers or not amz_date.startswith(date):
        return "Host must be signed and the scope date must match X-Amz-Date"
    target = urllib.parse.urlsplit(request.path)
    # Services other than S3 encode the already-encoded path once more.
    canonical_uri = urllib.parse.quote(target.path or "/", safe="/~")
    query = sorted(urllib.parse.parse_qsl(target.query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in query
    )
    try:
        canonical_headers = "".join(
            f"{name}:{' '.join(request.headers[name].split())}\n" for name in signed_headers
        )
    except KeyError as exc:
        return f"Signed header {exc} is missing"
    payload_hash = request.headers.get("x-amz-content-sha256") or hashlib.sha256(request.body).hexdigest()
    canonical = "\n".join(
        [
            request.method,
            canonical_uri,
            canonical_query,
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/{terminator}"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(("AWS4" + credentials[access_key]).encode(), date)
    for part in (region, service, terminator):
        key = _sign(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "The request signature we calculated does not match the signature you provided"
    return None


class EmulatorProcess:
    """``python -m evstream serve --port 0 ARGS`` in a child process (benchmarks and the demo measure the
    client's CPU without the endpoint's)."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "evstream", "serve", "--port", "0", *args]
        env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on " not in line:
            self.close()
            raise RuntimeError(f"the endpoint did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[-1].strip()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EmulatorThread:
    """Runs an :class:`Emulator` on its own event loop in a daemon thread (tests, the demo)."""

    def __init__(self, emulator: Emulator | None = None, **kwargs: Any) -> None:
        self.emulator = emulator or Emulator(**kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="evstream-emulator", daemon=True)

    @property
    def url(self) -> str:
        return self.emulator.url

    def start(self) -> EmulatorThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.emulator.start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.emulator.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
