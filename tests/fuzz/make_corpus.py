"""(Re)generate the seed corpus in tests/fuzz/corpus/ (deterministic; independent of both codecs).

    python tests/fuzz/make_corpus.py

Seeds: the AWS test vectors, one frame per header type (with edge values), SageMaker-like streams,
every header error of tests/test_decoder.py with correct CRCs, impossible and over-limit preludes,
and mutated frames (bit flips, with and without the CRCs fixed afterwards).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from frames import header, raw_frame, recrc, string_header, token_frame  # noqa: E402

CORPUS = HERE / "corpus"
VECTORS = HERE.parent / "vectors" / "encoded"


def u16(n: int) -> bytes:
    return struct.pack(">H", n)


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for kind in ("positive", "negative"):
        for path in sorted((VECTORS / kind).iterdir()):
            out[f"vector-{kind}-{path.name}"] = path.read_bytes()

    typed = {  # name -> (type byte, value bytes)
        "true": (0, b""),
        "false": (1, b""),
        "int8": (2, b"\x80"),
        "int16": (3, b"\x7f\xff"),
        "int32": (4, b"\x80\0\0\0"),
        "int64": (5, b"\x7f" + b"\xff" * 7),
        "bytes": (6, u16(3) + b"\0\xff\x01"),
        "bytes-empty": (6, u16(0)),
        "string": (7, u16(5) + "é€".encode()),
        "string-empty": (7, u16(0)),
        "timestamp": (8, struct.pack(">q", 1_700_000_000_000)),
        "uuid": (9, bytes(range(16))),
    }
    blocks = {name: header(name.encode(), t, value) for name, (t, value) in typed.items()}
    blocks["long-name"] = header(b"n" * 255, 0)
    blocks["utf8-name"] = header("név".encode(), 1)
    for name, block in blocks.items():
        out[f"type-{name}"] = raw_frame(block, b"payload")
    out["type-all"] = raw_frame(b"".join(blocks.values()), b"all")
    out["type-string-max"] = raw_frame(header(b"s", 7, u16(32767) + b"x" * 32767))
    out["type-string-over"] = raw_frame(header(b"s", 7, u16(32768) + b"x" * 32768))

    out["empty-frame"] = raw_frame()
    out["payload-only"] = raw_frame(b"", bytes(range(256)))
    out["payload-4k"] = raw_frame(string_header(":event-type", "PayloadPart"), b"z" * 4096)
    out["tokens"] = b"".join(token_frame(f"tok{i}") for i in range(4))
    out["sagemaker-exception"] = raw_frame(
        string_header(":message-type", "exception")
        + string_header(":exception-type", "ModelStreamError")
        + string_header(":content-type", "application/json"),
        b'{"Message": "boom", "ErrorCode": "StreamBroken"}',
    )
    out["sagemaker-error"] = raw_frame(
        string_header(":message-type", "error")
        + string_header(":error-code", "InternalFailure")
        + string_header(":error-message", "nope"),
    )

    bad_blocks = {
        "empty-name": header(b"", 0),
        "name-truncated": b"\x05abc",
        "name-not-utf8": header(b"\xff", 0),
        "no-type-byte": b"\x01a",
        "unknown-type": header(b"a", 10),
        "unknown-type-255": header(b"a", 255),
        "int32-truncated": header(b"a", 4, b"\0\0\0"),
        "uuid-truncated": header(b"a", 9, b"\0" * 15),
        "string-len-truncated": header(b"a", 7, b"\0"),
        "string-truncated": header(b"a", 7, b"\0\x05abc"),
        "bytes-truncated": header(b"a", 6, b"\0\x05abc"),
        "string-bad-utf8": header(b"a", 7, b"\0\x02\xc3\x28"),
        "string-surrogate": header(b"a", 7, b"\0\x03\xed\xa0\x80"),
        "duplicate": header(b"a", 0) + header(b"a", 1),
    }
    for name, block in bad_blocks.items():
        out[f"bad-{name}"] = raw_frame(block, b"p")
    out["bad-value-into-payload"] = raw_frame(header(b"a", 7, b"\0\x06abc"), b"def")

    out["len-under-16"] = raw_frame(total_length=15)
    out["len-zero"] = raw_frame(total_length=0)
    out["len-headers-dont-fit"] = raw_frame(b"\0" * 4, total_length=20, headers_length=5)
    out["len-huge-prelude"] = raw_frame(total_length=0xFFFFFFFF)[:12] + b"x" * 100
    out["len-over-payload-limit"] = raw_frame(total_length=16 + 24 * 1024 * 1024 + 1)[:12] + b"x" * 20
    out["len-over-headers-limit"] = raw_frame(
        total_length=16 + 128 * 1024 + 1, headers_length=128 * 1024 + 1
    )[:12]
    out["len-max-headers-length"] = raw_frame(total_length=0xFFFFFFFF, headers_length=0xFFFFFFEF)[:12]
    out["truncated-prelude"] = token_frame()[:7]
    out["truncated-frame"] = token_frame()[:40]
    out["good-then-truncated"] = token_frame("a") + token_frame("b")[:-1]
    bad_crc = bytearray(token_frame("c"))
    bad_crc[-6] ^= 1
    out["good-bad-good"] = token_frame("a") + bytes(bad_crc) + token_frame("d")
    bad_prelude = bytearray(token_frame("c"))
    bad_prelude[2] ^= 0x10
    out["good-badprelude"] = token_frame("a") + bytes(bad_prelude)

    rng = random.Random(7)
    base = token_frame("mutate me")
    all_types = out["type-all"]
    for i in range(24):
        source = base if i % 2 else all_types
        mutated = bytearray(source)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        out[f"mutated-{i:02d}"] = bytes(mutated)
        # the same damage behind correct CRCs: reaches the length checks and the header parser
        if len(mutated) >= 16:
            fixed = bytearray(mutated)
            fixed[:8] = source[:8]  # keep the lengths walkable
            out[f"mutated-recrc-{i:02d}"] = recrc(bytes(fixed))
    return out


def main() -> None:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir()
    total = 0
    for name, data in seeds().items():
        digest = hashlib.sha1(data).hexdigest()[:8]
        (CORPUS / f"{name}-{digest}").write_bytes(data)
        total += len(data)
    print(f"{len(list(CORPUS.iterdir()))} seeds, {total} bytes in {CORPUS}")


if __name__ == "__main__":
    main()
