"""Client configuration (picklable, so workers can rebuild a client) and request building."""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import IO, Any, Union

from .errors import ParamValidationError

__all__ = ["Config", "Request", "build_request", "read_body"]

Body = Union[bytes, bytearray, memoryview, str, IO[bytes], IO[str]]

MAX_BODY = 6 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a client is built from. Plain values only: it pickles, so a worker process (fork,
    multiprocessing, Ray, Spark, Dask) can rebuild an identical client with ``client(config=...)``."""

    region_name: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = dataclasses.field(default=None, repr=False)
    aws_secret_access_key: str | None = dataclasses.field(default=None, repr=False)
    aws_session_token: str | None = dataclasses.field(default=None, repr=False)
    profile_name: str | None = None
    use_fips_endpoint: bool = False
    sign: bool = True  # False sends unsigned requests (a local endpoint that checks nothing)
    verify: bool | str = True  # TLS verification, or the path of a CA bundle
    connect_timeout: float = 60.0
    first_byte_timeout: float = 60.0  # until the response headers and again until the first event
    event_timeout: float = 60.0  # between two events
    max_pool_connections: int = 64  # connections kept per host; each open stream holds one
    max_attempts: int = 3  # attempts in all, only before the first event is delivered
    backoff_base: float = 0.1
    backoff_max: float = 5.0
    service: str = "sagemaker"  # the SigV4 signing name: "sagemaker", or "bedrock" for Bedrock Runtime

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_pool_connections < 1:
            raise ValueError("max_attempts and max_pool_connections must be at least 1")
        for name in ("connect_timeout", "first_byte_timeout", "event_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @classmethod
    def from_kwargs(cls, config: Config | None = None, **kwargs: Any) -> Config:
        """boto3.client's keyword arguments; ``config`` may also be a ``botocore.config.Config``."""
        if isinstance(config, Config):
            return dataclasses.replace(config, **kwargs)
        values: dict[str, Any] = {}
        if config is not None:  # a botocore.config.Config
            values.update(_from_botocore_config(config))
        values.update({k: v for k, v in kwargs.items() if v is not None})
        return cls(**values)

    def resolved_endpoint(self, region: str | None) -> str:
        if self.endpoint_url:
            return self.endpoint_url.rstrip("/")
        if not region:
            raise ParamValidationError("No region: pass region_name, set AWS_REGION or configure a profile")
        if not re.fullmatch(r"[a-z0-9-]+", region):
            raise ParamValidationError(f"Invalid region name {region!r}")
        if self.service == "bedrock":
            prefix = "bedrock-runtime-fips" if self.use_fips_endpoint else "bedrock-runtime"
        else:
            prefix = "runtime-fips.sagemaker" if self.use_fips_endpoint else "runtime.sagemaker"
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://{prefix}.{region}.{suffix}"


def _from_botocore_config(config: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for ours, theirs in (
        ("region_name", "region_name"),
        ("connect_timeout", "connect_timeout"),
        ("first_byte_timeout", "read_timeout"),
        ("event_timeout", "read_timeout"),
        ("max_pool_connections", "max_pool_connections"),
        ("use_fips_endpoint", "use_fips_endpoint"),
    ):
        value = getattr(config, theirs, None)
        if value is not None:
            values[ours] = value
    retries = getattr(config, "retries", None) or {}
    if "max_attempts" in retries:  # botocore counts retries, not attempts
        values["max_attempts"] = retries["max_attempts"] + 1
    if "total_max_attempts" in retries:
        values["max_attempts"] = retries["total_max_attempts"]
    if getattr(config, "signature_version", None) is not None and str(config.signature_version) in (
        "UNSIGNED",
        "botocore.UNSIGNED",
    ):
        values["sign"] = False
    return values


def env_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


# -- parameters -----------------------------------------------------------------------------------

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_COMPONENT = re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")
_PRINTABLE_ID = re.compile(r"\S[\x20-\x7e]*")
_VISIBLE_ASCII = re.compile(r"[\x20-\x7e]*")

# Parameter -> (header, max length, pattern or None for "any ASCII")
_HEADERS: dict[str, tuple[str, int, re.Pattern[str] | None]] = {
    "ContentType": ("Content-Type", 1024, None),
    "Accept": ("X-Amzn-SageMaker-Accept", 1024, None),
    "CustomAttributes": ("X-Amzn-SageMaker-Custom-Attributes", 1024, _VISIBLE_ASCII),
    "TargetVariant": ("X-Amzn-SageMaker-Target-Variant", 63, _NAME),
    "TargetContainerHostname": ("X-Amzn-SageMaker-Target-Container-Hostname", 63, _NAME),
    "InferenceId": ("X-Amzn-SageMaker-Inference-Id", 64, _PRINTABLE_ID),
    "InferenceComponentName": ("X-Amzn-SageMaker-Inference-Component", 63, _COMPONENT),
    "SessionId": ("X-Amzn-SageMaker-Session-Id", 256, _NAME),
    "PrefixAwareId": ("X-Amzn-SageMaker-Prefix-Aware-Id", 64, _PRINTABLE_ID),
}
PARAMETERS = ("EndpointName", "Body", *_HEADERS)


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def read_body(body: Any, limit: int = MAX_BODY) -> bytes:
    """Body as bytes: bytes-like, str (UTF-8) or a file-like object (read whole: it is at most 6 MiB and a
    retry must send it again)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode()
    elif hasattr(body, "read"):
        content = body.read(limit + 1)
        data = content.encode() if isinstance(content, str) else bytes(content)
    else:
        raise ParamValidationError(
            f"Body must be bytes, str or a file-like object, not {type(body).__name__}"
        )
    if len(data) > limit:
        raise ParamValidationError(f"Body is over the service's limit of {limit} bytes")
    return data


def build_request(params: Mapping[str, Any], *, path_suffix: str = "invocations-response-stream") -> Request:
    """Validate the parameters as the service does and map them to the HTTP request."""
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise ParamValidationError(
            f"Unknown parameter(s) {', '.join(sorted(unknown))}; valid: {', '.join(PARAMETERS)}"
        )
    name = params.get("EndpointName")
    if not isinstance(name, str) or not name:
        raise ParamValidationError("EndpointName is required")
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise ParamValidationError(
            f"Invalid EndpointName {name!r}: 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    if "Body" not in params:
        raise ParamValidationError("Body is required")
    body = read_body(params["Body"])
    headers: dict[str, str] = {}
    for param, (header, limit, pattern) in _HEADERS.items():
        value = params.get(param)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ParamValidationError(f"{param} must be a string, not {type(value).__name__}")
        if len(value) > limit:
            raise ParamValidationError(f"{param} is {len(value)} characters long; the maximum is {limit}")
        if param == "InferenceId" and not value:
            raise ParamValidationError("InferenceId must be 1-64 characters")
        if not value.isascii() or (pattern is not None and not pattern.fullmatch(value)):
            what = {
                _VISIBLE_ASCII: "visible ASCII characters",
                _NAME: "letters, digits and hyphens, starting and ending with a letter or digit",
                _COMPONENT: "letters, digits and hyphens, starting and ending with a letter or digit",
                _PRINTABLE_ID: "printable ASCII characters, not starting with a space",
            }.get(pattern, "ASCII characters")  # type: ignore[arg-type]
            raise ParamValidationError(f"Invalid {param} {value!r}: must be {what}")
        headers[header] = value
    path = f"/endpoints/{urllib.parse.quote(name, safe='')}/{path_suffix}"
    return Request("POST", path, headers, body)
