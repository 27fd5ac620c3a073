"""Bidirectional streaming over HTTP/2: SageMaker ``InvokeEndpointWithBidirectionalStream`` and Bedrock
``InvokeModelWithBidirectionalStream``, sync (this module) and asyncio (:mod:`._http2_async`).

::

    runtime = evstream.sagemaker.http2_client(region_name="us-west-2")
    with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="my-endpoint") as stream:
        stream.send(b"hello", data_type="UTF8", completion_state="COMPLETE")   # from any thread
        stream.close_input()
        for event in stream:                    # while other threads keep sending
            print(event["PayloadPart"]["Bytes"])
        print(stream.response["InvokedProductionVariant"])

botocore is the control plane (credentials, region, endpoint rules, ``Config``, modelled exceptions), awscrt
the HTTP/2 transport (:mod:`._http2_transport`), and every input event is signed
(:mod:`.event_signing`), chained to the request's SigV4 signature.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import botocore
from awscrt import http as crt_http
from botocore.exceptions import ClientError

from .. import EventStreamError, Message
from ._http2_ops import (
    BEDROCK,
    SAGEMAKER,
    BidiOperation,
    InputValidationError,
    InternalServerError,
    ServiceUnavailableError,
    StreamReset,
    Target,
    control_plane,
    stream_reset,
)
from ._http2_transport import ConnectionPool, DuplexCore, Endpoint
from .errors import (
    ConnectionFailed,
    ConnectTimeout,
    EventTimeout,
    FirstByteTimeout,
    IncompleteStream,
    InternalStreamFailure,
    ModelError,
    ModelStreamError,
    NoCredentialsError,
    ParamValidationError,
    SageMakerRuntimeError,
    StreamTimeout,
)
from .event_signing import EVENT_STREAM_PAYLOAD, EventSigner

if TYPE_CHECKING:
    from ._http2_async import (
        AsyncBedrockHttp2Client,
        AsyncBidirectionalStream,
        AsyncHttp2Client,
        async_bedrock_http2_client,
        async_http2_client,
    )

__all__ = [
    "AsyncBedrockHttp2Client",
    "AsyncBidirectionalStream",
    "AsyncHttp2Client",
    "BedrockHttp2Client",
    "BidirectionalStream",
    "Http2Client",
    "InputValidationError",
    "InternalServerError",
    "SendTimeout",
    "ServiceUnavailableError",
    "StreamReset",
    "async_bedrock_http2_client",
    "async_http2_client",
    "bedrock_http2_client",
    "http2_client",
]


class SendTimeout(StreamTimeout):
    """The server took no more input for ``timeout`` seconds (its flow-control window stayed shut)."""


class Exceptions:
    """``client.exceptions``: SageMaker Runtime HTTP2's modelled errors and the transport's."""

    InputValidationError = InputValidationError
    InternalServerError = InternalServerError
    ModelError = ModelError
    ModelStreamError = ModelStreamError
    ServiceUnavailableError = ServiceUnavailableError
    InternalStreamFailure = InternalStreamFailure
    StreamReset = StreamReset
    ConnectionFailed = ConnectionFailed
    ConnectTimeout = ConnectTimeout
    FirstByteTimeout = FirstByteTimeout
    EventTimeout = EventTimeout
    SendTimeout = SendTimeout
    IncompleteStream = IncompleteStream
    ParamValidationError = ParamValidationError
    NoCredentialsError = NoCredentialsError
    ClientError = ClientError


DEFAULT_WINDOW = 1 << 20  # bytes the server may send beyond what the reader has taken
DEFAULT_INFLIGHT = 256 * 1024  # bytes a writer may be ahead of the wire

_Client = TypeVar("_Client", bound="Http2Base")
_Stream = TypeVar("_Stream", bound="StreamBase")


class Http2Base:
    """What the sync and asyncio clients share: the control plane, the connections, signing."""

    bidi_operation: ClassVar[BidiOperation]  # what the client class calls (SageMaker's or Bedrock's)
    exceptions = Exceptions

    @classmethod
    def from_boto3(
        cls: type[_Client],
        boto3_client: Any = None,
        /,
        *,
        session: Any = None,
        config: Any = None,
        window: int = DEFAULT_WINDOW,
        max_inflight: int = DEFAULT_INFLIGHT,
        **kwargs: Any,
    ) -> _Client:
        """A client from boto3.client's arguments (``region_name``, ``endpoint_url``, credentials,
        ``verify``, a botocore ``Config``, a boto3 or botocore ``session``) or from an existing boto3
        client of the service; ``window`` and ``max_inflight`` bound the bytes in flight each way."""
        operation = cls.bidi_operation
        target = control_plane(operation.service_name, boto3_client, session=session, config=config, **kwargs)
        return cls(operation, target, window=window, max_inflight=max_inflight)

    def __init__(self, operation: BidiOperation, target: Target, *, window: int, max_inflight: int) -> None:
        self._operation = operation
        self._target = target
        self.region = target.control.region
        self.endpoint_url = target.endpoint_url
        self.max_inflight = max_inflight
        self.window = window
        endpoint = Endpoint(
            target.host, target.port, verify=target.verify,
            connect_timeout=target.connect_timeout, window=window,
        )  # fmt: skip
        self._pool = ConnectionPool(endpoint)

    @property
    def meta(self) -> Any:
        return self._target.client.meta

    @property
    def connections(self) -> int:
        """Open HTTP/2 connections (streams share them)."""
        return self._pool.connections

    def __repr__(self) -> str:
        return f"<{type(self).__name__} endpoint_url={self.endpoint_url!r} region={self.region!r}>"

    def _request(self, params: dict[str, Any]) -> tuple[crt_http.HttpRequest, EventSigner | None]:
        """The signed HTTP request and the signer of its events (None when requests go unsigned)."""
        target = self._target
        control = target.control
        path, headers = self._operation.build(params)
        headers["User-Agent"] = target.control.user_agent
        request = crt_http.HttpRequest(
            "POST",
            target.base_path + path,
            crt_http.HttpHeaders([("host", target.host_header), *headers.items()]),
        )
        if control.signature_version is botocore.UNSIGNED:
            return request, None
        credentials = control.sigv4_signer().sign_request(
            request, EVENT_STREAM_PAYLOAD, content_sha256_header=True
        )
        seed = str(request.headers.get("Authorization")).rsplit("Signature=", 1)[1].strip()
        signer = EventSigner(credentials.secret_key, control.signing_region, control.signing_name, seed)
        return request, signer

    def _transport_error(self, exc: BaseException, request_id: str | None = None) -> Exception:
        """The typed error for an awscrt failure (connecting, or the stream breaking)."""
        url = self.endpoint_url
        if isinstance(exc, SageMakerRuntimeError):
            return exc
        if isinstance(exc, concurrent.futures.TimeoutError):
            timeout = self._target.connect_timeout
            error: Exception = ConnectTimeout(
                f"No connection to {url} within {timeout:g} s", timeout, endpoint_url=url
            )
            return error
        name = getattr(exc, "name", type(exc).__name__)
        if name == "AWS_ERROR_HTTP_RST_STREAM_RECEIVED":
            return stream_reset(name, request_id, self._operation)
        if "TIMEOUT" in name and "SOCKET" in name:
            timeout = self._target.connect_timeout
            error = ConnectTimeout(f"Connecting to {url} timed out ({name})", timeout, endpoint_url=url)
            return error
        if isinstance(exc, EventStreamError):
            error = IncompleteStream(f"The response stream broke: {exc}", request_id=request_id)
        else:
            error = ConnectionFailed(f"HTTP/2 connection to {url} failed: {exc}", endpoint_url=url)
        return error

    def _response(self, core: DuplexCore) -> dict[str, Any]:
        headers = core.headers
        response: dict[str, Any] = {
            "ResponseMetadata": {
                "RequestId": headers.get("x-amzn-requestid"),
                "HTTPStatusCode": core.status,
                "HTTPHeaders": {k: v for k, v in headers.items() if not k.startswith(":")},
                "RetryAttempts": 0,
            }
        }
        for member, header in self._operation.members:
            if header in headers:
                response[member] = headers[header]
        return response

    def _failure(self, core: DuplexCore) -> Exception | None:
        """What ended the stream badly, if anything: an HTTP error answer, a reset, a broken body."""
        if core.status and core.status != 200 and core.complete:
            return self._operation.http_error(core.status, core.headers, core.error_body(), self._target)
        if core.error is not None:
            return self._transport_error(core.error, core.headers.get("x-amzn-requestid"))
        return None

    def _started(
        self, stream: _Stream, connection: crt_http.Http2ClientConnection, request: crt_http.HttpRequest
    ) -> _Stream:
        """``stream`` started on ``connection`` (given back to the pool if the stream cannot start)."""
        try:
            stream._start(connection, request)
        except Exception as exc:
            self._pool.release(connection)
            raise self._transport_error(exc) from exc
        return stream


class StreamBase:
    """What the sync and asyncio streams share: the transport core, the events both ways, signing, the
    errors; they differ only in how they wait."""

    def __init__(self, client: Http2Base, signer: EventSigner | None) -> None:
        self._client = client
        self._signer = signer
        self._core: DuplexCore | None = None
        self._connection: crt_http.Http2ClientConnection | None = None
        self._closed = False
        self._first = True  # no event delivered yet (FirstByteTimeout rather than EventTimeout)

    def _start(self, connection: crt_http.Http2ClientConnection, request: crt_http.HttpRequest) -> None:
        self._connection = connection
        client = self._client
        self._core = DuplexCore(
            connection, request, self._wake, max_inflight=client.max_inflight, window=client.window
        )

    def _wake(self) -> None:  # from awscrt's thread: something changed
        raise NotImplementedError

    @property
    def _stream(self) -> DuplexCore:
        if self._core is None:
            raise RuntimeError("the stream was not started")
        return self._core

    def _message(
        self, data: Any, data_type: str | None, completion_state: str | None, p: str | None
    ) -> bytes:
        operation = self._client._operation
        if operation is SAGEMAKER:
            return operation.input_event(data, data_type, completion_state, p)
        if data_type is not None or completion_state is not None or p is not None:
            raise TypeError("Bedrock chunk events carry bytes only")
        return operation.input_event(data)

    def _writable(self, end: bool) -> bool:
        """Whether to write (False: the input is already closed and this is close_input again)."""
        if self._closed:
            raise ValueError("send on a closed stream")
        if self._stream.ended_input:
            if end:
                return False
            raise ValueError("the input was already closed")
        self._raise_if_failed()
        return True

    def _frame(self, message: bytes, end: bool) -> bytes:
        """The bytes on the wire: the event signed in its envelope (or bare, for unsigned requests)."""
        if self._signer is None:
            return message
        return self._signer.end() if end else self._signer.sign(message)

    def _send_limit(self, timeout: float | None) -> float:
        return self._client._target.read_timeout if timeout is None else timeout

    def _send_timeout(self, limit: float) -> SendTimeout:
        message = f"The server took no input for {limit:g} s"
        return SendTimeout(message, limit, endpoint_url=self._client.endpoint_url)

    def _raise_if_failed(self) -> None:
        core = self._stream
        if core.status not in (0, 200) or core.error is not None:
            failure = self._client._failure(core)
            if failure is not None:
                raise failure

    def _read_timeout(self) -> Exception:
        timeout = self._client._target.read_timeout
        cls = FirstByteTimeout if self._first else EventTimeout
        what = "first event" if self._first else "event"
        error: Exception = cls(
            f"No {what} within {timeout:g} s", timeout, endpoint_url=self._client.endpoint_url
        )
        return error

    def _event(self, message: Message | None) -> dict[str, Any] | None:
        """The boto3-shaped event for a message (None: one to skip); at the end (``message`` None), raises
        what ended the stream badly, or ``StopIteration`` after a clean end."""
        core = self._stream
        if message is None:
            failure = self._client._failure(core)
            if failure is not None:
                raise failure
            raise StopIteration
        self._first = False
        client = self._client
        return client._operation.output_event(message, client._target, core.headers.get("x-amzn-requestid"))

    def _headers_failure(self) -> Exception:
        failure = self._client._failure(self._stream)
        return failure if failure is not None else ConnectionFailed("The stream ended without a response")

    def close(self) -> None:
        """Release the stream: a stream still running has its input ended and its output dropped."""
        if self._closed:
            return
        self._closed = True
        core = self._core
        if core is None or self._connection is None:
            return
        abandoned = core.abandon()
        self._client._pool.release(self._connection, abandoned=abandoned)


class BidirectionalStream(StreamBase):
    """One bidirectional stream: ``send`` from any thread, iterate the response events, ``close_input``.

    Iterating yields boto3-shaped events (``{"PayloadPart": {"Bytes": ..., "DataType": ...}}``) and raises
    the modelled error an exception event stands for; the end of the stream ends the iteration only when
    the server ended it cleanly.
    """

    def __init__(self, client: Http2Base, signer: EventSigner | None) -> None:
        super().__init__(client, signer)
        self._wakeup = threading.Condition()
        self._send_lock = threading.Lock()

    def _wake(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()

    def send(
        self,
        data: bytes | str,
        *,
        data_type: str | None = None,
        completion_state: str | None = None,
        p: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Sign and send one input event; waits while the server is not taking input (``SendTimeout``
        after ``timeout`` seconds, by default the client's read timeout)."""
        self._write(self._message(data, data_type, completion_state, p), end=False, timeout=timeout)

    def close_input(self, *, timeout: float | None = None) -> None:
        """Send the signed end of the input (the server may go on answering); idempotent."""
        self._write(b"", end=True, timeout=timeout)

    def _write(self, message: bytes, *, end: bool, timeout: float | None) -> None:
        core = self._stream
        limit = self._send_limit(timeout)
        with self._send_lock:
            if not self._writable(end):
                return
            deadline = time.monotonic() + limit
            while (pending := core.backlog()) is not None:
                try:
                    pending.result(max(0.0, deadline - time.monotonic()))
                except concurrent.futures.TimeoutError:
                    raise self._send_timeout(limit) from None
                except Exception as exc:
                    raise self._client._transport_error(exc) from exc
                self._raise_if_failed()
            core.write(self._frame(message, end), end=end)

    @property
    def response(self) -> dict[str, Any]:
        """The response's members (``InvokedProductionVariant``) and ``ResponseMetadata``; waits for the
        response headers (``first_byte_timeout``), and raises the error an error answer stands for."""
        core = self._stream
        timeout = self._client._target.read_timeout
        deadline = time.monotonic() + timeout
        with self._wakeup:
            while core.status == 0 and not core.complete:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FirstByteTimeout(f"No response within {timeout:g} s", timeout)
                self._wakeup.wait(remaining)
            if core.status != 200:
                while not core.complete and time.monotonic() < deadline:
                    self._wakeup.wait(deadline - time.monotonic())
        if core.status != 200:
            raise self._headers_failure()
        return self._client._response(core)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        core = self._stream
        if self._closed:
            raise ValueError("read from a closed stream")
        while True:
            deadline = time.monotonic() + self._client._target.read_timeout
            with self._wakeup:
                while (message := core.take()) is None and not core.finished:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._read_timeout()
                    self._wakeup.wait(remaining)
            event = self._event(message)
            if event is not None:
                return event

    def __enter__(self) -> BidirectionalStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


class _SyncClient(Http2Base):
    def _open(self, params: dict[str, Any]) -> BidirectionalStream:
        request, signer = self._request(params)
        stream = BidirectionalStream(self, signer)
        try:
            connection = self._pool.acquire().result(self._target.connect_timeout + 1)
        except Exception as exc:
            raise self._transport_error(exc) from exc
        return self._started(stream, connection, request)

    def close(self) -> None:
        """Close the connections (streams still open on them fail)."""
        self._pool.close()

    def __enter__(self) -> _SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Http2Client(_SyncClient):
    """SageMaker Runtime HTTP2, sync. Thread-safe; streams share HTTP/2 connections."""

    bidi_operation = SAGEMAKER

    def invoke_endpoint_with_bidirectional_stream(self, **params: Any) -> BidirectionalStream:
        """Open a stream to ``EndpointName`` (with ``TargetVariant``, ``ModelInvocationPath``,
        ``ModelQueryString``); returns at once, before the response headers (see ``stream.response``)."""
        return self._open(params)


class BedrockHttp2Client(_SyncClient):
    """Bedrock Runtime's bidirectional operation, sync."""

    bidi_operation = BEDROCK

    @property
    def exceptions(self) -> Any:  # type: ignore[override]
        return self._target.client.exceptions

    def invoke_model_with_bidirectional_stream(self, **params: Any) -> BidirectionalStream:
        """Open a stream to ``modelId``; ``stream.send(bytes)`` sends a ``chunk`` event."""
        return self._open(params)


http2_client = Http2Client.from_boto3
bedrock_http2_client = BedrockHttp2Client.from_boto3


_ASYNC_NAMES = (
    "AsyncBedrockHttp2Client",
    "AsyncBidirectionalStream",
    "AsyncHttp2Client",
    "async_bedrock_http2_client",
    "async_http2_client",
)


def __getattr__(name: str) -> Any:
    # The asyncio twin lives in its own module (it imports this one).
    if name in _ASYNC_NAMES:
        from . import _http2_async

        return getattr(_http2_async, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
