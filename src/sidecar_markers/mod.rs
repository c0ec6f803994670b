//! Sidecar markers: find the sidecars alive on this host, probe whether they
//! serve, and collect the markers of runs that died.
//!
//! The on-disk contract, states and invariants are in `docs/design.md`; this
//! module is the one implementation every surface (C, Python, Go, CLI) calls.
//!
//! All file access goes through descriptors: `run/` is opened once and each
//! marker's `metadata.toml` is opened relative to it without following any
//! symlink (`openat2` with `RESOLVE_NO_SYMLINKS`, or `O_NOFOLLOW` component
//! by component), so a symlink planted in `run/` is never followed, listed
//! or removed. Each marker is read once per call, and the same verdict
//! decides both its state and whether it is collected.
//!
//! Before any of that, the runtime directory and `run/` are opened and
//! judged (`trust.rs`, docs/design.md, "Trust"): on a directory others
//! control nothing is collected, and what removes, signals or writes
//! refuses with `untrusted_directory`.

mod assess;
mod authority;
mod endpoint;
mod error;
mod gc;
mod macros;
mod metadata;
mod model;
mod options;
mod paths;
mod probe;
mod process;
mod read;
mod stop;
mod stop_lock;
mod sys;
pub mod text;
mod trust;
mod watch;
mod writer;

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

pub use error::{ErrorCode, ErrorInfo, Result, StackError};
pub use model::{
    MAX_PID, MarkerReport, MetadataFile, Problem, Reason, SidecarEntry, State, Verdict,
};
pub use options::{
    DEFAULT_GRACE, DEFAULT_TIMEOUT, KILL_WAIT, MAX_GRACE, MAX_SANDBOX_ID_LEN, MAX_TIMEOUT,
    ProbeOptions, ScanOptions, StopOptions, validate_sandbox_id,
};
pub use paths::default_runtime_dir;
pub use read::MAX_METADATA_BYTES;
pub use stop::{StopOutcome, parse_signal, signal_name, stop};
pub use trust::check_runtime_dir;
pub use watch::{Event, GoneReason, WatchOptions, Watcher, watch};
pub use writer::{create_marker, remove_marker};

use assess::{Assessment, assess};
use options::is_valid_sandbox_id;
use paths::{caller_path, child_path, entry_name};
use probe::Prober;
use process::Liveness;
use read::is_absent;
use read::{Broken, Loc, Marker};
use trust::Trust;

/// Reads and probes one marker directory (named by any path the caller
/// likes; the directory name must equal the marker's `sandbox_id`).
/// Nothing is removed.
pub fn probe_entry(marker_dir: impl AsRef<Path>) -> Result<SidecarEntry> {
    probe_entry_with(marker_dir, &ProbeOptions::default())
}

/// [`probe_entry`] with explicit probe options.
/// A timeout of 0 or above [`MAX_TIMEOUT`] is refused with `invalid_argument`
/// ([`ProbeOptions::validate`]).
pub fn probe_entry_with(marker_dir: impl AsRef<Path>, opts: &ProbeOptions) -> Result<SidecarEntry> {
    opts.validate()?;
    let path = caller_path(marker_dir.as_ref(), "marker_dir")?;
    let dir = sys::open(&path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .map_err(|e| StackError::from(read::open_dir_error(path.clone(), e)))?;
    let loc = Loc::Dir(dir.as_fd());
    let marker = read::read_marker(loc, path, &mut sys::CloseLater::default())?;
    Ok(assess::assess_one(loc, marker, opts).entry)
}

/// Looks up and probes the marker of `sandbox_id`. `Ok(None)` when there is
/// no such marker; an invalid id or a malformed marker is an error. Nothing
/// is removed.
pub fn get(runtime_dir: impl AsRef<Path>, sandbox_id: &str) -> Result<Option<SidecarEntry>> {
    get_with(runtime_dir, sandbox_id, &ProbeOptions::default())
}

/// [`get`] with explicit probe options.
/// A timeout of 0 or above [`MAX_TIMEOUT`] is refused with `invalid_argument`
/// ([`ProbeOptions::validate`]).
pub fn get_with(
    runtime_dir: impl AsRef<Path>,
    sandbox_id: &str,
    opts: &ProbeOptions,
) -> Result<Option<SidecarEntry>> {
    opts.validate()?;
    Ok(assess::by_id(runtime_dir.as_ref(), sandbox_id, opts)?.map(|a| a.entry))
}

/// Everything one scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// The live sidecars (when probing), sorted by sandbox id.
    pub live: Vec<SidecarEntry>,
    /// The stale markers this call removed, sorted; each is reported by
    /// exactly one of any number of concurrent callers.
    pub collected: Vec<String>,
    /// Names of the entries `inspect` calls broken, sorted.
    pub broken: Vec<String>,
    /// Problems that did not stop the scan, sorted by name.
    pub problems: Vec<Problem>,
    /// Set when the runtime directory or `run/` fails the trust checks
    /// (docs/design.md, "Trust"): one line for a person naming the
    /// directory, its owner and mode and what to do. Such a scan collected
    /// nothing, whatever `collect` said.
    pub untrusted: Option<String>,
}

/// Every live sidecar under `runtime_dir`, sorted by sandbox id. Stale
/// markers (process provably stopped) are collected as a side effect and
/// not returned; corrupt, mismatched or vanishing markers are skipped.
pub fn list(runtime_dir: impl AsRef<Path>) -> Result<Vec<SidecarEntry>> {
    list_with(runtime_dir, &ProbeOptions::default())
}

/// [`list`] with explicit probe options, checked by [`scan`]: a timeout of
/// 0 or above [`MAX_TIMEOUT`] is refused with `invalid_argument`.
pub fn list_with(runtime_dir: impl AsRef<Path>, opts: &ProbeOptions) -> Result<Vec<SidecarEntry>> {
    let scan_opts = ScanOptions {
        probe: Some(*opts),
        collect: true,
    };
    Ok(scan(runtime_dir, &scan_opts)?.live)
}

/// Removes every stale marker under `runtime_dir` and returns the removed
/// sandbox ids, sorted. Each id is reported by exactly one of any number of
/// concurrent callers. A missing `run/` is not an error; a marker that
/// cannot be removed is left (see [`scan`] for the problems).
///
/// Refuses with `untrusted_directory` when the runtime directory or `run/`
/// fails the trust checks (docs/design.md, "Trust"): nothing is removed.
pub fn gc_stale(runtime_dir: impl AsRef<Path>) -> Result<Vec<String>> {
    let mode = Mode {
        probe: None,
        collect: true,
        report: false,
        // Set from the directory by `Mode::trusting`.
        bounding: Default::default(),
    };
    Ok(run_scan(runtime_dir.as_ref(), mode, Some("collect stale markers"))?.collected)
}

/// One report per entry of `run/` (reserved dot-names excepted), sorted by
/// name. Read-only: nothing is removed.
pub fn inspect(runtime_dir: impl AsRef<Path>) -> Result<Vec<MarkerReport>> {
    inspect_with(runtime_dir, &ProbeOptions::default())
}

/// [`inspect`] with explicit probe options.
/// A timeout of 0 or above [`MAX_TIMEOUT`] is refused with `invalid_argument`
/// ([`ProbeOptions::validate`]).
pub fn inspect_with(
    runtime_dir: impl AsRef<Path>,
    opts: &ProbeOptions,
) -> Result<Vec<MarkerReport>> {
    opts.validate()?;
    let mode = Mode {
        probe: Some(*opts),
        collect: false,
        report: true,
        // Set from the directory by `Mode::trusting`.
        bounding: Default::default(),
    };
    Ok(run_scan(runtime_dir.as_ref(), mode, None)?.reports)
}

/// One pass over `run/`: see [`ScanOptions`]. Fails only when `run/`
/// exists but cannot be opened or enumerated, or the options are bad
/// ([`ScanOptions::validate`]);
/// everything tied to one marker stays that marker's problem. On a
/// directory that fails the trust checks the scan is read-only and says
/// why in [`ScanReport::untrusted`].
pub fn scan(runtime_dir: impl AsRef<Path>, opts: &ScanOptions) -> Result<ScanReport> {
    opts.validate()?;
    let mode = Mode {
        probe: opts.probe,
        collect: opts.collect,
        report: false,
        // Set from the directory by `Mode::trusting`.
        bounding: Default::default(),
    };
    let out = run_scan(runtime_dir.as_ref(), mode, None)?;
    Ok(ScanReport {
        live: out.live,
        collected: out.collected,
        broken: out.broken,
        problems: out.problems,
        untrusted: out.untrusted,
    })
}

#[derive(Clone, Copy)]
struct Mode {
    probe: Option<ProbeOptions>,
    collect: bool,
    report: bool,
    /// Who bounds what collection may remove (set by [`Mode::trusting`]).
    bounding: authority::Bounding,
}

impl Mode {
    /// This mode on a directory with `trust`: read-only unless every trust
    /// check passed.
    fn trusting(self, trust: &Trust) -> Mode {
        Mode {
            collect: self.collect && trust.is_trusted(),
            bounding: authority::Bounding::new(trust.bounding_owners()),
            ..self
        }
    }
}

#[derive(Default)]
struct Scan {
    live: Vec<SidecarEntry>,
    collected: Vec<String>,
    broken: Vec<String>,
    problems: Vec<Problem>,
    reports: Vec<MarkerReport>,
    /// [`ScanReport::untrusted`].
    untrusted: Option<String>,
}

impl Scan {
    fn extend(&mut self, other: Scan) {
        self.live.extend(other.live);
        self.collected.extend(other.collected);
        self.broken.extend(other.broken);
        self.problems.extend(other.problems);
        self.reports.extend(other.reports);
    }
}

/// Below this many entries a scan stays on the calling thread: spawning a
/// worker costs more than it saves.
const ENTRIES_PER_WORKER: usize = 256;

fn workers_for(entries: usize) -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cpus.min(entries / ENTRIES_PER_WORKER).max(1)
}

/// Read each marker once, decide liveness, collect the stale, and (when
/// probing) probe the rest concurrently. Large directories are split
/// between worker threads, one per CPU.
///
/// On a directory that fails the trust checks nothing is collected; with
/// `refuse` (the action, for `gc_stale`) the call refuses instead, with
/// `untrusted_directory`.
fn run_scan(runtime_dir: &Path, mode: Mode, refuse: Option<&'static str>) -> Result<Scan> {
    let dirs = trust::open_dirs(runtime_dir)?;
    if let (Some(action), Some(trust)) = (refuse, &dirs.trust) {
        trust.require(action)?;
    }
    let untrusted = dirs.trust.as_ref().and_then(Trust::warning);
    let Some(run) = dirs.run else {
        return Ok(Scan {
            untrusted,
            ..Scan::default()
        });
    };
    let mode = mode.trusting(&run.trust);
    let entries =
        sys::read_dir(run.fd.as_fd()).map_err(|e| StackError::io("list", &run.path, e))?;
    let mut out = scan_entries(run.fd.as_fd(), &run.path, &entries, mode);
    out.untrusted = untrusted;
    Ok(out)
}

/// Judges `entries` of the open `run/` (see [`run_scan`]), split between
/// worker threads when there are many; results sorted. Infallible: every
/// failure here belongs to one entry. `watch` calls it for the markers it
/// re-examines.
fn scan_entries(
    run: BorrowedFd<'_>,
    run_path: &Path,
    entries: &[sys::DirEntry],
    mode: Mode,
) -> Scan {
    let now = SystemTime::now();
    let workers = workers_for(entries.len());
    let window = probe::window(workers);
    let mut out = if workers == 1 {
        scan_part(run, run_path, &Batches::new(entries), mode, now, window)
    } else {
        let batches = Batches::new(entries);
        let parts: Vec<Scan> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        // The worker's descriptors stay its own: see
                        // sys::private_fd_table. Refused, it shares.
                        sys::private_fd_table(run);
                        scan_part(run, run_path, &batches, mode, now, window)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut out = Scan::default();
        for part in parts {
            out.extend(part);
        }
        out
    };
    out.live.sort_by(|a, b| a.sandbox_id.cmp(&b.sandbox_id));
    out.collected.sort();
    out.broken.sort();
    out.problems.sort_by(|a, b| a.name.cmp(&b.name));
    out.reports.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A live marker whose probe is still in flight.
struct Waiting {
    marker: Marker,
    uptime: Option<u64>,
    liveness: Liveness,
}

/// The entries of one scan, handed out in small batches to whichever worker
/// asks next: a worker slowed down (its core taken by a sidecar answering
/// probes, say) takes fewer batches instead of leaving the others waiting
/// for it at the end.
struct Batches<'a> {
    entries: &'a [sys::DirEntry],
    next: std::sync::atomic::AtomicUsize,
}

impl<'a> Batches<'a> {
    /// Entries per batch: small enough to even out the workers, large
    /// enough that the shared counter is touched rarely.
    const SIZE: usize = 32;

    fn new(entries: &'a [sys::DirEntry]) -> Self {
        Batches {
            entries,
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next batch, or `None` when every entry has been handed out.
    fn take(&self) -> Option<&'a [sys::DirEntry]> {
        let start = self
            .next
            .fetch_add(Self::SIZE, std::sync::atomic::Ordering::Relaxed);
        let end = start.checked_add(Self::SIZE)?.min(self.entries.len());
        self.entries.get(start..end).filter(|b| !b.is_empty())
    }
}

/// Scans the entries of `run/` that `batches` hands this worker; see
/// [`run_scan`]. Infallible: every failure here belongs to one entry.
fn scan_part(
    run: BorrowedFd<'_>,
    run_path: &Path,
    batches: &Batches<'_>,
    mode: Mode,
    now: SystemTime,
    window: usize,
) -> Scan {
    let mut out = Scan::default();
    let mut prober = mode.probe.map(|o| Prober::new(o.timeout, window));
    let mut waiting: Vec<Option<Waiting>> = Vec::new();

    for entry in std::iter::from_fn(|| batches.take()).flatten() {
        // This marker's descriptors, closed together at the end of the
        // iteration (`continue` included).
        let mut later = sys::CloseLater::default();
        let name: &CStr = &entry.name;
        let bytes = name.to_bytes();
        if bytes.starts_with(b".") {
            // Reserved names (`.tmp-`, `.gc-`, `.kept-`; other dot-names are
            // skipped unseen). A writer's temp dir or a collector's tomb that
            // is provably the library's and whose maker is provably gone is
            // debris: finish removing it (best effort: a leftover that cannot
            // be removed now must not fail this call; the next scan
            // retries). One at work is left unseen; anything else is left
            // and reported, so `inspect` shows it (docs/design.md, "Trust",
            // "Debris").
            if gc::parse_reserved(bytes).is_some() {
                match gc::judge_debris(run, name) {
                    gc::Debris::Finish(seen) if mode.collect => {
                        let _ = gc::finish_leftover(run, name, seen);
                    }
                    gc::Debris::Finish(_) | gc::Debris::InProgress | gc::Debris::Vanished => {}
                    gc::Debris::Left(why) => {
                        let error = StackError::parse(child_path(run_path, name), why);
                        out.broken(mode, entry_name(name), Reason::Leftover, &error);
                    }
                }
            }
            continue;
        }
        let broken_entry = if !is_valid_sandbox_id(bytes) {
            Some((Reason::InvalidName, "the name is not a valid sandbox id"))
        } else {
            match entry.d_type {
                libc::DT_DIR | libc::DT_UNKNOWN => None,
                libc::DT_LNK => Some((Reason::Symlink, "a symlink (never followed)")),
                _ => Some((Reason::NotADirectory, "not a directory")),
            }
        };
        if let Some((reason, why)) = broken_entry {
            let path = child_path(run_path, name);
            let error = StackError::parse(path, why);
            out.broken(mode, entry_name(name), reason, &error);
            continue;
        }
        let loc = Loc::Entry { run, name };
        let mut read = read::read_marker(loc, child_path(run_path, name), &mut later);
        if let Err(b) = &read
            && b.error
                .errno()
                .is_some_and(|e| e == libc::EMFILE || e == libc::ENFILE)
            && let Some(p) = prober.as_mut()
            && p.has_pending()
        {
            // Our own in-flight probes hold the descriptors: settle them
            // and read once more.
            p.settle_all();
            read = read::read_marker(loc, child_path(run_path, name), &mut later);
        }
        let marker = match read {
            Ok(m) => m,
            // Vanished while we read it: no longer there to report.
            Err(b) if b.is_not_found() && is_absent(run, name) => continue,
            Err(Broken { reason, error }) => {
                out.broken(mode, entry_name(name), reason, &error);
                continue;
            }
        };
        let liveness = process::liveness_in(&marker.meta, &mut later);
        if liveness.is_stale() {
            // Only what the bounding owners could remove themselves.
            if mode.collect && authority::may_remove(mode.bounding, marker.owner(run, name)).is_ok()
            {
                // Nothing of the marker stays open while it is removed (an
                // open file unlinked on NFS would keep the tree non-empty).
                later.close_now();
                match gc::take(run, name, Some(marker.meta_id)) {
                    Ok(true) => out.collected.push(marker.meta.sandbox_id),
                    Ok(false) => {}
                    Err(e) => out.problems.push(Problem {
                        name: marker.meta.sandbox_id.clone(),
                        error: StackError::io("remove stale marker", &marker.path, e).info(),
                    }),
                }
            } else if mode.report {
                let uptime = read::uptime_secs(loc, &marker.path, now, &mut later).unwrap_or(None);
                out.report(assess(marker, liveness, None, uptime));
            }
            continue;
        }
        let Some(prober) = prober.as_mut() else {
            continue;
        };
        let uptime = read::uptime_secs(loc, &marker.path, now, &mut later).unwrap_or(None);
        let key = waiting.len();
        match prober.start(key, &marker.endpoint, loc, &marker.path, &mut later) {
            Some(outcome) => {
                out.live_one(mode, assess(marker, liveness, Some(outcome), uptime));
                waiting.push(None);
            }
            None => waiting.push(Some(Waiting {
                marker,
                uptime,
                liveness,
            })),
        }
    }
    if let Some(prober) = prober {
        for (key, outcome) in prober.finish() {
            if let Some(w) = waiting.get_mut(key).and_then(Option::take) {
                out.live_one(mode, assess(w.marker, w.liveness, Some(outcome), w.uptime));
            }
        }
    }
    out
}

impl Scan {
    fn broken(&mut self, mode: Mode, name: String, reason: Reason, error: &StackError) {
        if mode.report {
            let info = error.info();
            self.reports.push(MarkerReport {
                name: name.clone(),
                verdict: Verdict::Broken,
                state: None,
                reason,
                detail: info.message.clone(),
                entry: None,
                error: Some(info),
            });
        }
        self.broken.push(name);
    }

    fn report(&mut self, a: Assessment) {
        self.reports.push(MarkerReport {
            name: a.entry.sandbox_id.clone(),
            verdict: a.verdict,
            state: Some(a.entry.state),
            reason: a.reason,
            detail: a.detail(),
            entry: Some(a.entry),
            error: None,
        });
    }

    fn live_one(&mut self, mode: Mode, a: Assessment) {
        if mode.report {
            self.report(a);
        } else {
            self.live.push(a.entry);
        }
    }
}
