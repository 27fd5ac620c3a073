"""The event stream wire format in numbers, and the decoders' default limits: one place for all of evstream.

The C codec reads the same values from ``_wire.pxd`` at compile time; tests/test_wire.py checks that the
two files, both codecs and the botocore adapter agree.

A frame (all integers big-endian)::

    prelude: total length (4) | headers length (4) | prelude CRC-32 (4)
    headers: name length (1) | name (UTF-8) | type (1) | value ...     repeated, ``headers length`` bytes
    payload: the rest, up to the message CRC
    message CRC-32 (4): over every byte before it, prelude included
"""

from __future__ import annotations

__all__ = [
    "BOOL_FALSE",
    "BOOL_TRUE",
    "BYTE",
    "BYTE_ARRAY",
    "DEFAULT_MAX_HEADERS_LENGTH",
    "DEFAULT_MAX_PAYLOAD_LENGTH",
    "INTEGER",
    "LONG",
    "MAX_FRAME_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_VALUE_LENGTH",
    "MESSAGE_CRC_LENGTH",
    "MIN_FRAME_LENGTH",
    "PRELUDE_LENGTH",
    "SHORT",
    "STRING",
    "TIMESTAMP",
    "TYPE_NAMES",
    "UUID",
]

PRELUDE_LENGTH = 12
MESSAGE_CRC_LENGTH = 4
MIN_FRAME_LENGTH = PRELUDE_LENGTH + MESSAGE_CRC_LENGTH  # no headers, no payload
MAX_FRAME_LENGTH = 0xFFFFFFFF  # what the 32-bit total length can state
MAX_NAME_LENGTH = 255  # one length byte
MAX_VALUE_LENGTH = 32767  # string and byte_array values, as aws-c-event-stream and smithy enforce

# What a decoder accepts unless told otherwise: botocore's limits (24 MiB payloads since botocore 1.36.15).
DEFAULT_MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
DEFAULT_MAX_HEADERS_LENGTH = 128 * 1024

# Header value types: the type byte on the wire.
BOOL_TRUE = 0
BOOL_FALSE = 1
BYTE = 2
SHORT = 3
INTEGER = 4
LONG = 5
BYTE_ARRAY = 6
STRING = 7
TIMESTAMP = 8
UUID = 9

# Type byte -> the name the AWS specification gives it (used in error messages).
TYPE_NAMES = (
    "bool_true",
    "bool_false",
    "byte",
    "short",
    "integer",
    "long",
    "byte_array",
    "string",
    "timestamp",
    "uuid",
)
