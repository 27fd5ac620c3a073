"""The streaming operations evstream accelerates, each built by keyword: its botocore name, its request
builder and the shape of its events. A new operation is one more :class:`Operation` here."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from .config import Request, read_body
from .errors import IncompleteStream, ParamValidationError

__all__ = ["BEDROCK", "SAGEMAKER", "Operation", "decode_chunk"]

SAGEMAKER_MAX_BODY = 6 * 1024 * 1024
BEDROCK_MAX_BODY = 25_000_000

# Header values: visible ASCII, space and TAB. CR, LF and other controls would let a parameter start a
# header line of its own; anything else is not ASCII, which HTTP/1.1 headers cannot carry as is.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


@dataclasses.dataclass(frozen=True)
class Operation:
    """One streaming operation: how its request is built and what its events look like."""

    service_name: str  # botocore's service name
    name: str  # botocore's operation name
    method_name: str  # the client method
    build: Callable[[Mapping[str, Any], bool], Request]  # (params, validate) -> request
    event_type: str  # :event-type of the data events
    outer: str  # boto3's event shape: {outer: {inner: bytes}}
    inner: str
    body_key: str  # the response member holding the stream
    members: tuple[tuple[str, str], ...]  # response member <- lower-case header
    decode: Callable[[bytes], bytes] | None = None  # event payload -> the bytes users get


def _check_unknown(params: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = set(params) - set(known)
    if unknown:
        raise ParamValidationError(
            f"Unknown parameter(s) {', '.join(sorted(unknown))}; valid: {', '.join(known)}"
        )


def _header(name: str, value: Any, validate: bool) -> str:
    """A header parameter: a string of visible ASCII, spaces and tabs (checked even without validation;
    without it, other types are sent as their str(), as botocore does)."""
    if not isinstance(value, str):
        if validate:
            raise ParamValidationError(
                f"Invalid type for parameter {name}, value: {value!r}, type: {type(value)}"
            )
        value = str(value)
    text: str = value
    if not _HEADER_VALUE.fullmatch(text):
        raise ParamValidationError(
            f"Invalid value for parameter {name}: {text!r} holds a character outside visible ASCII, "
            "space and tab (a header value cannot carry it)"
        )
    return text


def _path_segment(value: str) -> str:
    """A path label, percent-encoded; "." and ".." too, which URL normalization would otherwise remove."""
    quoted = urllib.parse.quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


# -- SageMaker Runtime InvokeEndpointWithResponseStream --------------------------------------------

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_COMPONENT = re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")
_PRINTABLE_ID = re.compile(r"\S[\x20-\x7e]*")

# Parameter -> (header, max length, pattern or None)
_SAGEMAKER_HEADERS: dict[str, tuple[str, int, re.Pattern[str] | None]] = {
    "ContentType": ("Content-Type", 1024, None),
    "Accept": ("X-Amzn-SageMaker-Accept", 1024, None),
    "CustomAttributes": ("X-Amzn-SageMaker-Custom-Attributes", 1024, None),
    "TargetVariant": ("X-Amzn-SageMaker-Target-Variant", 63, _NAME),
    "TargetContainerHostname": ("X-Amzn-SageMaker-Target-Container-Hostname", 63, _NAME),
    "InferenceId": ("X-Amzn-SageMaker-Inference-Id", 64, _PRINTABLE_ID),
    "InferenceComponentName": ("X-Amzn-SageMaker-Inference-Component", 63, _COMPONENT),
    "SessionId": ("X-Amzn-SageMaker-Session-Id", 256, _NAME),
    "PrefixAwareId": ("X-Amzn-SageMaker-Prefix-Aware-Id", 64, _PRINTABLE_ID),
}
_SAGEMAKER_PARAMETERS = ("EndpointName", "Body", *_SAGEMAKER_HEADERS)
_PATTERN_WORDS = {
    _NAME: "letters, digits and hyphens, starting and ending with a letter or digit",
    _COMPONENT: "letters, digits and hyphens, starting and ending with a letter or digit",
    _PRINTABLE_ID: "printable ASCII characters, not starting with a space",
}


def build_sagemaker(params: Mapping[str, Any], validate: bool = True) -> Request:
    """Map the parameters to the HTTP request; with ``validate``, refuse what the service's model refuses."""
    _check_unknown(params, _SAGEMAKER_PARAMETERS)
    name = params.get("EndpointName")
    if not validate and name is not None:
        name = str(name)
    if not isinstance(name, str) or not name:
        raise ParamValidationError('Missing required parameter in input: "EndpointName"')
    if validate and (len(name) > 63 or not _NAME.fullmatch(name)):
        raise ParamValidationError(
            f"Invalid EndpointName {name!r}: 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    if "Body" not in params:
        raise ParamValidationError('Missing required parameter in input: "Body"')
    body = read_body(params["Body"], SAGEMAKER_MAX_BODY if validate else None)
    headers: dict[str, str] = {}
    for param, (header, limit, pattern) in _SAGEMAKER_HEADERS.items():
        value = params.get(param)
        if value is None:
            continue
        value = _header(param, value, validate)
        if validate:
            if len(value) > limit:
                raise ParamValidationError(f"{param} is {len(value)} characters long; the maximum is {limit}")
            if param == "InferenceId" and not value:
                raise ParamValidationError("InferenceId must be 1-64 characters")
            if pattern is not None and not pattern.fullmatch(value):
                raise ParamValidationError(f"Invalid {param} {value!r}: must be {_PATTERN_WORDS[pattern]}")
        headers[header] = value
    return Request("POST", f"/endpoints/{_path_segment(name)}/invocations-response-stream", headers, body)


SAGEMAKER = Operation(
    service_name="sagemaker-runtime",
    name="InvokeEndpointWithResponseStream",
    method_name="invoke_endpoint_with_response_stream",
    build=build_sagemaker,
    event_type="PayloadPart",
    outer="PayloadPart",
    inner="Bytes",
    body_key="Body",
    members=(
        ("ContentType", "x-amzn-sagemaker-content-type"),
        ("InvokedProductionVariant", "x-amzn-invoked-production-variant"),
        ("CustomAttributes", "x-amzn-sagemaker-custom-attributes"),
    ),
)


# -- Bedrock Runtime InvokeModelWithResponseStream -------------------------------------------------


def decode_chunk(payload: bytes) -> bytes:
    """The model's bytes in one Bedrock ``chunk`` event (``{"bytes": "<base64>"}``)."""
    try:
        return base64.b64decode(json.loads(payload)["bytes"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise IncompleteStream(f"Malformed Bedrock chunk event: {exc}") from None


_BEDROCK_ENUMS = {
    "trace": ("X-Amzn-Bedrock-Trace", ("ENABLED", "DISABLED", "ENABLED_FULL")),
    "performanceConfigLatency": ("X-Amzn-Bedrock-PerformanceConfig-Latency", ("standard", "optimized")),
    "serviceTier": ("X-Amzn-Bedrock-Service-Tier", ("priority", "default", "flex", "reserved")),
}
_BEDROCK_STRINGS = {
    "contentType": ("Content-Type", None),
    "accept": ("X-Amzn-Bedrock-Accept", None),
    "guardrailIdentifier": ("X-Amzn-Bedrock-GuardrailIdentifier", 2048),
    "guardrailVersion": ("X-Amzn-Bedrock-GuardrailVersion", None),
    "requestMetadata": ("X-Amzn-Bedrock-Request-Metadata", 8500),
}
_GUARDRAIL_VERSION = re.compile(r"|[1-9][0-9]{0,7}|DRAFT")
_BEDROCK_PARAMETERS = ("modelId", "body", *_BEDROCK_STRINGS, *_BEDROCK_ENUMS)


def build_bedrock(params: Mapping[str, Any], validate: bool = True) -> Request:
    _check_unknown(params, _BEDROCK_PARAMETERS)
    model = params.get("modelId")
    if not validate and model is not None:
        model = str(model)
    if not isinstance(model, str) or not model:
        raise ParamValidationError('Missing required parameter in input: "modelId"')
    if validate and len(model) > 2048:
        raise ParamValidationError("modelId must be 1-2048 characters")
    body = read_body(params.get("body", b""), BEDROCK_MAX_BODY if validate else None)
    headers: dict[str, str] = {}
    for name, (header, limit) in _BEDROCK_STRINGS.items():
        value = params.get(name)
        if value is None:
            continue
        value = _header(name, value, validate)
        if validate and limit is not None and len(value) > limit:
            raise ParamValidationError(f"{name} must be a string of at most {limit} characters")
        if validate and name == "guardrailVersion" and not _GUARDRAIL_VERSION.fullmatch(value):
            raise ParamValidationError(f"Invalid guardrailVersion {value!r}: a version number or DRAFT")
        headers[header] = value
    for name, (header, allowed) in _BEDROCK_ENUMS.items():
        value = params.get(name)
        if value is None:
            continue
        value = _header(name, value, validate)
        if validate and value not in allowed:
            raise ParamValidationError(f"Invalid {name} {value!r}: one of {', '.join(allowed)}")
        headers[header] = value
    return Request("POST", f"/model/{_path_segment(model)}/invoke-with-response-stream", headers, body)


BEDROCK = Operation(
    service_name="bedrock-runtime",
    name="InvokeModelWithResponseStream",
    method_name="invoke_model_with_response_stream",
    build=build_bedrock,
    event_type="chunk",
    outer="chunk",
    inner="bytes",
    body_key="body",
    members=(
        ("contentType", "x-amzn-bedrock-content-type"),
        ("performanceConfigLatency", "x-amzn-bedrock-performanceconfig-latency"),
        ("serviceTier", "x-amzn-bedrock-service-tier"),
    ),
    decode=decode_chunk,
)
