//! Process descriptors (`pidfd_open(2)`): a descriptor that names one
//! process for as long as it is held, so a reused pid can never be
//! signalled or waited for by mistake. It becomes readable when the whole
//! process has exited (zombie or reaped).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// An owned pidfd (close-on-exec).
pub struct Pidfd {
    fd: OwnedFd,
}

impl Pidfd {
    /// `pidfd_open(pid, 0)`. `ESRCH` when no such process exists (or it
    /// was reaped), `EINVAL` for pid 0 or one beyond `pid_t`, `ENOSYS` (or
    /// `EPERM` from a seccomp filter) where pidfds are unavailable.
    pub fn open(pid: u32) -> io::Result<Pidfd> {
        let pid = libc::pid_t::try_from(pid)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        Ok(Pidfd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// A pidfd the kernel handed over by other means (`SO_PEERPIDFD`).
    pub fn from_owned(fd: OwnedFd) -> Pidfd {
        Pidfd { fd }
    }

    /// `pidfd_send_signal(pidfd, signal, NULL, 0)`: as `kill(2)` would,
    /// to exactly this process. `ESRCH` once it has exited.
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: a valid pidfd; a NULL siginfo means "as kill(2) would".
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_uint,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Polls until the process exits (`true`) or `timeout` passes
    /// (`false`, after at least `timeout`; zero only looks). A signal does
    /// not cut the wait short.
    pub fn poll_exit(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Round up so the wait is never shorter than asked.
            let ms = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            if n > 0 {
                if pfd.revents & libc::POLLNVAL != 0 {
                    return Err(io::Error::from_raw_os_error(libc::EBADF));
                }
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_reaped_pid_is_esrch_and_pid_zero_einval() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let e = Pidfd::open(pid).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
        for bad in [0, u32::MAX] {
            let e = Pidfd::open(bad).err().unwrap();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad}");
        }
    }

    #[test]
    fn signal_then_exit_is_seen_through_the_pidfd() {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let pidfd = Pidfd::open(child.id()).unwrap();
        assert!(!pidfd.poll_exit(Duration::ZERO).unwrap());
        let t = Instant::now();
        assert!(!pidfd.poll_exit(Duration::from_millis(30)).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(30), "never shorter");
        pidfd.send_signal(libc::SIGKILL).unwrap();
        assert!(pidfd.poll_exit(Duration::from_secs(10)).unwrap());
        // Exited but not reaped: still this process, and still exited.
        assert!(pidfd.poll_exit(Duration::ZERO).unwrap());
        child.wait().unwrap();
        let e = pidfd.send_signal(libc::SIGTERM).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
