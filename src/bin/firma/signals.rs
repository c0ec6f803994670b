//! The termination signals (SIGINT, SIGTERM) that `firma sidecar watch`
//! takes over: blocked, then received synchronously through a signalfd
//! instead of by a handler.

/// Blocks SIGINT and SIGTERM in the calling thread (threads started later
/// inherit the mask) and returns the set, for `sigwait` or `signalfd`.
pub fn block_termination() -> Result<libc::sigset_t, String> {
    // SAFETY: plain sigset manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(format!(
                "cannot block SIGINT/SIGTERM: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        Ok(set)
    }
}
