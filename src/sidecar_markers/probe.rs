//! Probing endpoints without ever blocking, and without running out of
//! descriptors.
//!
//! Every connect is non-blocking. A Unix socket answers at once (connected,
//! missing, refused, or `EAGAIN` when its backlog is full). A TCP connect
//! that is still in progress joins a pending set; pending connects are
//! awaited together with `poll(2)`, each against its own deadline
//! (start + timeout). At most a *window* of connects is in flight at once
//! (half the descriptor soft limit, less headroom, shared between worker
//! threads): when the window is full the oldest are settled first, so N
//! slow endpoints cost about ⌈N / window⌉ timeouts and never `EMFILE`.
//!
//! Only the path *lookup* of a Unix socket can block (a hung FUSE mount on
//! the way). The marker's own `sidecar.sock` is opened `O_PATH` beneath the
//! marker directory without crossing a mount or following a symlink, and
//! connected to through its descriptor's path (`sys::fd_path`), so no
//! lookup leaves the marker.
//! Any other socket path (an explicit `listen`, a symlinked or
//! mounted-over `sidecar.sock`) is resolved from the dentry cache alone
//! and judged by the fleet probe where both can answer without waiting on
//! a filesystem, and otherwise looked up and connected to in a child
//! process waited for
//! by a helper thread that is abandoned at the deadline (so a stuck lookup
//! never keeps this process from exiting). One lookup per path is in
//! flight process-wide: a path (or a path in the directory of a path)
//! whose lookup has outlived the timeout is *stuck* and answers `timeout`
//! at once without a new lookup; at most [`MAX_PATH_THREADS`] lookups are
//! in flight, and past that probes report `probe_unavailable`.
//!
//! The fleet probe ([`Fleet`], [`FleetSnapshot`]): one socket-diagnostics
//! dump per scan answers every listening Unix socket file of this network
//! namespace by device and inode, without connecting; whatever it cannot
//! answer for certain is connected to (docs/design.md, "Probing").
//!
//! Every failure is the endpoint's outcome: a probe never fails a call.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::endpoint::Endpoint;
use super::model::{Reason, State};
use super::read::{DEFAULT_SOCKET, Loc};
use super::sys;
use super::sys::socket::{Socket, UnixAddr};

/// What probing an endpoint found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The endpoint accepted a connection.
    Serving,
    /// The fleet probe saw the socket listening with room in its backlog
    /// (no connection made): judged as [`Outcome::Serving`].
    Listening,
    Missing,
    Refused,
    BacklogFull,
    Timeout,
    PermissionDenied,
    NotASocket,
    Unreachable,
    /// `connect` failed with this errno, which says nothing about the
    /// sidecar (e.g. `EINVAL` for a link-local address without scope).
    ConnectError(i32),
    /// Out of descriptors, or the path-probe threads are all stuck.
    Unavailable(&'static str),
    /// A lookup of the endpoint's path, started by an earlier probe in this
    /// process, has outlived the probe timeout and is still blocked: no
    /// second lookup is started. Judged as a [`Outcome::Timeout`].
    Stuck,
}

impl Outcome {
    /// Whether the endpoint serves ([`Outcome::Serving`] or
    /// [`Outcome::Listening`]).
    pub fn serves(self) -> bool {
        matches!(self, Outcome::Serving | Outcome::Listening)
    }

    pub fn state(self) -> State {
        match self {
            Outcome::Serving | Outcome::Listening => State::Running,
            Outcome::PermissionDenied | Outcome::Unavailable(_) => State::Unknown,
            _ => State::Unhealthy,
        }
    }

    pub fn reason(self) -> Reason {
        match self {
            Outcome::Serving | Outcome::Listening => Reason::Serving,
            Outcome::Missing => Reason::EndpointMissing,
            Outcome::Refused => Reason::ConnectionRefused,
            Outcome::BacklogFull => Reason::BacklogFull,
            Outcome::Timeout | Outcome::Stuck => Reason::Timeout,
            Outcome::PermissionDenied => Reason::PermissionDenied,
            Outcome::NotASocket => Reason::NotASocket,
            Outcome::Unreachable => Reason::Unreachable,
            Outcome::ConnectError(_) => Reason::ConnectError,
            Outcome::Unavailable(_) => Reason::ProbeUnavailable,
        }
    }

    /// One line for a person.
    pub fn detail(self) -> String {
        match self {
            Outcome::Serving => "the endpoint accepted a connection".into(),
            Outcome::Listening => "the socket is listening with room in its backlog \
                (the kernel's socket diagnostics; no connection made)"
                .into(),
            Outcome::Missing => "no socket at the endpoint".into(),
            Outcome::Refused => "nothing accepts connections at the endpoint".into(),
            Outcome::BacklogFull => "the socket's accept backlog is full".into(),
            Outcome::Timeout => "the endpoint did not answer within the probe timeout".into(),
            Outcome::PermissionDenied => "permission denied connecting to the endpoint".into(),
            Outcome::NotASocket => "the endpoint is not a socket".into(),
            Outcome::Unreachable => "the endpoint's network is unreachable".into(),
            Outcome::ConnectError(errno) => format!(
                "connect failed: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
            Outcome::Unavailable(why) => format!("the probe could not be made: {why}"),
            Outcome::Stuck => "an earlier lookup of the endpoint's path has not returned \
                (a filesystem on the way does not answer); no second lookup is started"
                .into(),
        }
    }
}

/// What a failed connect says about the endpoint. Our own shortages are
/// `Unavailable`; an errno we do not know is `ConnectError`.
fn classify(errno: i32) -> Outcome {
    match errno {
        libc::EACCES | libc::EPERM => Outcome::PermissionDenied,
        libc::ENOENT | libc::ENOTDIR => Outcome::Missing,
        libc::ECONNREFUSED | libc::ECONNRESET | libc::ECONNABORTED => Outcome::Refused,
        libc::EAGAIN => Outcome::BacklogFull,
        libc::ETIMEDOUT => Outcome::Timeout,
        libc::ENOTSOCK | libc::EPROTOTYPE | libc::ENXIO => Outcome::NotASocket,
        libc::ENETUNREACH
        | libc::EHOSTUNREACH
        | libc::EADDRNOTAVAIL
        | libc::ENETDOWN
        | libc::EHOSTDOWN => Outcome::Unreachable,
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
            Outcome::Unavailable("out of descriptors or memory")
        }
        other => Outcome::ConnectError(other),
    }
}

/// The errno of a failed call, for [`classify`].
fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// One non-blocking connect to the Unix socket at `path` (short enough for
/// `sun_path`). Never waits, except in the path lookup itself. The socket
/// goes to `fds`.
fn connect_unix(path: &[u8], fds: &mut sys::MarkerFds) -> Outcome {
    let Some(addr) = UnixAddr::new(path) else {
        return Outcome::ConnectError(libc::ENAMETOOLONG);
    };
    let sock = match Socket::unix() {
        Ok(s) => s,
        Err(e) => return classify(errno_of(&e)),
    };
    let outcome = match sock.connect_unix(&addr) {
        Ok(()) => Outcome::Serving,
        Err(e) => classify(errno_of(&e)),
    };
    fds.keep(sock.into());
    outcome
}

/// Connects to the socket `fd` refers to (an `O_PATH` descriptor), through
/// its path [`sys::fd_path`]: the lookup ends at that descriptor's inode.
fn connect_via_fd(fd: BorrowedFd<'_>, fds: &mut sys::MarkerFds) -> Outcome {
    connect_unix(sys::fd_path(fd).as_bytes(), fds)
}

/// Connects to a Unix socket path the library does not control, without
/// ever blocking this thread or this process on the path's lookup:
///
/// 1. resolved from the dentry cache alone ([`sys::lookup::open_cached`]),
///    it is judged by the fleet probe where the dump answers
///    ([`Prober::connect_cached`]), or found missing;
/// 2. otherwise the lookup runs in a child process
///    ([`sys::lookup::ChildConnect`]) waited for by a helper thread, and is
///    shared: a probe of a path whose lookup is already in flight in this
///    process joins it instead of starting another; once that lookup has
///    outlived the caller's timeout the path is *stuck* and the probe
///    answers [`Outcome::Stuck`] at once, as does a probe of any path in
///    the directory of a stuck path. At most [`MAX_PATH_THREADS`] lookups
///    are in flight.
fn connect_unix_path_guarded(path: PathBuf, deadline: Instant, timeout: Duration) -> PathProbe {
    let mut flights = FLIGHTS.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        // A flight that has answered is landing: its answer is older than
        // this probe, so it is neither joined nor stuck.
        if let Some((_, f)) = flights
            .iter()
            .find(|(p, f)| *p == path && !f.has_answered())
        {
            if now.saturating_duration_since(f.started) >= timeout {
                return PathProbe::Done(Outcome::Stuck);
            }
            return PathProbe::Waiting(f.clone());
        }
        let stuck_dir = flights.iter().any(|(p, f)| {
            !f.has_answered()
                && now.saturating_duration_since(f.started) >= timeout
                && p.parent().is_some_and(|d| path.starts_with(d))
        });
        if stuck_dir {
            return PathProbe::Done(Outcome::Stuck);
        }
        if flights.len() < MAX_PATH_THREADS {
            break;
        }
        if now >= deadline {
            return PathProbe::Done(Outcome::Unavailable(
                "too many probes are stuck on paths that do not answer",
            ));
        }
        flights = FLIGHT_ENDED
            .wait_timeout(flights, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    let flight = Arc::new(Flight {
        started: Instant::now(),
        answer: Mutex::new(None),
        answered: Condvar::new(),
    });
    flights.push((path.clone(), flight.clone()));
    drop(flights);
    let mine = flight.clone();
    let spawned = std::thread::Builder::new()
        .name("firma-path-probe".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let outcome = connect_path_in_child(&path);
            mine.answer(outcome);
            land(&mine);
        });
    match spawned {
        Ok(_) => PathProbe::Waiting(flight),
        Err(_) => {
            land(&flight);
            PathProbe::Done(Outcome::Unavailable("cannot start a probe thread"))
        }
    }
}

/// Step 2 of [`connect_unix_path_guarded`], on the helper thread: the
/// lookup and connect in a child process. A path too long for `sun_path`
/// is reached from its parent directory (the child's working directory).
fn connect_path_in_child(path: &Path) -> Outcome {
    let bytes = path.as_os_str().as_bytes();
    let started = match UnixAddr::new(bytes) {
        Some(addr) => sys::lookup::ChildConnect::start(None, &addr),
        None => {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Outcome::ConnectError(libc::ENAMETOOLONG);
            };
            let (Ok(dir), Some(addr)) = (sys::cpath(parent), UnixAddr::new(name.as_bytes())) else {
                return Outcome::ConnectError(libc::ENAMETOOLONG);
            };
            sys::lookup::ChildConnect::start(Some(&dir), &addr)
        }
    };
    match started.map(sys::lookup::ChildConnect::wait) {
        Ok(Ok(0)) => Outcome::Serving,
        Ok(Ok(errno)) => classify(errno),
        Ok(Err(_)) => Outcome::Unavailable("the lookup process ended without an answer"),
        // No child process allowed here (a seccomp filter refusing clone3
        // and clone with CLONE_PIDFD, kernels before 5.2): the lookup on
        // this helper thread, as before (a process whose thread is stuck
        // behind another lookup then cannot exit until it returns).
        Err(e) if [libc::ENOSYS, libc::EPERM, libc::EINVAL].contains(&errno_of(&e)) => {
            connect_path_blocking(path)
        }
        Err(e) => classify(errno_of(&e)),
    }
}

/// The body of a path probe made directly (may block in the path lookup):
/// for the marker's own `sidecar.sock` where `openat2` is missing, and on a
/// helper thread where no child process can be made.
fn connect_path_blocking(path: &Path) -> Outcome {
    let bytes = path.as_os_str().as_bytes();
    if UnixAddr::new(bytes).is_some() {
        return connect_unix(bytes, &mut sys::MarkerFds::default());
    }
    // Too long for sun_path: through the parent directory's descriptor.
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Outcome::ConnectError(libc::ENAMETOOLONG);
    };
    match sys::open(parent, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) {
        Ok(dir) => {
            let mut short = sys::fd_path(dir.as_fd()).into_bytes();
            short.push(b'/');
            short.extend_from_slice(name.as_bytes());
            connect_unix(&short, &mut sys::MarkerFds::default())
        }
        Err(e) => classify(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// Most path lookups that may be in flight at once, process-wide (each
/// holds a helper thread and a child process until its lookup returns).
pub(crate) const MAX_PATH_THREADS: usize = 64;

/// One path lookup in flight, shared by every probe of that path.
pub(crate) struct Flight {
    started: Instant,
    answer: Mutex<Option<Outcome>>,
    answered: Condvar,
}

impl Flight {
    fn has_answered(&self) -> bool {
        self.answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn answer(&self, outcome: Outcome) {
        *self.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.answered.notify_all();
    }

    /// The answer, waiting for it until `deadline`.
    fn wait_until(&self, deadline: Instant) -> Option<Outcome> {
        let mut answer = self.answer.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(o) = *answer {
                return Some(o);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            answer = self
                .answered
                .wait_timeout(answer, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The path lookups in flight in this process (at most
/// [`MAX_PATH_THREADS`], so a list).
static FLIGHTS: Mutex<Vec<(PathBuf, Arc<Flight>)>> = Mutex::new(Vec::new());
static FLIGHT_ENDED: Condvar = Condvar::new();

/// Takes `flight` out of [`FLIGHTS`]: its lookup returned.
fn land(flight: &Arc<Flight>) {
    let mut flights = FLIGHTS.lock().unwrap_or_else(|p| p.into_inner());
    flights.retain(|(_, f)| !Arc::ptr_eq(f, flight));
    FLIGHT_ENDED.notify_all();
}

enum PathProbe {
    Done(Outcome),
    Waiting(Arc<Flight>),
}

struct Pending {
    key: usize,
    sock: Socket,
    deadline: Instant,
}

struct PendingPath {
    key: usize,
    flight: Arc<Flight>,
    deadline: Instant,
}

/// Descriptors kept free for everything else the process does.
const FD_HEADROOM: u64 = 64;

/// How many TCP connects one prober keeps in flight, out of `workers`
/// probers sharing the process's descriptors: half of what the soft limit
/// leaves after the headroom (the other half covers the caller's own
/// descriptors), at least one.
pub(crate) fn window(workers: usize) -> usize {
    window_for(sys::nofile_soft_limit(), workers)
}

/// [`window`] for a soft limit `soft` (`None`: unlimited or unreadable,
/// taken as 2^20), between 1 and 2^16.
fn window_for(soft: Option<u64>, workers: usize) -> usize {
    let soft = soft.unwrap_or(1 << 20);
    let budget = soft.saturating_sub(FD_HEADROOM) / 2 / workers.max(1) as u64;
    budget.clamp(1, 1 << 16) as usize
}

/// The deadline of a probe started at `now`: `now + timeout`, or a year
/// from now when that is past what the clock can hold ("no deadline to
/// speak of": capped rather than overflowing).
fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// `poll(2)`'s timeout for `wait`: whole milliseconds rounded up, so a
/// sub-millisecond remainder never spins, at most `i32::MAX`.
fn poll_ms(wait: Duration) -> libc::c_int {
    wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
}

/// Runs probes for one call; `key` identifies the marker each belongs to.
pub(crate) struct Prober<'f> {
    /// The scan's fleet probe, consulted before connecting to a Unix
    /// socket file (`None`: connect only, as `get` does).
    fleet: Option<&'f Fleet>,
    timeout: Duration,
    window: usize,
    pending: Vec<Pending>,
    paths: Vec<PendingPath>,
    finished: Vec<(usize, Outcome)>,
}

impl<'f> Prober<'f> {
    pub fn new(timeout: Duration, window: usize, fleet: Option<&'f Fleet>) -> Self {
        Prober {
            fleet,
            timeout,
            window: window.max(1),
            pending: Vec::new(),
            paths: Vec::new(),
            finished: Vec::new(),
        }
    }

    fn deadline(&self) -> Instant {
        deadline_after(Instant::now(), self.timeout)
    }

    /// Waits for every TCP connect in flight (freeing their descriptors).
    pub fn settle_all(&mut self) {
        self.settle_until(0);
    }

    /// Whether any probe is still in flight.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Starts probing `endpoint` of the marker at `loc` (its directory is
    /// `marker_path`). `Some` when the outcome is known at once; the
    /// descriptors of a probe done at once go to `fds`.
    pub fn start(
        &mut self,
        key: usize,
        endpoint: &Endpoint,
        loc: Loc<'_>,
        marker_path: &Path,
        fds: &mut sys::MarkerFds,
    ) -> Option<Outcome> {
        match endpoint {
            Endpoint::MarkerSocket => {
                let rel = loc.rel(super::read::SOCKET_FILE);
                // Without O_NOFOLLOW, RESOLVE_NO_SYMLINKS refuses a symlink
                // as the last component too (ELOOP) instead of opening it.
                let opened = fds.open(|| {
                    sys::openat2(
                        loc.base(),
                        &rel,
                        libc::O_PATH | libc::O_CLOEXEC,
                        sys::RESOLVE_NO_XDEV_STRICT,
                    )
                });
                match opened {
                    Some(Ok(fd)) => {
                        if let Some(outcome) = self.judge_file(fd.as_fd()) {
                            fds.keep(fd);
                            return Some(outcome);
                        }
                        let outcome = connect_via_fd(fd.as_fd(), fds);
                        if !matches!(outcome, Outcome::Unavailable(_)) {
                            fds.keep(fd);
                            return Some(outcome);
                        }
                        drop(fd);
                        // Out of descriptors: give back the marker's own too.
                        fds.close_now();
                        self.retry_after_settling(|| connect_via_fd_at(loc, &rel))
                    }
                    // A symlink or a mount point: a path we do not control.
                    Some(Err(e)) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EXDEV)) => {
                        self.start_path(key, marker_path.join(DEFAULT_SOCKET))
                    }
                    Some(Err(e)) => Some(classify(e.raw_os_error().unwrap_or(libc::EIO))),
                    // No openat2 (kernels before 5.6, valgrind): a socket
                    // that lstat shows in the marker is connected to by
                    // path at once; a symlink goes to a guarded thread.
                    None => match sys::lstatat(loc.base(), &rel) {
                        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                            self.start_path(key, marker_path.join(DEFAULT_SOCKET))
                        }
                        Ok(_) => Some(connect_path_blocking(&marker_path.join(DEFAULT_SOCKET))),
                        Err(e) => Some(classify(e.raw_os_error().unwrap_or(libc::EIO))),
                    },
                }
            }
            Endpoint::Unix(path) => self.start_path(key, path.clone()),
            Endpoint::Tcp(addr) => self.connect_tcp(key, addr),
        }
    }

    /// Runs `f` once more after settling what is in flight, when the first
    /// try ran out of descriptors.
    fn retry_after_settling(&mut self, f: impl FnOnce() -> Outcome) -> Option<Outcome> {
        self.settle_until(0);
        Some(f())
    }

    /// The fleet probe's answer for the socket file `fd` (an `O_PATH`
    /// descriptor), if it has one.
    fn judge_file(&self, fd: BorrowedFd<'_>) -> Option<Outcome> {
        let snap = self.fleet?.snapshot()?;
        snap.judge(&sys::fstat(fd).ok()?)
    }

    fn start_path(&mut self, key: usize, path: PathBuf) -> Option<Outcome> {
        if let Some(outcome) = self.connect_cached(&path) {
            return Some(outcome);
        }
        let deadline = self.deadline();
        match connect_unix_path_guarded(path, deadline, self.timeout) {
            PathProbe::Done(o) => Some(o),
            PathProbe::Waiting(flight) => {
                self.paths.push(PendingPath {
                    key,
                    flight,
                    deadline,
                });
                None
            }
        }
    }

    /// Step 1 of a path probe (see [`connect_unix_path_guarded`]): the
    /// path resolved from the dentry cache alone and judged by the fleet
    /// probe from the attributes the kernel has cached; `None` (a guarded
    /// lookup and connect) when either cannot answer. Nothing here waits on
    /// a filesystem: a connect, even through a cached path, may (a FUSE
    /// permission check asks the daemon), so it is never made here.
    fn connect_cached(&self, path: &Path) -> Option<Outcome> {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        match sys::lookup::open_cached(&c) {
            Ok(Some(fd)) => {
                let snap = self.fleet?.snapshot()?;
                snap.judge(&sys::lookup::fstat_cached(fd.as_fd()).ok()?)
            }
            Ok(None) => None,
            Err(e) => Some(classify(errno_of(&e))),
        }
    }

    fn socket(&mut self, addr: &SocketAddr) -> Result<Socket, Outcome> {
        match Socket::tcp_for(addr) {
            Ok(s) => Ok(s),
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && !self.pending.is_empty() =>
            {
                self.settle_until(0);
                Socket::tcp_for(addr).map_err(|e| classify(errno_of(&e)))
            }
            Err(e) => Err(classify(errno_of(&e))),
        }
    }

    fn connect_tcp(&mut self, key: usize, addr: &SocketAddr) -> Option<Outcome> {
        if self.pending.len() >= self.window {
            self.settle_until(self.window - 1);
        }
        let sock = match self.socket(addr) {
            Ok(s) => s,
            Err(o) => return Some(o),
        };
        let deadline = self.deadline();
        let Err(e) = sock.connect_ip(addr) else {
            return Some(Outcome::Serving);
        };
        match errno_of(&e) {
            libc::EINPROGRESS => {
                self.pending.push(Pending {
                    key,
                    sock,
                    deadline,
                });
                None
            }
            e => Some(classify(e)),
        }
    }

    /// Waits until at most `max` TCP connects are pending: the finished
    /// and the expired (timeouts) leave the set.
    fn settle_until(&mut self, max: usize) {
        while self.pending.len() > max {
            let now = Instant::now();
            let mut i = 0;
            while i < self.pending.len() {
                if self.pending[i].deadline <= now {
                    let p = self.pending.swap_remove(i);
                    self.finished.push((p.key, Outcome::Timeout));
                } else {
                    i += 1;
                }
            }
            if self.pending.len() <= max {
                break;
            }
            let wait = self
                .pending
                .iter()
                .map(|p| p.deadline - now)
                .min()
                .unwrap_or_default();
            let ms = poll_ms(wait);
            let mut fds: Vec<libc::pollfd> = self
                .pending
                .iter()
                .map(|p| libc::pollfd {
                    fd: p.sock.as_fd().as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            let n = match sys::poll(&mut fds, ms) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => {
                    // poll itself failed (memory): what is pending cannot
                    // be judged this time.
                    for p in self.pending.drain(..) {
                        self.finished
                            .push((p.key, Outcome::Unavailable("poll(2) failed")));
                    }
                    break;
                }
            };
            if n == 0 {
                continue;
            }
            // Walk backwards so swap_remove keeps earlier indices valid.
            for idx in (0..fds.len()).rev() {
                if fds[idx].revents == 0 {
                    continue;
                }
                let p = self.pending.swap_remove(idx);
                let outcome = match p.sock.take_error() {
                    Ok(0) => Outcome::Serving,
                    Ok(e) => classify(e),
                    Err(e) => classify(errno_of(&e)),
                };
                self.finished.push((p.key, outcome));
            }
        }
    }

    /// Waits for everything still pending and returns every deferred
    /// outcome.
    pub fn finish(mut self) -> Vec<(usize, Outcome)> {
        self.settle_until(0);
        for p in std::mem::take(&mut self.paths) {
            let outcome = p.flight.wait_until(p.deadline).unwrap_or(Outcome::Timeout);
            self.finished.push((p.key, outcome));
        }
        self.finished
    }
}

/// Re-opens the marker socket and connects (after a descriptor shortage).
fn connect_via_fd_at(loc: Loc<'_>, rel: &std::ffi::CStr) -> Outcome {
    match sys::openat2(
        loc.base(),
        rel,
        libc::O_PATH | libc::O_CLOEXEC,
        sys::RESOLVE_NO_XDEV_STRICT,
    ) {
        Some(Ok(fd)) => connect_via_fd(fd.as_fd(), &mut sys::MarkerFds::default()),
        Some(Err(e)) => classify(e.raw_os_error().unwrap_or(libc::EIO)),
        None => Outcome::Unavailable("openat2 became unavailable"),
    }
}

/// How a scan probes Unix socket files: `FIRMA_PROBE_METHOD=connect` in the
/// environment forces a `connect` for every endpoint (for comparing the two
/// methods, or to rule the fleet probe out); anything else, or nothing,
/// uses the fleet probe where it can answer. Read once per process.
pub(crate) fn connect_only() -> bool {
    static CONNECT_ONLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CONNECT_ONLY
        .get_or_init(|| std::env::var_os("FIRMA_PROBE_METHOD").is_some_and(|m| m == "connect"))
}

/// A scan's fleet probe: one [`FleetSnapshot`], taken when the scan meets
/// its first Unix socket file and shared by its workers; or why there is
/// none (refused by the kernel, forced off), which `inspect` reports.
pub(crate) struct Fleet {
    timeout: Duration,
    snap: std::sync::OnceLock<std::result::Result<FleetSnapshot, String>>,
}

impl Fleet {
    /// A fleet probe whose dump may take up to `timeout`.
    pub fn new(timeout: Duration) -> Fleet {
        Fleet {
            timeout,
            snap: std::sync::OnceLock::new(),
        }
    }

    /// The snapshot, taken at the first call; `None` when there is none.
    pub fn snapshot(&self) -> Option<&FleetSnapshot> {
        self.taken().as_ref().ok()
    }

    fn taken(&self) -> &std::result::Result<FleetSnapshot, String> {
        self.snap.get_or_init(|| {
            if connect_only() {
                return Err("FIRMA_PROBE_METHOD=connect".into());
            }
            FleetSnapshot::take(deadline_after(Instant::now(), self.timeout))
                .map_err(|e| format!("socket diagnostics unavailable: {e}"))
        })
    }

    /// Why the Unix sockets of this scan are probed by `connect`, when there
    /// is no snapshot (taking it if not yet tried).
    pub fn refused(&self) -> Option<&str> {
        self.taken().as_ref().err().map(String::as_str)
    }
}

/// Every listening Unix stream socket of this reader's network namespace,
/// from one `NETLINK_SOCK_DIAG` dump ([`sys::sock_diag`]), by the device
/// and inode of its socket file: the batch probe behind `list`, `inspect`
/// and each round of `watch` (docs/design.md, "Probing").
pub(crate) struct FleetSnapshot {
    /// `None`: two listeners claim the same file (one unlinked, its inode
    /// number reused): ambiguous, so `connect` decides.
    by_file: std::collections::HashMap<(u64, u32), Option<sys::sock_diag::Listener>>,
    euid: u32,
}

impl FleetSnapshot {
    /// One dump, before `deadline`.
    pub fn take(deadline: Instant) -> std::io::Result<FleetSnapshot> {
        let mut by_file = std::collections::HashMap::new();
        for l in sys::sock_diag::unix_listeners(deadline)? {
            by_file
                .entry((l.dev, l.ino))
                .and_modify(|e| *e = None)
                .or_insert(Some(l));
        }
        Ok(FleetSnapshot {
            by_file,
            euid: sys::geteuid(),
        })
    }

    /// What a `connect` to the socket file `st` (`fstat` of the descriptor
    /// the probe's safe lookup opened) would find, when the dump can say
    /// for certain: a stream listener there with room in its backlog is
    /// [`Outcome::Listening`] (judged as serving), with a full one [`Outcome::BacklogFull`] (as
    /// the kernel decides: more waiting than the backlog). `None` (connect
    /// instead) for anything else: not a socket, no listener in this
    /// network namespace, a seqpacket listener, an inode number too wide
    /// for the dump, or a reader who is neither root nor the file's owner
    /// with write permission (so `connect`'s permission check is not
    /// second-guessed).
    pub fn judge(&self, st: &libc::stat) -> Option<Outcome> {
        self.judge_socket(self.socket_file(st)?)
    }

    /// The socket file `st` as the dump names it, when the dump may answer
    /// for it at all: a socket, an inode number that fits the dump's 32
    /// bits, and a reader who is root or the file's owner with write
    /// permission. `None` otherwise (connect instead).
    pub fn socket_file(&self, st: &libc::stat) -> Option<SocketFile> {
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return None;
        }
        let may_write =
            self.euid == 0 || (st.st_uid == self.euid && st.st_mode & libc::S_IWUSR != 0);
        if !may_write {
            return None;
        }
        Some(SocketFile {
            dev: st.st_dev,
            ino: u32::try_from(st.st_ino).ok()?,
        })
    }

    /// [`Self::judge`] of a socket file named before by
    /// [`Self::socket_file`] (a watcher keeps that name while inotify says
    /// the file is the same: docs/design.md, "Events").
    pub fn judge_socket(&self, file: SocketFile) -> Option<Outcome> {
        let l = (*self.by_file.get(&(file.dev, file.ino))?)?;
        if l.kind != libc::SOCK_STREAM as u8 {
            return None;
        }
        Some(if l.pending > l.backlog {
            Outcome::BacklogFull
        } else {
            Outcome::Listening
        })
    }
}

/// A socket file as the dump names it: the device of the file system it
/// lives on and its inode number (truncated by the kernel to 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketFile {
    dev: u64,
    ino: u32,
}

/// The marker's own socket file (`<marker>/sidecar.sock`), opened as
/// [`Prober::start`] opens it (`O_PATH`, beneath the marker, no symlink,
/// no mount crossed) and `fstat`ed. `None` where it cannot be opened so
/// (missing, a symlink, a mount, no `openat2`): the prober then says what
/// it is.
pub(crate) fn stat_marker_socket(loc: Loc<'_>) -> Option<libc::stat> {
    let rel = loc.rel(super::read::SOCKET_FILE);
    let fd = sys::openat2(
        loc.base(),
        &rel,
        libc::O_PATH | libc::O_CLOEXEC,
        sys::RESOLVE_NO_XDEV_STRICT,
    )?
    .ok()?;
    sys::fstat(fd.as_fd()).ok()
}

/// The process listening on the marker's own socket (`<marker>/sidecar.sock`,
/// opened beneath the marker without following a symlink or crossing a
/// mount), pinned: a pidfd from `SO_PEERPIDFD` and its pid as this reader's
/// pid namespace sees it. `None` when there is no such proof here: no
/// socket, nobody accepting connections, a kernel without `SO_PEERPIDFD`,
/// a listener that has exited or lives in a pid namespace this reader
/// cannot see. (docs/design.md, "Trust": how it combines with the identity
/// fields.)
pub(crate) fn socket_listener(loc: Loc<'_>) -> Option<(OwnedFd, u32)> {
    let rel = loc.rel(super::read::SOCKET_FILE);
    let path = sys::openat2(
        loc.base(),
        &rel,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        sys::RESOLVE_NO_XDEV_STRICT,
    )?
    .ok()?;
    let st = sys::fstat(path.as_fd()).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return None;
    }
    let addr = UnixAddr::new(sys::fd_path(path.as_fd()).as_bytes())?;
    let sock = Socket::unix().ok()?;
    // A Unix stream connect completes at once or fails (a full backlog:
    // EAGAIN); it never waits here.
    sock.connect_unix(&addr).ok()?;
    let pidfd = sock.peer_pidfd().ok()?;
    let pid = pidfd_pid(pidfd.as_fd())?;
    Some((pidfd, pid))
}

/// The pid a pidfd names in this reader's pid namespace (`Pid:` of its
/// fdinfo); `None` when the process has exited (-1) or is not visible here
/// (0).
pub(crate) fn pidfd_pid(pidfd: BorrowedFd<'_>) -> Option<u32> {
    let pid: i64 = sys::proc_field(&sys::fdinfo(pidfd).ok()?, "Pid:")?;
    u32::try_from(pid).ok().filter(|&p| p > 0)
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
