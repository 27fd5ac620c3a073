"""Amazon Bedrock ``InvokeModelWithResponseStream`` on the same machinery.

The framing is the same event stream; the differences are the operation (see ``operations.BEDROCK``: the
route ``POST /model/{modelId}/invoke-with-response-stream``, the ``chunk`` events whose JSON payload
``{"bytes": "<base64>"}`` :meth:`payloads` and boto3's shape give decoded) and the botocore service,
``bedrock-runtime``, which brings its endpoint, signing name and bearer-token support.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._sync import Client
from .operations import BEDROCK, decode_chunk

if TYPE_CHECKING:
    from ._async import AsyncBedrockClient

__all__ = ["BedrockClient", "bedrock_async_client", "bedrock_client", "decode_chunk"]


class BedrockClient(Client):
    """``invoke_model_with_response_stream`` with boto3's ``bedrock-runtime`` names and shape."""

    _operation = BEDROCK

    def invoke_model_with_response_stream(self, **params: Any) -> dict[str, Any]:
        return self._invoke(self._prepare(params), BEDROCK)


def bedrock_client(botocore_client: Any = None, /, **kwargs: Any) -> BedrockClient:
    """A sync Bedrock Runtime client: the arguments of ``boto3.client("bedrock-runtime", ...)``, or an
    existing one to wrap; as :func:`evstream.sagemaker.client`."""
    return BedrockClient(botocore_client, **kwargs)


def bedrock_async_client(botocore_client: Any = None, /, **kwargs: Any) -> AsyncBedrockClient:
    """The asyncio Bedrock Runtime client."""
    from ._async import AsyncBedrockClient

    return AsyncBedrockClient(botocore_client, **kwargs)
