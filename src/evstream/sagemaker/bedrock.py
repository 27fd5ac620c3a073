"""Amazon Bedrock ``InvokeModelWithResponseStream`` on the same machinery.

The framing is the same event stream; the differences are the route (``POST /model/{modelId}/
invoke-with-response-stream``), the signing name (``bedrock``), the host (``bedrock-runtime``), and the data
events: ``:event-type=chunk`` with a JSON payload ``{"bytes": "<base64>"}``, which :meth:`payloads` and
boto3's shape (``{"chunk": {"bytes": b"..."}}``) give decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._base import Operation
from ._sync import Client
from .config import Config, Request, read_body
from .errors import IncompleteStream, ParamValidationError

if TYPE_CHECKING:
    from ._async import AsyncBedrockClient

__all__ = ["BedrockClient", "bedrock_async_client", "bedrock_client", "build_request", "decode_chunk"]

MAX_BODY = 25_000_000


def decode_chunk(payload: bytes) -> bytes:
    """The model's bytes in one ``chunk`` event."""
    try:
        return base64.b64decode(json.loads(payload)["bytes"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise IncompleteStream(f"Malformed Bedrock chunk event: {exc}") from None


BEDROCK = Operation(
    "chunk",
    "chunk",
    "bytes",
    "body",
    (
        ("contentType", "x-amzn-bedrock-content-type"),
        ("performanceConfigLatency", "x-amzn-bedrock-performanceconfig-latency"),
        ("serviceTier", "x-amzn-bedrock-service-tier"),
    ),
    decode_chunk,
)

_ENUMS = {
    "trace": ("X-Amzn-Bedrock-Trace", ("ENABLED", "DISABLED", "ENABLED_FULL")),
    "performanceConfigLatency": ("X-Amzn-Bedrock-PerformanceConfig-Latency", ("standard", "optimized")),
    "serviceTier": ("X-Amzn-Bedrock-Service-Tier", ("priority", "default", "flex", "reserved")),
}
_STRINGS = {
    "contentType": ("Content-Type", None),
    "accept": ("X-Amzn-Bedrock-Accept", None),
    "guardrailIdentifier": ("X-Amzn-Bedrock-GuardrailIdentifier", 2048),
    "guardrailVersion": ("X-Amzn-Bedrock-GuardrailVersion", None),
    "requestMetadata": ("X-Amzn-Bedrock-Request-Metadata", 8500),
}
_GUARDRAIL_VERSION = re.compile(r"|[1-9][0-9]{0,7}|DRAFT")
PARAMETERS = ("modelId", "body", *_STRINGS, *_ENUMS)


def build_request(params: Mapping[str, Any]) -> Request:
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise ParamValidationError(
            f"Unknown parameter(s) {', '.join(sorted(unknown))}; valid: {', '.join(PARAMETERS)}"
        )
    model = params.get("modelId")
    if not isinstance(model, str) or not 1 <= len(model) <= 2048:
        raise ParamValidationError("modelId is required: 1-2048 characters")
    body = read_body(params.get("body", b""), MAX_BODY)
    headers: dict[str, str] = {}
    for name, (header, limit) in _STRINGS.items():
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or (limit is not None and len(value) > limit):
            raise ParamValidationError(f"{name} must be a string of at most {limit or 'any'} characters")
        if name == "guardrailVersion" and not _GUARDRAIL_VERSION.fullmatch(value):
            raise ParamValidationError(f"Invalid guardrailVersion {value!r}: a version number or DRAFT")
        headers[header] = value
    for name, (header, allowed) in _ENUMS.items():
        value = params.get(name)
        if value is None:
            continue
        if value not in allowed:
            raise ParamValidationError(f"Invalid {name} {value!r}: one of {', '.join(allowed)}")
        headers[header] = value
    path = f"/model/{urllib.parse.quote(model, safe='')}/invoke-with-response-stream"
    return Request("POST", path, headers, body)


class BedrockClient(Client):
    """``invoke_model_with_response_stream`` with boto3's ``bedrock-runtime`` names and shape."""

    def invoke_model_with_response_stream(self, **params: Any) -> dict[str, Any]:
        request = build_request(params)
        request.path = self._base_path + request.path
        return self._invoke(request, BEDROCK)


def bedrock_client(*, config: Any = None, session: Any = None, **kwargs: Any) -> BedrockClient:
    """A sync Bedrock Runtime client; the same arguments as :func:`evstream.sagemaker.client`."""
    kwargs.setdefault("service", "bedrock")
    return BedrockClient(Config.from_kwargs(config, **kwargs), session)


def bedrock_async_client(*, config: Any = None, session: Any = None, **kwargs: Any) -> AsyncBedrockClient:
    """The asyncio Bedrock Runtime client (aiohttp)."""
    from ._async import AsyncBedrockClient

    kwargs.setdefault("service", "bedrock")
    return AsyncBedrockClient(Config.from_kwargs(config, **kwargs), session)
