// Package firmastack is the Go binding of firma-stack: it tells a supervisor
// which agent-sandbox sidecars are alive on this host, whether they serve,
// and collects the markers of runs that died.
//
// The package is a thin layer over the library's C ABI (include/firma_stack.h):
// every function converts its arguments to C, calls the one Rust core, and
// decodes the JSON the core returns. Listing, probing and garbage collection
// all happen in the core, so every surface (Rust, C, Python, Go, the firma
// CLI) gives the same answer for the same directory.
//
// # Building
//
// The package needs cgo (CGO_ENABLED=1 and a C compiler); without it the
// build stops at the undefined identifier
// firmastack_requires_cgo_build_with_CGO_ENABLED_1. It links the C library
// one of two ways:
//
// The module carries its own copy of the C header (firma_stack.h), so a
// fetched or vendored copy compiles without the repository. By default it
// links the static library libfirma_stack.a: the checkout's own
// (<repo>/target/release, relative to this package's source directory,
// after `make build`), else the one in the linker's default directories (the
// libfirma-stack-dev Debian package, `make install` into /usr/local). Binaries
// need no rpath. Without either, the build stops at an #error naming
// -tags libfirma_stack and pkg-config. The module path is the repository's;
// until it is published there, a module outside the repository points at a
// checkout with a replace directive:
//
//	require github.com/firma-stack/firma-stack/bindings/go v0.0.0
//	replace github.com/firma-stack/firma-stack/bindings/go => /path/to/firma-stack/bindings/go
//
// With the build tag libfirma_stack, the installed library instead, through
// `#cgo pkg-config: firma_stack` (the firma_stack.pc of the -dev package or
// `make install`). The program then links the shared library; for a prefix
// the loader does not search, add an rpath:
//
//	export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
//	CGO_LDFLAGS="-Wl,-rpath,$(pkg-config --variable=libdir firma_stack)" \
//	    go build -tags libfirma_stack ./...
//
// # Runtime directory
//
// An empty runtimeDir means the default runtime directory ($FIRMA_STATE_DIR,
// else $XDG_RUNTIME_DIR/firma, else /run/firma for root and /tmp/firma-<uid>
// for other users), resolved by the core at call time; [DefaultRuntimeDir]
// reports it.
//
// # Timeouts and contexts
//
// Each probe of a sidecar's endpoint waits at most the probe timeout (the
// core's default, [DefaultTimeout], 200 ms; a listing probes all endpoints
// concurrently, so it waits about one timeout in all). The Context variants
// ([ListContext], [GetContext], [ProbeEntryContext], [InspectContext]) use
// the time left until the context's deadline as the probe timeout, at most
// the core's [MaxTimeout]. A call into C cannot be interrupted: a
// context that is already done returns its error without calling the core;
// cancellation after that is not observed, and a context without a deadline
// uses the default timeout.
//
// # Writing, selecting, waiting
//
// [CreateMarker] and [RemoveMarker] are the core's writer: a sidecar (or its
// supervisor) registers itself, and the core records its process's
// identity so [Stop] can verify it later. [ListFiltered] and
// [InspectFiltered] take the core's [Filter]; [Wait] blocks until sidecars
// are running or gone (on the core's watcher, not by polling);
// [RuntimeDirState] tells a missing runtime directory from an idle one.
//
// # Errors
//
// Failures are *[Error] values carrying the core's stable error code; test
// them with errors.Is against the sentinels ([ErrInvalidArgument], [ErrIO],
// [ErrMarkerParse], [ErrIdentityMismatch], [ErrInternal]) or with errors.As.
// [ErrorCodes] lists the codes of the linked library. [Inspect] reports a
// broken marker's error as a *[Error] in [MarkerReport].Error.
// An I/O error also unwraps to its syscall.Errno, so
// errors.Is(err, fs.ErrNotExist) works. Error details travel with each call's
// result, never through thread-local state, so they are safe across
// goroutines moving between OS threads.
//
// All functions are safe for concurrent use.
package firmastack
