"""The implementations measured: evstream's (C, pure Python, drop-in) and its peers, imported lazily.

A peer that is missing or broken becomes a :class:`Skip` with the reason: shown, never dropped silently.
"""

from __future__ import annotations

import importlib
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, NamedTuple

from .workloads import NormMessage, Stream, normalize

__all__ = [
    "Impl",
    "Skip",
    "crc_impls",
    "decode_impls",
    "decode_input",
    "encode_args",
    "encode_impls",
    "try_import",
]


class Skip(NamedTuple):
    """An implementation (or case) that could not run here, and why: shown, never silently dropped."""

    group: str
    impl: str
    reason: str


@dataclass(frozen=True)
class Impl:
    """One implementation of one operation. ``primary`` marks the evstream build the ratios refer to."""

    name: str
    func: Callable[..., Any]
    primary: bool = False
    evstream: bool = False
    # Decoders: message object -> NormMessage; unused for CRC and encode.
    norm: Callable[[Any], NormMessage] | None = None
    extra_args: tuple[Any, ...] = ()


_INSTALL_HINT = {
    "isal.isal_zlib": "pip install isal",
    "zlib_ng.zlib_ng": "pip install zlib-ng",
    "awscrt.checksums": "pip install awscrt",
    "botocore.eventstream": "pip install botocore",
    "smithy_aws_event_stream.events": (
        "pip install smithy-aws-event-stream (Python >= 3.12)"
        if sys.version_info >= (3, 12)
        else f"smithy-aws-event-stream needs Python >= 3.12 (this is {platform.python_version()})"
    ),
    "evstream.botocore": "evstream's botocore drop-in is not in this build",
}


def try_import(name: str) -> ModuleType | str:
    """The module, or why it cannot be imported here."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        return f"not installed ({exc.name or name}): {_INSTALL_HINT.get(name, 'pip install ' + name)}"
    except Exception as exc:  # a peer that is installed but broken is still only a peer
        return f"failed to import: {type(exc).__name__}: {exc}"


def _codecs() -> tuple[list[tuple[str, ModuleType, bool]], list[Skip]]:
    """(label, module, primary) for evstream's implementations: the one ``import evstream`` chose is the
    primary; the pure-Python twin is measured too when the C build is the primary."""
    import evstream

    skips: list[Skip] = []
    py = importlib.import_module("evstream._codec_py")
    if evstream.IMPLEMENTATION == "c":
        c = importlib.import_module("evstream._codec")
        return [("evstream (C)", c, True), ("evstream (pure Python)", py, False)], skips
    why = "EVSTREAM_NO_EXTENSIONS=1" if evstream.NO_EXTENSIONS else "the C extension is not built here"
    skips.append(Skip("*", "evstream (C)", why))
    return [("evstream (pure Python)", py, True)], skips


def crc_impls(tiers: bool = False) -> tuple[list[Impl], list[Skip]]:
    """CRC-32: evstream (and each CPU tier when ``tiers``), binascii, isal, zlib-ng, awscrt."""
    import binascii

    import evstream

    impls = [Impl(f"evstream ({evstream.CRC32_BACKEND})", evstream.crc32, primary=True, evstream=True)]
    skips: list[Skip] = []
    if tiers:
        # Forced tiers go through the _crc32_with test hook, whose tier lookup adds ~100-200 ns a call:
        # compare tiers with each other at 4 KiB and up, and the default kernel with the peers.
        if evstream.IMPLEMENTATION == "c":
            codec = importlib.import_module("evstream._codec")
            for tier in codec._crc32_available_tiers():
                if tier != evstream.CRC32_BACKEND:
                    name = f"evstream tier {tier} (hook)"
                    impls.append(Impl(name, codec._crc32_with, evstream=True, extra_args=(tier,)))
        else:
            skips.append(Skip("crc32", "evstream tiers", "pure-Python build: one tier (zlib)"))
    impls.append(Impl("binascii", binascii.crc32))
    for label, module, attr in (
        ("isal", "isal.isal_zlib", "crc32"),
        ("zlib-ng", "zlib_ng.zlib_ng", "crc32"),
        ("awscrt", "awscrt.checksums", "crc32"),
    ):
        mod = try_import(module)
        if isinstance(mod, str):
            skips.append(Skip("crc32", label, mod))
        else:
            impls.append(Impl(label, getattr(mod, attr)))
    return impls, skips


def _evstream_decoder(codec: ModuleType) -> Callable[[Sequence[bytes]], list[Any]]:
    decoder_cls = codec.Decoder

    def run(chunks: Sequence[bytes]) -> list[Any]:
        decoder = decoder_cls()
        out: list[Any] = []
        for chunk in chunks:
            out += decoder.feed(chunk)
        decoder.close()
        return out

    return run


def _buffer_decoder(buffer_cls: Any) -> Callable[[Sequence[bytes]], list[Any]]:
    # botocore's EventStreamBuffer API (and evstream's drop-in of it): add_data, then iterate.
    def run(chunks: Sequence[bytes]) -> list[Any]:
        buf = buffer_cls()
        out: list[Any] = []
        for chunk in chunks:
            buf.add_data(chunk)
            out.extend(buf)
        return out

    return run


def _smithy_decoder(events: ModuleType) -> Callable[[Sequence[bytes]], list[Any]]:
    import io

    event_cls = events.Event

    # smithy's decoder pulls from a reader; the chunks are joined outside the timed region (see
    # decode_input), so this measures its parsing only, which favours it.
    def run(joined: Sequence[bytes]) -> list[Any]:
        source = io.BytesIO(joined[0])
        out: list[Any] = []
        while (event := event_cls.decode(source)) is not None:
            out.append(event)
        return out

    return run


def _norm_msg(m: Any) -> NormMessage:
    return normalize(m.headers, m.payload)


def _norm_smithy(e: Any) -> NormMessage:
    return normalize(e.message.headers, e.message.payload)


def decode_impls() -> tuple[list[Impl], list[Skip]]:
    """Decoders: evstream C and pure Python, evstream's botocore drop-in, botocore, smithy."""
    codecs, skips = _codecs()
    impls = [
        Impl(name, _evstream_decoder(m), primary=p, evstream=True, norm=_norm_msg) for name, m, p in codecs
    ]
    dropin = try_import("evstream.botocore")
    if isinstance(dropin, str):
        skips.append(Skip("decode", "evstream drop-in", dropin))
    else:
        impls.append(
            Impl("evstream drop-in", _buffer_decoder(dropin.EventStreamBuffer), evstream=True, norm=_norm_msg)
        )
    boto = try_import("botocore.eventstream")
    if isinstance(boto, str):
        skips.append(Skip("decode", "botocore", boto))
    else:
        impls.append(Impl("botocore", _buffer_decoder(boto.EventStreamBuffer), norm=_norm_msg))
    smithy = try_import("smithy_aws_event_stream.events")
    if isinstance(smithy, str):
        skips.append(Skip("decode", "smithy", smithy))
    else:
        impls.append(Impl("smithy", _smithy_decoder(smithy), norm=_norm_smithy))
    return impls, skips


def decode_input(impl: Impl, stream: Stream) -> Sequence[bytes]:
    """The argument ``impl.func`` is timed on: the stream's chunks (joined once for pull-style smithy)."""
    return [b"".join(stream.chunks)] if impl.name == "smithy" else stream.chunks


def _smithy_encoder(events: ModuleType) -> Callable[[dict[str, Any], bytes], bytes]:
    message_cls = events.EventMessage

    def run(headers: dict[str, Any], payload: bytes) -> bytes:
        return bytes(message_cls(headers=headers, payload=payload).encode())

    return run


def _smithy_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """evstream's typed header values in smithy's vocabulary (Byte/Short/Long, datetime)."""
    events = importlib.import_module("smithy_aws_event_stream.events")
    from ..headers import Int8, Int16, Int64, Timestamp

    out: dict[str, Any] = {}
    for name, value in headers.items():
        if isinstance(value, Timestamp):
            out[name] = value.to_datetime()
        elif isinstance(value, Int8):
            out[name] = events.Byte(value)
        elif isinstance(value, Int16):
            out[name] = events.Short(value)
        elif isinstance(value, Int64):
            out[name] = events.Long(value)
        else:
            out[name] = value
    return out


def encode_impls() -> tuple[list[Impl], list[Skip]]:
    """Encoders: evstream C and pure Python, smithy (botocore has no encoder)."""
    codecs, skips = _codecs()
    impls = [Impl(name, m.encode, primary=p, evstream=True) for name, m, p in codecs]
    smithy = try_import("smithy_aws_event_stream.events")
    if isinstance(smithy, str):
        skips.append(Skip("encode", "smithy", smithy))
    else:
        impls.append(Impl("smithy", _smithy_encoder(smithy)))
    return impls, skips


def encode_args(impl: Impl, headers: dict[str, Any], payload: bytes) -> tuple[Any, ...]:
    return (_smithy_headers(headers), payload) if impl.name == "smithy" else (headers, payload)
