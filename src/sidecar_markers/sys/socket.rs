//! Sockets for probing: a non-blocking stream socket that owns its
//! descriptor, connects to a Unix path or an IP address, its pending error
//! (`SO_ERROR`) and its peer's pidfd (`SO_PEERPIDFD`).

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// `SO_PEERPIDFD` (Linux 6.5): a pidfd of a connected socket's peer.
const SO_PEERPIDFD: libc::c_int = 77;

/// A non-blocking, close-on-exec stream socket.
#[derive(Debug)]
pub struct Socket(OwnedFd);

/// A Unix socket address (`sockaddr_un`) and its length: a path short
/// enough for `sun_path`, without NUL bytes.
pub struct UnixAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl UnixAddr {
    /// `None` when `path` is empty, holds a NUL or is too long for
    /// `sun_path` (reach such a path through a directory descriptor).
    pub fn new(path: &[u8]) -> Option<UnixAddr> {
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
        Some(UnixAddr {
            addr,
            len: len as libc::socklen_t,
        })
    }

    /// The address as `connect(2)` takes it (for the lookup child, which
    /// must not allocate).
    pub(super) fn raw(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        ((&self.addr as *const libc::sockaddr_un).cast(), self.len)
    }
}

impl Socket {
    /// A Unix stream socket.
    pub fn unix() -> io::Result<Socket> {
        Socket::stream(libc::AF_UNIX)
    }

    /// A TCP socket of `addr`'s family.
    pub fn tcp_for(addr: &SocketAddr) -> io::Result<Socket> {
        Socket::stream(match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        })
    }

    fn stream(domain: libc::c_int) -> io::Result<Socket> {
        // SAFETY: plain socket(2) call.
        let fd = cvt(unsafe {
            libc::socket(
                domain,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `connect(2)` to a Unix socket: a stream connect completes at once
    /// or fails (a full backlog: `EAGAIN`), except that the path lookup
    /// itself may block.
    pub fn connect_unix(&self, addr: &UnixAddr) -> io::Result<()> {
        self.connect_raw(&addr.addr, addr.len)
    }

    /// `connect(2)` to an IP address: usually `EINPROGRESS` at first (the
    /// socket is non-blocking); poll for writability, then
    /// [`Socket::take_error`].
    pub fn connect_ip(&self, addr: &SocketAddr) -> io::Result<()> {
        let (storage, len) = sockaddr_in(addr);
        self.connect_raw(&storage, len)
    }

    fn connect_raw<A: SockAddr>(&self, addr: &A, len: libc::socklen_t) -> io::Result<()> {
        assert!(len as usize <= mem::size_of::<A>(), "sockaddr length");
        // SAFETY: `addr` is a sockaddr type at least `len` bytes long, and
        // connect(2) only reads it.
        cvt(unsafe { libc::connect(self.0.as_raw_fd(), (addr as *const A).cast(), len) }).map(drop)
    }

    /// The socket's pending error (`SO_ERROR`, 0 for none): how a
    /// non-blocking connect ended.
    pub fn take_error(&self) -> io::Result<i32> {
        let mut val: libc::c_int = 0;
        self.getsockopt(libc::SO_ERROR, &mut val)?;
        Ok(val)
    }

    /// A pidfd of the connected peer (`SO_PEERPIDFD`, Linux 6.5).
    pub fn peer_pidfd(&self) -> io::Result<OwnedFd> {
        let mut fd: libc::c_int = -1;
        self.getsockopt(SO_PEERPIDFD, &mut fd)?;
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `getsockopt(SOL_SOCKET, opt)` of an int-valued option.
    fn getsockopt(&self, opt: libc::c_int, val: &mut libc::c_int) -> io::Result<()> {
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `val` is a writable c_int of `len` bytes.
        cvt(unsafe {
            libc::getsockopt(
                self.0.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (val as *mut libc::c_int).cast(),
                &mut len,
            )
        })
        .map(drop)
    }
}

/// `listen(2)` on a bound socket with `backlog`: the example sidecar's
/// wedged mode listens with 0 and fills the queue.
#[cfg(feature = "example-sidecar")]
pub fn listen(sock: BorrowedFd<'_>, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: listen(2) on a descriptor the caller keeps open.
    cvt(unsafe { libc::listen(sock.as_raw_fd(), backlog) }).map(drop)
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<Socket> for OwnedFd {
    fn from(s: Socket) -> OwnedFd {
        s.0
    }
}

/// The socket address types `connect` takes.
trait SockAddr {}
impl SockAddr for libc::sockaddr_un {}
impl SockAddr for libc::sockaddr_storage {}

fn sockaddr_in(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
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
            let len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            (storage, len)
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
            let len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            (storage, len)
        }
    }
}
