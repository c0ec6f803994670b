//! The candidates of dynamic shell completion (clap_complete's
//! environment-driven engine; the registration and the answering are in
//! [`crate::generate`]): sandbox ids come from the runtime directory at the
//! moment <Tab> is pressed, signal names from the core's table. The
//! runtime directory is the one a `--runtime-dir DIR` already typed on the
//! line names, else the default (`$FIRMA_STATE_DIR`, …), as for the command
//! itself.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use firma_stack::sidecar_markers as sm;

/// Candidates for an argument that names existing sidecars.
pub fn sandbox_ids() -> ArgValueCompleter {
    ArgValueCompleter::new(sandbox_id_candidates)
}

/// Candidates for `--signal`.
pub fn signals() -> ArgValueCompleter {
    ArgValueCompleter::new(signal_candidates)
}

fn sandbox_id_candidates(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let dir = typed_runtime_dir(std::env::args_os()).unwrap_or_else(sm::default_runtime_dir);
    // Names only: nothing is read, probed or removed while the user types.
    sm::marker_names(&dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|id| id.starts_with(current))
        .map(CompletionCandidate::new)
        .collect()
}

/// Signal names as `kill -l` writes them (`TERM`); with `SIG` when the
/// word being completed starts with it.
fn signal_candidates(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let prefixed = current.len() >= 3 && current[..3].eq_ignore_ascii_case("SIG");
    sm::signal_names()
        .map(|name| if prefixed { name } else { &name[3..] })
        .filter(|name| {
            name.len() >= current.len() && name[..current.len()].eq_ignore_ascii_case(current)
        })
        .map(CompletionCandidate::new)
        .collect()
}

/// The `--runtime-dir` given on the line being completed, if any.
fn typed_runtime_dir(words: impl Iterator<Item = OsString>) -> Option<PathBuf> {
    let mut words = words.skip_while(|w| w != "--").skip(1);
    let mut found = None;
    while let Some(word) = words.next() {
        if word == "--runtime-dir" {
            found = words.next().map(PathBuf::from);
        } else if let Some(value) = word.to_str().and_then(|w| w.strip_prefix("--runtime-dir=")) {
            found = Some(PathBuf::from(value));
        }
    }
    found.filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &[&str]) -> impl Iterator<Item = OsString> {
        line.iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_runtime_dir_is_the_one_typed_on_the_line() {
        let typed = |line: &[&str]| typed_runtime_dir(words(line));
        assert_eq!(
            typed(&[
                "firma",
                "--",
                "firma",
                "--runtime-dir",
                "/a",
                "sidecar",
                "get",
                ""
            ]),
            Some(PathBuf::from("/a"))
        );
        assert_eq!(
            typed(&[
                "firma",
                "--",
                "firma",
                "sidecar",
                "get",
                "--runtime-dir=/b",
                ""
            ]),
            Some(PathBuf::from("/b"))
        );
        assert_eq!(typed(&["firma", "--", "firma", "sidecar", "get", ""]), None);
        // Before the `--`: the completer's own arguments, not the line.
        assert_eq!(
            typed(&["firma", "--runtime-dir", "/c", "--", "firma"]),
            None
        );
    }

    #[test]
    fn signals_complete_with_or_without_sig() {
        let names = |word: &str| -> Vec<String> {
            signal_candidates(OsStr::new(word))
                .iter()
                .map(|c| c.get_value().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("TE"), ["TERM"]);
        assert_eq!(names("sigk"), ["SIGKILL"]);
        assert!(names("").contains(&"RTMIN".to_owned()));
        assert!(names("").iter().all(|n| sm::parse_signal(n).is_ok()));
    }
}
