"""AWS Signature Version 4 verification, written from the specification with hashlib only.

It checks the client's signer (awscrt) against an independent implementation, and it is what keeps an
endpoint exposed on a network closed to anyone without the key. The inputs are what any HTTP server
has, so the HTTP/1.1 and HTTP/2 servers share it: method, request target, headers and the SHA-256 of
the body the server actually received.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import time
import urllib.parse
from collections.abc import Mapping

__all__ = [
    "ACCESS_KEY_ENV",
    "ALGORITHM",
    "SECRET_KEY_ENV",
    "credentials_env",
    "load_credentials",
    "payload_hash",
    "verify_sigv4",
]

ALGORITHM = "AWS4-HMAC-SHA256"
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+")


def payload_hash(body: bytes) -> str:
    """The hex SHA-256 of a body, as signed."""
    return hashlib.sha256(body).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _authorization(value: str) -> dict[str, str] | None:
    if not value.startswith(ALGORITHM + " "):
        return None
    fields = {}
    for item in value[len(ALGORITHM) + 1 :].split(","):
        name, equals, field = item.strip().partition("=")
        if not equals:
            return {}
        fields[name] = field
    return fields


def _canonical_target(target: str) -> tuple[str, str]:
    split = urllib.parse.urlsplit(target)
    # Services other than S3 encode the already-encoded path once more.
    canonical_uri = urllib.parse.quote(split.path or "/", safe="/~")
    query = sorted(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in query
    )
    return canonical_uri, canonical_query


def verify_sigv4(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body_sha256: str,
    credentials: Mapping[str, str],
    *,
    service: str,
    region: str | None = None,
    max_skew: float = 300.0,
) -> str | None:
    """Check a request's ``Authorization`` header; returns what is wrong, or None when it is valid.

    ``headers`` has lower-case names; ``body_sha256`` is the hex SHA-256 of the body as received (the
    client's ``x-amz-content-sha256``, when sent, must equal it: a signature never covers a body the
    server did not hash). The credential scope must name ``service``, ``region`` (any well-formed
    region when None) and ``aws4_request``; ``credentials`` maps access key ids to secret keys.
    """
    fields = _authorization(headers.get("authorization", ""))
    if fields is None:
        return "Missing Authentication Token"
    try:
        access_key, date, scope_region, scope_service, terminator = fields["Credential"].split("/")
        signed_headers = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        return "Malformed Authorization header"
    if access_key not in credentials:
        return "The security token included in the request is invalid"
    if terminator != "aws4_request" or scope_service != service:
        return f"Credential should be scoped to a valid service ({service}) and end with aws4_request"
    if not _REGION.fullmatch(scope_region) or (region is not None and scope_region != region):
        return f"Credential should be scoped to a valid region, not {scope_region!r}"
    amz_date = headers.get("x-amz-date", "")
    try:
        stamp = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "Missing or malformed X-Amz-Date"
    if abs(stamp.timestamp() - time.time()) > max_skew:
        return "Signature expired"
    if "host" not in signed_headers or not amz_date.startswith(date):
        return "Host must be signed and the scope date must match X-Amz-Date"
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != body_sha256:
        return "The provided x-amz-content-sha256 header does not match what was computed"
    try:
        canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed_headers)
    except KeyError as exc:
        return f"Signed header {exc} is missing"
    canonical_uri, canonical_query = _canonical_target(target)
    canonical = "\n".join(
        [method, canonical_uri, canonical_query, canonical_headers, ";".join(signed_headers), body_sha256]
    )
    scope = f"{date}/{scope_region}/{scope_service}/{terminator}"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + credentials[access_key]).encode(), date)
    for part in (scope_region, scope_service, terminator):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "The request signature we calculated does not match the signature you provided"
    return None


ACCESS_KEY_ENV = "EVSTREAM_ENDPOINT_ACCESS_KEY_ID"
SECRET_KEY_ENV = "EVSTREAM_ENDPOINT_SECRET_ACCESS_KEY"


def load_credentials(
    access_key: str | None = None,
    secret_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str] | None:
    """The endpoint's keys ({access key id: secret}), or None for an endpoint that checks no signature.

    The access key id comes from ``access_key`` or ``$EVSTREAM_ENDPOINT_ACCESS_KEY_ID``; the secret from
    the first line of ``secret_file`` or ``$EVSTREAM_ENDPOINT_SECRET_ACCESS_KEY``, never from a command
    line (every user of the machine can read one in ``ps``). Raises ValueError when only one half is set.
    """
    env = os.environ if environ is None else environ
    access_key = access_key or env.get(ACCESS_KEY_ENV) or None
    if secret_file:
        with open(secret_file, encoding="utf-8") as handle:
            secret: str | None = handle.readline().strip()
    else:
        secret = env.get(SECRET_KEY_ENV)
    if not access_key and not secret:
        return None
    if not access_key or not secret:
        raise ValueError(
            f"an access key id ({ACCESS_KEY_ENV}) and a secret key ({SECRET_KEY_ENV} or a secret key "
            "file) go together"
        )
    return {access_key: secret}


def credentials_env(access_key: str, secret: str) -> dict[str, str]:
    """The environment that gives a child ``python -m evstream serve`` these keys."""
    return {ACCESS_KEY_ENV: access_key, SECRET_KEY_ENV: secret}
