package firmastack

import (
	"fmt"
	"syscall"
)

// ErrorCode is the core's stable, machine-readable error code.
type ErrorCode string

// The error codes of the C ABI, one per core error variant.
const (
	// CodeInvalidArgument: an invalid sandbox id, or an argument the C ABI
	// cannot take (a string with a NUL byte, a path that is not UTF-8).
	CodeInvalidArgument ErrorCode = "invalid_argument"
	// CodeIO: a system call failed; Error.Errno holds the errno.
	CodeIO ErrorCode = "io"
	// CodeMarkerParse: a marker's metadata.toml cannot be understood.
	CodeMarkerParse ErrorCode = "marker_parse"
	// CodeIdentityMismatch: a marker names another sandbox than its
	// directory.
	CodeIdentityMismatch ErrorCode = "identity_mismatch"
	// CodeInternal: a bug in the library (a panic caught at the C boundary,
	// or a result this binding could not decode).
	CodeInternal ErrorCode = "internal"
	// CodeIdentityUnverifiable: [Stop] refused, because the process's
	// identity cannot be proved (the marker records no boot_id and
	// pid_start_ticks, or comes from another pid namespace). Nothing was
	// signalled.
	CodeIdentityUnverifiable ErrorCode = "identity_unverifiable"
	// CodePidReused: [Stop] refused, because the marker's pid belongs to
	// another process now. Nothing was signalled. (Not CodeIdentityMismatch,
	// which is about a marker's directory name.)
	CodePidReused ErrorCode = "pid_reused"
	// CodeRefused: [Stop] refused a pid it never signals: 1, the caller's
	// own, or one above the kernel's pid_max. Nothing was signalled.
	CodeRefused ErrorCode = "refused"
	// CodePidfdUnavailable: [Stop] cannot use pidfds (Linux 5.3 or later is
	// required) and never falls back to signalling by bare pid. Nothing was
	// signalled.
	CodePidfdUnavailable ErrorCode = "pidfd_unavailable"
	// CodeUntrustedDirectory: the runtime directory or its run/ fails the
	// trust checks (writable by others, a stranger's symlink, owners that
	// disagree) for a call that removes, signals or writes. Nothing was
	// changed.
	CodeUntrustedDirectory ErrorCode = "untrusted_directory"
	// CodeNotAuthorized: [Stop] refused, because the marker's owner (bounded
	// by the runtime directory's owner) could not signal that process, the
	// marker is nobody's claim, or the process is a kernel thread or the
	// caller's ancestor. Nothing was signalled; NoIdentityCheck does not
	// override it.
	CodeNotAuthorized ErrorCode = "not_authorized"
	// CodeForked: a watcher was used from a process other than the one that
	// opened it (a fork() child); nothing of it was touched. Go programs
	// do not fork, so [Watch] never reports it; it is here because every
	// surface knows every code.
	CodeForked ErrorCode = "forked"
)

// Error is a failure reported by the core.
type Error struct {
	// Code is the stable error code.
	Code ErrorCode
	// Message is the core's human-readable message; it names the path or id
	// the error is about.
	Message string
	// Path is the file or directory the error is about, "" when none.
	Path string
	// Errno is the OS error number of an I/O error, 0 otherwise.
	Errno syscall.Errno
}

// Sentinel errors, one per code, for errors.Is. They match any *Error with
// the same Code.
var (
	ErrInvalidArgument      = &Error{Code: CodeInvalidArgument}
	ErrIO                   = &Error{Code: CodeIO}
	ErrMarkerParse          = &Error{Code: CodeMarkerParse}
	ErrIdentityMismatch     = &Error{Code: CodeIdentityMismatch}
	ErrInternal             = &Error{Code: CodeInternal}
	ErrIdentityUnverifiable = &Error{Code: CodeIdentityUnverifiable}
	ErrPidReused            = &Error{Code: CodePidReused}
	ErrRefused              = &Error{Code: CodeRefused}
	ErrPidfdUnavailable     = &Error{Code: CodePidfdUnavailable}
	ErrUntrustedDirectory   = &Error{Code: CodeUntrustedDirectory}
	ErrNotAuthorized        = &Error{Code: CodeNotAuthorized}
	ErrForked               = &Error{Code: CodeForked}
)

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("firmastack: %s", e.Code)
	}
	return fmt.Sprintf("firmastack: %s", e.Message)
}

// Is reports whether target is an *Error with the same Code that carries
// nothing else (a sentinel such as ErrMarkerParse), or an *Error equal to e
// in every field.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t == nil || e == nil || t.Code != e.Code {
		return false
	}
	if t.Message == "" && t.Path == "" && t.Errno == 0 {
		return true
	}
	return *t == *e
}

// Unwrap returns the errno of an I/O error (so that, for example,
// errors.Is(err, fs.ErrNotExist) holds for a missing directory), nil
// otherwise.
func (e *Error) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}
