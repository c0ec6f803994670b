package firmastack

// Verdict is what a marker is as far as collection goes, as [Inspect]
// reports it.
type Verdict string

const (
	// VerdictLive: readable and not provably stopped; listed, never removed.
	VerdictLive Verdict = "live"
	// VerdictStale: readable and provably stopped; List and GCStale remove it.
	VerdictStale Verdict = "stale"
	// VerdictBroken: cannot be read or understood; never listed, never
	// removed.
	VerdictBroken Verdict = "broken"
)

// Reason is the core's stable code for why a marker has its verdict and
// state. An unknown code from a newer library decodes as is.
type Reason string

// Reasons of a live marker (the state in parentheses).
const (
	// ReasonServing: the endpoint accepted a connection in time (running).
	ReasonServing Reason = "serving"
	// ReasonEndpointMissing: no socket (or no directory) at the endpoint
	// path (unhealthy).
	ReasonEndpointMissing Reason = "endpoint_missing"
	// ReasonConnectionRefused: nothing listens there, a socket file without
	// a listener or a TCP reset (unhealthy).
	ReasonConnectionRefused Reason = "connection_refused"
	// ReasonBacklogFull: a Unix socket whose accept backlog is full
	// (unhealthy).
	ReasonBacklogFull Reason = "backlog_full"
	// ReasonTimeout: the connect did not finish within the probe timeout
	// (unhealthy).
	ReasonTimeout Reason = "timeout"
	// ReasonPermissionDenied: the endpoint refused us permission (unknown).
	ReasonPermissionDenied Reason = "permission_denied"
	// ReasonNotASocket: the endpoint path is not a socket (unhealthy).
	ReasonNotASocket Reason = "not_a_socket"
	// ReasonUnreachable: the network says the TCP address is unreachable
	// (unhealthy).
	ReasonUnreachable Reason = "unreachable"
	// ReasonConnectError: connect failed in a way that says nothing about
	// the sidecar (unhealthy).
	ReasonConnectError Reason = "connect_error"
	// ReasonProbeUnavailable: the probe could not be made, e.g. out of file
	// descriptors (unknown).
	ReasonProbeUnavailable Reason = "probe_unavailable"
	// ReasonUnverifiable: the process could not be identified from this
	// reader's point of view and the endpoint does not serve (unknown).
	ReasonUnverifiable Reason = "unverifiable"
)

// Reasons of a stale marker (state stopped).
const (
	// ReasonProcessGone: no such process.
	ReasonProcessGone Reason = "process_gone"
	// ReasonZombie: the process is a zombie.
	ReasonZombie Reason = "zombie"
	// ReasonPIDReused: the pid belongs to another process now.
	ReasonPIDReused Reason = "pid_reused"
	// ReasonOtherBoot: the marker was written during another boot.
	ReasonOtherBoot Reason = "other_boot"
)

// Reasons of a broken marker (no state, no entry; Error says why).
const (
	// ReasonParseError: metadata.toml is missing, not a regular file, too
	// large, not TOML, or a value is missing or out of range.
	ReasonParseError Reason = "parse_error"
	// ReasonIDMismatch: metadata.toml names another sandbox than its
	// directory.
	ReasonIDMismatch Reason = "id_mismatch"
	// ReasonIOError: reading the marker failed with an I/O error.
	ReasonIOError Reason = "io_error"
	// ReasonSymlink: the entry (or its metadata.toml) is a symlink, never
	// followed.
	ReasonSymlink Reason = "symlink"
	// ReasonNotADirectory: the entry is not a directory.
	ReasonNotADirectory Reason = "not_a_directory"
	// ReasonInvalidName: the entry's name is not a valid sandbox id.
	ReasonInvalidName Reason = "invalid_name"
	// ReasonMountPoint: the marker directory (or its metadata.toml) is a
	// mount point, never read across, never removed.
	ReasonMountPoint Reason = "mount_point"
	// ReasonLeftover: a reserved name (.tmp-…, .gc-…, .kept-…) that scans
	// leave in place: not provably the library's, its maker not provably
	// gone, or set aside for a person.
	ReasonLeftover Reason = "leftover"
)

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
