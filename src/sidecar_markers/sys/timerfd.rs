//! `timerfd_create(2)`: a timer that is a readable descriptor when it fires.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use super::cvt;
use super::fd::CounterFd;

/// The kind of [`TimerFd`].
pub enum TimerKind {}

/// A non-blocking, close-on-exec timer on `CLOCK_MONOTONIC`; `take` reads
/// the number of expiries since the last read and resets it
/// ([`CounterFd::take`]).
pub type TimerFd = CounterFd<TimerKind>;

impl TimerFd {
    /// `timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)`,
    /// disarmed.
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: creates a descriptor; no pointer is passed.
        let fd = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        Ok(CounterFd::from_new(fd))
    }

    /// Arms the timer to fire once, `after` from now. `Duration::ZERO`
    /// disarms it (1 ns fires at once). Setting the timer also clears an
    /// expiry not yet read.
    pub fn set_once(&self, after: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid timerfd and itimerspec; the old value is not asked for.
        cvt(unsafe {
            libc::timerfd_settime(self.as_fd().as_raw_fd(), 0, &spec, std::ptr::null_mut())
        })
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_and_zero_disarms() {
        let t = TimerFd::new().unwrap();
        assert_eq!(t.take().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        t.set_once(Duration::from_nanos(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(t.take().unwrap(), 1);
        assert_eq!(t.take().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        t.set_once(Duration::from_millis(1)).unwrap();
        t.set_once(Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(t.take().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
