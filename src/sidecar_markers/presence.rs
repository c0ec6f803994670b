//! Whether a runtime directory is there to be read (docs/design.md,
//! "Operations", a missing runtime directory): the reading calls answer a
//! directory that does not exist as an empty one, so a mistyped path looks
//! like an idle host. [`runtime_dir_state`] is how every surface tells the
//! two apart and warns (the CLI on stderr, `firma_runtime_dir_up` in the
//! metrics).

use std::io::ErrorKind;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::macros::display_as_str;

/// What [`runtime_dir_state`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeDirState {
    /// A directory that can be listed (its `run/` too, when it exists).
    Present,
    /// Nothing at that path.
    Missing,
    /// Something that is not a directory, or a directory (or `run/`) that
    /// cannot be listed.
    Unreadable,
}

impl RuntimeDirState {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeDirState::Present => "present",
            RuntimeDirState::Missing => "missing",
            RuntimeDirState::Unreadable => "unreadable",
        }
    }

    /// True only for [`RuntimeDirState::Present`].
    pub fn is_up(self) -> bool {
        self == RuntimeDirState::Present
    }
}

display_as_str!(RuntimeDirState);

/// Looks at `runtime_dir` (following symlinks, as a caller's path is) and
/// its `run/`; never fails.
pub fn runtime_dir_state(runtime_dir: impl AsRef<Path>) -> RuntimeDirState {
    let dir = runtime_dir.as_ref();
    match std::fs::read_dir(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return RuntimeDirState::Missing,
        Err(_) => return RuntimeDirState::Unreadable,
    }
    match std::fs::read_dir(dir.join("run")) {
        Ok(_) => RuntimeDirState::Present,
        Err(e) if e.kind() == ErrorKind::NotFound => RuntimeDirState::Present,
        Err(_) => RuntimeDirState::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_and_directory() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(runtime_dir_state(t.path()), RuntimeDirState::Present);
        assert_eq!(
            runtime_dir_state(t.path().join("typo")),
            RuntimeDirState::Missing
        );
        std::fs::write(t.path().join("f"), "").unwrap();
        assert_eq!(
            runtime_dir_state(t.path().join("f")),
            RuntimeDirState::Unreadable
        );
    }
}
