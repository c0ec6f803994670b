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
//! at once without a new lookup; at most [`MAX_PATH_THREADS`](path::MAX_PATH_THREADS) lookups are
//! in flight, and past that probes report `probe_unavailable`.
//!
//! The fleet probe ([`Fleet`], [`FleetSnapshot`](fleet::FleetSnapshot)): one socket-diagnostics
//! dump per scan answers every listening Unix socket file of this network
//! namespace by device and inode, without connecting; whatever it cannot
//! answer for certain is connected to (docs/design.md, "Probing").
//!
//! Every failure is the endpoint's outcome: a probe never fails a call.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::endpoint::Endpoint;
use super::model::{Reason, State};
use super::read::{DEFAULT_SOCKET, Loc};
use super::sys;
use super::sys::socket::{Socket, UnixAddr};

mod fleet;
mod listener;
mod path;

pub(crate) use fleet::{Fleet, SocketFile, stat_marker_socket};
pub(crate) use listener::{pidfd_pid, socket_listener};
use path::{Flight, PathProbe, connect_path_blocking, connect_unix_path_guarded};

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

#[cfg(test)]
mod path_tests;
#[cfg(test)]
mod socket_tests;
#[cfg(test)]
mod tests;
