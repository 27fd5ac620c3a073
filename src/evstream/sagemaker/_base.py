"""What the sync and asyncio clients share: construction from botocore (the control plane), delegation of
every operation evstream does not accelerate, pickling, request preparation, retry decisions, and the
mapping of responses to boto3's shape and errors."""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from typing import Any

import botocore
import botocore.config
import botocore.eventstream

from ..errors import TruncatedStream
from . import errors as _errors
from .config import EVSTREAM_OPTIONS, Config, Limits, Request
from .control import DEFAULT_POOL, ControlPlane, default_session, full_jitter, make_botocore_client
from .errors import (
    EventTimeout,
    FirstByteTimeout,
    IncompleteStream,
    SageMakerRuntimeError,
    ServiceError,
    StreamError,
    stream_exception,
)
from .operations import SAGEMAKER, Operation

__all__ = [
    "EVENTSTREAM",
    "SAGEMAKER",
    "BaseClient",
    "Operation",
    "StreamState",
    "event_timeout",
    "first_byte_timeout",
    "incomplete_frame",
    "non_payload",
    "response_dict",
]

EVENTSTREAM = "application/vnd.amazon.eventstream"


class ClientExceptions:
    """``client.exceptions``: the botocore client's (modelled classes, ``from_code``), and evstream's own
    classes under their names (``IncompleteStream``, ``EventTimeout``, ...)."""

    def __init__(self, botocore_exceptions: Any) -> None:
        self._botocore = botocore_exceptions

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._botocore, name)
        except AttributeError:
            if name in _errors.__all__ and name[0].isupper():
                return getattr(_errors, name)
            raise

    def from_code(self, code: str) -> Any:
        return self._botocore.from_code(code)


def _split_arguments(config: Any, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """evstream's own settings out of the keywords, the rest folded into one botocore Config."""
    ours: dict[str, Any] = {}
    if isinstance(config, Config):
        ours.update({k: v for k, v in vars(config).items() if v is not None})
        config = None
    for name in EVSTREAM_OPTIONS:
        value = kwargs.pop(name, None)
        if value is not None:
            ours[name] = value
    Config(**ours)  # validates
    extra: dict[str, Any] = {}
    if kwargs.pop("sign", True) is False:
        extra["signature_version"] = botocore.UNSIGNED
    use_fips = kwargs.pop("use_fips_endpoint", None)
    if use_fips is not None:
        extra["use_fips_endpoint"] = use_fips
    if "connect_timeout" in ours:
        extra["connect_timeout"] = ours["connect_timeout"]
    if "max_pool_connections" in ours:
        extra["max_pool_connections"] = ours["max_pool_connections"]
    elif config is None or "max_pool_connections" not in getattr(config, "_user_provided_options", {}):
        extra["max_pool_connections"] = DEFAULT_POOL
    if "max_attempts" in ours:
        retries = dict(getattr(config, "retries", None) or {})
        retries.pop("max_attempts", None)
        retries["total_max_attempts"] = ours["max_attempts"]
        extra["retries"] = retries
    if extra:
        config = (config or botocore.config.Config()).merge(botocore.config.Config(**extra))
    return ours, config


def _session_identity(session: Any) -> tuple[dict[str, Any], str | None]:
    """What a session adds to the client's identity, as plain values (for pickling), or why it cannot."""
    core = getattr(session, "_session", session)  # boto3.Session wraps a botocore session
    credentials = getattr(core, "_credentials", None)
    if credentials is not None and getattr(credentials, "method", None) == "explicit":
        return {}, "its session holds credentials given in code, which a pickle must not carry"
    identity = {"profile_name": core.profile}
    region = core.get_config_variable("region")
    if region:
        identity["region_name"] = region
    return identity, None


class BaseClient:
    """A client for one streaming operation (``_operation``), with everything else delegated to botocore."""

    _operation: Operation = SAGEMAKER

    def __init__(
        self, botocore_client: Any = None, *, config: Any = None, session: Any = None, **kwargs: Any
    ):
        ours, botocore_config = _split_arguments(config, kwargs)
        self._pickle_refusal: str | None = None
        if botocore_client is not None:
            if kwargs or session is not None or (botocore_config is not None and config is not None):
                raise TypeError("an existing client takes only evstream's own settings beside it")
            service = botocore_client.meta.service_model.service_name
            if service != self._operation.service_name:
                raise TypeError(f"a {service} client cannot make a {self._operation.service_name} one")
            self._pickle_refusal = "it wraps a botocore client, which does not pickle"
            self._owns_botocore = False
        else:
            profile_name = kwargs.pop("profile_name", None)
            if session is None:
                session = default_session(profile_name)
            elif profile_name is not None:
                raise TypeError("pass profile_name or session, not both")
            botocore_client = make_botocore_client(
                self._operation.service_name, session=session, config=botocore_config, **kwargs
            )
            session_kwargs, self._pickle_refusal = _session_identity(session)
            if "region_name" in kwargs:
                session_kwargs.pop("region_name", None)
            self._arguments = {**session_kwargs, **kwargs, "config": botocore_config, **ours}
            self._owns_botocore = True
        self._botocore = botocore_client
        self._control = control = ControlPlane(botocore_client, self._operation.name)
        meta_config = control.config
        self.config = Config(
            connect_timeout=ours.get("connect_timeout", meta_config.connect_timeout),
            first_byte_timeout=ours.get("first_byte_timeout", meta_config.read_timeout),
            event_timeout=ours.get("event_timeout", meta_config.read_timeout),
            max_pool_connections=meta_config.max_pool_connections,
            max_attempts=control.max_attempts,
            backoff_base=ours.get("backoff_base"),
            backoff_max=ours.get("backoff_max", 20.0 if "backoff_base" in ours else None),
        )
        self._limits = Limits.of(self.config)  # the same, typed for the transports
        self.region = control.region
        self.endpoint_url = control.endpoint_url
        # The endpoint as the transports use it.
        self._scheme = control.scheme
        self._hostname = control.hostname
        self._port = control.port
        self._host_header = control.host_header
        self._base_path = control.base_path
        _CLIENTS.add(self)

    # -- what botocore does: everything else ---------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # invoke_endpoint, invoke_endpoint_async, meta, waiters, paginators, ...: the botocore client's.
        if name.startswith("__") or name in ("_botocore", "_control"):
            raise AttributeError(name)
        return getattr(self._botocore, name)

    @property
    def meta(self) -> Any:
        return self._botocore.meta

    @property
    def exceptions(self) -> ClientExceptions:
        return ClientExceptions(self._botocore.exceptions)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self._botocore)))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} endpoint_url={self.endpoint_url!r} region={self.region!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._pickle_refusal is not None:
            raise TypeError(f"cannot pickle {type(self).__name__}: {self._pickle_refusal}")
        return _rebuild_client, (type(self), self._arguments)

    def _after_fork(self) -> None:
        """In a forked child: botocore's credential refresh lock anew (a thread of the parent may have held
        it); transports also let go of the parent's connections."""
        self._control.after_fork()

    # -- requests ----------------------------------------------------------------------------------

    def _prepare(self, params: Mapping[str, Any], path_suffix: str | None = None) -> Request:
        """The HTTP request for the operation's parameters (validated as botocore's ``parameter_validation``
        says; header values are always checked)."""
        request = self._operation.build(params, self._control.parameter_validation)
        request.path = self._base_path + request.path
        return request

    def _new_call(self) -> dict[str, Any]:
        return self._control.new_call()

    def _sign(self, request: Request, attempt: int = 1, call: dict[str, Any] | None = None) -> dict[str, str]:
        """The headers of one attempt (made anew each time: the signature carries the time)."""
        headers = dict(request.headers)
        self._control.prepare_headers(
            call if call is not None else self._control.new_call(),
            attempt,
            request.method,
            request.path,
            headers,
            request.body,
        )
        return headers

    def _retry_delay(
        self, attempts: int, error: BaseException, call: dict[str, Any] | None = None
    ) -> float | None:
        """Seconds to wait before attempt ``attempts + 1``, or None for no retry. botocore's retry handler
        decides (its mode, attempts, backoff and quota); evstream vetoes what it knows a retry cannot mend
        (an event timeout, a model's stream error, a body that is not an event stream, an answer that breaks
        HTTP/1.1)."""
        if not isinstance(error, ServiceError) and not getattr(error, "retryable", False):
            return None
        if isinstance(error, IncompleteStream) and error.malformed:
            return None  # the server answered, and would answer the same way
        delay = self._control.retry_delay(
            call if call is not None else self._control.new_call(), attempts, error
        )
        if delay is None:
            return None
        if self.config.backoff_base is not None:
            return full_jitter(attempts, self.config.backoff_base, self.config.backoff_max or 20.0)
        return delay

    def _http_error(self, status: int, headers: Mapping[str, str], body: bytes, attempts: int) -> Exception:
        """The error for a response that is not a 200 event stream (``body``: at most its first MiB)."""
        if status == 200:
            error = IncompleteStream(
                "Expected an event stream, got Content-Type "
                f"{ {k.lower(): v for k, v in headers.items()}.get('content-type')!r}"
            )
            error.retryable = False
            return error
        return self._control.http_error(status, headers, body, attempts)

    def _stream_error(
        self, headers: Mapping[str, Any], payload: bytes, request_id: str | None
    ) -> StreamError:
        return stream_exception(headers, payload, request_id, self._operation.name)


_CLIENTS: weakref.WeakSet[BaseClient] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for client in list(_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _rebuild_client(cls: type[BaseClient], arguments: dict[str, Any]) -> BaseClient:
    return cls(**arguments)


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


def non_payload(
    headers: Mapping[str, Any], payload: bytes, request_id: str | None, operation_name: str = SAGEMAKER.name
) -> StreamError | None:
    """The error a message other than a data event stands for; None for events to skip (event types added
    to the API later are ignored, as botocore does)."""
    if headers.get(":message-type", "event") == "event":
        return None
    return stream_exception(headers, payload, request_id, operation_name)


class StreamState:
    """What a response stream, sync or asyncio, keeps about its request: attempts, whether an event was
    delivered (retries stop there), and the response headers."""

    def __init__(self, client: BaseClient, request: Request, operation: Operation) -> None:
        self._client = client
        self._request = request
        self._operation = operation
        self._call = client._new_call()
        self._status = 0
        self._headers: dict[str, str] = {}
        self._attempts = 0
        self._delivered = False
        self._closed = False
        self.request_id: str | None = None

    def get_initial_response(self) -> dict[str, Any]:
        """boto3's ``EventStream.get_initial_response()``. These operations have no ``initial-response``
        event, so it raises botocore's ``NoInitialResponseError`` as boto3 does, without consuming the
        first event (boto3 reads and drops it)."""
        raise botocore.eventstream.NoInitialResponseError()

    def _timeout_error(self) -> SageMakerRuntimeError:
        """The error of a read that waited too long: for the first event, or for the next one."""
        limits = self._client._limits
        if self._delivered:
            return event_timeout(limits.event_timeout, self.request_id)
        return first_byte_timeout(limits.first_byte_timeout, self.request_id)


def incomplete_frame(exc: TruncatedStream, request_id: str | None) -> IncompleteStream:
    """The body ended inside an event-stream frame."""
    return IncompleteStream(
        f"The response body ended inside an event-stream frame: {exc}", exc.buffered, request_id=request_id
    )


def first_byte_timeout(timeout: float, request_id: str | None) -> FirstByteTimeout:
    error: FirstByteTimeout = FirstByteTimeout(
        f"No event within first_byte_timeout={timeout:g} s", timeout, request_id=request_id
    )
    return error


def event_timeout(timeout: float, request_id: str | None) -> EventTimeout:
    error: EventTimeout = EventTimeout(
        f"No event within event_timeout={timeout:g} s of the last one", timeout, request_id=request_id
    )
    return error
