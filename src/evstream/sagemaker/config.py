"""evstream's own client settings (what botocore's ``Config`` has no word for), the request, the body."""

from __future__ import annotations

import dataclasses
from typing import IO, Any, NamedTuple, Union

from .errors import ParamValidationError

__all__ = ["EVSTREAM_OPTIONS", "Config", "Limits", "Request", "read_body"]

Body = Union[bytes, bytearray, memoryview, str, IO[bytes], IO[str]]


@dataclasses.dataclass(frozen=True)
class Config:
    """The data plane's settings, as the client resolved them (``client.config``). Passed to
    :func:`evstream.sagemaker.client` as keywords or as ``config=``; anything left ``None`` comes from
    botocore's configuration (``Config``, environment, profile)."""

    connect_timeout: float | None = None  # botocore's connect_timeout
    first_byte_timeout: float | None = None  # until the response headers and again until the first event
    event_timeout: float | None = None  # since the last delivered event; both default to read_timeout
    max_pool_connections: int | None = None  # each open stream holds one; 64 unless set here or in Config
    max_attempts: int | None = None  # attempts in all (botocore's total_max_attempts)
    backoff_base: float | None = None  # set both to replace botocore's backoff (tests, tight loops)
    backoff_max: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_attempts", "max_pool_connections"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be an integer of at least 1, not {value!r}")
        for name in ("connect_timeout", "first_byte_timeout", "event_timeout", "backoff_base", "backoff_max"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf")
            ):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.backoff_max is not None and self.backoff_base is None:
            raise ValueError("backoff_max needs backoff_base")


class Limits(NamedTuple):
    """The timeouts (seconds) and pool size a client resolved, typed for the transports: the ``Config``
    of a client has every field set (from botocore's configuration where the caller left them)."""

    connect_timeout: float
    first_byte_timeout: float
    event_timeout: float
    max_pool_connections: int

    @classmethod
    def of(cls, config: Any) -> Limits:
        values = (
            config.connect_timeout,
            config.first_byte_timeout,
            config.event_timeout,
            config.max_pool_connections,
        )
        if None in values:
            raise ValueError(f"the client's configuration is not resolved: {config!r}")
        return cls(*values)


EVSTREAM_OPTIONS = tuple(field.name for field in dataclasses.fields(Config))


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def read_body(body: Any, limit: int | None) -> bytes:
    """Body as bytes: bytes-like, str (UTF-8) or a file-like object (read whole: a retry sends it again)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode()
    elif hasattr(body, "read"):
        content = body.read() if limit is None else body.read(limit + 1)
        data = content.encode() if isinstance(content, str) else bytes(content)
    else:
        raise ParamValidationError(
            f"Invalid type for parameter Body, value: {body!r}, type: {type(body)}, "
            "valid types: bytes, bytearray, str, file-like object"
        )
    if limit is not None and len(data) > limit:
        raise ParamValidationError(f"Body is over the service's limit of {limit} bytes")
    return data
