package firmastack

/*
#include <stdlib.h>
#include "firma_stack.h"
*/
import "C"

import (
	"context"
	"fmt"
	"syscall"
	"time"
	"unsafe"
)

// DefaultStopGrace is the grace period of [Stop] when StopOptions.Grace is 0.
const DefaultStopGrace = 10 * time.Second

// MaxStopGrace is the longest grace period the core accepts.
const MaxStopGrace = 600 * time.Second

// StopOptions says how [Stop] proceeds. The zero value is the safe default:
// SIGTERM, a 10 s grace period, then SIGKILL, identity verified.
type StopOptions struct {
	// Signal is the first signal sent; 0 means SIGTERM.
	Signal syscall.Signal
	// Grace is how long to wait for the exit after the first signal; 0
	// means DefaultStopGrace. The context's deadline shortens it.
	Grace time.Duration
	// NoKill leaves a process that is still running after the grace period
	// alive (the outcome says Exited: false, and its marker stays) instead
	// of sending SIGKILL.
	NoKill bool
	// NoIdentityCheck is the UNSAFE opt-out: signal even when the process's
	// identity cannot be verified (a marker without boot_id and
	// pid_start_ticks, or one from another pid namespace), on the marker's
	// word alone. A pid proven reused is still refused.
	NoIdentityCheck bool
}

// StopOutcome is what one [Stop] did: the outcome JSON of every surface
// (same keys and order as `firma sidecar stop --json`).
type StopOutcome struct {
	SandboxID string `json:"sandbox_id"`
	PID       uint32 `json:"pid"`
	// Signals are the names of the signals this call sent, in order
	// (["SIGTERM", "SIGKILL"]); empty when it sent none (the process was
	// already gone, or another stop of the same marker was under way).
	Signals []string `json:"signals"`
	// Exited: the process has exited.
	Exited bool `json:"exited"`
	// Killed: this call sent SIGKILL.
	Killed bool `json:"killed"`
	// Collected: this call removed the marker (false when the sidecar
	// removed its own on the way out, or another caller did).
	Collected bool `json:"collected"`
	// WaitedMS is how long the call waited for the exit, in milliseconds.
	WaitedMS uint64 `json:"waited_ms"`
}

// Waited is WaitedMS as a time.Duration.
func (o *StopOutcome) Waited() time.Duration {
	return time.Duration(o.WaitedMS) * time.Millisecond
}

type stopOptionsJSON struct {
	Signal         int    `json:"signal"`
	GraceMS        uint64 `json:"grace_ms"`
	Kill           bool   `json:"kill"`
	VerifyIdentity bool   `json:"verify_identity"`
}

// Stop stops the sidecar of sandboxID under runtimeDir ("" means the
// default) safely, through the core's firma_sidecar_stop: the marker's
// process identity is checked, a pidfd pins the process, the identity is
// checked again, and only then is it signalled, through the pidfd (never
// by bare pid). Stop waits for the exit up to the grace period, sends
// SIGKILL through the same pidfd if allowed (and waits up to 5 s more),
// then collects the marker. It returns nil, nil when there is no such
// marker. A process already gone, or a zombie, is not signalled and its
// marker is collected.
//
// The context bounds the wait: the grace period passed to the core is
// min(opts.Grace, time left until ctx's deadline), so the outcome comes
// back at about the deadline (plus the SIGKILL wait, if it was sent). A
// context that is already done returns its error without calling the
// core. Cancelling ctx returns ctx.Err() at once; the stop already under
// way cannot be interrupted and finishes in the background (its signals
// are sent, its marker collected) within its grace period plus 5 s.
//
// Refusals, with nothing signalled, are errors matching
// [ErrIdentityUnverifiable], [ErrPidReused], [ErrRefused] or
// [ErrPidfdUnavailable].
func Stop(ctx context.Context, runtimeDir, sandboxID string, opts StopOptions) (*StopOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	grace := opts.Grace
	if grace == 0 {
		grace = DefaultStopGrace
	}
	if grace < 0 || grace > MaxStopGrace {
		return nil, &Error{
			Code:    CodeInvalidArgument,
			Message: fmt.Sprintf("invalid argument grace: %v is not in [0, %v]", opts.Grace, MaxStopGrace),
		}
	}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, context.DeadlineExceeded
		}
		grace = min(grace, left)
	}
	sig := opts.Signal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	optJSON, err := optionsJSON(stopOptionsJSON{
		Signal:         int(sig),
		GraceMS:        uint64((grace + time.Millisecond - 1) / time.Millisecond),
		Kill:           !opts.NoKill,
		VerifyIdentity: !opts.NoIdentityCheck,
	})
	if err != nil {
		return nil, err
	}
	dir, id, err := dirAnd(runtimeDir, "sandbox id", sandboxID)
	if err != nil {
		return nil, err
	}
	cOpts := C.CString(optJSON)

	return uninterruptible(ctx, func() (*StopOutcome, error) {
		defer freeBoth(dir, id)
		defer C.free(unsafe.Pointer(cOpts))
		var out *C.char
		status := C.firma_sidecar_stop(dir, id, cOpts, &out)
		return decodeResult(status, out, (*StopOutcome)(nil))
	})
}
