#!/usr/bin/env bash
# `make wheel`: the Python artifacts to publish, in target/wheels/dist:
#  - one abi3 wheel per target in $PY_WHEEL_TARGETS (CPython >= 3.9), built
#    with maturin's zig linker against glibc 2.17 (manylinux2014), so it
#    installs on Debian >= 9, Ubuntu >= 18.04, RHEL/Rocky >= 7;
#  - the sdist, for every other host (pip builds it with a Rust toolchain).
# Each wheel is then checked: `auditwheel show` must find it consistent with
# manylinux_2_17_<arch>, and no dynamic symbol may need a glibc newer than
# 2.17 (objdump -T on x86_64; auditwheel's symbol-version list elsewhere).
#
# Variables (from mk/python.mk): VENV (the project-local venv holding
# maturin, ziglang and auditwheel), PY_WHEEL_TARGETS, OUT.
# Another architecture needs its Rust standard library first, e.g.
#   rustup target add aarch64-unknown-linux-gnu
#   make wheel PY_WHEEL_TARGETS="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu"
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VENV:?}" "${PY_WHEEL_TARGETS:=x86_64-unknown-linux-gnu}" "${OUT:=target/wheels/dist}"
venv=$(cd "$VENV" && pwd)
max_glibc=2.17

rm -rf "$OUT"
mkdir -p "$OUT"
# maturin runs zig as `python -m ziglang` with the python on PATH: the venv's.
export PATH=$venv/bin:$PATH
for target in $PY_WHEEL_TARGETS; do
    arch=${target%%-*}
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target" &&
        [[ $target != "$(rustc -vV | sed -n 's/^host: //p')" ]]; then
        echo "wheel: the Rust target $target is not installed; run: rustup target add $target" >&2
        exit 1
    fi
    maturin build --release --locked --zig --compatibility manylinux2014 --target "$target" \
        -i "$venv/bin/python" -m python/Cargo.toml -o "$OUT"
    whl=$(ls "$OUT"/firma_stack-*-cp39-abi3-*"$arch".whl)
    report=$(auditwheel show "$whl")
    if ! tr '\n' ' ' <<<"$report" | grep -q "consistent with the following platform tag: *\"manylinux_2_17_$arch\""; then
        printf '%s\n' "$report" >&2
        echo "wheel: FAIL: $whl is not manylinux_2_17_$arch (auditwheel above)" >&2
        exit 1
    fi
    x=$(mktemp -d)
    "$venv/bin/python" -m zipfile -e "$whl" "$x"
    so=$(echo "$x"/firma_stack/_native*.so)
    if [[ $arch == "$(uname -m)" ]]; then
        newest=$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)
    else
        newest=$(tr -d '\n' <<<"$report" | grep -o "GLIBC_[0-9.]*" | sed 's/GLIBC_//' | sort -V | tail -n1)
    fi
    rm -rf "$x"
    if [[ $(printf '%s\n' "$newest" "$max_glibc" | sort -V | tail -n1) != "$max_glibc" ]]; then
        echo "wheel: FAIL: $(basename "$whl") needs GLIBC_$newest (> $max_glibc)" >&2
        exit 1
    fi
    echo "wheel: $(basename "$whl"): auditwheel manylinux_2_17_$arch, newest symbol GLIBC_$newest (<= $max_glibc)"
done
maturin sdist -m python/Cargo.toml -o "$OUT"
echo "wheel: artifacts in $OUT:"
ls -1 "$OUT" | sed 's/^/  /'
