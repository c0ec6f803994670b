package firmastack

import (
	"fmt"
	"syscall"
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
