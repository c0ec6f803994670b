package firmastack

/*
#include <stdlib.h>
#include "firma_stack.h"
*/
import "C"

import "time"

// Marker is what a supervisor (or a sidecar itself) registers with
// [CreateMarker]. The five text fields are required by the core.
type Marker struct {
	SandboxID           string `json:"sandbox_id"`
	AgentID             string `json:"agent_id"`
	SessionID           string `json:"session_id"`
	AuthorityURL        string `json:"authority_url"`
	PolicyBundleVersion string `json:"policy_bundle_version"`
	// PID is the sidecar's process; 0 means the calling process.
	PID int `json:"pid,omitempty"`
	// StartedAt is when the sidecar started; the zero time means now.
	StartedAt time.Time `json:"-"`
	// Listen is the endpoint to probe: an absolute Unix socket path or
	// host:port; "" means the marker's sidecar.sock.
	Listen string `json:"listen,omitempty"`
}

// markerJSON is a Marker as firma_marker_create reads it.
type markerJSON struct {
	Marker
	StartedAt string `json:"started_at,omitempty"`
}

// CreateMarker writes the marker <runtimeDir>/run/<m.SandboxID> ("" means
// the default runtime directory) atomically and returns its path. The core
// records the identity of the process m.PID (its start time, the boot id,
// its pid and time namespaces), so [Stop] can verify it later; a PID with
// no process is ErrIO (ESRCH). An invalid sandbox id, PID or Listen is
// ErrInvalidArgument naming the field, an existing marker ErrIO ("marker
// already exists"), a directory that fails the trust checks
// ErrUntrustedDirectory; on any failure nothing is written. Missing
// directories are created (mode 0700).
func CreateMarker(runtimeDir string, m Marker) (string, error) {
	js := markerJSON{Marker: m}
	if !m.StartedAt.IsZero() {
		js.StartedAt = m.StartedAt.UTC().Format(time.RFC3339Nano)
	}
	text, err := optionsJSON(js)
	if err != nil {
		return "", err
	}
	dir, cMarker, err := dirAnd(runtimeDir, "marker", text)
	if err != nil {
		return "", err
	}
	defer freeBoth(dir, cMarker)

	var out *C.char
	status := C.firma_marker_create(dir, cMarker, &out)
	return decodeResult(status, out, "")
}

// RemoveMarker removes the marker of sandboxID under runtimeDir ("" means
// the default) whatever its state, for its writer on the way out; false
// when there was none. A symlink or file in run/ is never removed
// (ErrMarkerParse).
func RemoveMarker(runtimeDir, sandboxID string) (bool, error) {
	dir, id, err := dirAnd(runtimeDir, "sandbox id", sandboxID)
	if err != nil {
		return false, err
	}
	defer freeBoth(dir, id)

	var out *C.char
	status := C.firma_marker_remove(dir, id, &out)
	return decodeResult(status, out, false)
}
