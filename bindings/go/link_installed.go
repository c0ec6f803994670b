//go:build cgo && libfirma_stack

package firmastack

// With -tags libfirma_stack: the installed library, found through
// pkg-config (firma_stack.pc, installed by `make install`; point
// PKG_CONFIG_PATH at <prefix>/lib/pkgconfig for a non-system prefix). The
// program links the shared library: see the package documentation for
// running it from a non-system prefix.

// #cgo pkg-config: firma_stack
import "C"
