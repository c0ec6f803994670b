# Reliability and security (SECURITY.md): fuzzing with cargo-fuzz (fuzz/, a
# crate of its own outside the workspace), plus the property,
# fault-injection and torture tests of the `reliability` test binary
# (tests/reliability/; run by `cargo test` in test-rust; `make
# test-reliability-rust` runs just them).
#
# `make test` runs test-reliability: a fuzz smoke of a few seconds per
# target (every committed seed is replayed first), and fmt/clippy of fuzz/.
# `make fuzz` fuzzes each target for FUZZ_SECONDS (default 60) with a
# release build, keeping what it finds in fuzz/corpus/<target>/ (crashes go
# to fuzz/artifacts/<target>/).
#
# cargo-fuzz passes nightly-only rustc flags (-Zsanitizer=address, ...).
# Only a stable toolchain is available here, so RUSTC_BOOTSTRAP=1 lets it
# accept them; libFuzzer itself comes with the libfuzzer-sys crate (built
# with the system C++ compiler). cargo-fuzz is installed into .tools/ from
# crates.io when missing.

FUZZ_TARGETS := marker_dir c_abi
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_TOOLS := $(CURDIR)/.tools
CARGO_FUZZ := $(FUZZ_TOOLS)/bin/cargo-fuzz
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_ENV := RUSTC_BOOTSTRAP=1

TEST_LEGS += test-reliability

.PHONY: test-reliability test-reliability-rust fuzz fuzz-smoke fuzz-lint fuzz-replay fuzz-tool

## fuzz-tool: cargo-fuzz in .tools/bin (installed only when missing).
fuzz-tool: $(CARGO_FUZZ)

$(CARGO_FUZZ):
	$(CARGO) install --locked --root $(FUZZ_TOOLS) --version $(CARGO_FUZZ_VERSION) cargo-fuzz

## test-reliability: the make test leg: fuzz-lint, then fuzz-smoke.
test-reliability: fuzz-lint fuzz-smoke

## test-reliability-rust: only the property, fault-injection and torture tests.
test-reliability-rust:
	$(CARGO) test --locked --test reliability

## fuzz-lint: cargo fmt --check and clippy -D warnings of the fuzz crate.
fuzz-lint:
	cd fuzz && $(CARGO) fmt --check
	cd fuzz && $(CARGO) clippy --all-targets -- -D warnings

## fuzz-smoke: each target for FUZZ_SMOKE_SECONDS (dev build, ASan, debug
## assertions) over the seeds, into a throwaway corpus: seeds/ is never written.
fuzz-smoke: $(CARGO_FUZZ)
	for t in $(FUZZ_TARGETS); do \
	    corpus=$$(mktemp -d); \
	    $(FUZZ_ENV) $(CARGO_FUZZ) run --dev $$t $$corpus fuzz/seeds/$$t -- \
	        -max_total_time=$(FUZZ_SMOKE_SECONDS) -timeout=30 -rss_limit_mb=4096 \
	        -print_final_stats=1 || { rm -rf $$corpus; exit 1; }; \
	    rm -rf $$corpus; \
	done

## fuzz: each target for FUZZ_SECONDS (release build, ASan, debug assertions).
fuzz: $(CARGO_FUZZ)
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p fuzz/corpus/$$t; \
	    $(FUZZ_ENV) $(CARGO_FUZZ) run --release --debug-assertions $$t \
	        fuzz/corpus/$$t fuzz/seeds/$$t -- \
	        -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 \
	        -print_final_stats=1; \
	done

## fuzz-replay: the harnesses without libFuzzer (seeds + pseudo-random
## inputs, FUZZ_REPLAY_INPUTS each), for machines without cargo-fuzz.
fuzz-replay:
	cd fuzz && $(CARGO) test --test replay
