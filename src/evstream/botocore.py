"""Drop-in for botocore's (and aiobotocore's) event stream decoder.

    import evstream.botocore
    evstream.botocore.install()      # every botocore / aiobotocore event stream now decodes through evstream

``botocore.eventstream.EventStream`` looks ``EventStreamBuffer`` up as a module global each time it starts
reading a stream, so replacing that name is enough; aiobotocore imported the name into
``aiobotocore.eventstream`` and is patched there. Nothing else in botocore changes: the parsed events,
``EventStreamError`` for error events, ``get_initial_response`` and ``close`` are botocore's own code.

Messages have botocore's shape (``prelude``, ``headers``, ``payload``, ``crc``, ``to_response_dict``) with
botocore's header values (timestamps as int milliseconds, uuids as 16 raw bytes). Every error is an
instance of botocore's class (``ChecksumMismatch``, ``InvalidHeadersLength``, ``InvalidPayloadLength``,
``DuplicateHeader``, all ``ParserError``) and of evstream's. Where botocore leaks ``KeyError``,
``struct.error`` or ``UnicodeDecodeError``, or accepts a truncated header value, a ``ParserError``
subclass is raised instead.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import struct
import sys
import threading
from collections import deque
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import evstream
from evstream import errors as _ev
from evstream._wire import (
    DEFAULT_MAX_HEADERS_LENGTH,
    DEFAULT_MAX_PAYLOAD_LENGTH,
    MESSAGE_CRC_LENGTH,
    MIN_FRAME_LENGTH,
    PRELUDE_LENGTH,
)

try:
    import botocore.eventstream as _bc
except ImportError:  # pragma: no cover - botocore is an optional dependency
    _bc = None

__all__ = [
    "ChecksumMismatch",
    "DuplicateHeader",
    "EventStreamBuffer",
    "EventStreamMessage",
    "InvalidFrameLength",
    "InvalidHeader",
    "InvalidHeaderName",
    "InvalidHeaderValue",
    "InvalidHeadersLength",
    "InvalidLength",
    "InvalidPayloadLength",
    "MessageChecksumMismatch",
    "ParserError",
    "PreludeChecksumMismatch",
    "TruncatedStream",
    "UnknownHeaderType",
    "install",
    "installed",
    "is_installed",
    "uninstall",
]

# botocore's defaults, which are the decoders' (24 MiB since botocore 1.36.15).
MAX_HEADERS_LENGTH = DEFAULT_MAX_HEADERS_LENGTH
MAX_PAYLOAD_LENGTH = DEFAULT_MAX_PAYLOAD_LENGTH

if TYPE_CHECKING or _bc is None:
    # Stand-ins with botocore's names and hierarchy: what mypy sees (botocore ships no types), and
    # what the classes below derive from when botocore is not installed.

    class _BcParserError(Exception):
        pass

    class _BcChecksumMismatch(_BcParserError):
        pass

    class _BcInvalidHeadersLength(_BcParserError):
        pass

    class _BcInvalidPayloadLength(_BcParserError):
        pass

    class _BcDuplicateHeader(_BcParserError):
        pass

    class _BcMessagePrelude:
        def __init__(self, total_length: int, headers_length: int, crc: int) -> None:
            self.total_length = total_length
            self.headers_length = headers_length
            self.crc = crc

        @property
        def payload_length(self) -> int:
            return self.total_length - self.headers_length - MIN_FRAME_LENGTH

        @property
        def payload_end(self) -> int:
            return self.total_length - MESSAGE_CRC_LENGTH

        @property
        def headers_end(self) -> int:
            return PRELUDE_LENGTH + self.headers_length

    class _BcEventStreamMessage:
        headers: dict[str, Any]
        payload: bytes

        def to_response_dict(self, status_code: int = 200) -> dict[str, Any]:
            if self.headers.get(":message-type") in ("error", "exception"):
                status_code = 400
            return {"status_code": status_code, "headers": self.headers, "body": self.payload}

else:
    _BcParserError = _bc.ParserError
    _BcChecksumMismatch = _bc.ChecksumMismatch
    _BcInvalidHeadersLength = _bc.InvalidHeadersLength
    _BcInvalidPayloadLength = _bc.InvalidPayloadLength
    _BcDuplicateHeader = _bc.DuplicateHeader
    _BcMessagePrelude = _bc.MessagePrelude
    _BcEventStreamMessage = _bc.EventStreamMessage


# ------------------------------------------------------------------------------------------ errors
# Each class is evstream's and botocore's, so `except botocore.eventstream.ChecksumMismatch` and
# `except evstream.ChecksumMismatch` both catch it. evstream's class comes first (its __init__,
# attributes and message) and botocore's last: botocore's __init__ signatures differ, and
# ParserError.__init__ ends the chain before them.


class ParserError(_ev.EventStreamError, _BcParserError):
    """Base of every drop-in error: an evstream ``EventStreamError`` and a botocore ``ParserError``."""

    def __init__(self, *args: object) -> None:
        Exception.__init__(self, *args)


class ChecksumMismatch(_ev.ChecksumMismatch, ParserError, _BcChecksumMismatch):
    pass


class PreludeChecksumMismatch(_ev.PreludeChecksumMismatch, ChecksumMismatch):
    pass


class MessageChecksumMismatch(_ev.MessageChecksumMismatch, ChecksumMismatch):
    pass


class InvalidLength(_ev.InvalidLength, ParserError):
    pass


class InvalidFrameLength(_ev.InvalidFrameLength, InvalidLength):
    """botocore does not check that the headers fit in the frame (it leaks ``struct.error`` or worse)."""


class InvalidHeadersLength(_ev.InvalidHeadersLength, InvalidLength, _BcInvalidHeadersLength):
    pass


class InvalidPayloadLength(_ev.InvalidPayloadLength, InvalidLength, _BcInvalidPayloadLength):
    pass


class InvalidHeader(_ev.InvalidHeader, ParserError):
    pass


class DuplicateHeader(_ev.DuplicateHeader, InvalidHeader, _BcDuplicateHeader):
    pass


class UnknownHeaderType(_ev.UnknownHeaderType, InvalidHeader):
    """botocore leaks ``KeyError`` here."""


class InvalidHeaderName(_ev.InvalidHeaderName, InvalidHeader):
    """botocore accepts an empty name and leaks ``UnicodeDecodeError`` on bad UTF-8."""


class InvalidHeaderValue(_ev.InvalidHeaderValue, InvalidHeader):
    """botocore leaks ``struct.error`` / ``UnicodeDecodeError`` or accepts a truncated value here."""


class TruncatedStream(_ev.TruncatedStream, ParserError):
    """Raised by ``EventStreamBuffer.close()`` only: botocore itself never notices a cut stream."""


_DROP_IN: dict[type, type[ParserError]] = {
    _ev.EventStreamError: ParserError,
    _ev.ChecksumMismatch: ChecksumMismatch,
    _ev.PreludeChecksumMismatch: PreludeChecksumMismatch,
    _ev.MessageChecksumMismatch: MessageChecksumMismatch,
    _ev.InvalidLength: InvalidLength,
    _ev.InvalidFrameLength: InvalidFrameLength,
    _ev.InvalidHeadersLength: InvalidHeadersLength,
    _ev.InvalidPayloadLength: InvalidPayloadLength,
    _ev.InvalidHeader: InvalidHeader,
    _ev.DuplicateHeader: DuplicateHeader,
    _ev.UnknownHeaderType: UnknownHeaderType,
    _ev.InvalidHeaderName: InvalidHeaderName,
    _ev.InvalidHeaderValue: InvalidHeaderValue,
    _ev.TruncatedStream: TruncatedStream,
}


def _drop_in_error(exc: _ev.EventStreamError) -> ParserError:
    """The same error (same attributes and message) as an instance of the dual class."""
    if isinstance(exc, ParserError):
        return exc
    dual = ParserError
    for kind in type(exc).__mro__:
        if kind in _DROP_IN:
            dual = _DROP_IN[kind]
            break
    # Every evstream error pickles through __reduce__ -> (class, args): the same args rebuild it.
    return dual(*exc.__reduce__()[1])


# ---------------------------------------------------------------------------------------- messages

_LENGTHS = struct.Struct(">II")


class EventStreamMessage(_BcEventStreamMessage):
    """A decoded message with botocore's shape, and an instance of botocore's ``EventStreamMessage``.

    The decoder makes these directly (a subclass per codec, see ``_message_type``) with botocore's
    header values; ``prelude`` and ``crc`` come from the lengths and CRC the decoder recorded, and are
    built only when read (botocore's own event parsing never reads them).
    """

    def __init__(self, prelude: Any, headers: dict[str, Any], payload: bytes, crc: int) -> None:
        # botocore's constructor signature, for code that builds messages itself.
        self.headers = headers
        self.payload = payload
        self._given_prelude = prelude
        self._given_crc = crc

    @property
    def prelude(self) -> Any:
        """A ``botocore.eventstream.MessagePrelude`` (total_length, headers_length, crc, ...)."""
        given = self.__dict__.get("_given_prelude")
        if given is not None:
            return given
        headers_length: int = self._headers_length  # type: ignore[attr-defined]
        total = MIN_FRAME_LENGTH + headers_length + len(self.payload)
        return _BcMessagePrelude(total, headers_length, evstream.crc32(_LENGTHS.pack(total, headers_length)))

    @prelude.setter
    def prelude(self, value: Any) -> None:
        self._given_prelude = value

    @property
    def crc(self) -> int:
        """The message CRC (of every byte of the frame before it)."""
        given = self.__dict__.get("_given_crc")
        return self._crc if given is None else given  # type: ignore[attr-defined,no-any-return]

    @crc.setter
    def crc(self, value: int) -> None:
        self._given_crc = value

    def __repr__(self) -> str:
        return f"EventStreamMessage(headers={self.headers!r}, payload={self.payload!r})"


_message_types: dict[type, type] = {}


def _message_type(codec_message: type) -> type:
    """``EventStreamMessage`` on a codec's ``Message``: what that codec's decoder instantiates."""
    try:
        return _message_types[codec_message]
    except KeyError:
        made = type(
            "EventStreamMessage",
            (EventStreamMessage, codec_message),
            {"__slots__": (), "__module__": __name__, "__doc__": EventStreamMessage.__doc__},
        )
        return _message_types.setdefault(codec_message, made)


# ------------------------------------------------------------------------------------------ buffer


class EventStreamBuffer:
    """botocore's ``EventStreamBuffer`` on evstream's decoder.

    ``add_data()`` takes bytes, bytearray or memoryview (decoded at once, never concatenated);
    ``next()`` / ``__next__`` return the next message or raise ``StopIteration`` while a frame is
    incomplete, resuming after more data; iteration yields every complete message. A bad frame raises
    (from ``next()``/iteration, as in botocore) after the good messages before it, and again on every
    later call. ``codec`` picks an implementation module (``evstream._codec`` or ``evstream._codec_py``);
    the default is the one ``evstream`` loaded.
    """

    __slots__ = ("_decoder", "_error", "_ready")

    def __init__(
        self,
        *,
        max_payload_length: int = MAX_PAYLOAD_LENGTH,
        max_headers_length: int = MAX_HEADERS_LENGTH,
        codec: ModuleType | None = None,
    ) -> None:
        decoder_type = evstream.Decoder if codec is None else codec.Decoder
        # The decoder's own module, so that a Decoder swapped into evstream brings its Message along.
        codec_message = importlib.import_module(decoder_type.__module__).Message
        self._decoder = decoder_type(
            max_payload_length=max_payload_length,
            max_headers_length=max_headers_length,
            message_type=_message_type(codec_message),
            typed_values=False,
        )
        self._ready: deque[Any] = deque()
        self._error: ParserError | None = None

    def add_data(self, data: Any) -> None:
        """Decode ``data``; an error is kept for ``next()``, where botocore raises it."""
        try:
            messages = self._decoder.feed(data)
        except _ev.EventStreamError:
            return  # the decoder keeps it (Decoder.error)
        if messages:
            self._ready.extend(messages)

    def close(self) -> None:
        """Not in botocore: raise ``TruncatedStream`` if the data ended inside a frame."""
        self._raise_if_failed()
        try:
            self._decoder.close()
        except _ev.EventStreamError:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        """Raise the decoder's error (once the messages before it are handed out) as a drop-in error."""
        error = self._decoder.error
        if error is not None:
            if self._error is None:
                self._error = _drop_in_error(error)
            raise self._error.with_traceback(None)

    def next(self) -> EventStreamMessage:
        """The next complete message; ``StopIteration`` until more data completes one."""
        if self._ready:
            return self._ready.popleft()  # type: ignore[no-any-return]
        self._raise_if_failed()
        raise StopIteration

    __next__ = next

    def __iter__(self) -> Iterator[EventStreamMessage]:
        # A generator, not `return self`: a Python __next__ that ends in StopIteration costs more than
        # decoding a small frame, and botocore and aiobotocore take a fresh iterator after every chunk.
        ready = self._ready
        while ready:
            yield ready.popleft()
        if self._decoder.error is not None:
            self._raise_if_failed()


# ----------------------------------------------------------------------------------------- install

# Module name -> the EventStreamBuffer install() replaced there.
_originals: dict[str, Any] = {}
_lock = threading.Lock()
_TARGETS = ("botocore.eventstream", "aiobotocore.eventstream")
# botocore's own class, for a module that copied the name while the drop-in was installed.
_BOTOCORE_BUFFER = None if _bc is None else _bc.EventStreamBuffer


def _import_targets() -> list[ModuleType]:
    """The modules that hold an ``EventStreamBuffer`` global, imported if their library is installed."""
    modules = []
    for name in _TARGETS:
        module = sys.modules.get(name)
        if module is None:
            if importlib.util.find_spec(name.partition(".")[0]) is None:
                continue
            try:
                module = importlib.import_module(name)
            except ImportError:  # e.g. an aiobotocore that does not match the installed botocore
                continue
        modules.append(module)
    return modules


def install() -> None:
    """Make every botocore and aiobotocore event stream decode through evstream (idempotent).

    Safe before or after clients are created, and with either library absent.
    """
    with _lock:
        # Import everything before patching anything: aiobotocore copies botocore's name at import.
        for module in _import_targets():
            current = getattr(module, "EventStreamBuffer", None)
            if current is None or current is EventStreamBuffer:
                continue
            _originals[module.__name__] = current
            module.EventStreamBuffer = EventStreamBuffer  # type: ignore[attr-defined]


def uninstall() -> None:
    """Restore the originals; a name someone else has replaced since is left alone."""
    with _lock:
        for name in _TARGETS:
            module = sys.modules.get(name)
            original = _originals.pop(name, _BOTOCORE_BUFFER)
            ours = module is not None and getattr(module, "EventStreamBuffer", None) is EventStreamBuffer
            if ours and original is not None:
                setattr(module, "EventStreamBuffer", original)  # noqa: B010 - a module, not a class
        _originals.clear()


def is_installed() -> bool:
    """True if botocore's event streams decode through evstream."""
    module = sys.modules.get("botocore.eventstream")
    return module is not None and getattr(module, "EventStreamBuffer", None) is EventStreamBuffer


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """``with evstream.botocore.installed():`` - installed inside, the previous state restored after."""
    was = is_installed()
    install()
    try:
        yield
    finally:
        if not was:
            uninstall()
