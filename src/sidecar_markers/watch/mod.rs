//! Watching `run/`: a stream of events instead of polling `list`.
//!
//! A [`Watcher`] keeps the state `list` would return and reports each change
//! as an [`Event`]. What tells it to look again:
//!
//! - inotify on `run/` (a marker renamed in, created, deleted or moved out)
//!   and on each marker directory (`metadata.toml` replaced, `sidecar.sock`
//!   or `sidecar.pid` created or removed);
//! - a pidfd per live sidecar, readable the moment its process exits;
//! - every probe interval, all known markers are judged again (their
//!   endpoints probed concurrently under one deadline);
//! - every rescan interval, all of `run/` is scanned again (a safety net).
//!
//! Whatever the trigger, the markers to look at go through the same scan
//! code as `list` (the one liveness function, the same assessment, the same
//! collection with `gc::take`): the watcher only compares the result with
//! what it reported before. When inotify overflows or runs out of watches,
//! or pidfds are unavailable, it says so in a `resync` event, rescans, and
//! reports `synced` once the stream is complete again; without inotify or
//! pidfds it judges everything at the probe interval instead.
//!
//! Everything waits on one epoll descriptor ([`Watcher::as_raw_fd`]): it
//! holds the inotify descriptor, the pidfds, a timerfd armed for the next
//! probe or rescan, and an eventfd that stays readable while events are
//! queued, so the descriptor is readable exactly when [`Watcher::next`] may
//! have something without waiting.

mod diff;
mod events;
mod options;
mod pids;
mod schedule;
mod triggers;

pub use events::{Event, GoneReason};
pub use options::{MAX_WATCH_INTERVAL, WatchOptions};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{Result, StackError};
use super::sys::epoll::{self, Epoll};
use super::sys::eventfd::EventFd;
use super::sys::inotify::{self, Inotify};
use super::sys::timerfd::TimerFd;
use super::{Mode, Scan, SidecarEntry, caller_path, is_valid_sandbox_id, scan_entries, sys, trust};
use diff::Model;
use events::now_rfc3339;
use pids::Pids;
use schedule::{Degradation, Full, Schedule, Step};
use triggers::{Look, Watches};

const TOKEN_INOTIFY: u64 = 0;
const TOKEN_TIMER: u64 = 1;
const TOKEN_PENDING: u64 = 2;
const FIRST_PIDFD_TOKEN: u64 = 3;

/// A live view of `run/`; see the module docs.
///
/// `next` takes `&mut self`: one thread at a time. The watcher is `Send`,
/// so it may move between threads. Dropping it closes every descriptor.
pub struct Watcher {
    /// The runtime directory, opened and judged again for every scan
    /// (docs/design.md, "Trust": an untrusted one is watched read-only).
    runtime_dir: PathBuf,
    run_path: PathBuf,
    opts: WatchOptions,
    epoll: Epoll,
    timer: TimerFd,
    pending: EventFd,
    pending_flag: bool,
    watches: Watches,
    pids: Pids,
    model: Model,
    queue: VecDeque<Event>,
    schedule: Schedule,
}

/// Starts watching `<runtime_dir>/run`. The initial scan happens here: its
/// `appeared` events and one `synced` are queued for [`Watcher::next`].
/// Fails on bad options, or when `run/` exists but cannot be opened or
/// read (a missing `run/` is watched for as an empty directory).
pub fn watch(runtime_dir: impl AsRef<Path>, opts: &WatchOptions) -> Result<Watcher> {
    let runtime_dir = caller_path(runtime_dir.as_ref(), "runtime_dir")?;
    opts.validate()?;
    let run_path = runtime_dir.join("run");
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
    let mut w = Watcher {
        runtime_dir,
        run_path,
        opts: *opts,
        epoll,
        timer,
        pending,
        pending_flag: false,
        watches: Watches::new(inotify),
        pids: Pids::new(FIRST_PIDFD_TOKEN),
        model: Model::default(),
        queue: VecDeque::new(),
        schedule: Schedule::new(opts.probe_interval, opts.rescan_interval, now),
    };
    if let Some(reason) = degraded {
        w.schedule.announce("inotify");
        w.push(Event::Resync {
            reason,
            at: now_rfc3339(),
        });
    }
    w.full_scan()?;
    w.push(Event::Synced { at: now_rfc3339() });
    w.finish_round();
    Ok(w)
}

impl AsFd for Watcher {
    /// The epoll descriptor: readable when [`Watcher::next`] may return an
    /// event without waiting. Only poll it; never read from or close it.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

impl Watcher {
    /// The next event: waits at most `timeout` (`None`: until there is
    /// one) and returns `Ok(None)` when it passes. `Some(Duration::ZERO)`
    /// never waits (use it after the descriptor polled readable).
    ///
    /// An error (say, `run/` became unreadable) is not the end: the
    /// watcher keeps its state and a later call tries again (after one
    /// probe interval).
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

    /// The state the events so far describe: sandbox id → entry.
    pub fn known(&self) -> &BTreeMap<String, SidecarEntry> {
        self.model.known()
    }

    /// The options the watcher runs with.
    pub fn options(&self) -> &WatchOptions {
        &self.opts
    }

    fn push(&mut self, ev: Event) {
        self.queue.push_back(ev);
    }

    fn pop(&mut self) -> Option<Event> {
        let ev = self.queue.pop_front();
        self.sync_pending();
        ev
    }

    /// Keeps the eventfd readable exactly while events are queued.
    fn sync_pending(&mut self) {
        let want = !self.queue.is_empty();
        if want == self.pending_flag {
            return;
        }
        if want {
            let _ = self.pending.add(1);
        } else {
            let _ = self.pending.take();
        }
        self.pending_flag = want;
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
    /// for (see [`Wds::on_event`](triggers::Wds::on_event)).
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
                match self.watches.on_event(ev.wd, ev.mask, ev.name) {
                    Look::Nothing => {}
                    Look::Overflow => self
                        .schedule
                        .resync("the inotify queue overflowed: rescanning".into()),
                    Look::Rescan => self.schedule.rescan(),
                    Look::Marker(name) => self.schedule.examine(name),
                }
            }
        }
    }

    /// Does whatever is due.
    fn work(&mut self) -> Result<()> {
        let now = Instant::now();
        let polling = self.watches.polling();
        let result = match self.schedule.step(now, polling, self.model.known().keys()) {
            Step::Idle => return Ok(()),
            Step::Full(full) => self.owed_full_scan(full),
            Step::Rescan => self.full_scan(),
            Step::Examine(names) => self.examine(names),
        };
        if result.is_err() {
            self.schedule.failed(now);
        }
        result
    }

    /// A full scan owed, between `resync` and `synced` when it is a resync.
    fn owed_full_scan(&mut self, full: Full) -> Result<()> {
        let resync = matches!(full, Full::Resync(_));
        if let Full::Resync(reason) = full {
            self.push(Event::Resync {
                reason,
                at: now_rfc3339(),
            });
        }
        // A resync is complete only when its scan is; a scan that fails
        // is retried (quietly: its resync is out already).
        let r = self.full_scan();
        match &r {
            Ok(()) if resync => self.push(Event::Synced { at: now_rfc3339() }),
            Ok(()) => {}
            Err(_) => self.schedule.rescan(),
        }
        r
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
        Ok(())
    }

    /// Judges the markers `names` again and reports the differences.
    fn examine(&mut self, names: BTreeSet<String>) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let Some(run) = trust::open_run(&self.runtime_dir)? else {
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

    fn degrade(&mut self, degraded: Option<Degradation>) {
        if let Some(d) = degraded {
            self.schedule.degrade(d);
        }
    }

    /// Compares a scan of `scope` (`None`: all of `run/`) with what was
    /// reported and queues the events (see [`diff`]); holds a pidfd for
    /// each sidecar found that is not stopped, and none for one gone.
    fn apply(&mut self, scan: Scan, scope: Option<&BTreeSet<String>>) {
        let diff = self.model.apply(scan, scope, &now_rfc3339());
        for seen in &diff.seen {
            let degraded = self
                .pids
                .track(&self.epoll, &seen.name, seen.pid, seen.state);
            self.degrade(degraded);
        }
        for name in &diff.gone {
            self.pids.release(&self.epoll, name);
        }
        self.queue.extend(diff.events);
    }
}
