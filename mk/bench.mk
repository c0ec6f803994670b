# Benchmarks (BENCHMARKS.md): the bench/ crate (driver, fleet, criterion
# figures), the C floor and worker, the Go and Python workers. See
# bench/README.md.
#
# `make bench` builds what it needs (release library and CLI, the driver,
# the C floor and C worker, the Go worker, the Python package via
# `make python`) and prints one table, also written to target/bench/table.md.
# BENCH_ARGS=--quick gives a short run. A surface that cannot be built yet
# is reported `pending` in the table rather than failing the whole run.
#
# `make test` does not run the benchmarks: its leg test-bench-lint formats,
# lints and compiles every part of bench/ and runs the driver once with
# --smoke --strict (a few seconds) to prove it still works.

TEST_LEGS += test-bench-lint

BENCH_DIR := target/bench
BENCH_CC ?= cc
BENCH_CFLAGS ?= -O2 -Wall -Wextra -Werror
# Go's build cache does not notice a changed static library (golang/go#24355):
# a digest of it and the header in CGO_CFLAGS rebuilds and relinks the worker.
BENCH_GO_SUM = $(shell cat target/release/libfirma_stack.a include/firma_stack.h 2>/dev/null | sha256sum | cut -c1-16)
BENCH_GO_ENV = GOTOOLCHAIN=local GOFLAGS='-mod=mod -buildvcs=false' CGO_ENABLED=1 \
	CGO_CFLAGS="-O2 -g -DFIRMA_BENCH_BUILD_SUM=$(BENCH_GO_SUM)"
BENCH_ARGS ?=

.PHONY: bench bench-build bench-c bench-go bench-criterion bench-tools test-bench-lint

## bench: build everything the benchmark needs, run it, print the table.
bench: bench-build
	target/release/firma-bench run --out $(BENCH_DIR)/table.md $(BENCH_ARGS)

## bench-tools: strace for the syscall counts (apt, only when missing).
bench-tools:
	@command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace; }

## bench-build: the release driver and every contender, without running them.
bench-build: build-rust bench-tools bench-c
	$(CARGO) build --release --locked --quiet -p firma-bench --bin firma-bench
	@if command -v go >/dev/null; then $(MAKE) --no-print-directory bench-go \
	    || { echo "bench: Go worker failed to build: Go rows pending"; rm -f $(BENCH_DIR)/go_worker; }; \
	else echo "bench: go missing: Go rows pending"; rm -f $(BENCH_DIR)/go_worker; fi
	@$(MAKE) --no-print-directory python \
	    || echo "bench: Python package failed to build: Python rows pending"

## bench-c: the C floor, the C worker (over the release static library) and
## the fleet's idle child program.
bench-c: build-rust
	@mkdir -p $(BENCH_DIR)
	$(BENCH_CC) $(BENCH_CFLAGS) -o $(BENCH_DIR)/floor bench/floor.c
	$(BENCH_CC) $(BENCH_CFLAGS) -static -nostdlib -nostartfiles -fno-stack-protector \
	    -o $(BENCH_DIR)/idle bench/idle.c
	$(BENCH_CC) $(BENCH_CFLAGS) -Iinclude -o $(BENCH_DIR)/c_worker bench/c_worker.c \
	    target/release/libfirma_stack.a -lpthread -ldl -lm

## bench-go: the Go worker (over the release static library).
bench-go: build-rust
	@mkdir -p $(BENCH_DIR)
	cd bench/go && $(BENCH_GO_ENV) go build -o ../../$(BENCH_DIR)/go_worker .

## bench-criterion: criterion figures for Rust list/get/gc_stale (about a minute).
bench-criterion: build-rust bench-c
	$(CARGO) bench --locked -p firma-bench --bench list

## test-bench-lint: fmt + clippy of bench/, gofmt + vet of bench/go, the C
## built with -Werror, and one --smoke --strict run of the driver.
test-bench-lint: build-rust bench-c
	$(CARGO) fmt -p firma-bench --check
	$(CARGO) clippy -p firma-bench --all-targets --locked -- -D warnings
	@cd bench/go && unformatted=$$(gofmt -l .) && if [[ -n $$unformatted ]]; then \
	    echo "FAIL: gofmt needed in bench/go: $$unformatted" >&2; exit 1; fi
	cd bench/go && $(BENCH_GO_ENV) go vet ./...
	$(MAKE) --no-print-directory bench-go
	$(CARGO) build --locked --quiet -p firma-bench --bin firma-bench
	@echo "target/debug/firma-bench run --smoke --strict > $(BENCH_DIR)/smoke.md"
	@target/debug/firma-bench run --smoke --strict --command 'make test-bench-lint' \
	    > $(BENCH_DIR)/smoke.md 2> $(BENCH_DIR)/smoke.log \
	    || { cat $(BENCH_DIR)/smoke.log $(BENCH_DIR)/smoke.md >&2; \
	         echo "FAIL: firma-bench run --smoke --strict" >&2; exit 1; }
	@echo "bench smoke: passed, table in $(BENCH_DIR)/smoke.md"
