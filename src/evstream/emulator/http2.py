"""The endpoint's HTTP/2 listener: bidirectional streaming, as SageMaker and Bedrock serve it.

* ``POST /endpoints/{name}/invocations-bidirectional-stream`` (SageMaker Runtime HTTP2,
  ``InvokeEndpointWithBidirectionalStream``): ``PayloadPart`` events both ways;
* ``POST /model/{id}/invoke-with-bidirectional-stream`` (Bedrock Runtime,
  ``InvokeModelWithBidirectionalStream``): ``chunk`` events, ``{"bytes": "<base64>"}``, both ways.

HTTP/2 comes from ``h2`` (sans-I/O), over TLS with ALPN ``h2`` or over cleartext with prior knowledge
(h2c). With ``credentials`` the request's SigV4 signature (``X-Amz-Content-SHA256:
STREAMING-AWS4-HMAC-SHA256-EVENTS``) **and every event's signature** are checked: a request that fails
gets 403 before the stream, an event that fails ends the stream with an error event.

Flow control is real in both directions: received data is acknowledged only once the model has taken
the event (so a client that sends faster than the model reads waits), and responses are sent only into
the window the client grants (so a client that stops reading stops the model, and neither side buffers
without bound).

What a stream does is set by :class:`Bidi`, overridden per SageMaker request by ``ModelQueryString``
(``mode=conversation&parts=3&fault=reset&after=5``): ``echo`` answers each part as it arrives;
``conversation`` takes turns, answering once a part says ``CompletionState=COMPLETE``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import json
import logging
import os
import re
import ssl as ssl_module
import threading
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from .. import Decoder, EventStreamError, encode
from ..sagemaker.event_signing import EVENT_STREAM_PAYLOAD, EventSignatureError, EventVerifier
from .events import exception_frame
from .sigv4 import verify_sigv4

__all__ = [
    "BIDI_FAULTS",
    "MODES",
    "Bidi",
    "Exchange",
    "Http2Endpoint",
    "Http2EndpointThread",
    "start_listeners",
    "tls_context",
]

_log = logging.getLogger("evstream.emulator")
_SAGEMAKER = re.compile(r"/endpoints/([^/]+)/invocations-bidirectional-stream")
_BEDROCK = re.compile(r"/model/([^/]+)/invoke-with-bidirectional-stream")
_EVENTSTREAM = "application/vnd.amazon.eventstream"

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
MODES = ("echo", "conversation")


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


class _Stream:
    """The endpoint's side of one HTTP/2 stream: decoded input events in, flow-control credit out."""

    def __init__(self, stream_id: int, exchange: Exchange, verifier: EventVerifier | None) -> None:
        self.id = stream_id
        self.exchange = exchange
        self.verifier = verifier
        self.decoder = Decoder()
        # (headers, payload, bytes to acknowledge once taken); None: the input ended
        self.inbox: asyncio.Queue[tuple[dict[str, Any], bytes, int] | None] = asyncio.Queue()
        self.error: Exception | None = None
        self.closed = False
        self.task: asyncio.Task[None] | None = None


class _Connection:
    """One client connection: the h2 state machine, its socket, and the streams on it."""

    def __init__(self, endpoint: Http2Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config)
        self.streams: dict[int, _Stream] = {}
        self.window_opened = asyncio.Event()  # set whenever the client grants send credit

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)

    async def run(self) -> None:
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 128,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.endpoint.window,
            },
        )
        self.h2.initiate_connection()
        self.flush()
        try:
            while data := await self.reader.read(65536):
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    _log.info("HTTP/2 protocol error: %s", exc)
                    self.flush()
                    return
                for event in events:
                    self._dispatch(event)
                self.flush()
                await self.writer.drain()
        finally:
            for stream in self.streams.values():
                if stream.task is not None:
                    stream.task.cancel()
            self.window_opened.set()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = {str(name): str(value) for name, value in event.headers or ()}
            self._request(event.stream_id, headers, event.stream_ended is not None)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None or stream.closed:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                self._data(stream, event.data, event.flow_controlled_length)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.inbox.put_nowait(None)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None and stream.task is not None:
                stream.closed = True
                stream.task.cancel()
            self.window_opened.set()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.window_opened.set()

    def _request(self, stream_id: int, headers: dict[str, str], ended: bool) -> None:
        endpoint = self.endpoint
        path = headers.get(":path", "")
        split = urllib.parse.urlsplit(path)
        sagemaker, bedrock = _SAGEMAKER.fullmatch(split.path), _BEDROCK.fullmatch(split.path)
        lowered = {k.lower(): v for k, v in headers.items() if not k.startswith(":")}
        lowered.setdefault("host", headers.get(":authority", ""))
        request_id = str(uuid.uuid4())
        if headers.get(":method") != "POST" or not (sagemaker or bedrock):
            self._refuse(stream_id, 404, "UnknownOperationException", f"No operation at {path}", request_id)
            return
        service = "sagemaker" if sagemaker else "bedrock"
        match = sagemaker or bedrock
        assert match is not None
        exchange = Exchange(service, urllib.parse.unquote(match.group(1)), lowered)
        endpoint.exchanges.append(exchange)
        verifier = None
        if endpoint.credentials is not None:
            problem = verify_sigv4(
                "POST", path, lowered, EVENT_STREAM_PAYLOAD, endpoint.credentials,
                service=service, region=endpoint.region,
            )  # fmt: skip
            if problem is not None:
                exchange.error = problem
                self._refuse(stream_id, 403, "InvalidSignatureException", problem, request_id)
                return
            access_key = lowered["authorization"].split("Credential=", 1)[1].split("/", 1)[0]
            scope_region = lowered["authorization"].split("Credential=", 1)[1].split("/")[2]
            seed = lowered["authorization"].rsplit("Signature=", 1)[1].strip()
            verifier = EventVerifier(endpoint.credentials[access_key], scope_region, service, seed)
        behavior = endpoint.bidi
        if sagemaker:
            try:
                behavior = behavior.with_query(lowered.get("x-amzn-sagemaker-model-query-string", ""))
            except ValueError as exc:
                self._refuse(stream_id, 400, "InputValidationError", str(exc), request_id)
                return
        stream = _Stream(stream_id, exchange, verifier)
        self.streams[stream_id] = stream
        if ended:
            stream.inbox.put_nowait(None)
        stream.task = asyncio.ensure_future(self._serve(stream, behavior, request_id))
        endpoint.track(stream.task)

    def _refuse(self, stream_id: int, status: int, error_type: str, message: str, request_id: str) -> None:
        body = json.dumps({"Message": message, "message": message}).encode()
        headers = [
            (":status", str(status)),
            ("content-type", "application/json"),
            ("x-amzn-requestid", request_id),
            ("x-amzn-errortype", f"{error_type}:"),
        ]
        self.h2.send_headers(stream_id, headers)
        self.h2.send_data(stream_id, body, end_stream=True)

    def _data(self, stream: _Stream, data: bytes, flow_length: int) -> None:
        try:
            envelopes = stream.decoder.feed(data)
        except EventStreamError as exc:
            self._fail(stream, EventSignatureError(f"Malformed input event stream: {exc}"), flow_length)
            return
        if not envelopes:  # part of a frame: buffered by the decoder, bounded by its frame limit
            self.h2.acknowledge_received_data(flow_length, stream.id)
            return
        for index, envelope in enumerate(envelopes):
            credit = flow_length if index == len(envelopes) - 1 else 0
            headers, payload = dict(envelope.headers), envelope.payload
            signed = set(headers) == {":date", ":chunk-signature"}
            if stream.verifier is not None or signed:
                try:
                    if stream.verifier is not None:
                        payload = stream.verifier.verify(headers, payload)
                except EventSignatureError as exc:
                    self._fail(stream, exc, credit)
                    return
                if not payload:  # the signed end of the input
                    stream.exchange.signed_end = True
                    if credit:
                        self.h2.acknowledge_received_data(credit, stream.id)
                    continue
                try:
                    (inner,) = Decoder().feed(payload)
                except (EventStreamError, ValueError) as exc:
                    self._fail(stream, EventSignatureError(f"Malformed signed event: {exc}"), credit)
                    return
                headers, payload = dict(inner.headers), inner.payload
            stream.exchange.events_in += 1
            stream.inbox.put_nowait((headers, payload, credit))

    def _fail(self, stream: _Stream, error: Exception, credit: int) -> None:
        if credit:
            self.h2.acknowledge_received_data(credit, stream.id)
        if stream.error is None:
            stream.error = error
            stream.inbox.put_nowait(None)

    async def _receive(self, stream: _Stream) -> tuple[dict[str, Any], bytes] | None:
        item = await stream.inbox.get()
        if item is None:
            stream.inbox.put_nowait(None)  # the end stays the end
            if stream.error is not None:
                raise stream.error
            return None
        headers, payload, credit = item
        if credit and not stream.closed:
            self.h2.acknowledge_received_data(credit, stream.id)
            self.flush()
        return headers, payload

    async def _send(self, stream: _Stream, frame: bytes, end: bool = False) -> None:
        view = memoryview(frame)
        while True:
            if stream.closed:
                raise ConnectionResetError("stream closed")
            window = min(self.h2.local_flow_control_window(stream.id), self.h2.max_outbound_frame_size)
            if window <= 0 and view:
                self.window_opened.clear()
                await self.window_opened.wait()
                continue
            chunk, view = view[:window], view[window:]
            self.h2.send_data(stream.id, bytes(chunk), end_stream=end and not view)
            self.flush()
            await self.writer.drain()
            if not view:
                return

    async def _serve(self, stream: _Stream, behavior: Bidi, request_id: str) -> None:
        exchange = stream.exchange
        bedrock = exchange.operation == "bedrock"
        try:
            if behavior.fault in HTTP_FAULTS:
                status, sagemaker_type, bedrock_type = HTTP_FAULTS[behavior.fault]
                self._refuse(stream.id, status, bedrock_type if bedrock else sagemaker_type,
                             f"Emulated {behavior.fault}", request_id)  # fmt: skip
                self.flush()
                return
            response = [(":status", "200"), ("content-type", _EVENTSTREAM), ("x-amzn-requestid", request_id)]
            if not bedrock:
                response.append(("x-amzn-invoked-production-variant", self.endpoint.variant))
            self.h2.send_headers(stream.id, response)
            self.flush()
            model = _Model(self, stream, behavior, bedrock)
            try:
                await model.run()
            except EventSignatureError as exc:
                exchange.error = str(exc)
                await self._send(stream, _input_error(str(exc), bedrock), end=True)
                return
            if model.reset:
                return
            self.h2.end_stream(stream.id)
            self.flush()
        except (ConnectionError, h2.exceptions.StreamClosedError, asyncio.CancelledError):
            pass
        finally:
            stream.closed = True
            self.streams.pop(stream.id, None)


def _input_error(message: str, bedrock: bool) -> bytes:
    if bedrock:
        return exception_frame("validationException", {"message": message})
    headers = {
        ":message-type": "error",
        ":error-code": "InputValidationError",
        ":error-message": message,
    }
    return encode(headers, b"")


class _Model:
    """The behaviour of one stream: reads input events, writes response events, injects the fault."""

    def __init__(self, connection: _Connection, stream: _Stream, behavior: Bidi, bedrock: bool) -> None:
        self.connection = connection
        self.stream = stream
        self.behavior = behavior
        self.bedrock = bedrock
        self.reset = False
        self.turn: list[bytes] = []
        self.turns = 0

    async def run(self) -> None:
        if self.behavior.fault and self.behavior.after == 0 and await self._fault():
            return
        while (item := await self.connection._receive(self.stream)) is not None:
            headers, payload = item
            part = self._part(headers, payload)
            if part is None:
                continue
            data, data_type, state = part
            if self.behavior.mode == "echo":
                if await self._answer(data, data_type, state):
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
        answer = b"turn %d: %s" % (self.turns, text)
        count = self.behavior.parts
        size = -(-len(answer) // count)
        for index in range(count):
            piece = answer[index * size : (index + 1) * size]
            if await self._answer(piece, data_type, "COMPLETE" if index == count - 1 else "PARTIAL"):
                return True
        return False

    async def _answer(self, data: bytes, data_type: str, state: str) -> bool:
        """Send one response event; True when a fault ended the stream."""
        if self.behavior.delay:
            await asyncio.sleep(self.behavior.delay)
        if self.bedrock:
            body = {"bytes": base64.b64encode(data).decode()}
            frame = encode({":event-type": "chunk", ":content-type": "application/json",
                            ":message-type": "event"}, json.dumps(body).encode())  # fmt: skip
        else:
            headers = {
                ":event-type": "PayloadPart",
                ":content-type": "application/octet-stream",
                ":message-type": "event",
                "DataType": data_type,
                "CompletionState": state,
            }
            frame = encode(headers, data)
        await self.connection._send(self.stream, frame)
        self.stream.exchange.events_out += 1
        if self.behavior.fault and self.stream.exchange.events_out == self.behavior.after:
            return await self._fault()
        return False

    async def _fault(self) -> bool:
        fault = self.behavior.fault
        connection, stream = self.connection, self.stream
        stream.exchange.error = fault
        if fault == "stall":
            await asyncio.sleep(self.behavior.stall)
            return False
        if fault == "reset":
            connection.h2.reset_stream(stream.id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            connection.flush()
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
        await connection._send(stream, frame, end=True)
        self.reset = True  # the stream has ended
        return True


class Http2Endpoint:
    """The HTTP/2 listener, on the current event loop.

    ``ssl``: a server context (ALPN ``h2`` is set on it); without one the listener speaks cleartext
    HTTP/2 with prior knowledge. ``credentials`` maps access key ids to secret keys.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl: ssl_module.SSLContext | None = None,
        bidi: Bidi | None = None,
        credentials: Mapping[str, str] | None = None,
        region: str | None = None,
        variant: str = "AllTraffic",
        window: int = 65535,
        record: int = 1000,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl
        if ssl is not None:
            ssl.set_alpn_protocols(["h2"])
        self.bidi = bidi or Bidi()
        self.credentials = dict(credentials) if credentials else None
        self.region = region
        self.variant = variant
        self.window = window
        self.exchanges: collections.deque[Exchange] = collections.deque(maxlen=record)
        self.accepted_connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"

    def track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        self.track(task)
        self.accepted_connections += 1
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
                return  # HTTP/1.1 clients belong on the other port
            await _Connection(self, reader, writer).run()
        except (ConnectionError, asyncio.CancelledError, ssl_module.SSLError):
            pass
        except Exception as exc:  # a bug: log it and drop this connection only
            _log.error("HTTP/2 connection failed: %r", exc)
        finally:
            writer.close()


def tls_context(directory: str, host: str = "127.0.0.1") -> tuple[ssl_module.SSLContext, str]:
    """A server context with a certificate for ``host`` (and localhost) from a new private CA, and the
    path of that CA's certificate (written to ``directory``) for clients to trust."""
    import trustme

    authority = trustme.CA()
    names = {host, "localhost", "127.0.0.1", "::1"}
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    authority.issue_cert(*sorted(names)).configure_cert(context)
    path = os.path.join(directory, "evstream-http2-ca.pem")
    authority.cert_pem.write_to_path(path)
    return context, path


class Http2EndpointThread:
    """An :class:`Http2Endpoint` on a thread with its own event loop (tests, the demo, benchmarks)."""

    def __init__(self, endpoint: Http2Endpoint | None = None, **kwargs: Any) -> None:
        self.endpoint = endpoint or Http2Endpoint(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="evstream-http2", daemon=True)

    @property
    def url(self) -> str:
        return self.endpoint.url

    def start(self) -> Http2EndpointThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.endpoint.start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.endpoint.close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Http2EndpointThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def start_listeners(
    host: str,
    *,
    tls_port: int | None,
    cleartext_port: int | None,
    directory: str,
    bidi: Bidi | None = None,
    credentials: Mapping[str, str] | None = None,
) -> tuple[list[Http2Endpoint], str | None]:
    """The HTTP/2 listeners ``serve`` asks for, started: over TLS (a certificate from a new private CA,
    whose certificate is written to ``directory``; its path is returned) and over cleartext h2c."""
    listeners: list[Http2Endpoint] = []
    ca_file = None
    if tls_port is not None:
        context, ca_file = tls_context(directory, host)
        listeners.append(Http2Endpoint(host, tls_port, ssl=context, bidi=bidi, credentials=credentials))
    if cleartext_port is not None:
        listeners.append(Http2Endpoint(host, cleartext_port, bidi=bidi, credentials=credentials))
    try:
        for listener in listeners:
            await listener.start()
    except BaseException:
        for listener in listeners:
            await listener.close()
        raise
    return listeners, ca_file
