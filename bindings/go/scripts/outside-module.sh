#!/usr/bin/env bash
# Builds a program in a module OUTSIDE the repository that imports the Go
# bindings through a replace directive — exactly what a user does after
# `make build` — then checks that it links no shared firma library (the
# static archive is used, so no rpath is needed) and runs it, from another
# directory, against a real example sidecar.
#
# Usage: bindings/go/scripts/outside-module.sh   (after `make build`)
# Honours GO (default: go); set GOTOOLCHAIN=local to avoid downloads.
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

require firma.dev/firma-stack/bindings/go v0.0.0

replace firma.dev/firma-stack/bindings/go => $bindings
MOD

cat > "$tmp/app/main.go" <<'GO'
// A program outside the firma-stack repository using its Go bindings.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	firmastack "firma.dev/firma-stack/bindings/go"
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
