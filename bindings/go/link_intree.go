//go:build cgo && !libfirma_stack

package firmastack

// The default: the header copy in this directory (firma_stack.h, kept
// identical to the repository's include/firma_stack.h by `make test-go`) and
// the STATIC library libfirma_stack.a, found first in the firma-stack
// checkout this package sits in (<repo>/target/release, built by
// `make build`), else in the linker's default directories (the -dev Debian
// package's /usr/lib/<multiarch>, `make install` into /usr/local or /usr).
// Programs need no rpath. Where none of those has the archive (a fetched or
// vendored copy on a host without the library), the build stops at the
// #error below instead of a linker error.
//
// The -I of the library directories only lets __has_include see whether the
// archive is there; no header is taken from them (firma_stack.h is found in
// ${SRCDIR} first).

/*
#cgo CFLAGS: -I${SRCDIR} -I${SRCDIR}/../../target/release
#cgo linux,amd64 CFLAGS: -I/usr/local/lib/x86_64-linux-gnu -I/usr/lib/x86_64-linux-gnu
#cgo linux,arm64 CFLAGS: -I/usr/local/lib/aarch64-linux-gnu -I/usr/lib/aarch64-linux-gnu
#cgo CFLAGS: -I/usr/local/lib -I/usr/lib
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -l:libfirma_stack.a -lpthread -ldl -lm
#if !__has_include(<libfirma_stack.a>)
#error "firma-stack: libfirma_stack.a not found (not in the checkout's target/release, nor in /usr/lib or /usr/local/lib). Install the library (the libfirma-stack-dev package, or make install) and build with -tags libfirma_stack, which finds it through pkg-config (firma_stack.pc; set PKG_CONFIG_PATH for another prefix)."
#endif
*/
import "C"
