#!/usr/bin/env bash
# The main job, end to end: start three real sidecars in a throwaway runtime
# directory, look at them with `firma sidecar status`, kill one, collect it
# with `firma sidecar gc`, and clean up everything we started.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
runtime=$(mktemp -d /tmp/firma-demo.XXXXXX)
pids=()
declare -A pid_of=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$runtime"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
firma() { "$bin/firma" --runtime-dir "$runtime" "$@"; }

# Starts a sidecar and waits (reading its stdout, no sleeping) until it says ready.
start() {
    local id=$1; shift
    exec {fd}< <("$bin/firma-example-sidecar" --runtime-dir "$runtime" --id "$id" "$@" & echo "pid $!"; wait)
    local line pid=
    while read -r -u "$fd" line; do
        case $line in
            "pid "*) pid=${line#pid } ;;
            ready*) break ;;
        esac
    done
    pids+=("$pid")
    pid_of[$id]=$pid
    echo "started $id (pid $pid) $*"
}

say "runtime dir: $runtime"
start web-1 --agent planner --session s-101
start stuck-2 --agent coder --session s-102 --mode wedged
start doomed-3 --agent tester --session s-103

say "firma sidecar status   (web-1 serves; stuck-2 stopped accepting: its backlog is full)"
firma sidecar status

say "kill -9 doomed-3 (pid ${pid_of[doomed-3]}): its marker stays behind"
kill -KILL "${pid_of[doomed-3]}"
while kill -0 "${pid_of[doomed-3]}" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/${pid_of[doomed-3]}/status" 2>/dev/null; do :; done
ls "$runtime/run"

say "firma sidecar get doomed-3   (get never removes anything)"
firma sidecar get doomed-3

say "firma sidecar gc"
firma sidecar gc

say "firma sidecar status   (doomed-3 is gone)"
firma sidecar status

say "firma sidecar status --json"
firma sidecar status --json
