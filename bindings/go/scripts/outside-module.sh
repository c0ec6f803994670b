#!/usr/bin/env bash
# Builds a program in a module OUTSIDE the repository that imports the Go
# bindings through a replace directive, the two ways bindings/go/README.md
# shows, and runs each from another directory against a real sidecar:
#  1. default build, replace => this checkout's bindings/go (after
#     `make build`): the in-tree static archive is linked, no rpath needed;
#  2. -tags libfirma_stack, replace => a COPY of bindings/go outside the
#     checkout (as in a fresh module download), linked through
#     `#cgo pkg-config: firma_stack` against a `make install` prefix
#     (PKG_CONFIG_PATH into it, an rpath from `pkg-config --variable=libdir`);
#  3. CGO_ENABLED=0 fails with an error that names cgo;
#  4. vendored (`go mod vendor` of the copy of step 2): the header copy is
#     in vendor/; -tags libfirma_stack builds and runs; the default build,
#     in a private mount namespace with an empty /usr/local/lib, stops with
#     the #error naming -tags libfirma_stack and pkg-config, and with the
#     installed library copied into that /usr/local/lib it links the static
#     archive and runs.
#
# Usage: bindings/go/scripts/outside-module.sh   (after `make build`)
# Honours GO (default: go), MAKE (default: make) and FIRMA_PREFIX (an
# existing `make install` prefix; default: one is installed into the
# temporary directory). Set GOTOOLCHAIN=local to avoid downloads.
set -euo pipefail

go=${GO:-go}
bindings=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$(cd "$bindings/../.." && pwd)
sidecar_bin="$root/target/release/firma-example-sidecar"
[[ -x $sidecar_bin ]] || { echo "outside-module: $sidecar_bin missing; run make build" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/firma-go-outside.XXXXXX")
sidecar_pid=
cleanup() {
    if [[ -n $sidecar_pid ]]; then kill -TERM "$sidecar_pid" 2>/dev/null || true; wait "$sidecar_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/app" "$tmp/state"

cat > "$tmp/app/go.mod" <<MOD
module example.com/outside

go 1.21

require github.com/firma-stack/firma-stack/bindings/go v0.0.0

replace github.com/firma-stack/firma-stack/bindings/go => $bindings
MOD

cat > "$tmp/app/main.go" <<'GO'
// A program outside the firma-stack repository using its Go bindings.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "outside: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	id := os.Args[1]
	dir, err := firmastack.DefaultRuntimeDir()
	if err != nil || dir != os.Getenv("FIRMA_STATE_DIR") {
		fail("DefaultRuntimeDir = %q, %v", dir, err)
	}
	entries, err := firmastack.List("")
	if err != nil || len(entries) != 1 || entries[0].SandboxID != id {
		fail("List = %+v, %v; want just %s", entries, err, id)
	}
	out, _ := json.Marshal(entries)
	fmt.Printf("list %s\n", out)
	e, err := firmastack.Get("", id)
	if err != nil || e == nil || e.State != firmastack.StateRunning {
		fail("Get(%s) = %+v, %v; want running", id, e, err)
	}
	if _, err := firmastack.Get("", "../escape"); !errors.Is(err, firmastack.ErrInvalidArgument) {
		fail("Get(../escape) = %v; want ErrInvalidArgument", err)
	}
	fmt.Printf("%s %s abi %d\n", id, e.State, firmastack.ABIVersion())
}
GO

echo "outside-module: building $tmp/app against $bindings"
(cd "$tmp/app" && "$go" build -o "$tmp/outside" .)

if ldd "$tmp/outside" | grep -q 'libfirma_stack'; then
    echo "outside-module: FAIL: the binary links libfirma_stack dynamically:" >&2
    ldd "$tmp/outside" >&2
    exit 1
fi

# Start a real sidecar and wait for its `ready` line through a FIFO.
mkfifo "$tmp/ready"
"$sidecar_bin" --runtime-dir "$tmp/state" --id outside-1 >"$tmp/ready" &
sidecar_pid=$!
read -r ready rest <"$tmp/ready" || true
[[ $ready == ready ]] || { echo "outside-module: sidecar did not become ready" >&2; exit 1; }

out=$(cd / && env FIRMA_STATE_DIR="$tmp/state" "$tmp/outside" outside-1)
printf '%s\n' "$out"
grep -qx 'outside-1 running abi [0-9]*' <<<"$out" || { echo "outside-module: unexpected output" >&2; exit 1; }
echo "outside-module: OK (built outside the repository, statically linked, ran)"

# ---- 2. -tags libfirma_stack against an installed prefix --------------------
prefix=${FIRMA_PREFIX:-}
if [[ -z $prefix ]]; then
    prefix=$tmp/prefix
    echo "outside-module: make install PREFIX=$prefix"
    "${MAKE:-make}" -C "$root" --no-print-directory install PREFIX="$prefix" >"$tmp/install.log" 2>&1 ||
        { cat "$tmp/install.log" >&2; echo "outside-module: FAIL: make install" >&2; exit 1; }
fi
# The module as a user gets it: bindings/go alone, no checkout around it.
mkdir "$tmp/mod" "$tmp/app2"
cp -R "$bindings/." "$tmp/mod/"
rm -rf "$tmp/mod/scripts"
sed -e "s|=> $bindings|=> $tmp/mod|" "$tmp/app/go.mod" >"$tmp/app2/go.mod"
cp "$tmp/app/main.go" "$tmp/app2/main.go"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
libdir=$(pkg-config --variable=libdir firma_stack)
echo "outside-module: go build -tags libfirma_stack in $tmp/app2 (PKG_CONFIG_PATH=$PKG_CONFIG_PATH)"
(cd "$tmp/app2" && CGO_LDFLAGS="-Wl,-rpath,$libdir" "$go" build -tags libfirma_stack -o "$tmp/installed" .)
resolved=$(env -u LD_LIBRARY_PATH ldd "$tmp/installed" | awk '$1 ~ /^libfirma_stack\.so/ {print $3}')
if [[ $resolved != "$libdir/libfirma_stack.so."* ]]; then
    echo "outside-module: FAIL: -tags libfirma_stack did not link the installed library ($resolved):" >&2
    ldd "$tmp/installed" >&2
    exit 1
fi
out=$(cd / && env -u LD_LIBRARY_PATH FIRMA_STATE_DIR="$tmp/state" "$tmp/installed" outside-1)
printf '%s\n' "$out"
grep -qx 'outside-1 running abi [0-9]*' <<<"$out" || { echo "outside-module: unexpected output" >&2; exit 1; }
echo "outside-module: OK (-tags libfirma_stack: module copied outside the checkout, linked $resolved, ran)"

# ---- 3. without cgo ---------------------------------------------------------
if (cd "$tmp/app2" && CGO_ENABLED=0 "$go" build -o "$tmp/nocgo" . >"$tmp/nocgo.log" 2>&1); then
    echo "outside-module: FAIL: a CGO_ENABLED=0 build succeeded" >&2
    exit 1
fi
if ! grep -q 'firmastack_requires_cgo_build_with_CGO_ENABLED_1' "$tmp/nocgo.log"; then
    echo "outside-module: FAIL: the CGO_ENABLED=0 error does not name cgo:" >&2
    cat "$tmp/nocgo.log" >&2
    exit 1
fi
sed 's/^/  /' "$tmp/nocgo.log"
echo "outside-module: OK (CGO_ENABLED=0 fails naming cgo)"

# ---- 4. vendored, both tags -------------------------------------------------
mkdir "$tmp/app3"
cp "$tmp/app2/go.mod" "$tmp/app2/main.go" "$tmp/app3/"
(cd "$tmp/app3" && GOFLAGS=-mod=mod "$go" mod vendor)
vendored=$tmp/app3/vendor/github.com/firma-stack/firma-stack/bindings/go
if [[ ! -f $vendored/firma_stack.h ]] || ! cmp -s "$vendored/firma_stack.h" "$root/include/firma_stack.h"; then
    echo "outside-module: FAIL: go mod vendor did not carry the header copy ($vendored/firma_stack.h)" >&2
    exit 1
fi
vflags="-mod=vendor -buildvcs=false"
(cd "$tmp/app3" && GOFLAGS=$vflags CGO_LDFLAGS="-Wl,-rpath,$libdir" "$go" build -tags libfirma_stack -o "$tmp/vendored-tag" .)
out=$(cd / && env -u LD_LIBRARY_PATH FIRMA_STATE_DIR="$tmp/state" "$tmp/vendored-tag" outside-1)
grep -qx 'outside-1 running abi [0-9]*' <<<"$out" || { echo "outside-module: FAIL: vendored -tags libfirma_stack: $out" >&2; exit 1; }
echo "outside-module: OK (vendored, -tags libfirma_stack: built and ran)"

# The default build of a vendored copy: no checkout around it, so the static
# archive comes from the linker's default directories. Both cases in a
# private mount namespace whose /usr/local/lib is an empty tmpfs.
for d in /usr/lib/*-linux-gnu /usr/lib /usr/local/lib/*-linux-gnu; do
    if [[ -e $d/libfirma_stack.a ]]; then
        echo "outside-module: FAIL: $d/libfirma_stack.a exists on this host; the not-found case cannot be checked" >&2
        exit 1
    fi
done
cat >"$tmp/vendored-default.sh" <<'SH'
set -uo pipefail
tmp=$1 go=$2 prefix=$3
mount -t tmpfs tmpfs /usr/local/lib || exit 3
cd "$tmp/app3"
if "$go" build -o "$tmp/vendored-none" . >"$tmp/none.log" 2>&1; then
    echo "FAIL: the default build succeeded with no libfirma_stack.a anywhere"; exit 1
fi
cat "$tmp/none.log"
grep -q -- '-tags libfirma_stack' "$tmp/none.log" && grep -q 'pkg-config' "$tmp/none.log" ||
    { echo "FAIL: the error does not name -tags libfirma_stack and pkg-config"; exit 1; }
cp -a "$prefix/lib/." /usr/local/lib/
"$go" build -o "$tmp/vendored-default" . || { echo "FAIL: default build with /usr/local/lib/libfirma_stack.a"; exit 1; }
if ldd "$tmp/vendored-default" | grep -q libfirma_stack; then echo "FAIL: linked dynamically"; exit 1; fi
(cd / && env FIRMA_STATE_DIR="$tmp/state" "$tmp/vendored-default" outside-1)
SH
out=$(GOFLAGS=$vflags unshare --mount --propagation private bash "$tmp/vendored-default.sh" "$tmp" "$(command -v "$go")" "$prefix" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/  /'
if ((rc != 0)) || ! grep -qx 'outside-1 running abi [0-9]*' <<<"$out"; then
    echo "outside-module: FAIL: vendored default build (exit $rc, above)" >&2
    exit 1
fi
echo "outside-module: OK (vendored, default: a clear error naming -tags libfirma_stack without the library; static link from /usr/local/lib with it)"
