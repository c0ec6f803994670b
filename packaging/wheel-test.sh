#!/usr/bin/env bash
# `make test-wheel`: the wheel of `make wheel` as a host without Rust gets
# it. A fresh venv in a temporary directory outside the repository, PATH
# without ~/.cargo/bin (no cargo, no rustc), pip may use the wheel file only
# (--no-index --only-binary), then the package's smoke test
# (packaging/python/test_smoke.py: the pytest plugin's fixtures start the
# package's own example sidecar) with FIRMA_EXAMPLE_SIDECAR unset.
# Closes with "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${PYTHON:=python3}" "${PY_TEST_TOOLS:=pytest==9.0.3}" "${WHEEL_DIR:=target/wheels/dist}"
# shellcheck source=scripts/checks.sh
. scripts/checks.sh
tmp=$(mktemp -d /tmp/firma-wheel-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
python=$(command -v "$PYTHON")
python=$("$python" -c 'import sys; print(sys.executable)')

section "the portable wheel in a fresh venv, no Rust on PATH"
whl=$(ls "$WHEEL_DIR"/firma_stack-*-cp39-abi3-manylinux*_"$(uname -m)".whl 2>/dev/null | head -n1)
if [[ -f $whl && $whl == *manylinux_2_17_* ]]; then
    pass "wheel: $(basename "$whl")"
else
    fail "no manylinux_2_17 wheel in $WHEEL_DIR (run make wheel)"
    finish test-wheel
fi
"$python" -m venv "$tmp/venv"
clean_path=$tmp/venv/bin:/usr/local/bin:/usr/bin:/bin
rust=$(env PATH="$clean_path" bash -c 'command -v cargo rustc rustup' || true)
if [[ -z $rust ]]; then
    pass "PATH=$clean_path has no cargo, rustc or rustup"
else
    fail "a Rust toolchain is on the clean PATH: $rust"
fi
run() { (cd "$tmp" && env -u CARGO_HOME -u RUSTUP_HOME -u FIRMA_EXAMPLE_SIDECAR -u PYTHONPATH -u VIRTUAL_ENV PATH="$clean_path" "$@"); }
if run python -m pip --disable-pip-version-check --quiet install $PY_TEST_TOOLS >"$tmp/tools.log" 2>&1 &&
    run python -m pip --disable-pip-version-check --quiet install --no-index --only-binary=:all: "$(realpath "$whl")" >"$tmp/pip.log" 2>&1; then
    pass "pip install --no-index --only-binary=:all: $(basename "$whl")"
else
    cat "$tmp/tools.log" "$tmp/pip.log"
    fail "installing the wheel (above)"
fi
if out=$(run python -c 'import firma_stack, sys; print(firma_stack.__version__, firma_stack.__file__)') &&
    [[ $out == *" $tmp/venv/"* ]]; then
    pass "import firma_stack from the venv: $out"
else
    fail "import firma_stack: $out"
fi
mkdir "$tmp/proj"
cp packaging/python/test_smoke.py "$tmp/proj/test_smoke.py"
(cd "$tmp/proj" && env -u CARGO_HOME -u RUSTUP_HOME -u FIRMA_EXAMPLE_SIDECAR -u PYTHONPATH -u VIRTUAL_ENV PATH="$clean_path" \
    python -m pytest -p no:cacheprovider -q test_smoke.py) >"$tmp/pytest.log" 2>&1
rc=$?
check_log pytest "$rc" "$tmp/pytest.log" \
    "the package's smoke test: 2 passed with real sidecars, from the wheel alone" \
    "the smoke test exited $rc (above)" -E '^2 passed'
finish test-wheel
