package firmastack

import "time"

// SidecarEntry is one sidecar as the core reports it. The fields, their
// order and their json tags are those of the C ABI's JSON, so json.Marshal
// of an entry (or a slice of entries) reproduces the core's JSON — exactly
// so when the strings hold none of <, >, &, U+2028, U+2029, which
// encoding/json escapes. An Encoder with SetEscapeHTML(false) keeps <, > and
// & verbatim; U+2028 and U+2029 are escaped (\u2028, \u2029) either way.
type SidecarEntry struct {
	SandboxID           string `json:"sandbox_id"`
	AgentID             string `json:"agent_id"`
	SessionID           string `json:"session_id"`
	AuthorityURL        string `json:"authority_url"`
	PolicyBundleVersion string `json:"policy_bundle_version"`
	// PID is the sidecar's process id (1..2^31-1).
	PID uint32 `json:"pid"`
	// StartedAt is the RFC 3339 start time exactly as the marker wrote it;
	// see [SidecarEntry.StartedTime].
	StartedAt string `json:"started_at"`
	State     State  `json:"state"`
	// Listen is the endpoint probed: a Unix socket path or host:port.
	Listen string `json:"listen"`
	// UptimeSecs is the number of seconds since the marker's sidecar.pid
	// was modified; nil when that file is absent or its mtime is in the
	// future (JSON null).
	UptimeSecs *uint64 `json:"uptime_secs"`
}

// StartedTime parses StartedAt as an RFC 3339 time.
func (e *SidecarEntry) StartedTime() (time.Time, error) {
	return time.Parse(time.RFC3339Nano, e.StartedAt)
}

// MarkerReport is one entry of run/ as [Inspect] reports it. The fields,
// their order and their json tags are those of the C ABI's JSON, so
// json.Marshal of a report reproduces the core's JSON (with the same
// caveat about <, >, &, U+2028 and U+2029 as [SidecarEntry]).
type MarkerReport struct {
	// Name is the entry's name in run/ (bytes that are not UTF-8 as \xNN).
	Name    string  `json:"name"`
	Verdict Verdict `json:"verdict"`
	// State is the entry's state; nil for a broken marker.
	State  *State `json:"state"`
	Reason Reason `json:"reason"`
	// Detail is one line for a person; control characters are escaped.
	Detail string `json:"detail"`
	// Entry is the sidecar as List and Get report it; nil when broken.
	Entry *SidecarEntry `json:"entry"`
	// Error says why the marker is broken (ErrMarkerParse, ErrIO, ...);
	// nil unless broken.
	Error *Error `json:"error"`
}
