//! The process listening on a marker's own socket, pinned by a pidfd: the
//! proof `stop` and the judgement of markers without identity use
//! (docs/design.md, "Trust").

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sidecar_markers::read::Loc;
use crate::sidecar_markers::sys;
use crate::sidecar_markers::sys::socket::{Socket, UnixAddr};

/// The process listening on the marker's own socket (`<marker>/sidecar.sock`,
/// opened beneath the marker without following a symlink or crossing a
/// mount), pinned: a pidfd from `SO_PEERPIDFD` and its pid as this reader's
/// pid namespace sees it. `None` when there is no such proof here: no
/// socket, nobody accepting connections, a kernel without `SO_PEERPIDFD`,
/// a listener that has exited or lives in a pid namespace this reader
/// cannot see. (docs/design.md, "Trust": how it combines with the identity
/// fields.)
pub(crate) fn socket_listener(loc: Loc<'_>) -> Option<(OwnedFd, u32)> {
    let rel = loc.rel(crate::sidecar_markers::read::SOCKET_FILE);
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
