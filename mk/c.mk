# The C surface (docs/design.md, "Surfaces"; bindings/c/README.md): the
# cbindgen header, the example supervisor, and the C tests (plain,
# ASan+UBSan, valgrind, the three ways to run a program against an installed
# prefix). `make install` itself is in mk/dist.mk. Everything here is
# prefixed C_ or FIRMA_ so it cannot clash with other mk/*.mk files.

BUILD_LEGS += build-c
TEST_LEGS += test-c

FIRMA_CBINDGEN_VERSION := 0.29.4
C_TOOLS := .tools
C_CBINDGEN := $(C_TOOLS)/bin/cbindgen
C_HEADER := include/firma_stack.h
C_HEADER_FILE := bindings/go/firma_stack.h
# The Rust source the header is generated from: the C ABI module's root file;
# cbindgen follows its `mod` declarations into src/ffi/*.rs, in declaration
# order (overridable so the drift check itself can be tested against a
# changed ABI).
C_FFI_SRC ?= src/ffi/mod.rs
C_RELEASE := target/release
C_OUT := target/c
# The C ABI version is the SONAME's number (see build.rs).
FIRMA_ABI := $(shell sed -n 's/^pub const FIRMA_ABI_VERSION: u32 = \([0-9]*\);$$/\1/p' src/ffi/mod.rs)
FIRMA_VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
C_SONAME := libfirma_stack.so.$(FIRMA_ABI)

.PHONY: header header-check build-c test-c c-cbindgen c-test-tools c-example-tools

## c-cbindgen: install the pinned cbindgen into .tools/ unless it is there.
c-cbindgen:
	@if ! "$(C_CBINDGEN)" --version 2>/dev/null | grep -qx 'cbindgen $(FIRMA_CBINDGEN_VERSION)'; then \
	    echo "installing cbindgen $(FIRMA_CBINDGEN_VERSION) into $(C_TOOLS)/"; \
	    mkdir -p "$(C_TOOLS)"; \
	    $(CARGO) install --locked --quiet --root "$(abspath $(C_TOOLS))" --version "$(FIRMA_CBINDGEN_VERSION)" cbindgen; \
	fi

## header: regenerate the header from src/ffi/. It lives in the Go module
## (bindings/go/firma_stack.h: a fetched or vendored module must carry it,
## and Go modules drop symlinks); include/firma_stack.h is a symlink to it,
## so there is one header.
header: c-cbindgen
	"$(C_CBINDGEN)" --quiet --config cbindgen.toml --output "$(C_HEADER_FILE)" "$(C_FFI_SRC)"
	@echo "wrote $(C_HEADER_FILE) ($(C_HEADER) links to it)"

## header-check: fail when the committed header differs from src/ffi/.
header-check: c-cbindgen
	@tmp=$$(mktemp --suffix=.h); trap 'rm -f "$$tmp"' EXIT; \
	"$(C_CBINDGEN)" --quiet --config cbindgen.toml --output "$$tmp" "$(C_FFI_SRC)"; \
	if ! diff -u "$(C_HEADER)" "$$tmp"; then \
	    echo "FAIL: $(C_HEADER) is out of date with $(C_FFI_SRC) / cbindgen.toml (diff above)." >&2; \
	    echo "      Run \`make header\` and commit $(C_HEADER)." >&2; \
	    exit 1; \
	fi; \
	echo "header-check: $(C_HEADER) matches $(C_FFI_SRC)"

C_CC ?= cc
C_WARN := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wpedantic
# target/c/lib holds the SONAME link to the release library, so programs
# linked against it also run from the build tree.
C_LINKDIR := $(C_OUT)/lib

## c-example-tools: pkg-config and jansson (libjansson-dev), which the
## example supervisor reads the library's JSON with, from apt only when missing.
c-example-tools:
	@missing=; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	pkg-config --exists jansson 2>/dev/null || missing="$$missing libjansson-dev"; \
	if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

## build-c: the release library plus the example supervisor target/c/status
## (bindings/c/status.c, on jansson).
build-c: build-rust c-example-tools
	@mkdir -p "$(C_LINKDIR)"
	ln -sfn ../../release/libfirma_stack.so "$(C_LINKDIR)/$(C_SONAME)"
	ln -sfn "$(C_SONAME)" "$(C_LINKDIR)/libfirma_stack.so"
	$(C_CC) $(C_WARN) -O2 -g -Iinclude $$(pkg-config --cflags jansson) bindings/c/status.c -o "$(C_OUT)/status" \
	    -L"$(C_LINKDIR)" -lfirma_stack -Wl,-rpath,"$(abspath $(C_LINKDIR))" $$(pkg-config --libs jansson)

## c-test-tools: valgrind and pkg-config, from apt only when missing.
c-test-tools:
	@missing=; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

## test-c: header drift check, the C tests plain / ASan+UBSan / valgrind,
## the install + pkg-config build. Ends with "N passed, N failed".
test-c: build-c build-testkit c-cbindgen c-test-tools
	C_CC="$(C_CC)" C_WARN="$(C_WARN)" C_CBINDGEN="$(C_CBINDGEN)" C_OUT="$(C_OUT)" \
	C_LINKDIR="$(C_LINKDIR)" FIRMA_VERSION="$(FIRMA_VERSION)" FIRMA_ABI="$(FIRMA_ABI)" \
	MAKE="$(MAKE)" bash scripts/c-test.sh
