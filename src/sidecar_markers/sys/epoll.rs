//! `epoll(7)`: one descriptor to wait on many.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::cvt;

/// An epoll instance (close-on-exec). Each registered descriptor carries a
/// caller-chosen token, reported back when it is ready; only readability
/// (`EPOLLIN`, level-triggered) is watched.
pub struct Epoll {
    fd: OwnedFd,
}

/// How many ready descriptors one [`Epoll::wait`] reports at most; the rest
/// stay ready for the next call.
pub const MAX_EVENTS: usize = 64;

/// What one [`Epoll::wait`] found: the tokens of the ready descriptors.
pub struct Events {
    buf: [libc::epoll_event; MAX_EVENTS],
    len: usize,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            buf: [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
            len: 0,
        }
    }
}

impl Events {
    /// The tokens of the descriptors found ready, in the kernel's order.
    pub fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        // The struct is packed on some targets: copy the field out.
        self.buf[..self.len].iter().map(|ev| ev.u64)
    }
}

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: creates a descriptor; no pointer is passed.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: a new descriptor that nothing else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `fd` for readability; `token` identifies it in [`Events`].
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: valid descriptors and a valid event struct.
        cvt(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        })
        .map(drop)
    }

    /// Stops watching `fd` (closing it would too).
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: valid descriptors; a null event is allowed for DEL.
        cvt(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// `epoll_wait(2)`: waits up to `timeout` (rounded up to whole
    /// milliseconds, at most `i32::MAX` ms; zero does not wait) and fills
    /// `events` with what is ready. A signal ends the wait with
    /// `Interrupted` (`EINTR`); the caller decides what that means.
    pub fn wait(&self, events: &mut Events, timeout: Duration) -> io::Result<()> {
        events.len = 0;
        // SAFETY: valid epoll descriptor and a buffer of the given length.
        let n = cvt(unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.buf.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                ms_ceil(timeout),
            )
        })?;
        events.len = n as usize;
        Ok(())
    }
}

/// Whole milliseconds, rounded up so a wait is never shorter than asked.
fn ms_ceil(d: Duration) -> libc::c_int {
    let ms = d.as_nanos().div_ceil(1_000_000);
    ms.min(i32::MAX as u128) as libc::c_int
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar_markers::sys::eventfd::EventFd;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(ms_ceil(Duration::ZERO), 0);
        assert_eq!(ms_ceil(Duration::from_nanos(1)), 1);
        assert_eq!(ms_ceil(Duration::from_micros(1500)), 2);
        assert_eq!(ms_ceil(Duration::from_millis(7)), 7);
        assert_eq!(ms_ceil(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn a_readable_descriptor_is_reported_by_its_token_until_deleted() {
        let epoll = Epoll::new().unwrap();
        let efd = EventFd::new().unwrap();
        epoll.add(efd.as_fd(), 42).unwrap();
        let mut events = Events::default();
        epoll.wait(&mut events, Duration::ZERO).unwrap();
        assert_eq!(events.tokens().count(), 0, "nothing is ready yet");
        efd.add(1).unwrap();
        epoll.wait(&mut events, Duration::from_secs(5)).unwrap();
        assert_eq!(events.tokens().collect::<Vec<_>>(), [42]);
        epoll.delete(efd.as_fd()).unwrap();
        epoll.wait(&mut events, Duration::ZERO).unwrap();
        assert_eq!(events.tokens().count(), 0, "deleted, so never reported");
        assert!(
            epoll.delete(efd.as_fd()).is_err(),
            "not registered any more"
        );
    }
}
