"""evstream: a fast, exact codec for the AWS event stream format (application/vnd.amazon.eventstream).

The C extension is used unless ``EVSTREAM_NO_EXTENSIONS=1`` is set or this interpreter has no build of
it; ``IMPLEMENTATION`` says which one was loaded ("c" or "python"), never silently.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import (
    ChecksumMismatch,
    DuplicateHeader,
    EventStreamError,
    InvalidFrameLength,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHeadersLength,
    InvalidHeaderValue,
    InvalidLength,
    InvalidPayloadLength,
    MessageChecksumMismatch,
    PreludeChecksumMismatch,
    TruncatedStream,
    UnknownHeaderType,
)
from .headers import HeaderValue, Int8, Int16, Int64, Timestamp

__version__ = "0.1.0"


def _env_flag(name: str) -> bool:
    # Strict: "0" and "" mean off (bool("0") is True, a mistake several projects carry).
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={value!r}: expected 1/0, true/false, yes/no or on/off")


NO_EXTENSIONS = _env_flag("EVSTREAM_NO_EXTENSIONS")

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._codec_py import (
        CRC32_BACKEND,
        DEFAULT_MAX_HEADERS_LENGTH,
        DEFAULT_MAX_PAYLOAD_LENGTH,
        Decoder,
        Message,
        crc32,
        decode,
        encode,
    )

    IMPLEMENTATION = "python"
else:
    try:
        from ._codec import (
            CRC32_BACKEND,
            DEFAULT_MAX_HEADERS_LENGTH,
            DEFAULT_MAX_PAYLOAD_LENGTH,
            Decoder,
            Message,
            crc32,
            decode,
            encode,
        )

        IMPLEMENTATION = "c"
    except ModuleNotFoundError as exc:
        # Only a missing module (a pure-Python wheel, PyPy) selects the twin; a build that exists but
        # fails to load is an error worth seeing.
        if exc.name != f"{__name__}._codec":
            raise
        from ._codec_py import (
            CRC32_BACKEND,
            DEFAULT_MAX_HEADERS_LENGTH,
            DEFAULT_MAX_PAYLOAD_LENGTH,
            Decoder,
            Message,
            crc32,
            decode,
            encode,
        )

        IMPLEMENTATION = "python"

__all__ = [
    "CRC32_BACKEND",
    "DEFAULT_MAX_HEADERS_LENGTH",
    "DEFAULT_MAX_PAYLOAD_LENGTH",
    "IMPLEMENTATION",
    "ChecksumMismatch",
    "Decoder",
    "DuplicateHeader",
    "EventStreamError",
    "HeaderValue",
    "Int8",
    "Int16",
    "Int64",
    "InvalidFrameLength",
    "InvalidHeader",
    "InvalidHeaderName",
    "InvalidHeaderValue",
    "InvalidHeadersLength",
    "InvalidLength",
    "InvalidPayloadLength",
    "Message",
    "MessageChecksumMismatch",
    "PreludeChecksumMismatch",
    "Timestamp",
    "TruncatedStream",
    "UnknownHeaderType",
    "__version__",
    "crc32",
    "decode",
    "encode",
]
