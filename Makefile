# firma-stack project commands. `make demo` shows the main job; `make test`
# runs every test (CI runs exactly that). Each surface adds its legs from
# mk/<surface>.mk by appending to BUILD_LEGS / TEST_LEGS.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

BUILD_LEGS := build-rust
TEST_LEGS := test-rust

include $(sort $(wildcard mk/*.mk))

.PHONY: all build build-rust build-testkit test test-rust demo clean
## all: the default goal; the same as build.
all: build

## build: what C and CLI users need: the release library (.so, .a), the
## `firma` CLI, the example sidecar and target/c/status. No Python here:
## `make python` builds and installs the Python package into .venv.
build: $(BUILD_LEGS)

## build-rust: the Rust part of build (cargo build --release of the lib and
## bins, the example sidecar included).
build-rust:
	$(CARGO) build --release --locked --lib --bins --features example-sidecar

## build-testkit: the conformance suite's fixture tool,
## target/release/firma-testkit (the tests/testkit crate; test-only, so not
## part of build). The C, Go and Python legs use it.
build-testkit:
	$(CARGO) build --release --locked -p firma-testkit

## test: every check and test of every surface.
# The legs run in order; their output is kept in target/test.log and
# totalled into one closing line.
test:
	@mkdir -p target
	$(MAKE) --no-print-directory $(TEST_LEGS) 2>&1 | tee target/test.log
	@echo "make test: all legs passed ($(TEST_LEGS))"
	@bash scripts/test-summary.sh target/test.log

## test-rust: cargo fmt and clippy -D warnings of the workspace (bench/ and
## tests/testkit too), cargo test of the core.
# A plain `cargo test`: tests/conformance.rs builds the testkit itself
# (unless $FIRMA_TESTKIT names one), and the example sidecar comes from the
# package's dev-dependency on itself (Cargo.toml).
test-rust:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --locked

## demo: three real sidecars in a temporary runtime dir, seen through `firma`.
demo: build-rust
	bash scripts/demo.sh

## clean: cargo clean (removes target/).
clean:
	$(CARGO) clean

.PHONY: help
## help: every make target with its one-line description, by file.
# Reads the "## target: text" lines of Makefile and mk/*.mk (a following
# "## ..." line continues the text) and names .PHONY targets that have none.
help:
	@awk ' \
	    FNR == 1 { file = FILENAME; files[++nf] = file; last = "" } \
	    /^## [A-Za-z0-9_.-]+: / { \
	        t = $$2; sub(/:$$/, "", t); d = $$0; sub(/^## [^:]+: /, "", d); \
	        doc[t] = d; list[file] = list[file] " " t; last = t; \
	        if (length(t) > w) w = length(t); next } \
	    /^## / && last != "" { d = $$0; sub(/^## /, "", d); doc[last] = doc[last] " " d; next } \
	    { last = "" } \
	    /^\.PHONY:/ { for (i = 2; i <= NF; i++) phony[$$i] = 1 } \
	    END { \
	        fmt = "  %-" w "s  %s\n"; \
	        for (f = 1; f <= nf; f++) { \
	            n = split(list[files[f]], ts, " "); if (n == 0) continue; \
	            printf "%s:\n", files[f]; \
	            for (i = 1; i <= n; i++) printf fmt, ts[i], doc[ts[i]]; } \
	        for (t in phony) if (!(t in doc)) missing = missing " " t; \
	        if (missing != "") print "undocumented targets:" missing; } \
	    ' Makefile $(sort $(wildcard mk/*.mk))
