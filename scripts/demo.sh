#!/usr/bin/env bash
# The main job, end to end, as an operator sees it: start three real
# sidecars in a throwaway runtime directory, plant one unreadable marker,
# kill one sidecar, let `firma sidecar inspect` explain every marker, watch
# `firma sidecar status` collect the dead one (its stderr line says so), and
# clean up everything we started. Every step is labelled; escape codes are
# used only when stdout is a terminal and NO_COLOR is unset or empty.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
bin=${FIRMA_BIN:-target/release}
runtime=$(mktemp -d /tmp/firma-demo.XXXXXX)
pids=()
declare -A pid_of=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$runtime"
}
trap cleanup EXIT

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
    bold=$'\033[1m' plain=$'\033[0m'
else
    bold='' plain=''
fi
step=0
say() {
    step=$((step + 1))
    printf '\n%s== %d. %s%s\n' "$bold" "$step" "$*" "$plain"
}
# Runs firma on the demo's runtime dir, showing the command line first.
# stderr is merged so its notes appear where they were printed.
firma() {
    printf '$ firma %s\n' "$*"
    local rc=0
    "$bin/firma" --runtime-dir "$runtime" "$@" 2>&1 || rc=$?
    if ((rc != 0)); then printf '(exit status %d)\n' "$rc"; fi
}

# Shows what is on disk: the entries of run/, on one line.
show_run() {
    printf '$ ls run/\n'
    ls "$runtime/run" | paste -sd ' ' -
}

# Starts a sidecar and waits (reading its stdout, no sleeping) until it says ready.
start() {
    local id=$1; shift
    start_sidecar "$bin" "$runtime" "$id" "$@"
    local pid=$sidecar_pid
    pids+=("$pid")
    pid_of[$id]=$pid
    echo "started $id (pid $pid) $*"
}

say "start three sidecars in the runtime dir $runtime"
start web-1 --agent planner --session s-101
start stuck-2 --agent coder --session s-102 --mode wedged
start doomed-3 --agent tester --session s-103

say "status: web-1 serves; stuck-2 stopped accepting (its backlog is full)"
firma sidecar status

say "a marker nobody can read appears (garbage in run/bad/metadata.toml)"
mkdir "$runtime/run/bad"
printf 'this is = not [toml\n' >"$runtime/run/bad/metadata.toml"
echo "wrote $runtime/run/bad/metadata.toml"

say "kill -9 doomed-3 (pid ${pid_of[doomed-3]}): its marker stays behind"
kill -KILL "${pid_of[doomed-3]}"
while kill -0 "${pid_of[doomed-3]}" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/${pid_of[doomed-3]}/status" 2>/dev/null; do :; done
show_run

say "inspect: one line per marker saying why (read-only: nothing is removed)"
firma sidecar inspect

say "inspect bad stuck-2: the broken and the unhealthy marker, explained"
firma sidecar inspect bad stuck-2

say "get doomed-3: a stopped sidecar has no uptime (get never removes anything)"
firma sidecar get doomed-3

say "status --no-gc: read-only; doomed-3 is not listed and stays on disk"
firma sidecar status --no-gc
show_run

say "status: collects doomed-3 and says so on stderr; bad is skipped and named"
firma sidecar status
show_run

say "status -q: only the live ids, for scripts"
firma sidecar status -q

say "status --json: the exact JSON every surface shares"
firma sidecar status --json

say "gc: nothing stale is left; bad is never removed"
firma sidecar gc
