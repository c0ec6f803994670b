//go:build !cgo

package firmastack

// The package is a cgo binding of the firma-stack C library and cannot be
// built without cgo. Without this file a CGO_ENABLED=0 build would fail
// with "undefined: firmastack.List" in the importing package; with it, the
// compiler names the cause: build with CGO_ENABLED=1 and a C compiler.
var _ = firmastack_requires_cgo_build_with_CGO_ENABLED_1
