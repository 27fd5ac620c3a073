"""The control plane: a real botocore client, and what the data plane takes from it.

boto3 is the oracle. Everything that decides *where* and *how* a request goes (the endpoint ruleset with its
partitions, FIPS, dualstack and ``AWS_ENDPOINT_URL*``; credentials, bearer tokens and ``UNSIGNED``; every
``Config`` option with its environment and profile sources; proxies; TLS; the user agent; the retry mode,
its attempts, backoff and quota; the modelled exceptions) is read from a botocore client made with the user's
arguments, once. evstream keeps the per-request hot path: build the request, sign it (awscrt's SigV4, or
botocore's signer for any other scheme), send, read, decode, classify.
"""

from __future__ import annotations

import dataclasses
import random
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any

import botocore
import botocore.awsrequest
import botocore.config
import botocore.exceptions
import botocore.parsers
import botocore.session
import botocore.validate
from botocore.httpsession import create_urllib3_context, get_cert_path

from .errors import NoCredentialsError, ParamValidationError, ServiceError, service_error_class
from .signing import Signer

__all__ = ["ControlPlane", "Proxy", "make_botocore_client"]

# boto3.client()'s keyword arguments, passed to botocore unchanged.
CLIENT_ARGUMENTS = (
    "region_name",
    "api_version",
    "use_ssl",
    "verify",
    "endpoint_url",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_account_id",
)
DEFAULT_POOL = 64  # connections kept per host: each open stream holds one, so more than botocore's 10


@dataclasses.dataclass(frozen=True)
class Proxy:
    """The proxy a request to the endpoint goes through, as botocore would use it."""

    url: str
    headers: dict[str, str]  # Proxy-Authorization from the URL's user info
    ssl_context: ssl.SSLContext | None  # TLS to an https:// proxy (proxies_config), None: the default
    use_forwarding_for_https: bool


def make_botocore_client(
    service_name: str,
    *,
    session: Any = None,
    config: Any = None,
    profile_name: str | None = None,
    **kwargs: Any,
) -> Any:
    """The botocore client boto3.client(service_name, ...) would make (a boto3 session when boto3 is
    installed, so the user agent is boto3's too)."""
    unknown = set(kwargs) - set(CLIENT_ARGUMENTS)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if session is None:
        session = default_session(profile_name)
    elif profile_name is not None:
        raise TypeError("pass profile_name or session, not both")
    if hasattr(session, "create_client"):  # botocore
        return session.create_client(service_name, config=config, **kwargs)
    return session.client(service_name, config=config, **kwargs)


def default_session(profile_name: str | None = None) -> Any:
    """The session boto3.client() uses (boto3's default one, so the modelled exception classes are the same
    objects as those of the user's boto3 clients), or a new one for a profile; botocore's without boto3."""
    try:
        import boto3
    except ImportError:
        return botocore.session.Session(profile=profile_name)
    if profile_name is not None:
        return boto3.session.Session(profile_name=profile_name)
    return boto3._get_default_session()


class ControlPlane:
    """What one streaming operation of a botocore client needs from it, resolved once."""

    def __init__(self, client: Any, operation_name: str) -> None:
        self.client = client
        meta = client.meta
        self.operation_name = operation_name
        self.operation_model = meta.service_model.operation_model(operation_name)
        self.service_id = meta.service_model.service_id.hyphenize()
        self.config = meta.config
        self.region = meta.region_name
        context = self._request_context()
        url, self.endpoint_headers, _ = client._resolve_endpoint_ruleset(self.operation_model, {}, context)
        self._set_endpoint(url)
        signing = context.get("signing", {})
        self.signing_region = signing.get("region", self.region)
        self.signing_name = signing.get("signing_name", meta.service_model.signing_name)
        self.signature_version = client._request_signer._choose_signer(operation_name, "standard", context)
        self._signing_context = context
        self._crt_signer: Signer | None = None
        self._lock = threading.Lock()
        creator = getattr(client, "_user_agent_creator", None)
        self.user_agent = creator.to_string() if creator is not None else self.config.user_agent
        retries = self.config.retries or {}
        self.retry_mode = retries.get("mode", "legacy")
        self.max_attempts = int(
            retries.get("total_max_attempts") or (5 if self.retry_mode == "legacy" else 3)
        )
        self._http_session = client._endpoint.http_session
        # botocore keeps parameter_validation only in the choice of serializer, not in meta.config.
        self.parameter_validation = isinstance(client._serializer, botocore.validate.ParamValidationDecorator)

    def _request_context(self) -> dict[str, Any]:
        model = self.operation_model
        return {
            "client_region": self.region,
            "client_config": self.config,
            "has_streaming_input": model.has_streaming_input,
            "auth_type": model.resolved_auth_type,
            "unsigned_payload": model.unsigned_payload,
            "auth_options": model.service_model.metadata.get("auth"),
        }

    def _set_endpoint(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ParamValidationError(f"Invalid endpoint URL {_without_userinfo(url)!r}")
        self.scheme = parts.scheme
        self.hostname = parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        self.port = parts.port or default_port
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        # The Host header as HTTP clients send it: the port only when it is not the scheme's default (a
        # signature over "host:443" fails against the "host" actually sent).
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"
        self.base_path = parts.path.rstrip("/")
        # As botocore has it (an explicit default port stays in the URL; HTTP clients leave it out of Host).
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.endpoint_url = f"{parts.scheme}://{netloc}{self.base_path}"

    # -- per request -------------------------------------------------------------------------------

    def new_call(self) -> dict[str, Any]:
        """The context of one call (all its attempts): botocore's retry handlers keep their state there."""
        context = self._request_context()
        context["retries"] = {"invocation-id": str(uuid.uuid4()), "max": self.max_attempts}
        return context

    def prepare_headers(
        self,
        call: dict[str, Any],
        attempt: int,
        method: str,
        path: str,
        headers: MutableMapping[str, str],
        body: bytes,
    ) -> None:
        """Complete one attempt's headers: user agent, botocore's retry headers, the signature."""
        retries = call["retries"]
        retries["attempt"] = attempt
        headers.update(self.endpoint_headers)
        self.sign(method, path, headers, body)
        # Added after signing, as botocore does: these headers are not part of the signature.
        headers["User-Agent"] = self.user_agent
        headers["amz-sdk-invocation-id"] = retries["invocation-id"]
        # botocore states the maximum only once a retry has been considered.
        if attempt > 1:
            headers["amz-sdk-request"] = f"attempt={attempt}; max={self.max_attempts}"
        else:
            headers["amz-sdk-request"] = "attempt=1"
        if self.retry_mode == "adaptive":
            # botocore's client-side rate limiter waits here for a send token.
            self.client.meta.events.emit(f"before-send.{self.service_id}.{self.operation_name}", request=None)

    def sign(self, method: str, path: str, headers: MutableMapping[str, str], body: bytes) -> None:
        version = self.signature_version
        if version is botocore.UNSIGNED:
            return
        if version in ("v4", "s3v4"):
            self.sigv4_signer().sign(method, self.host_header, path, headers, body)
            return
        # Bearer tokens, SigV4a: botocore's own signer.
        request = botocore.awsrequest.AWSRequest(
            method, self.endpoint_url + path[len(self.base_path) :], dict(headers), body
        )
        request.context = dict(self._signing_context)
        self.client._request_signer.sign(self.operation_name, request)
        headers.update(request.headers.items())

    def sigv4_signer(self) -> Signer:
        """awscrt's SigV4 over this client's credentials (botocore's, refreshed before they expire)."""
        signer = self._crt_signer
        if signer is None:
            credentials = self._credentials()
            if credentials is None:
                raise NoCredentialsError()
            signer = self._crt_signer = Signer(credentials, self.signing_region, self.signing_name)
        return signer

    def _credentials(self) -> Any:
        """botocore's credentials of this client (refreshable ones renew themselves), or None."""
        return self.client._request_signer._credentials

    def refresh_credentials(self) -> None:
        """Fetch credentials now if they are due (botocore refreshes them when close to expiry)."""
        credentials = self._credentials()
        if credentials is not None:
            credentials.get_frozen_credentials()

    def credentials_refresh_needed(self) -> bool:
        """Whether the next signature first fetches credentials (maybe a network call: STS, IMDS, SSO)."""
        if self.signature_version is botocore.UNSIGNED:
            return False
        check = getattr(self._credentials(), "refresh_needed", None)
        return bool(check()) if check is not None else False

    # -- errors and retries ------------------------------------------------------------------------

    def http_error(self, status: int, headers: Mapping[str, str], body: bytes, attempts: int) -> ServiceError:
        """The error boto3 raises for this HTTP answer: parsed by botocore's parser for the service's
        protocol, modelled fields included, as an instance of the botocore client's class for its code."""
        model = self.operation_model
        response_dict = {
            "headers": botocore.awsrequest.HeadersDict(headers),
            "status_code": status,
            "body": body,
            "context": {"operation_name": self.operation_name},
        }
        parser = botocore.parsers.create_parser(model.service_model.resolved_protocol)
        parsed = parser.parse(response_dict, model.output_shape)
        self.client._endpoint._add_modeled_error_fields(response_dict, parsed, model, parser)
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = attempts - 1
        code = parsed.get("Error", {}).get("Code") or ""
        cls = service_error_class(code, status, self.client.exceptions.from_code(code))
        return cls(parsed, self.operation_name)  # type: ignore[no-any-return]

    def retry_delay(self, call: dict[str, Any], attempts: int, error: BaseException) -> float | None:
        """Seconds to wait before another attempt, or None: botocore's retry handler for this client (legacy,
        standard or adaptive, with its attempts, backoff and quota) decides."""
        response = getattr(error, "response", None)
        if isinstance(response, dict) and "Error" in response:
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status is None or status < 300:
                # An error event before the first event: a failure of the service, for botocore's rules
                # (on a copy: boto3 never retries these, so their message says nothing of retries).
                status = 500 if getattr(error, "retryable", False) else 400
                response = {**response, "ResponseMetadata": dict(response.get("ResponseMetadata", {}))}
            http = botocore.awsrequest.AWSResponse(self.endpoint_url, status, {}, None)
            kwargs: dict[str, Any] = {"response": (http, response), "caught_exception": None}
        else:
            kwargs = {"response": None, "caught_exception": error}
        _, delay = self.client.meta.events.emit_until_response(
            f"needs-retry.{self.service_id}.{self.operation_name}",
            endpoint=self.client._endpoint,
            operation=self.operation_model,
            attempts=attempts,
            request_dict={"context": call},
            **kwargs,
        )
        if delay is None and isinstance(error, ServiceError):
            # The handler noted MaxAttemptsReached in e.response: botocore's message then says so.
            botocore.exceptions.ClientError.__init__(error, error.response, error.operation_name)
        return None if delay is None else float(delay)

    # -- transport ---------------------------------------------------------------------------------

    def urlopen(self, method: str, url: str, body: bytes, headers: Mapping[str, str], timeout: Any) -> Any:
        """Send with botocore's own urllib3 pools (TLS, client certificate, proxies and their settings, socket
        options, pool size as botocore configures them); the response's body is not read."""
        from urllib3.util.retry import Retry

        session = self._http_session
        proxy_url = session._proxy_config.proxy_url_for(url)
        manager = session._get_connection_manager(url, proxy_url)
        pool = manager.connection_from_url(url)
        session._setup_ssl_cert(pool, url, session._verify)
        return pool.urlopen(
            method=method,
            url=session._get_request_target(url, proxy_url),
            body=body,
            # The signed Host: http.client would take "host:80" from an absolute-form target.
            headers={"Host": self.host_header, **headers},
            retries=Retry(False),
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            timeout=timeout,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS to the endpoint as botocore verifies it (None for http://)."""
        if self.scheme != "https":
            return None
        session = self._http_session
        context: ssl.SSLContext = create_urllib3_context()
        if session._verify:
            context.verify_mode = ssl.CERT_REQUIRED
            context.check_hostname = True
            context.load_verify_locations(cafile=get_cert_path(session._verify))
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if session._cert_file:
            context.load_cert_chain(session._cert_file, session._key_file)
        return context

    def proxy_for(self, url: str) -> Proxy | None:
        session = self._http_session
        proxy_url = session._proxy_config.proxy_url_for(url)
        if not proxy_url:
            return None
        settings = session._proxy_config.settings or {}
        return Proxy(
            url=proxy_url,
            headers=session._proxy_config.proxy_headers_for(proxy_url),
            ssl_context=session._setup_proxy_ssl_context(proxy_url),
            use_forwarding_for_https=bool(settings.get("proxy_use_forwarding_for_https")),
        )

    @property
    def socket_options(self) -> list[tuple[int, int, int]]:
        return list(self._http_session._socket_options)

    def after_fork(self) -> None:
        """A lock held by another thread at fork stays held in the child: make the credentials' anew."""
        credentials = self._credentials()
        if credentials is not None and hasattr(credentials, "_refresh_lock"):
            credentials._refresh_lock = threading.Lock()
        self._crt_signer = None


def full_jitter(attempt: int, base: float, cap: float) -> float:
    """Full-jitter exponential backoff before attempt ``attempt + 1`` (the explicit backoff override)."""
    return random.uniform(0, min(cap, base * (2 ** (attempt - 1))))


def _without_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
