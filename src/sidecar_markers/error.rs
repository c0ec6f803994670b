//! The one error type every surface maps from.
//!
//! Each variant has a stable machine-readable [`StackError::code`]; the C ABI,
//! Python and Go bindings expose exactly these codes, so a supervisor can
//! branch on them without parsing messages.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = StackError> = std::result::Result<T, E>;

/// Everything that can go wrong reading, probing, collecting or writing
/// markers. Every message names the path or id it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// A caller-supplied sandbox id breaks the grammar of DESIGN §4.6.
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
    #[error(
        "marker {} names sandbox {metadata:?} but its directory is {directory:?}",
        path.display()
    )]
    IdentityMismatch {
        path: PathBuf,
        directory: String,
        metadata: String,
    },
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

    /// The stable code of this error, shared by every surface:
    /// `invalid_argument`, `io`, `marker_parse` or `identity_mismatch`
    /// (the C ABI adds `internal` for a caught panic).
    pub fn code(&self) -> &'static str {
        match self {
            StackError::InvalidSandboxId { .. } | StackError::InvalidArgument { .. } => {
                "invalid_argument"
            }
            StackError::Io { .. } => "io",
            StackError::MarkerParse { .. } => "marker_parse",
            StackError::IdentityMismatch { .. } => "identity_mismatch",
        }
    }

    /// The path this error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StackError::Io { path, .. }
            | StackError::MarkerParse { path, .. }
            | StackError::IdentityMismatch { path, .. } => Some(path),
            StackError::InvalidSandboxId { .. } | StackError::InvalidArgument { .. } => None,
        }
    }

    /// The OS error number of an I/O error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            StackError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when this is an I/O error of kind "not found".
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, StackError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}
