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

from typing import TYPE_CHECKING, Any

from ._sync import Client, EventStream
from .bedrock import BedrockClient, bedrock_async_client, bedrock_client
from .config import Config
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
    StreamTimeout,
    ThrottlingException,
    UnmodelledStreamError,
    ValidationError,
)

if TYPE_CHECKING:
    from ._async import AsyncBedrockClient, AsyncClient, AsyncEventStream

__all__ = [
    "AsyncBedrockClient",
    "AsyncClient",
    "AsyncEventStream",
    "BedrockClient",
    "Client",
    "Config",
    "ConnectTimeout",
    "ConnectionFailed",
    "EventStream",
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
    "async_client",
    "bedrock_async_client",
    "bedrock_client",
    "client",
]


def client(*, config: Any = None, session: Any = None, **kwargs: Any) -> Client:
    """A sync client from boto3.client's keyword arguments (``region_name``, ``endpoint_url``,
    ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``, ``verify``), the fields of
    :class:`Config` (timeouts, pool size, retries), a ``config`` that is a :class:`Config` or a
    ``botocore.config.Config``, and an optional boto3 or botocore ``session`` for credentials."""
    return Client(Config.from_kwargs(config, **kwargs), session)


def async_client(*, config: Any = None, session: Any = None, **kwargs: Any) -> AsyncClient:
    """An asyncio client (aiohttp) with the same arguments as :func:`client`; use it as
    ``async with async_client(...) as runtime:`` or call ``await runtime.close()``."""
    from ._async import AsyncClient

    return AsyncClient(Config.from_kwargs(config, **kwargs), session)


def __getattr__(name: str) -> Any:
    # aiohttp is imported only when the asyncio client is used.
    if name in ("AsyncBedrockClient", "AsyncClient", "AsyncEventStream"):
        from . import _async

        return getattr(_async, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
