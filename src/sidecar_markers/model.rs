//! The serialized model: what a marker holds (`metadata.toml`), what every
//! surface reports about it (entries, states, verdicts, reasons, `inspect`
//! reports, a scan's problems), in the JSON every binding shares
//! (docs/design.md, "On-disk format", "States", "Verdicts", "Reason codes",
//! "Entries").
//!
//! Plain data only: nothing here reads a file or decides a verdict (that is
//! `read.rs` and `assess.rs`).

use serde::{Deserialize, Serialize};

use super::error::ErrorInfo;
use super::macros::display_as_str;

/// Largest pid a marker may name (`pid_t` max).
pub const MAX_PID: u32 = i32::MAX as u32;

/// The contents of `metadata.toml` (docs/design.md, "On-disk format"). Unknown keys are ignored so
/// newer writers stay readable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataFile {
    pub sandbox_id: String,
    pub agent_id: String,
    pub session_id: String,
    pub authority_url: String,
    pub policy_bundle_version: String,
    /// Sidecar pid, `1..=2^31-1`; anything else is rejected when read.
    pub pid: u32,
    /// RFC 3339 UTC start time, reported as written.
    pub started_at: String,
    /// Endpoint to probe: an absolute Unix socket path, or `host:port` with
    /// an IP literal or `localhost` as host. Absent or empty means
    /// `<marker_dir>/sidecar.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Kernel boot id (`/proc/sys/kernel/random/boot_id`) when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Field 22 of `/proc/<pid>/stat` (start time in clock ticks) when
    /// written, as the writer saw it (in the writer's time namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_ticks: Option<u64>,
    /// Inode number of the pid namespace `pid` belongs to (the writer's,
    /// `/proc/self/ns/pid`). A reader in another pid namespace cannot judge
    /// the pid and never calls the sidecar stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns_inode: Option<u64>,
    /// The boottime offset of the writer's time namespace in nanoseconds
    /// (`/proc/self/timens_offsets`; 0 in the initial one), so readers in
    /// other time namespaces can compare `pid_start_ticks`. Absent means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boottime_offset_ns: Option<i64>,
}

#[cfg(test)]
impl MetadataFile {
    /// The seven seed fields with fixed values, for unit tests: no
    /// identity fields and the default endpoint.
    pub(crate) fn seed_for_test(sandbox_id: &str, pid: u32) -> Self {
        MetadataFile {
            sandbox_id: sandbox_id.into(),
            agent_id: "agent".into(),
            session_id: "session".into(),
            authority_url: "https://authority.example".into(),
            policy_bundle_version: "v1".into(),
            pid,
            started_at: "2024-01-01T00:00:00Z".into(),
            listen: None,
            boot_id: None,
            pid_start_ticks: None,
            pid_ns_inode: None,
            boottime_offset_ns: None,
        }
    }

    /// [`seed_for_test`](Self::seed_for_test) with the live process
    /// `pid`'s identity recorded, as its writer would have.
    pub(crate) fn identified_for_test(sandbox_id: &str, pid: u32) -> Self {
        let rec = crate::sidecar_markers::process::identity(pid)
            .expect("read the process's identity")
            .expect("the process is alive");
        let (pid_ns_inode, _) = crate::sidecar_markers::process::own_namespaces();
        MetadataFile {
            boot_id: rec.boot_id,
            pid_start_ticks: Some(rec.start_ticks),
            pid_ns_inode,
            ..Self::seed_for_test(sandbox_id, pid)
        }
    }
}

/// Liveness and health of a sidecar, serialized lowercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The process exists and its endpoint accepted a connection in time.
    Running,
    /// The process exists but its endpoint is missing, refuses, is saturated
    /// or timed out.
    Unhealthy,
    /// No such process, a zombie, or the pid was reused by another process.
    Stopped,
    /// The process exists but the probe could not be performed (for example
    /// permission denied on the socket).
    Unknown,
}

impl State {
    /// The lowercase name used in JSON and by every binding.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Unhealthy => "unhealthy",
            State::Stopped => "stopped",
            State::Unknown => "unknown",
        }
    }
}

display_as_str!(State);

/// One sidecar as reported by `list`, `get` and `probe_entry`. Field order
/// is the JSON order of docs/design.md, "Entries".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SidecarEntry {
    pub sandbox_id: String,
    pub agent_id: String,
    pub session_id: String,
    pub authority_url: String,
    pub policy_bundle_version: String,
    pub pid: u32,
    pub started_at: String,
    pub state: State,
    /// The endpoint probed, as a string (a socket path or `host:port`).
    pub listen: String,
    /// Seconds since `sidecar.pid` was modified; `None` when the file is
    /// absent or its mtime lies in the future.
    pub uptime_secs: Option<u64>,
}

/// What a marker is, as far as collection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Readable and not provably stopped: listed, never removed.
    Live,
    /// Readable and provably stopped: `list` and `gc_stale` remove it.
    Stale,
    /// Cannot be read or understood: never listed, never removed.
    Broken,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Live => "live",
            Verdict::Stale => "stale",
            Verdict::Broken => "broken",
        }
    }
}

/// Why a marker has its verdict and state. The snake_case names are stable
/// and documented in one table (docs/design.md, "Reason codes"). A
/// readable marker's reason is decided by the code that decides its state,
/// so `list` and `inspect` cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // live
    /// The endpoint accepted a connection in time (`running`).
    Serving,
    /// No socket (or no directory) at the endpoint path (`unhealthy`).
    EndpointMissing,
    /// Nothing listens there: a socket file without a listener, or a TCP
    /// reset (`unhealthy`).
    ConnectionRefused,
    /// A Unix socket whose accept backlog is full (`unhealthy`).
    BacklogFull,
    /// The connect did not finish within the probe timeout, or a path on
    /// the way did not answer in time (`unhealthy`).
    Timeout,
    /// The endpoint refused us permission (`unknown`).
    PermissionDenied,
    /// The endpoint path is not a socket (`unhealthy`).
    NotASocket,
    /// The network says the TCP address is unreachable (`unhealthy`).
    Unreachable,
    /// `connect` failed in a way that says nothing about the sidecar, e.g.
    /// an IPv6 link-local address without a scope (`unhealthy`).
    ConnectError,
    /// The probe could not be made: out of descriptors, or too many probes
    /// stuck on paths that do not answer (`unknown`).
    ProbeUnavailable,
    /// The process could not be identified from this reader's point of
    /// view (another pid namespace, an unreadable boot id) and the endpoint
    /// does not serve (`unknown`).
    Unverifiable,
    // stale
    /// No such process.
    ProcessGone,
    /// The process is a zombie (all its threads exited).
    Zombie,
    /// The pid belongs to another process now (start time differs).
    PidReused,
    /// The marker was written during another boot.
    OtherBoot,
    // broken
    /// `metadata.toml` is missing, not a regular file, too large, not
    /// TOML, or a value is missing or out of range.
    ParseError,
    /// `metadata.toml` names another sandbox than its directory.
    IdMismatch,
    /// Reading the marker failed with an I/O error.
    IoError,
    /// The entry (or its `metadata.toml`) is a symlink: never followed.
    Symlink,
    /// The entry is not a directory.
    NotADirectory,
    /// The entry's name is not a valid sandbox id.
    InvalidName,
    /// The marker directory is (or holds `metadata.toml` as) a mount point:
    /// never read across, never removed.
    MountPoint,
    /// A reserved name (`.tmp-…` of a writer, `.gc-…` of a collector,
    /// `.kept-…`) that scans leave in place: not provably the library's, its
    /// maker not provably gone, or set aside for a person.
    Leftover,
}

impl Reason {
    /// Every reason, in the order of docs/design.md's table: live, stale,
    /// broken.
    pub const ALL: [Reason; 23] = [
        Reason::Serving,
        Reason::EndpointMissing,
        Reason::ConnectionRefused,
        Reason::BacklogFull,
        Reason::Timeout,
        Reason::PermissionDenied,
        Reason::NotASocket,
        Reason::Unreachable,
        Reason::ConnectError,
        Reason::ProbeUnavailable,
        Reason::Unverifiable,
        Reason::ProcessGone,
        Reason::Zombie,
        Reason::PidReused,
        Reason::OtherBoot,
        Reason::ParseError,
        Reason::IdMismatch,
        Reason::IoError,
        Reason::Symlink,
        Reason::NotADirectory,
        Reason::InvalidName,
        Reason::MountPoint,
        Reason::Leftover,
    ];

    /// The verdict an entry with this reason gets from `inspect`.
    pub fn verdict(self) -> Verdict {
        match self {
            Reason::Serving
            | Reason::EndpointMissing
            | Reason::ConnectionRefused
            | Reason::BacklogFull
            | Reason::Timeout
            | Reason::PermissionDenied
            | Reason::NotASocket
            | Reason::Unreachable
            | Reason::ConnectError
            | Reason::ProbeUnavailable
            | Reason::Unverifiable => Verdict::Live,
            Reason::ProcessGone | Reason::Zombie | Reason::PidReused | Reason::OtherBoot => {
                Verdict::Stale
            }
            Reason::ParseError
            | Reason::IdMismatch
            | Reason::IoError
            | Reason::Symlink
            | Reason::NotADirectory
            | Reason::InvalidName
            | Reason::MountPoint
            | Reason::Leftover => Verdict::Broken,
        }
    }

    /// The snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Serving => "serving",
            Reason::EndpointMissing => "endpoint_missing",
            Reason::ConnectionRefused => "connection_refused",
            Reason::BacklogFull => "backlog_full",
            Reason::Timeout => "timeout",
            Reason::PermissionDenied => "permission_denied",
            Reason::NotASocket => "not_a_socket",
            Reason::Unreachable => "unreachable",
            Reason::ConnectError => "connect_error",
            Reason::ProbeUnavailable => "probe_unavailable",
            Reason::Unverifiable => "unverifiable",
            Reason::ProcessGone => "process_gone",
            Reason::Zombie => "zombie",
            Reason::PidReused => "pid_reused",
            Reason::OtherBoot => "other_boot",
            Reason::ParseError => "parse_error",
            Reason::IdMismatch => "id_mismatch",
            Reason::IoError => "io_error",
            Reason::Symlink => "symlink",
            Reason::NotADirectory => "not_a_directory",
            Reason::InvalidName => "invalid_name",
            Reason::MountPoint => "mount_point",
            Reason::Leftover => "leftover",
        }
    }
}

display_as_str!(Verdict, Reason);

/// One entry of `run/` as `inspect` reports it. Serializes as
/// `{"name", "verdict", "state", "reason", "detail", "entry", "error"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MarkerReport {
    /// The entry's name in `run/` (bytes that are not UTF-8 as `\xNN`).
    pub name: String,
    pub verdict: Verdict,
    /// The entry's state; `None` for a broken marker.
    pub state: Option<State>,
    pub reason: Reason,
    /// One line for a person; control characters escaped.
    pub detail: String,
    /// The sidecar entry as `list`/`get` report it; `None` when broken.
    pub entry: Option<SidecarEntry>,
    /// Why it is broken; `None` unless broken.
    pub error: Option<ErrorInfo>,
}

/// A marker-level problem met by a scan that did not stop it: a stale
/// marker that could not be removed, for instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The entry's name in `run/`.
    pub name: String,
    pub error: ErrorInfo,
}
