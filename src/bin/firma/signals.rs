//! The termination signals (SIGINT, SIGTERM) that `firma sidecar watch`
//! takes over: blocked, then received synchronously through a signalfd
//! instead of by a handler.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Blocks SIGINT and SIGTERM in the calling thread (threads started later
/// inherit the mask) and returns a non-blocking, close-on-exec signalfd
/// that reads them.
pub fn termination_fd() -> Result<SignalFd, String> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| format!("cannot block SIGINT/SIGTERM: {e}"))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("cannot create a signalfd: {e}"))
}
