//! What `/proc` says about a process, read without following links or
//! blocking and parsed strictly: its stat line (state, start ticks,
//! flags), its status (credentials, parent), whether a zombie leader still
//! has live threads, the caller's ancestors; and `kill(pid, 0)`. The facts
//! [`process`](super::process) judges liveness from, and `stop` its
//! authority from.

use std::io;
use std::os::fd::AsFd;

use super::sys;

/// Inode of the initial pid namespace (`PROC_PID_INIT_INO`).
pub(crate) const INITIAL_PID_NS_INODE: u64 = 0xEFFF_FFFC;

/// What `/proc/<pid>/stat` tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub state: u8,
    pub start_ticks: u64,
}

/// What reading `/proc/<pid>/stat` gave.
pub(crate) enum StatRead {
    Found(ProcStat),
    /// No such entry (`ENOENT`/`ESRCH`).
    Absent,
    /// The entry exists but we may not read it.
    Denied,
}

/// The stat line of `pid`; the descriptor, once read, goes to `fds`.
pub(crate) fn read_proc_stat(pid: u32, fds: &mut sys::MarkerFds) -> io::Result<StatRead> {
    let path = format!("/proc/{pid}/stat");
    let denied = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES));
    let fd = fds.open(|| {
        sys::open(
            std::path::Path::new(&path),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    });
    let fd = match fd {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
            return Ok(StatRead::Absent);
        }
        Err(e) if denied(&e) => return Ok(StatRead::Denied),
        Err(e) => return Err(e),
    };
    let bytes = match sys::read_capped(fd.as_fd(), 512, 4096) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(io::Error::other(format!("{path} is unexpectedly large"))),
        // The process exited between open and read.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(StatRead::Absent),
        Err(e) if denied(&e) => return Ok(StatRead::Denied),
        Err(e) => return Err(e),
    };
    fds.keep(fd);
    parse_proc_stat(&bytes)
        .map(StatRead::Found)
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

/// Whether the process `pid`, whose thread-group leader is a zombie, still
/// has live threads (`Threads:` in `/proc/<pid>/status` counts them with
/// the leader until the last one exits). `None` when it cannot be read.
pub(crate) fn zombie_leader_has_threads(pid: u32) -> Option<bool> {
    let path = format!("/proc/{pid}/status");
    let fd = sys::open(
        std::path::Path::new(&path),
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
    )
    .ok()?;
    let bytes = sys::read_capped(fd.as_fd(), 2048, 16 * 1024).ok()??;
    let text = std::str::from_utf8(&bytes).ok()?;
    let threads: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()?;
    Some(threads > 1)
}

/// The `boottime` line of `/proc/self/timens_offsets`, in nanoseconds.
pub(crate) fn parse_boottime_offset(text: &str) -> Option<i64> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("boottime"))?;
    let mut f = line.split_ascii_whitespace().skip(1);
    let secs: i64 = f.next()?.parse().ok()?;
    let nanos: i64 = f.next()?.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Parses a boot id as a UUID: case-insensitive, with or without braces
/// and dashes. Anything else is `None` (and proves nothing).
pub(crate) fn parse_uuid(s: &str) -> Option<u128> {
    let s = s.trim();
    let s = match s.strip_prefix('{') {
        Some(inner) => inner.strip_suffix('}')?,
        None => s,
    };
    let hex: String = if s.len() == 36 {
        let b = s.as_bytes();
        if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return None;
        }
        s.chars().filter(|&c| c != '-').collect()
    } else {
        s.to_owned()
    };
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
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

/// `PF_KTHREAD` in the flags of `/proc/<pid>/stat`: a kernel thread.
pub(crate) const PF_KTHREAD: u64 = 0x0020_0000;

/// What `stop` reads of a pinned process to decide whether the marker's
/// authority reaches it (docs/design.md, "Trust").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Creds {
    /// Real, effective, saved and filesystem uid (`Uid:` of
    /// `/proc/<pid>/status`, as the reader's user namespace sees them).
    pub uids: [u32; 4],
    /// The parent's pid (`PPid:`), 0 for a namespace's first process.
    pub ppid: u32,
    /// A kernel thread (`PF_KTHREAD`).
    pub kthread: bool,
}

/// The credentials of `pid`; `Ok(None)` when it does not exist.
pub(crate) fn credentials(pid: u32) -> io::Result<Option<Creds>> {
    let path = format!("/proc/{pid}/status");
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
    let bytes = match sys::read_capped(fd.as_fd(), 2048, 64 * 1024) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(io::Error::other(format!("{path} is unexpectedly large"))),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some((uids, ppid)) = parse_status(&bytes) else {
        return Err(io::Error::other(format!("cannot parse {path}")));
    };
    let flags = match stat_flags(pid)? {
        Some(f) => f,
        None => return Ok(None),
    };
    Ok(Some(Creds {
        uids,
        ppid,
        kthread: flags & PF_KTHREAD != 0,
    }))
}

/// The `Uid:` and `PPid:` lines of a `/proc/<pid>/status`.
pub(crate) fn parse_status(bytes: &[u8]) -> Option<([u32; 4], u32)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut uids = None;
    let mut ppid = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            let v: Vec<u32> = rest
                .split_ascii_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            uids = Some(<[u32; 4]>::try_from(v).ok()?);
        } else if let Some(rest) = line.strip_prefix("PPid:") {
            ppid = Some(rest.trim().parse().ok()?);
        }
    }
    Some((uids?, ppid?))
}

/// Field 9 (`flags`) of `/proc/<pid>/stat`; `Ok(None)` when it is gone.
pub(crate) fn stat_flags(pid: u32) -> io::Result<Option<u64>> {
    let path = format!("/proc/{pid}/stat");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    parse_stat_flags(&bytes)
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("cannot parse {path}")))
}

/// The flags (field 9) of a `/proc/<pid>/stat` line.
pub(crate) fn parse_stat_flags(bytes: &[u8]) -> Option<u64> {
    let close = bytes.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&bytes[close + 1..]).ok()?;
    // Field 3 is `state`; field 9 is 6 further on.
    rest.split_ascii_whitespace().nth(6)?.parse().ok()
}

/// The caller's ancestors: its parent, the parent's parent, … up to the
/// first process of its pid namespace. Never signalled by `stop`.
pub(crate) fn own_ancestors() -> Vec<u32> {
    let mut out = Vec::new();
    let mut pid = std::os::unix::process::parent_id();
    while pid > 0 && !out.contains(&pid) {
        out.push(pid);
        pid = match credentials(pid) {
            Ok(Some(c)) => c.ppid,
            _ => break,
        };
    }
    out
}
