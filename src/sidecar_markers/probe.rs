//! Probing endpoints without ever blocking.
//!
//! Every connect is non-blocking. A Unix socket answers at once (connected,
//! missing, refused, or `EAGAIN` when its backlog is full). A TCP connect
//! that is still in progress joins a pending set; all pending connects are
//! then awaited together with `poll(2)`, each against its own deadline
//! (start + timeout), so many slow endpoints cost about one timeout in all.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::State;
use super::markers::{DEFAULT_SOCKET, Endpoint, Loc};

/// Result of starting a probe.
pub(crate) enum Started {
    Done(State),
    Pending,
}

struct Pending {
    key: usize,
    sock: OwnedFd,
    deadline: Instant,
}

/// Runs probes for one call; `key` identifies the marker each belongs to.
pub(crate) struct Prober {
    timeout: Duration,
    pending: Vec<Pending>,
    finished: Vec<(usize, State)>,
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// What a failed connect says about the endpoint, or `None` when the error
/// is ours (out of descriptors, memory) and must be reported.
fn classify_connect_error(errno: i32) -> Option<State> {
    match errno {
        libc::EACCES | libc::EPERM => Some(State::Unknown),
        libc::ENOENT
        | libc::ECONNREFUSED
        | libc::EAGAIN
        | libc::ETIMEDOUT
        | libc::ENOTDIR
        | libc::ENOTSOCK
        | libc::EPROTOTYPE
        | libc::ELOOP
        | libc::ENAMETOOLONG
        | libc::ECONNRESET
        | libc::ECONNABORTED
        | libc::ENETUNREACH
        | libc::EHOSTUNREACH
        | libc::EADDRNOTAVAIL
        | libc::ENETDOWN
        | libc::EHOSTDOWN => Some(State::Unhealthy),
        _ => None,
    }
}

/// An error of the endpoint becomes its state; any other error is ours.
fn classify_or_err(e: io::Error) -> io::Result<State> {
    match e.raw_os_error().and_then(classify_connect_error) {
        Some(state) => Ok(state),
        None => Err(e),
    }
}

const PATH_DIR_FLAGS: libc::c_int =
    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

fn new_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(last_err());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn proc_self_fd_works() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Whether a Unix socket path is connected to as it is: it fits `sun_path`,
/// or there is no `/proc/self/fd` to shorten it through.
fn connectable_as_is(path: &[u8]) -> bool {
    sockaddr_un(path).is_some() || !proc_self_fd_works()
}

fn sockaddr_un(path: &[u8]) -> Option<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.is_empty() || path.len() >= addr.sun_path.len() || path.contains(&0) {
        return None;
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(path) {
        *dst = src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    Some((addr, len as libc::socklen_t))
}

impl Prober {
    pub fn new(timeout: Duration) -> Self {
        Prober {
            timeout,
            pending: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// Starts probing `endpoint` of the marker at `loc` (its directory is
    /// `marker_path`). An `Err` is an I/O failure of ours, not the endpoint's.
    pub fn start(
        &mut self,
        key: usize,
        endpoint: &Endpoint,
        loc: Loc<'_>,
        marker_path: &Path,
    ) -> io::Result<Started> {
        let state = match endpoint {
            Endpoint::MarkerSocket => {
                let path = marker_path.join(DEFAULT_SOCKET);
                let bytes = path.as_os_str().as_bytes();
                if connectable_as_is(bytes) {
                    self.connect_unix(bytes)?
                } else {
                    // Too long for sun_path: through the marker directory.
                    let name = DEFAULT_SOCKET.as_bytes();
                    match loc {
                        Loc::Dir(dir) => self.connect_in_dir(dir, name)?,
                        Loc::Entry { run, name: dir } => {
                            match super::sys::openat(run, dir, PATH_DIR_FLAGS, 0) {
                                Ok(dir) => self.connect_in_dir(dir.as_fd(), name)?,
                                Err(e) => classify_or_err(e)?,
                            }
                        }
                    }
                }
            }
            Endpoint::Unix(path) => self.connect_unix_path(path)?,
            Endpoint::Tcp(addr) => match self.connect_tcp(key, addr)? {
                Some(state) => state,
                None => return Ok(Started::Pending),
            },
        };
        Ok(Started::Done(state))
    }

    fn connect_unix_path(&mut self, path: &Path) -> io::Result<State> {
        let bytes = path.as_os_str().as_bytes();
        if connectable_as_is(bytes) {
            return self.connect_unix(bytes);
        }
        // Too long for sun_path: go through the parent directory's descriptor.
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(State::Unhealthy);
        };
        match super::sys::open(parent, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) {
            Ok(dir) => self.connect_in_dir(dir.as_fd(), name.as_bytes()),
            Err(e) => classify_or_err(e),
        }
    }

    /// Connects to socket `name` in the open directory `dir`, through
    /// `/proc/self/fd/<dir>/<name>`: short whatever the directory's path.
    fn connect_in_dir(&mut self, dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<State> {
        let mut short = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        short.extend_from_slice(name);
        self.connect_unix(&short)
    }

    fn connect_unix(&mut self, path: &[u8]) -> io::Result<State> {
        let Some((addr, len)) = sockaddr_un(path) else {
            return Ok(State::Unhealthy);
        };
        let sock = self.socket(libc::AF_UNIX)?;
        // SAFETY: addr/len describe a valid sockaddr_un.
        let rc = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if rc == 0 {
            return Ok(State::Running);
        }
        let err = last_err();
        match err.raw_os_error().and_then(classify_connect_error) {
            Some(state) => Ok(state),
            None => Err(err),
        }
    }

    /// Creates a socket; when out of descriptors, first settles the pending
    /// connects (freeing theirs) and tries once more.
    fn socket(&mut self, domain: libc::c_int) -> io::Result<OwnedFd> {
        match new_socket(domain) {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
                    && !self.pending.is_empty() =>
            {
                self.settle()?;
                new_socket(domain)
            }
            other => other,
        }
    }

    fn connect_tcp(&mut self, key: usize, addr: &SocketAddr) -> io::Result<Option<State>> {
        let (domain, storage, len) = sockaddr_in(addr);
        let sock = self.socket(domain)?;
        // A timeout too large for the clock means "no deadline to speak of":
        // cap it rather than overflow.
        let now = Instant::now();
        let deadline = now
            .checked_add(self.timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        // SAFETY: storage/len describe a valid sockaddr for `domain`.
        let rc = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if rc == 0 {
            return Ok(Some(State::Running));
        }
        let err = last_err();
        match err.raw_os_error() {
            Some(libc::EINPROGRESS) => {
                self.pending.push(Pending {
                    key,
                    sock,
                    deadline,
                });
                Ok(None)
            }
            Some(errno) => match classify_connect_error(errno) {
                Some(state) => Ok(Some(state)),
                None => Err(err),
            },
            None => Err(err),
        }
    }

    /// Waits for every pending connect to finish or reach its deadline.
    fn settle(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            let now = Instant::now();
            // Expired connects are timeouts: unhealthy.
            let mut i = 0;
            while i < self.pending.len() {
                if self.pending[i].deadline <= now {
                    let p = self.pending.swap_remove(i);
                    self.finished.push((p.key, State::Unhealthy));
                } else {
                    i += 1;
                }
            }
            if self.pending.is_empty() {
                break;
            }
            let wait = self
                .pending
                .iter()
                .map(|p| p.deadline - now)
                .min()
                .unwrap_or_default();
            // Round up so we never spin on a sub-millisecond remainder.
            let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            let mut fds: Vec<libc::pollfd> = self
                .pending
                .iter()
                .map(|p| libc::pollfd {
                    fd: p.sock.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            // SAFETY: fds is a valid array of fds.len() pollfd structs.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let err = last_err();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                continue;
            }
            // Walk backwards so swap_remove keeps earlier indices valid.
            for idx in (0..fds.len()).rev() {
                if fds[idx].revents == 0 {
                    continue;
                }
                let p = self.pending.swap_remove(idx);
                let state = match so_error(&p.sock)? {
                    0 => State::Running,
                    errno => classify_connect_error(errno).unwrap_or(State::Unhealthy),
                };
                self.finished.push((p.key, state));
            }
        }
        Ok(())
    }

    /// Waits for everything still pending and returns every deferred result.
    pub fn finish(mut self) -> io::Result<Vec<(usize, State)>> {
        self.settle()?;
        Ok(self.finished)
    }
}

fn so_error(sock: &OwnedFd) -> io::Result<i32> {
    let mut val: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid out-pointers of the right size.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(last_err());
    }
    Ok(val)
}

fn sockaddr_in(addr: &SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (
                libc::AF_INET,
                storage,
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is large enough for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                libc::AF_INET6,
                storage,
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}
