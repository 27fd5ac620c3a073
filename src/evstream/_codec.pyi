"""Types of the compiled codec, ``_codec.pyx``.

The public names are those of the pure-Python twin, ``_codec_py.py`` (its ``__all__``), with the same
signatures; the private ``_crc32_*`` helpers exist only in the compiled module (tests and benchmarks
use them to run every CRC-32 kernel). ``tests/test_packaging.py`` keeps this file in step with both.
"""

import sys
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, final

from typing_extensions import disjoint_base

from .errors import EventStreamError

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
else:
    from typing_extensions import Buffer

CRC32_BACKEND: str
DEFAULT_MAX_HEADERS_LENGTH: int
DEFAULT_MAX_PAYLOAD_LENGTH: int

def crc32(data: Buffer, value: int = 0, /) -> int:
    """IEEE CRC-32 of any bytes-like object, continuing from ``value`` (same as ``zlib.crc32``)."""

@disjoint_base  # a C type: subclasses cannot also derive from another C type
class Message:
    """One decoded frame: ``headers`` (a dict in wire order) and ``payload`` (bytes).

    A decoder also records the frame's headers-block length and message CRC (0 for a message built by
    hand), for adapters that show the frame layout.
    """

    headers: dict[str, Any]
    payload: bytes
    __hash__: ClassVar[None]  # type: ignore[assignment]

    def __init__(self, headers: dict[str, Any], payload: bytes) -> None: ...
    def __eq__(self, other: object, /) -> bool: ...
    @property
    def _headers_length(self) -> int: ...
    @property
    def _crc(self) -> int: ...

@final
class Decoder:
    """Incremental decoder: feed chunks of any size, get every message they complete."""

    def __init__(
        self,
        max_payload_length: int = ...,
        max_headers_length: int = ...,
        *,
        message_type: type[Message] = ...,
        typed_values: bool = True,
    ) -> None: ...
    @property
    def max_payload_length(self) -> int: ...
    @property
    def max_headers_length(self) -> int: ...
    @property
    def message_type(self) -> type[Message]: ...
    @property
    def typed_values(self) -> bool: ...
    @property
    def error(self) -> EventStreamError | None:
        """The error this decoder failed with (raised again by every call), or None."""

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held (0 on a frame boundary)."""

    def feed(self, data: Buffer) -> list[Message]:
        """Every message completed by ``data`` (any bytes-like object)."""

    def _http_chunks(
        self,
        data: Buffer,
        pos: int,
        events: list[Any],
        event_type: str,
        outer: Any,
        inner: Any,
        decode: Callable[[bytes], Any] | None,
        max_chunk: int,
        limit: int,
    ) -> int:
        """Append the data events of the whole HTTP/1.1 chunks in ``data`` from ``pos``; return where
        they end."""

    def close(self) -> None:
        """Raise ``TruncatedStream`` if part of a frame is buffered (or the error already raised)."""

def decode(data: Buffer, **limits: Any) -> list[Message]:
    """Every message of a whole stream; an incomplete tail raises ``TruncatedStream``."""

def encode(headers: Mapping[str, Any], payload: Buffer = b"") -> bytes:
    """One frame with these headers (in iteration order) and this payload."""

# Compiled module only.
def _crc32_tiers() -> list[str]:
    """Every kernel this build knows, slowest first."""

def _crc32_available_tiers() -> list[str]:
    """The kernels this CPU can run, slowest first."""

def _crc32_with(tier: str, data: Buffer, value: int = 0) -> int:
    """CRC-32 through one named kernel; ValueError for an unknown or unavailable tier."""
