//! One pass over `run/`: each entry read once, judged by the one liveness
//! function, the stale collected (where the directory is trusted and the
//! bounding owners allow), the live probed concurrently; large directories
//! split between worker threads (docs/design.md, "Operations").

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

use super::assess::{self, Assessment, assess};
use super::endpoint::Endpoint;
use super::error::{Result, StackError};
use super::host_pids::HostPids;
use super::model::{MarkerReport, Problem, Reason, SidecarEntry, Verdict};
use super::options::{ProbeOptions, is_valid_sandbox_id};
use super::paths::{child_path, entry_name};
use super::probe::{self, Prober};
use super::process::{self, Liveness};
use super::read::{self, Broken, Loc, Marker, is_absent};
use super::reserved::{self, Debris};
use super::trust::{self, Trust};
use super::{authority, gc, sys};

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

impl From<Scan> for ScanReport {
    fn from(s: Scan) -> ScanReport {
        ScanReport {
            live: s.live,
            collected: s.collected,
            broken: s.broken,
            problems: s.problems,
            untrusted: s.untrusted,
        }
    }
}

/// What one pass over `run/` does (the public calls and `watch` each
/// build one).
#[derive(Clone, Copy)]
pub(crate) struct Mode {
    /// Probe the live and return them (`None`: judge liveness only).
    pub probe: Option<ProbeOptions>,
    /// Remove the stale markers (only where the directory is trusted).
    pub collect: bool,
    /// One [`MarkerReport`] per entry, as `inspect` and `watch` want.
    pub report: bool,
    /// Who bounds what collection may remove (set by [`Mode::trusting`]).
    pub bounding: authority::Bounding,
}

impl Mode {
    /// A mode whose bounding owners are set later, from the directory
    /// ([`Mode::trusting`]).
    pub fn new(probe: Option<ProbeOptions>, collect: bool, report: bool) -> Mode {
        Mode {
            probe,
            collect,
            report,
            bounding: Default::default(),
        }
    }

    /// This mode on a directory with `trust`: read-only unless every trust
    /// check passed.
    pub fn trusting(self, trust: &Trust) -> Mode {
        Mode {
            collect: self.collect && trust.is_trusted(),
            bounding: authority::Bounding::new(trust.bounding_owners()),
            ..self
        }
    }
}

/// What one pass found (see [`ScanReport`], which the public `scan`
/// returns; `inspect` and `watch` take the reports).
#[derive(Default)]
pub(crate) struct Scan {
    pub live: Vec<SidecarEntry>,
    pub collected: Vec<String>,
    pub broken: Vec<String>,
    pub problems: Vec<Problem>,
    pub reports: Vec<MarkerReport>,
    /// The live sidecars recorded in another pid namespace, by name, with
    /// this reader's pid of their process: what a watcher pins by pidfd.
    pub here: std::collections::BTreeMap<String, u32>,
    /// [`ScanReport::untrusted`].
    pub untrusted: Option<String>,
}

impl Scan {
    fn extend(&mut self, other: Scan) {
        self.live.extend(other.live);
        self.collected.extend(other.collected);
        self.broken.extend(other.broken);
        self.problems.extend(other.problems);
        self.reports.extend(other.reports);
        self.here.extend(other.here);
    }
}

/// Below this many entries a scan stays on the calling thread: spawning a
/// worker costs more than it saves.
const ENTRIES_PER_WORKER: usize = 256;

/// Below this many entries a scan connects instead of taking a
/// socket-diagnostics dump.
pub(crate) const FLEET_MIN_ENTRIES: usize = 8;

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
pub(crate) fn run_scan(
    runtime_dir: &Path,
    mode: Mode,
    refuse: Option<&'static str>,
) -> Result<Scan> {
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
pub(crate) fn scan_entries(
    run: BorrowedFd<'_>,
    run_path: &Path,
    entries: &[sys::DirEntry],
    mode: Mode,
) -> Scan {
    let now = SystemTime::now();
    let workers = workers_for(entries.len());
    let window = probe::window(workers);
    // One socket-diagnostics dump for the whole scan, taken at the first
    // Unix socket file to judge (docs/design.md, "Probing"); for a few
    // entries (a watcher re-examining what changed) connects cost less than
    // a dump, which walks every Unix socket of the namespace.
    let fleet = mode
        .probe
        .filter(|_| entries.len() >= FLEET_MIN_ENTRIES)
        .map(|o| probe::Fleet::new(o.timeout));
    let fleet = fleet.as_ref();
    // Pids recorded in other pid namespaces: one walk of /proc, at the
    // first such marker (none without).
    let pids = HostPids::new();
    let mut out = if workers == 1 {
        scan_part(
            run,
            run_path,
            &Batches::new(entries),
            &pids,
            mode,
            now,
            window,
            fleet,
        )
    } else {
        let batches = Batches::new(entries);
        let parts: Vec<Scan> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        // The worker's descriptors stay its own: see
                        // MarkerFds::private_table. Refused, it shares.
                        sys::MarkerFds::private_table(run);
                        scan_part(run, run_path, &batches, &pids, mode, now, window, fleet)
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
#[allow(clippy::too_many_arguments)]
fn scan_part<'e>(
    run: BorrowedFd<'_>,
    run_path: &Path,
    batches: &Batches<'e>,
    pids: &HostPids,
    mode: Mode,
    now: SystemTime,
    window: usize,
    fleet: Option<&probe::Fleet>,
) -> Scan {
    let mut out = Scan::default();
    let mut prober = mode.probe.map(|o| Prober::new(o.timeout, window, fleet));
    let mut waiting: Vec<Option<Waiting>> = Vec::new();
    let mut later: Vec<(&CStr, Marker)> = Vec::new();
    let mut part = Part {
        out: &mut out,
        prober: &mut prober,
        waiting: &mut waiting,
        mode,
        run,
        now,
        fleet,
    };

    for entry in std::iter::from_fn(|| batches.take()).flatten() {
        // This marker's descriptors, closed together at the end of the
        // iteration (`continue` included).
        let mut fds = sys::MarkerFds::default();
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
            if reserved::parse_reserved(bytes).is_some() {
                match reserved::judge_debris(run, name) {
                    Debris::Finish(seen) if mode.collect => {
                        let _ = gc::finish_leftover(run, name, seen);
                    }
                    Debris::Finish(_) | Debris::InProgress | Debris::Vanished => {}
                    Debris::Left(why) => {
                        let error = StackError::parse(child_path(run_path, name), why);
                        part.out
                            .broken(mode, entry_name(name), Reason::Leftover, &error);
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
            part.out.broken(mode, entry_name(name), reason, &error);
            continue;
        }
        let loc = Loc::Entry { run, name };
        let read_at = std::time::Instant::now();
        let mut got = read::read_marker(loc, child_path(run_path, name), &mut fds);
        if let Err(b) = &got
            && b.error
                .errno()
                .is_some_and(|e| e == libc::EMFILE || e == libc::ENFILE)
            && let Some(p) = part.prober.as_mut()
            && p.has_pending()
        {
            // Our own in-flight probes hold the descriptors: settle them
            // and read once more.
            p.settle_all();
            got = read::read_marker(loc, child_path(run_path, name), &mut fds);
        }
        let marker = match got {
            Ok(m) => m,
            // Vanished while we read it: no longer there to report.
            Err(b) if b.is_not_found() && is_absent(run, name) => continue,
            Err(Broken { reason, error }) => {
                part.out.broken(mode, entry_name(name), reason, &error);
                continue;
            }
        };
        let foreign = process::Foreign::of_scan(pids, read_at, false);
        let (liveness, here) = assess::liveness(loc, &marker, &mut fds, &foreign);
        if process::is_later(liveness) {
            // Walked before this marker was read: judged at the end.
            later.push((name, marker));
            continue;
        }
        part.judged(name, marker, (liveness, here), &mut fds);
    }
    // Markers from another pid namespace that the map, walked before they
    // were read, did not have: one walk begun after all were read decides.
    let read_at = std::time::Instant::now();
    for (name, marker) in later {
        let mut fds = sys::MarkerFds::default();
        let foreign = process::Foreign::of_scan(pids, read_at, true);
        let loc = Loc::Entry { run, name };
        let (liveness, here) = assess::liveness(loc, &marker, &mut fds, &foreign);
        part.judged(name, marker, (liveness, here), &mut fds);
    }
    if let Some(prober) = prober {
        for (key, outcome) in prober.finish() {
            if let Some(w) = waiting.get_mut(key).and_then(Option::take) {
                let note = note(fleet, &w.marker.endpoint);
                let a = assess(w.marker, w.liveness, Some(outcome), w.uptime);
                out.live_one(mode, a, note);
            }
        }
    }
    out
}

/// What a worker has gathered while it judges its entries.
struct Part<'s, 'p, 'f> {
    out: &'s mut Scan,
    prober: &'s mut Option<Prober<'p>>,
    waiting: &'s mut Vec<Option<Waiting>>,
    mode: Mode,
    run: BorrowedFd<'s>,
    now: SystemTime,
    fleet: Option<&'f probe::Fleet>,
}

/// What `inspect` adds to the detail of a Unix endpoint probed by connect
/// because the fleet probe was refused.
fn note(fleet: Option<&probe::Fleet>, endpoint: &Endpoint) -> Option<String> {
    match endpoint {
        Endpoint::Tcp(_) => None,
        _ => fleet
            .and_then(probe::Fleet::refused)
            .map(|why| format!(" (probed by connect: {why})")),
    }
}

impl Part<'_, '_, '_> {
    /// A marker judged: collect it when stale, else start its probe.
    fn judged(
        &mut self,
        name: &CStr,
        marker: Marker,
        (liveness, here): (Liveness, Option<u32>),
        fds: &mut sys::MarkerFds,
    ) {
        let loc = Loc::Entry {
            run: self.run,
            name,
        };
        if let Some(here) = here.filter(|&h| h != marker.meta.pid && !liveness.is_stale()) {
            self.out.here.insert(marker.meta.sandbox_id.clone(), here);
        }
        if liveness.is_stale() {
            // Only what the bounding owners could remove themselves.
            if self.mode.collect
                && authority::may_remove(self.mode.bounding, marker.owner(self.run, name)).is_ok()
            {
                // Nothing of the marker stays open while it is removed (an
                // open file unlinked on NFS would keep the tree non-empty).
                fds.close_now();
                match gc::take(self.run, name, Some(marker.meta_id)) {
                    Ok(true) => self.out.collected.push(marker.meta.sandbox_id),
                    Ok(false) => {}
                    Err(e) => self.out.problems.push(Problem {
                        name: marker.meta.sandbox_id.clone(),
                        error: StackError::io("remove stale marker", &marker.path, e).info(),
                    }),
                }
            } else if self.mode.report {
                let uptime = read::uptime_secs(loc, &marker.path, self.now, fds).unwrap_or(None);
                self.out.report(assess(marker, liveness, None, uptime));
            }
            return;
        }
        let Some(prober) = self.prober.as_mut() else {
            return;
        };
        let uptime = read::uptime_secs(loc, &marker.path, self.now, fds).unwrap_or(None);
        let key = self.waiting.len();
        match prober.start(key, &marker.endpoint, loc, &marker.path, fds) {
            Some(outcome) => {
                let note = note(self.fleet, &marker.endpoint);
                self.out.live_one(
                    self.mode,
                    assess(marker, liveness, Some(outcome), uptime),
                    note,
                );
                self.waiting.push(None);
            }
            None => self.waiting.push(Some(Waiting {
                marker,
                uptime,
                liveness,
            })),
        }
    }
}

impl Scan {
    fn broken(&mut self, mode: Mode, name: String, reason: Reason, error: &StackError) {
        debug_assert_eq!(reason.verdict(), Verdict::Broken, "{reason}");
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
        self.report_noted(a, None);
    }

    fn report_noted(&mut self, a: Assessment, note: Option<String>) {
        // Every test run checks the table `Reason::verdict` publishes.
        debug_assert_eq!(a.reason.verdict(), a.verdict, "{}", a.reason);
        let mut detail = a.detail();
        detail.extend(note);
        self.reports.push(MarkerReport {
            name: a.entry.sandbox_id.clone(),
            verdict: a.verdict,
            state: Some(a.entry.state),
            reason: a.reason,
            detail,
            entry: Some(a.entry),
            error: None,
        });
    }

    fn live_one(&mut self, mode: Mode, a: Assessment, note: Option<String>) {
        if mode.report {
            self.report_noted(a, note);
        } else {
            self.live.push(a.entry);
        }
    }
}
