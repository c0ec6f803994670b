# shellcheck shell=bash
# Sourced by the check scripts (scripts/c-test.sh, scripts/dist-test.sh,
# scripts/python-outside.sh, packaging/wheel-test.sh, packaging/deb/test.sh):
# the pass/FAIL lines, the section headers, the report of a logged run and
# the closing "N passed, N failed" line that `make test` sums up.
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "pass - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
section() { printf '\n== %s\n' "$*"; }
# shellcheck disable=SC2034 # used by the scripts that source this file
MiB=$((1024 * 1024))

# check_log LABEL RC LOG PASS FAIL GREP_ARGS...: shows LOG with each line
# prefixed by [LABEL], then passes with PASS when RC (the run's exit status)
# is 0 and `grep -q GREP_ARGS... LOG` finds what the run must have written
# (e.g. `-E '^2 passed'`, or `-Ez 'a.*b'` to match across lines), else
# fails with FAIL.
check_log() {
    local label=$1 rc=$2 log=$3 ok=$4 bad=$5
    shift 5
    sed "s/^/[$label] /" "$log"
    if ((rc == 0)) && grep -q "$@" -- "$log"; then pass "$ok"; else fail "$bad"; fi
}

# finish NAME: the closing lines; fails when any check failed.
finish() {
    printf '\n'
    echo "$1: $(if ((failed == 0)); then echo all clean; else echo FAILURES; fi)"
    echo "$passed passed, $failed failed"
    ((failed == 0))
}
