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

What a stream does is set by :class:`.bidi.Bidi`, overridden per SageMaker request by ``ModelQueryString``
(``mode=conversation&parts=3&fault=reset&after=5``): ``echo`` answers each part as it arrives;
``conversation`` takes turns, answering once a part says ``CompletionState=COMPLETE``; ``generate``
answers each turn with a generation, as a response stream would. Answers are paced by the latency
profile of ``behavior`` (the HTTP/1.1 listener's :class:`.workloads.Behavior`), see :mod:`.bidi`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import ssl as ssl_module
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

from .. import Decoder, EventStreamError
from ..sagemaker.event_signing import EVENT_STREAM_PAYLOAD, EventSignatureError, EventVerifier
from .bidi import BIDI_FAULTS, HTTP_FAULTS, MODES, Bidi, Exchange, Model, input_error
from .listener import Listener
from .process import ServerThread
from .sigv4 import verify_sigv4
from .workloads import Behavior

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


class _Channel:
    """A stream of a connection, as :class:`Model` uses it."""

    def __init__(self, connection: _Connection, stream: _Stream) -> None:
        self.connection = connection
        self.stream = stream
        self.exchange = stream.exchange

    async def receive(self) -> tuple[dict[str, Any], bytes] | None:
        return await self.connection._receive(self.stream)

    async def send(self, frame: bytes, end: bool = False) -> None:
        await self.connection._send(self.stream, frame, end)

    def reset(self) -> None:
        self.connection.h2.reset_stream(self.stream.id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        self.connection.flush()


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

    def _refuse(
        self, stream_id: int, status: int, error_type: str, message: str, request_id: str, **members: Any
    ) -> None:
        body = json.dumps({"Message": message, "message": message, **members}).encode()
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
                members: dict[str, Any] = {}
                if behavior.fault == "model-error" and bedrock:  # the container's answer, as reported
                    members = {"originalStatusCode": 500, "resourceName": exchange.target}
                elif behavior.fault == "model-error":
                    log_group = "arn:aws:logs:local:000000000000:log-group:/aws/sagemaker/Endpoints/"
                    members = {
                        "OriginalStatusCode": 500,
                        "OriginalMessage": "model failed",
                        "LogStreamArn": log_group + exchange.target,
                        "ErrorCode": "ModelError",
                    }
                error_type = bedrock_type if bedrock else sagemaker_type
                self._refuse(
                    stream.id, status, error_type, f"Emulated {behavior.fault}", request_id, **members
                )
                self.flush()
                return
            response = [(":status", "200"), ("content-type", _EVENTSTREAM), ("x-amzn-requestid", request_id)]
            if not bedrock:
                response.append(("x-amzn-invoked-production-variant", self.endpoint.variant))
            self.h2.send_headers(stream.id, response)
            self.flush()
            model = Model(_Channel(self, stream), behavior, bedrock, self.endpoint.behavior)
            try:
                await model.run()
            except EventSignatureError as exc:
                exchange.error = str(exc)
                await self._send(stream, input_error(str(exc), bedrock), end=True)
                return
            if model.reset:
                return
            self.h2.end_stream(stream.id)
            self.flush()
        except (ConnectionError, h2.exceptions.StreamClosedError, asyncio.CancelledError):
            pass
        except h2.exceptions.ProtocolError as exc:
            # The peer ended the connection (GOAWAY) while the model was still answering: nothing is
            # left to send to, and the task must not end with an exception nobody retrieves.
            _log.info("HTTP/2 stream %d ended by the peer: %s", stream.id, exc)
        finally:
            stream.closed = True
            self.streams.pop(stream.id, None)


class Http2Endpoint(Listener):
    """The HTTP/2 listener, on the current event loop.

    ``ssl``: a server context (ALPN ``h2`` is set on it); without one the listener speaks cleartext
    HTTP/2 with prior knowledge. ``credentials`` maps access key ids to secret keys. ``behavior``:
    the model's latency profile and what ``generate`` answers (its format, tokens, stamps).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl: ssl_module.SSLContext | None = None,
        bidi: Bidi | None = None,
        behavior: Behavior | None = None,
        credentials: Mapping[str, str] | None = None,
        region: str | None = None,
        variant: str = "AllTraffic",
        window: int = 65535,
        record: int = 1000,
    ) -> None:
        super().__init__(host, port, ssl)
        if ssl is not None:
            ssl.set_alpn_protocols(["h2"])
        self.bidi = bidi or Bidi()
        self.behavior = behavior or Behavior()
        self.credentials = dict(credentials) if credentials else None
        self.region = region
        self.variant = variant
        self.window = window
        self.exchanges: collections.deque[Exchange] = collections.deque(maxlen=record)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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


class Http2EndpointThread(ServerThread):
    """An :class:`Http2Endpoint` (given, or made from ``kwargs``) on its own thread."""

    def __init__(
        self, endpoint: Http2Endpoint | None = None, *, loop: str = "asyncio", **kwargs: Any
    ) -> None:
        self.endpoint = endpoint or Http2Endpoint(**kwargs)
        super().__init__(self.endpoint, name="evstream-http2", loop=loop)


async def start_listeners(
    host: str,
    *,
    tls_port: int | None,
    cleartext_port: int | None,
    directory: str,
    bidi: Bidi | None = None,
    behavior: Behavior | None = None,
    credentials: Mapping[str, str] | None = None,
) -> tuple[list[Http2Endpoint], str | None]:
    """The HTTP/2 listeners ``serve`` asks for, started: over TLS (a certificate from a new private CA,
    whose certificate is written to ``directory``; its path is returned) and over cleartext h2c."""
    listeners: list[Http2Endpoint] = []
    ca_file = None
    options: dict[str, Any] = {"bidi": bidi, "behavior": behavior, "credentials": credentials}
    if tls_port is not None:
        context, ca_file = tls_context(directory, host)
        listeners.append(Http2Endpoint(host, tls_port, ssl=context, **options))
    if cleartext_port is not None:
        listeners.append(Http2Endpoint(host, cleartext_port, **options))
    try:
        for listener in listeners:
            await listener.start()
    except BaseException:
        for listener in listeners:
            await listener.close()
        raise
    return listeners, ca_file
