"""The synchronous client: urllib3, one pooled connection per open stream."""

from __future__ import annotations

import http.client
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from .. import lines as _lines
from ._base import (
    EVENTSTREAM,
    SAGEMAKER,
    BaseClient,
    Operation,
    StreamState,
    first_byte_timeout,
    response_dict,
)
from .config import Request
from .errors import (
    ConnectionClosed,
    ConnectionFailed,
    ConnectTimeout,
    IncompleteStream,
    ProxyConnectionFailed,
    SageMakerRuntimeError,
    TLSFailed,
)
from .reader import CHUNKED, LENGTH, UNTIL_CLOSE, BodyReader, malformed, may_retry

if TYPE_CHECKING:
    from ..formats import RecordStream, TokenStream

__all__ = ["Client", "EventStream"]

_READ = 65536  # the most one read takes from the socket: the reader holds at most this plus one frame
_EARLY = 0.005  # a receive timeout that fires this much before the deadline is waited out again
# What a read whose receive timeout expired raises: EAGAIN from a blocking socket with SO_RCVTIMEO,
# SSL's "want read" over such a socket, or socket.timeout where the socket keeps its own timeout.
_TIMEOUTS = (BlockingIOError, ssl.SSLWantReadError, socket.timeout)
# SO_RCVTIMEO takes a struct timeval here; Windows leaves the socket unusable after it fires.
_NATIVE_TIMEOUT = sys.platform != "win32" and hasattr(socket, "SO_RCVTIMEO")


def _check_head(response: urllib3.BaseHTTPResponse) -> None:
    """http.client reads past a header line it cannot parse (urllib3 only logs it): refuse such a head."""
    message = getattr(getattr(response, "_original_response", None), "msg", None)
    if message is not None and message.defects:
        response.close()
        response.release_conn()
        raise malformed(f"Malformed HTTP response head: {message.defects!r}")


class _Body:
    """The socket under a urllib3 response whose head has been read, for reading the body directly:
    one blocking ``recv_into`` per read, its timeout in the kernel (SO_RCVTIMEO), no poll() before it, no
    buffered file or chunk parser in between."""

    __slots__ = (
        "_native",
        "_saved_timeout",
        "_sock",
        "armed",
        "buffer",
        "early",
        "framing",
        "length",
        "response",
    )

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self.response = response
        original = response._original_response  # type: ignore[attr-defined]  # http.client's response
        if original.chunked:
            self.framing, self.length = CHUNKED, 0
        elif original.length is not None:
            self.framing, self.length = LENGTH, original.length
        else:
            self.framing, self.length = UNTIL_CLOSE, 0
        self.early = b""
        # Each read lands in the same buffer: no 64 KiB allocation (and shrink) per read. The reader
        # copies what it keeps, and each event's payload is a bytes object of its own.
        self.buffer = memoryview(bytearray(_READ))
        self._sock: Any = None
        self.armed = -1.0
        self._native = False
        self._saved_timeout: float | None = None

    def start(self, timeout: float) -> Callable[[memoryview], int]:
        """The socket's ``recv_into``, armed with ``timeout``; ``early``: body bytes already read with the
        head."""
        original = self.response._original_response  # type: ignore[attr-defined]
        fp = original.fp
        if fp is None:
            raise IncompleteStream("The response body was already closed")
        # http.client read the head through a buffered file over the socket: take the socket, and the
        # body bytes the file holds, without blocking (a read of a non-blocking socket returns b"").
        sock = fp.raw._sock
        self._sock = sock
        self._saved_timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            self.early = fp.read1(_READ) or b""
        except (BlockingIOError, ssl.SSLWantReadError):
            self.early = b""
        self._native = _NATIVE_TIMEOUT and isinstance(sock, socket.socket)
        sock.settimeout(None if self._native else timeout)
        self.arm(timeout)
        return sock.recv_into  # type: ignore[no-any-return]

    def arm(self, seconds: float) -> None:
        """The most the next read waits."""
        seconds = max(seconds, 0.001)
        if seconds == self.armed:
            return
        self.armed = seconds
        if self._native:
            whole = int(seconds)
            self._sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1e6))
            )
        else:
            self._sock.settimeout(seconds)

    def finish(self, reusable: bool) -> None:
        """The body was read to its end: back to the pool (or closed when it cannot carry more)."""
        response = self.response
        if reusable and self._sock is not None:
            if self._native:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
            self._sock.settimeout(self._saved_timeout)
            response._original_response.close()  # type: ignore[attr-defined]
        else:
            response.close()
        response.release_conn()


class Client(BaseClient):
    """``invoke_endpoint_with_response_stream`` with boto3's parameters and response shape.

    Thread-safe; connections are pooled per host (``max_pool_connections``) and reused across calls. After
    ``fork`` the child starts with an empty pool, never sharing the parent's sockets.
    """

    def __init__(self, botocore_client: Any = None, **kwargs: Any) -> None:
        super().__init__(botocore_client, **kwargs)

    def _after_fork(self) -> None:
        # The parent's sockets stay with the parent: drop them without a word on the wire.
        super()._after_fork()
        for manager in (session := self._control._http_session)._proxy_managers.values():
            manager.pools.clear()
        session._manager.pools.clear()

    def close(self) -> None:
        """Close the pooled connections (streams still open keep theirs until they end); a client made
        from arguments closes its botocore client, a wrapped one is left to its owner."""
        if self._owns_botocore:
            self._botocore.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- API ----------------------------------------------------------------------------------------

    def invoke_endpoint_with_response_stream(self, **params: Any) -> dict[str, Any]:
        """Start a stream. Errors before the stream (HTTP errors, timeouts, refused connections) are
        retried with backoff when retryable; so are in-stream failures until the first event is
        delivered. ``response["Body"]`` is an :class:`EventStream`."""
        request = self._prepare(params, "invocations-response-stream")
        return self._invoke(request, SAGEMAKER)

    def _invoke(self, request: Request, operation: Operation) -> dict[str, Any]:
        stream = EventStream(self, request, operation)
        stream._start()
        return response_dict(operation, stream, stream._status, stream._headers, stream._attempts)

    # -- transport ----------------------------------------------------------------------------------

    def _send(self, request: Request, attempt: int = 1, call: dict[str, Any] | None = None) -> Any:
        """One attempt: the response with its headers read, or a typed error."""
        headers = self._sign(request, attempt, call)
        timeout = urllib3.Timeout(connect=self._limits.connect_timeout, read=self._limits.first_byte_timeout)
        url = self.endpoint_url + request.path[len(self._base_path) :]
        try:
            return self._control.urlopen(request.method, url, request.body, headers, timeout)
        except SSLError as exc:
            raise TLSFailed(f"TLS to {self.endpoint_url} failed: {exc}", endpoint_url=url) from None
        except ProxyError as exc:
            raise ProxyConnectionFailed(f"Could not connect through the proxy: {exc}") from None
        # NewConnectionError subclasses ConnectTimeoutError: test it first.
        except NewConnectionError as exc:
            raise ConnectionFailed(f"Could not connect to {self.endpoint_url}: {exc}") from None
        except ConnectTimeoutError as exc:
            raise ConnectTimeout(
                f"No connection within connect_timeout={self._limits.connect_timeout:g} s: {exc}",
                self._limits.connect_timeout,
            ) from None
        except ReadTimeoutError:
            raise first_byte_timeout(self._limits.first_byte_timeout, None) from None
        except ProtocolError as exc:
            cause = exc.args[1] if len(exc.args) > 1 else None
            if isinstance(cause, http.client.HTTPException) and not isinstance(cause, ConnectionError):
                # The server answered, but not with HTTP/1.1: not a connection failure to retry.
                raise malformed(f"Malformed HTTP response head: {cause!r}") from None
            raise ConnectionClosed(
                f"The connection to {self.endpoint_url} closed before a response: {exc}", endpoint_url=url
            ) from None
        except (HTTPError, OSError) as exc:
            raise ConnectionFailed(f"Connection to {self.endpoint_url} failed: {exc}") from None


class EventStream(StreamState):
    """The response stream. Iterate it for boto3's events, or use the faster typed views:
    :meth:`payloads` (raw bytes), :meth:`text`, :meth:`lines`, :meth:`sse`, :meth:`json`.

    Only one view can consume a stream. Ending early (``close()``, ``break`` then ``close()``, or leaving
    a ``with`` block) closes the connection; a stream read to its end returns it to the pool.
    """

    _client: Client

    def __init__(self, client: Client, request: Request, operation: Operation = SAGEMAKER) -> None:
        super().__init__(client, request, operation)
        self._response: urllib3.BaseHTTPResponse | None = None
        self._batch: list[Any] = []  # the events being handed out: close() empties it

    # -- opening and retries --------------------------------------------------------------------

    def _start(self) -> None:
        while True:
            self._attempts += 1
            try:
                response = self._client._send(self._request, self._attempts, self._call)
                _check_head(response)
                if response.status != 200 or EVENTSTREAM not in response.headers.get("content-type", ""):
                    raise self._http_error(response)
            except SageMakerRuntimeError as exc:
                delay = self._client._retry_delay(self._attempts, exc, self._call)
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            self._response = response
            self._status = response.status
            self._headers = dict(response.headers)
            self.request_id = response.headers.get("x-amzn-requestid")
            return

    def _http_error(self, response: urllib3.BaseHTTPResponse) -> Exception:
        try:
            body = response.read(1 << 20)
            response.release_conn()
        except (HTTPError, OSError):
            body = b""
            response.close()
        return self._client._http_error(response.status, response.headers, body, self._attempts)

    # -- reading ----------------------------------------------------------------------------------

    def payloads(self) -> Iterator[bytes]:
        """The raw bytes of each PayloadPart (Bedrock: of each chunk), as the model sent them."""
        return self._iterate(False)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """boto3's events: ``{"PayloadPart": {"Bytes": b"..."}}`` (Bedrock: ``{"chunk": {"bytes": ...}}``)."""
        return self._iterate(True)

    def _iterate(self, boto_shape: bool) -> Iterator[Any]:
        # One generator from the socket to the consumer: each event passes through a single frame.
        config = self._client._limits
        while True:
            response = self._response
            if response is None:
                if self._closed:
                    return
                raise RuntimeError("the stream was already consumed")
            body = _Body(response)
            reader = BodyReader(
                self._operation,
                framing=body.framing,
                length=body.length,
                boto_shape=boto_shape,
                request_id=self.request_id,
            )
            feed = reader.feed
            monotonic = time.monotonic
            idle = config.event_timeout
            deadline = monotonic() + config.first_byte_timeout  # for the first event
            try:
                try:
                    recv_into = body.start(config.first_byte_timeout)
                    buffer = body.buffer
                    data: bytes | memoryview = body.early
                    while True:
                        if not data:
                            try:
                                size = recv_into(buffer)
                            except _TIMEOUTS:
                                left = deadline - monotonic()
                                if left > _EARLY:  # woken early (EINTR, a coarse timer): wait out the rest
                                    body.arm(left)
                                    continue
                                raise self._timeout_error() from None
                            if not size:
                                reader.eof()
                                break
                            data = buffer[:size]
                        events = feed(data)
                        data = b""
                        delivered = bool(events)
                        if delivered:
                            self._delivered = True
                            self._batch = events
                            if len(events) == 1:  # a token per read: no iterator to make
                                yield events[0]
                            else:
                                yield from events
                        while reader.pending:  # more of this read a batch at a time, or the error it holds
                            self._batch = events = feed(b"")
                            yield from events
                        if reader.done:
                            break
                        if delivered:
                            # A new deadline from the event delivered, the full timeout for the next read.
                            deadline = monotonic() + idle
                            if body.armed != idle:
                                body.arm(idle)
                        else:
                            # Bytes but no event do not move the deadline: the next read waits what is left.
                            body.arm(deadline - monotonic())
                except SageMakerRuntimeError:
                    raise
                except OSError as exc:
                    if self._closed:  # close() was called between two events: the socket closed under us
                        return
                    raise IncompleteStream(
                        f"The connection failed inside the response body: {exc}", request_id=self.request_id
                    ) from None
                # Read to the end: the connection goes back to the pool for the next call.
                self._response = None
                body.finish(reusable=reader.reusable)
                return
            except SageMakerRuntimeError as exc:
                self._abort()
                delay = None
                if not self._closed and may_retry(exc, self._delivered):
                    delay = self._client._retry_delay(self._attempts, exc, self._call)
                if delay is None:
                    raise
            except BaseException:
                # A codec error, or the consumer stopped (GeneratorExit): a half-read body is not reusable.
                self._abort()
                raise
            # Nothing was delivered yet: send the request again.
            time.sleep(delay)
            self._start()

    def text(self) -> Iterator[str]:
        """The payloads decoded as UTF-8, characters split across parts reassembled."""
        return _lines.iter_text(self.payloads())

    def lines(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> Iterator[str]:
        """Lines without their terminator; the last one even without a trailing newline."""
        return _lines.iter_lines(self.payloads(), max_line_length=max_line_length)

    def sse(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> Iterator[_lines.SSEEvent]:
        """Server-sent events (TGI, OpenAI-compatible servers)."""
        return _lines.iter_sse(self.payloads(), max_line_length=max_line_length)

    def json(
        self, *, format: str | None = None, max_line_length: int = _lines.MAX_LINE_LENGTH
    ) -> RecordStream:
        """The model's JSON records (SSE ``data:``, JSON lines or Bedrock's bare objects; ends at
        ``[DONE]``); in-band error records raise ``InBandError``; ``.finish_reason``, ``.usage`` once read."""
        return _lines.iter_json(self.payloads(), format=format, max_line_length=max_line_length)

    def tokens(self, *, format: str | None = None) -> TokenStream:
        """The generated text, piece by piece, of any container or Bedrock family (detected per stream, or
        ``format=``: see :mod:`evstream.families`); ``.finish_reason`` / ``.usage`` once read."""
        return _lines.iter_tokens(self.payloads(), format=format)

    # -- closing ----------------------------------------------------------------------------------

    def _abort(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()  # a half-read body cannot be reused: close the socket
            response.release_conn()

    def close(self) -> None:
        """Stop reading and release the connection (closed if the body was not read to its end)."""
        self._closed = True
        self._batch.clear()  # events of the batch in hand are not handed out after close()
        self._abort()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._response is not None:
            self._abort()
