"""The endpoint's in-stream faults and the error each must give, one table for the sync and asyncio clients."""

from __future__ import annotations

import pytest

import evstream

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
import evstream.sagemaker as sm

# (fault, error): the endpoint sends three events, then the fault.
FAULTS: list[tuple[str, type[Exception]]] = [
    ("truncate", sm.IncompleteStream),  # the connection closes inside a frame
    ("disconnect", sm.IncompleteStream),  # ... between frames, before the end of the chunked body
    ("reset", sm.IncompleteStream),  # ... with a TCP reset
    ("garbage", evstream.EventStreamError),  # bytes that are not a frame
    ("corrupt", evstream.MessageChecksumMismatch),
    ("huge-length", evstream.InvalidPayloadLength),  # refused from the prelude, before any allocation
    ("stall", sm.EventTimeout),  # nothing more within event_timeout
]
