#!/usr/bin/env bash
# The C surface's tests (bindings/c/README.md, "Tests"), run by `make test-c`:
#  1. header drift check (and proof that it catches a changed ABI);
#  2. tests/c/*.c (the conformance runner among them; fixtures from
#     target/release/firma-testkit) built with -Wall -Wextra -Werror against
#     the header and the release shared library, run plain, under ASan+UBSan,
#     under valgrind;
#  3. `make install PREFIX=<tmp>`, then the example supervisor built with
#     nothing but pkg-config and run against a real sidecar, the three ways
#     bindings/c/README.md documents: system prefix + ldconfig (in a private
#     mount namespace), an rpath from `pkg-config --variable=libdir`, and
#     statically with `pkg-config --static`;
#  4. that example (bindings/c/status.c, on jansson) reads every answer of
#     the library from real sidecars: list, get, inspect (nested sidecar and
#     error objects), an error object, watch events, stop outcomes, gc.
# Closes with "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
root=$PWD

: "${C_CC:=cc}" "${C_OUT:=target/c}" "${C_LINKDIR:=target/c/lib}" "${MAKE:=make}"
: "${C_WARN:=-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wpedantic}"
: "${FIRMA_VERSION:?set by mk/c.mk}" "${FIRMA_ABI:?set by mk/c.mk}"
bin=$root/target/release
mkdir -p "$C_OUT"
scratch=$(mktemp -d /tmp/firma-c-test.XXXXXX)
sidecar_pids=()
cleanup() {
    for pid in "${sidecar_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${sidecar_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

# shellcheck source=scripts/checks.sh
source scripts/checks.sh

# run_program LABEL CMD...: runs a test program, shows its output prefixed
# with LABEL, adds up its "summary: N passed, N failed". A non-zero exit
# without failed tests (a sanitizer or valgrind report) is one failure more.
run_program() {
    local label=$1 log rc summary p f
    shift
    log=$scratch/$label.log
    # A generous bound so that a hang fails the leg instead of stalling CI.
    timeout -k 10 600 "$@" >"$log" 2>&1
    rc=$?
    sed "s/^/[$label] /" "$log"
    summary=$(grep -E '^summary: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [[ -z $summary ]]; then
        fail "$label: exited $rc without a summary"
        return
    fi
    read -r p f < <(sed -E 's/^summary: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$summary")
    passed=$((passed + p))
    failed=$((failed + f))
    if ((rc != 0 && f == 0)); then
        fail "$label: exit status $rc (see the report above)"
    fi
}

# ---- 1. header -------------------------------------------------------------
section "header drift check"
if $MAKE --no-print-directory header-check >"$scratch/hc.log" 2>&1; then
    pass "include/firma_stack.h matches src/ffi/"
else
    cat "$scratch/hc.log"
    fail "include/firma_stack.h is stale (run \`make header\`)"
fi
# The check must catch an ABI change made without regenerating (a copy of
# the module with one function more in its root file).
cp -r src/ffi "$scratch/ffi"
cat >>"$scratch/ffi/mod.rs" <<'EOF'

/// A function added without regenerating the header.
#[unsafe(no_mangle)]
pub extern "C" fn firma_drift_probe() -> u32 {
    0
}
EOF
if $MAKE --no-print-directory header-check C_FFI_SRC="$scratch/ffi/mod.rs" >"$scratch/drift.log" 2>&1; then
    fail "header-check accepted a changed ABI"
elif grep -q 'firma_drift_probe' "$scratch/drift.log" && grep -q 'make header' "$scratch/drift.log"; then
    pass "header-check fails on a changed ABI, shows the diff and says to run \`make header\`"
else
    cat "$scratch/drift.log"
    fail "header-check failed on a changed ABI without a diff or the regeneration hint"
fi

soname=$(readelf -d "$bin/libfirma_stack.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
header_abi=$(sed -n 's/^#define FIRMA_ABI_VERSION \([0-9]*\)$/\1/p' include/firma_stack.h)
if [[ $soname == "libfirma_stack.so.$header_abi" && $header_abi == "$FIRMA_ABI" ]]; then
    pass "SONAME $soname carries FIRMA_ABI_VERSION $header_abi"
else
    fail "SONAME '$soname' vs FIRMA_ABI_VERSION '$header_abi' (src/ffi/mod.rs: $FIRMA_ABI)"
fi

# ---- 2. the C tests, three ways ---------------------------------------------
section "building tests/c with $C_CC $C_WARN"
defs=(-DC_BIN_DIR="\"$bin\"" -DC_EXPECTED_VERSION="\"$FIRMA_VERSION\"")
link=(-L"$C_LINKDIR" -lfirma_stack -lpthread -Wl,-rpath,"$root/$C_LINKDIR")
# ASan/UBSan instrument the C side; the Rust library is not instrumented,
# but its malloc/free go through ASan's interceptors, so leaks and misuse of
# returned strings (double free, free of a foreign pointer) are caught.
asan=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
programs=()
for src in tests/c/test_*.c; do
    name=$(basename "$src" .c)
    # shellcheck disable=SC2086
    if $C_CC $C_WARN -g -O1 -Iinclude "${defs[@]}" "$src" -o "$C_OUT/$name" "${link[@]}" \
        && $C_CC $C_WARN -g -O1 "${asan[@]}" -Iinclude "${defs[@]}" "$src" -o "$C_OUT/$name.asan" "${link[@]}"; then
        pass "$name compiles cleanly (plain and sanitized)"
        programs+=("$name")
    else
        fail "$name does not compile with -Werror"
    fi
done
# shellcheck disable=SC2086
if $C_CC $C_WARN -O2 -Iinclude $(pkg-config --cflags jansson) bindings/c/status.c -o "$scratch/status-werror" "${link[@]}" $(pkg-config --libs jansson); then
    pass "bindings/c/status.c compiles with -Werror"
else
    fail "bindings/c/status.c does not compile with -Werror"
fi

section "plain"
for name in "${programs[@]}"; do
    run_program "plain $name" "$C_OUT/$name"
done

section "AddressSanitizer + UndefinedBehaviorSanitizer"
for name in "${programs[@]}"; do
    ASAN_OPTIONS=detect_leaks=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        run_program "asan $name" "$C_OUT/$name.asan"
done

section "valgrind"
# Valgrind 3.19 does not know openat2(2) (syscall 437) and answers ENOSYS:
# the core then takes its documented component-by-component fallback, so
# this run also covers that path. The warning it prints is expected. Nor
# does it know pidfd_open(2) (434): there test_stop.c checks that every stop
# fails closed (FIRMA_PIDFD_UNAVAILABLE, nothing signalled).
for name in "${programs[@]}"; do
    run_program "valgrind $name" valgrind -q --suppressions=tests/c/valgrind.supp --leak-check=full --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
        --child-silent-after-fork=yes "$C_OUT/$name"
done

# ---- 3. install + pkg-config ------------------------------------------------
section "make install PREFIX=<tmp> and a program built with pkg-config only"
prefix=$scratch/prefix
if $MAKE --no-print-directory install PREFIX="$prefix" >"$scratch/install.log" 2>&1; then
    pass "make install PREFIX=$prefix"
else
    cat "$scratch/install.log"
    fail "make install failed"
fi
lib=$prefix/lib
if [[ -f $lib/libfirma_stack.so.$FIRMA_VERSION && ! -L $lib/libfirma_stack.so.$FIRMA_VERSION &&
    $(readlink "$lib/$soname") == "libfirma_stack.so.$FIRMA_VERSION" &&
    $(readlink "$lib/libfirma_stack.so") == "$soname" &&
    -f $lib/libfirma_stack.a && -f $prefix/include/firma_stack.h &&
    -f $lib/pkgconfig/firma_stack.pc ]]; then
    pass "installed: libfirma_stack.so -> $soname -> libfirma_stack.so.$FIRMA_VERSION, .a, header, .pc"
else
    ls -lR "$prefix" 2>/dev/null
    fail "installed layout is incomplete"
fi
export PKG_CONFIG_PATH=$lib/pkgconfig
if [[ $(pkg-config --modversion firma_stack 2>/dev/null) == "$FIRMA_VERSION" ]]; then
    pass "pkg-config --modversion firma_stack is $FIRMA_VERSION"
else
    fail "pkg-config does not find firma_stack $FIRMA_VERSION"
fi

# A real sidecar for the installed programs to see.
runtime=$scratch/runtime
mkdir -p "$runtime"
start_sidecar "$bin" "$runtime" installed-1
sidecar_pids+=("$sidecar_pid")

# runs_installed PROGRAM PASS_MSG FAIL_LABEL ENV...: runs PROGRAM from /
# under `env ENV...`; passes when it sees the live sidecar and the loader
# resolves $soname to the installed prefix's copy.
runs_installed() {
    local program=$1 pass_msg=$2 fail_label=$3
    shift 3
    local out resolved
    out=$(cd / && env "$@" "$program" --runtime-dir "$runtime" 2>&1)
    resolved=$(env "$@" ldd "$program" | awk -v s="$soname" '$1 == s {print $3}')
    if [[ $out == *installed-1*running* && $resolved == "$lib/$soname" ]]; then
        pass "$pass_msg"
    else
        echo "$out"
        fail "$fail_label: output or library resolution wrong ($resolved)"
    fi
}

# The three documented ways to run a program linked against an installed
# prefix (bindings/c/README.md). First, what happens without any of them.
# shellcheck disable=SC2046
if $C_CC $C_WARN bindings/c/status.c -o "$scratch/status-dyn" $(pkg-config --cflags --libs firma_stack jansson); then
    err=$(env -u LD_LIBRARY_PATH "$scratch/status-dyn" --runtime-dir "$runtime" 2>&1)
    if [[ $err == *"$soname: cannot open shared object file"* ]]; then
        pass "built with only pkg-config --libs, a non-system prefix fails at start ($soname not found), as the README says"
    else
        echo "$err"
        fail "a program linked against a non-system prefix started without rpath or ldconfig?"
    fi
    runs_installed "$scratch/status-dyn" \
        "with LD_LIBRARY_PATH it runs against the installed $soname and sees the live sidecar" \
        "status built with pkg-config" LD_LIBRARY_PATH="$lib"
else
    fail "status does not build with \`pkg-config --cflags --libs firma_stack\`"
fi

# Route 2: an rpath taken from the .pc.
# shellcheck disable=SC2046
if $C_CC $C_WARN bindings/c/status.c -o "$scratch/status-rpath" $(pkg-config --cflags --libs firma_stack jansson) \
    -Wl,-rpath,"$(pkg-config --variable=libdir firma_stack)"; then
    runs_installed "$scratch/status-rpath" \
        "route rpath: -Wl,-rpath,\$(pkg-config --variable=libdir firma_stack) runs with no LD_LIBRARY_PATH" \
        "route rpath" -u LD_LIBRARY_PATH
else
    fail "route rpath: status does not build"
fi

# Route 1: the system prefix and ldconfig. Done for real, but inside a
# private mount namespace so the host's /usr/local and loader cache are not
# touched: `make install DESTDIR=<root> PREFIX=/usr/local`, that root
# mounted over /usr/local, `ldconfig` writing a private cache mounted over
# /etc/ld.so.cache, then a plain pkg-config build run with no environment.
sysroot=$scratch/sysroot
if ! $MAKE --no-print-directory install DESTDIR="$sysroot" PREFIX=/usr/local >"$scratch/sys-install.log" 2>&1; then
    cat "$scratch/sys-install.log"
    fail "route ldconfig: make install DESTDIR=... PREFIX=/usr/local failed"
elif ! unshare --mount true 2>"$scratch/unshare.err"; then
    echo "SKIP (LOUD) - route ldconfig NOT tested: no mount namespace here ($(cat "$scratch/unshare.err")); run as root with CAP_SYS_ADMIN to cover it"
else
    cat >"$scratch/route-ldconfig.sh" <<'SH'
set -euo pipefail
sysroot=$1 scratch=$2 runtime=$3 cc=$4 soname=$5
mount --bind "$sysroot/usr/local" /usr/local
ldconfig -C "$scratch/ld.so.cache"
mount --bind "$scratch/ld.so.cache" /etc/ld.so.cache
unset LD_LIBRARY_PATH PKG_CONFIG_PATH
ldconfig -p | grep -F "$soname" | sed 's/^/ldconfig -p: /'
# shellcheck disable=SC2046
$cc bindings/c/status.c -o "$scratch/status-system" $(pkg-config --cflags --libs firma_stack jansson)
echo "resolved $(ldd "$scratch/status-system" | awk -v s="$soname" '$1 == s {print $3}')"
(cd / && "$scratch/status-system" --runtime-dir "$runtime")
SH
    out=$(unshare --mount bash "$scratch/route-ldconfig.sh" "$sysroot" "$scratch" "$runtime" "$C_CC" "$soname" 2>&1)
    if [[ $out == *"resolved /usr/local/lib/$soname"* && $out == *installed-1*running* ]]; then
        pass "route ldconfig: installed under /usr/local + ldconfig, a plain pkg-config build runs with no environment"
    else
        echo "$out"
        fail "route ldconfig: the program did not resolve /usr/local/lib/$soname or did not run"
    fi
fi

# Route 3: static.
# Static: Libs.private must be enough to link libfirma_stack.a.
# shellcheck disable=SC2046
if $C_CC $C_WARN bindings/c/status.c -o "$scratch/status-static" \
    $(pkg-config --cflags --static --libs firma_stack | sed 's/-lfirma_stack\b/-l:libfirma_stack.a/') \
    $(pkg-config --cflags --libs jansson); then
    out=$(env -u LD_LIBRARY_PATH "$scratch/status-static" --runtime-dir "$runtime" get installed-1 2>&1)
    if [[ $out == *installed-1*running* ]] && ! readelf -d "$scratch/status-static" | grep -q 'libfirma_stack'; then
        pass "route static: linked with \`pkg-config --static\` (libfirma_stack.a), runs without the shared library"
    else
        echo "$out"
        fail "statically linked status misbehaves"
    fi
else
    fail "status does not link statically with \`pkg-config --static --libs firma_stack\`"
fi

# ---- 4. the example supervisor reads every answer (jansson) -----------------
section "bindings/c/status.c (jansson) against real sidecars: list, get, inspect, watch, stop, gc"
ex=$scratch/status-rpath
ert=$scratch/example-rt
mkdir -p "$ert/run/broken-1"
echo 'garbage = [' >"$ert/run/broken-1/metadata.toml"
start_sidecar "$bin" "$ert" ex-serve
sidecar_pids+=("$sidecar_pid")
ex_pid=$sidecar_pid
start_sidecar "$bin" "$ert" ex-wedged --mode wedged
sidecar_pids+=("$sidecar_pid")
# expect LABEL PATTERN CMD...: runs the example from /, passes when its
# output (stdout and stderr) matches the extended regex PATTERN.
expect() {
    local label=$1 pattern=$2 out
    shift 2
    out=$(cd / && env -u LD_LIBRARY_PATH "$ex" --runtime-dir "$ert" "$@" 2>&1)
    printf '%s\n' "$out" | sed "s/^/[status $*] /"
    if grep -Ezq -- "$pattern" <<<"$out"; then pass "$label"; else fail "$label: output does not match $pattern"; fi
}
expect "list: the table of live sidecars" "SANDBOX.*ex-serve +agent-example +running.*ex-wedged +agent-example +unhealthy" --timeout-ms 300
expect "get: one sidecar" "ex-serve +agent-example +running" get ex-serve
expect "inspect: verdicts and reasons, the nested sidecar and the broken marker's error object" \
    "broken-1: broken, state -, reason parse_error.*error marker_parse: .*path $ert/run/broken-1/metadata.toml.*ex-serve: live, state running, reason serving.*  ex-serve +agent-example +running" inspect
expect "an error object: its code and message, with the status" "list failed \(invalid_argument, status 1\): invalid argument runtime_dir" --runtime-dir ""
# watch: the initial events, then the sidecar's exit seen as it happens.
(cd / && env -u LD_LIBRARY_PATH "$ex" --runtime-dir "$ert" --timeout-ms 10000 watch 4 >"$scratch/watch.out" 2>&1) &
watch_pid=$!
for _ in $(seq 100); do grep -q ' synced$' "$scratch/watch.out" && break; sleep 0.1; done
expect "stop: the outcome (signals sent, exited, killed, collected, waited)" \
    "stop ex-serve \(pid $ex_pid\): sent SIGTERM; exited, not killed, marker (kept|collected), waited [0-9]+ ms" --grace-ms 5000 stop ex-serve
expect "stop of a missing sidecar: exit 1, a message" "no sidecar ex-serve" stop ex-serve
wait "$watch_pid"
watch_rc=$?
check_log "status watch 4" "$watch_rc" "$scratch/watch.out" \
    "watch: appeared (with the nested sidecar), synced, then gone when the sidecar stopped" \
    "watch events: exit $watch_rc, or appeared/synced/gone missing (above)" \
    -Ez 'appeared ex-serve running.*appeared ex-wedged unhealthy.* synced.* gone ex-serve \((collected|removed)\)'
expect "gc: nothing stale to collect" "no stale markers" gc

finish test-c
