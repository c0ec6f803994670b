//! The kernel's Unix socket diagnostics (`NETLINK_SOCK_DIAG`, `UNIX_DIAG`):
//! every listening Unix stream socket of this reader's network namespace in
//! one dump, each with the inode and device of its socket file
//! (`UDIAG_SHOW_VFS`) and its queue lengths (`UDIAG_SHOW_RQLEN`: for a
//! listener, connections waiting to be accepted and the backlog).
//!
//! The reply is read robustly: multipart messages up to `NLMSG_DONE`,
//! `NLMSG_ERROR` as the error it carries, a truncated datagram or an
//! interrupted dump (`NLM_F_DUMP_INTR`) as an error, `EINTR` retried, and
//! the whole dump bounded by a deadline (the socket is non-blocking and
//! waited for with `poll`).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use super::cvt;

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_RQLEN: u16 = 4;
const TCP_LISTEN: u32 = 10;

#[repr(C)]
#[derive(Clone, Copy)]
struct NlMsgHdr {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UnixDiagReq {
    family: u8,
    protocol: u8,
    pad: u16,
    states: u32,
    ino: u32,
    show: u32,
    cookie: [u32; 2],
}

#[repr(C)]
struct Request {
    hdr: NlMsgHdr,
    req: UnixDiagReq,
}

/// One listening Unix socket as the dump shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    /// `st_dev` of its socket file, as `stat(2)` gives it.
    pub dev: u64,
    /// Its socket file's inode number, truncated by the kernel to 32 bits.
    pub ino: u32,
    /// `SOCK_STREAM` or `SOCK_SEQPACKET`.
    pub kind: u8,
    /// Connections waiting to be accepted.
    pub pending: u32,
    /// The backlog `listen(2)` set.
    pub backlog: u32,
}

/// A native-endian `u32` at `off` of `b`, if there.
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag: {what}"))
}

/// Every listening Unix socket bound to a file, in this network namespace,
/// dumped before `deadline` (`ETIMEDOUT` past it). An error when the kernel
/// refuses (no `NETLINK_SOCK_DIAG`, no `UNIX_DIAG`, a seccomp filter) or
/// the reply cannot be trusted whole.
pub fn unix_listeners(deadline: Instant) -> io::Result<Vec<Listener>> {
    // SAFETY: plain socket(2) call.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            NETLINK_SOCK_DIAG,
        )
    })?;
    // SAFETY: a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let seq = 1;
    let req = Request {
        hdr: NlMsgHdr {
            len: mem::size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            flags: NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            pid: 0,
        },
        req: UnixDiagReq {
            family: libc::AF_UNIX as u8,
            protocol: 0,
            pad: 0,
            states: 1 << TCP_LISTEN,
            ino: 0,
            show: UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN,
            cookie: [!0, !0],
        },
    };
    // SAFETY: sockaddr_nl is plain old data; all-zero is valid.
    let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    loop {
        // SAFETY: `req` and `kernel` are valid for their sizes; sendto only
        // reads them.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                (&req as *const Request).cast(),
                mem::size_of::<Request>(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n == mem::size_of::<Request>() as isize {
            break;
        }
        let e = io::Error::last_os_error();
        if n >= 0 {
            return Err(bad("short send"));
        }
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length; MSG_TRUNC makes the
        // return value the datagram's real length.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    wait_readable(&sock, deadline)?;
                    continue;
                }
                _ => return Err(e),
            }
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(bad("a reply was truncated"));
        }
        if n == 0 {
            return Err(bad("the kernel closed the dump"));
        }
        if parse(&buf[..n], seq, &mut out)? {
            return Ok(out);
        }
    }
}

/// Waits until `sock` is readable or `deadline` passes (`ETIMEDOUT`).
fn wait_readable(sock: &OwnedFd, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
        }
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        let mut fds = [libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        match super::poll(&mut fds, ms) {
            Ok(0) => {}
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Parses one datagram of the dump into `out`: `true` at `NLMSG_DONE`.
fn parse(mut b: &[u8], seq: u32, out: &mut Vec<Listener>) -> io::Result<bool> {
    const HDR: usize = mem::size_of::<NlMsgHdr>();
    while !b.is_empty() {
        let (Some(len), Some(kind), Some(flags), Some(got_seq)) =
            (u32_at(b, 0), u16_at(b, 4), u16_at(b, 6), u32_at(b, 8))
        else {
            return Err(bad("a message header was cut short"));
        };
        let len = len as usize;
        if len < HDR || len > b.len() {
            return Err(bad("a message length is out of bounds"));
        }
        let body = &b[HDR..len];
        if got_seq != seq {
            return Err(bad("a reply to another request"));
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            return Err(bad("the dump was interrupted (sockets changed during it)"));
        }
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(body, 0).ok_or_else(|| bad("an error cut short"))? as i32;
                return Err(if errno < 0 {
                    io::Error::from_raw_os_error(-errno)
                } else {
                    bad("an acknowledgement where a dump was expected")
                });
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some(l) = listener(body)? {
                    out.push(l);
                }
            }
            _ => {}
        }
        b = b.get(align4(len)..).unwrap_or_default();
    }
    Ok(false)
}

/// A `unix_diag_msg` and its attributes: `None` for a socket not bound to
/// a file (abstract or unnamed: no `UNIX_DIAG_VFS`).
fn listener(body: &[u8]) -> io::Result<Option<Listener>> {
    // struct unix_diag_msg: family, type, state, pad (u8 each), ino, cookie[2].
    const MSG: usize = 16;
    let (Some(&kind), Some(&state)) = (body.get(1), body.get(2)) else {
        return Err(bad("a socket message cut short"));
    };
    if body.len() < MSG {
        return Err(bad("a socket message cut short"));
    }
    let mut vfs = None;
    let mut rqlen = None;
    let mut a = &body[MSG..];
    while a.len() >= 4 {
        let (Some(len), Some(ty)) = (u16_at(a, 0), u16_at(a, 2)) else {
            break;
        };
        let len = len as usize;
        if len < 4 || len > a.len() {
            return Err(bad("an attribute length is out of bounds"));
        }
        let data = &a[4..len];
        match ty & 0x3fff {
            UNIX_DIAG_VFS => vfs = Some((u32_at(data, 0), u32_at(data, 4))),
            UNIX_DIAG_RQLEN => rqlen = Some((u32_at(data, 0), u32_at(data, 4))),
            _ => {}
        }
        a = a.get(align4(len)..).unwrap_or_default();
    }
    if u32::from(state) != TCP_LISTEN {
        return Ok(None);
    }
    let Some((Some(ino), Some(kdev))) = vfs else {
        return Ok(None);
    };
    let Some((Some(pending), Some(backlog))) = rqlen else {
        return Err(bad("a listener without its queue lengths"));
    };
    // The kernel's dev_t (major << 20 | minor), as stat(2) encodes it.
    let dev = libc::makedev(kdev >> 20, kdev & 0xf_ffff);
    Ok(Some(Listener {
        dev,
        ino,
        kind,
        pending,
        backlog,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    /// What the reader makes of replies it must not trust: an error, a cut
    /// message, an interrupted dump, another request's reply; and the end.
    #[test]
    fn replies_are_trusted_whole_or_not_at_all() {
        let mut out = Vec::new();
        let done = msg(NLMSG_DONE, 0, 7, &0i32.to_ne_bytes());
        assert!(parse(&done, 7, &mut out).unwrap());
        let err = msg(NLMSG_ERROR, 0, 7, &(-libc::EPERM).to_ne_bytes());
        let e = parse(&err, 7, &mut out).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        assert!(parse(&done[..10], 7, &mut out).is_err(), "a cut header");
        let mut long = done.clone();
        long[0] = 200;
        assert!(parse(&long, 7, &mut out).is_err(), "a length past the end");
        assert!(
            parse(&done, 8, &mut out).is_err(),
            "another request's reply"
        );
        let intr = msg(NLMSG_DONE, NLM_F_DUMP_INTR, 7, &[0; 4]);
        assert!(parse(&intr, 7, &mut out).is_err(), "an interrupted dump");
        let short = msg(SOCK_DIAG_BY_FAMILY, 0, 7, &[1, 1, 10]);
        assert!(
            parse(&short, 7, &mut out).is_err(),
            "a socket message cut short"
        );
        assert!(out.is_empty());
    }

    /// A real listener and a real full one, found in a real dump.
    #[test]
    fn a_dump_finds_real_listeners_and_their_queues() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("firma-diag-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let open = std::os::unix::net::UnixListener::bind(dir.join("open.sock")).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let all = unix_listeners(deadline).expect("the kernel refused a sock_diag dump");
        let st = std::fs::metadata(dir.join("open.sock")).unwrap();
        let found = all
            .iter()
            .find(|l| l.dev == st.dev() && u64::from(l.ino) == st.ino())
            .expect("our listener is in the dump");
        assert_eq!(found.kind, libc::SOCK_STREAM as u8);
        assert_eq!(found.pending, 0);
        let _c = std::os::unix::net::UnixStream::connect(dir.join("open.sock")).unwrap();
        let all = unix_listeners(deadline).unwrap();
        let found = all
            .iter()
            .find(|l| l.dev == st.dev() && u64::from(l.ino) == st.ino())
            .unwrap();
        assert_eq!(found.pending, 1, "one connection waits to be accepted");
        drop(open);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
