package firmastack_test

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
)

func TestErrorIsMatchesByCode(t *testing.T) {
	parse := &firmastack.Error{Code: firmastack.CodeMarkerParse, Message: "cannot parse marker /x: bad", Path: "/x"}
	wrapped := fmt.Errorf("supervisor: %w", parse)
	if !errors.Is(wrapped, firmastack.ErrMarkerParse) {
		t.Error("wrapped marker_parse error does not match ErrMarkerParse")
	}
	for _, other := range []error{firmastack.ErrIO, firmastack.ErrInvalidArgument, firmastack.ErrIdentityMismatch, firmastack.ErrInternal} {
		if errors.Is(wrapped, other) {
			t.Errorf("marker_parse error matches %v", other)
		}
	}
	if errors.Is(wrapped, &firmastack.Error{Code: firmastack.CodeMarkerParse, Path: "/other"}) {
		t.Error("matches a non-sentinel error with another path")
	}
	if !errors.Is(wrapped, &firmastack.Error{Code: firmastack.CodeMarkerParse, Message: parse.Message, Path: "/x"}) {
		t.Error("does not match an equal error")
	}
	if parse.Error() != "firmastack: cannot parse marker /x: bad" {
		t.Errorf("Error() = %q", parse.Error())
	}
	if errors.Unwrap(parse) != nil {
		t.Error("a non-I/O error unwraps to something")
	}

	io := &firmastack.Error{Code: firmastack.CodeIO, Message: "cannot open /y", Path: "/y", Errno: syscall.EACCES}
	if !errors.Is(io, firmastack.ErrIO) || !errors.Is(io, fs.ErrPermission) || errors.Is(io, fs.ErrNotExist) {
		t.Error("I/O error with EACCES does not match ErrIO and fs.ErrPermission only")
	}
	var errno syscall.Errno
	if !errors.As(io, &errno) || errno != syscall.EACCES {
		t.Errorf("errors.As(errno) = %v", errno)
	}
}
