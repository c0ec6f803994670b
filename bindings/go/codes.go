package firmastack

// The contract's vocabulary: every enumerated value the core's JSON
// carries (docs/design.md: "States", "Verdicts", "Reason codes", "Errors",
// "Events", "Wait"), each a typed string constant, and the sentinel error
// of each error code. In one file so that it reads against the contract
// in one go; the types that carry these values are beside the calls that
// return them.

// State is the liveness and health of a sidecar, as the core reports it.
type State string

const (
	// StateRunning: the process exists and its endpoint accepted a
	// connection within the probe timeout.
	StateRunning State = "running"
	// StateUnhealthy: the process exists, but its endpoint is missing,
	// refuses, is saturated or timed out.
	StateUnhealthy State = "unhealthy"
	// StateStopped: no such process, a zombie, or a reused pid.
	StateStopped State = "stopped"
	// StateUnknown: the process exists but the probe could not be performed
	// (for example permission denied on the socket).
	StateUnknown State = "unknown"
)

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

// EventKind says what an [Event] reports.
type EventKind string

// The kinds of [Event], as in the JSON "event" field of every surface.
const (
	// EventAppeared: a live sidecar found by the initial scan (or a
	// rescan), or a new one. Entry is set.
	EventAppeared EventKind = "appeared"
	// EventSynced: the events before it describe the whole directory; the
	// stream is complete from here on. Once after the initial scan and
	// after each EventResync.
	EventSynced EventKind = "synced"
	// EventChanged: a known sidecar changed state (or metadata). Entry and
	// Previous are set.
	EventChanged EventKind = "changed"
	// EventGone: a known sidecar left. Reason is [GoneCollected] (this
	// watcher removed its stale marker) or [GoneRemoved] (by other hands).
	EventGone EventKind = "gone"
	// EventResync: the watcher lost track (or runs degraded, as Reason
	// says) and rescans; the events that follow correct the state, then
	// EventSynced.
	EventResync EventKind = "resync"
	// EventError: a step of the watcher failed (say, run/ became
	// unreadable or was replaced by a symlink); Err says why. It is not
	// the end of the stream: the watcher keeps its state, tries again one
	// probe interval later, and the events that follow bring the caller
	// back to the true state. Go's form of a failed next on the other
	// surfaces (C's error status, Python's exception); not a JSON kind.
	EventError EventKind = "error"
)

// EventReason is the reason of an [EventGone] (one of the Gone
// constants) or of an [EventResync] (one line for a person, saying how the
// watcher lost track or which degraded mode it entered).
type EventReason string

// The reasons of an [EventGone].
const (
	// GoneCollected: this watcher removed the sidecar's stale marker.
	GoneCollected EventReason = "collected"
	// GoneRemoved: the marker was removed by other hands.
	GoneRemoved EventReason = "removed"
)

// WaitFor is what [Wait] waits for.
type WaitFor string

const (
	// WaitRunning: the sidecar's marker exists and its state is running.
	WaitRunning WaitFor = "running"
	// WaitGone: the sidecar has no marker, or its process has provably
	// stopped (its marker is left for GCStale).
	WaitGone WaitFor = "gone"
)

// DirState says whether a runtime directory is there to be read
// ([RuntimeDirState]).
type DirState string

const (
	// DirPresent: a directory that can be listed (its run/ too, when it
	// exists).
	DirPresent DirState = "present"
	// DirMissing: nothing at that path.
	DirMissing DirState = "missing"
	// DirUnreadable: not a directory, or it (or its run/) cannot be listed.
	DirUnreadable DirState = "unreadable"
)
