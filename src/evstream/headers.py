"""Header values that remember their wire type.

A decoded message re-encodes to the same bytes: str, bytes, bool and int (int32) map to one wire type
each; the other wire types decode to the int subclasses below or to uuid.UUID, and encode back to the
type they came from.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Union

from ._wire import BYTE, LONG, SHORT, TIMESTAMP
from .errors import InvalidHeaderValue

__all__ = [
    "HeaderValue",
    "Int8",
    "Int16",
    "Int64",
    "Timestamp",
]


class _SizedInt(int):
    """An int that encodes as a wire integer of fixed width."""

    __slots__ = ()
    wire_type = -1
    bits = 0

    def __new__(cls, value: int = 0):  # type: ignore[no-untyped-def]
        self = super().__new__(cls, value)
        limit = 1 << (cls.bits - 1)
        if not -limit <= self < limit:
            raise InvalidHeaderValue(f"{cls.__name__} value {int(self)} is outside [{-limit}, {limit - 1}]")
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (int(self),)


class Int8(_SizedInt):
    """Wire type 2 (byte)."""

    __slots__ = ()
    wire_type = BYTE
    bits = 8


class Int16(_SizedInt):
    """Wire type 3 (short)."""

    __slots__ = ()
    wire_type = SHORT
    bits = 16


class Int64(_SizedInt):
    """Wire type 5 (long)."""

    __slots__ = ()
    wire_type = LONG
    bits = 64


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class Timestamp(_SizedInt):
    """Wire type 8: milliseconds since the Unix epoch (what botocore gives as a plain int)."""

    __slots__ = ()
    wire_type = TIMESTAMP
    bits = 64

    @classmethod
    def from_datetime(cls, value: datetime.datetime) -> Timestamp:
        """Naive datetimes are taken as UTC; precision below a millisecond is dropped."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - _EPOCH
        return cls((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)

    def to_datetime(self) -> datetime.datetime:
        """An aware UTC datetime (raises OverflowError outside datetime's years 1-9999)."""
        return _EPOCH + datetime.timedelta(milliseconds=int(self))


_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def uuid_from_bytes(raw: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=raw)`` for 16 bytes, without its argument parsing (the decoders' hot path)."""
    value = object.__new__(uuid.UUID)
    object.__setattr__(value, "int", int.from_bytes(raw, "big"))
    object.__setattr__(value, "is_safe", _SAFE_UNKNOWN)
    return value


HeaderValue = Union[bool, int, str, bytes, Int8, Int16, Int64, Timestamp, uuid.UUID]
