//! Whether a runtime directory is there to be read (docs/design.md,
//! "Operations", a missing runtime directory): the reading calls answer a
//! directory that does not exist as an empty one, so a mistyped path looks
//! like an idle host. [`runtime_dir_state`] is how every surface tells the
//! two apart and warns (the CLI on stderr, `firma_runtime_dir_up` in the
//! metrics).

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{Result, StackError};
use super::macros::display_as_str;
use super::options::is_valid_sandbox_id;
use super::paths::entry_name;
use super::{sys, trust};

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

/// The sandbox ids that have a marker directory in `runtime_dir`'s `run/`,
/// sorted: names only, for pickers and shell completion. Nothing inside an
/// entry is read and nothing is probed or removed, so the answer is cheap
/// and may name markers that `list` would call stale or broken; entries
/// that are not valid sandbox ids, symlinks and files are left out. A
/// missing runtime directory or `run/` gives an empty list, like `list`.
pub fn marker_names(runtime_dir: impl AsRef<Path>) -> Result<Vec<String>> {
    let dirs = trust::open_dirs(runtime_dir.as_ref())?;
    let Some(run) = dirs.run else {
        return Ok(Vec::new());
    };
    let entries =
        sys::read_dir(run.fd.as_fd()).map_err(|e| StackError::io("list", &run.path, e))?;
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| matches!(e.d_type, libc::DT_DIR | libc::DT_UNKNOWN))
        .filter(|e| is_valid_sandbox_id(e.name.to_bytes()))
        .map(|e| entry_name(&e.name))
        .collect();
    names.sort_unstable();
    Ok(names)
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
    #[test]
    fn marker_names_are_the_valid_marker_directories_sorted() {
        let rt = tempfile::tempdir().unwrap();
        let run = rt.path().join("run");
        for dir in [
            "web-2",
            "api",
            ".tmp-1-2",
            "not valid",
            ".gc-3-4",
            "$(touch x)",
        ] {
            std::fs::create_dir_all(run.join(dir)).unwrap();
        }
        std::fs::write(run.join("file"), b"").unwrap();
        std::os::unix::fs::symlink(run.join("api"), run.join("link")).unwrap();
        assert_eq!(marker_names(rt.path()).unwrap(), ["api", "web-2"]);
    }

    #[test]
    fn marker_names_of_a_missing_directory_are_none() {
        let rt = tempfile::tempdir().unwrap();
        assert!(marker_names(rt.path().join("absent")).unwrap().is_empty());
        assert!(marker_names(rt.path()).unwrap().is_empty());
    }
}
