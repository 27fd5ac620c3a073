"""A fast client for SageMaker Runtime ``InvokeEndpointWithResponseStream``, sync and asyncio.

Switching from boto3 is one line::

    # was: runtime = boto3.client("sagemaker-runtime", region_name="us-west-2")
    runtime = evstream.sagemaker.client(region_name="us-west-2")
    response = runtime.invoke_endpoint_with_response_stream(EndpointName="my-llm", Body=body)
    for event in response["Body"]:
        print(event["PayloadPart"]["Bytes"])

``response["Body"]`` also has faster typed views: ``payloads()``, ``text()``, ``lines()``, ``sse()``,
``json()`` and ``tokens()``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._sync import Client, EventStream
from .config import Config
from .errors import (
    ConnectionClosed,
    ConnectionFailed,
    ConnectTimeout,
    EventTimeout,
    FirstByteTimeout,
    IncompleteStream,
    InternalDependencyError,
    InternalFailure,
    InternalStreamFailure,
    ModelError,
    ModelNotReady,
    ModelStreamError,
    NoCredentialsError,
    ParamValidationError,
    ProxyConnectionFailed,
    SageMakerRuntimeError,
    ServiceError,
    ServiceUnavailable,
    StreamError,
    StreamTimeout,
    ThrottlingException,
    TLSFailed,
    UnmodelledStreamError,
    ValidationError,
)

if TYPE_CHECKING:
    from ._async import AsyncClient, AsyncEventStream
    from ._http2_async import AsyncHttp2Client
    from .bedrock import AsyncBedrockClient, BedrockClient, bedrock_async_client, bedrock_client
    from .http2 import Http2Client

# Imported on first use (PEP 562), so that a sync program does not load asyncio and the asyncio client;
# Bedrock's module holds both of its clients, so it comes with either.
_LAZY = {
    "AsyncClient": "._async",
    "AsyncEventStream": "._async",
    "AsyncBedrockClient": ".bedrock",
    "BedrockClient": ".bedrock",
    "bedrock_async_client": ".bedrock",
    "bedrock_client": ".bedrock",
}

__all__ = [
    "AsyncBedrockClient",
    "AsyncClient",
    "AsyncEventStream",
    "BedrockClient",
    "Client",
    "Config",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionFailed",
    "EventStream",
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
    "async_client",
    "async_http2_client",
    "bedrock_async_client",
    "bedrock_client",
    "client",
    "http2_client",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def client(boto3_client: Any = None, /, **kwargs: Any) -> Client:
    """A sync client. Either boto3.client("sagemaker-runtime", ...)'s arguments (``region_name``,
    ``endpoint_url``, credentials, ``verify``, ``config=botocore.config.Config(...)``, ``session=`` a boto3
    or botocore session, ``profile_name``), from which a botocore client is made as boto3 would; or an
    existing boto3/botocore client, made fast in one line. Beside either, evstream's own settings
    (:class:`Config`: ``first_byte_timeout``, ``event_timeout``, ``max_pool_connections``, ...).
    Every other operation (``invoke_endpoint``, ``meta``, ``exceptions``) is the botocore client's."""
    return Client(boto3_client, **kwargs)


def async_client(boto3_client: Any = None, /, **kwargs: Any) -> AsyncClient:
    """An asyncio client with the same arguments as :func:`client`; use it as
    ``async with async_client(...) as runtime:`` or call ``await runtime.close()``."""
    from ._async import AsyncClient

    return AsyncClient(boto3_client, **kwargs)


def http2_client(boto3_client: Any = None, /, **kwargs: Any) -> Http2Client:
    """SageMaker Runtime HTTP2 ``invoke_endpoint_with_bidirectional_stream`` (sync): boto3.client's
    arguments, or an existing sagemaker-runtime client; see :mod:`evstream.sagemaker.http2`."""
    from .http2 import http2_client as make

    return make(boto3_client, **kwargs)


def async_http2_client(boto3_client: Any = None, /, **kwargs: Any) -> AsyncHttp2Client:
    """The asyncio twin of :func:`http2_client`."""
    from ._http2_async import async_http2_client as make

    return make(boto3_client, **kwargs)
