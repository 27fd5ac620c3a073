"""Errors of the SageMaker Runtime client: one class per failure, each saying whether a retry can help.

Every error carries a botocore-shaped ``response`` dict (``e.response["Error"]["Code"]``), and the client's
``exceptions`` namespace exposes the classes under boto3's names, so ``except client.exceptions.ModelError``
keeps working after switching from boto3.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import TruncatedStream

__all__ = [
    "ConnectTimeout",
    "ConnectionFailed",
    "EventTimeout",
    "FirstByteTimeout",
    "IncompleteStream",
    "InternalFailure",
    "InternalStreamFailure",
    "ModelError",
    "ModelStreamError",
    "NoCredentialsError",
    "ParamValidationError",
    "SageMakerRuntimeError",
    "ServiceError",
    "ServiceUnavailable",
    "StreamError",
    "StreamTimeout",
    "ThrottlingException",
    "UnmodelledStreamError",
    "ValidationError",
    "service_error",
    "stream_exception",
]


class SageMakerRuntimeError(Exception):
    """Base class of every error the client raises (codec errors are :class:`evstream.EventStreamError`)."""

    code = ""
    retryable = False

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    @property
    def response(self) -> dict[str, Any]:
        """The shape of botocore's ``ClientError.response``."""
        return {
            "Error": {"Code": self.code or type(self).__name__, "Message": self.message},
            "ResponseMetadata": {"RequestId": self.request_id},
        }


class ParamValidationError(SageMakerRuntimeError, ValueError):
    """A request parameter the service would refuse; raised before anything is sent."""


# -- in-stream errors ----------------------------------------------------------------------------


class StreamError(SageMakerRuntimeError):
    """An error event received inside the response stream."""


class ModelStreamError(StreamError):
    """The model container failed while streaming; ``error_code`` says how."""

    code = "ModelStreamError"

    def __init__(self, message: str, error_code: str | None = None, *, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.error_code = error_code  # ModelInvocationTimeExceeded or StreamBroken

    def __str__(self) -> str:
        return f"{self.message} (ErrorCode: {self.error_code})" if self.error_code else self.message

    @property
    def response(self) -> dict[str, Any]:
        response = super().response
        response["Error"]["ErrorCode"] = self.error_code
        return response

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.message, self.error_code), {"request_id": self.request_id}


class InternalStreamFailure(StreamError):
    """The service failed inside the stream; the request can be sent again."""

    code = "InternalStreamFailure"
    retryable = True


class UnmodelledStreamError(StreamError):
    """A ``:message-type=error`` event, or an exception type this client does not know."""

    def __init__(self, message: str, code: str, *, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.message, self.code), {"request_id": self.request_id}


class IncompleteStream(SageMakerRuntimeError, TruncatedStream):
    """The response body ended early: cut inside a frame or without the end of the chunked body.

    Also a :class:`evstream.TruncatedStream`, the codec's error for a stream that ends inside a frame.
    """

    retryable = True  # only ever acted on before the first event is delivered

    def __init__(self, message: str, buffered: int = 0, *, request_id: str | None = None) -> None:
        SageMakerRuntimeError.__init__(self, message, request_id=request_id)
        self.buffered = buffered
        self.expected = None

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.message, self.buffered), {"request_id": self.request_id}


# -- transport errors ----------------------------------------------------------------------------


class ConnectionFailed(SageMakerRuntimeError, ConnectionError):
    """The endpoint could not be reached or dropped the connection before answering."""

    retryable = True


class StreamTimeout(SageMakerRuntimeError, TimeoutError):
    """Base class of the three timeouts."""

    def __init__(self, message: str, timeout: float | None = None, *, request_id: str | None = None) -> None:
        SageMakerRuntimeError.__init__(self, message, request_id=request_id)
        self.timeout = timeout

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.message, self.timeout), {"request_id": self.request_id}


class ConnectTimeout(StreamTimeout):
    """No connection within ``connect_timeout``."""

    retryable = True


class FirstByteTimeout(StreamTimeout):
    """No response, or no first event, within ``first_byte_timeout`` of sending the request."""

    retryable = True


class EventTimeout(StreamTimeout):
    """No event within ``event_timeout`` of the previous one."""


# -- HTTP errors before the stream ---------------------------------------------------------------


class ServiceError(SageMakerRuntimeError):
    """An HTTP error answer before the stream started; ``code`` is the service's error type."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status_code = status_code
        if code is not None:
            self.code = code
        self.body = dict(body or {})

    @property
    def response(self) -> dict[str, Any]:
        response = super().response
        response["ResponseMetadata"]["HTTPStatusCode"] = self.status_code
        response.update({k: v for k, v in self.body.items() if k not in ("Message", "message")})
        return response

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"status_code": self.status_code, "code": self.code, "request_id": self.request_id, "body": self.body}
        return _rebuild_service_error, (type(self), self.message, state)


def _rebuild_service_error(cls: type[ServiceError], message: str, state: dict[str, Any]) -> ServiceError:
    return cls(message, **state)


class ValidationError(ServiceError):
    code = "ValidationError"


class ModelError(ServiceError):
    """The model container answered with an error (HTTP 424)."""

    code = "ModelError"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.original_status_code: int | None = self.body.get("OriginalStatusCode")
        self.original_message: str | None = self.body.get("OriginalMessage")
        self.log_stream_arn: str | None = self.body.get("LogStreamArn")


class InternalFailure(ServiceError):
    code = "InternalFailure"
    retryable = True


class ServiceUnavailable(ServiceError):
    code = "ServiceUnavailable"
    retryable = True


class ThrottlingException(ServiceError):
    code = "ThrottlingException"
    retryable = True


_SERVICE_ERRORS: dict[str, type[ServiceError]] = {
    cls.code: cls for cls in (ValidationError, ModelError, InternalFailure, ServiceUnavailable, ThrottlingException)
}
# Other names the service and its front ends use for throttling.
for _name in ("Throttling", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded"):
    _SERVICE_ERRORS[_name] = ThrottlingException
_BY_STATUS: dict[int, type[ServiceError]] = {
    400: ValidationError,
    424: ModelError,
    429: ThrottlingException,
    500: InternalFailure,
    503: ServiceUnavailable,
}


def service_error(status: int, headers: Mapping[str, str], body: bytes) -> ServiceError:
    """The typed error for an HTTP error answer (rest-json: type in x-amzn-ErrorType, or in the body)."""
    try:
        document = json.loads(body) if body else {}
        if not isinstance(document, dict):
            document = {}
    except ValueError:
        document = {}
    code = headers.get("x-amzn-errortype") or document.get("__type") or document.get("code") or ""
    # "ValidationError:http://internal.amazon.com/coral/..." and "com.amazon...#ValidationError"
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    message = document.get("Message") or document.get("message") or body.decode("utf-8", "replace") or f"HTTP {status}"
    request_id = headers.get("x-amzn-requestid")
    if code:
        # A type this client does not model (AccessDeniedException, ...) stays a plain ServiceError.
        cls = _SERVICE_ERRORS.get(code, ServiceError)
    else:
        cls = _BY_STATUS.get(status, ServiceError)
    return cls(message, status_code=status, code=code or cls.code or f"HTTP{status}", request_id=request_id, body=document)


def stream_exception(headers: Mapping[str, Any], payload: bytes, request_id: str | None) -> StreamError:
    """The typed error for an ``exception`` or ``error`` message inside the stream."""
    if headers.get(":message-type") == "error":
        code = str(headers.get(":error-code", "UnknownError"))
        return UnmodelledStreamError(str(headers.get(":error-message", "")), code, request_id=request_id)
    exception_type = str(headers.get(":exception-type", ""))
    try:
        document = json.loads(payload) if payload else {}
        if not isinstance(document, dict):
            document = {}
    except ValueError:
        document = {"Message": payload.decode("utf-8", "replace")}
    message = str(document.get("Message") or document.get("message") or "")
    if exception_type == "ModelStreamError":
        return ModelStreamError(message, document.get("ErrorCode"), request_id=request_id)
    if exception_type == "InternalStreamFailure":
        return InternalStreamFailure(message, request_id=request_id)
    return UnmodelledStreamError(message, exception_type or "UnknownException", request_id=request_id)


class NoCredentialsError(SageMakerRuntimeError):
    """Signing is on and no credentials were found (the same chain as boto3 was searched)."""
