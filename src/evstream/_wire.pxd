# The wire constants of _wire.py for the C codec, as compile-time values (tests/test_wire.py checks that
# both files say the same).

cdef enum:
    PRELUDE_LENGTH = 12
    MESSAGE_CRC_LENGTH = 4
    MIN_FRAME_LENGTH = 16
    MAX_NAME_LENGTH = 255
    MAX_VALUE_LENGTH = 32767
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

# Over the range of a C enum (int): a typed constant.
cdef extern from *:
    """
    #define EVS_MAX_FRAME_LENGTH 0xFFFFFFFFULL
    """
    unsigned long long MAX_FRAME_LENGTH "EVS_MAX_FRAME_LENGTH"
