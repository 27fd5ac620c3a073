"""The synchronous client: urllib3, one pooled connection per open stream."""

from __future__ import annotations

import http.client
import os
import socket
import time
import weakref
from collections.abc import Iterator
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from .. import Decoder, TruncatedStream
from .. import lines as _lines
from ._base import (
    EVENTSTREAM,
    SAGEMAKER,
    BaseClient,
    Operation,
    StreamState,
    event_timeout,
    first_byte_timeout,
    incomplete_frame,
    non_payload,
    response_dict,
    unexpected_response,
)
from .config import Config, Request
from .errors import (
    ConnectionFailed,
    ConnectTimeout,
    IncompleteStream,
    SageMakerRuntimeError,
)

__all__ = ["Client", "EventStream"]

_READ = 65536  # the most read1() returns at once from a body with a Content-Length


class _ChunkError(Exception):
    pass


def _chunk_size(line: bytes) -> int:
    """The size of a chunk whose line int() refused: with extensions, cut short, or malformed."""
    if not line:
        raise _ChunkError("the connection closed before the end of the chunked body")
    try:
        return int(line.split(b";", 1)[0], 16)
    except ValueError:
        raise _ChunkError(f"invalid chunk size line {line[:40]!r}") from None


class Client(BaseClient):
    """``invoke_endpoint_with_response_stream`` with boto3's parameters and response shape.

    Thread-safe; connections are pooled per host (``max_pool_connections``) and reused across calls. After
    ``fork`` the child starts with an empty pool, never sharing the parent's sockets.
    """

    def __init__(self, config: Config, session: Any = None) -> None:
        super().__init__(config, session)
        self._pool = self._new_pool()
        _CLIENTS.add(self)

    def _new_pool(self) -> urllib3.PoolManager:
        kwargs: dict[str, Any] = {}
        if self._scheme == "https":
            # TLS is verified unless verify=False, against the bundle boto3 would use.
            kwargs["cert_reqs"] = "CERT_REQUIRED" if self._ca_bundle else "CERT_NONE"
            kwargs["ca_certs"] = self._ca_bundle
        # block=False: a burst over the pool size opens extra connections instead of waiting for a
        # stream to finish; only max_pool_connections idle ones are kept.
        return urllib3.PoolManager(
            num_pools=4, maxsize=self.config.max_pool_connections, block=False, retries=False, **kwargs
        )

    def _after_fork(self) -> None:
        # The parent's sockets stay with the parent: drop them without a word on the wire.
        self._pool = self._new_pool()

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.config,)

    def close(self) -> None:
        """Close the pooled connections (streams still open keep theirs until they end)."""
        self._pool.clear()

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

    def _send(self, request: Request) -> urllib3.BaseHTTPResponse:
        """One attempt: the response with its headers read, or a typed error."""
        headers = self._sign(request)
        timeout = urllib3.Timeout(connect=self.config.connect_timeout, read=self.config.first_byte_timeout)
        try:
            return self._pool.urlopen(
                request.method,
                self.endpoint_url + request.path[len(self._base_path) :],
                body=request.body,
                headers=headers,
                timeout=timeout,
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=False,
            )
        # NewConnectionError subclasses ConnectTimeoutError: test it first.
        except NewConnectionError as exc:
            raise ConnectionFailed(f"Could not connect to {self.endpoint_url}: {exc}") from None
        except ConnectTimeoutError as exc:
            raise ConnectTimeout(
                f"No connection within connect_timeout={self.config.connect_timeout:g} s: {exc}",
                self.config.connect_timeout,
            ) from None
        except ReadTimeoutError:
            raise first_byte_timeout(self.config.first_byte_timeout, None) from None
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

    # -- opening and retries --------------------------------------------------------------------

    def _start(self) -> None:
        config = self._client.config
        while True:
            self._attempts += 1
            try:
                response = self._client._send(self._request)
                if response.status != 200 or EVENTSTREAM not in response.headers.get("content-type", ""):
                    raise self._http_error(response)
            except SageMakerRuntimeError as exc:
                if not exc.retryable or self._attempts >= config.max_attempts:
                    raise
                time.sleep(self._client._backoff(self._attempts))
                continue
            self._response = response
            self._status = response.status
            self._headers = dict(response.headers)
            self.request_id = response.headers.get("x-amzn-requestid")
            return

    def _http_error(self, response: urllib3.BaseHTTPResponse) -> SageMakerRuntimeError:
        try:
            body = response.read(1 << 20)
            response.release_conn()
        except (HTTPError, OSError):
            body = b""
            response.close()
        return unexpected_response(response.status, response.headers, body)

    # -- reading ----------------------------------------------------------------------------------

    def payloads(self) -> Iterator[bytes]:
        """The raw bytes of each PayloadPart (Bedrock: of each chunk), as the model sent them."""
        return self._iterate(False)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """boto3's events: ``{"PayloadPart": {"Bytes": b"..."}}`` (Bedrock: ``{"chunk": {"bytes": ...}}``)."""
        return self._iterate(True)

    def _iterate(self, boto_shape: bool) -> Iterator[Any]:
        config = self._client.config
        while True:
            try:
                yield from self._read(boto_shape)
                return
            except SageMakerRuntimeError as exc:
                self._abort()
                if (
                    self._delivered
                    or not exc.retryable
                    or self._attempts >= config.max_attempts
                    or self._closed
                ):
                    raise
            except BaseException:
                # A codec error, or the consumer stopped (GeneratorExit): a half-read body is not reusable.
                self._abort()
                raise
            # Nothing was delivered yet: send the request again.
            time.sleep(self._client._backoff(self._attempts))
            self._start()

    def _read(self, boto_shape: bool) -> Iterator[Any]:
        response = self._response
        if response is None:
            if self._closed:
                return
            raise RuntimeError("the stream was already consumed")
        # The body is read here, straight from http.client's response and its buffered socket reader:
        # urllib3's read_chunked() costs three times as much CPU per chunk, and tokens arrive one per
        # chunk. A chunked body (what the service sends) is parsed inline; a body with a Content-Length
        # goes through http.client's read1().
        original: http.client.HTTPResponse = response._original_response  # type: ignore[attr-defined]
        fp = original.fp
        if fp is None:
            raise IncompleteStream("The response body was already closed", request_id=self.request_id)
        chunked = bool(response.chunked)
        readline = fp.readline
        read = fp.read
        read1 = original.read1
        feed = Decoder().feed
        request_id = self.request_id
        waiting = not self._delivered  # first_byte_timeout until the first event, then event_timeout
        operation = self._operation
        event_type, outer, inner, decode = (
            operation.event_type,
            operation.outer,
            operation.inner,
            operation.decode,
        )
        try:
            while True:
                if chunked:
                    line = readline(1026)
                    try:
                        size = int(line, 16)
                    except ValueError:
                        size = _chunk_size(line)
                    if not size:
                        while readline(1026) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    data = read(size + 2)
                    if len(data) != size + 2 or data[-2:] != b"\r\n":
                        raise _ChunkError(f"cut short inside an HTTP chunk ({len(data)} of {size + 2} bytes)")
                    # Dropping the CRLF by slicing copies the chunk: cheap for one event, not for many.
                    messages = feed(data[:-2] if size < 2048 else memoryview(data)[:-2])
                else:
                    data = read1(_READ)
                    if not data:
                        if original.length:  # read1() ends quietly on a body shorter than announced
                            raise _ChunkError(f"{original.length} bytes of the Content-Length never came")
                        break
                    messages = feed(data)
                for message in messages:
                    headers = message.headers
                    if headers.get(":event-type") == event_type:
                        if waiting:
                            waiting = False
                            self._delivered = True
                            self._set_read_timeout(response, self._client.config.event_timeout)
                        payload = message.payload if decode is None else decode(message.payload)
                        yield {outer: {inner: payload}} if boto_shape else payload
                    else:
                        error = non_payload(headers, message.payload, request_id)
                        if error is not None:
                            raise error
            feed.__self__.close()  # type: ignore[attr-defined]
        except socket.timeout:
            config = self._client.config
            if waiting:
                raise first_byte_timeout(config.first_byte_timeout, request_id) from None
            raise event_timeout(config.event_timeout, request_id) from None
        except TruncatedStream as exc:
            raise incomplete_frame(exc, request_id) from None
        except (_ChunkError, http.client.HTTPException) as exc:
            raise IncompleteStream(f"The response body was cut short: {exc}", request_id=request_id) from None
        except OSError as exc:
            raise IncompleteStream(
                f"The connection failed inside the response body: {exc}", request_id=request_id
            ) from None
        except ValueError:
            if self._closed:  # close() was called between two events: the file is closed under us
                return
            raise
        # Read to the end: the connection goes back to the pool for the next call.
        self._response = None
        original.close()
        response.release_conn()

    @staticmethod
    def _set_read_timeout(response: urllib3.BaseHTTPResponse, timeout: float) -> None:
        connection = response.connection
        sock = getattr(connection, "sock", None)
        if sock is not None:
            sock.settimeout(timeout)

    def text(self) -> Iterator[str]:
        """The payloads decoded as UTF-8, characters split across parts reassembled."""
        return _lines.iter_text(self.payloads())

    def lines(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> Iterator[str]:
        """Lines without their terminator; the last one even without a trailing newline."""
        return _lines.iter_lines(self.payloads(), max_line_length=max_line_length)

    def sse(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> Iterator[_lines.SSEEvent]:
        """Server-sent events (TGI, OpenAI-compatible servers)."""
        return _lines.iter_sse(self.payloads(), max_line_length=max_line_length)

    def json(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> Iterator[Any]:
        """JSON objects from JSON lines or SSE ``data:`` fields; ends at ``data: [DONE]``."""
        return _lines.iter_json(self.payloads(), max_line_length=max_line_length)

    def tokens(self) -> Iterator[str]:
        """Generated text per token of TGI, LMI or OpenAI-compatible streams (see lines.token_text)."""
        return _lines.iter_tokens(self.payloads())

    # -- closing ----------------------------------------------------------------------------------

    def _abort(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()  # a half-read body cannot be reused: close the socket
            response.release_conn()

    def close(self) -> None:
        """Stop reading and release the connection (closed if the body was not read to its end)."""
        self._closed = True
        self._abort()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._response is not None:
            self._abort()


_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for client in list(_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
