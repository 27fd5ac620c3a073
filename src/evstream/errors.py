"""The one exception tree shared by the C and pure-Python implementations.

Every message is built here, from the values the decoder or encoder passes in,
so both implementations raise the same class with the same words.
"""

from __future__ import annotations

from ._wire import MAX_VALUE_LENGTH, TYPE_NAMES

__all__ = [
    "ChecksumMismatch",
    "DuplicateHeader",
    "EventStreamError",
    "InvalidFrameLength",
    "InvalidHeader",
    "InvalidHeaderName",
    "InvalidHeaderValue",
    "InvalidHeadersLength",
    "InvalidLength",
    "InvalidPayloadLength",
    "MessageChecksumMismatch",
    "PreludeChecksumMismatch",
    "TruncatedStream",
    "UnknownHeaderType",
]


class EventStreamError(ValueError):
    """Base class of every error raised for bytes that are not a valid event stream."""


class ChecksumMismatch(EventStreamError):
    """A CRC-32 in the frame does not match the bytes it covers."""

    part = ""

    def __init__(self, expected: int, calculated: int) -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(
            f"{self.part} checksum mismatch: expected 0x{expected:08x}, calculated 0x{calculated:08x}"
        )

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.expected, self.calculated)


class PreludeChecksumMismatch(ChecksumMismatch):
    """The CRC of the 8-byte prelude is wrong: none of the lengths can be trusted."""

    part = "Prelude"


class MessageChecksumMismatch(ChecksumMismatch):
    """The CRC of the whole message is wrong: headers or payload were corrupted."""

    part = "Message"


class InvalidLength(EventStreamError):
    """A length in the prelude is impossible or over the configured limit."""


class InvalidFrameLength(InvalidLength):
    """total_length is under the 16-byte minimum, or the headers do not fit in the frame."""

    def __init__(self, total_length: int, headers_length: int) -> None:
        self.total_length = total_length
        self.headers_length = headers_length
        if total_length < 16:
            reason = "the minimum frame is 16 bytes"
        else:
            reason = f"the headers do not fit in {total_length - 16} bytes"
        super().__init__(
            f"Invalid frame: total length {total_length}, headers length {headers_length} ({reason})"
        )

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.total_length, self.headers_length)


class _OverLimit(InvalidLength):
    what = ""

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(f"{self.what} length of {length} exceeded the maximum of {limit}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.length, self.limit)


class InvalidHeadersLength(_OverLimit):
    """headers_length is over max_headers_length."""

    what = "Headers"


class InvalidPayloadLength(_OverLimit):
    """The payload length is over max_payload_length."""

    what = "Payload"


class InvalidHeader(EventStreamError):
    """A header that cannot be decoded or encoded."""


class DuplicateHeader(InvalidHeader):
    """The same header name appears twice in one message."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Duplicate header present: {name!r}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.name,)


class UnknownHeaderType(InvalidHeader):
    """A header type byte other than 0-9."""

    def __init__(self, name: str, type_byte: int) -> None:
        self.name = name
        self.type_byte = type_byte
        super().__init__(f"Unknown header type {type_byte} for header {name!r}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.name, self.type_byte)


class InvalidHeaderName(InvalidHeader):
    """A header name that is empty, too long, truncated, not a str or not UTF-8."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"Invalid header name: {detail}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.detail,)

    @classmethod
    def truncated(cls, needed: int, left: int) -> InvalidHeaderName:
        return cls(f"name needs {needed} bytes, {left} left in the headers block")


class InvalidHeaderValue(InvalidHeader):
    """A header value that is truncated, not UTF-8, too long, out of range or of an unsupported type."""

    def __init__(self, detail: str, name: str | None = None) -> None:
        self.detail = detail
        self.name = name
        if name is None:
            super().__init__(f"Invalid header value: {detail}")
        else:
            super().__init__(f"Invalid value for header {name!r}: {detail}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.detail, self.name)

    @classmethod
    def truncated(cls, name: str, type_byte: int | None, needed: int, left: int) -> InvalidHeaderValue:
        what = "type byte" if type_byte is None else f"{TYPE_NAMES[type_byte]} value"
        return cls(f"{what} needs {needed} bytes, {left} left in the headers block", name)

    @classmethod
    def too_long(cls, name: str, type_byte: int, length: int) -> InvalidHeaderValue:
        return cls(
            f"{TYPE_NAMES[type_byte]} of {length} bytes exceeds the maximum of {MAX_VALUE_LENGTH}", name
        )


class TruncatedStream(EventStreamError):
    """The stream ended inside a frame."""

    def __init__(self, buffered: int, expected: int | None = None) -> None:
        self.buffered = buffered
        self.expected = expected
        if expected is None:
            detail = f"{buffered} bytes of an incomplete prelude"
        else:
            detail = f"{buffered} of {expected} bytes of a frame"
        super().__init__(f"Stream ended inside a frame: {detail} buffered")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.buffered, self.expected)
