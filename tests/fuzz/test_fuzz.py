"""The fuzz harness in the test suite.

* ``test_corpus_replay`` (default run, < 1 s): every seed through every check of the harness (both
  implementations, random chunkings, re-encoding), plus the CRC-fixing and mutation helpers.
* ``test_fuzz_short`` (``-m fuzz``): a bounded atheris run (EVSTREAM_FUZZ_SECONDS, default 60) over the
  seed corpus in a subprocess; new inputs go to a temporary directory, the repo corpus is only read.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
sys.path.insert(0, str(HERE))

if importlib.util.find_spec("evstream._codec") is None:
    pytest.skip(
        "the differential fuzzer compares the C and pure-Python implementations: no C extension here",
        allow_module_level=True,
    )

import fuzz_decoder  # noqa: E402

fuzz_decoder.init()


def test_corpus_is_small_and_covers_the_seed_kinds() -> None:
    files = sorted(CORPUS.iterdir())
    assert sum(f.stat().st_size for f in files) < 300 * 1024
    names = {f.name.rsplit("-", 1)[0] for f in files}
    for kind in ("true", "false", "int8", "int16", "int32", "int64", "bytes", "string", "timestamp", "uuid"):
        assert f"type-{kind}" in names
    assert any(n.startswith("vector-positive-") for n in names)
    assert any(n.startswith("mutated-recrc-") for n in names)


def test_corpus_replay() -> None:
    from evstream import decode

    accepted = 0
    for path in sorted(CORPUS.iterdir()):
        data = path.read_bytes()
        fuzz_decoder.check(data)
        with contextlib.suppress(Exception):
            accepted += bool(decode(data))
    assert accepted >= 20  # the harness saw real messages, not only errors


def test_harness_catches_a_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    # The harness is only worth running if it fails when the twins differ.
    frame = next(p for p in CORPUS.iterdir() if p.name.startswith("type-all-")).read_bytes()
    assert len(fuzz_decoder.C.decode(frame)) == 1
    fuzz_decoder.check(frame)
    real_decoder = fuzz_decoder.PY.Decoder

    class Lossy(real_decoder):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def feed(self, data):  # type: ignore[no-untyped-def]
            return [m for m in super().feed(data) if not m.payload.startswith(b"all")]

    monkeypatch.setattr(fuzz_decoder.PY, "Decoder", Lossy)
    with pytest.raises(AssertionError, match="disagreement"):
        fuzz_decoder.check(frame)


def test_fix_crcs_makes_frames_decode() -> None:
    from evstream import decode

    frame = bytearray(next(p for p in CORPUS.iterdir() if p.name.startswith("tokens-")).read_bytes())
    frame[30] ^= 0x01  # inside the first frame's headers: message CRC now wrong
    frame[8] ^= 0x01  # and the prelude CRC
    with pytest.raises(Exception, match="checksum"):
        decode(bytes(frame))
    fixed = fuzz_decoder.fix_crcs(bytes(frame))
    assert len(fixed) == len(frame)
    assert len(decode(fixed)) == 4


def test_no_atheris_loop_runs() -> None:
    rng = random.Random(1)
    corpus = fuzz_decoder.load_corpus([str(CORPUS)])
    for _ in range(300):
        fuzz_decoder.check(fuzz_decoder.mutate(rng.choice(corpus), rng, corpus))


@pytest.mark.fuzz
@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed (pip install atheris)"
)
def test_fuzz_short(tmp_path: Path) -> None:
    seconds = int(os.environ.get("EVSTREAM_FUZZ_SECONDS", "60"))
    env = dict(os.environ)
    import evstream

    # the evstream under test (source tree or site-packages), and the tests' helpers
    package_root = str(Path(evstream.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    (tmp_path / "new").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_decoder.py"),
            f"-max_total_time={seconds}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-max_len=65536",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path / "new"),
            str(CORPUS),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    log = result.stdout + result.stderr
    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    print(executed.group(0) if executed else log[-3000:])
    artifacts = [
        p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))
    ]
    assert result.returncode == 0 and not artifacts, f"fuzzer found {artifacts}:\n{log[-6000:]}"
    assert executed and int(executed.group(1)) > 1000, log[-3000:]
