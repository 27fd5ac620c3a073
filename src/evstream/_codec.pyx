# cython: language_level=3, embedsignature=True
"""C event stream codec: the fast twin of ``_codec_py.py``, with the same behaviour and errors.

Where a byte enters: ``Decoder.feed``. Whole frames inside one chunk are parsed in place
(``_frame_message``); a frame that straddles chunks is assembled once (``_assemble``): prelude and
headers into small buffers, the payload straight into the bytes object that becomes
``Message.payload``, grown only as its bytes arrive. The message CRC runs as bytes arrive, so no byte
is read twice.
"""

import os
import uuid as _uuid
import datetime as _datetime
from collections.abc import Mapping as _Mapping

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_FromUnsignedLong
from cpython.ref cimport PyObject, Py_DECREF, Py_INCREF, Py_XDECREF
from libc.stdint cimport int16_t, int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from ._wire cimport (
    BOOL_FALSE,
    BOOL_TRUE,
    BYTE,
    BYTE_ARRAY,
    INTEGER,
    LONG,
    MAX_FRAME_LENGTH,
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    MESSAGE_CRC_LENGTH,
    MIN_FRAME_LENGTH,
    PRELUDE_LENGTH,
    SHORT,
    STRING,
    TIMESTAMP,
    UUID,
)

from .errors import (
    DuplicateHeader,
    EventStreamError,
    InvalidFrameLength,
    InvalidHeaderName,
    InvalidHeadersLength,
    InvalidHeaderValue,
    InvalidPayloadLength,
    MessageChecksumMismatch,
    PreludeChecksumMismatch,
    TruncatedStream,
    UnknownHeaderType,
)
from .headers import Int8, Int16, Int64, Timestamp, _SizedInt, uuid_from_bytes

cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject **string, Py_ssize_t newsize) except -1
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    void *PyUnicode_DATA(PyObject *o)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyDict_GET_SIZE(object o)
    int PyDict_Next(object p, Py_ssize_t *ppos, PyObject **pkey, PyObject **pvalue)
    unsigned long PyLong_AsUnsignedLongMask(object o) except? <unsigned long>-1
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1

cdef extern from "crc32.h" nogil:
    ctypedef uint32_t (*evs_crc32_fn)(uint32_t crc, const unsigned char *buf, size_t len) noexcept nogil
    evs_crc32_fn evs_crc32
    int evs_crc32_init(const char *forced)
    const char *evs_crc32_backend()
    int evs_crc32_tier_count()
    const char *evs_crc32_tier_name(int i)
    int evs_crc32_tier_available(int i)
    evs_crc32_fn evs_crc32_tier_fn(int i)
    uint32_t evs_crc32_software(uint32_t crc, const unsigned char *buf, size_t len)


# ---------------------------------------------------------------------------------------------- CRC

def _select_crc32_backend():
    forced = os.environ.get("EVSTREAM_CRC32", "").strip().lower()
    if evs_crc32_init(forced.encode("ascii", "replace")) != 0:
        names = ", ".join(_crc32_tiers())
        raise ValueError(f"EVSTREAM_CRC32={forced!r}: expected one of {names}")
    return evs_crc32_backend().decode("ascii")


def _crc32_tiers():
    """Every kernel this build knows, slowest first."""
    return [evs_crc32_tier_name(i).decode("ascii") for i in range(evs_crc32_tier_count())]


def _crc32_available_tiers():
    """The kernels this CPU can run, slowest first."""
    return [evs_crc32_tier_name(i).decode("ascii")
            for i in range(evs_crc32_tier_count()) if evs_crc32_tier_available(i)]


CRC32_BACKEND = _select_crc32_backend()

cdef enum:
    # Above this many bytes the GIL is released around a CRC: the release costs ~0.1 us, a few
    # percent of a 256 KiB checksum, and lets other threads run.
    NOGIL_THRESHOLD = 256 * 1024
    # Smallest buffer allocated for a part of a frame that straddles chunks.
    MIN_ASSEMBLY = 256
    # Header names and short string values repeat in every event (":event-type", "PayloadPart").
    # A direct-mapped cache of ASCII str objects turns their decoding into a memcmp.
    CACHE_SLOTS = 128
    CACHE_MAX_LENGTH = 48
    FAST_HEADERS = 16  # the most headers a data event may have for Decoder._http_chunks


cdef uint32_t _crc_buffer(evs_crc32_fn fn, object data, object value) except? 0xFFFFFFFF:
    cdef Py_buffer view
    cdef uint32_t crc = <uint32_t>(PyLong_AsUnsignedLongMask(value) & 0xFFFFFFFFUL)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len >= NOGIL_THRESHOLD:
            with nogil:
                crc = fn(crc, <const unsigned char *>view.buf, <size_t>view.len)
        else:
            crc = fn(crc, <const unsigned char *>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return crc


def crc32(data, value=0, /):
    """IEEE CRC-32 of any bytes-like object, continuing from ``value`` (same as ``zlib.crc32``)."""
    cdef uint32_t crc
    # The common call, crc32(small bytes), skips the buffer protocol and the seed conversion: at
    # 64 bytes the call costs more than the checksum.
    if type(data) is bytes and value is 0 and PyBytes_GET_SIZE(data) < NOGIL_THRESHOLD:
        crc = evs_crc32(0, <const unsigned char *>PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data))
    else:
        crc = _crc_buffer(evs_crc32, data, value)
    # Not Cython's own conversion (PyLong_FromLong): on CPython 3.11 that costs ~12 ns more for values
    # of 2**30 and up, three CRCs in four.
    return PyLong_FromUnsignedLong(crc)


def _crc32_with(str tier, data, value=0):
    """CRC-32 through one named kernel (tests and benchmarks compare every tier)."""
    cdef int i
    for i in range(evs_crc32_tier_count()):
        if evs_crc32_tier_name(i).decode("ascii") == tier:
            if not evs_crc32_tier_available(i):
                raise ValueError(f"CRC-32 tier {tier!r} is not available on this CPU")
            return PyLong_FromUnsignedLong(_crc_buffer(evs_crc32_tier_fn(i), data, value))
    raise ValueError(f"unknown CRC-32 tier {tier!r}")


# ------------------------------------------------------------------------------------------ limits

from ._wire import DEFAULT_MAX_HEADERS_LENGTH, DEFAULT_MAX_PAYLOAD_LENGTH


def _wire_constants():
    """The compile-time values taken from _wire.pxd (tests compare them with _wire.py)."""
    return {
        "PRELUDE_LENGTH": PRELUDE_LENGTH,
        "MESSAGE_CRC_LENGTH": MESSAGE_CRC_LENGTH,
        "MIN_FRAME_LENGTH": MIN_FRAME_LENGTH,
        "MAX_FRAME_LENGTH": MAX_FRAME_LENGTH,
        "MAX_NAME_LENGTH": MAX_NAME_LENGTH,
        "MAX_VALUE_LENGTH": MAX_VALUE_LENGTH,
        "BOOL_TRUE": BOOL_TRUE,
        "BOOL_FALSE": BOOL_FALSE,
        "BYTE": BYTE,
        "SHORT": SHORT,
        "INTEGER": INTEGER,
        "LONG": LONG,
        "BYTE_ARRAY": BYTE_ARRAY,
        "STRING": STRING,
        "TIMESTAMP": TIMESTAMP,
        "UUID": UUID,
    }


cdef inline uint32_t _be32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline uint16_t _be16(const unsigned char *p) noexcept nogil:
    return <uint16_t>((p[0] << 8) | p[1])


cdef inline uint64_t _be64(const unsigned char *p) noexcept nogil:
    return (<uint64_t>_be32(p) << 32) | _be32(p + 4)


cdef inline void _put32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


cdef inline void _put64(unsigned char *p, uint64_t v) noexcept nogil:
    _put32(p, <uint32_t>(v >> 32))
    _put32(p + 4, <uint32_t>v)


def _check_message_type(message_type):
    if not (isinstance(message_type, type) and issubclass(message_type, Message)):
        raise TypeError(f"message_type must be Message or a subclass of it, not {message_type!r}")
    return message_type


def _check_limit(str name, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_FRAME_LENGTH:
        raise ValueError(f"{name} must be between 0 and {MAX_FRAME_LENGTH}, got {value}")
    return value


# ------------------------------------------------------------------------------------- str caches

# The str caches (see CACHE_SLOTS); guarded by the GIL.
cdef struct _CacheEntry:
    PyObject *text
    Py_ssize_t length

cdef _CacheEntry _name_cache[CACHE_SLOTS]
cdef _CacheEntry _value_cache[CACHE_SLOTS]


cdef inline Py_ssize_t _slot(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    return (n * 31 + p[0] * 7 + p[n - 1] * 131 + p[n >> 1] * 17) & (CACHE_SLOTS - 1)


cdef inline bint _same_bytes(const unsigned char *a, const unsigned char *b, Py_ssize_t n) noexcept nogil:
    # Header names and values are short: 8 bytes at a time beats a call into libc's memcmp.
    cdef uint64_t x, y
    while n >= 8:
        memcpy(&x, a, 8)
        memcpy(&y, b, 8)
        if x != y:
            return False
        a += 8
        b += 8
        n -= 8
    while n > 0:
        if a[0] != b[0]:
            return False
        a += 1
        b += 1
        n -= 1
    return True


cdef inline object _cached_str(const unsigned char *p, Py_ssize_t n, _CacheEntry *cache):
    """The cached str for these ``n`` UTF-8 bytes (1 <= n), or None."""
    cdef _CacheEntry *entry
    if n <= CACHE_MAX_LENGTH:
        entry = &cache[_slot(p, n)]
        if (entry.text != NULL and entry.length == n
                and _same_bytes(<const unsigned char *>PyUnicode_DATA(entry.text), p, n)):
            return <object>entry.text
    return None


cdef object _new_str(const unsigned char *p, Py_ssize_t n, _CacheEntry *cache, object name):
    """Decode ``n`` UTF-8 bytes and cache the result; a header name when ``name`` is None."""
    cdef _CacheEntry *entry
    try:
        text = PyUnicode_DecodeUTF8(<const char *>p, n, NULL)
    except UnicodeDecodeError:
        if name is None:
            raise InvalidHeaderName("not valid UTF-8") from None
        raise InvalidHeaderValue("not valid UTF-8", name) from None
    if n <= CACHE_MAX_LENGTH and PyUnicode_IS_ASCII(text):
        entry = &cache[_slot(p, n)]
        Py_XDECREF(entry.text)
        Py_INCREF(text)
        entry.text = <PyObject *>text
        entry.length = n
    return text


# ----------------------------------------------------------------------------------------- message

@cython.freelist(64)
cdef class Message:
    """One decoded frame: ``headers`` (a dict in wire order) and ``payload`` (bytes).

    A decoder also records the frame's headers-block length and message CRC (``_headers_length``,
    ``_crc``; 0 for a message built by hand), for adapters that show the frame layout (botocore's
    ``prelude`` and ``crc``).
    """

    cdef public object headers
    cdef public object payload
    cdef readonly uint32_t _headers_length
    cdef readonly uint32_t _crc

    def __init__(self, headers, payload):
        self.headers = headers
        self.payload = payload

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        return self.headers == (<Message>other).headers and self.payload == (<Message>other).payload

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        return f"Message(headers={self.headers!r}, payload={self.payload!r})"

    def __reduce__(self):
        return Message, (self.headers, self.payload)


cdef inline Message _new_message(type message_type, dict headers, object payload,
                                 uint32_t headers_length, uint32_t crc):
    cdef Message message
    if message_type is Message:
        message = Message.__new__(Message)
    else:
        message = message_type.__new__(message_type)
    message.headers = headers
    message.payload = payload
    message._headers_length = headers_length
    message._crc = crc
    return message


# ----------------------------------------------------------------------------------------- headers

cdef object _fixed_value(int type_byte, const unsigned char *p, bint typed):
    if not typed:
        # botocore's values: plain ints whatever the width, timestamps as int milliseconds.
        if type_byte == BYTE:
            return <long>(<signed char>p[0])
        if type_byte == SHORT:
            return <long>(<int16_t>_be16(p))
        if type_byte == INTEGER:
            return <long>(<int32_t>_be32(p))
        return <long long>(<int64_t>_be64(p))
    # int.__new__ skips the range check of the typed constructors: the wire width guarantees it.
    if type_byte == BYTE:
        return int.__new__(Int8, <signed char>p[0])
    if type_byte == SHORT:
        return int.__new__(Int16, <int16_t>_be16(p))
    if type_byte == INTEGER:
        return <long>(<int32_t>_be32(p))
    if type_byte == LONG:
        return int.__new__(Int64, <int64_t>_be64(p))
    return int.__new__(Timestamp, <int64_t>_be64(p))


cdef dict _decode_headers(const unsigned char *p, const unsigned char *end, bint typed):
    """The headers block [p, end) as a dict, in wire order (``typed``: see Decoder)."""
    cdef dict headers = {}
    cdef Py_ssize_t name_length, length, size
    cdef Py_ssize_t count = 0
    cdef int type_byte
    cdef object name, value
    while p < end:
        name_length = p[0]
        p += 1
        if name_length == 0:
            raise InvalidHeaderName("empty name")
        if name_length > end - p:
            raise InvalidHeaderName.truncated(name_length, end - p)
        name = _cached_str(p, name_length, _name_cache)
        if name is None:
            name = _new_str(p, name_length, _name_cache, None)
        p += name_length
        if p >= end:
            raise InvalidHeaderValue.truncated(name, None, 1, 0)
        type_byte = p[0]
        p += 1
        if type_byte == STRING or type_byte == BYTE_ARRAY:
            if end - p < 2:
                raise InvalidHeaderValue.truncated(name, type_byte, 2, end - p)
            length = _be16(p)
            p += 2
            if length > MAX_VALUE_LENGTH:
                raise InvalidHeaderValue.too_long(name, type_byte, length)
            if length > end - p:
                raise InvalidHeaderValue.truncated(name, type_byte, length, end - p)
            if type_byte == BYTE_ARRAY:
                value = PyBytes_FromStringAndSize(<const char *>p, length)
            elif length == 0:
                value = ""
            else:
                value = _cached_str(p, length, _value_cache)
                if value is None:
                    value = _new_str(p, length, _value_cache, name)
            p += length
        elif type_byte == BOOL_TRUE:
            value = True
        elif type_byte == BOOL_FALSE:
            value = False
        elif BYTE <= type_byte <= LONG or type_byte == TIMESTAMP:
            size = 1 if type_byte == BYTE else 2 if type_byte == SHORT else 4 if type_byte == INTEGER else 8
            if end - p < size:
                raise InvalidHeaderValue.truncated(name, type_byte, size, end - p)
            value = _fixed_value(type_byte, p, typed)
            p += size
        elif type_byte == UUID:
            if end - p < 16:
                raise InvalidHeaderValue.truncated(name, type_byte, 16, end - p)
            value = PyBytes_FromStringAndSize(<const char *>p, 16)
            if typed:
                value = uuid_from_bytes(value)
            p += 16
        else:
            raise UnknownHeaderType(name, type_byte)
        # One hash insertion: a repeated name leaves the size unchanged (and the dict is discarded).
        headers[name] = value
        count += 1
        if PyDict_GET_SIZE(headers) != count:
            raise DuplicateHeader(name)
    return headers


cdef inline bint _ascii(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] >= 0x80:
            return False
    return True


cdef bint _is_data_event(const unsigned char *p, const unsigned char *end,
                         const unsigned char *event_type, Py_ssize_t event_type_length) noexcept nogil:
    """The headers block [p, end) is one ``_decode_headers`` accepts and its ``:event-type`` is the
    string ``event_type``; no object made. Only blocks with ASCII names and string values and at most
    FAST_HEADERS headers are judged (ASCII needs no UTF-8 check; a few names are compared pairwise
    for duplicates): anything else is False, and the caller's general path decides."""
    cdef const unsigned char *names[FAST_HEADERS]
    cdef Py_ssize_t lengths[FAST_HEADERS]
    cdef const unsigned char *name
    cdef Py_ssize_t count = 0, i, name_length, length
    cdef int type_byte
    cdef bint is_event_type, matched = False
    while p < end:
        name_length = p[0]
        p += 1
        if name_length == 0 or name_length > end - p or count == FAST_HEADERS or not _ascii(p, name_length):
            return False
        for i in range(count):
            if lengths[i] == name_length and _same_bytes(names[i], p, name_length):
                return False
        name = p
        names[count] = name
        lengths[count] = name_length
        count += 1
        is_event_type = name_length == 11 and _same_bytes(name, <const unsigned char *>b":event-type", 11)
        p += name_length
        if p >= end:
            return False
        type_byte = p[0]
        p += 1
        if type_byte == STRING or type_byte == BYTE_ARRAY:
            if end - p < 2:
                return False
            length = _be16(p)
            p += 2
            if length > MAX_VALUE_LENGTH or length > end - p:
                return False
            if type_byte == STRING:
                if not _ascii(p, length):
                    return False
                if is_event_type:
                    matched = length == event_type_length and _same_bytes(p, event_type, length)
            elif is_event_type:
                return False
            p += length
            continue
        if is_event_type:
            return False
        if type_byte == BOOL_TRUE or type_byte == BOOL_FALSE:
            length = 0
        elif type_byte == BYTE:
            length = 1
        elif type_byte == SHORT:
            length = 2
        elif type_byte == INTEGER:
            length = 4
        elif type_byte == LONG or type_byte == TIMESTAMP:
            length = 8
        elif type_byte == UUID:
            length = 16
        else:
            return False
        if length > end - p:
            return False
        p += length
    return matched


# ----------------------------------------------------------------------------------------- decoder

@cython.final
cdef class Decoder:
    """Incremental decoder: feed chunks of any size, get every message they complete.

    If a chunk completes messages and then holds a bad frame, the messages are returned and the error
    is raised by the next ``feed()`` or ``close()``; a failed decoder stays failed.

    ``message_type`` (Message or a subclass) is the class of the messages made. With
    ``typed_values=False`` header values come as botocore gives them: every integer width and
    timestamps as plain int, uuids as 16 raw bytes (they then no longer re-encode to the same types).
    """

    cdef readonly uint64_t max_payload_length
    cdef readonly uint64_t max_headers_length
    cdef readonly type message_type
    cdef readonly bint typed_values
    cdef object _error
    cdef bint _busy
    # The frame in progress when one straddles chunks (_have == 0: none).
    cdef uint64_t _have            # bytes of it received so far
    cdef uint32_t _total
    cdef uint32_t _headers_end     # 12 + headers_length
    cdef uint32_t _payload_end     # total - 4
    cdef uint32_t _crc             # running CRC of bytes [0, min(_have, _payload_end))
    cdef unsigned char _prelude[PRELUDE_LENGTH]
    cdef unsigned char _trailer[4]
    cdef unsigned char *_headers   # the headers block, grown as it arrives
    cdef Py_ssize_t _headers_capacity
    cdef PyObject *_payload        # a bytes object, grown as the payload arrives
    cdef Py_ssize_t _payload_capacity

    def __init__(self, max_payload_length=DEFAULT_MAX_PAYLOAD_LENGTH,
                 max_headers_length=DEFAULT_MAX_HEADERS_LENGTH, *, message_type=Message,
                 bint typed_values=True):
        self.max_payload_length = _check_limit("max_payload_length", max_payload_length)
        self.max_headers_length = _check_limit("max_headers_length", max_headers_length)
        self.message_type = _check_message_type(message_type)
        self.typed_values = typed_values

    def __dealloc__(self):
        self._release_frame()

    cdef void _release_frame(self) noexcept:
        free(self._headers)
        self._headers = NULL
        self._headers_capacity = 0
        Py_XDECREF(self._payload)
        self._payload = NULL
        self._payload_capacity = 0
        self._have = 0

    @property
    def error(self):
        """The error this decoder failed with (raised again by every call), or None."""
        return self._error

    @property
    def buffered(self):
        """Bytes of an incomplete frame held (0 on a frame boundary)."""
        return self._have

    def feed(self, data):
        """Every message completed by ``data`` (any bytes-like object)."""
        cdef Py_buffer view
        cdef list messages = []
        if self._error is not None:
            raise self._error.with_traceback(None)
        if self._busy:
            raise RuntimeError("Decoder.feed() called while another thread is feeding the same decoder")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        self._busy = True
        try:
            self._feed(<const unsigned char *>view.buf, view.len, messages)
        except EventStreamError as exc:
            self._error = exc
            self._release_frame()
            if not messages:
                raise
        finally:
            self._busy = False
            PyBuffer_Release(&view)
        return messages

    def close(self):
        """Raise ``TruncatedStream`` if part of a frame is buffered (or the error already raised)."""
        if self._busy:
            raise RuntimeError("Decoder.close() called while another thread is feeding the same decoder")
        if self._error is not None:
            raise self._error.with_traceback(None)
        if self._have:
            self._error = TruncatedStream(self._have, self._total if self._have >= PRELUDE_LENGTH else None)
            self._release_frame()
            raise self._error

    def _http_chunks(self, data, Py_ssize_t pos, list events, str event_type, outer, inner, decode,
                     Py_ssize_t max_chunk, Py_ssize_t limit):
        """Append to ``events`` the data events of the whole HTTP/1.1 chunks in ``data`` from ``pos``;
        return where they end. The response reader's fast path: what it takes, and where it stops, is
        documented once, in ``_codec_py.Decoder._http_chunks``."""
        cdef Py_buffer view
        cdef Py_ssize_t i, start, stop, size
        cdef uint64_t chunk
        cdef unsigned char c
        cdef const unsigned char *p
        cdef const char *want
        cdef Py_ssize_t want_length
        if self._error is not None or self._have or self._busy:
            return pos
        want = PyUnicode_AsUTF8AndSize(event_type, &want_length)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            p = <const unsigned char *>view.buf
            size = view.len
            if pos < 0 or pos > size:
                raise ValueError(f"pos {pos} is outside the {size} bytes given")
            while pos < size and len(events) < limit:
                chunk = 0
                i = pos
                while i < size and i - pos < 16:
                    c = p[i]
                    if 48 <= c <= 57:
                        chunk = chunk * 16 + (c - 48)
                    elif 97 <= (c | 32) <= 102:
                        chunk = chunk * 16 + ((c | 32) - 87)
                    else:
                        break
                    i += 1
                if i == pos or size - i < 2 or p[i] != 13 or p[i + 1] != 10:
                    break
                if chunk == 0 or chunk > <uint64_t>max_chunk:
                    break
                start = i + 2
                if <uint64_t>(size - start) < chunk + 2:
                    break
                stop = start + <Py_ssize_t>chunk
                if p[stop] != 13 or p[stop + 1] != 10:
                    break
                if not self._data_events(p + start, stop - start, <const unsigned char *>want, want_length,
                                         outer, inner, decode, events):
                    break
                pos = stop + 2
        finally:
            PyBuffer_Release(&view)
        return pos

    cdef bint _data_events(self, const unsigned char *p, Py_ssize_t n, const unsigned char *event_type,
                           Py_ssize_t event_type_length, outer, inner, decode, list events):
        """Append the data events of ``n`` bytes of whole frames; False (and nothing appended) if
        they are anything else."""
        cdef Py_ssize_t pos = 0, mark = len(events)
        cdef uint32_t total = 0
        cdef const unsigned char *frame
        cdef const unsigned char *headers_end
        cdef const unsigned char *crc_at
        cdef bint taken
        while pos < n:
            frame = p + pos
            try:
                taken = n - pos >= PRELUDE_LENGTH
                if taken:
                    total = self._check_prelude(frame)
                    taken = total <= n - pos
                if taken:
                    # The checks of _frame_message, without the message: the CRC, then the headers.
                    crc_at = frame + total - 4
                    headers_end = frame + PRELUDE_LENGTH + _be32(frame + 4)
                    taken = (evs_crc32(_be32(frame + 8), frame + 8, total - 12) == _be32(crc_at)
                             and _is_data_event(frame + PRELUDE_LENGTH, headers_end, event_type,
                                                event_type_length))
                if taken:
                    payload = PyBytes_FromStringAndSize(<const char *>headers_end, crc_at - headers_end)
                    if decode is not None:
                        payload = decode(payload)
            except Exception:  # the general path raises it, in its place among the events
                taken = False
            if not taken:
                del events[mark:]
                return False
            events.append(payload if outer is None else {outer: {inner: payload}})
            pos += total
        return True

    cdef int _feed(self, const unsigned char *data, Py_ssize_t size, list messages) except -1:
        cdef Py_ssize_t pos = 0
        cdef uint32_t total
        while pos < size:
            if self._have == 0 and size - pos >= PRELUDE_LENGTH:
                total = self._check_prelude(data + pos)
                if size - pos >= total:
                    messages.append(self._frame_message(data + pos, total))
                    pos += total
                    continue
            pos += self._assemble(data + pos, size - pos, messages)
        return 0

    cdef uint32_t _check_prelude(self, const unsigned char *p) except? 0:
        cdef uint32_t total = _be32(p)
        cdef uint32_t headers_length = _be32(p + 4)
        cdef uint32_t expected = _be32(p + 8)
        cdef uint32_t calculated = evs_crc32_software(0, p, 8)
        cdef uint64_t payload_length
        if calculated != expected:
            raise PreludeChecksumMismatch(expected, calculated)
        # botocore's order (see _codec_py)
        if headers_length > self.max_headers_length:
            raise InvalidHeadersLength(headers_length, self.max_headers_length)
        if total < MIN_FRAME_LENGTH or headers_length > total - MIN_FRAME_LENGTH:
            raise InvalidFrameLength(total, headers_length)
        payload_length = total - headers_length - MIN_FRAME_LENGTH
        if payload_length > self.max_payload_length:
            raise InvalidPayloadLength(payload_length, self.max_payload_length)
        return total

    cdef Py_ssize_t _assemble(self, const unsigned char *data, Py_ssize_t size, list messages) except -1:
        """Take bytes of the frame in progress from ``data``; return how many were taken."""
        cdef Py_ssize_t taken = 0, step
        cdef uint64_t have
        while taken < size:
            have = self._have
            if have < PRELUDE_LENGTH:
                step = min(<Py_ssize_t>(PRELUDE_LENGTH - have), size - taken)
                memcpy(self._prelude + have, data + taken, step)
                self._have += step
                taken += step
                if self._have == PRELUDE_LENGTH:
                    self._start_frame()
            elif have < self._headers_end:
                step = min(<Py_ssize_t>(self._headers_end - have), size - taken)
                self._append_headers(data + taken, step)
                taken += step
            elif have < self._payload_end:
                step = min(<Py_ssize_t>(self._payload_end - have), size - taken)
                self._append_payload(data + taken, step)
                taken += step
            else:
                step = min(<Py_ssize_t>(self._total - have), size - taken)
                memcpy(self._trailer + (have - self._payload_end), data + taken, step)
                self._have += step
                taken += step
                if self._have == self._total:
                    messages.append(self._finish_frame())
                    break
        return taken

    cdef int _start_frame(self) except -1:
        self._total = self._check_prelude(self._prelude)
        self._headers_end = PRELUDE_LENGTH + _be32(self._prelude + 4)
        self._payload_end = self._total - 4
        self._crc = evs_crc32(0, self._prelude, PRELUDE_LENGTH)
        return 0

    cdef int _append_headers(self, const unsigned char *p, Py_ssize_t n) except -1:
        cdef Py_ssize_t offset = <Py_ssize_t>(self._have - PRELUDE_LENGTH)
        cdef Py_ssize_t capacity
        cdef unsigned char *grown
        if offset + n > self._headers_capacity:
            # Geometric growth, never past the block: memory follows the bytes that arrived.
            capacity = max(offset + n, 2 * self._headers_capacity, MIN_ASSEMBLY)
            capacity = min(capacity, <Py_ssize_t>(self._headers_end - PRELUDE_LENGTH))
            grown = <unsigned char *>realloc(self._headers, capacity)
            if grown == NULL:
                raise MemoryError()
            self._headers = grown
            self._headers_capacity = capacity
        memcpy(self._headers + offset, p, n)
        self._crc = evs_crc32(self._crc, p, n)
        self._have += n
        return 0

    cdef int _append_payload(self, const unsigned char *p, Py_ssize_t n) except -1:
        cdef Py_ssize_t offset = <Py_ssize_t>(self._have - self._headers_end)
        cdef Py_ssize_t capacity
        if offset + n > self._payload_capacity:
            capacity = max(offset + n, 2 * self._payload_capacity, MIN_ASSEMBLY)
            capacity = min(capacity, <Py_ssize_t>(self._payload_end - self._headers_end))
            if self._payload == NULL:
                fresh = PyBytes_FromStringAndSize(NULL, capacity)
                Py_INCREF(fresh)  # owned through the raw pointer, so it can be resized in place
                self._payload = <PyObject *>fresh
            else:
                # Large bytes objects live in mmap'd memory: realloc moves pages, not bytes.
                _PyBytes_Resize(&self._payload, capacity)
            self._payload_capacity = capacity
        memcpy(PyBytes_AS_STRING(<object>self._payload) + offset, p, n)
        if n >= NOGIL_THRESHOLD:
            with nogil:
                self._crc = evs_crc32(self._crc, p, n)
        else:
            self._crc = evs_crc32(self._crc, p, n)
        self._have += n
        return 0

    cdef Message _finish_frame(self):
        cdef uint32_t expected = _be32(self._trailer)
        cdef dict headers
        cdef object payload
        if self._crc != expected:
            raise MessageChecksumMismatch(expected, self._crc)
        headers = {} if self._headers == NULL else _decode_headers(
            self._headers, self._headers + (self._headers_end - PRELUDE_LENGTH), self.typed_values)
        if self._payload == NULL:
            payload = b""
        else:
            payload = <object>self._payload
            Py_DECREF(payload)  # the reference held in self._payload now belongs to `payload`
            self._payload = NULL
            self._payload_capacity = 0
        self._release_frame()
        return _new_message(self.message_type, headers, payload, self._headers_end - PRELUDE_LENGTH,
                            expected)

    cdef Message _frame_message(self, const unsigned char *p, uint32_t total):
        """The message of one whole frame at ``p`` whose prelude is already checked."""
        cdef uint32_t expected = _be32(p + total - 4)
        cdef uint32_t headers_length = _be32(p + 4)
        cdef const unsigned char *headers_end = p + PRELUDE_LENGTH + headers_length
        cdef uint32_t calculated
        # The message CRC continues from the prelude CRC (verified equal to the CRC of bytes [0, 8)).
        if total >= NOGIL_THRESHOLD:
            with nogil:
                calculated = evs_crc32(_be32(p + 8), p + 8, total - 12)
        else:
            calculated = evs_crc32(_be32(p + 8), p + 8, total - 12)
        if calculated != expected:
            raise MessageChecksumMismatch(expected, calculated)
        return _new_message(
            self.message_type,
            _decode_headers(p + PRELUDE_LENGTH, headers_end, self.typed_values),
            PyBytes_FromStringAndSize(<const char *>headers_end, (p + total - 4) - headers_end),
            headers_length,
            expected,
        )


def decode(data, **limits):
    """Every message of a whole stream; an incomplete tail raises ``TruncatedStream``."""
    cdef Decoder decoder = Decoder(**limits)
    messages = decoder.feed(data)
    decoder.close()
    return messages


# ----------------------------------------------------------------------------------------- encoder

cdef struct _Writer:
    # A growable byte buffer for one frame's prelude and headers; small frames never touch the heap.
    unsigned char *data
    Py_ssize_t length
    Py_ssize_t capacity
    unsigned char inline_data[512]


cdef unsigned char *_reserve(_Writer *out, Py_ssize_t n) except NULL:
    cdef Py_ssize_t capacity
    cdef unsigned char *grown
    if out.length + n > out.capacity:
        capacity = max(2 * out.capacity, out.length + n)
        grown = <unsigned char *>malloc(capacity)
        if grown == NULL:
            raise MemoryError()
        memcpy(grown, out.data, out.length)
        if out.data != out.inline_data:
            free(out.data)
        out.data = grown
        out.capacity = capacity
    out.length += n
    return out.data + out.length - n


cdef int _write_bytes(_Writer *out, str name, int type_byte, const char *raw, Py_ssize_t n) except -1:
    cdef unsigned char *p
    if n > MAX_VALUE_LENGTH:
        raise InvalidHeaderValue.too_long(name, type_byte, n)
    p = _reserve(out, 3 + n)
    p[0] = <unsigned char>type_byte
    p[1] = <unsigned char>(n >> 8)
    p[2] = <unsigned char>n
    memcpy(p + 3, raw, n)
    return 0


cdef int _write_fixed(_Writer *out, int type_byte, int64_t value) except -1:
    cdef Py_ssize_t size = 1 if type_byte == BYTE else 2 if type_byte == SHORT else 4 if type_byte == INTEGER else 8
    cdef unsigned char *p = _reserve(out, 1 + size)
    p[0] = <unsigned char>type_byte
    if size == 1:
        p[1] = <unsigned char>value
    elif size == 2:
        p[1] = <unsigned char>(<uint64_t>value >> 8)
        p[2] = <unsigned char>value
    elif size == 4:
        _put32(p + 1, <uint32_t>value)
    else:
        _put64(p + 1, <uint64_t>value)
    return 0


cdef int _write_value(_Writer *out, str name, object value) except -1:
    cdef Py_ssize_t n
    cdef const char *raw
    cdef int overflow = 0
    cdef long long number
    cdef Py_buffer view
    cdef unsigned char *p
    if value is True or value is False:
        _reserve(out, 1)[0] = BOOL_TRUE if value is True else BOOL_FALSE
    elif isinstance(value, str):
        try:
            raw = PyUnicode_AsUTF8AndSize(value, &n)
        except UnicodeEncodeError:
            raise InvalidHeaderValue("not valid UTF-8", name) from None
        _write_bytes(out, name, STRING, raw, n)
    elif isinstance(value, _SizedInt):
        _write_fixed(out, value.wire_type, value)
    elif isinstance(value, int):
        number = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow:
            raise InvalidHeaderValue(f"int {value} does not fit in 64 bits", name)
        _write_fixed(out, INTEGER if -0x80000000 <= number <= 0x7FFFFFFF else LONG, number)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
        try:
            _write_bytes(out, name, BYTE_ARRAY, <const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
    elif isinstance(value, _uuid.UUID):
        raw_uuid = value.bytes
        p = _reserve(out, 17)
        p[0] = UUID
        memcpy(p + 1, PyBytes_AS_STRING(raw_uuid), 16)
    elif isinstance(value, _datetime.datetime):
        _write_fixed(out, TIMESTAMP, Timestamp.from_datetime(value))
    else:
        raise InvalidHeaderValue(f"unsupported type {type(value).__name__}", name)
    return 0


cdef int _write_name(_Writer *out, object name) except -1:
    cdef Py_ssize_t n
    cdef const char *raw
    cdef unsigned char *p
    if not isinstance(name, str):
        raise InvalidHeaderName(f"expected str, got {type(name).__name__}")
    try:
        raw = PyUnicode_AsUTF8AndSize(name, &n)
    except UnicodeEncodeError:
        raise InvalidHeaderName("not valid UTF-8") from None
    if not 0 < n <= MAX_NAME_LENGTH:
        raise InvalidHeaderName(f"{n} bytes, must be 1 to {MAX_NAME_LENGTH}")
    p = _reserve(out, 1 + n)
    p[0] = <unsigned char>n
    memcpy(p + 1, raw, n)
    return 0


def encode(headers, payload=b""):
    """One frame with these headers (in iteration order) and this payload."""
    cdef _Writer out
    cdef Py_buffer view
    cdef Py_ssize_t headers_length, total
    cdef Py_ssize_t position = 0
    cdef PyObject *name
    cdef PyObject *value
    cdef object frame
    cdef unsigned char *p
    if type(headers) is not dict and not isinstance(headers, _Mapping):
        raise TypeError(f"headers must be a mapping, not {type(headers).__name__}")
    out.data = out.inline_data
    out.length = 0
    out.capacity = sizeof(out.inline_data)
    try:
        _reserve(&out, PRELUDE_LENGTH)
        if type(headers) is dict:
            while PyDict_Next(headers, &position, &name, &value):
                _write_name(&out, <object>name)
                _write_value(&out, <object>name, <object>value)
        else:
            for key, item in headers.items():
                _write_name(&out, key)
                _write_value(&out, key, item)
        headers_length = out.length - PRELUDE_LENGTH
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            total = MIN_FRAME_LENGTH + headers_length + view.len
            if <uint64_t>total > MAX_FRAME_LENGTH:
                raise InvalidPayloadLength(view.len, MAX_FRAME_LENGTH - MIN_FRAME_LENGTH - headers_length)
            frame = PyBytes_FromStringAndSize(NULL, total)
            p = <unsigned char *>PyBytes_AS_STRING(frame)
            _put32(out.data, <uint32_t>total)
            _put32(out.data + 4, <uint32_t>headers_length)
            _put32(out.data + 8, evs_crc32_software(0, out.data, 8))
            memcpy(p, out.data, out.length)
            memcpy(p + out.length, view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
    finally:
        if out.data != out.inline_data:
            free(out.data)
    # The message CRC continues from the prelude CRC over bytes [8, total - 4).
    _put32(p + total - 4, evs_crc32(_be32(p + 8), p + 8, total - 12))
    return frame
