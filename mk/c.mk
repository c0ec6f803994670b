# The C surface (issue 3): the cbindgen header, the shared/static library's
# install with pkg-config, the example supervisor, and the C tests (plain,
# ASan+UBSan, valgrind). Everything here is prefixed C_ or FIRMA_ so it
# cannot clash with other mk/*.mk files.

BUILD_LEGS += build-c
TEST_LEGS += test-c

FIRMA_CBINDGEN_VERSION := 0.29.4
C_TOOLS := .tools
C_CBINDGEN := $(C_TOOLS)/bin/cbindgen
C_HEADER := include/firma_stack.h
C_RELEASE := target/release
C_OUT := target/c
# The C ABI version is the SONAME's number (see build.rs).
FIRMA_ABI := $(shell sed -n 's/^pub const FIRMA_ABI_VERSION: u32 = \([0-9]*\);$$/\1/p' src/ffi.rs)
FIRMA_VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
C_SONAME := libfirma_stack.so.$(FIRMA_ABI)
PREFIX ?= /usr/local
C_LIBDIR ?= $(PREFIX)/lib
C_INCLUDEDIR ?= $(PREFIX)/include

.PHONY: header header-check build-c test-c install c-cbindgen

## c-cbindgen: install the pinned cbindgen into .tools/ unless it is there.
c-cbindgen:
	@if ! "$(C_CBINDGEN)" --version 2>/dev/null | grep -qx 'cbindgen $(FIRMA_CBINDGEN_VERSION)'; then \
	    echo "installing cbindgen $(FIRMA_CBINDGEN_VERSION) into $(C_TOOLS)/"; \
	    $(CARGO) install --locked --quiet --root "$(C_TOOLS)" --version "$(FIRMA_CBINDGEN_VERSION)" cbindgen; \
	fi

## header: regenerate include/firma_stack.h from src/ffi.rs.
header: c-cbindgen
	"$(C_CBINDGEN)" --quiet --config cbindgen.toml --output "$(C_HEADER)" src/ffi.rs
	@echo "wrote $(C_HEADER)"

## header-check: fail when the committed header differs from src/ffi.rs.
header-check: c-cbindgen
	@tmp=$$(mktemp --suffix=.h); trap 'rm -f "$$tmp"' EXIT; \
	"$(C_CBINDGEN)" --quiet --config cbindgen.toml --output "$$tmp" src/ffi.rs; \
	if ! diff -u "$(C_HEADER)" "$$tmp"; then \
	    echo "FAIL: $(C_HEADER) is out of date with src/ffi.rs / cbindgen.toml (diff above)." >&2; \
	    echo "      Run \`make header\` and commit $(C_HEADER)." >&2; \
	    exit 1; \
	fi; \
	echo "header-check: $(C_HEADER) matches src/ffi.rs"
