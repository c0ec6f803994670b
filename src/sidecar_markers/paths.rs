//! Paths: the caller's, made absolute and checked; the default runtime
//! directory; names of `run/`'s entries as messages show them.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::{Result, StackError};
use super::{sys, text};

/// The runtime directory root uses when the environment names none
/// (never under `/tmp`, where anyone can create it first).
pub(crate) const ROOT_RUNTIME_DIR: &str = "/run/firma";

fn empty_path(what: &str) -> StackError {
    StackError::InvalidArgument {
        what: what.into(),
        reason: "is empty (pass the default runtime dir explicitly, or use the binding's default)"
            .into(),
    }
}

/// A caller's path made absolute (lexically, `std::path::absolute`: no
/// symlink is resolved), so every path reported — `listen` of a marker's
/// default socket included — is right from any directory. Empty paths are
/// refused rather than taken as the current directory, and so are paths
/// that are not UTF-8: every surface reports paths as strings, and a lossy
/// one would name a path that does not exist.
pub(crate) fn caller_path(path: &Path, what: &str) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(empty_path(what));
    }
    if path.to_str().is_none() {
        return Err(StackError::InvalidArgument {
            what: what.into(),
            reason: format!(
                "{} is not valid UTF-8 (paths are reported as strings; use a UTF-8 path)",
                text::path_string(path)
            ),
        });
    }
    std::path::absolute(path).map_err(|e| StackError::io("make absolute", path, e))
}

/// The runtime directory used when the caller gives none:
/// `$FIRMA_STATE_DIR` if set and non-empty, else `$XDG_RUNTIME_DIR/firma`,
/// else `/run/firma` for root (effective uid 0) and `/tmp/firma-<euid>` for
/// everyone else. Root never falls back to `/tmp`, where any user can
/// create the directory first; another user's `/tmp/firma-<euid>` must be
/// their own to be trusted (`check_runtime_dir`).
pub fn default_runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FIRMA_STATE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("firma");
    }
    match sys::geteuid() {
        0 => PathBuf::from(ROOT_RUNTIME_DIR),
        euid => last_resort(euid),
    }
}

/// `/tmp/firma-<uid>`: the last-resort default runtime directory of `uid`
/// (root has [`ROOT_RUNTIME_DIR`] instead).
pub(crate) fn last_resort(uid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/firma-{uid}"))
}

/// `<path>` as shown in messages for an entry `name` under `dir`.
pub(crate) fn child_path(dir: &Path, name: &CStr) -> PathBuf {
    dir.join(OsStr::from_bytes(name.to_bytes()))
}

/// An entry name for people and JSON: lossless (`\xNN` for non-UTF-8).
pub(crate) fn entry_name(name: &CStr) -> String {
    text::path_string(Path::new(OsStr::from_bytes(name.to_bytes())))
}
