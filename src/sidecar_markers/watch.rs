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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::error::{Result, StackError};
use super::model::{SidecarEntry, State};
use super::options::{ProbeOptions, is_valid_sandbox_id};
use super::paths::caller_path;
use super::read::{METADATA, PID_FILE, SOCKET_FILE};
use super::scan::{Mode, Scan, scan_entries};
use super::{sys, trust};

/// Longest probe or rescan interval accepted (one day).
pub const MAX_WATCH_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// How a [`Watcher`] judges and what it may remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    /// Probe settings (timeout), as for `list`.
    pub probe: ProbeOptions,
    /// How often every known sidecar is judged again and its endpoint
    /// probed (default 1 s). Exits are seen at once through pidfds; this
    /// is what notices an endpoint that stops answering.
    pub probe_interval: Duration,
    /// Collect stale markers as `list` does (default `true`). With
    /// `false` the watcher is read-only and a stopped sidecar is reported
    /// `changed` to `stopped` (and stays until its marker is removed).
    pub collect: bool,
    /// How often all of `run/` is scanned again as a safety net (default
    /// 30 s).
    pub rescan_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            probe: ProbeOptions::default(),
            probe_interval: Duration::from_secs(1),
            collect: true,
            rescan_interval: Duration::from_secs(30),
        }
    }
}

/// Why a sidecar left the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoneReason {
    /// This watcher collected its stale marker (reported by exactly one
    /// caller, as by `gc_stale`).
    Collected,
    /// Its marker disappeared by other hands (or stopped being a valid
    /// marker).
    Removed,
}

impl GoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GoneReason::Collected => "collected",
            GoneReason::Removed => "removed",
        }
    }
}

/// One event of the stream; serializes as the JSON object every surface
/// uses (`{"event": "appeared", ...}`). `at` is RFC 3339 UTC with
/// milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A live marker found by the initial scan (or a rescan), or a new one.
    Appeared {
        sandbox_id: String,
        entry: SidecarEntry,
        at: String,
    },
    /// The events before this one describe the whole directory: from here
    /// on the stream is complete. Once after the initial scan and after
    /// each `resync`.
    Synced { at: String },
    /// A known sidecar changed (its state, or its metadata).
    Changed {
        sandbox_id: String,
        entry: SidecarEntry,
        previous: State,
        at: String,
    },
    /// A known sidecar is gone; at most once per appearance.
    Gone {
        sandbox_id: String,
        reason: GoneReason,
        at: String,
    },
    /// The watcher lost track (or runs degraded, as the reason says) and
    /// rescans; `synced` follows.
    Resync { reason: String, at: String },
}

impl Event {
    /// `"appeared"`, `"synced"`, `"changed"`, `"gone"` or `"resync"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Appeared { .. } => "appeared",
            Event::Synced { .. } => "synced",
            Event::Changed { .. } => "changed",
            Event::Gone { .. } => "gone",
            Event::Resync { .. } => "resync",
        }
    }

    /// The sandbox id the event is about, if any.
    pub fn sandbox_id(&self) -> Option<&str> {
        match self {
            Event::Appeared { sandbox_id, .. }
            | Event::Changed { sandbox_id, .. }
            | Event::Gone { sandbox_id, .. } => Some(sandbox_id),
            Event::Synced { .. } | Event::Resync { .. } => None,
        }
    }

    /// When the watcher saw it (RFC 3339 UTC, milliseconds).
    pub fn at(&self) -> &str {
        match self {
            Event::Appeared { at, .. }
            | Event::Synced { at }
            | Event::Changed { at, .. }
            | Event::Gone { at, .. }
            | Event::Resync { at, .. } => at,
        }
    }

    /// The event as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }

    /// Applies the event to a map of sandbox id → entry, as a consumer
    /// builds the state `list` returns. `resync` and `synced` change
    /// nothing (the events after a `resync` correct the state).
    pub fn apply(&self, state: &mut BTreeMap<String, SidecarEntry>) {
        match self {
            Event::Appeared {
                sandbox_id, entry, ..
            }
            | Event::Changed {
                sandbox_id, entry, ..
            } => {
                state.insert(sandbox_id.clone(), entry.clone());
            }
            Event::Gone { sandbox_id, .. } => {
                state.remove(sandbox_id);
            }
            Event::Synced { .. } | Event::Resync { .. } => {}
        }
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

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

/// What a full scan is for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Full {
    /// The periodic safety net: no `resync`/`synced` around it.
    Quiet,
    /// After losing track: `resync` (with this reason), then `synced`.
    Resync(String),
}

struct PidWatch {
    token: u64,
    pid: u32,
    fd: OwnedFd,
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
    epoll: OwnedFd,
    timer: OwnedFd,
    pending: OwnedFd,
    pending_flag: bool,
    inotify: Option<OwnedFd>,
    run_wd: Option<i32>,
    /// While `run/` is missing: a watch on the runtime directory, for its
    /// creation.
    parent_wd: Option<i32>,
    dir_wds: HashMap<i32, String>,
    name_wds: HashMap<String, i32>,
    pids: HashMap<String, PidWatch>,
    tokens: HashMap<u64, String>,
    next_token: u64,
    known: BTreeMap<String, SidecarEntry>,
    dirty: BTreeSet<String>,
    queue: VecDeque<Event>,
    need_full: Option<Full>,
    next_probe: Instant,
    next_rescan: Instant,
    /// After a failure to open or read `run/`, no work before this.
    retry_at: Option<Instant>,
    /// Degradations already announced (announced once each).
    announced: HashSet<&'static str>,
    /// Watch limit reached: judge everything at the probe interval.
    watch_limit: bool,
    pidfds_ok: bool,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a fresh descriptor nothing else owns.
    cvt(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_add(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: valid descriptors and a valid event struct.
    cvt(unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            &mut ev,
        )
    })
    .map(drop)
}

fn epoll_del(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>) {
    // SAFETY: valid descriptors; a null event is allowed for DEL.
    let _ = unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd.as_raw_fd(),
            std::ptr::null_mut(),
        )
    };
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: pidfd_open(pid, 0) returns a new descriptor (close-on-exec)
    // or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned(rc as libc::c_int)
}

fn add_watch(inotify: BorrowedFd<'_>, path: &CStr, mask: u32) -> io::Result<i32> {
    // SAFETY: valid descriptor and NUL-terminated path.
    cvt(unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), path.as_ptr(), mask) })
}

fn ms_ceil(d: Duration) -> libc::c_int {
    let ms = d.as_nanos().div_ceil(1_000_000);
    ms.min(i32::MAX as u128) as libc::c_int
}

fn check_interval(what: &str, d: Duration) -> Result<()> {
    if d.is_zero() || d > MAX_WATCH_INTERVAL {
        return Err(StackError::InvalidArgument {
            what: what.into(),
            reason: format!(
                "{} ms is out of range (must be more than 0 and at most {} ms)",
                d.as_millis(),
                MAX_WATCH_INTERVAL.as_millis()
            ),
        });
    }
    Ok(())
}

/// Starts watching `<runtime_dir>/run`. The initial scan happens here: its
/// `appeared` events and one `synced` are queued for [`Watcher::next`].
/// Fails on bad options, or when `run/` exists but cannot be opened or
/// read (a missing `run/` is watched for as an empty directory).
pub fn watch(runtime_dir: impl AsRef<Path>, opts: &WatchOptions) -> Result<Watcher> {
    let runtime_dir = caller_path(runtime_dir.as_ref(), "runtime_dir")?;
    if opts.probe.timeout.is_zero() || opts.probe.timeout > super::options::MAX_TIMEOUT {
        return Err(StackError::InvalidArgument {
            what: "timeout".into(),
            reason: format!(
                "{} ms is out of range (must be more than 0 and at most {} ms)",
                opts.probe.timeout.as_millis(),
                super::options::MAX_TIMEOUT.as_millis()
            ),
        });
    }
    check_interval("probe_interval", opts.probe_interval)?;
    check_interval("rescan_interval", opts.rescan_interval)?;
    let run_path = runtime_dir.join("run");
    let sys_err = |what: &'static str, e| StackError::io(what, &run_path, e);
    // SAFETY: plain descriptor-creating calls.
    let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
        .map_err(|e| sys_err("epoll_create1 for watching", e))?;
    let timer = owned(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })
    .map_err(|e| sys_err("timerfd_create for watching", e))?;
    let pending = owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
        .map_err(|e| sys_err("eventfd for watching", e))?;
    epoll_add(epoll.as_fd(), timer.as_fd(), TOKEN_TIMER)
        .and_then(|()| epoll_add(epoll.as_fd(), pending.as_fd(), TOKEN_PENDING))
        .map_err(|e| sys_err("epoll_ctl for watching", e))?;
    let mut degraded = None;
    let inotify = match owned(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })
    {
        Ok(fd) => {
            epoll_add(epoll.as_fd(), fd.as_fd(), TOKEN_INOTIFY)
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
        known: BTreeMap::new(),
        dirty: BTreeSet::new(),
        queue: VecDeque::new(),
        need_full: None,
        next_probe: now,
        next_rescan: now,
        retry_at: None,
        announced: HashSet::new(),
        watch_limit: false,
        pidfds_ok: true,
    };
    if let Some(reason) = degraded {
        w.announced.insert("inotify");
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
        let mut wait_ms: libc::c_int = 0;
        loop {
            if let Some(ev) = self.pop() {
                return Ok(Some(ev));
            }
            self.gather(wait_ms)?;
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
            wait_ms = ms_ceil(until.saturating_duration_since(now)).max(1);
        }
    }

    /// The state the events so far describe: sandbox id → entry.
    pub fn known(&self) -> &BTreeMap<String, SidecarEntry> {
        &self.known
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
        let fd = self.pending.as_raw_fd();
        if want {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a valid u64 to an eventfd.
            let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        } else {
            let mut v: u64 = 0;
            // SAFETY: reading 8 bytes into a valid u64 from an eventfd.
            let _ = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        }
        self.pending_flag = want;
    }

    /// When work is due next (now, if something is waiting).
    fn due(&self) -> Instant {
        let now = Instant::now();
        if let Some(r) = self.retry_at {
            return r;
        }
        if self.need_full.is_some() || !self.dirty.is_empty() {
            return now;
        }
        self.next_probe.min(self.next_rescan)
    }

    /// Arms the timer for [`Self::due`] and the eventfd for the queue.
    fn finish_round(&mut self) {
        let wait = self.due().saturating_duration_since(Instant::now());
        // A zero it_value disarms; 1 ns fires at once.
        let wait = wait.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid timerfd and itimerspec. Setting the timer also
        // clears an expiry not yet read.
        let _ = unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        };
        self.sync_pending();
    }

    /// Waits up to `timeout_ms` for the epoll descriptor and takes note of
    /// everything ready.
    fn gather(&mut self, timeout_ms: libc::c_int) -> Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: valid epoll descriptor and buffer of the given length.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(());
            }
            return Err(StackError::io(
                "epoll_wait while watching",
                &self.run_path,
                e,
            ));
        }
        for ev in &events[..n as usize] {
            match ev.u64 {
                TOKEN_INOTIFY => self.drain_inotify(),
                TOKEN_TIMER => {
                    let mut v: u64 = 0;
                    // SAFETY: reading 8 bytes into a valid u64.
                    let _ = unsafe {
                        libc::read(self.timer.as_raw_fd(), (&mut v as *mut u64).cast(), 8)
                    };
                }
                TOKEN_PENDING => {}
                token => {
                    // A sidecar exited: judge its marker again.
                    if let Some(name) = self.tokens.get(&token).cloned() {
                        self.drop_pidfd(&name);
                        self.dirty.insert(name);
                    }
                }
            }
        }
        Ok(())
    }

    fn drain_inotify(&mut self) {
        let Some(fd) = self.inotify.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        // Aligned for inotify_event.
        let mut buf = vec![0u64; 8192];
        loop {
            let len = buf.len() * 8;
            // SAFETY: reading into a valid buffer of `len` bytes.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), len) };
            if n <= 0 {
                // EAGAIN (drained), or an error we cannot act on: the
                // periodic scans still run.
                return;
            }
            let n = n as usize;
            // SAFETY: the kernel wrote `n` bytes into `buf`.
            let bytes: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
            let head = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            while off + head <= n {
                // SAFETY: a complete header lies at `off` (read unaligned).
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(bytes[off..].as_ptr().cast()) };
                let name_len = ev.len as usize;
                let name_bytes = &bytes[off + head..(off + head + name_len).min(n)];
                let name_end = name_bytes
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(name_bytes.len());
                let name = &name_bytes[..name_end];
                self.on_inotify(ev.wd, ev.mask, name);
                off += head + name_len;
            }
        }
    }

    fn on_inotify(&mut self, wd: i32, mask: u32, name: &[u8]) {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            self.need_full = Some(Full::Resync(
                "the inotify queue overflowed: rescanning".into(),
            ));
            return;
        }
        if Some(wd) == self.parent_wd {
            if mask & libc::IN_IGNORED != 0 {
                self.parent_wd = None;
            }
            if name == b"run" || mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF) != 0 {
                self.need_full.get_or_insert(Full::Quiet);
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
                self.need_full.get_or_insert(Full::Quiet);
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
                self.dirty.insert(name.to_owned());
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
            self.dirty.insert(marker);
            return;
        }
        let relevant = [METADATA, SOCKET_FILE, PID_FILE]
            .iter()
            .any(|f| f.to_bytes() == name);
        if relevant || mask & libc::IN_DELETE_SELF != 0 {
            self.dirty.insert(marker);
        }
    }

    fn rm_watch(&self, wd: i32) {
        if let Some(fd) = &self.inotify {
            // SAFETY: valid descriptor; a stale wd only yields EINVAL.
            let _ = unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
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
        if let Some(r) = self.retry_at {
            if now < r {
                return Ok(());
            }
            self.retry_at = None;
        }
        let result = if let Some(full) = self.need_full.take() {
            let resync = matches!(full, Full::Resync(_));
            if let Full::Resync(reason) = full {
                self.push(Event::Resync {
                    reason,
                    at: now_rfc3339(),
                });
            }
            // A resync is complete only when its scan is; a scan that
            // fails is retried (quietly: its resync is out already).
            let r = self.full_scan();
            match &r {
                Ok(()) if resync => self.push(Event::Synced { at: now_rfc3339() }),
                Ok(()) => {}
                Err(_) => {
                    self.need_full.get_or_insert(Full::Quiet);
                }
            }
            r
        } else if now >= self.next_rescan || (now >= self.next_probe && self.polling()) {
            self.full_scan()
        } else if now >= self.next_probe {
            let mut names: BTreeSet<String> = self.known.keys().cloned().collect();
            names.append(&mut self.dirty);
            self.next_probe = now + self.opts.probe_interval;
            self.examine(names)
        } else if !self.dirty.is_empty() {
            let names = std::mem::take(&mut self.dirty);
            self.examine(names)
        } else {
            Ok(())
        };
        if result.is_err() {
            self.retry_at = Some(now + self.opts.probe_interval);
        }
        result
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
        let now = Instant::now();
        self.next_probe = now + self.opts.probe_interval;
        self.next_rescan = now + self.opts.rescan_interval;
        self.dirty.clear();
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
        if let Ok(wd) = add_watch(inotify.as_fd(), &path, mask) {
            self.parent_wd = Some(wd);
        }
    }

    fn ensure_run_watch(&mut self, run: BorrowedFd<'_>) {
        if self.run_wd.is_some() {
            return;
        }
        let Some(inotify) = self.inotify.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        // SAFETY: the descriptor lives as long as self.
        let inotify = unsafe { BorrowedFd::borrow_raw(inotify) };
        // Through the open descriptor, so the watch is on the directory
        // that was opened; by path only where /proc is missing.
        let via_fd =
            CString::new(format!("/proc/thread-self/fd/{}", run.as_raw_fd())).expect("no NUL");
        let r = add_watch(inotify, &via_fd, RUN_MASK).or_else(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                let p = sys::cpath(&self.run_path)?;
                add_watch(inotify, &p, RUN_MASK | libc::IN_DONT_FOLLOW)
            } else {
                Err(e)
            }
        });
        match r {
            Ok(wd) => self.run_wd = Some(wd),
            Err(e) => self.degrade("watch-run", watch_failure("run/", &e)),
        }
    }

    fn ensure_dir_watch(&mut self, run: BorrowedFd<'_>, name: &CStr) {
        let Some(inotify) = self.inotify.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        if self.watch_limit {
            return;
        }
        // SAFETY: the descriptor lives as long as self.
        let inotify = unsafe { BorrowedFd::borrow_raw(inotify) };
        let mut path = format!("/proc/thread-self/fd/{}/", run.as_raw_fd()).into_bytes();
        path.extend_from_slice(name.to_bytes());
        let path = CString::new(path).expect("no NUL");
        let Ok(name) = name.to_str() else { return };
        match add_watch(inotify, &path, MARKER_MASK) {
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
                self.degrade("watch-marker", watch_failure("a marker directory", &e));
            }
            // Gone, not a directory, or not ours to watch: the probe
            // rounds judge it all the same.
            Err(_) => {}
        }
    }

    /// Announces a degradation once: a `resync` with the reason, a rescan,
    /// `synced`.
    fn degrade(&mut self, key: &'static str, reason: String) {
        if !self.announced.insert(key) {
            return;
        }
        self.need_full = Some(match self.need_full.take() {
            Some(Full::Resync(earlier)) => Full::Resync(format!("{earlier}; {reason}")),
            Some(Full::Quiet) | None => Full::Resync(reason),
        });
    }

    /// Compares a scan of `scope` (`None`: all of `run/`) with the known
    /// state and queues the events, sorted by sandbox id.
    fn apply(&mut self, scan: Scan, scope: Option<&BTreeSet<String>>) {
        let at = now_rfc3339();
        let collected: HashSet<String> = scan.collected.into_iter().collect();
        let mut seen: HashSet<String> = HashSet::new();
        let mut events: Vec<Event> = Vec::new();
        for report in scan.reports {
            let Some(entry) = report.entry else { continue };
            let name = report.name;
            if scope.is_some_and(|s| !s.contains(&name)) {
                continue;
            }
            seen.insert(name.clone());
            self.track_pid(&name, &entry);
            match self.known.get(&name) {
                None => events.push(Event::Appeared {
                    sandbox_id: name.clone(),
                    entry: entry.clone(),
                    at: at.clone(),
                }),
                Some(old) if !same_sidecar(old, &entry) => events.push(Event::Changed {
                    sandbox_id: name.clone(),
                    entry: entry.clone(),
                    previous: old.state,
                    at: at.clone(),
                }),
                Some(_) => {}
            }
            self.known.insert(name, entry);
        }
        let vanished: Vec<String> = match scope {
            None => self
                .known
                .keys()
                .filter(|k| !seen.contains(*k))
                .cloned()
                .collect(),
            Some(s) => s
                .iter()
                .filter(|k| !seen.contains(*k) && self.known.contains_key(*k))
                .cloned()
                .collect(),
        };
        for name in vanished {
            self.known.remove(&name);
            self.drop_pidfd(&name);
            let reason = if collected.contains(&name) {
                GoneReason::Collected
            } else {
                GoneReason::Removed
            };
            events.push(Event::Gone {
                sandbox_id: name,
                reason,
                at: at.clone(),
            });
        }
        events.sort_by(|a, b| a.sandbox_id().cmp(&b.sandbox_id()));
        self.queue.extend(events);
    }

    /// Holds a pidfd for a sidecar that is not stopped, so its exit wakes
    /// the watcher; none for a stopped one.
    fn track_pid(&mut self, name: &str, entry: &SidecarEntry) {
        if entry.state == State::Stopped {
            self.drop_pidfd(name);
            return;
        }
        if self.pids.get(name).is_some_and(|p| p.pid == entry.pid) {
            return;
        }
        self.drop_pidfd(name);
        if !self.pidfds_ok {
            return;
        }
        match pidfd_open(entry.pid) {
            Ok(fd) => {
                let token = self.next_token;
                self.next_token += 1;
                if epoll_add(self.epoll.as_fd(), fd.as_fd(), token).is_ok() {
                    self.tokens.insert(token, name.to_owned());
                    self.pids.insert(
                        name.to_owned(),
                        PidWatch {
                            token,
                            pid: entry.pid,
                            fd,
                        },
                    );
                }
            }
            // Exited since it was judged (or is not ours to see): the next
            // probe round judges it again.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                self.pidfds_ok = false;
                self.degrade(
                    "pidfd",
                    format!("pidfds are unavailable ({e}): exits are seen at the probe interval"),
                );
            }
            Err(e) => {
                self.degrade(
                    "pidfd-open",
                    format!(
                        "cannot hold a pidfd for every sidecar ({e}): some exits are seen at the probe interval"
                    ),
                );
            }
        }
    }

    fn drop_pidfd(&mut self, name: &str) {
        if let Some(p) = self.pids.remove(name) {
            epoll_del(self.epoll.as_fd(), p.fd.as_fd());
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

/// The same sidecar in the same state: everything but the uptime equal.
fn same_sidecar(a: &SidecarEntry, b: &SidecarEntry) -> bool {
    let mut b = b.clone();
    b.uptime_secs = a.uptime_secs;
    *a == b
}
