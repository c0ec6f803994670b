//! Is the sidecar's process alive, and is it still the process the marker
//! was written for?
//!
//! `/proc/<pid>/stat` answers most cases in one read: present and not a
//! zombie means alive, and its start time proves identity. A missing
//! `/proc/<pid>` alone never proves death (`/proc` can be mounted with
//! `hidepid`): only `ESRCH` from `kill(pid, 0)` does. Nothing here ever
//! waits for, or signals, a process.

use std::io;
use std::os::fd::AsFd;
use std::sync::OnceLock;

use super::sys;

/// The verdict on a marker's pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    /// No such process (`ESRCH`).
    Gone,
    /// The pid is a zombie (or dead, `X`) awaiting its parent.
    Zombie,
    /// A process with that pid exists but its identity differs from the
    /// one recorded: the pid was reused (or the host rebooted).
    Reused,
}

impl Liveness {
    pub fn is_alive(self) -> bool {
        self == Liveness::Alive
    }
}

/// What `/proc/<pid>/stat` tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub state: u8,
    pub start_ticks: u64,
}

/// Reads `/proc/<pid>/stat`. `Ok(None)` when there is no such entry.
pub(crate) fn read_proc_stat(pid: u32) -> io::Result<Option<ProcStat>> {
    let path = format!("/proc/{pid}/stat");
    let fd = match sys::open(
        std::path::Path::new(&path),
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
    ) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let bytes = match sys::read_capped(fd.as_fd(), 512, 4096) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(io::Error::other(format!("{path} is unexpectedly large"))),
        // The process exited between open and read.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    parse_proc_stat(&bytes)
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("cannot parse {path}")))
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_proc_stat(bytes: &[u8]) -> Option<ProcStat> {
    let close = bytes.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&bytes[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Field 3 was `state`; field 22 is 19 further on.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_ticks })
}

/// This boot's id, read once per process (it cannot change while we run).
pub(crate) fn host_boot_id() -> Option<&'static str> {
    static BOOT_ID: OnceLock<Option<String>> = OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .as_deref()
}

/// Decides whether `pid` is the live process the marker describes.
pub(crate) fn liveness(
    pid: u32,
    boot_id: Option<&str>,
    start_ticks: Option<u64>,
) -> io::Result<Liveness> {
    debug_assert!(pid >= 1 && pid <= i32::MAX as u32);
    if let (Some(recorded), Some(host)) = (boot_id, host_boot_id())
        && recorded != host
    {
        // Written during another boot: whatever has this pid now is not it.
        return Ok(Liveness::Reused);
    }
    match read_proc_stat(pid)? {
        Some(st) => {
            if st.state == b'Z' || st.state == b'X' {
                Ok(Liveness::Zombie)
            } else if start_ticks.is_some_and(|t| t != st.start_ticks) {
                Ok(Liveness::Reused)
            } else {
                Ok(Liveness::Alive)
            }
        }
        // /proc may hide the process from us; only ESRCH proves it gone.
        None => Ok(if kill_probe(pid)? {
            Liveness::Alive
        } else {
            Liveness::Gone
        }),
    }
}

/// `kill(pid, 0)`: true when the process exists (`EPERM` included).
pub(crate) fn kill_probe(pid: u32) -> io::Result<bool> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    match sys::kill0(pid) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The identity the writer records for `pid`: this boot's id and the
/// process start time. `Ok(None)` when the process does not exist.
pub(crate) fn identity(pid: u32) -> io::Result<Option<(Option<String>, u64)>> {
    Ok(read_proc_stat(pid)?.map(|st| (host_boot_id().map(str::to_owned), st.start_ticks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parens_and_spaces_in_comm() {
        let line =
            b"42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10\n";
        let st = parse_proc_stat(line).unwrap();
        assert_eq!(st.state, b'S');
        assert_eq!(st.start_ticks, 98765);
    }

    #[test]
    fn own_process_is_alive_and_identity_matches() {
        let me = std::process::id();
        let (boot, ticks) = identity(me).unwrap().unwrap();
        assert_eq!(
            liveness(me, boot.as_deref(), Some(ticks)).unwrap(),
            Liveness::Alive
        );
        assert_eq!(
            liveness(me, boot.as_deref(), Some(ticks + 1)).unwrap(),
            Liveness::Reused
        );
        assert_eq!(
            liveness(me, Some("another-boot"), Some(ticks)).unwrap(),
            Liveness::Reused
        );
    }
}
