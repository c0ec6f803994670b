//go:build cgo && libfirma_stack

package firmastack

// With -tags libfirma_stack: the installed library, found through
// pkg-config (firma_stack.pc, from the libfirma-stack-dev package or
// `make install`; point PKG_CONFIG_PATH at <prefix>/lib/pkgconfig for a
// non-system prefix). The header is still this directory's copy
// (firma_stack.h, identical to the repository's include/firma_stack.h), so
// the Go code always compiles against the declarations it was written for
// (ABIVersion against BindingABIVersion tells a mismatched library). The
// program links the shared library: see the package documentation for
// running it from a non-system prefix.

// #cgo CFLAGS: -I${SRCDIR}
// #cgo pkg-config: firma_stack
import "C"
