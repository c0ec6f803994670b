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
mod schedule;

pub use events::{Event, GoneReason};
pub use options::{MAX_WATCH_INTERVAL, WatchOptions};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{Result, StackError};
use super::markers::{METADATA, PID_FILE, SOCKET_FILE};
use super::sys::epoll::{self, Epoll};
use super::sys::eventfd::EventFd;
use super::sys::inotify::{self, Inotify};
use super::sys::pidfd::Pidfd;
use super::sys::timerfd::TimerFd;
use super::{
    Mode, Scan, SidecarEntry, State, caller_path, is_valid_sandbox_id, scan_entries, sys, trust,
};
use diff::Model;
use events::now_rfc3339;
use schedule::{Degradation, Full, Schedule, Step};

const TOKEN_INOTIFY: u64 = 0;
const TOKEN_TIMER: u64 = 1;
const TOKEN_PENDING: u64 = 2;
const FIRST_PIDFD_TOKEN: u64 = 3;

const RUN_MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_EXCL_UNLINK;

const MARKER_MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_DONT_FOLLOW
    | libc::IN_EXCL_UNLINK;

struct PidWatch {
    token: u64,
    pid: u32,
    fd: Pidfd,
}

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
    inotify: Option<Inotify>,
    run_wd: Option<i32>,
    /// While `run/` is missing: a watch on the runtime directory, for its
    /// creation.
    parent_wd: Option<i32>,
    dir_wds: HashMap<i32, String>,
    name_wds: HashMap<String, i32>,
    pids: HashMap<String, PidWatch>,
    tokens: HashMap<u64, String>,
    next_token: u64,
    model: Model,
    queue: VecDeque<Event>,
    schedule: Schedule,
    /// Watch limit reached: judge everything at the probe interval.
    watch_limit: bool,
    pidfds_ok: bool,
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
        inotify,
        run_wd: None,
        parent_wd: None,
        dir_wds: HashMap::new(),
        name_wds: HashMap::new(),
        pids: HashMap::new(),
        tokens: HashMap::new(),
        next_token: FIRST_PIDFD_TOKEN,
        model: Model::default(),
        queue: VecDeque::new(),
        schedule: Schedule::new(opts.probe_interval, opts.rescan_interval, now),
        watch_limit: false,
        pidfds_ok: true,
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
                    if let Some(name) = self.tokens.get(&token).cloned() {
                        self.drop_pidfd(&name);
                        self.schedule.examine(name);
                    }
                }
            }
        }
        Ok(())
    }

    fn drain_inotify(&mut self) {
        if self.inotify.is_none() {
            return;
        }
        let mut buf = vec![0u8; inotify::READ_BUF_LEN];
        loop {
            let n = match self.inotify.as_ref().map(|i| i.read(&mut buf)) {
                Some(Ok(n)) if n > 0 => n,
                // EAGAIN (drained), or an error we cannot act on: the
                // periodic scans still run.
                _ => return,
            };
            for ev in inotify::parse_events(&buf[..n]) {
                self.on_inotify(ev.wd, ev.mask, ev.name);
            }
        }
    }

    fn on_inotify(&mut self, wd: i32, mask: u32, name: &[u8]) {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            self.schedule
                .resync("the inotify queue overflowed: rescanning".into());
            return;
        }
        if Some(wd) == self.parent_wd {
            if mask & libc::IN_IGNORED != 0 {
                self.parent_wd = None;
            }
            if name == b"run" || mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF) != 0 {
                self.schedule.rescan();
            }
            return;
        }
        if Some(wd) == self.run_wd {
            if mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
                // run/ itself went away (or moved): forget the watch and
                // look at the path again.
                if mask & libc::IN_IGNORED == 0 {
                    self.rm_watch(wd);
                }
                self.run_wd = None;
                self.schedule.rescan();
                return;
            }
            if name.is_empty() || name.starts_with(b".") {
                return;
            }
            let Ok(name) = std::str::from_utf8(name) else {
                return;
            };
            if mask & (libc::IN_MOVED_FROM | libc::IN_DELETE) != 0
                && let Some(old) = self.name_wds.remove(name)
            {
                self.dir_wds.remove(&old);
                self.rm_watch(old);
            }
            if is_valid_sandbox_id(name.as_bytes()) {
                self.schedule.examine(name.to_owned());
            }
            return;
        }
        let Some(marker) = self.dir_wds.get(&wd).cloned() else {
            return;
        };
        if mask & libc::IN_IGNORED != 0 {
            self.dir_wds.remove(&wd);
            if self.name_wds.get(&marker) == Some(&wd) {
                self.name_wds.remove(&marker);
            }
            self.schedule.examine(marker);
            return;
        }
        let relevant = [METADATA, SOCKET_FILE, PID_FILE]
            .iter()
            .any(|f| f.to_bytes() == name);
        if relevant || mask & libc::IN_DELETE_SELF != 0 {
            self.schedule.examine(marker);
        }
    }

    fn rm_watch(&self, wd: i32) {
        if let Some(inotify) = &self.inotify {
            // A stale wd only yields EINVAL.
            let _ = inotify.rm_watch(wd);
        }
    }

    /// Judging everything at the probe interval instead of on events.
    fn polling(&self) -> bool {
        self.inotify.is_none()
            || (self.run_wd.is_none() && self.parent_wd.is_none())
            || self.watch_limit
    }

    /// Does whatever is due.
    fn work(&mut self) -> Result<()> {
        let now = Instant::now();
        let polling = self.polling();
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
        if self.run_wd.is_none() {
            // Watch for run/ to be created before looking (no race).
            self.ensure_parent_watch();
        }
        let Some(run) = trust::open_run(&self.runtime_dir)? else {
            self.forget_run_watch();
            self.apply(Scan::default(), None);
            return Ok(());
        };
        let mode = self.mode().trusting(&run.trust);
        let run = run.fd;
        self.ensure_run_watch(run.as_fd());
        if self.run_wd.is_some()
            && let Some(wd) = self.parent_wd.take()
        {
            self.rm_watch(wd);
        }
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
                self.ensure_dir_watch(run.as_fd(), &e.name);
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
            self.forget_run_watch();
            self.apply(Scan::default(), Some(&names));
            return Ok(());
        };
        let mode = self.mode().trusting(&run.trust);
        let run = run.fd;
        let mut entries = Vec::with_capacity(names.len());
        for name in &names {
            let c = CString::new(name.as_str()).expect("sandbox ids have no NUL");
            if !self.name_wds.contains_key(name) {
                self.ensure_dir_watch(run.as_fd(), &c);
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

    fn forget_run_watch(&mut self) {
        if let Some(wd) = self.run_wd.take() {
            self.rm_watch(wd);
        }
    }

    /// A watch on the runtime directory (best effort: without it, a
    /// missing `run/` is looked for every probe interval).
    fn ensure_parent_watch(&mut self) {
        if self.parent_wd.is_some() {
            return;
        }
        let (Some(inotify), Some(parent)) = (self.inotify.as_ref(), self.run_path.parent()) else {
            return;
        };
        let Ok(path) = sys::cpath(parent) else { return };
        let mask = libc::IN_CREATE
            | libc::IN_MOVED_TO
            | libc::IN_DELETE_SELF
            | libc::IN_ONLYDIR
            | libc::IN_EXCL_UNLINK;
        if let Ok(wd) = inotify.add_watch(&path, mask) {
            self.parent_wd = Some(wd);
        }
    }

    fn ensure_run_watch(&mut self, run: BorrowedFd<'_>) {
        if self.run_wd.is_some() {
            return;
        }
        let Some(inotify) = self.inotify.as_ref() else {
            return;
        };
        // Through the open descriptor, so the watch is on the directory
        // that was opened; by path only where /proc is missing.
        let via_fd =
            CString::new(format!("/proc/thread-self/fd/{}", run.as_raw_fd())).expect("no NUL");
        let r = inotify.add_watch(&via_fd, RUN_MASK).or_else(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                let p = sys::cpath(&self.run_path)?;
                inotify.add_watch(&p, RUN_MASK | libc::IN_DONT_FOLLOW)
            } else {
                Err(e)
            }
        });
        match r {
            Ok(wd) => self.run_wd = Some(wd),
            Err(e) => self.schedule.degrade(Degradation {
                key: "watch-run",
                reason: watch_failure("run/", &e),
            }),
        }
    }

    fn ensure_dir_watch(&mut self, run: BorrowedFd<'_>, name: &CStr) {
        let Some(inotify) = self.inotify.as_ref() else {
            return;
        };
        if self.watch_limit {
            return;
        }
        let mut path = format!("/proc/thread-self/fd/{}/", run.as_raw_fd()).into_bytes();
        path.extend_from_slice(name.to_bytes());
        let path = CString::new(path).expect("no NUL");
        let Ok(name) = name.to_str() else { return };
        match inotify.add_watch(&path, MARKER_MASK) {
            Ok(wd) => {
                if let Some(old) = self.name_wds.insert(name.to_owned(), wd)
                    && old != wd
                {
                    self.dir_wds.remove(&old);
                }
                self.dir_wds.insert(wd, name.to_owned());
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                self.watch_limit = true;
                self.schedule.degrade(Degradation {
                    key: "watch-marker",
                    reason: watch_failure("a marker directory", &e),
                });
            }
            // Gone, not a directory, or not ours to watch: the probe
            // rounds judge it all the same.
            Err(_) => {}
        }
    }

    /// Compares a scan of `scope` (`None`: all of `run/`) with what was
    /// reported and queues the events (see [`diff`]); holds a pidfd for
    /// each sidecar found that is not stopped, and none for one gone.
    fn apply(&mut self, scan: Scan, scope: Option<&BTreeSet<String>>) {
        let diff = self.model.apply(scan, scope, &now_rfc3339());
        for seen in &diff.seen {
            self.track_pid(&seen.name, seen.pid, seen.state);
        }
        for name in &diff.gone {
            self.drop_pidfd(name);
        }
        self.queue.extend(diff.events);
    }

    /// Holds a pidfd for a sidecar that is not stopped, so its exit wakes
    /// the watcher; none for a stopped one.
    fn track_pid(&mut self, name: &str, pid: u32, state: State) {
        if state == State::Stopped {
            self.drop_pidfd(name);
            return;
        }
        if self.pids.get(name).is_some_and(|p| p.pid == pid) {
            return;
        }
        self.drop_pidfd(name);
        if !self.pidfds_ok {
            return;
        }
        match Pidfd::open(pid) {
            Ok(fd) => {
                let token = self.next_token;
                self.next_token += 1;
                if self.epoll.add(fd.as_fd(), token).is_ok() {
                    self.tokens.insert(token, name.to_owned());
                    self.pids
                        .insert(name.to_owned(), PidWatch { token, pid, fd });
                }
            }
            // Exited since it was judged (or is not ours to see): the next
            // probe round judges it again.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                self.pidfds_ok = false;
                self.schedule.degrade(Degradation {
                    key: "pidfd",
                    reason: format!(
                        "pidfds are unavailable ({e}): exits are seen at the probe interval"
                    ),
                });
            }
            Err(e) => {
                self.schedule.degrade(Degradation {
                    key: "pidfd-open",
                    reason: format!(
                        "cannot hold a pidfd for every sidecar ({e}): some exits are seen at the probe interval"
                    ),
                });
            }
        }
    }

    fn drop_pidfd(&mut self, name: &str) {
        if let Some(p) = self.pids.remove(name) {
            let _ = self.epoll.delete(p.fd.as_fd());
            self.tokens.remove(&p.token);
        }
    }
}

fn watch_failure(what: &str, e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        format!(
            "the inotify watch limit is reached watching {what} (fs.inotify.max_user_watches): \
             judging every marker each probe interval"
        )
    } else {
        format!("cannot watch {what} ({e}): judging every marker each probe interval")
    }
}
