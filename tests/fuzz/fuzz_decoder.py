"""Coverage-guided differential fuzzer for the event stream decoder (atheris / libFuzzer).

Every input is an event stream (raw bytes). It is decoded by the C extension and by the pure-Python
twin, each fed in several chunkings (whole, and random splits derived from the input, so every run is
reproducible), and once more with every frame's CRCs made right (so the fuzzer gets past the checksums
into the lengths and the header parser). The checks:

* both implementations, in every chunking, give the same messages (headers with their value types,
  payload) or the same error class and the same message;
* nothing but an ``EventStreamError`` is ever raised (anything else is reported as a crash);
* a failed decoder stays failed: ``feed()`` and ``close()`` re-raise the same error object;
* every accepted stream re-encodes, in both implementations, to exactly the bytes that were decoded;
* wrapped in HTTP/1.1 chunks, the response reader's fast path (``Decoder._http_chunks``) takes the same
  chunks in both implementations, and what it takes is exactly the data events those chunks decode to.

Short run (what ``tests/fuzz/test_fuzz.py`` does, ~60 s)::

    PYTHONPATH=src python tests/fuzz/fuzz_decoder.py -max_total_time=60 -timeout=10 \
        -rss_limit_mb=2048 /tmp/evs-fuzz-corpus tests/fuzz/corpus

Longer run (new inputs go to the first directory; keep tests/fuzz/corpus read-only)::

    mkdir -p /tmp/evs-fuzz-corpus && PYTHONPATH=src python tests/fuzz/fuzz_decoder.py \
        -max_total_time=1800 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 /tmp/evs-fuzz-corpus tests/fuzz/corpus

Replay one input (a crash file, say) without libFuzzer::

    PYTHONPATH=src python tests/fuzz/fuzz_decoder.py crash-<sha1>     # atheris runs the file once
    PYTHONPATH=src python -c "import sys; sys.path.insert(0, 'tests/fuzz'); import fuzz_decoder as f; \
        f.check(open('crash-<sha1>', 'rb').read())"

EVS_FUZZ_ONLY=c (or python) runs the checks on one implementation only (no differential check).

Without atheris, ``python tests/fuzz/fuzz_decoder.py --no-atheris [-n N] [corpus dirs...]`` runs a
coverage-less mutation loop (random byte flips, splices, CRC fixes) over the corpus with the same checks.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
try:  # the package under test: whatever PYTHONPATH gives, else this checkout's src/
    import evstream  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(HERE.parent.parent / "src"))


def _import_codecs() -> tuple[Any, Any]:
    import importlib

    c = importlib.import_module("evstream._codec")
    py = importlib.import_module("evstream._codec_py")
    return c, py


C = PY = None  # set by init()
CODECS: tuple[Any, ...] = ()
EventStreamError: type[Exception] = Exception


def init(instrument: bool = False) -> None:
    """Import both codecs. EVS_FUZZ_ONLY=c checks the C extension alone (the sanitized burst: the
    twin is pure Python, and without it ASan runs several times more inputs)."""
    global C, PY, CODECS, EventStreamError
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["evstream"]):
            C, PY = _import_codecs()
    else:
        C, PY = _import_codecs()
    only = os.environ.get("EVS_FUZZ_ONLY", "")
    CODECS = (C,) if only == "c" else (PY,) if only == "python" else (C, PY)
    from evstream.errors import EventStreamError as _E

    EventStreamError = _E


# --------------------------------------------------------------------------------------- helpers

_PRELUDE = struct.Struct(">III")


def fix_crcs(data: bytes) -> bytes:
    """The same stream with the prelude and message CRC of every frame made right.

    Frames are walked by their stated total length; a length under 16 or past the end stops the walk
    (the prelude CRC of a last partial frame is still fixed, so the decoder reaches the lengths).
    """
    out = bytearray(data)
    pos = 0
    while len(out) - pos >= 12:
        total, _, _ = _PRELUDE.unpack_from(out, pos)
        struct.pack_into(">I", out, pos + 8, zlib.crc32(out[pos : pos + 8]))
        if total < 16 or len(out) - pos < total:
            break
        struct.pack_into(">I", out, pos + total - 4, zlib.crc32(out[pos : pos + total - 4]))
        pos += total
    return bytes(out)


def splits(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` cut into chunks: mostly small, sometimes empty, sometimes big."""
    chunks = []
    pos = 0
    while pos < len(data):
        kind = rng.random()
        if kind < 0.1:
            size = 0
        elif kind < 0.5:
            size = rng.randint(1, 13)
        elif kind < 0.9:
            size = rng.randint(1, 300)
        else:
            size = rng.randint(1, len(data) - pos)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def _describe_message(message: Any) -> tuple[Any, ...]:
    headers = tuple((name, type(value), value) for name, value in message.headers.items())
    assert type(message.payload) is bytes, type(message.payload)
    assert type(message.headers) is dict, type(message.headers)
    return headers, message.payload


def run(codec: Any, chunks: list[bytes], limits: dict[str, int]) -> tuple[list[Any], Any]:
    """(messages, error) of feeding ``chunks`` then close(); checks the failure semantics."""
    decoder = codec.Decoder(**limits)
    messages: list[Any] = []
    error = None
    try:
        for chunk in chunks:
            messages += decoder.feed(chunk)
        decoder.close()
    except EventStreamError as exc:
        error = exc
    # anything else propagates: a crash for the fuzzer
    if error is not None:
        # a failed decoder stays failed, with the same error
        for again in (lambda: decoder.feed(b""), lambda: decoder.feed(b"\0" * 16), decoder.close):
            try:
                again()
            except EventStreamError as exc:
                assert exc is error, (codec.__name__, exc, error)
            else:
                raise AssertionError(f"{codec.__name__}: failed decoder accepted input after {error!r}")
    else:
        decoder.close()  # closing twice on a clean boundary is fine
    return [_describe_message(m) for m in messages], None if error is None else (type(error), str(error))


def check_stream(data: bytes, rng: random.Random) -> None:
    limits: dict[str, int] = {}
    if rng.random() < 0.25:
        limits = {"max_payload_length": rng.randint(0, 600), "max_headers_length": rng.randint(0, 300)}
    splitting = [[data], splits(data, rng), splits(data, rng)]
    results = []
    for codec in CODECS:
        for chunks in splitting:
            results.append((codec.__name__, len(chunks), run(codec, chunks, limits)))
    reference = results[0][2]
    for name, count, result in results[1:]:
        assert result == reference, (
            f"disagreement: {results[0][0]} whole vs {name} in {count} chunks (limits {limits})\n"
            f"  {reference!r}\n  {result!r}"
        )
    if not limits:
        # decode() must agree with feed()+close()
        for codec in CODECS:
            try:
                decoded = [_describe_message(m) for m in codec.decode(data)]
            except EventStreamError as exc:
                assert reference[1] == (type(exc), str(exc)), (codec.__name__, exc, reference)
            else:
                assert reference[1] is None and decoded == reference[0], (codec.__name__, reference)
    messages, _ = reference
    check_http_chunks(data, rng, messages)
    if messages:
        # Re-encode every accepted message: the bytes must be the ones decoded, in both encoders.
        for codec in CODECS:
            encoded = b"".join(
                codec.encode({name: value for name, _, value in headers}, payload)
                for headers, payload in messages
            )
            assert data.startswith(encoded), f"{codec.__name__}: re-encoded stream differs from input"
        # and re-decode it: typed values survive the round trip
        redecoded = [_describe_message(m) for m in CODECS[0].decode(encoded)]
        assert redecoded == messages


def frame_groups(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` cut at frame boundaries (as the prelude lengths say), a few frames per piece; the rest
    (past a length that does not fit) is one piece."""
    pieces, pos = [], 0
    while pos < len(data):
        start = pos
        for _ in range(rng.randint(1, 3)):
            total = struct.unpack_from(">I", data, pos)[0] if len(data) - pos >= 4 else 0
            if not 16 <= total <= len(data) - pos:
                pos = len(data)
                break
            pos += total
        pieces.append(data[start:pos])
    return pieces


def check_http_chunks(data: bytes, rng: random.Random, messages: list[Any]) -> None:
    event_types = ["PayloadPart"]
    for headers, _ in messages[:1]:
        event_types += [value for name, _, value in headers if name == ":event-type" and type(value) is str]
    for pieces in (frame_groups(data, rng), splits(data, rng)):
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces if piece)
        for event_type in event_types:
            results = []
            for codec in CODECS:
                events: list[Any] = []
                pos = codec.Decoder()._http_chunks(
                    body, 0, events, event_type, None, "Bytes", None, 16384, 256
                )
                results.append((events, pos))
            assert results[0] == results[-1], f"_http_chunks disagree: {results!r}"
            events, pos = results[0]
            taken, at = b"", 0
            while at < pos:  # the frames of the chunks taken
                head = body.index(b"\r\n", at)
                size = int(body[at:head], 16)
                taken += body[head + 2 : head + 2 + size]
                at = head + 2 + size + 2
            assert at == pos, (at, pos)
            decoded = CODECS[0].decode(taken)
            assert [m.payload for m in decoded] == events
            assert all(m.headers[":event-type"] == event_type for m in decoded)


def check(data: bytes) -> None:
    """All checks on one input (raw, and with the CRCs fixed)."""
    rng = random.Random(zlib.crc32(data) ^ len(data))
    check_stream(data, rng)
    fixed = fix_crcs(data)
    if fixed != data:
        check_stream(fixed, rng)


def TestOneInput(data: bytes) -> None:
    check(data)


# ------------------------------------------------------------------------------- no-atheris mode


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.35 and out:
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op < 0.55 and out:
            i = rng.randrange(len(out))
            out[i] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op < 0.7 and out:
            i = rng.randrange(len(out))
            del out[i : i + rng.randint(1, 8)]
        elif op < 0.85:
            i = rng.randrange(len(out) + 1)
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            other = rng.choice(corpus)
            i = rng.randrange(len(out) + 1)
            out[i:] = other[rng.randrange(len(other) + 1) :]
    return bytes(out)


def load_corpus(dirs: list[str]) -> list[bytes]:
    corpus = []
    for d in dirs:
        for path in sorted(Path(d).iterdir()):
            if path.is_file():
                corpus.append(path.read_bytes())
    return corpus


def main_no_atheris(argv: list[str]) -> int:
    import time

    count = 200_000
    seconds = None
    dirs = []
    args = iter(argv)
    for arg in args:
        if arg == "-n":
            count = int(next(args))
        elif arg == "-t":
            seconds = float(next(args))
        else:
            dirs.append(arg)
    corpus = load_corpus(dirs or [str(HERE / "corpus")])
    rng = random.Random(int(os.environ.get("EVS_FUZZ_SEED", "0")) or None)
    start = time.monotonic()
    for data in corpus:
        check(data)
    done = len(corpus)
    while done < count and (seconds is None or time.monotonic() - start < seconds):
        check(mutate(rng.choice(corpus), rng, corpus))
        done += 1
    print(f"no-atheris: {done} inputs in {time.monotonic() - start:.1f} s, no failure")
    return 0


def main() -> None:
    if "--no-atheris" in sys.argv:
        init()
        print(f"evstream._codec from {C.__file__}", flush=True)
        sys.exit(main_no_atheris([a for a in sys.argv[1:] if a != "--no-atheris"]))
    import atheris

    init(instrument=True)
    print(f"evstream._codec from {C.__file__}", flush=True)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
