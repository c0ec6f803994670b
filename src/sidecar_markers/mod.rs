//! Sidecar markers: find the sidecars alive on this host, probe whether they
//! serve, and collect the markers of runs that died.
//!
//! The on-disk contract, states and invariants are in `DESIGN.md`; this
//! module is the one implementation every surface (C, Python, Go, CLI) calls.
//!
//! All file access goes through descriptors: `run/` is opened once and each
//! marker's `metadata.toml` is opened relative to it without following any
//! symlink (`openat2` with `RESOLVE_NO_SYMLINKS`, or `O_NOFOLLOW` component
//! by component), so a symlink planted in `run/` is never followed, listed
//! or removed. Each marker is read once per call, and the same verdict
//! decides both its state and whether it is collected.

mod error;
mod gc;
mod markers;
mod probe;
mod process;
mod sys;
mod writer;

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

pub use error::{Result, StackError};
pub use markers::{MAX_METADATA_BYTES, MAX_PID, MetadataFile, SidecarEntry, State};
pub use writer::{create_marker, remove_marker};

use markers::{Loc, Marker};
use probe::{Prober, Started};
use process::Liveness;

/// Probe timeout used when the caller sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// Longest sandbox id, in bytes.
pub const MAX_SANDBOX_ID_LEN: usize = 255;

/// Per-call probe settings. Passed explicitly; there is no global state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How long a connect to a sidecar's endpoint may take before the
    /// sidecar is reported `unhealthy`. Endpoints are probed concurrently,
    /// so a whole listing waits about one timeout at most.
    pub timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ProbeOptions {
    pub fn with_timeout(timeout: Duration) -> Self {
        ProbeOptions { timeout }
    }
}

/// Checks a caller-supplied sandbox id against DESIGN §4.6: non-empty, at
/// most 255 bytes, only `[A-Za-z0-9._-]`, not starting with `.`.
pub fn validate_sandbox_id(id: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(StackError::InvalidSandboxId {
            id: id.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id.len() > MAX_SANDBOX_ID_LEN {
        return bad("longer than 255 bytes");
    }
    if id.starts_with('.') {
        return bad("must not start with '.' (reserved for temporary names)");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(&format!(
            "character {c:?} is not allowed (only A-Z a-z 0-9 . _ -)"
        ));
    }
    Ok(())
}

fn is_valid_sandbox_id(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(|s| validate_sandbox_id(s).is_ok())
}

fn empty_path(what: &str) -> StackError {
    StackError::InvalidArgument {
        what: what.into(),
        reason: "is empty (pass the default runtime dir explicitly, or use the binding's default)"
            .into(),
    }
}

/// `<runtime_dir>/run`. An empty runtime dir is refused rather than taken as
/// the current directory.
pub(crate) fn run_dir(runtime_dir: &Path) -> Result<PathBuf> {
    if runtime_dir.as_os_str().is_empty() {
        return Err(empty_path("runtime_dir"));
    }
    Ok(runtime_dir.join("run"))
}

/// The runtime directory used when the caller gives none:
/// `$FIRMA_STATE_DIR` if set and non-empty, else `$XDG_RUNTIME_DIR/firma`,
/// else `/tmp/firma-<uid>`.
pub fn default_runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FIRMA_STATE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("firma");
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/tmp/firma-{uid}"))
}

/// Reads and probes one marker directory (named by any path the caller
/// likes; the directory name must equal the marker's `sandbox_id`).
/// Nothing is removed.
pub fn probe_entry(marker_dir: impl AsRef<Path>) -> Result<SidecarEntry> {
    probe_entry_with(marker_dir, &ProbeOptions::default())
}

/// [`probe_entry`] with explicit probe options.
pub fn probe_entry_with(marker_dir: impl AsRef<Path>, opts: &ProbeOptions) -> Result<SidecarEntry> {
    let path = marker_dir.as_ref().to_path_buf();
    if path.as_os_str().is_empty() {
        return Err(empty_path("marker_dir"));
    }
    let dir = sys::open(&path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .map_err(|e| markers::open_dir_error(path.clone(), e))?;
    let loc = Loc::Dir(dir.as_fd());
    let marker = markers::read_marker(loc, path)?;
    probe_one(loc, &marker, opts)
}

/// Looks up and probes the marker of `sandbox_id`. `Ok(None)` when there is
/// no such marker; an invalid id or a malformed marker is an error. Nothing
/// is removed.
pub fn get(runtime_dir: impl AsRef<Path>, sandbox_id: &str) -> Result<Option<SidecarEntry>> {
    get_with(runtime_dir, sandbox_id, &ProbeOptions::default())
}

/// [`get`] with explicit probe options.
pub fn get_with(
    runtime_dir: impl AsRef<Path>,
    sandbox_id: &str,
    opts: &ProbeOptions,
) -> Result<Option<SidecarEntry>> {
    validate_sandbox_id(sandbox_id)?;
    let run_path = run_dir(runtime_dir.as_ref())?;
    let Some(run) = open_run(&run_path)? else {
        return Ok(None);
    };
    let name = CString::new(sandbox_id).expect("validated id has no NUL");
    let loc = Loc::Entry {
        run: run.as_fd(),
        name: &name,
    };
    let marker = match markers::read_marker(loc, run_path.join(sandbox_id)) {
        Ok(m) => m,
        // No marker directory at all is "absent"; a directory without
        // metadata.toml is a broken marker and stays an error.
        Err(e) if e.is_not_found() && is_absent(run.as_fd(), &name) => return Ok(None),
        Err(e) => return Err(e),
    };
    probe_one(loc, &marker, opts).map(Some)
}

fn is_absent(run: BorrowedFd<'_>, name: &CStr) -> bool {
    matches!(sys::lstatat(run, name), Err(e) if e.raw_os_error() == Some(libc::ENOENT))
}

fn probe_one(loc: Loc<'_>, marker: &Marker, opts: &ProbeOptions) -> Result<SidecarEntry> {
    let uptime = markers::uptime_secs(loc, &marker.path, SystemTime::now())?;
    let state = match check_process(marker)? {
        Liveness::Alive => {
            let mut prober = Prober::new(opts.timeout);
            let probe_err = |e| StackError::io("probe", marker.listen_string(), e);
            match prober
                .start(0, &marker.endpoint, loc, &marker.path)
                .map_err(probe_err)?
            {
                Started::Done(state) => state,
                Started::Pending => prober
                    .finish()
                    .map_err(probe_err)?
                    .first()
                    .map_or(State::Unhealthy, |&(_, s)| s),
            }
        }
        _ => State::Stopped,
    };
    Ok(marker.entry(state, uptime))
}

fn check_process(marker: &Marker) -> Result<Liveness> {
    let m = &marker.meta;
    process::liveness(m.pid, m.boot_id.as_deref(), m.pid_start_ticks).map_err(|e| {
        StackError::io(
            "check process",
            PathBuf::from(format!("/proc/{}", m.pid)),
            e,
        )
    })
}

/// Opens `run/` without following a symlink; `None` when it does not exist.
fn open_run(run_path: &Path) -> Result<Option<OwnedFd>> {
    match sys::open(run_path, sys::DIR_FLAGS) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(_) if markers::is_symlink(run_path) => Err(StackError::io(
            "open (refusing to follow a symlink)",
            run_path,
            std::io::Error::from_raw_os_error(libc::ELOOP),
        )),
        Err(e) => Err(StackError::io("open", run_path, e)),
    }
}

/// Every live sidecar under `runtime_dir`, sorted by sandbox id. Stale
/// markers (process provably stopped) are collected as a side effect and
/// not returned; corrupt, mismatched or vanishing markers are skipped.
pub fn list(runtime_dir: impl AsRef<Path>) -> Result<Vec<SidecarEntry>> {
    list_with(runtime_dir, &ProbeOptions::default())
}

/// [`list`] with explicit probe options.
pub fn list_with(runtime_dir: impl AsRef<Path>, opts: &ProbeOptions) -> Result<Vec<SidecarEntry>> {
    Ok(scan(runtime_dir.as_ref(), Some(opts))?.live)
}

/// Removes every stale marker under `runtime_dir` and returns the removed
/// sandbox ids, sorted. Each id is reported by exactly one of any number of
/// concurrent callers. A missing `run/` is not an error. (A call that fails
/// part-way may already have collected some markers.)
pub fn gc_stale(runtime_dir: impl AsRef<Path>) -> Result<Vec<String>> {
    Ok(scan(runtime_dir.as_ref(), None)?.removed)
}

#[derive(Default)]
struct Scan {
    live: Vec<SidecarEntry>,
    removed: Vec<String>,
}

/// Below this many entries a scan stays on the calling thread: spawning a
/// worker costs more than it saves.
const ENTRIES_PER_WORKER: usize = 256;

fn workers_for(entries: usize) -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cpus.min(entries / ENTRIES_PER_WORKER).max(1)
}

/// One pass over `run/`: read each marker once, decide liveness, collect the
/// stale, and (when `probe` is set) probe the live concurrently. Large
/// directories are split between worker threads, one per CPU.
fn scan(runtime_dir: &Path, probe: Option<&ProbeOptions>) -> Result<Scan> {
    let run_path = run_dir(runtime_dir)?;
    let Some(run) = open_run(&run_path)? else {
        return Ok(Scan::default());
    };
    let entries = sys::read_dir(run.as_fd()).map_err(|e| StackError::io("list", &run_path, e))?;
    let now = SystemTime::now();
    let workers = workers_for(entries.len());
    let mut out = if workers == 1 {
        scan_part(run.as_fd(), &run_path, &entries, probe, now)?
    } else {
        let chunk = entries.len().div_ceil(workers);
        let parts: Vec<Result<Scan>> = std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .map(|part| {
                    let (run, run_path) = (run.as_fd(), &run_path);
                    s.spawn(move || scan_part(run, run_path, part, probe, now))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut out = Scan::default();
        for part in parts {
            let part = part?;
            out.live.extend(part.live);
            out.removed.extend(part.removed);
        }
        out
    };
    out.live.sort_by(|a, b| a.sandbox_id.cmp(&b.sandbox_id));
    out.removed.sort();
    Ok(out)
}

/// Scans `entries` of `run/`; see [`scan`].
fn scan_part(
    run: BorrowedFd<'_>,
    run_path: &Path,
    entries: &[sys::DirEntry],
    probe: Option<&ProbeOptions>,
    now: SystemTime,
) -> Result<Scan> {
    let mut out = Scan::default();
    let mut prober = probe.map(|o| Prober::new(o.timeout));
    // Markers whose TCP probe is still in flight, by key, with their uptime.
    let mut waiting: Vec<Option<(Marker, Option<u64>)>> = Vec::new();

    for entry in entries {
        let name: &CStr = &entry.name;
        let bytes = name.to_bytes();
        if bytes.starts_with(b".") {
            // Reserved names. The temp dir of a writer, or the tomb of a
            // collector, whose process is gone (kill says ESRCH) is debris:
            // finish removing it. Best effort: a leftover that cannot be
            // removed now must not fail this call; the next scan retries.
            let orphan = gc::reserved_owner(bytes)
                .is_some_and(|owner| matches!(process::kill_probe(owner), Ok(false)));
            if orphan {
                let _ = gc::finish_leftover(run, name);
            }
            continue;
        }
        if !matches!(entry.d_type, libc::DT_DIR | libc::DT_UNKNOWN) || !is_valid_sandbox_id(bytes) {
            continue;
        }
        let loc = Loc::Entry { run, name };
        let marker = match markers::read_marker(loc, markers::child_path(run_path, name)) {
            Ok(m) => m,
            Err(StackError::MarkerParse { .. } | StackError::IdentityMismatch { .. }) => continue,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if !check_process(&marker)?.is_alive() {
            let taken = gc::take(run, name, Some(marker.meta_id))
                .map_err(|e| StackError::io("remove", &marker.path, e))?;
            if taken {
                out.removed.push(marker.meta.sandbox_id);
            }
            continue;
        }
        let Some(prober) = prober.as_mut() else {
            continue;
        };
        let uptime = markers::uptime_secs(loc, &marker.path, now)?;
        let key = waiting.len();
        let started = prober
            .start(key, &marker.endpoint, loc, &marker.path)
            .map_err(|e| StackError::io("probe", marker.listen_string(), e))?;
        match started {
            Started::Done(state) => {
                out.live.push(marker.entry(state, uptime));
                waiting.push(None);
            }
            Started::Pending => waiting.push(Some((marker, uptime))),
        }
    }
    if let Some(prober) = prober {
        let results = prober
            .finish()
            .map_err(|e| StackError::io("probe endpoints under", run_path, e))?;
        for (key, state) in results {
            if let Some((marker, uptime)) = waiting.get_mut(key).and_then(Option::take) {
                out.live.push(marker.entry(state, uptime));
            }
        }
    }
    Ok(out)
}
