package firmastack

/*
// Where the header and the library come from depends on the build tag:
// link_intree.go (default) or link_installed.go (-tags libfirma_stack).
#include <stdlib.h>
#include "firma_stack.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// BindingABIVersion is the C ABI version this package was written for;
// [ABIVersion] reports the version of the library actually linked.
const BindingABIVersion = 1

// ABIVersion returns the C ABI version of the linked library
// (firma_abi_version).
func ABIVersion() uint32 {
	return uint32(C.firma_abi_version())
}

// The core's probe-timeout policy (the C header's FIRMA_DEFAULT_TIMEOUT_MS
// and FIRMA_MAX_TIMEOUT_MS; a test checks that they agree).
const (
	// DefaultTimeout is the probe timeout of a call whose context has no
	// deadline.
	DefaultTimeout = 200 * time.Millisecond
	// MaxTimeout is the longest probe timeout the core accepts; a context
	// deadline further away probes for MaxTimeout at most.
	MaxTimeout = 10 * time.Minute
)

// DefaultRuntimeDir returns the runtime directory used when a caller passes
// "": $FIRMA_STATE_DIR if set and non-empty, else $XDG_RUNTIME_DIR/firma,
// else /run/firma for root and /tmp/firma-<uid> for other users (the core
// decides). It fails (CodeInvalidArgument) only when that path
// is not valid UTF-8.
func DefaultRuntimeDir() (string, error) {
	return stringResult(func(out **C.char) C.int32_t {
		return C.firma_default_runtime_dir(out)
	})
}

// List returns every live sidecar under runtimeDir ("" means the default),
// sorted by sandbox id, with the default probe timeout. Stale markers are
// collected on the way and not returned; corrupt or mismatched markers are
// skipped. A missing run/ directory gives an empty, non-nil slice.
func List(runtimeDir string) ([]SidecarEntry, error) {
	return ListContext(context.Background(), runtimeDir)
}

// ListContext is [List] with the probe timeout taken from ctx's deadline
// (see the package documentation).
func ListContext(ctx context.Context, runtimeDir string) ([]SidecarEntry, error) {
	timeout, dir, err := timeoutAndDir(ctx, runtimeDir)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(dir))

	var out *C.char
	status := C.firma_sidecar_list_with_timeout(dir, timeout, &out)
	return decodeResult(status, out, []SidecarEntry{})
}

// Get looks up and probes the sidecar of sandboxID under runtimeDir ("" means
// the default), whatever its state; nothing is removed. It returns nil, nil
// when there is no such marker. An invalid sandbox id is ErrInvalidArgument;
// a malformed marker is ErrMarkerParse or ErrIdentityMismatch.
func Get(runtimeDir, sandboxID string) (*SidecarEntry, error) {
	return GetContext(context.Background(), runtimeDir, sandboxID)
}

// GetContext is [Get] with the probe timeout taken from ctx's deadline.
func GetContext(ctx context.Context, runtimeDir, sandboxID string) (*SidecarEntry, error) {
	return probingCall(ctx, runtimeDir, "sandbox id", sandboxID, (*SidecarEntry)(nil),
		func(dir, id *C.char, timeout C.uint32_t, out **C.char) C.int32_t {
			return C.firma_sidecar_get_with_timeout(dir, id, timeout, out)
		})
}

// probingCall is the body of a probing call with one string argument
// besides the runtime directory (what names it in an error): the timeout
// from ctx, both strings in C, the call, its answer decoded into v.
func probingCall[T any](ctx context.Context, runtimeDir, what, arg string, v T,
	call func(dir, arg *C.char, timeout C.uint32_t, out **C.char) C.int32_t) (T, error) {
	var zero T
	timeout, err := timeoutFrom(ctx)
	if err != nil {
		return zero, err
	}
	dir, cArg, err := dirAnd(runtimeDir, what, arg)
	if err != nil {
		return zero, err
	}
	defer freeBoth(dir, cArg)
	var out *C.char
	return decodeResult(call(dir, cArg, timeout, &out), out, v)
}

// GCStale removes the marker of every sidecar that has provably stopped
// under runtimeDir ("" means the default) and returns the removed sandbox
// ids, sorted (an empty, non-nil slice when none). Of any number of
// concurrent callers, each removed id is reported by exactly one. GCStale
// does not probe endpoints, so it takes no timeout.
func GCStale(runtimeDir string) ([]string, error) {
	dir, err := runtimeDirArg(runtimeDir)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(dir))

	var out *C.char
	status := C.firma_sidecar_gc_stale(dir, &out)
	return decodeResult(status, out, []string{})
}

// ProbeEntry reads and probes one marker directory, named by any path (its
// base name must equal the marker's sandbox id); nothing is removed. A
// missing or unreadable metadata.toml is ErrIO, one that cannot be
// understood is ErrMarkerParse.
func ProbeEntry(markerDir string) (SidecarEntry, error) {
	return ProbeEntryContext(context.Background(), markerDir)
}

// ProbeEntryContext is [ProbeEntry] with the probe timeout taken from ctx's
// deadline.
func ProbeEntryContext(ctx context.Context, markerDir string) (SidecarEntry, error) {
	timeout, err := timeoutFrom(ctx)
	if err != nil {
		return SidecarEntry{}, err
	}
	dir, err := cString("marker dir", markerDir)
	if err != nil {
		return SidecarEntry{}, err
	}
	defer C.free(unsafe.Pointer(dir))

	var out *C.char
	status := C.firma_sidecar_probe_entry_with_timeout(dir, timeout, &out)
	return decodeResult(status, out, SidecarEntry{})
}

// Inspect reports every entry of runtimeDir's run/ directory ("" means the
// default), sorted by name, with why it is live, stale or broken, probing
// live endpoints with the default timeout. It never removes anything. A
// broken marker is a report (Verdict broken, Error set), never an error of
// the call; a missing run/ gives an empty, non-nil slice.
func Inspect(runtimeDir string) ([]MarkerReport, error) {
	return InspectContext(context.Background(), runtimeDir)
}

// InspectContext is [Inspect] with the probe timeout taken from ctx's
// deadline.
func InspectContext(ctx context.Context, runtimeDir string) ([]MarkerReport, error) {
	text, err := inspectJSON(ctx, runtimeDir)
	if err != nil {
		return nil, err
	}
	return decodeAs(text, []MarkerReport{})
}

// inspectJSON is firma_sidecar_inspect's JSON, undecoded.
func inspectJSON(ctx context.Context, runtimeDir string) (string, error) {
	timeout, dir, err := timeoutAndDir(ctx, runtimeDir)
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(dir))
	return stringResult(func(out **C.char) C.int32_t {
		return C.firma_sidecar_inspect(dir, timeout, out)
	})
}

// ErrorCodes returns every error code the linked library can report, in
// the order of its C status numbers (status 1 is the first). Each has an
// ErrorCode constant and a sentinel in this package.
func ErrorCodes() ([]ErrorCode, error) {
	var out *C.char
	status := C.firma_error_codes(&out)
	return decodeResult(status, out, []ErrorCode(nil))
}

// timeoutFrom converts ctx's deadline into the C ABI's timeout_ms: 0 (the
// core's default) without a deadline, else the milliseconds left, rounded
// up to at least 1 and at most the core's maximum. A context that is
// already done gives its error.
func timeoutFrom(ctx context.Context) (C.uint32_t, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	left := time.Until(deadline)
	if left <= 0 {
		return 0, context.DeadlineExceeded
	}
	ms := (left + time.Millisecond - 1) / time.Millisecond
	if ms > maxTimeoutMS {
		ms = maxTimeoutMS
	}
	return C.uint32_t(ms), nil
}

// cString copies s into C memory for an argument; the caller frees it with
// C.free. A NUL byte cannot cross the boundary (C would silently truncate
// the string there), so it is an invalid argument.
func cString(what, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, &Error{
			Code:    CodeInvalidArgument,
			Message: fmt.Sprintf("%s %q contains a NUL byte", what, s),
		}
	}
	return C.CString(s), nil
}

// runtimeDirArg is cString for a runtime directory, with "" as NULL (the
// default directory). C.free(nil) is a no-op.
func runtimeDirArg(dir string) (*C.char, error) {
	if dir == "" {
		return nil, nil
	}
	return cString("runtime dir", dir)
}

// headerABIVersion is FIRMA_ABI_VERSION of the header compiled against.
const headerABIVersion = C.FIRMA_ABI_VERSION

// maxTimeoutMS is FIRMA_MAX_TIMEOUT_MS of the header compiled against.
const maxTimeoutMS = C.FIRMA_MAX_TIMEOUT_MS

// defaultTimeoutMS is FIRMA_DEFAULT_TIMEOUT_MS of the header compiled
// against (checked equal to DefaultTimeout by a test).
const defaultTimeoutMS = C.FIRMA_DEFAULT_TIMEOUT_MS

// statusCodes is the library's own table of status numbers to codes
// (firma_error_codes), read once; it is used only when an error object
// cannot be decoded.
// (It calls the library directly: going through takeResult could come
// back here on failure.)
var statusCodes = sync.OnceValue(func() []ErrorCode {
	var out *C.char
	status := C.firma_error_codes(&out)
	if out == nil {
		return nil
	}
	defer C.firma_string_free(out)
	var codes []ErrorCode
	if status != C.FIRMA_OK || json.Unmarshal([]byte(C.GoString(out)), &codes) != nil {
		return nil
	}
	return codes
})

// takeResult copies the string the library returned into Go memory, frees
// it with firma_string_free, and turns a non-zero status into an *Error
// built from the returned error object.
func takeResult(status C.int32_t, out *C.char) (string, error) {
	if out == nil {
		return "", statusError(int32(status), "the library returned no result")
	}
	defer C.firma_string_free(out)
	text := C.GoString(out)
	if status != C.FIRMA_OK {
		return "", decodeError(int32(status), text)
	}
	return text, nil
}

func statusError(status int32, message string) *Error {
	code := CodeInternal
	if codes := statusCodes(); status >= 1 && int(status) <= len(codes) {
		code = codes[status-1]
	}
	return &Error{Code: code, Message: fmt.Sprintf("%s (status %d)", message, status)}
}

// errorObject is the C ABI's error JSON.
type errorObject struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Path    *string `json:"path"`
	Errno   *int    `json:"errno"`
}

func decodeError(status int32, text string) *Error {
	var obj errorObject
	if err := json.Unmarshal([]byte(text), &obj); err != nil || obj.Code == "" {
		return statusError(status, fmt.Sprintf("undecodable error object %q", text))
	}
	return obj.toError()
}

func (obj *errorObject) toError() *Error {
	e := &Error{Code: ErrorCode(obj.Code), Message: obj.Message}
	if obj.Path != nil {
		e.Path = *obj.Path
	}
	if obj.Errno != nil {
		e.Errno = syscall.Errno(*obj.Errno)
	}
	return e
}

// UnmarshalJSON reads the core's error object {"code", "message", "path",
// "errno"} (as in [MarkerReport].Error).
func (e *Error) UnmarshalJSON(data []byte) error {
	var obj errorObject
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	if obj.Code == "" {
		return fmt.Errorf("firmastack: error object without a code: %s", data)
	}
	*e = *obj.toError()
	return nil
}

// MarshalJSON writes the core's error object: an empty Path and a zero
// Errno are null.
func (e Error) MarshalJSON() ([]byte, error) {
	obj := errorObject{Code: string(e.Code), Message: e.Message}
	if e.Path != "" {
		obj.Path = &e.Path
	}
	if e.Errno != 0 {
		n := int(e.Errno)
		obj.Errno = &n
	}
	return json.Marshal(obj)
}

// stringResult runs call, which stores the library's answer through out,
// and returns that answer as takeResult does: for the calls whose answer is
// text rather than JSON to decode.
func stringResult(call func(out **C.char) C.int32_t) (string, error) {
	var out *C.char
	status := call(&out)
	return takeResult(status, out)
}

// decodeResult is takeResult followed by decoding its JSON into v (which
// starts as the value given, so an empty slice stays non-nil): the last step
// of every call. On failure it returns T's zero value.
func decodeResult[T any](status C.int32_t, out *C.char, v T) (T, error) {
	text, err := takeResult(status, out)
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs(text, v)
}

// decodeAs decodes the library's JSON text into v; T's zero value on failure.
func decodeAs[T any](text string, v T) (T, error) {
	if err := decode(text, &v); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// dirAnd converts the runtime directory ("" is NULL) and one more string
// argument (what names it in an error) for a call; the caller frees both
// with freeBoth.
func dirAnd(runtimeDir, what, s string) (*C.char, *C.char, error) {
	dir, err := runtimeDirArg(runtimeDir)
	if err != nil {
		return nil, nil, err
	}
	arg, err := cString(what, s)
	if err != nil {
		C.free(unsafe.Pointer(dir))
		return nil, nil, err
	}
	return dir, arg, nil
}

// freeBoth frees the arguments dirAnd made (C.free(nil) is a no-op).
func freeBoth(dir, arg *C.char) {
	C.free(unsafe.Pointer(dir))
	C.free(unsafe.Pointer(arg))
}

// timeoutAndDir is timeoutFrom and runtimeDirArg, the first arguments of
// every call on a runtime directory; the caller frees dir with C.free.
func timeoutAndDir(ctx context.Context, runtimeDir string) (C.uint32_t, *C.char, error) {
	timeout, err := timeoutFrom(ctx)
	if err != nil {
		return 0, nil, err
	}
	dir, err := runtimeDirArg(runtimeDir)
	if err != nil {
		return 0, nil, err
	}
	return timeout, dir, nil
}

// optionsJSON is the JSON options object of a call, as the C ABI reads it.
func optionsJSON(options any) (string, error) {
	js, err := json.Marshal(options)
	if err != nil {
		return "", &Error{Code: CodeInternal, Message: err.Error()}
	}
	return string(js), nil
}

func decode(text string, into any) error {
	if err := json.Unmarshal([]byte(text), into); err != nil {
		return &Error{
			Code:    CodeInternal,
			Message: fmt.Sprintf("cannot decode the library's result %q: %v", text, err),
		}
	}
	return nil
}

// uninterruptible runs call, a C call that cannot be interrupted and that
// frees its own arguments, on a goroutine of its own. It returns call's
// answer; when ctx is cancelled first, ctx.Err() at once (call finishes in
// the background). A passed deadline is not a cancellation: the caller
// shortened the call's own bound to it, so the answer is due and awaited.
func uninterruptible[T any](ctx context.Context, call func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := call()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r := <-done
			return r.v, r.err
		}
		var zero T
		return zero, ctx.Err()
	}
}
