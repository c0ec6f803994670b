//go:build cgo && !libfirma_stack

package firmastack

// The default: the header and the static library of the firma-stack
// checkout this package sits in (<repo>/include, <repo>/target/release,
// built by `make build`). Programs need no rpath.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libfirma_stack.a -lpthread -ldl -lm
*/
import "C"
