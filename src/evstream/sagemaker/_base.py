"""What the sync and asyncio clients share: configuration, signing, request preparation, retry pacing
and the mapping of decoded messages to payloads or errors."""

from __future__ import annotations

import dataclasses
import os
import random
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import TruncatedStream
from .config import Config, Request, build_request
from .errors import (
    ConnectionFailed,
    ConnectTimeout,
    EventTimeout,
    FirstByteTimeout,
    IncompleteStream,
    InternalFailure,
    InternalStreamFailure,
    ModelError,
    ModelStreamError,
    NoCredentialsError,
    ParamValidationError,
    SageMakerRuntimeError,
    ServiceError,
    ServiceUnavailable,
    StreamError,
    ThrottlingException,
    UnmodelledStreamError,
    ValidationError,
    service_error,
    stream_exception,
)
from .signing import Signer, resolve

EVENTSTREAM = "application/vnd.amazon.eventstream"


class Exceptions:
    """``client.exceptions``: the error classes under boto3's names."""

    ClientError = SageMakerRuntimeError
    ConnectTimeoutError = ConnectTimeout
    EndpointConnectionError = ConnectionFailed
    ReadTimeoutError = FirstByteTimeout
    EventTimeout = EventTimeout
    IncompleteStream = IncompleteStream
    InternalFailure = InternalFailure
    InternalStreamFailure = InternalStreamFailure
    ModelError = ModelError
    ModelStreamError = ModelStreamError
    NoCredentialsError = NoCredentialsError
    ParamValidationError = ParamValidationError
    ServiceError = ServiceError
    ServiceUnavailable = ServiceUnavailable
    StreamError = StreamError
    ThrottlingException = ThrottlingException
    UnmodelledStreamError = UnmodelledStreamError
    ValidationError = ValidationError


class BaseClient:
    exceptions = Exceptions

    def __init__(self, config: Config, session: Any = None) -> None:
        self.config = config
        region, credentials = resolve(config, session)
        self.region = region
        self.endpoint_url = config.resolved_endpoint(region)
        url = urllib.parse.urlsplit(self.endpoint_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ParamValidationError(f"Invalid endpoint_url {self.endpoint_url!r}")
        self._scheme = url.scheme
        default_port = 443 if url.scheme == "https" else 80
        self._hostname = url.hostname
        self._port = url.port or default_port
        self._host_header = url.netloc.rsplit("@", 1)[-1]
        self._base_path = url.path.rstrip("/")
        self._ca_bundle = ca_bundle(config.verify) if url.scheme == "https" else None
        self._signer: Signer | None = None
        if config.sign:
            if not region:
                raise ParamValidationError("No region to sign for: pass region_name or set AWS_REGION")
            self._signer = Signer(credentials, region, config.service)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} endpoint_url={self.endpoint_url!r} region={self.region!r}>"

    def _prepare(self, params: Mapping[str, Any], path_suffix: str) -> Request:
        request = build_request(params, path_suffix=path_suffix)
        request.path = self._base_path + request.path
        return request

    def _sign(self, request: Request) -> dict[str, str]:
        """The headers of one attempt (signed anew each time: the signature carries the time)."""
        headers = dict(request.headers)
        if self._signer is not None:
            self._signer.sign(request.method, self._host_header, request.path, headers, request.body)
        return headers

    def _backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff before attempt ``attempt + 1``."""
        cap = min(self.config.backoff_max, self.config.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(0, cap)


@dataclasses.dataclass(frozen=True)
class Operation:
    """What differs between the streaming operations that share this machinery."""

    event_type: str  # :event-type of the data events
    outer: str  # boto3's event shape: {outer: {inner: bytes}}
    inner: str
    body_key: str  # the response member holding the stream
    members: tuple[tuple[str, str], ...]  # response member <- lower-case header
    decode: Callable[[bytes], bytes] | None = None  # event payload -> the bytes users get


SAGEMAKER = Operation(
    "PayloadPart",
    "PayloadPart",
    "Bytes",
    "Body",
    (
        ("ContentType", "x-amzn-sagemaker-content-type"),
        ("InvokedProductionVariant", "x-amzn-invoked-production-variant"),
        ("CustomAttributes", "x-amzn-sagemaker-custom-attributes"),
    ),
)


def ca_bundle(verify: bool | str) -> str | None:
    """The CA bundle boto3 would verify against: the given path, AWS_CA_BUNDLE, or botocore's default
    (certifi's, when installed); None when verification is off."""
    if verify is False:
        return None
    if isinstance(verify, str):
        return verify
    if os.environ.get("AWS_CA_BUNDLE"):
        return os.environ["AWS_CA_BUNDLE"]
    from botocore.httpsession import get_cert_path

    path: str = get_cert_path(True)
    return path


def response_dict(
    operation: Operation, body: Any, status: int, headers: Mapping[str, str], attempts: int
) -> dict[str, Any]:
    """boto3's response shape; optional members are present only when the service sent them."""
    lowered = {k.lower(): v for k, v in headers.items()}
    response: dict[str, Any] = {
        "ResponseMetadata": {
            "RequestId": lowered.get("x-amzn-requestid"),
            "HTTPStatusCode": status,
            "HTTPHeaders": lowered,
            "RetryAttempts": attempts - 1,
        },
        operation.body_key: body,
    }
    for member, header in operation.members:
        if header in lowered:
            response[member] = lowered[header]
    return response


def non_payload(headers: Mapping[str, Any], payload: bytes, request_id: str | None) -> StreamError | None:
    """The error a message other than a PayloadPart event stands for; None for events to skip
    (event types added to the API later are ignored, as botocore does)."""
    if headers.get(":message-type", "event") == "event":
        return None
    return stream_exception(headers, payload, request_id)


class StreamState:
    """What a response stream, sync or asyncio, keeps about its request: attempts, whether an event was
    delivered (retries stop there), and the response headers."""

    def __init__(self, client: BaseClient, request: Request, operation: Operation) -> None:
        self._client = client
        self._request = request
        self._operation = operation
        self._status = 0
        self._headers: dict[str, str] = {}
        self._attempts = 0
        self._delivered = False
        self._closed = False
        self.request_id: str | None = None


def unexpected_response(status: int, headers: Mapping[str, str], body: bytes) -> SageMakerRuntimeError:
    """The error for a response that is not a 200 event stream (``body``: its first MiB)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if status == 200:
        return IncompleteStream(f"Expected an event stream, got Content-Type {lowered.get('content-type')!r}")
    return service_error(status, lowered, body)


def incomplete_frame(exc: TruncatedStream, request_id: str | None) -> IncompleteStream:
    """The body ended inside an event-stream frame."""
    return IncompleteStream(
        f"The response body ended inside an event-stream frame: {exc}", exc.buffered, request_id=request_id
    )


def first_byte_timeout(timeout: float, request_id: str | None) -> FirstByteTimeout:
    return FirstByteTimeout(
        f"No event within first_byte_timeout={timeout:g} s", timeout, request_id=request_id
    )


def event_timeout(timeout: float, request_id: str | None) -> EventTimeout:
    return EventTimeout(
        f"No event within event_timeout={timeout:g} s of the last one", timeout, request_id=request_id
    )
