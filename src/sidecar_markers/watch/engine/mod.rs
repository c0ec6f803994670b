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
mod round;

use round::Round;

/// Room for events kept once the queue is empty; more (a fleet's initial
/// `appeared` events) is given back.
const QUEUE_KEPT: usize = 256;

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
mod tests;
