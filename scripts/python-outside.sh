#!/usr/bin/env bash
# `make test-python-outside`: the Python package as a user installs it, in a
# fresh venv in a temporary directory outside the repository.
#  1. `pip install ./python` (maturin from PyPI through pip's build
#     isolation): the native module is stripped and small, the version is
#     the one of Cargo.toml (__version__ and the distribution metadata);
#  2. a pytest file written there, using the plugin's fixtures
#     (firma_runtime_dir, firma_sidecar) with real sidecars, passes with
#     $FIRMA_EXAMPLE_SIDECAR unset and no target/ directory on PATH, run
#     from that directory; `pytest --fixtures` shows every fixture's docstring;
#  3. `maturin sdist` carries only what the build needs (listed), and a
#     wheel built from it with plain `maturin build` is stripped too.
# Closes with "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
: "${PYTHON:=python3}" "${PY_TEST_TOOLS:=pytest==9.0.3 maturin==1.16.0}"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)

tmp=$(mktemp -d /tmp/firma-py-outside.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=scripts/checks.sh
. scripts/checks.sh
dwarf() { objdump -h "$1" 2>/dev/null | grep -Ec ' \.debug_(info|line|abbrev|str|ranges|rnglists|loc|loclists|aranges|frame) ' || true; }

# ---- 1. pip install ./python ------------------------------------------------
section "fresh venv in $tmp, pip install ./python"
venv=$tmp/venv
"$PYTHON" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
# shellcheck disable=SC2086
"${pip[@]}" install $PY_TEST_TOOLS >"$tmp/tools.log" 2>&1 || { cat "$tmp/tools.log"; fail "installing $PY_TEST_TOOLS"; }
if "${pip[@]}" install ./python >"$tmp/pip.log" 2>&1; then
    pass "pip install ./python into a fresh venv"
else
    tail -n 40 "$tmp/pip.log"
    fail "pip install ./python failed"
fi
native=$(find "$venv/lib" -path '*/site-packages/firma_stack/_native*.so' | head -n1)
bytes=$(stat -c %s "$native" 2>/dev/null || echo 0)
if ((bytes > 0 && bytes <= 3 * MiB)) && [[ $(dwarf "$native") == 0 ]]; then
    pass "the installed native module is $((bytes / 1024)) KiB (limit 3072 KiB), no debug info"
else
    fail "the installed native module ($native) is $((bytes / 1024)) KiB or keeps debug info"
fi
got=$(cd "$tmp" && "$venv/bin/python" -c '
import importlib.metadata, firma_stack
print(firma_stack.__version__, importlib.metadata.version("firma-stack"), firma_stack.__file__)')
read -r v_mod v_dist where <<<"$got"
if [[ $v_mod == "$version" && $v_dist == "$version" && $where == "$venv"/* ]]; then
    pass "firma_stack.__version__ and the distribution's version are Cargo.toml's $version (imported from the venv)"
else
    fail "versions: module '$v_mod', distribution '$v_dist', Cargo.toml '$version' (from $where)"
fi

# ---- 2. the plugin's fixtures, no checkout ---------------------------------
section "a pytest file outside the repository, FIRMA_EXAMPLE_SIDECAR unset, no target/ on PATH"
mkdir "$tmp/proj"
cp packaging/python/test_smoke.py "$tmp/proj/test_outside.py"
clean_path=$venv/bin:/usr/local/bin:/usr/bin:/bin
if [[ :$clean_path: == *"$root"* ]]; then fail "PATH would contain the checkout"; fi
(cd "$tmp/proj" && env -u FIRMA_EXAMPLE_SIDECAR -u PYTHONPATH PATH="$clean_path" \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q test_outside.py) >"$tmp/pytest.log" 2>&1
rc=$?
check_log pytest "$rc" "$tmp/pytest.log" \
    "the plugin's fixtures start the package's own sidecar: 2 tests passed outside the checkout" \
    "pytest outside the checkout exited $rc (above)" -E '^2 passed'
fixtures=$(cd "$tmp/proj" && env -u FIRMA_EXAMPLE_SIDECAR PATH="$clean_path" \
    "$venv/bin/python" -m pytest -p no:cacheprovider --fixtures test_outside.py 2>&1)
undocumented=$(awk '/^-+ fixtures defined from firma_stack/ {on=1; next} /^-+ / {on=0} on' <<<"$fixtures" |
    grep -B1 'no docstring available' | grep -o '^[a-z_]*' || true)
if grep -q 'fixtures defined from firma_stack.pytest_plugin' <<<"$fixtures" &&
    grep -A3 '^firma_sidecar' <<<"$fixtures" | grep -q 'factory' && [[ -z $undocumented ]]; then
    pass "pytest --fixtures documents every firma_stack fixture"
else
    printf '%s\n' "$fixtures"
    fail "pytest --fixtures: undocumented firma_stack fixtures: ${undocumented:-?}"
fi
if (cd "$tmp" && env -u FIRMA_EXAMPLE_SIDECAR "$venv/bin/python" -m firma_stack.example_sidecar --help) | grep -q -- '--runtime-dir'; then
    pass "python -m firma_stack.example_sidecar --help shows the binary's flags"
else
    fail "python -m firma_stack.example_sidecar --help"
fi

# ---- 3. the sdist -----------------------------------------------------------
section "maturin sdist carries only what the build needs"
if (cd "$root" && "$venv/bin/maturin" sdist -m python/Cargo.toml -o "$tmp/sdist") >"$tmp/sdist.log" 2>&1; then
    listing=$(tar tzf "$tmp"/sdist/*.tar.gz | sed 's|^[^/]*/||' | grep -v '/$' | LC_ALL=C sort)
    printf '%s\n' "$listing" | sed 's/^/[sdist] /'
    allowed='^(PKG-INFO|pyproject.toml|README.md|Cargo.toml|Cargo.lock|build.rs|src/.*\.rs|python/Cargo.toml|python/README.md|python/src/.*\.rs|firma_stack/[a-z_]*\.pyi?|firma_stack/py.typed)$'
    extra=$(grep -Ev "$allowed" <<<"$listing" || true)
    if [[ -z $extra ]] && grep -qx 'src/example_sidecar.rs' <<<"$listing" && grep -qx 'firma_stack/testing.py' <<<"$listing"; then
        pass "sdist: $(wc -l <<<"$listing") files, the Rust sources, the package and the manifests only"
    else
        fail "sdist carries files the build does not need: $(echo $extra)"
    fi
    mkdir "$tmp/unpacked"
    tar xzf "$tmp"/sdist/*.tar.gz -C "$tmp/unpacked"
    src=$(echo "$tmp"/unpacked/*)
    # The repository's target/ as cache only: the sources are the sdist's.
    if (cd "$src" && CARGO_TARGET_DIR="$root/target" "$venv/bin/maturin" build --release \
        -i "$venv/bin/python" -m python/Cargo.toml -o "$tmp/wheel") >"$tmp/build.log" 2>&1; then
        mkdir "$tmp/wheel/x"
        (cd "$tmp/wheel/x" && "$venv/bin/python" -m zipfile -e ../*.whl .)
        so=$(echo "$tmp"/wheel/x/firma_stack/_native*.so)
        bytes=$(stat -c %s "$so")
        if ((bytes <= 3 * MiB)) && [[ $(dwarf "$so") == 0 ]]; then
            pass "plain maturin build of the sdist: a stripped native module of $((bytes / 1024)) KiB"
        else
            fail "maturin build of the sdist: native module $((bytes / 1024)) KiB or with debug info"
        fi
    else
        tail -n 30 "$tmp/build.log"
        fail "the sdist does not build with maturin build (above)"
    fi
else
    cat "$tmp/sdist.log"
    fail "maturin sdist failed"
fi

finish test-python-outside
