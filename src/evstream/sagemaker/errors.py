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

    def __init__(
        self,
        message: str,
        error_code: str | None = None,
        *,
        request_id: str | None = None,
        original_status_code: int | None = None,
        original_message: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.error_code = error_code  # SageMaker: ModelInvocationTimeExceeded or StreamBroken
        self.original_status_code = original_status_code  # Bedrock's modelStreamErrorException
        self.original_message = original_message

    def __str__(self) -> str:
        return f"{self.message} (ErrorCode: {self.error_code})" if self.error_code else self.message

    @property
    def response(self) -> dict[str, Any]:
        response = super().response
        response["Error"]["ErrorCode"] = self.error_code
        return response


class InternalStreamFailure(StreamError):
    """The service failed inside the stream; the request can be sent again."""

    code = "InternalStreamFailure"
    retryable = True


class UnmodelledStreamError(StreamError):
    """A ``:message-type=error`` event, or an exception type this client does not know."""

    def __init__(
        self,
        message: str,
        code: str = "UnknownError",
        *,
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.code = code
        self.retryable = retryable


class IncompleteStream(SageMakerRuntimeError, TruncatedStream):
    """The response body ended early: cut inside a frame or without the end of the chunked body.

    Also a :class:`evstream.TruncatedStream`, the codec's error for a stream that ends inside a frame.
    """

    retryable = True  # only ever acted on before the first event is delivered

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.message), self.__dict__

    def __init__(self, message: str, buffered: int = 0, *, request_id: str | None = None) -> None:
        # Not TruncatedStream.__init__: its message describes the frame, this one the HTTP body.
        Exception.__init__(self, message)
        self.message = message
        self.request_id = request_id
        self.buffered = buffered
        self.expected = None


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
        return _rebuild, (type(self), self.message), self.__dict__


def _rebuild(cls: type[SageMakerRuntimeError], message: str) -> SageMakerRuntimeError:
    """An instance without __init__: pickle then restores its __dict__ (every attribute)."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error


class ValidationError(ServiceError):
    code = "ValidationError"


class ModelError(ServiceError):
    """The model container answered with an error (HTTP 424)."""

    code = "ModelError"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        body = self.body
        self.original_status_code: int | None = body.get("OriginalStatusCode", body.get("originalStatusCode"))
        self.original_message: str | None = body.get("OriginalMessage", body.get("originalMessage"))
        self.log_stream_arn: str | None = body.get("LogStreamArn")


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
    cls.code: cls
    for cls in (ValidationError, ModelError, InternalFailure, ServiceUnavailable, ThrottlingException)
}
# Other names for the same failures: throttling as other front ends say it, and Bedrock Runtime's names.
for _name in ("Throttling", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded"):
    _SERVICE_ERRORS[_name] = ThrottlingException
_SERVICE_ERRORS.update(
    ValidationException=ValidationError,
    ModelErrorException=ModelError,
    InternalServerException=InternalFailure,
    ServiceUnavailableException=ServiceUnavailable,
)
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
    message = (
        document.get("Message")
        or document.get("message")
        or body.decode("utf-8", "replace")
        or f"HTTP {status}"
    )
    request_id = headers.get("x-amzn-requestid")
    # Known types get their class; a type this client does not model (AccessDeniedException, ...)
    # stays a plain ServiceError; without a type, the status decides.
    cls = _SERVICE_ERRORS.get(code, ServiceError) if code else _BY_STATUS.get(status, ServiceError)
    return cls(
        message,
        status_code=status,
        code=code or cls.code or f"HTTP{status}",
        request_id=request_id,
        body=document,
    )


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
    if exception_type in ("ModelStreamError", "modelStreamErrorException"):
        return ModelStreamError(
            message,
            document.get("ErrorCode"),
            request_id=request_id,
            original_status_code=document.get("originalStatusCode"),
            original_message=document.get("originalMessage"),
        )
    if exception_type in ("InternalStreamFailure", "internalServerException"):
        return InternalStreamFailure(message, request_id=request_id)
    retryable = exception_type in ("throttlingException", "serviceUnavailableException")
    return UnmodelledStreamError(
        message, exception_type or "UnknownException", request_id=request_id, retryable=retryable
    )


class NoCredentialsError(SageMakerRuntimeError):
    """Signing is on and no credentials were found (the same chain as boto3 was searched)."""
