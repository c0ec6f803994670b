package firmastack

/*
#include <stdlib.h>
#include "firma_stack.h"
*/
import "C"

import (
	"context"
	"time"
	"unsafe"
)

// Filter selects sidecars, as the core's one filter of every surface (the
// CLI's --state, --agent, --session, --reason and --sandbox-id). Every part
// given must match; a list matches when the value is one of it. The zero
// Filter selects everything.
type Filter struct {
	// States: the entry's state is one of these.
	States []State `json:"states,omitempty"`
	// Agent: the entry's agent id equals this ("": any).
	Agent string `json:"agent,omitempty"`
	// Session: the entry's session id equals this ("": any).
	Session string `json:"session,omitempty"`
	// Reasons: an [Inspect] report's reason is one of these. Entries have
	// no reason, so a Filter with Reasons selects no entry of List.
	Reasons []Reason `json:"reasons,omitempty"`
	// SandboxIDs: the sandbox id (a report's name) is one of these.
	SandboxIDs []string `json:"sandbox_ids,omitempty"`
}

// filterCall is the body of ListFiltered and InspectFiltered: the filter
// as its JSON object, then probingCall.
func filterCall[T any](ctx context.Context, runtimeDir string, f Filter, v T,
	call func(dir, filter *C.char, timeout C.uint32_t, out **C.char) C.int32_t) (T, error) {
	text, err := optionsJSON(f)
	if err != nil {
		var zero T
		return zero, err
	}
	return probingCall(ctx, runtimeDir, "filter", text, v, call)
}

// ListFiltered is [ListContext] keeping only the sidecars f selects (stale
// markers are collected as List does, selected or not).
func ListFiltered(ctx context.Context, runtimeDir string, f Filter) ([]SidecarEntry, error) {
	return filterCall(ctx, runtimeDir, f, []SidecarEntry{},
		func(dir, filter *C.char, timeout C.uint32_t, out **C.char) C.int32_t {
			return C.firma_sidecar_list_filtered(dir, filter, timeout, out)
		})
}

// InspectFiltered is [InspectContext] keeping only the reports f selects
// (a broken marker has no entry and matches no Agent or Session).
func InspectFiltered(ctx context.Context, runtimeDir string, f Filter) ([]MarkerReport, error) {
	return filterCall(ctx, runtimeDir, f, []MarkerReport{},
		func(dir, filter *C.char, timeout C.uint32_t, out **C.char) C.int32_t {
			return C.firma_sidecar_inspect_filtered(dir, filter, timeout, out)
		})
}

// WaitStatus is one id as [Wait] last saw it.
type WaitStatus struct {
	SandboxID string `json:"sandbox_id"`
	// State is nil when the sidecar has no marker.
	State *State `json:"state"`
	Met   bool   `json:"met"`
}

// WaitOutcome is what [Wait] ended with: the JSON of every surface.
type WaitOutcome struct {
	Condition WaitFor `json:"condition"`
	// Met: every id met the condition before the timeout.
	Met      bool   `json:"met"`
	WaitedMS uint64 `json:"waited_ms"`
	// Sidecars holds every id, in the order given.
	Sidecars []WaitStatus `json:"sidecars"`
}

type waitJSON struct {
	SandboxIDs []string `json:"sandbox_ids"`
	For        WaitFor  `json:"for"`
	TimeoutMS  int64    `json:"timeout_ms"`
}

// Wait waits until every one of sandboxIDs under runtimeDir ("" means the
// default) meets cond, or timeout passes (0: judge once, after the first
// full scan; at most a day), on the core's read-only watcher: exits are
// seen at once, endpoints at each probe round (every second). A timeout is
// not an error: the outcome says Met false. The context's deadline
// shortens the timeout; cancelling ctx returns ctx.Err() at once, the wait
// under way ending in the background within its timeout. No ids, an
// invalid id or a timeout out of range is ErrInvalidArgument.
func Wait(ctx context.Context, runtimeDir string, sandboxIDs []string, cond WaitFor, timeout time.Duration) (*WaitOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(deadline)), 0)
	}
	ids := sandboxIDs
	if ids == nil {
		ids = []string{}
	}
	text, err := optionsJSON(waitJSON{SandboxIDs: ids, For: cond, TimeoutMS: durationMillis(timeout)})
	if err != nil {
		return nil, err
	}
	dir, request, err := dirAnd(runtimeDir, "wait request", text)
	if err != nil {
		return nil, err
	}
	return uninterruptible(ctx, func() (*WaitOutcome, error) {
		defer freeBoth(dir, request)
		var out *C.char
		status := C.firma_sidecar_wait(dir, request, &out)
		return decodeResult(status, out, (*WaitOutcome)(nil))
	})
}

// RuntimeDirState tells a missing runtime directory ("" means the default)
// from an idle one: the reading calls answer a directory that does not
// exist as an empty one, so a mistyped path looks like an idle host. It
// fails only for an argument the C ABI cannot take.
func RuntimeDirState(runtimeDir string) (DirState, error) {
	dir, err := runtimeDirArg(runtimeDir)
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(dir))
	var out *C.char
	status := C.firma_runtime_dir_state(dir, &out)
	return decodeResult(status, out, DirState(""))
}
