"""Building frames by hand, valid or not, for the tests (independent of both codecs).

The builder is the benchmarks' own (``evstream.bench.frames``: struct and zlib only), so the tests and
the benchmarks judge the codecs with the same frames.
"""

from __future__ import annotations

from evstream.bench.frames import header, raw_frame, recrc, string_header, token_frame

__all__ = ["header", "raw_frame", "recrc", "string_header", "token_frame"]
