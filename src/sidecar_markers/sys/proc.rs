//! The process and its resources: who we are, whether a pid exists, how
//! many descriptors we may hold; and the `Key:\tvalue` lines of `/proc`
//! status and fdinfo files.

use std::io;
use std::mem;

use super::cvt;

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), or `None` when
/// unlimited or unreadable.
pub fn nofile_soft_limit() -> Option<u64> {
    // SAFETY: rlimit is plain old data; getrlimit fills it.
    let mut rl: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return None;
    }
    (rl.rlim_cur != libc::RLIM_INFINITY).then_some(rl.rlim_cur as u64)
}

/// `kill(pid, 0)`: `Ok` when the process exists and we may signal it.
pub fn kill0(pid: libc::pid_t) -> io::Result<()> {
    debug_assert!(pid > 0, "kill(0|negative) would address process groups");
    // SAFETY: signal 0 only checks existence and permission.
    cvt(unsafe { libc::kill(pid, 0) }).map(drop)
}

/// The effective uid of this process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The real uid of this process (for tests: the core acts on the
/// effective uid).
#[cfg(test)]
pub fn getuid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of start
/// times in `/proc/<pid>/stat`; `None` when the system does not say.
pub fn clk_tck() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => Some(n as u64),
        _ => None,
    }
}

/// The value of the first `key` line (`"Pid:"`, `"Threads:"`) of a `/proc`
/// status or fdinfo text, parsed; `None` when there is no such line or its
/// value does not parse.
pub fn proc_field<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .parse()
        .ok()
}
