//! `eventfd(2)`: a counter that is readable while it is not zero.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use super::cvt;
use super::fd::CounterFd;

/// The kind of [`EventFd`].
pub enum EventKind {}

/// A non-blocking, close-on-exec eventfd, starting at zero; `take` reads
/// the counter and resets it ([`CounterFd::take`]).
pub type EventFd = CounterFd<EventKind>;

impl EventFd {
    /// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: creates a descriptor; no pointer is passed.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(CounterFd::from_new(fd))
    }

    /// Adds `n` to the counter (the descriptor is readable from then on).
    pub fn add(&self, n: u64) -> io::Result<()> {
        // SAFETY: writing 8 bytes from a valid u64 to an eventfd.
        let rc = unsafe { libc::write(self.as_fd().as_raw_fd(), (&n as *const u64).cast(), 8) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_adds_up_and_take_empties_it() {
        let efd = EventFd::new().unwrap();
        let e = efd.take().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        efd.add(1).unwrap();
        efd.add(2).unwrap();
        assert_eq!(efd.take().unwrap(), 3);
        assert_eq!(efd.take().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
