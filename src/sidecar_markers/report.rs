//! What `inspect` says about each entry of `run/`: a verdict, the state, a
//! stable reason code and one line for a person.
//!
//! The reason of a marker is computed by the same code that decides its
//! state ([`super::assess`]), so `list` and `inspect` cannot disagree.

use serde::{Deserialize, Serialize};

use super::error::ErrorInfo;
use super::markers::{SidecarEntry, State, display_as_str};

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
/// and documented in one table (docs/design.md, "Reason codes").
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
