//! The sidecars of this host in the Prometheus text exposition format
//! (version 0.0.4), for node_exporter's textfile collector or any scraper
//! that reads that format (docs/design.md, "Metrics"). `firma sidecar
//! metrics` prints or writes it; an exporter or a binding can do the same
//! with these three steps: [`observe`], [`render`], [`write_textfile`].
//!
//! Everything shown comes from one scan by the core ([`sm::scan`], or
//! [`sm::inspect_with`] without collection), so the states are the ones
//! every other surface reports. This module only formats them and writes
//! the file.
//!
//! With collection on (`firma`'s default) stale markers are removed by the
//! scan and counted in `firma_markers_collected`; they have no series.
//! Without (`--no-gc`) nothing is removed and the markers of stopped
//! sidecars are shown with state `stopped` (so an operator sees them until
//! something collects them); `firma_markers_collected` is then 0.

use std::ffi::{CStr, CString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sidecar_markers::sys::{self, atomic};
use crate::sidecar_markers::{
    self as sm, ProbeOptions, RuntimeDirState, ScanOptions, ScanReport, SidecarEntry, StackError,
    State, Verdict, text,
};

/// Every state, in the order the state set is rendered.
pub const STATES: [State; 4] = [
    State::Running,
    State::Unhealthy,
    State::Stopped,
    State::Unknown,
];

/// What one scan for the metrics saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The scan: live sidecars, collected and broken markers.
    pub report: ScanReport,
    /// Stale markers left in place (only when not collecting), shown with
    /// state `stopped`.
    pub stopped: Vec<SidecarEntry>,
    /// How long the scan took.
    pub duration: Duration,
    /// When the scan finished.
    pub timestamp: SystemTime,
    /// Whether the runtime directory was there to be read
    /// (`firma_runtime_dir_up`): a missing or unreadable one is observed
    /// as empty, and this says so.
    pub runtime_dir: RuntimeDirState,
}

/// Scans `runtime_dir` once. With `collect`, stale markers are removed (and
/// counted); without, nothing is removed and stale markers are reported as
/// stopped sidecars (one read-only [`sm::inspect_with`] pass).
pub fn observe(
    runtime_dir: &Path,
    probe: ProbeOptions,
    collect: bool,
) -> Result<Observation, StackError> {
    let start = Instant::now();
    let runtime_dir_state = sm::runtime_dir_state(runtime_dir);
    let scanned = scan_for_metrics(runtime_dir, probe, collect);
    let (report, mut stopped) = match scanned {
        Ok(r) => r,
        // A directory that is not there to be read is observed as empty,
        // with firma_runtime_dir_up 0, so the alert on it fires.
        Err(_) if !runtime_dir_state.is_up() => (ScanReport::default(), Vec::new()),
        Err(e) => return Err(e),
    };
    stopped.sort_by(|a, b| a.sandbox_id.cmp(&b.sandbox_id));
    Ok(Observation {
        report,
        stopped,
        duration: start.elapsed(),
        timestamp: SystemTime::now(),
        runtime_dir: runtime_dir_state,
    })
}

/// The scan of [`observe`]: the report and the stale markers left in place.
fn scan_for_metrics(
    runtime_dir: &Path,
    probe: ProbeOptions,
    collect: bool,
) -> Result<(ScanReport, Vec<SidecarEntry>), StackError> {
    Ok(if collect {
        let opts = ScanOptions {
            probe: Some(probe),
            collect: true,
        };
        (sm::scan(runtime_dir, &opts)?, Vec::new())
    } else {
        let mut report = ScanReport::default();
        let mut stopped = Vec::new();
        for r in sm::inspect_with(runtime_dir, &probe)? {
            match (r.verdict, r.entry) {
                (Verdict::Live, Some(entry)) => report.live.push(entry),
                (Verdict::Stale, Some(entry)) => stopped.push(SidecarEntry {
                    state: State::Stopped,
                    ..entry
                }),
                (Verdict::Broken, _) => report.broken.push(r.name),
                // inspect gives every live or stale report its entry.
                (Verdict::Live | Verdict::Stale, None) => {}
            }
        }
        report.live.sort_by(|a, b| a.sandbox_id.cmp(&b.sandbox_id));
        (report, stopped)
    })
}

/// A label value as the text format requires: backslash, double quote and
/// line feed escaped (`\\`, `\"`, `\n`); everything else as is.
pub fn escape_label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text as the format requires: backslash and line feed escaped.
pub fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Seconds with a fixed number of decimals, from integers (no float noise,
/// never an exponent).
fn seconds(d: Duration, decimals: u32) -> String {
    let frac = d.subsec_nanos() / 10u32.pow(9 - decimals);
    format!("{}.{:0w$}", d.as_secs(), frac, w = decimals as usize)
}

fn unix_seconds(t: SystemTime) -> String {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => seconds(d, 3),
        Err(e) => format!("-{}", seconds(e.duration(), 3)),
    }
}

struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: &str) {
        write_sample(self.out, self.name, labels, value);
    }
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

fn family<'a>(out: &'a mut String, name: &'static str, help: &str) -> Family<'a> {
    out.push_str(&format!("# HELP {name} {}\n", escape_help(help)));
    out.push_str(&format!("# TYPE {name} gauge\n"));
    Family { out, name }
}

/// The exposition text (format 0.0.4) of one observation. Every metric is a
/// gauge with `# HELP` and `# TYPE`; sidecars appear sorted by sandbox id.
pub fn render(obs: &Observation) -> String {
    let mut sidecars: Vec<&SidecarEntry> =
        obs.report.live.iter().chain(obs.stopped.iter()).collect();
    sidecars.sort_by(|a, b| a.sandbox_id.cmp(&b.sandbox_id));
    let mut out = String::new();

    let mut f = family(
        &mut out,
        "firma_sidecar_up",
        "1 when the sidecar is running (process alive, endpoint accepted a connection), else 0.",
    );
    for e in &sidecars {
        let up = if e.state == State::Running { "1" } else { "0" };
        f.sample(
            &[
                ("sandbox_id", &e.sandbox_id),
                ("agent_id", &e.agent_id),
                ("session_id", &e.session_id),
            ],
            up,
        );
    }

    let mut f = family(
        &mut out,
        "firma_sidecar_state",
        "The sidecar's state: 1 for the current one, 0 for the other three.",
    );
    for e in &sidecars {
        for s in STATES {
            let v = if e.state == s { "1" } else { "0" };
            f.sample(&[("sandbox_id", &e.sandbox_id), ("state", s.as_str())], v);
        }
    }

    let mut f = family(
        &mut out,
        "firma_sidecar_uptime_seconds",
        "Seconds since the sidecar started (its sidecar.pid was written); absent when unknown or stopped.",
    );
    for e in &sidecars {
        if let (Some(up), false) = (e.uptime_secs, e.state == State::Stopped) {
            f.sample(&[("sandbox_id", &e.sandbox_id)], &up.to_string());
        }
    }

    let mut f = family(
        &mut out,
        "firma_sidecar_info",
        "The sidecar's marker metadata as labels; always 1.",
    );
    for e in &sidecars {
        let pid = e.pid.to_string();
        f.sample(
            &[
                ("sandbox_id", &e.sandbox_id),
                ("agent_id", &e.agent_id),
                ("session_id", &e.session_id),
                ("authority_url", &e.authority_url),
                ("policy_bundle_version", &e.policy_bundle_version),
                ("pid", &pid),
            ],
            "1",
        );
    }

    let mut f = family(
        &mut out,
        "firma_sidecars",
        "Sidecars seen by the scan, by state.",
    );
    for s in STATES {
        let n = sidecars.iter().filter(|e| e.state == s).count();
        f.sample(&[("state", s.as_str())], &n.to_string());
    }

    let mut f = family(
        &mut out,
        "firma_markers_broken",
        "Entries of run/ that cannot be read or understood (never listed, never removed).",
    );
    f.sample(&[], &obs.report.broken.len().to_string());

    let mut f = family(
        &mut out,
        "firma_markers_collected",
        "Markers of stopped sidecars removed by this scan.",
    );
    f.sample(&[], &obs.report.collected.len().to_string());

    let mut f = family(
        &mut out,
        "firma_runtime_dir_up",
        "1 when the runtime directory exists and can be read; 0 when it is missing or unreadable (every other count is then 0).",
    );
    f.sample(&[], if obs.runtime_dir.is_up() { "1" } else { "0" });

    let mut f = family(
        &mut out,
        "firma_scan_duration_seconds",
        "How long the scan (read, judge, probe, collect) took.",
    );
    f.sample(&[], &seconds(obs.duration, 6));

    let mut f = family(
        &mut out,
        "firma_scan_timestamp_seconds",
        "When the scan finished, in seconds since the Unix epoch.",
    );
    f.sample(&[], &unix_seconds(obs.timestamp));

    out
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
