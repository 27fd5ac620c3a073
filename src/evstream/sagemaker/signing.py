"""SigV4 signing: botocore finds the credentials, awscrt signs.

botocore's resolver is the chain boto3 uses (arguments, environment, shared config and profiles, SSO,
credential_process, container and instance roles), and its refreshable credentials renew themselves
before they expire, so a client that streams for days keeps signing. awscrt computes the signature in C
(about 20 us a request, a fraction of botocore's pure-Python signer).
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from typing import Any

from awscrt import auth as crt_auth
from awscrt import http as crt_http

from .errors import NoCredentialsError

__all__ = ["Signer"]


class Signer:
    """Adds Authorization, X-Amz-Date and X-Amz-Security-Token to a request's headers."""

    def __init__(self, credentials: Any, region: str, service: str) -> None:
        if credentials is None:
            raise NoCredentialsError("Unable to locate credentials (searched as boto3 does)")
        self._credentials = credentials
        self._region = region
        self._service = service
        self._frozen: Any = None
        self._provider: crt_auth.AwsCredentialsProvider | None = None

    def _current(self) -> tuple[Any, crt_auth.AwsCredentialsProvider]:
        frozen = self._credentials.get_frozen_credentials()  # refreshes when close to expiry
        provider = self._provider
        if frozen != self._frozen or provider is None:
            # A client is shared between threads: use the local pair, whoever wins the race to store it.
            provider = crt_auth.AwsCredentialsProvider.new_static(
                frozen.access_key, frozen.secret_key, frozen.token
            )
            self._provider, self._frozen = provider, frozen
        return frozen, provider

    def sign_request(
        self, request: crt_http.HttpRequest, signed_body_value: str, *, content_sha256_header: bool = False
    ) -> Any:
        """Sign an awscrt request in place; returns the frozen credentials it was signed with (a
        bidirectional stream's event signatures chain from them)."""
        frozen, provider = self._current()
        config = crt_auth.AwsSigningConfig(
            credentials_provider=provider,
            region=self._region,
            service=self._service,
            signed_body_value=signed_body_value,
            signed_body_header_type=(
                crt_auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256
                if content_sha256_header
                else crt_auth.AwsSignedBodyHeaderType.NONE
            ),
        )
        crt_auth.aws_sign_request(request, config).result()
        return frozen

    def sign(self, method: str, host: str, path: str, headers: MutableMapping[str, str], body: bytes) -> None:
        """Add the signature headers of an HTTP/1.1 request to ``headers``."""
        request = crt_http.HttpRequest(method, path, crt_http.HttpHeaders([("Host", host), *headers.items()]))
        self.sign_request(request, hashlib.sha256(body).hexdigest())
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value
