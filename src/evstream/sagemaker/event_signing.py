"""SigV4 event signing: the client signs each input event, the local endpoint verifies them.

An input event stream (SageMaker ``InvokeEndpointWithBidirectionalStream``, Bedrock
``InvokeModelWithBidirectionalStream``, Transcribe streaming) is signed twice over: the HTTP request with
SigV4 and ``X-Amz-Content-SHA256: STREAMING-AWS4-HMAC-SHA256-EVENTS``, then every event. Each event is
sent as the payload of an *envelope* message with two headers, ``:date`` (a timestamp) and
``:chunk-signature`` (32 raw bytes). The signature covers::

    AWS4-HMAC-SHA256-PAYLOAD
    <:date as YYYYMMDDTHHMMSSZ>
    <date>/<region>/<service>/aws4_request
    <hex signature of the previous event; the request's signature for the first one>
    <hex SHA-256 of the encoded :date header>
    <hex SHA-256 of the envelope's payload: the encoded event>

keyed with the request's SigV4 signing key for the event's date. An envelope with an empty payload ends
the input. Written from that description with hashlib and hmac only, so the client and the endpoint share
one implementation, and the tests check it against AWS's published vectors and the official SDK's signer.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

from .. import encode
from ..headers import Timestamp

__all__ = [
    "EVENT_STREAM_PAYLOAD",
    "EventSignatureError",
    "EventSigner",
    "EventVerifier",
    "date_header",
    "event_signature",
    "signing_key",
    "string_to_sign",
]

EVENT_STREAM_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-EVENTS"  # the request's X-Amz-Content-SHA256
ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
_DATE_PREFIX = b"\x05:date\x08"  # name length, name, wire type 8 (timestamp)


class EventSignatureError(ValueError):
    """An input event whose envelope or signature does not verify."""


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key for one day (``date`` is YYYYMMDD)."""
    key = hmac.new(("AWS4" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def date_header(milliseconds: int) -> bytes:
    """The ``:date`` header as encoded in the envelope (its SHA-256 is signed)."""
    return _DATE_PREFIX + struct.pack(">q", milliseconds)


def _stamp(milliseconds: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(milliseconds // 1000))


def string_to_sign(milliseconds: int, scope: str, prior_signature: str, payload: bytes) -> str:
    """What an event's signature covers (``scope``: date/region/service/aws4_request)."""
    return "\n".join(
        (
            ALGORITHM,
            _stamp(milliseconds),
            scope,
            prior_signature,
            hashlib.sha256(date_header(milliseconds)).hexdigest(),
            hashlib.sha256(payload).hexdigest(),
        )
    )


def event_signature(key: bytes, milliseconds: int, scope: str, prior_signature: str, payload: bytes) -> bytes:
    """The raw 32-byte signature of one envelope payload."""
    text = string_to_sign(milliseconds, scope, prior_signature, payload)
    return hmac.digest(key, text.encode(), "sha256")


class _Chain:
    """The running state both ends keep: the key of the day and the previous signature."""

    def __init__(self, secret_key: str, region: str, service: str, seed_signature: str) -> None:
        self._secret_key = secret_key
        self._region = region
        self._service = service
        self.prior = seed_signature
        self._day = ""
        self._key = b""
        # sha256 states keyed for HMAC with the day's key (RFC 2104), copied for each event
        self._inner: Any = None
        self._outer: Any = None
        self._milliseconds = -1
        self.date: Timestamp = Timestamp(0)
        self._head = ""  # the string to sign up to the prior signature, for self._milliseconds
        self._date_hash = ""
        self.ended = False

    def sign(self, milliseconds: int, payload: bytes) -> bytes:
        if milliseconds != self._milliseconds:  # once a second when signing, once per event at most
            stamp = _stamp(milliseconds)
            day = stamp[:8]
            if day != self._day:  # streams can outlive midnight
                self._key = signing_key(self._secret_key, day, self._region, self._service)
                key = self._key.ljust(64, b"\0")
                self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
                self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
                self._day = day
            scope = f"{day}/{self._region}/{self._service}/aws4_request"
            self._head = f"{ALGORITHM}\n{stamp}\n{scope}\n"
            self._date_hash = hashlib.sha256(date_header(milliseconds)).hexdigest()
            self._milliseconds = milliseconds
            self.date = Timestamp(milliseconds)
        text = f"{self._head}{self.prior}\n{self._date_hash}\n{hashlib.sha256(payload).hexdigest()}"
        inner = self._inner.copy()
        inner.update(text.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()  # type: ignore[no-any-return]


class EventSigner:
    """Signs the events of one request body, each chained to the one before.

    Not thread-safe on purpose: the chain's order must be the order on the wire, so the caller signs and
    writes under one lock.
    """

    def __init__(
        self,
        secret_key: str,
        region: str,
        service: str,
        seed_signature: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._chain = _Chain(secret_key, region, service, seed_signature)
        self._clock = clock

    @property
    def prior_signature(self) -> str:
        return self._chain.prior

    def sign(self, message: bytes) -> bytes:
        """The envelope frame carrying one encoded event message."""
        if self._chain.ended:
            raise RuntimeError("the input stream has ended; nothing more can be signed")
        return self._envelope(message)

    def end(self) -> bytes:
        """The signed empty envelope that ends the input."""
        if self._chain.ended:
            raise RuntimeError("the input stream has already ended")
        frame = self._envelope(b"")
        self._chain.ended = True
        return frame

    def _envelope(self, payload: bytes) -> bytes:
        # Whole seconds: the signed text carries seconds, and AWS's signers truncate :date to match.
        chain = self._chain
        signature = chain.sign(int(self._clock()) * 1000, payload)
        chain.prior = signature.hex()
        return encode({":date": chain.date, ":chunk-signature": signature}, payload)


class EventVerifier:
    """Checks the envelopes of one request body, as the service does.

    ``verify`` takes a decoded envelope and returns the event it carries (``b""`` for the end of the
    input), or raises :class:`EventSignatureError` saying what is wrong.
    """

    def __init__(
        self,
        secret_key: str,
        region: str,
        service: str,
        seed_signature: str,
        *,
        max_skew: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._chain = _Chain(secret_key, region, service, seed_signature)
        self._max_skew = max_skew
        self._clock = clock
        self.verified = 0  # envelopes verified, the final empty one included

    @property
    def ended(self) -> bool:
        return self._chain.ended

    def verify(self, headers: Mapping[str, Any], payload: bytes) -> bytes:
        if self._chain.ended:
            raise EventSignatureError("An event was sent after the signed end of the input stream")
        date = headers.get(":date")
        signature = headers.get(":chunk-signature")
        if len(headers) != 2 or not isinstance(date, Timestamp) or not isinstance(signature, bytes):
            raise EventSignatureError(
                "Each input event must be wrapped in a signed envelope with exactly the headers "
                ":date (timestamp) and :chunk-signature (bytes)"
            )
        if abs(int(date) / 1000 - self._clock()) > self._max_skew:
            when = datetime.datetime.fromtimestamp(int(date) / 1000, datetime.timezone.utc)
            raise EventSignatureError(
                f"Signature expired: the event's :date {when:%Y%m%dT%H%M%SZ} is too skewed"
            )
        expected = self._chain.sign(int(date), payload)
        if not hmac.compare_digest(expected, signature):
            raise EventSignatureError(
                "The event signature we calculated does not match the signature you provided"
            )
        self._chain.prior = expected.hex()
        self.verified += 1
        if not payload:
            self._chain.ended = True
        return payload
