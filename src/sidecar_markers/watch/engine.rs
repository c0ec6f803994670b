//! The watcher's machinery: one epoll descriptor over the inotify
//! descriptor, the pidfds, a timerfd armed for the next piece of work and
//! an eventfd readable while events are queued; the loop that waits on it,
//! does what the schedule says is due, and queues the events.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::diff::Model;
use super::events::{Event, now_rfc3339};
use super::options::WatchOptions;
use super::pids::{Pids, Quiet, budget_for};
use super::schedule::{Degradation, Full, Schedule, Step};
use super::triggers::{Look, Watches};
use crate::sidecar_markers::endpoint::{Endpoint, parse_listen};
use crate::sidecar_markers::error::{Result, StackError};
use crate::sidecar_markers::options::is_valid_sandbox_id;
use crate::sidecar_markers::probe::{self, Outcome, Prober};
use crate::sidecar_markers::read::{self, Loc};
use crate::sidecar_markers::scan::{FLEET_MIN_ENTRIES, Mode, Scan, scan_entries};
use crate::sidecar_markers::sys::epoll::{self, Epoll};
use crate::sidecar_markers::sys::eventfd::EventFd;
use crate::sidecar_markers::sys::inotify::{self, Inotify};
use crate::sidecar_markers::sys::rlimit;
use crate::sidecar_markers::sys::timerfd::TimerFd;
use crate::sidecar_markers::{SidecarEntry, State, sys, trust};

/// The epoll tokens: the three descriptors of the engine's own, then one
/// per pidfd.
const TOKEN_INOTIFY: u64 = 0;
const TOKEN_TIMER: u64 = 1;
const TOKEN_PENDING: u64 = 2;
const FIRST_PIDFD_TOKEN: u64 = 3;

/// An eventfd readable exactly while events are queued.
struct Pending {
    fd: EventFd,
    readable: bool,
}

impl Pending {
    fn set(&mut self, readable: bool) {
        if readable == self.readable {
            return;
        }
        if readable {
            let _ = self.fd.add(1);
        } else {
            let _ = self.fd.take();
        }
        self.readable = readable;
    }
}

pub(super) struct Engine {
    /// The runtime directory, opened and judged again for every scan
    /// (docs/design.md, "Trust": an untrusted one is watched read-only).
    runtime_dir: PathBuf,
    run_path: PathBuf,
    opts: WatchOptions,
    epoll: Epoll,
    timer: TimerFd,
    pending: Pending,
    watches: Watches,
    pids: Pids,
    model: Model,
    queue: VecDeque<Event>,
    schedule: Schedule,
    /// The probe round under way.
    round: Round,
}

/// A probe round under way (see [`Engine::probe_round`]).
#[derive(Default)]
struct Round {
    /// Its first tick was taken and ticks remain.
    open: bool,
    /// The known markers its ticks still have to look at (those its dump
    /// did not judge at its first tick), in id order, the last first.
    rest: Vec<String>,
    /// How many each tick takes.
    per: usize,
    /// Its one socket-diagnostics dump, taken at its first tick (`None`
    /// for a fleet too small for one).
    fleet: Option<probe::Fleet>,
}

impl Round {
    /// A round whose ticks look at `rest` (in id order): spread over
    /// [`slices_for`] ticks, which it returns.
    fn spread(&mut self, mut rest: Vec<String>) -> u32 {
        let ticks = slices_for(rest.len());
        self.per = rest.len().div_ceil(ticks as usize);
        rest.reverse();
        self.rest = rest;
        self.open = true;
        ticks
    }

    /// The markers of the next tick; the last tick closes the round.
    fn take(&mut self) -> Vec<String> {
        let keep = self.rest.len().saturating_sub(self.per);
        let mut slice = self.rest.split_off(keep);
        slice.reverse();
        if self.rest.is_empty() {
            self.open = false;
            self.rest = Vec::new();
        }
        slice
    }
}

/// Room for events kept once the queue is empty; more (a fleet's initial
/// `appeared` events) is given back.
const QUEUE_KEPT: usize = 256;

/// A probe round is spread into slices of about this many markers, one
/// slice per tick, at most [`MAX_SLICES`] ticks per probe interval.
const SLICE: usize = 500;
const MAX_SLICES: usize = 20;

/// How many ticks a probe round over `n` markers is spread over.
fn slices_for(n: usize) -> u32 {
    n.div_ceil(SLICE).clamp(1, MAX_SLICES) as u32
}

impl Engine {
    /// Sets up every descriptor and makes the initial scan (its events and
    /// one `synced` queued). `runtime_dir` and `opts` are checked already.
    pub fn start(runtime_dir: PathBuf, opts: &WatchOptions) -> Result<Engine> {
        let run_path = runtime_dir.join("run");
        // Once per process: room for a fleet's pidfds and probes
        // (docs/design.md, "Events").
        rlimit::raise_nofile_once();
        let sys_err = |what: &'static str, e| StackError::io(what, &run_path, e);
        let epoll = Epoll::new().map_err(|e| sys_err("epoll_create1 for watching", e))?;
        let timer = TimerFd::new().map_err(|e| sys_err("timerfd_create for watching", e))?;
        let pending = EventFd::new().map_err(|e| sys_err("eventfd for watching", e))?;
        epoll
            .add(timer.as_fd(), TOKEN_TIMER)
            .and_then(|()| epoll.add(pending.as_fd(), TOKEN_PENDING))
            .map_err(|e| sys_err("epoll_ctl for watching", e))?;
        let mut degraded = None;
        let inotify = match Inotify::new() {
            Ok(fd) => {
                epoll
                    .add(fd.as_fd(), TOKEN_INOTIFY)
                    .map_err(|e| sys_err("epoll_ctl for watching", e))?;
                Some(fd)
            }
            Err(e) => {
                degraded = Some(format!(
                    "inotify is unavailable ({e}): polling run/ every probe interval"
                ));
                None
            }
        };
        let now = Instant::now();
        let mut engine = Engine {
            runtime_dir,
            run_path,
            opts: *opts,
            epoll,
            timer,
            pending: Pending {
                fd: pending,
                readable: false,
            },
            watches: Watches::new(inotify),
            pids: Pids::new(FIRST_PIDFD_TOKEN, pidfd_budget()),
            model: Model::default(),
            queue: VecDeque::new(),
            schedule: Schedule::new(opts.probe_interval, opts.rescan_interval, now),
            round: Round::default(),
        };
        if let Some(reason) = degraded {
            engine.schedule.announce("inotify");
            engine.push(Event::Resync {
                reason,
                at: now_rfc3339(),
            });
        }
        // The initial scan owes its `synced`, like a resync: it goes out
        // once nothing is held back (see `settle`).
        engine.schedule.resynced();
        engine.full_scan()?;
        engine.settle();
        engine.finish_round();
        Ok(engine)
    }

    /// [`Watcher::next`](super::Watcher::next).
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<Event>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut wait = Duration::ZERO;
        loop {
            if let Some(ev) = self.pop() {
                return Ok(Some(ev));
            }
            self.gather(wait)?;
            let worked = self.work();
            self.finish_round();
            worked?;
            if let Some(ev) = self.pop() {
                return Ok(Some(ev));
            }
            let now = Instant::now();
            let until = match deadline {
                Some(d) if d <= now => return Ok(None),
                Some(d) => d.min(self.due()),
                None => self.due(),
            };
            wait = until
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
        }
    }

    pub fn known(&self) -> &BTreeMap<String, SidecarEntry> {
        self.model.known()
    }

    pub fn options(&self) -> &WatchOptions {
        &self.opts
    }

    fn push(&mut self, ev: Event) {
        self.queue.push_back(ev);
    }

    fn pop(&mut self) -> Option<Event> {
        let ev = self.queue.pop_front();
        if self.queue.is_empty() && self.queue.capacity() > QUEUE_KEPT {
            // The initial scan's events of a whole fleet are out: neither
            // room for them nor their freed memory stays resident.
            self.queue = VecDeque::new();
            sys::heap::trim();
        }
        self.sync_pending();
        ev
    }

    /// Keeps the eventfd readable exactly while events are queued.
    fn sync_pending(&mut self) {
        self.pending.set(!self.queue.is_empty());
    }

    /// When work is due next (now, if something is waiting).
    fn due(&self) -> Instant {
        self.schedule.due(Instant::now())
    }

    /// Arms the timer for [`Self::due`] and the eventfd for the queue.
    fn finish_round(&mut self) {
        let wait = self.due().saturating_duration_since(Instant::now());
        // A zero it_value disarms; 1 ns fires at once.
        let wait = wait.max(Duration::from_nanos(1));
        // Setting the timer also clears an expiry not yet read.
        let _ = self.timer.set_once(wait);
        self.sync_pending();
    }

    /// Waits up to `timeout` for the epoll descriptor and takes note of
    /// everything ready.
    fn gather(&mut self, timeout: Duration) -> Result<()> {
        let mut events = epoll::Events::default();
        if let Err(e) = self.epoll.wait(&mut events, timeout) {
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(());
            }
            return Err(StackError::io(
                "epoll_wait while watching",
                &self.run_path,
                e,
            ));
        }
        for token in events.tokens() {
            match token {
                TOKEN_INOTIFY => self.drain_inotify(),
                TOKEN_TIMER => {
                    let _ = self.timer.take();
                }
                TOKEN_PENDING => {}
                token => {
                    // A sidecar exited: judge its marker again.
                    if let Some(name) = self.pids.exited(&self.epoll, token) {
                        self.schedule.examine(name);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads every inotify event waiting and takes note of what each asks
    /// for (see [`Wds::on_event`](super::triggers::Wds::on_event)).
    fn drain_inotify(&mut self) {
        let mut buf = vec![0u8; inotify::READ_BUF_LEN];
        loop {
            let n = match self.watches.read(&mut buf) {
                Some(Ok(n)) if n > 0 => n,
                // EAGAIN (drained), or an error we cannot act on: the
                // periodic scans still run.
                _ => return,
            };
            for ev in inotify::parse_events(&buf[..n]) {
                let look = self.watches.on_event(ev.wd, ev.mask, ev.name);
                self.look(look);
            }
        }
    }

    /// Puts what an inotify event asks for on the schedule.
    fn look(&mut self, look: Look) {
        match look {
            Look::Nothing => {}
            Look::Overflow => self
                .schedule
                .resync("the inotify queue overflowed: rescanning".into()),
            Look::Rescan => self.schedule.rescan(),
            Look::Marker(name) => self.schedule.examine(name),
        }
    }

    /// Does whatever is due. A failure (`run/` unreadable, out of
    /// descriptors) is never taken for markers gone: the model stands, a
    /// `resync` goes out (once per episode), a full scan is owed, and it
    /// is tried again after a pause that grows while it keeps failing; its
    /// `synced` follows the first full scan that succeeds.
    fn work(&mut self) -> Result<()> {
        let now = Instant::now();
        let polling = self.watches.polling();
        let result = match self.schedule.step(now, polling) {
            Step::Idle => return Ok(()),
            Step::Full(full) => self.owed_full_scan(full),
            Step::Rescan => self.full_scan(),
            Step::Examine(names) => self.examine(names),
            Step::Round(waiting) => self.probe_round(waiting),
        };
        match &result {
            Ok(()) => {
                self.schedule.succeeded();
                self.settle();
            }
            Err(e) => {
                self.schedule.failed(now);
                self.schedule.rescan();
                if !self.schedule.owes_synced() {
                    self.push_resync(format!(
                        "cannot look at run/ ({}): the last state stands; retrying",
                        crate::sidecar_markers::text::one_line(&e.to_string())
                    ));
                }
            }
        }
        result
    }

    /// Pushes a `resync`; its `synced` is owed from now on.
    fn push_resync(&mut self, reason: String) {
        self.schedule.resynced();
        self.push(Event::Resync {
            reason,
            at: now_rfc3339(),
        });
    }

    /// After work that succeeded: the `synced` owed goes out when nothing
    /// is held back or owed any more.
    fn settle(&mut self) {
        if self.schedule.take_synced() {
            self.push(Event::Synced { at: now_rfc3339() });
        }
    }

    /// A full scan owed, between `resync` and `synced` when it is a resync
    /// (the `synced` goes out from [`Self::settle`]).
    fn owed_full_scan(&mut self, full: Full) -> Result<()> {
        if let Full::Resync(reason) = full {
            self.push_resync(reason);
        }
        self.full_scan()
    }

    fn mode(&self) -> Mode {
        Mode {
            probe: Some(self.opts.probe),
            collect: self.opts.collect,
            report: true,
            // Set from the directory by `Mode::trusting`.
            bounding: Default::default(),
        }
    }

    /// Scans all of `run/` and reports the differences.
    fn full_scan(&mut self) -> Result<()> {
        self.schedule.full_scan_started(Instant::now());
        // Everything is judged now: the next tick starts a round afresh.
        self.round = Round::default();
        self.recover();
        // Watch for run/ to be created before looking (no race).
        self.watches.watch_parent(&self.run_path);
        let Some(run) = trust::open_run(&self.runtime_dir)? else {
            self.watches.forget_run();
            self.apply(Scan::default(), None);
            return Ok(());
        };
        let mode = self.mode().trusting(&run.trust);
        let run = run.fd;
        let degraded = self.watches.watch_run(run.as_fd(), &self.run_path);
        self.degrade(degraded);
        let entries =
            sys::read_dir(run.as_fd()).map_err(|e| StackError::io("list", &self.run_path, e))?;
        let entries: Vec<sys::DirEntry> = entries
            .into_iter()
            .filter(|e| !e.name.to_bytes().starts_with(b"."))
            .collect();
        for e in &entries {
            if matches!(e.d_type, libc::DT_DIR | libc::DT_UNKNOWN)
                && is_valid_sandbox_id(e.name.to_bytes())
            {
                let degraded = self.watches.watch_marker(run.as_fd(), &e.name);
                self.degrade(degraded);
            }
        }
        let scan = scan_entries(run.as_fd(), &self.run_path, &entries, mode);
        self.apply(scan, None);
        // The scan's temporaries are freed: do not keep them resident.
        sys::heap::trim();
        if !self.watches.at_watch_limit() {
            self.schedule.recovered("watch-marker");
        }
        if self.watches.watching_run() {
            self.schedule.recovered("watch-run");
        }
        Ok(())
    }

    /// Before a full scan: whatever a lifted limit gives back. An inotify
    /// instance refused before is tried again, the watch limit is tried
    /// again, and the pidfd budget follows the descriptor limit: once a
    /// limit is lifted the watcher returns to events (and a degradation
    /// that comes back is announced again).
    fn recover(&mut self) {
        if !self.watches.has_inotify()
            && let Ok(fd) = Inotify::new()
            && self.epoll.add(fd.as_fd(), TOKEN_INOTIFY).is_ok()
        {
            self.watches.set_inotify(fd);
            self.schedule.recovered("inotify");
        }
        if self.watches.at_watch_limit() {
            self.watches.retry_watch_limit();
        }
        if self.pids.set_budget(pidfd_budget()) {
            self.schedule.recovered("pidfd-budget");
        }
    }

    /// One tick of a probe round. A sidecar whose marker directory is
    /// watched, whose process is pinned by a pidfd and whose last state is
    /// `running` or `unhealthy` ([`settled`]) can change in one way only
    /// that no trigger reports: its endpoint's answer. Its endpoint alone
    /// is probed, and only a sidecar whose probe disagrees with the state
    /// reported is judged again in full (the same scan as `list`). Every
    /// other known marker, and those in `waiting`, is judged again in full.
    ///
    /// The first tick of a round takes the round's one socket-diagnostics
    /// dump and judges by it, at once, every settled sidecar whose socket
    /// file an earlier round found (see [`Self::start_round`]); the round's
    /// ticks look at the other known markers, a slice each, probing the
    /// settled ones through the probe code of `list` with that dump.
    fn probe_round(&mut self, waiting: BTreeSet<String>) -> Result<()> {
        let mut full = waiting;
        if !self.round.open {
            self.start_round(&mut full);
        }
        let mut quiet: Vec<(&String, &SidecarEntry)> = Vec::new();
        let slice = self.round.take();
        for name in &slice {
            let Some((name, entry)) = self.model.known().get_key_value(name) else {
                continue; // gone since
            };
            if settled(&self.pids, &self.watches, name, entry, &full) {
                quiet.push((name, entry));
            } else {
                full.insert(name.clone());
            }
        }
        if !quiet.is_empty() {
            let run = match trust::open_run(&self.runtime_dir) {
                Ok(Some(run)) => run,
                // Missing, or not openable: the full judgement says which.
                Ok(None) | Err(_) => {
                    full.extend(quiet.into_iter().map(|(n, _)| n.clone()));
                    return self.examine(full);
                }
            };
            let (disagree, found) = probe_quietly(
                run.fd.as_fd(),
                &self.run_path,
                &quiet,
                self.opts.probe,
                self.round.fleet.as_ref(),
            );
            full.extend(disagree);
            for (name, q) in found {
                self.pids.set_quiet(&name, q);
            }
        }
        self.examine(full)
    }

    /// The first tick of a probe round: takes the round's dump (none for
    /// fewer than [`FLEET_MIN_ENTRIES`] markers: they connect, as a small
    /// scan does), judges by it every settled sidecar whose socket file an
    /// earlier round found ([`Pids::quiet`]; those it disagrees with, or
    /// cannot answer for, go to `full`), and spreads the other known
    /// markers over the round's ticks.
    ///
    /// Such a file needs no lookup: it is the one a probe opened beneath
    /// the marker since the marker was last judged in full, and whatever
    /// would make that path another file, or change who may connect to it,
    /// shows on the marker directory's inotify watch (`sidecar.sock`
    /// created, deleted, moved, its attributes changed), which has the
    /// marker judged in full and the file forgotten. What inotify does not
    /// see (a mount over the marker) waits for the next full scan.
    fn start_round(&mut self, full: &mut BTreeSet<String>) {
        // The last round's dump goes before the next is taken.
        self.round = Round::default();
        let known = self.model.known();
        let mut judged = 0;
        if known.len() >= FLEET_MIN_ENTRIES {
            let fleet = probe::Fleet::new(self.opts.probe.timeout);
            if let Some(snap) = fleet.snapshot() {
                for (name, q) in self.pids.quiet() {
                    judged += 1;
                    if full.contains(name) {
                        continue;
                    }
                    let agree = snap
                        .judge_socket(q.file)
                        .is_some_and(|o| agrees(o, q.state));
                    if !agree {
                        full.insert(name.clone());
                    }
                }
            }
            self.round.fleet = Some(fleet);
        }
        // Every pinned sidecar is a known one: when the dump judged as
        // many as are known, nothing is left for the ticks.
        let rest: Vec<String> = if judged == known.len() {
            Vec::new()
        } else {
            let fleet = self.round.fleet.as_ref();
            let dumped = fleet.is_some_and(|f| f.snapshot().is_some());
            let judged: std::collections::HashSet<&String> = if dumped {
                self.pids.quiet().map(|(n, _)| n).collect()
            } else {
                Default::default()
            };
            known
                .keys()
                .filter(|n| !judged.contains(n))
                .cloned()
                .collect()
        };
        let ticks = self.round.spread(rest);
        self.schedule.spread(ticks);
    }

    /// Judges the markers `names` again and reports the differences.
    fn examine(&mut self, names: BTreeSet<String>) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let run = match trust::open_run(&self.runtime_dir) {
            Ok(run) => run,
            Err(e) => {
                // Not judged: judged again later, never taken for gone.
                self.schedule.retry_later(names, Instant::now());
                return Err(e);
            }
        };
        let Some(run) = run else {
            self.watches.forget_run();
            self.apply(Scan::default(), Some(&names));
            return Ok(());
        };
        let mode = self.mode().trusting(&run.trust);
        let run = run.fd;
        let mut entries = Vec::with_capacity(names.len());
        for name in &names {
            let c = CString::new(name.as_str()).expect("sandbox ids have no NUL");
            if !self.watches.watches_marker(name) {
                let degraded = self.watches.watch_marker(run.as_fd(), &c);
                self.degrade(degraded);
            }
            entries.push(sys::DirEntry {
                name: c,
                d_type: libc::DT_UNKNOWN,
            });
        }
        let scan = scan_entries(run.as_fd(), &self.run_path, &entries, mode);
        self.apply(scan, Some(&names));
        Ok(())
    }

    /// A degradation: announced once in a `resync`. Most lose events and
    /// owe a full scan; a spent pidfd budget loses none (the sidecars
    /// left unpinned are judged every probe round), so its `synced`
    /// follows at once.
    fn degrade(&mut self, degraded: Option<Degradation>) {
        match degraded {
            Some(d) if d.key == "pidfd-budget" && self.schedule.announce(d.key) => {
                self.push_resync(d.reason);
            }
            Some(d) if d.key == "pidfd-budget" => {}
            Some(d) => self.schedule.degrade(d),
            None => {}
        }
    }

    /// Compares a scan of `scope` (`None`: all of `run/`) with what was
    /// reported and queues the events (see `diff.rs`); holds a pidfd for
    /// each sidecar found that is not stopped, and none for one gone.
    ///
    /// Markers a shortage kept from being judged keep their last state: a
    /// `resync` says so (once per episode) and they are judged again after
    /// a pause; the `synced` follows once every one of them was.
    fn apply(&mut self, scan: Scan, scope: Option<&BTreeSet<String>>) {
        let diff = self.model.apply(scan, scope, &now_rfc3339());
        for seen in &diff.seen {
            let degraded =
                self.pids
                    .track(&self.epoll, &seen.name, seen.pid, seen.state, seen.verified);
            self.degrade(degraded);
        }
        for name in &diff.gone {
            self.pids.release(&self.epoll, name);
        }
        self.queue.extend(diff.events);
        if diff.held.is_empty() {
            self.schedule.later_cleared();
            return;
        }
        let n = diff.held.len();
        let first = diff.held[0].clone();
        self.schedule.retry_later(diff.held, Instant::now());
        if !self.schedule.owes_synced() {
            self.push_resync(format!(
                "out of descriptors or memory judging {n} marker(s) (first {first}): \
                 their last state stands until they are judged again"
            ));
        }
    }
}

/// Whether the sidecar `name` (reported as `entry`) is settled: its
/// marker directory watched, its process pinned, its state `running` or
/// `unhealthy`, and not waiting to be judged in full (`full`). Only its
/// endpoint's answer can change without a trigger.
fn settled(
    pids: &Pids,
    watches: &Watches,
    name: &str,
    entry: &SidecarEntry,
    full: &BTreeSet<String>,
) -> bool {
    matches!(entry.state, State::Running | State::Unhealthy)
        && pids.pinned(name)
        && watches.watches_marker(name)
        && !full.contains(name)
}

/// Probes the endpoints of the `quiet` sidecars of the open `run/` (see
/// [`Engine::probe_round`]) with the round's dump (`fleet`; `None`:
/// connect), and names those whose outcome disagrees with the state
/// reported, or whose probe could not be made; then those whose own socket
/// file the dump answered for, to be judged by the next rounds' dumps
/// without a lookup (see [`Engine::start_round`]).
fn probe_quietly(
    run: BorrowedFd<'_>,
    run_path: &std::path::Path,
    quiet: &[(&String, &SidecarEntry)],
    probe: crate::sidecar_markers::ProbeOptions,
    fleet: Option<&probe::Fleet>,
) -> (Vec<String>, Vec<(String, Quiet)>) {
    let mut prober = Prober::new(probe.timeout, probe::window(1), fleet);
    let snap = fleet.and_then(probe::Fleet::snapshot);
    let mut disagree = Vec::new();
    let mut found = Vec::new();
    for (key, (name, entry)) in quiet.iter().enumerate() {
        let c = CString::new(name.as_str()).expect("sandbox ids have no NUL");
        let loc = Loc::Entry { run, name: &c };
        let marker_path = run_path.join(name.as_str());
        let own_socket =
            std::path::Path::new(&entry.listen) == marker_path.join(read::DEFAULT_SOCKET).as_path();
        // The marker's own socket: its file, and the dump's answer for it.
        let answered = own_socket.then_some(snap).flatten().and_then(|snap| {
            let file = snap.socket_file(&probe::stat_marker_socket(loc)?)?;
            Some((file, snap.judge_socket(file)?))
        });
        if let Some((file, outcome)) = answered {
            if agrees(outcome, entry.state) {
                let state = entry.state;
                found.push(((*name).clone(), Quiet { file, state }));
            } else {
                disagree.push((*name).clone());
            }
            continue;
        }
        let endpoint = if own_socket {
            Ok(Endpoint::MarkerSocket)
        } else {
            parse_listen(Some(&entry.listen))
        };
        let Ok(endpoint) = endpoint else {
            disagree.push((*name).clone());
            continue;
        };
        let mut fds = sys::MarkerFds::default();
        if let Some(outcome) = prober.start(key, &endpoint, loc, &marker_path, &mut fds)
            && !agrees(outcome, entry.state)
        {
            disagree.push((*name).clone());
        }
    }
    for (key, outcome) in prober.finish() {
        if !agrees(outcome, quiet[key].1.state) {
            disagree.push(quiet[key].0.clone());
        }
    }
    (disagree, found)
}

/// Whether a probe's `outcome` leaves a pinned sidecar in `state`.
fn agrees(outcome: Outcome, state: State) -> bool {
    !matches!(outcome, Outcome::Unavailable(_)) && outcome.state() == state
}

/// The pidfd budget under the current soft descriptor limit.
fn pidfd_budget() -> usize {
    rlimit::nofile().map_or(0, |(soft, _)| budget_for(soft))
}

impl AsFd for Engine {
    /// The epoll descriptor.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watcher of `runtime` (with no marker), past its initial scan: that
    /// scan ends with one `synced`.
    fn started(runtime: &std::path::Path) -> Engine {
        let mut e = Engine::start(runtime.to_path_buf(), &WatchOptions::default()).unwrap();
        assert!(is_synced(next_now(&mut e)), "the initial scan is synced");
        e
    }

    fn next_now(e: &mut Engine) -> Option<Event> {
        e.next(Some(Duration::ZERO)).unwrap()
    }

    fn resync_reason(ev: Option<Event>) -> String {
        match ev {
            Some(Event::Resync { reason, .. }) => reason,
            other => panic!("not a resync: {other:?}"),
        }
    }

    fn is_synced(ev: Option<Event>) -> bool {
        matches!(ev, Some(Event::Synced { .. }))
    }

    /// The initial scan of an empty (or missing) `run/` is one `synced`
    /// ([`started`] checks it), and nothing more.
    #[test]
    fn an_empty_run_dir_is_synced_at_once() {
        for make_run in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            if make_run {
                std::fs::create_dir(dir.path().join("run")).unwrap();
            }
            let mut e = started(dir.path());
            assert_eq!(next_now(&mut e), None);
            assert!(e.known().is_empty());
        }
    }

    /// An overflow: `resync` with its reason, the rescan, then `synced`.
    #[test]
    fn an_inotify_overflow_is_resync_then_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = started(dir.path());
        e.look(Look::Overflow);
        assert_eq!(
            resync_reason(next_now(&mut e)),
            "the inotify queue overflowed: rescanning"
        );
        assert!(is_synced(next_now(&mut e)));
        assert_eq!(next_now(&mut e), None);
    }

    /// Degradations found together go out in one `resync`, each once.
    #[test]
    fn degradations_are_announced_once_in_one_resync() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = started(dir.path());
        let d = |key, reason: &str| {
            Some(Degradation {
                key,
                reason: reason.into(),
            })
        };
        e.degrade(d("pidfd", "no pidfds"));
        e.degrade(d("watch-run", "no watch"));
        assert_eq!(resync_reason(next_now(&mut e)), "no pidfds; no watch");
        assert!(is_synced(next_now(&mut e)));
        e.degrade(d("pidfd", "no pidfds"));
        assert_eq!(next_now(&mut e), None);
    }

    /// A round's ticks take its markers in id order, a slice of about 500
    /// each, each marker once; the last tick closes the round.
    #[test]
    fn a_round_takes_each_marker_once_in_slices() {
        let names: Vec<String> = (0..1_200).map(|i| format!("m{i:04}")).collect();
        let mut round = Round::default();
        assert_eq!(round.spread(names.clone()), 3);
        let mut taken = Vec::new();
        let mut sizes = Vec::new();
        while round.open {
            let slice = round.take();
            sizes.push(slice.len());
            taken.extend(slice);
        }
        assert_eq!(sizes, [400, 400, 400]);
        assert_eq!(taken, names);
        // Nothing left for the ticks: one tick, which closes the round.
        assert_eq!(round.spread(Vec::new()), 1);
        assert!(round.open);
        assert!(round.take().is_empty());
        assert!(!round.open);
        assert_eq!(slices_for(0), 1);
        assert_eq!(slices_for(1_000), 2);
        assert_eq!(slices_for(10_000), 20);
        assert_eq!(slices_for(1_000_000), 20);
    }

    /// `run/` created after the start is seen through the watch on the
    /// runtime directory: a quiet rescan, no `resync`.
    #[test]
    fn run_created_later_is_rescanned_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = started(dir.path());
        assert!(!e.watches.polling(), "the runtime directory is watched");
        assert!(!e.watches.watching_run());
        std::fs::create_dir(dir.path().join("run")).unwrap();
        assert_eq!(e.next(Some(Duration::from_millis(200))).unwrap(), None);
        assert!(e.watches.watching_run(), "run/ is watched now");
        assert!(!e.watches.polling());
    }
}
