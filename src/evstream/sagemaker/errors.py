"""Errors of the streaming clients: botocore's classes, with evstream's typed classes mixed in.

Every error is an instance of the class boto3 would raise for the same failure, so ``except ClientError``,
``except client.exceptions.ModelError``, ``except EventStreamError`` and ``except ReadTimeoutError`` keep
working after switching from boto3; ``e.response`` has boto3's shape. The evstream classes add what
botocore does not say: one class per failure (``FirstByteTimeout`` vs ``EventTimeout``), ``retryable``,
``request_id``, and the modelled members as attributes (``error_code``, ``original_status_code``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from botocore import exceptions as _botocore

from ..errors import TruncatedStream

__all__ = [
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionFailed",
    "EventTimeout",
    "FirstByteTimeout",
    "IncompleteStream",
    "InternalDependencyError",
    "InternalFailure",
    "InternalStreamFailure",
    "ModelError",
    "ModelNotReady",
    "ModelStreamError",
    "NoCredentialsError",
    "ParamValidationError",
    "ProxyConnectionFailed",
    "SageMakerRuntimeError",
    "ServiceError",
    "ServiceUnavailable",
    "StreamError",
    "StreamTimeout",
    "TLSFailed",
    "ThrottlingException",
    "UnmodelledStreamError",
    "ValidationError",
    "error_response",
    "service_error_class",
    "stream_exception",
]


_E = TypeVar("_E", bound="SageMakerRuntimeError")


class SageMakerRuntimeError(Exception):
    """What every error of the client is, besides its botocore class.

    An instance is made of a subclass named as the botocore class it stands for (``type(e).__name__`` is
    ``"ReadTimeoutError"`` for an :class:`EventTimeout`, ``"EventStreamError"`` for a
    :class:`ModelStreamError`), so code and logs that look at the name see what boto3 gives them.
    """

    retryable = False
    _raised_as: type[Any] | None = None

    def __new__(cls: type[_E], *args: Any, **kwargs: Any) -> _E:
        # No arguments to the base: OSError's __new__ would read them as (errno, strerror).
        instance: _E = super().__new__(cls.__dict__.get("_raised_as") or cls)
        return instance

    @property
    def message(self) -> str:
        """The service's or evstream's words, without botocore's "An error occurred (...)" frame."""
        response = getattr(self, "response", None)
        if isinstance(response, dict) and "Error" in response:
            return str(response["Error"].get("Message", ""))
        return str(self)

    @property
    def request_id(self) -> str | None:
        response = getattr(self, "response", None)
        if isinstance(response, dict):
            value = response.get("ResponseMetadata", {}).get("RequestId")
            return value if value else None
        return self.__dict__.get("_request_id")


# -- errors botocore raises before anything is sent ------------------------------------------------


class ParamValidationError(_botocore.ParamValidationError, SageMakerRuntimeError, ValueError):
    """A request parameter refused before anything is sent."""

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        report = kwargs.pop("report", message)
        super().__init__(report=report, **kwargs)  # type: ignore[call-arg]

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.kwargs["report"],)


class NoCredentialsError(_botocore.NoCredentialsError, SageMakerRuntimeError):
    """Signing is on and no credentials were found (botocore's chain was searched)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), ()


# -- transport errors ------------------------------------------------------------------------------


class _TransportError(SageMakerRuntimeError):
    """A botocore transport error with evstream's own words as its message."""

    def __init__(
        self, message: str, *, endpoint_url: str | None = None, request_id: str | None = None
    ) -> None:
        self._init(message, request_id, endpoint_url=endpoint_url, error=message)

    def _init(self, message: str, request_id: str | None, **kwargs: Any) -> None:
        Exception.__init__(self, message)
        self.kwargs = kwargs  # botocore's BotoCoreError keeps its format arguments here
        self.request = self.response = None  # botocore's HTTPClientError has these
        self._request_id = request_id

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), str(self)), self.__dict__


class ConnectionFailed(_botocore.EndpointConnectionError, _TransportError, ConnectionError):
    """The endpoint could not be reached or dropped the connection before answering."""

    __reduce__ = _TransportError.__reduce__

    retryable = True

    __init__ = _TransportError.__init__


class ProxyConnectionFailed(_botocore.ProxyConnectionError, _TransportError, ConnectionError):
    """The proxy could not be reached, or refused to open a tunnel to the endpoint."""

    __reduce__ = _TransportError.__reduce__

    retryable = True

    def __init__(self, message: str, *, proxy_url: str | None = None, request_id: str | None = None) -> None:
        self._init(message, request_id, proxy_url=proxy_url, error=message)


class TLSFailed(_botocore.SSLError, _TransportError, ConnectionError):
    """TLS to the endpoint failed: a certificate that does not verify, or a handshake cut short
    (botocore's ``SSLError``)."""

    retryable = True

    __init__ = _TransportError.__init__

    __reduce__ = _TransportError.__reduce__


class ConnectionClosed(_botocore.ConnectionClosedError, _TransportError, ConnectionError):
    """The endpoint closed the connection before a response head came (botocore's
    ``ConnectionClosedError``)."""

    retryable = True

    __init__ = _TransportError.__init__

    __reduce__ = _TransportError.__reduce__


class StreamTimeout(_TransportError, TimeoutError):
    """Base class of the three timeouts; ``timeout`` is the limit that was reached, in seconds."""

    def __init__(
        self,
        message: str,
        timeout: float | None = None,
        *,
        endpoint_url: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self._init(message, request_id, endpoint_url=endpoint_url, error=message)
        self.timeout = timeout


class ConnectTimeout(_botocore.ConnectTimeoutError, StreamTimeout):
    """No connection within ``connect_timeout`` (botocore's ``ConnectTimeoutError``)."""

    __reduce__ = _TransportError.__reduce__

    retryable = True
    __init__ = StreamTimeout.__init__


class FirstByteTimeout(_botocore.ReadTimeoutError, StreamTimeout):
    """No response, or no first event, within ``first_byte_timeout`` (botocore's ``ReadTimeoutError``)."""

    __reduce__ = _TransportError.__reduce__

    retryable = True
    __init__ = StreamTimeout.__init__


class EventTimeout(_botocore.ReadTimeoutError, StreamTimeout):
    """No event within ``event_timeout`` of the previous one (botocore's ``ReadTimeoutError``)."""

    __reduce__ = _TransportError.__reduce__

    __init__ = StreamTimeout.__init__


class IncompleteStream(_botocore.ResponseStreamingError, _TransportError, TruncatedStream):
    """The response body ended early or broke its framing (botocore's ``ResponseStreamingError``; also
    :class:`evstream.TruncatedStream`). boto3 ends such a stream quietly; evstream raises."""

    __reduce__ = _TransportError.__reduce__

    retryable = True  # only ever acted on before the first event is delivered
    malformed = False  # True: the answer broke HTTP/1.1 (never sent again), not a connection cut short

    def __init__(self, message: str, buffered: int = 0, *, request_id: str | None = None) -> None:
        self._init(message, request_id, error=message)
        self.buffered = buffered
        self.expected = None


def _rebuild(cls: type[Exception], message: str) -> Exception:
    """An instance without __init__: pickle then restores its __dict__ (every attribute)."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error


# -- errors the service answers --------------------------------------------------------------------


def error_response(
    code: str,
    message: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    attempts: int = 1,
    members: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """boto3's ``e.response`` for an error."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    metadata: dict[str, Any] = {
        "RequestId": lowered.get("x-amzn-requestid", ""),
        "HTTPStatusCode": status,
        "HTTPHeaders": lowered,
        "RetryAttempts": attempts - 1,
    }
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": metadata}
    response.update(members or {})
    return response


class ServiceError(_botocore.ClientError, SageMakerRuntimeError):
    """An HTTP error answer before the stream started (a ``ClientError``; raised as the botocore client's
    modelled class for its code, e.g. ``client.exceptions.ModelError``)."""

    @property
    def code(self) -> str:
        return str(self.response.get("Error", {}).get("Code", ""))

    @property
    def status_code(self) -> int | None:
        return self.response.get("ResponseMetadata", {}).get("HTTPStatusCode")  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_client_error, (_static_class(type(self)), self.response, self.operation_name)


def _static_class(cls: type[Any]) -> type[Any]:
    """The importable evstream class under a per-client combined class (those do not pickle)."""
    for base in cls.__mro__:
        if base.__module__ == __name__:
            return base
    return ServiceError


def _rebuild_client_error(cls: type[Any], response: dict[str, Any], operation_name: str) -> Any:
    return cls(response, operation_name)


class ValidationError(ServiceError):
    """The service refused the request (HTTP 400)."""


class ModelError(ServiceError):
    """The model container answered with an error (HTTP 424); its status and message are members."""

    @property
    def original_status_code(self) -> int | None:  # SageMaker's member, or Bedrock's
        return self.response.get("OriginalStatusCode", self.response.get("originalStatusCode"))  # type: ignore[no-any-return]

    @property
    def original_message(self) -> str | None:
        return self.response.get("OriginalMessage", self.response.get("originalMessage"))  # type: ignore[no-any-return]

    @property
    def log_stream_arn(self) -> str | None:
        return self.response.get("LogStreamArn")  # type: ignore[no-any-return]


class ModelNotReady(ServiceError):
    """The model is not ready to serve yet (SageMaker's ModelNotReadyException)."""


class InternalDependencyError(ServiceError):
    """A service SageMaker depends on failed (InternalDependencyException)."""

    retryable = True


class InternalFailure(ServiceError):
    retryable = True


class ServiceUnavailable(ServiceError):
    retryable = True


class ThrottlingException(ServiceError):
    retryable = True


# The evstream class mixed into the botocore class of each error code (both services' names).
_SERVICE_CLASSES: dict[str, type[ServiceError]] = {
    "ValidationError": ValidationError,
    "ValidationException": ValidationError,
    "ModelError": ModelError,
    "ModelErrorException": ModelError,
    "ModelNotReadyException": ModelNotReady,
    "InternalDependencyException": InternalDependencyError,
    "InternalFailure": InternalFailure,
    "InternalServerException": InternalFailure,
    "ServiceUnavailable": ServiceUnavailable,
    "ServiceUnavailableException": ServiceUnavailable,
    "ModelTimeoutException": ServiceError,
}
for _name in (
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
):
    _SERVICE_CLASSES[_name] = ThrottlingException
_BY_STATUS: dict[int, type[ServiceError]] = {
    400: ValidationError,
    424: ModelError,
    429: ThrottlingException,
    500: InternalFailure,
    503: ServiceUnavailable,
}
_COMBINED: dict[tuple[type[Any], type[Any]], type[Any]] = {}


def service_error_class(code: str, status: int, botocore_class: type[Any] | None = None) -> type[Any]:
    """The class to raise for an HTTP error: the botocore client's modelled class for ``code`` (passed in:
    each botocore session makes its own) with the evstream class for that failure mixed in."""
    ours = _SERVICE_CLASSES.get(code) or _BY_STATUS.get(status, ServiceError)
    botocore_class = botocore_class or _botocore.ClientError
    key = (botocore_class, ours)
    combined = _COMBINED.get(key)
    if combined is None:
        # A code botocore does not model is a plain ClientError there: named so here too.
        bases = (ours,) if botocore_class is _botocore.ClientError else (botocore_class, ours)
        combined = type(botocore_class.__name__, bases, {"__module__": __name__})
        _COMBINED[key] = combined
    return combined


# -- errors inside the stream ----------------------------------------------------------------------


class StreamError(_botocore.EventStreamError, SageMakerRuntimeError):
    """An error event inside the response stream (botocore's ``EventStreamError``, as boto3 raises it)."""

    @property
    def code(self) -> str:
        return str(self.response.get("Error", {}).get("Code", ""))

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_client_error, (type(self), self.response, self.operation_name)


class ModelStreamError(StreamError):
    """The model container failed while streaming; ``error_code`` says how (ModelInvocationTimeExceeded,
    StreamBroken)."""

    @property
    def error_code(self) -> str | None:
        return self.response.get("Error", {}).get("ErrorCode")  # type: ignore[no-any-return]

    @property
    def original_status_code(self) -> int | None:
        return self.response.get("originalStatusCode")  # type: ignore[no-any-return]

    @property
    def original_message(self) -> str | None:
        return self.response.get("originalMessage")  # type: ignore[no-any-return]


class InternalStreamFailure(StreamError):
    """The service failed inside the stream; the request can be sent again."""

    retryable = True


class UnmodelledStreamError(StreamError):
    """A ``:message-type=error`` event, or an exception type this client does not know."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.code in ("throttlingException", "serviceUnavailableException")


_STREAM_CLASSES: dict[str, type[StreamError]] = {
    "ModelStreamError": ModelStreamError,
    "modelStreamErrorException": ModelStreamError,
    "InternalStreamFailure": InternalStreamFailure,
    "internalServerException": InternalStreamFailure,
}


def stream_exception(
    headers: Mapping[str, Any], payload: bytes, request_id: str | None, operation_name: str = ""
) -> StreamError:
    """The error for an ``exception`` or ``error`` message inside the stream, with the ``e.response``
    botocore's event stream parser gives (the exception type as ``Code``); modelled members such as
    ``ErrorCode`` are kept beside ``Message``."""
    metadata = {"RequestId": request_id or ""}
    if headers.get(":message-type") == "error":
        code = str(headers.get(":error-code", "UnknownError"))
        response = {
            "Error": {"Code": code, "Message": str(headers.get(":error-message", ""))},
            "ResponseMetadata": metadata,
        }
        return UnmodelledStreamError(response, operation_name)
    exception_type = str(headers.get(":exception-type", "")) or "UnknownException"
    try:
        document = json.loads(payload) if payload else {}
        if not isinstance(document, dict):
            document = {}
    except ValueError:
        document = {"Message": payload.decode("utf-8", "replace")}
    error: dict[str, Any] = {
        "Code": exception_type,
        "Message": str(document.get("Message") or document.get("message") or ""),
    }
    members = {k: v for k, v in document.items() if k not in ("Message", "message")}
    if "ErrorCode" in members:
        error["ErrorCode"] = members.pop("ErrorCode")
    cls = _STREAM_CLASSES.get(exception_type, UnmodelledStreamError)
    return cls({"Error": error, "ResponseMetadata": metadata, **members}, operation_name)


def _named_as_botocore(cls: type[Any]) -> None:
    """Make ``cls(...)`` give an instance of a subclass carrying the name of its botocore base (reachable
    by pickle as ``cls.<name>``)."""
    base = next(b for b in cls.__mro__[1:] if b.__module__.startswith("botocore"))
    named = type(
        base.__name__, (cls,), {"__module__": __name__, "__qualname__": f"{cls.__qualname__}.{base.__name__}"}
    )
    setattr(cls, base.__name__, named)
    cls._raised_as = named


for _cls in (
    ParamValidationError,
    NoCredentialsError,
    ConnectionFailed,
    ConnectionClosed,
    ProxyConnectionFailed,
    TLSFailed,
    ConnectTimeout,
    FirstByteTimeout,
    EventTimeout,
    IncompleteStream,
    ModelStreamError,
    InternalStreamFailure,
    UnmodelledStreamError,
):
    _named_as_botocore(_cls)
