//! The fleet probe: one socket-diagnostics dump answers every listening
//! Unix socket file of this network namespace by device and inode, without
//! connecting (docs/design.md, "Probing").

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::{Outcome, deadline_after};
use crate::sidecar_markers::read::Loc;
use crate::sidecar_markers::sys;

/// How a scan probes Unix socket files: `FIRMA_PROBE_METHOD=connect` in the
/// environment forces a `connect` for every endpoint (for comparing the two
/// methods, or to rule the fleet probe out); anything else, or nothing,
/// uses the fleet probe where it can answer. Read once per process.
pub(crate) fn connect_only() -> bool {
    static CONNECT_ONLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CONNECT_ONLY
        .get_or_init(|| std::env::var_os("FIRMA_PROBE_METHOD").is_some_and(|m| m == "connect"))
}

/// A scan's fleet probe: one [`FleetSnapshot`], taken when the scan meets
/// its first Unix socket file and shared by its workers; or why there is
/// none (refused by the kernel, forced off), which `inspect` reports.
pub(crate) struct Fleet {
    timeout: Duration,
    snap: std::sync::OnceLock<std::result::Result<FleetSnapshot, String>>,
}

impl Fleet {
    /// A fleet probe whose dump may take up to `timeout`.
    pub fn new(timeout: Duration) -> Fleet {
        Fleet {
            timeout,
            snap: std::sync::OnceLock::new(),
        }
    }

    /// The snapshot, taken at the first call; `None` when there is none.
    pub fn snapshot(&self) -> Option<&FleetSnapshot> {
        self.taken().as_ref().ok()
    }

    fn taken(&self) -> &std::result::Result<FleetSnapshot, String> {
        self.snap.get_or_init(|| {
            if connect_only() {
                return Err("FIRMA_PROBE_METHOD=connect".into());
            }
            FleetSnapshot::take(deadline_after(Instant::now(), self.timeout))
                .map_err(|e| format!("socket diagnostics unavailable: {e}"))
        })
    }

    /// Why the Unix sockets of this scan are probed by `connect`, when there
    /// is no snapshot (taking it if not yet tried).
    pub fn refused(&self) -> Option<&str> {
        self.taken().as_ref().err().map(String::as_str)
    }
}

/// Every listening Unix stream socket of this reader's network namespace,
/// from one `NETLINK_SOCK_DIAG` dump ([`sys::sock_diag`]), by the device
/// and inode of its socket file: the batch probe behind `list`, `inspect`
/// and each round of `watch` (docs/design.md, "Probing").
pub(crate) struct FleetSnapshot {
    /// `None`: two listeners claim the same file (one unlinked, its inode
    /// number reused): ambiguous, so `connect` decides.
    by_file: std::collections::HashMap<(u64, u32), Option<sys::sock_diag::Listener>>,
    euid: u32,
}

impl FleetSnapshot {
    /// One dump, before `deadline`.
    pub fn take(deadline: Instant) -> std::io::Result<FleetSnapshot> {
        let mut by_file = std::collections::HashMap::new();
        for l in sys::sock_diag::unix_listeners(deadline)? {
            by_file
                .entry((l.dev, l.ino))
                .and_modify(|e| *e = None)
                .or_insert(Some(l));
        }
        Ok(FleetSnapshot {
            by_file,
            euid: sys::geteuid(),
        })
    }

    /// What a `connect` to the socket file `st` (`fstat` of the descriptor
    /// the probe's safe lookup opened) would find, when the dump can say
    /// for certain: a stream listener there with room in its backlog is
    /// [`Outcome::Listening`] (judged as serving), with a full one [`Outcome::BacklogFull`] (as
    /// the kernel decides: more waiting than the backlog). `None` (connect
    /// instead) for anything else: not a socket, no listener in this
    /// network namespace, a seqpacket listener, an inode number too wide
    /// for the dump, or a reader who is neither root nor the file's owner
    /// with write permission (so `connect`'s permission check is not
    /// second-guessed).
    pub fn judge(&self, st: &libc::stat) -> Option<Outcome> {
        self.judge_socket(self.socket_file(st)?)
    }

    /// The socket file `st` as the dump names it, when the dump may answer
    /// for it at all: a socket, an inode number that fits the dump's 32
    /// bits, and a reader who is root or the file's owner with write
    /// permission. `None` otherwise (connect instead).
    pub fn socket_file(&self, st: &libc::stat) -> Option<SocketFile> {
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return None;
        }
        // Root, or the file's owner who may write it ([`may_connect`]).
        let may_write = may_connect(self.euid, st.st_uid, st.st_mode);
        if !may_write {
            return None;
        }
        Some(SocketFile {
            dev: st.st_dev,
            ino: u32::try_from(st.st_ino).ok()?,
        })
    }

    /// [`Self::judge`] of a socket file named before by
    /// [`Self::socket_file`] (a watcher keeps that name while inotify says
    /// the file is the same: docs/design.md, "Events").
    pub fn judge_socket(&self, file: SocketFile) -> Option<Outcome> {
        let l = (*self.by_file.get(&(file.dev, file.ino))?)?;
        if l.kind != libc::SOCK_STREAM as u8 {
            return None;
        }
        Some(if l.pending > l.backlog {
            Outcome::BacklogFull
        } else {
            Outcome::Listening
        })
    }
}

/// A socket file as the dump names it: the device of the file system it
/// lives on and its inode number (truncated by the kernel to 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketFile {
    dev: u64,
    ino: u32,
}

/// The marker's own socket file (`<marker>/sidecar.sock`), opened as
/// [`Prober::start`](super::Prober::start) opens it (`O_PATH`, beneath the marker, no symlink,
/// no mount crossed) and `fstat`ed. `None` where it cannot be opened so
/// (missing, a symlink, a mount, no `openat2`): the prober then says what
/// it is.
pub(crate) fn stat_marker_socket(loc: Loc<'_>) -> Option<libc::stat> {
    let rel = loc.rel(crate::sidecar_markers::read::SOCKET_FILE);
    let fd = sys::openat2(
        loc.base(),
        &rel,
        libc::O_PATH | libc::O_CLOEXEC,
        sys::RESOLVE_NO_XDEV_STRICT,
    )?
    .ok()?;
    sys::fstat(fd.as_fd()).ok()
}

/// Whether a reader of effective uid `euid` is one the dump may answer for
/// a socket file of `owner` and `mode`: root, or the file's owner with write
/// permission (`connect`'s permission check lets both in). For anyone else
/// `connect` decides: its check is not second-guessed.
pub(super) fn may_connect(euid: u32, owner: u32, mode: libc::mode_t) -> bool {
    euid == 0 || (owner == euid && mode & libc::S_IWUSR != 0)
}
