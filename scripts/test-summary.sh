#!/usr/bin/env bash
# Totals the tests that `make test` ran, from its log, into one closing line
# "summary: N passed, N failed" (cargo test, the C tests, pytest; Go prints
# per-package "ok" lines and is counted by package).
set -euo pipefail
log=${1:?usage: test-summary.sh LOG}
awk '
  /^test result: / {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed;?$/) passed += $(i-1)
      if ($(i) ~ /^failed;?$/) failed += $(i-1)
    }
  }
  /^[0-9]+ passed, [0-9]+ failed$/ { passed += $1; failed += $3 }
  /^=+ .* in [0-9.]+s/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed,?$/) passed += $(i-1)
      if ($(i) ~ /^failed,?$/) failed += $(i-1)
    }
  }
  /^ok[ \t]+[^ \t]+[ \t]/ { gopkgs++ }
  /^FAIL\t|^--- FAIL:/ { gofail++ }
  END {
    printf "go: %d packages ok, %d failures\n", gopkgs, gofail
    printf "summary: %d passed, %d failed\n", passed, failed + gofail
    exit (failed + gofail > 0)
  }
' "$log"
