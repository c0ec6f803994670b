//! The sidecars of this host as Prometheus metrics (docs/design.md,
//! "Metrics"): the one model and encoder ([`MetricsModel`], [`Format`]:
//! the text format 0.0.4 and OpenMetrics 1.0.0), a one-shot
//! [`render_metrics`] (one scan by the core), the watcher-fed [`Exporter`]
//! a supervisor can serve from its own HTTP server, and the atomic
//! [`write_textfile`] for node_exporter's textfile collector. `firma
//! sidecar metrics` is `render_metrics` + `write_textfile`; `firma sidecar
//! exporter` is an `Exporter` behind an HTTP server.
//!
//! Everything shown comes from the core (`scan`/`inspect`, or a
//! `Watcher`), so the states are the ones every other surface reports.
//! With collection on (the default) stale markers are removed and counted
//! in `firma_markers_collected`; they have no series. Without, nothing is
//! removed and the markers of stopped sidecars are shown with state
//! `stopped` until something collects them.

use std::ffi::{CStr, CString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use super::exposition::{
    ErrorHook, Exporter, ExporterOptions, Format, MetricsModel, MetricsOptions, ModelKind,
    broken_by_reason, render_metrics,
};
use crate::sidecar_markers::sys::{self, atomic};
use crate::sidecar_markers::{State, text};

/// Every state, in the order the state set is rendered.
pub const STATES: [State; 4] = [
    State::Running,
    State::Unhealthy,
    State::Stopped,
    State::Unknown,
];

/// A label value as the text format requires: backslash, double quote and
/// line feed escaped (`\\`, `\"`, `\n`), and a NUL (which a marker string
/// may hold, but a C string cannot) shown as U+FFFD; everything else as is.
pub fn escape_label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text as the format requires: backslash and line feed escaped.
pub fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Appends one sample line, `name{k="v",…} value`, its label values
/// escaped: the one writer of a sample, shared by the textfile and the
/// exporter (the same line in the text format and OpenMetrics).
pub fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape_label_value(v));
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Why a metrics file could not be written. Each message is one line
/// naming the path.
#[derive(Debug, thiserror::Error)]
pub enum TextfileError {
    #[error("cannot write metrics: the path is empty")]
    EmptyPath,
    #[error("cannot write metrics to {path}: it names no file")]
    NoFileName { path: String },
    #[error("cannot write metrics to {path}: directory {dir} does not exist")]
    MissingDirectory { path: String, dir: String },
    #[error("cannot write metrics to {path}: {dir} is not a directory")]
    NotADirectory { path: String, dir: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// How the textfile is replaced: `sys::atomic`, the one atomic writer, with
/// temporary names `.firma-metrics-<128 random bits in hex>.tmp`. Nobody
/// can plant a file, a symlink or a directory under such a name in
/// advance, so no plant can make the write fail or follow a link; temp
/// names never end in `.prom`, so the textfile collector never reads a
/// file being written (nor one left by a writer that was killed).
fn textfile(name: &CStr, unnamed: bool) -> atomic::Replace<'_> {
    atomic::Replace {
        name,
        perm: atomic::Perm::Exact(0o644),
        temp_prefix: ".firma-metrics-",
        temp_suffix: ".tmp",
        unnamed,
    }
}

fn cstring(bytes: &[u8], path: &Path) -> Result<CString, TextfileError> {
    CString::new(bytes).map_err(|_| TextfileError::Io {
        action: "write metrics to",
        path: text::path_string(path),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })
}

/// Writes `contents` to `path` atomically: a new file in the same
/// directory, written, given mode 0644 whatever the umask and fsynced, then
/// renamed over `path`, then the directory fsynced. A reader sees the old
/// file or the new one, never a part. The new file is an unnamed
/// `O_TMPFILE`, linked under a random name only once complete (or, where
/// the filesystem has no `O_TMPFILE`, created under a random name with
/// `O_EXCL|O_NOFOLLOW`): no name planted in the directory beforehand can
/// block the write or redirect it. On failure the temporary file is removed
/// and `path` is untouched.
pub fn write_textfile(path: &Path, contents: &[u8]) -> Result<(), TextfileError> {
    write_textfile_with(path, contents, true)
}

/// [`write_textfile`], with the unnamed `O_TMPFILE` only when `unnamed`
/// (`false` takes the fallback a filesystem without it gets).
fn write_textfile_with(path: &Path, contents: &[u8], unnamed: bool) -> Result<(), TextfileError> {
    let shown = text::path_string(path);
    if path.as_os_str().is_empty() {
        return Err(TextfileError::EmptyPath);
    }
    // Split the raw bytes (Path::file_name would read `x/.` as `x`).
    let bytes = path.as_os_str().as_bytes();
    let (dir_bytes, name) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &bytes[1..]),
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&b"."[..], bytes),
    };
    if matches!(name, b"" | b"." | b"..") {
        return Err(TextfileError::NoFileName { path: shown });
    }
    let dir = PathBuf::from(std::ffi::OsStr::from_bytes(dir_bytes));
    let dir_shown = text::path_string(&dir);
    let c_name = cstring(name, path)?;

    let dir_fd = sys::open(&dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC).map_err(
        |e| match e.raw_os_error() {
            Some(libc::ENOENT) => TextfileError::MissingDirectory {
                path: shown.clone(),
                dir: dir_shown.clone(),
            },
            Some(libc::ENOTDIR) => TextfileError::NotADirectory {
                path: shown.clone(),
                dir: dir_shown.clone(),
            },
            _ => TextfileError::Io {
                action: "open directory",
                path: dir_shown.clone(),
                source: e,
            },
        },
    )?;
    textfile(&c_name, unnamed)
        .write(dir_fd.as_fd(), contents)
        .map_err(|e| {
            let temp = match &e.temp {
                Some(n) => text::path_string(&dir.join(std::ffi::OsStr::from_bytes(n.as_bytes()))),
                None => format!("an unnamed temporary file in {dir_shown}"),
            };
            let (action, path) = match e.step {
                atomic::Step::Create => ("create a temporary file in", dir_shown.clone()),
                atomic::Step::Chmod => ("chmod", temp),
                atomic::Step::Write => ("write", temp),
                atomic::Step::Fsync => ("fsync", temp),
                atomic::Step::Link => ("name a temporary file in", dir_shown.clone()),
                atomic::Step::Rename => ("rename a temporary file over", shown.clone()),
                atomic::Step::FsyncDir => ("fsync directory", dir_shown.clone()),
            };
            TextfileError::Io {
                action,
                path,
                source: e.source,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar_markers::sys::atomic::tests::temps;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temp_names_are_128_random_bits_and_never_prom() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let name = textfile(c"x.prom", true)
                .temp_name()
                .unwrap()
                .into_string()
                .unwrap();
            let hex = name
                .strip_prefix(".firma-metrics-")
                .and_then(|r| r.strip_suffix(".tmp"))
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(hex.len(), 32, "{name}");
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(!name.ends_with(".prom"));
            assert!(seen.insert(name), "a name came twice");
        }
    }

    /// The fallback for filesystems without `O_TMPFILE` (a random name,
    /// `O_CREAT|O_EXCL|O_NOFOLLOW`) against the unnamed temporary: the same
    /// file, mode and atomic rename, a symlink at the path replaced not
    /// followed, and no temporary file left, also when the rename fails.
    #[test]
    fn the_named_fallback_writes_the_same_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me\n").unwrap();
        for unnamed in [true, false] {
            let path = dir.path().join(format!("unnamed-{unnamed}.prom"));
            std::os::unix::fs::symlink(&victim, &path).unwrap();
            write_textfile_with(&path, b"x 1\n", unnamed).unwrap();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let got = (m.is_file(), m.permissions().mode() & 0o7777);
            assert_eq!(got, (true, 0o644), "unnamed: {unnamed}");
            assert_eq!(std::fs::read(&path).unwrap(), b"x 1\n");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
        assert!(temps(dir.path()).is_empty());

        let blocked = dir.path().join("blocked.prom");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), "").unwrap();
        for unnamed in [false, true] {
            let err = write_textfile_with(&blocked, b"x 1\n", unnamed).unwrap_err();
            assert!(err.to_string().starts_with("cannot rename"), "{err}");
            assert!(temps(dir.path()).is_empty(), "{:?}", temps(dir.path()));
        }
    }
}
