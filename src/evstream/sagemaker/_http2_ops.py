"""The two bidirectional operations: their requests, their events both ways, their errors, and what they
take from the control plane (botocore).

SageMaker Runtime HTTP2 ``InvokeEndpointWithBidirectionalStream`` is not in botocore's data (it has no
input event streams); its shapes here follow the service's published model (``aws-sdk-sagemaker-runtime-
http2``): ``PayloadPart`` events with the payload as the event's body and ``DataType``, ``CompletionState``
and ``P`` as event headers, both ways. Bedrock Runtime ``InvokeModelWithBidirectionalStream`` is in
botocore's model: ``chunk`` events whose JSON body carries ``bytes`` in base64, both ways, and the
modelled exceptions, raised as the botocore client's classes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Callable

from .. import Message, encode
from .control import ControlPlane, make_botocore_client
from .errors import (
    IncompleteStream,
    InternalFailure,
    InternalStreamFailure,
    ModelError,
    ParamValidationError,
    ServiceError,
    ServiceUnavailable,
    ValidationError,
    error_response,
    service_error_class,
    stream_exception,
)

__all__ = [
    "BEDROCK",
    "SAGEMAKER",
    "BidiOperation",
    "InputValidationError",
    "InternalServerError",
    "ServiceUnavailableError",
    "StreamReset",
    "Target",
    "control_plane",
]

SAGEMAKER_OPERATION = "InvokeEndpointWithBidirectionalStream"
BEDROCK_OPERATION = "InvokeModelWithBidirectionalStream"


# -- SageMaker Runtime HTTP2's modelled errors that botocore does not know --------------------------


class InputValidationError(ValidationError):
    """The request or an input event was refused (HTTP 400, or an error event inside the stream)."""


class InternalServerError(InternalFailure):
    """The service failed before the stream started (HTTP 500)."""


class ServiceUnavailableError(ServiceUnavailable):
    """The service is unavailable (HTTP 503)."""


class StreamReset(InternalStreamFailure):
    """The server reset the HTTP/2 stream (RST_STREAM) before ending it."""


_SAGEMAKER_HTTP_ERRORS: dict[str, type[ServiceError]] = {
    "InputValidationError": InputValidationError,
    "ModelError": ModelError,
    "InternalServerError": InternalServerError,
    "ServiceUnavailableError": ServiceUnavailableError,
}
_SAGEMAKER_BY_STATUS = {400: "InputValidationError", 424: "ModelError", 500: "InternalServerError",
                        503: "ServiceUnavailableError"}  # fmt: skip


# -- the control plane ------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """What a client takes from the control plane, resolved once."""

    control: ControlPlane  # botocore: credentials, config, signing name and region, modelled errors
    endpoint_url: str  # always https://
    host: str
    port: int
    host_header: str
    base_path: str
    verify: bool | str
    connect_timeout: float
    read_timeout: float

    @property
    def client(self) -> Any:
        return self.control.client


def control_plane(
    service_name: str, botocore_client: Any = None, *, session: Any = None, config: Any = None, **kwargs: Any
) -> Target:
    """What boto3.client(service_name, ...) would resolve (the botocore client is the control plane), or
    what an existing boto3/botocore client of that service has resolved; and the HTTP/2 endpoint:
    SageMaker's from the service's own rules, Bedrock's from botocore's."""
    if botocore_client is not None:
        if session is not None or config is not None or kwargs:
            raise TypeError("pass an existing client or boto3.client's arguments, not both")
        name = botocore_client.meta.service_model.service_name
        if name != service_name:
            raise TypeError(f"a {service_name} client is needed, not a {name} client")
        client = botocore_client
        explicit = _builtins(client).get("SDK::Endpoint")  # the endpoint_url it was made with, if any
    else:
        explicit = kwargs.get("endpoint_url")
        client = make_botocore_client(service_name, session=session, config=config, **kwargs)
    if service_name == "sagemaker-runtime":
        explicit = explicit or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2")
        operation = "InvokeEndpointWithResponseStream"  # the same service, credentials and signing name
    else:
        operation = BEDROCK_OPERATION
    control = ControlPlane(client, operation)
    if not control.region:
        raise ParamValidationError("No region: pass region_name, set AWS_REGION or configure a profile")
    url = explicit or control.endpoint_url
    if service_name == "sagemaker-runtime" and not explicit:
        url = sagemaker_http2_endpoint(control.region, **_variants(client))
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParamValidationError(f"Invalid endpoint_url {url!r}")
    if control.proxy_for(url) is not None:  # refused rather than bypassed without a word
        raise ParamValidationError(
            f"A proxy is configured for {parts.hostname}, and the HTTP/2 client does not support proxies: "
            "add the host to NO_PROXY or remove the proxies setting"
        )
    endpoint_url = url.rstrip("/")
    if parts.scheme != "https":
        # awscrt's Python binding negotiates HTTP/2 only through TLS ALPN (no prior-knowledge h2c).
        raise ParamValidationError(
            f"HTTP/2 bidirectional streaming needs an https:// endpoint, not {endpoint_url}"
        )
    port = parts.port or 443
    host_header = parts.hostname if port == 443 else f"{parts.hostname}:{port}"
    return Target(
        control=control,
        endpoint_url=endpoint_url,
        host=parts.hostname,
        port=port,
        host_header=host_header,
        base_path=parts.path.rstrip("/"),
        verify=getattr(client._endpoint.http_session, "_verify", True),
        connect_timeout=float(client.meta.config.connect_timeout or 60),
        read_timeout=float(client.meta.config.read_timeout or 60),
    )


def _builtins(client: Any) -> dict[str, Any]:
    """The endpoint ruleset's built-in parameters a botocore client resolved (its region, endpoint_url,
    FIPS and dualstack settings)."""
    return getattr(getattr(client, "_ruleset_resolver", None), "_builtins", {}) or {}


def _variants(client: Any) -> dict[str, bool]:
    builtins = _builtins(client)
    config = client.meta.config
    return {
        "fips": bool(builtins.get("AWS::UseFIPS", getattr(config, "use_fips_endpoint", False))),
        "dualstack": bool(
            builtins.get("AWS::UseDualStack", getattr(config, "use_dualstack_endpoint", False))
        ),
    }


# Partitions whose HTTP/2 endpoint listens on port 8443 (the service's endpoint rules).
_HTTP2_PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-eusc", "aws-iso-f")


def sagemaker_http2_endpoint(region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    """The service's endpoint rules, over botocore's partition data (DNS suffixes, FIPS and dualstack
    support)."""
    if not re.fullmatch(r"[a-zA-Z0-9-]+", region):
        raise ParamValidationError(f"Invalid region name {region!r}")
    partition = _partition(region)
    suffix = partition["dualStackDnsSuffix" if dualstack else "dnsSuffix"]
    if (fips and not partition.get("supportsFIPS")) or (dualstack and not partition.get("supportsDualStack")):
        raise ParamValidationError(f"FIPS or dualstack is not supported in {partition['name']}")
    if partition["name"] in _HTTP2_PARTITIONS:
        prefix = "runtime-fips.sagemaker" if fips else "runtime.sagemaker"
        return f"https://{prefix}.{region}.{suffix}:8443"
    prefix = "runtime.sagemaker-fips" if fips else "runtime.sagemaker"
    return f"https://{prefix}.{region}.{suffix}"


def _partition(region: str) -> dict[str, Any]:
    import botocore.loaders

    data = botocore.loaders.create_loader().load_data("partitions")
    for partition in data["partitions"]:
        if region in partition.get("regions", {}):
            return dict(partition["outputs"])
    for partition in data["partitions"]:
        if re.match(partition["regionRegex"], region):
            return dict(partition["outputs"])
    return dict(data["partitions"][0]["outputs"])


# -- the operations ---------------------------------------------------------------------------------

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_VISIBLE = re.compile(r"[\x20-\x7e]*")
_DATA_TYPES = ("UTF8", "BINARY")
_STATES = ("PARTIAL", "COMPLETE")


@dataclasses.dataclass(frozen=True)
class BidiOperation:
    """What differs between the two bidirectional operations."""

    name: str
    service_name: str  # botocore's
    body_key: str  # the response member holding the event stream
    members: tuple[tuple[str, str], ...]  # response member <- lower-case header
    build: Callable[[Mapping[str, Any]], tuple[str, dict[str, str]]]  # params -> (path, headers)
    input_event: Callable[..., bytes]
    output_event: Callable[[Message, Target, str | None], dict[str, Any] | None]
    http_error: Callable[[int, Mapping[str, str], bytes, Target], ServiceError]


def _string(params: Mapping[str, Any], name: str, limit: int, pattern: re.Pattern[str]) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not pattern.fullmatch(value):
        raise ParamValidationError(
            f"Invalid {name} {value!r}: 1-{limit} characters matching {pattern.pattern}"
        )
    return value


def _sagemaker_request(params: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    allowed = ("EndpointName", "TargetVariant", "ModelInvocationPath", "ModelQueryString")
    unknown = set(params) - set(allowed)
    if unknown:
        raise ParamValidationError(
            report=f"Unknown parameter(s) {', '.join(sorted(unknown))}; valid: {', '.join(allowed)}"
        )
    name = _string(params, "EndpointName", 63, _NAME)
    if name is None:
        raise ParamValidationError("Missing required parameter EndpointName")
    headers = {"Content-Type": "application/vnd.amazon.eventstream"}
    for param, header, limit, pattern in (
        ("TargetVariant", "X-Amzn-SageMaker-Target-Variant", 63, _NAME),
        ("ModelInvocationPath", "X-Amzn-SageMaker-Model-Invocation-Path", 100, _VISIBLE),
        ("ModelQueryString", "X-Amzn-SageMaker-Model-Query-String", 2048, _VISIBLE),
    ):
        value = _string(params, param, limit, pattern)
        if value is not None:
            headers[header] = value
    return f"/endpoints/{urllib.parse.quote(name, safe='')}/invocations-bidirectional-stream", headers


def _payload(data: Any) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise ParamValidationError(f"An event's data must be bytes or str, not {type(data).__name__}")


def sagemaker_input_event(
    data: Any, data_type: str | None = None, completion_state: str | None = None, p: str | None = None
) -> bytes:
    """One encoded ``PayloadPart`` request event (the envelope's payload)."""
    payload = _payload(data)
    if data_type is None and isinstance(data, str):
        data_type = "UTF8"
    headers: dict[str, Any] = {":message-type": "event", ":event-type": "PayloadPart"}
    for name, value, allowed in (
        ("DataType", data_type, _DATA_TYPES),
        ("CompletionState", completion_state, _STATES),
    ):
        if value is not None:
            if value not in allowed:
                raise ParamValidationError(f"Invalid {name} {value!r}: one of {', '.join(allowed)}")
            headers[name] = value
    if p is not None:
        headers["P"] = str(p)
    if payload:
        headers[":content-type"] = "application/octet-stream"
    return encode(headers, payload)


def _sagemaker_output(message: Message, target: Target, request_id: str | None) -> dict[str, Any] | None:
    headers = message.headers
    kind = headers.get(":message-type", "event")
    if kind == "event":
        if headers.get(":event-type") != "PayloadPart":
            return None  # event types added to the API later are skipped, as botocore does
        part: dict[str, Any] = {"Bytes": message.payload}
        for member in ("DataType", "CompletionState", "P"):
            if member in headers:
                part[member] = headers[member]
        return {"PayloadPart": part}
    raise _sagemaker_stream_error(headers, message.payload, request_id)


def _sagemaker_stream_error(headers: Mapping[str, Any], payload: bytes, request_id: str | None) -> Exception:
    error = stream_exception(headers, payload, request_id, SAGEMAKER_OPERATION)
    code = headers.get(":error-code") if headers.get(":message-type") == "error" else None
    if code in _SAGEMAKER_HTTP_ERRORS:  # a modelled error named by an error event (a refused input event)
        refused: Exception = _SAGEMAKER_HTTP_ERRORS[str(code)](error.response, SAGEMAKER_OPERATION)
        return refused
    return error


def _sagemaker_http_error(
    status: int, headers: Mapping[str, str], body: bytes, target: Target
) -> ServiceError:
    """restJson1's error answer: the type in X-Amzn-ErrorType (or the body's __type), members in the body."""
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    code = headers.get("x-amzn-errortype") or document.get("__type") or document.get("code") or ""
    # "InputValidationError:http://internal.amazon.com/coral/..." and "com.amazonaws...#InputValidationError"
    code = code.split(":", 1)[0].rsplit("#", 1)[-1] or _SAGEMAKER_BY_STATUS.get(status, f"HTTP{status}")
    message = document.get("Message") or document.get("message") or body.decode("utf-8", "replace")
    members = {k: v for k, v in document.items() if k not in ("Message", "message", "__type", "code")}
    response = error_response(code, str(message), status=status, headers=headers, members=members)
    cls = _SAGEMAKER_HTTP_ERRORS.get(code) or service_error_class(code, status)
    error: ServiceError = cls(response, SAGEMAKER_OPERATION)
    return error


SAGEMAKER = BidiOperation(
    SAGEMAKER_OPERATION,
    "sagemaker-runtime",
    "Body",
    (("InvokedProductionVariant", "x-amzn-invoked-production-variant"),),
    _sagemaker_request,
    sagemaker_input_event,
    _sagemaker_output,
    _sagemaker_http_error,
)


def _bedrock_request(params: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    unknown = set(params) - {"modelId"}
    if unknown:
        raise ParamValidationError(f"Unknown parameter(s) {', '.join(sorted(unknown))}; valid: modelId")
    model = params.get("modelId")
    if not isinstance(model, str) or not 1 <= len(model) <= 2048:
        raise ParamValidationError("Missing required parameter modelId: 1-2048 characters")
    headers = {"Content-Type": "application/vnd.amazon.eventstream"}
    return f"/model/{urllib.parse.quote(model, safe='')}/invoke-with-bidirectional-stream", headers


def bedrock_input_event(data: Any) -> bytes:
    """One encoded ``chunk`` request event."""
    body = json.dumps({"bytes": base64.b64encode(_payload(data)).decode()}).encode()
    return encode(
        {":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"}, body
    )


def _bedrock_output(message: Message, target: Target, request_id: str | None) -> dict[str, Any] | None:
    headers = message.headers
    kind = headers.get(":message-type", "event")
    if kind == "event":
        if headers.get(":event-type") != "chunk":
            return None
        try:
            data = base64.b64decode(json.loads(message.payload)["bytes"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise IncompleteStream(f"Malformed Bedrock chunk event: {exc}", request_id=request_id) from None
        return {"chunk": {"bytes": data}}
    raise stream_exception(headers, message.payload, request_id, BEDROCK_OPERATION)


def _bedrock_http_error(status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ServiceError:
    """Parsed by botocore's parser for the service's model: the botocore client's modelled class."""
    return target.control.http_error(status, headers, body, 1)


BEDROCK = BidiOperation(
    BEDROCK_OPERATION,
    "bedrock-runtime",
    "body",
    (),
    _bedrock_request,
    bedrock_input_event,
    _bedrock_output,
    _bedrock_http_error,
)


def stream_reset(error_name: str, request_id: str | None, operation: BidiOperation) -> StreamReset:
    response = error_response(
        "InternalStreamFailure",
        f"The service reset the stream ({error_name})",
        headers={"x-amzn-requestid": request_id or ""},
    )
    reset: StreamReset = StreamReset(response, operation.name)
    return reset
