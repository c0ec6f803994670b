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

.PHONY: all build build-rust test test-rust demo clean
all: build

## build: what C and CLI users need: the release library (.so, .a), the
## `firma` CLI, the example sidecar and target/c/status. No Python here:
## `make python` builds and installs the Python package into .venv.
build: $(BUILD_LEGS)

build-rust:
	$(CARGO) build --release --locked --lib --bins

## test: every check and test of every surface.
# The legs run in order; their output is kept in target/test.log and
# totalled into one closing line.
test:
	@mkdir -p target
	$(MAKE) --no-print-directory $(TEST_LEGS) 2>&1 | tee target/test.log
	@echo "make test: all legs passed ($(TEST_LEGS))"
	@bash scripts/test-summary.sh target/test.log

test-rust:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --locked

## demo: three real sidecars in a temporary runtime dir, seen through `firma`.
demo: build-rust
	bash scripts/demo.sh

clean:
	$(CARGO) clean
