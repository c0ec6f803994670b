# shellcheck shell=bash
# Sourced by the check scripts (scripts/c-test.sh, scripts/dist-test.sh,
# scripts/python-outside.sh): the pass/FAIL lines, the section headers and
# the closing "N passed, N failed" line that `make test` sums up.
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "pass - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
section() { printf '\n== %s\n' "$*"; }
# shellcheck disable=SC2034 # used by the scripts that source this file
MiB=$((1024 * 1024))

# finish NAME: the closing lines; fails when any check failed.
finish() {
    printf '\n'
    echo "$1: $(if ((failed == 0)); then echo all clean; else echo FAILURES; fi)"
    echo "$passed passed, $failed failed"
    ((failed == 0))
}
