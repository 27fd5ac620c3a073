"""Amazon Bedrock ``InvokeModelWithResponseStream`` on the same machinery.

The framing is the same event stream; the differences are the operation (see ``operations.BEDROCK``: the
route ``POST /model/{modelId}/invoke-with-response-stream``, the ``chunk`` events whose JSON payload
``{"bytes": "<base64>"}`` :meth:`payloads` and boto3's shape give decoded) and the botocore service,
``bedrock-runtime``, which brings its endpoint, signing name and bearer-token support.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._async import AsyncClient
from ._sync import Client
from .operations import BEDROCK, decode_chunk

if TYPE_CHECKING:
    from ._http2_async import AsyncBedrockHttp2Client, AsyncBidirectionalStream
    from .http2 import BedrockHttp2Client, BidirectionalStream

__all__ = ["AsyncBedrockClient", "BedrockClient", "bedrock_async_client", "bedrock_client", "decode_chunk"]


class BedrockClient(Client):
    """``invoke_model_with_response_stream`` with boto3's ``bedrock-runtime`` names and shape, and
    ``invoke_model_with_bidirectional_stream`` (HTTP/2, which boto3 cannot call) on the same botocore
    client."""

    _operation = BEDROCK
    _http2: BedrockHttp2Client | None = None

    def invoke_model_with_response_stream(self, **params: Any) -> dict[str, Any]:
        return self._invoke(self._prepare(params), BEDROCK)

    def invoke_model_with_bidirectional_stream(self, **params: Any) -> BidirectionalStream:
        """A bidirectional stream (``stream.send(...)``, iterate the events): see
        :mod:`evstream.sagemaker.http2`. Its HTTP/2 connections are made on first use."""
        if self._http2 is None:
            from .http2 import bedrock_http2_client

            self._http2 = bedrock_http2_client(self._botocore)
        return self._http2.invoke_model_with_bidirectional_stream(**params)

    def close(self) -> None:
        if self._http2 is not None:
            self._http2.close()
        super().close()


class AsyncBedrockClient(AsyncClient):
    """The asyncio twin: ``await invoke_model_with_response_stream(...)`` and
    ``await invoke_model_with_bidirectional_stream(...)``."""

    _operation = BEDROCK
    _http2: AsyncBedrockHttp2Client | None = None

    async def invoke_model_with_response_stream(self, **params: Any) -> dict[str, Any]:
        return await self._invoke(self._prepare(params), BEDROCK)

    async def invoke_model_with_bidirectional_stream(self, **params: Any) -> AsyncBidirectionalStream:
        if self._http2 is None:
            from ._http2_async import async_bedrock_http2_client

            self._http2 = async_bedrock_http2_client(self._botocore)
        return await self._http2.invoke_model_with_bidirectional_stream(**params)

    async def close(self) -> None:
        if self._http2 is not None:
            await self._http2.close()
        await super().close()


def bedrock_client(botocore_client: Any = None, /, **kwargs: Any) -> BedrockClient:
    """A sync Bedrock Runtime client: the arguments of ``boto3.client("bedrock-runtime", ...)``, or an
    existing one to wrap; as :func:`evstream.sagemaker.client`."""
    return BedrockClient(botocore_client, **kwargs)


def bedrock_async_client(botocore_client: Any = None, /, **kwargs: Any) -> AsyncBedrockClient:
    """The asyncio Bedrock Runtime client."""
    return AsyncBedrockClient(botocore_client, **kwargs)
