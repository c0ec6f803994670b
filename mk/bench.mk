# Benchmarks (issue 6). NOT part of `make test`.
#
# `make bench` builds what it needs (release library and CLI, the bench
# driver in bench/, the C floor and C worker, the Go worker, the Python
# package via `make python`) and prints one table, also written to
# target/bench/table.md. BENCH_ARGS=--quick gives a short smoke run.
# `make bench-criterion` runs the criterion figures of the Rust calls
# (benches/list.rs).
#
# A surface that cannot be built yet is reported `pending` in the table
# rather than failing the whole run.

BENCH_DIR := target/bench
BENCH_CC ?= cc
BENCH_CFLAGS ?= -O2 -Wall -Wextra
# Go's build cache does not notice a changed static library (golang/go#24355):
# a digest of it and the header in CGO_CFLAGS rebuilds and relinks the worker.
BENCH_GO_SUM = $(shell cat target/release/libfirma_stack.a include/firma_stack.h 2>/dev/null | sha256sum | cut -c1-16)
BENCH_GO_ENV = GOTOOLCHAIN=local GOFLAGS='-mod=mod -buildvcs=false' CGO_ENABLED=1 \
	CGO_CFLAGS="-O2 -g -DFIRMA_BENCH_BUILD_SUM=$(BENCH_GO_SUM)"
BENCH_ARGS ?=

.PHONY: bench bench-build bench-criterion bench-tools

## bench: build everything the benchmark needs, run it, print the table.
bench: bench-build
	target/release/firma-bench run --out $(BENCH_DIR)/table.md $(BENCH_ARGS)

## bench-tools: strace for the syscall counts (apt, only when missing).
bench-tools:
	@command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace; }

bench-build: build-rust bench-tools
	@mkdir -p $(BENCH_DIR)
	@# The driver is a crate of its own (not a workspace member), sharing
	@# target/. Its lock file is the root's, so it builds the versions the
	@# root crate was built with.
	cp Cargo.lock bench/Cargo.lock
	CARGO_TARGET_DIR=$(CURDIR)/target $(CARGO) build --release --quiet --manifest-path bench/Cargo.toml
	$(BENCH_CC) $(BENCH_CFLAGS) -o $(BENCH_DIR)/floor bench/floor.c
	@if [[ -f include/firma_stack.h ]]; then \
	    echo "$(BENCH_CC) ... -o $(BENCH_DIR)/c_worker bench/c_worker.c libfirma_stack.a"; \
	    $(BENCH_CC) $(BENCH_CFLAGS) -Iinclude -o $(BENCH_DIR)/c_worker bench/c_worker.c \
	        target/release/libfirma_stack.a -lpthread -ldl -lm; \
	else echo "bench: include/firma_stack.h missing: C row pending"; rm -f $(BENCH_DIR)/c_worker; fi
	@if [[ -f bindings/go/go.mod ]] && command -v go >/dev/null; then \
	    echo "go build -o $(BENCH_DIR)/go_worker ./bench/go"; \
	    (cd bench/go && $(BENCH_GO_ENV) go build -o ../../$(BENCH_DIR)/go_worker .) \
	    || { echo "bench: Go worker failed to build: Go rows pending"; rm -f $(BENCH_DIR)/go_worker; }; \
	else echo "bench: Go bindings missing: Go rows pending"; rm -f $(BENCH_DIR)/go_worker; fi
	@if [[ -f mk/python.mk ]]; then \
	    $(MAKE) --no-print-directory python \
	    || echo "bench: Python package failed to build: Python rows pending"; \
	else echo "bench: Python package missing: Python rows pending"; fi

## bench-criterion: criterion figures for Rust list/get/gc_stale (about a minute).
bench-criterion: build-rust
	$(CARGO) bench --locked --bench list
