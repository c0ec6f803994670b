//! The one error type every surface maps from.
//!
//! Each variant has a stable machine-readable [`StackError::code`]; the C ABI,
//! Python and Go bindings expose exactly these codes, so a supervisor can
//! branch on them without parsing messages.

use std::io;
use std::path::{Path, PathBuf};

/// The stable, machine-readable code of an error. Every surface derives its
/// own form from this enum by an exhaustive match (the C status number, the
/// Python exception class, the Go sentinel), so a new variant fails to
/// compile until each surface maps it. The strings never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A caller-supplied argument is unusable (an invalid sandbox id, an
    /// empty or non-UTF-8 path, an out-of-range value).
    InvalidArgument,
    /// A system call failed; `errno` says why.
    Io,
    /// A marker's `metadata.toml` cannot be understood.
    MarkerParse,
    /// A marker's `sandbox_id` differs from its directory name.
    IdentityMismatch,
    /// A bug: a panic was caught at a language boundary.
    Internal,
    /// `stop` refused: the process's identity cannot be proved (the marker
    /// records no `boot_id`/`pid_start_ticks`, it comes from another pid
    /// namespace, or `/proc` hides the process). Nothing was signalled.
    IdentityUnverifiable,
    /// `stop` refused: the marker's pid belongs to another process now (its
    /// start time differs). Nothing was signalled. Not to be confused with
    /// `identity_mismatch`, which is about a marker's directory name.
    PidReused,
    /// `stop` refused a pid it never signals: 1, the caller's own, or one
    /// above the kernel's `pid_max`. Nothing was signalled.
    Refused,
    /// `stop` cannot open or signal through a pidfd (a kernel before 5.3,
    /// or a sandbox forbidding the calls); it fails closed and never falls
    /// back to signalling by bare pid. Nothing was signalled.
    PidfdUnavailable,
    /// The runtime directory, or its `run/`, fails the trust checks
    /// (writable by others, a symlink owned by a stranger, owners that
    /// disagree) for an operation that removes, signals or writes. Nothing
    /// was changed. See docs/design.md, "Trust".
    UntrustedDirectory,
    /// `stop` refused: whoever the marker speaks for (the owner of the
    /// marker, bounded by the owner of the runtime directory) could not
    /// signal that process, the marker is nobody's claim (writable by
    /// others, owners that disagree), or the process is a kernel thread or
    /// an ancestor of the caller. Nothing was signalled.
    NotAuthorized,
    /// A watcher was used from a process other than the one that created
    /// it (a `fork()` child). Its descriptors are shared with the parent,
    /// so the call refused before touching any of them; the parent's
    /// stream is unaffected. Open a new watcher in the child.
    Forked,
}

impl ErrorCode {
    /// Every code, in the order of their C status numbers (1, 2, ...).
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::InvalidArgument,
        ErrorCode::Io,
        ErrorCode::MarkerParse,
        ErrorCode::IdentityMismatch,
        ErrorCode::Internal,
        ErrorCode::IdentityUnverifiable,
        ErrorCode::PidReused,
        ErrorCode::Refused,
        ErrorCode::PidfdUnavailable,
        ErrorCode::UntrustedDirectory,
        ErrorCode::NotAuthorized,
        ErrorCode::Forked,
    ];

    /// The snake_case name used in JSON and by every binding.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Io => "io",
            ErrorCode::MarkerParse => "marker_parse",
            ErrorCode::IdentityMismatch => "identity_mismatch",
            ErrorCode::Internal => "internal",
            ErrorCode::IdentityUnverifiable => "identity_unverifiable",
            ErrorCode::PidReused => "pid_reused",
            ErrorCode::Refused => "refused",
            ErrorCode::PidfdUnavailable => "pidfd_unavailable",
            ErrorCode::UntrustedDirectory => "untrusted_directory",
            ErrorCode::NotAuthorized => "not_authorized",
            ErrorCode::Forked => "forked",
        }
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

super::macros::display_as_str!(ErrorCode);

/// An error as every surface reports it: the C ABI's error object, the
/// `error` of an `inspect` report, the Python exception's attributes.
/// `message` is always one line; `path` is lossless where the path is
/// UTF-8 (non-UTF-8 bytes are written as `\xNN`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
    pub path: Option<String>,
    pub errno: Option<i32>,
}

/// Result alias used throughout the crate.
pub type Result<T, E = StackError> = std::result::Result<T, E>;

/// Everything that can go wrong reading, probing, collecting or writing
/// markers. Every message names the path or id it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// A caller-supplied sandbox id breaks the grammar of docs/design.md, "Invariants" (6).
    #[error("invalid sandbox id {id:?}: {reason}")]
    InvalidSandboxId { id: String, reason: String },

    /// A caller-supplied argument other than a sandbox id is unusable
    /// (for example a metadata pid out of range handed to the writer).
    #[error("invalid argument {what}: {reason}")]
    InvalidArgument { what: String, reason: String },

    /// A system call failed for a reason other than the marker being
    /// malformed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `metadata.toml` exists but cannot be understood: not a regular file,
    /// a symlink, too large, not UTF-8, invalid TOML, a missing key or a
    /// value out of range.
    #[error("cannot parse marker {}: {reason}", path.display())]
    MarkerParse { path: PathBuf, reason: String },

    /// `metadata.toml` parsed but names another sandbox than its directory.
    /// `path` is the marker directory (as the upstream module reports it).
    #[error(
        "marker {} names sandbox {metadata:?} but its directory is {directory:?}",
        path.display()
    )]
    IdentityMismatch {
        path: PathBuf,
        directory: String,
        metadata: String,
    },

    /// `stop` refused to signal a process whose identity it cannot prove.
    /// `path` is the marker directory.
    #[error(
        "refusing to signal pid {pid} of sandbox {sandbox_id:?}: its identity cannot be \
         verified ({reason}); the explicit opt-out of the identity check is unsafe"
    )]
    IdentityUnverifiable {
        path: PathBuf,
        sandbox_id: String,
        pid: u32,
        reason: String,
    },

    /// `stop` refused: the marker's pid now belongs to another process.
    #[error(
        "refusing to signal pid {pid} of sandbox {sandbox_id:?}: it belongs to another \
         process now (its start time differs from the marker's); that process was not touched"
    )]
    PidReused {
        path: PathBuf,
        sandbox_id: String,
        pid: u32,
    },

    /// `stop` refused a pid it never signals (1, the caller's own, one out
    /// of range).
    #[error("refusing to signal pid {pid} of sandbox {sandbox_id:?}: {reason}")]
    Refused {
        path: PathBuf,
        sandbox_id: String,
        pid: u32,
        reason: String,
    },

    /// `stop` could not use a pidfd, so it signalled nothing.
    #[error(
        "cannot stop sandbox {sandbox_id:?} (pid {pid}): {action} failed: {source}; \
         pidfds are required (Linux 5.3 or later) and no bare-pid fallback is used"
    )]
    PidfdUnavailable {
        path: PathBuf,
        sandbox_id: String,
        pid: u32,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// The runtime directory or `run/` fails the trust checks for an
    /// operation that removes, signals or writes. `path` is the directory.
    #[error("refusing to {action} under {}: {reason}", path.display())]
    UntrustedDirectory {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// `stop` refused: the authority the marker carries does not reach the
    /// process. `path` is the marker directory.
    #[error(
        "refusing to signal pid {pid} of sandbox {sandbox_id:?}: {reason}; nothing was \
         signalled (a marker speaks only for its owner: stop the process as a user who may \
         signal it, or have its owner write the marker)"
    )]
    NotAuthorized {
        path: PathBuf,
        sandbox_id: String,
        pid: u32,
        reason: String,
    },

    /// A watcher was used from a process other than the one that created
    /// it (after `fork()`): refused before any descriptor was touched.
    #[error(
        "this watcher was created by process {owner} and cannot be used from process {caller} \
         (a fork() child shares its descriptors with the parent, and using them would take the \
         parent's events); open a new watcher in this process"
    )]
    Forked { owner: u32, caller: u32 },
}

impl StackError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StackError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StackError::MarkerParse {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The stable code of this error, shared by every surface.
    pub fn code(&self) -> ErrorCode {
        match self {
            StackError::InvalidSandboxId { .. } | StackError::InvalidArgument { .. } => {
                ErrorCode::InvalidArgument
            }
            StackError::Io { .. } => ErrorCode::Io,
            StackError::MarkerParse { .. } => ErrorCode::MarkerParse,
            StackError::IdentityMismatch { .. } => ErrorCode::IdentityMismatch,
            StackError::IdentityUnverifiable { .. } => ErrorCode::IdentityUnverifiable,
            StackError::PidReused { .. } => ErrorCode::PidReused,
            StackError::Refused { .. } => ErrorCode::Refused,
            StackError::PidfdUnavailable { .. } => ErrorCode::PidfdUnavailable,
            StackError::UntrustedDirectory { .. } => ErrorCode::UntrustedDirectory,
            StackError::NotAuthorized { .. } => ErrorCode::NotAuthorized,
            StackError::Forked { .. } => ErrorCode::Forked,
        }
    }

    /// This error as the object every surface reports:
    /// `{"code", "message", "path", "errno"}`.
    pub fn info(&self) -> ErrorInfo {
        ErrorInfo {
            code: self.code(),
            message: super::text::one_line(&self.to_string()),
            path: self.path().map(super::text::path_string),
            errno: self.errno(),
        }
    }

    /// The path this error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StackError::Io { path, .. }
            | StackError::MarkerParse { path, .. }
            | StackError::IdentityMismatch { path, .. }
            | StackError::IdentityUnverifiable { path, .. }
            | StackError::PidReused { path, .. }
            | StackError::Refused { path, .. }
            | StackError::PidfdUnavailable { path, .. }
            | StackError::UntrustedDirectory { path, .. }
            | StackError::NotAuthorized { path, .. } => Some(path),
            StackError::InvalidSandboxId { .. }
            | StackError::InvalidArgument { .. }
            | StackError::Forked { .. } => None,
        }
    }

    /// The OS error number of an I/O error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            StackError::Io { source, .. } | StackError::PidfdUnavailable { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    /// True when this is an I/O error of kind "not found".
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, StackError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}
