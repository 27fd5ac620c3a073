#!/usr/bin/env bash
# The whole test suite and a fuzz burst against an ASan+UBSan build of evstream's C extension.
#
#   tests/fuzz/sanitize.sh [FUZZ_SECONDS]        # default 60; 0 skips the fuzz burst
#
# Environment: PYTHON (default: python3 on PATH, e.g. /work/venv/bin/python), CC (default clang; gcc
# works too, without C coverage for the fuzzer), KEEP=1 keeps the temporary build directory,
# PYTEST_ARGS (extra pytest arguments, e.g. "-x").
#
# How it works: tests/fuzz/build_sanitized.py copies src/evstream and ext/ into a temporary directory
# and builds the extension there with -fsanitize=address,undefined (-fno-sanitize-recover, -fno-wrapv;
# with clang also fuzzer-no-link); the checkout's own build is not touched. CPython itself is not built
# with ASan, so the sanitizer runtime is preloaded: atheris' asan_with_fuzzer.so (ASan + UBSan +
# libFuzzer, which the coverage hooks need) when atheris is installed, else clang's
# libclang_rt.asan-x86_64.so or gcc's libasan.so. PYTHONMALLOC=malloc routes every Python object
# (the payload bytes objects included) through ASan's allocator so overflows of them are caught.
# Leak detection is off: CPython does not free everything at exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$(command -v python3)}"
FUZZ_SECONDS="${1:-60}"
export CC="${CC:-clang}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/evs-sanitize.XXXXXX")"
cleanup() { if [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi; }
trap cleanup EXIT


# The sanitizer runtime to preload.
HAVE_ATHERIS=0
"$PYTHON" -c "import atheris" 2>/dev/null && HAVE_ATHERIS=1
if [[ "$CC" == *clang* ]]; then
  if [ "$HAVE_ATHERIS" = 1 ]; then
    RUNTIME="$("$PYTHON" -c "import atheris; print(atheris.path())")/asan_with_fuzzer.so"
  else
    export EVS_SANITIZE_FUZZER=0  # no libFuzzer to provide the coverage hooks
    RUNTIME="$("$CC" -print-file-name=libclang_rt.asan-x86_64.so)"
  fi
else
  # gcc: its ASan runtime, and libubsan for the UB handlers.
  RUNTIME="$("$CC" -print-file-name=libasan.so):$("$CC" -print-file-name=libubsan.so)"
fi
echo "   runtime: $RUNTIME"

echo "== building the sanitized extension in $WORK ($CC)"
SO="$("$PYTHON" "$ROOT/tests/fuzz/build_sanitized.py" "$WORK" 2> "$WORK/build.log" | tail -1)" || {
  grep -v -i "warning" "$WORK/build.log" | tail -40; exit 1; }
echo "   $SO"

export PYTHONPATH="$WORK/src"
export PYTHONMALLOC=malloc
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$WORK/reports"
# Reports go to files too: pytest captures fd 2, and an aborting process loses the capture.
export ASAN_OPTIONS="log_path=$WORK/reports/asan:detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="log_path=$WORK/reports/ubsan:print_stacktrace=1:halt_on_error=1"
show_reports() { for f in "$WORK"/reports/*; do [ -f "$f" ] && { echo "--- $f"; head -60 "$f"; }; done; return 0; }
SAN_ENV=(env LD_PRELOAD="$RUNTIME")

# The sanitized build is the one imported, and ASan is live in that process.
"${SAN_ENV[@]}" "$PYTHON" - "$WORK" <<'EOF'
import sys, evstream, evstream._codec as c
assert evstream.IMPLEMENTATION == "c", evstream.IMPLEMENTATION
assert c.__file__.startswith(sys.argv[1]), c.__file__
print(f"   imported {c.__file__} (CRC32 backend {c.CRC32_BACKEND})")
EOF

echo "== test suite (sanitized)"
cd "$ROOT"
# -p no:cacheprovider: do not write .pytest_cache. The fuzz-marked test skips itself here (the burst
# below is the same thing, sanitized).
tests_status=0
"${SAN_ENV[@]}" "$PYTHON" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests || tests_status=$?
# A crash (abort) is a sanitizer finding; plain test failures are reported at the end.
show_reports
if [ "$tests_status" -gt 1 ]; then echo "test suite aborted (exit $tests_status)"; exit 1; fi

if [ "$FUZZ_SECONDS" != 0 ]; then
  echo "== fuzz burst (sanitized, ${FUZZ_SECONDS}s)"
  mkdir -p "$WORK/corpus"
  if [ "$HAVE_ATHERIS" = 1 ]; then
    status=0
    # C only: the twin is pure Python (the differential check runs unsanitized in `pytest -m fuzz`).
    (cd "$WORK" && EVS_FUZZ_ONLY=c "${SAN_ENV[@]}" "$PYTHON" "$ROOT/tests/fuzz/fuzz_decoder.py" \
      -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$WORK/" \
      "$WORK/corpus" "$ROOT/tests/fuzz/corpus") > "$WORK/fuzz.log" 2>&1 || status=$?
    grep -E "INITED|DONE|stat::number_of_executed|stat::average|stat::peak" "$WORK/fuzz.log" || true
    if [ "$status" != 0 ]; then
      tail -60 "$WORK/fuzz.log"; show_reports
      mkdir -p "$ROOT/tests/fuzz/artifacts" && cp "$WORK"/crash-* "$WORK"/timeout-* "$WORK"/oom-* \
        "$ROOT/tests/fuzz/artifacts/" 2>/dev/null || true
      echo "fuzz burst failed (exit $status); inputs copied to tests/fuzz/artifacts/"
      exit 1
    fi
  else
    echo "   atheris not installed: coverage-less mutation loop instead"
    "${SAN_ENV[@]}" "$PYTHON" "$ROOT/tests/fuzz/fuzz_decoder.py" --no-atheris -n 100000000 \
      -t "$FUZZ_SECONDS" "$ROOT/tests/fuzz/corpus"
  fi
fi
if ls "$WORK"/reports/* >/dev/null 2>&1; then show_reports; echo "sanitizer reports found"; exit 1; fi
if [ "$tests_status" != 0 ]; then echo "no sanitizer report, but the test suite had failures (exit $tests_status)"; exit 1; fi
echo "== sanitized run clean"
