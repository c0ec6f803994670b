# The Go surface (bindings/go/README.md): cgo bindings in bindings/go over
# the C ABI, linked against the static library
# target/release/libfirma_stack.a.
#
# test-go: gofmt, go vet, go doc free of cgo names, the race-enabled
# tests, one run with the strict cgo pointer checks
# (GOEXPERIMENT=cgocheck2), and a program built OUTSIDE
# the repository through a replace directive, vendored (`go mod vendor`)
# with either tag. Go is expected on the machine
# (CI has it); nothing is downloaded: GOTOOLCHAIN=local, and the module has
# no third-party dependencies.

TEST_LEGS += test-go

GO_BIN ?= go
GO_DIR := bindings/go
# Go's build cache does not notice a changed static library or header
# (golang/go#24355), so a digest of both goes into CGO_CFLAGS: any change to
# them rebuilds the cgo package and relinks the tests.
# (Expanded when the recipe runs, i.e. after build-rust.)
GO_LIB_SUM = $(shell cat $(CURDIR)/target/release/libfirma_stack.a $(CURDIR)/include/firma_stack.h | sha256sum | cut -c1-16)
GO_ENV = GOTOOLCHAIN=local GOFLAGS='-mod=mod -buildvcs=false' CGO_ENABLED=1 \
	CGO_CFLAGS="-O2 -g -DFIRMA_STACK_BUILD_SUM=$(GO_LIB_SUM)"

GO_HEADER := $(GO_DIR)/firma_stack.h

.PHONY: test-go go-header-check

## go-header-check: fail unless include/firma_stack.h is the symlink to the
## Go module's header (the one header; see `make header`).
go-header-check:
	@if [[ $$(readlink include/firma_stack.h) != ../$(GO_HEADER) || ! -f $(GO_HEADER) ]]; then \
	    echo "FAIL: include/firma_stack.h must be a symlink to ../$(GO_HEADER), the one header" >&2; exit 1; \
	fi; echo "go-header-check: include/firma_stack.h links to $(GO_HEADER)"

## test-go: vet and test the Go bindings against the release static library.
test-go: build-rust build-testkit include/firma_stack.h go-header-check
	@cd $(GO_DIR) && unformatted=$$(gofmt -l .) && if [[ -n $$unformatted ]]; then \
	    echo "FAIL: gofmt needed in $(GO_DIR): $$unformatted" >&2; exit 1; fi
	cd $(GO_DIR) && $(GO_ENV) $(GO_BIN) vet ./...
	@# The documentation shows Go, never a cgo name (C.FIRMA_..., C.char).
	@cd $(GO_DIR) && if $(GO_ENV) $(GO_BIN) doc -all . | grep -nE '\bC\.[A-Za-z_]'; then \
	    echo "FAIL: go doc shows cgo names (above): export plain Go values" >&2; exit 1; fi
	cd $(GO_DIR) && $(GO_ENV) $(GO_BIN) test -race -count=1 ./...
	cd $(GO_DIR) && $(GO_ENV) GOEXPERIMENT=cgocheck2 $(GO_BIN) test -count=1 ./...
	$(GO_ENV) GO=$(GO_BIN) bash $(GO_DIR)/scripts/outside-module.sh
