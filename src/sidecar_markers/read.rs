//! Reading one marker directory safely, relative to an open directory: its
//! `metadata.toml` opened without following a symlink or crossing a mount
//! point, read once and validated; `sidecar.pid`'s age; whose claim the
//! marker is (docs/design.md, "On-disk format", "Trust").

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::endpoint::{Endpoint, parse_listen};
use super::error::{Result, StackError};
use super::metadata::parse_metadata;
use super::model::{MetadataFile, Reason, SidecarEntry, State};
use super::options::validate_sandbox_id;
use super::sys;
use super::trust::{self, Trust};

/// Largest `metadata.toml` we read; anything bigger is a parse error.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

pub(crate) const METADATA: &CStr = c"metadata.toml";
pub(crate) const PID_FILE: &CStr = c"sidecar.pid";
pub(crate) const DEFAULT_SOCKET: &str = "sidecar.sock";
pub(crate) const SOCKET_FILE: &CStr = c"sidecar.sock";

/// Where a marker lives, relative to an open directory.
#[derive(Clone, Copy)]
pub(crate) enum Loc<'a> {
    /// The marker directory itself is open (`probe_entry`).
    Dir(BorrowedFd<'a>),
    /// The marker is the entry `name` of the open `run/` directory.
    Entry { run: BorrowedFd<'a>, name: &'a CStr },
}

impl Loc<'_> {
    /// `file` inside the marker, as a name relative to the open directory.
    pub fn rel(&self, file: &CStr) -> CString {
        match self {
            Loc::Dir(_) => file.to_owned(),
            Loc::Entry { name, .. } => {
                let mut v = Vec::with_capacity(name.to_bytes().len() + 1 + file.to_bytes().len());
                v.extend_from_slice(name.to_bytes());
                v.push(b'/');
                v.extend_from_slice(file.to_bytes());
                CString::new(v).expect("names from readdir and constants hold no NUL")
            }
        }
    }

    pub fn base(&self) -> BorrowedFd<'_> {
        match *self {
            Loc::Dir(fd) => fd,
            Loc::Entry { run, .. } => run,
        }
    }
}

/// A marker whose `metadata.toml` was read and validated.
pub(crate) struct Marker {
    pub path: PathBuf,
    pub meta: MetadataFile,
    pub endpoint: Endpoint,
    /// Which `metadata.toml` was read, so a collector (and `stop`) can tell
    /// that a marker still holds the very file it judged.
    pub meta_id: MetaId,
    /// Owner and mode of that `metadata.toml` (half of whose claim the
    /// marker is: see [`Marker::owner`]).
    pub meta_owner: (u32, u32),
}

/// The identity of one `metadata.toml` as it was read and judged: its
/// device and inode, and a keyed digest of the exact bytes read. A freed
/// inode number is handed to the next new file (ext4 does so at once), so
/// device and inode alone cannot tell a marker re-created under the same
/// name from the one judged; the bytes can. `gc::holds_judged` is the one
/// comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MetaId {
    pub dev: u64,
    pub ino: u64,
    pub digest: u64,
}

impl MetaId {
    /// The identity of the file `st` describes, whose bytes are `bytes`.
    pub fn of(st: &libc::stat, bytes: &[u8]) -> MetaId {
        MetaId {
            dev: st.st_dev,
            ino: st.st_ino,
            digest: digest(bytes),
        }
    }
}

/// SipHash of `bytes` (length included) under a key drawn from the OS's
/// random source once per process (std's `RandomState`): no one who writes
/// markers can know the key, so no one can write other bytes with the same
/// digest on purpose.
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new).hash_one(bytes)
}

impl Marker {
    /// Whose claim this marker (the entry `name` of the open `run/`) is:
    /// `authority::claim` over its directory and its `metadata.toml`. One
    /// `lstat`, made only by what removes or signals.
    pub fn owner(&self, run: BorrowedFd<'_>, name: &CStr) -> std::result::Result<u32, String> {
        let st = sys::lstatat(run, name)
            .map_err(|e| format!("cannot stat the marker directory: {e}"))?;
        if !sys::is_dir(&st) {
            return Err("the marker is no longer a directory".to_owned());
        }
        let (meta_uid, meta_mode) = self.meta_owner;
        super::authority::claim(st.st_uid, st.st_mode, meta_uid, meta_mode)
    }

    /// The entry of this marker (its strings move into it: a scan builds
    /// one entry per marker and has no further use for the marker).
    pub fn into_entry(self, state: State, uptime_secs: Option<u64>) -> SidecarEntry {
        let mut m = self.meta;
        let listen = match self.endpoint {
            Endpoint::MarkerSocket => {
                let mut path = self.path;
                path.push(DEFAULT_SOCKET);
                path.into_os_string()
                    .into_string()
                    .unwrap_or_else(|p| p.to_string_lossy().into_owned())
            }
            _ => m.listen.take().unwrap_or_default(),
        };
        SidecarEntry {
            sandbox_id: m.sandbox_id,
            agent_id: m.agent_id,
            session_id: m.session_id,
            authority_url: m.authority_url,
            policy_bundle_version: m.policy_bundle_version,
            pid: m.pid,
            started_at: m.started_at,
            state,
            listen,
            uptime_secs,
        }
    }
}

/// Why a marker could not be read: the `inspect` reason and the error.
#[derive(Debug)]
pub(crate) struct Broken {
    pub reason: Reason,
    pub error: StackError,
}

impl Broken {
    fn new(reason: Reason, error: StackError) -> Self {
        Broken { reason, error }
    }

    fn parse(reason: Reason, path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        Broken::new(reason, StackError::parse(path, why))
    }

    /// True when the marker vanished while it was read (`ENOENT`).
    pub fn is_not_found(&self) -> bool {
        self.error.is_not_found()
    }
}

impl From<Broken> for StackError {
    fn from(b: Broken) -> Self {
        b.error
    }
}

/// Maps a failure to open a marker directory: a symlink or a non-directory
/// is a malformed marker, anything else is I/O. (`O_DIRECTORY|O_NOFOLLOW`
/// on a symlink fails with `ENOTDIR` or `ELOOP`; an lstat on this error path
/// tells the two cases apart for the message.)
pub(crate) fn open_dir_error(path: PathBuf, e: std::io::Error) -> Broken {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
            if is_symlink(&path) {
                Broken::parse(
                    Reason::Symlink,
                    path,
                    "marker directory is a symlink (not followed)",
                )
            } else {
                Broken::parse(Reason::NotADirectory, path, "marker is not a directory")
            }
        }
        _ => Broken::new(
            Reason::IoError,
            StackError::io("open marker directory", path, e),
        ),
    }
}

pub(crate) fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

const METADATA_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;

/// A marker directory that is a mount point (or holds `metadata.toml` as
/// one) is never read: its filesystem may not answer, and it is not ours.
fn mount_point(path: &Path) -> Broken {
    Broken::parse(
        Reason::MountPoint,
        path,
        "marker directory is (or holds) a mount point: not read, never removed",
    )
}

/// Opens `metadata.toml` of the marker at `loc` without following any
/// symlink or crossing a mount point. For a `run/` entry this is one
/// `openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV`
/// where the kernel has it, else `openat` of the directory then of the
/// file, with the directory's mount id compared to its parent's.
fn open_metadata(loc: Loc<'_>, path: &Path) -> std::result::Result<OwnedFd, Broken> {
    let meta_path = || path.join("metadata.toml");
    let symlink_error = || {
        if matches!(loc, Loc::Entry { .. }) && is_symlink(path) {
            Broken::parse(
                Reason::Symlink,
                path,
                "marker directory is a symlink (not followed)",
            )
        } else {
            Broken::parse(
                Reason::Symlink,
                meta_path(),
                "metadata.toml is a symlink (not followed)",
            )
        }
    };
    let rel = loc.rel(METADATA);
    let opened = match sys::openat2(
        loc.base(),
        &rel,
        METADATA_FLAGS,
        sys::RESOLVE_NO_XDEV_STRICT,
    ) {
        Some(r) => r,
        None => match loc {
            Loc::Dir(dir) => sys::openat(dir, METADATA, METADATA_FLAGS, 0),
            Loc::Entry { run, name } => {
                let dir = sys::openat(run, name, sys::DIR_FLAGS, 0)
                    .map_err(|e| open_dir_error(path.to_path_buf(), e))?;
                if let (Some(a), Some(b)) = (sys::mount_id(run), sys::mount_id(dir.as_fd()))
                    && a != b
                {
                    return Err(mount_point(path));
                }
                sys::openat(dir.as_fd(), METADATA, METADATA_FLAGS, 0)
            }
        },
    };
    opened.map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => symlink_error(),
        // Under RESOLVE_NO_XDEV: a mount point on the way (never looked
        // into, so never lstat'ed either).
        Some(libc::EXDEV) => mount_point(path),
        Some(libc::ENOTDIR) => open_dir_error(path.to_path_buf(), e),
        // A socket (ENXIO) or a device without a driver (ENXIO, ENODEV)
        // cannot be opened at all: as malformed as a FIFO.
        Some(libc::ENXIO) | Some(libc::ENODEV) => Broken::parse(
            Reason::ParseError,
            meta_path(),
            "metadata.toml is not a regular file",
        ),
        _ => Broken::new(Reason::IoError, StackError::io("open", meta_path(), e)),
    })
}

/// Reads and validates the marker at `loc` (`path` names it in messages and
/// in `listen`). The metadata's descriptor, once read, goes to `fds`.
pub(crate) fn read_marker(
    loc: Loc<'_>,
    path: PathBuf,
    fds: &mut sys::MarkerFds,
) -> std::result::Result<Marker, Broken> {
    let file = open_metadata(loc, &path)?;
    // Only errors name the file: build its path only for them.
    let meta_path = || path.join("metadata.toml");
    let st = sys::fstat(file.as_fd())
        .map_err(|e| Broken::new(Reason::IoError, StackError::io("stat", meta_path(), e)))?;
    let parse = |why: String| Broken::parse(Reason::ParseError, meta_path(), why);
    if !sys::is_reg(&st) {
        return Err(parse("metadata.toml is not a regular file".into()));
    }
    let too_big = || {
        parse(format!(
            "metadata.toml is larger than {MAX_METADATA_BYTES} bytes"
        ))
    };
    if st.st_size as u64 > MAX_METADATA_BYTES as u64 {
        return Err(too_big());
    }
    let bytes = sys::read_capped(file.as_fd(), st.st_size as usize, MAX_METADATA_BYTES)
        .map_err(|e| Broken::new(Reason::IoError, StackError::io("read", meta_path(), e)))?
        .ok_or_else(too_big)?;
    fds.keep(file);
    let meta = parse_metadata(&bytes).map_err(parse)?;
    let endpoint = parse_listen(meta.listen.as_deref()).map_err(parse)?;
    let dir_name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    if meta.sandbox_id.as_bytes() != dir_name {
        let directory = String::from_utf8_lossy(dir_name).into_owned();
        return Err(Broken::new(
            Reason::IdMismatch,
            StackError::IdentityMismatch {
                path,
                directory,
                metadata: meta.sandbox_id,
            },
        ));
    }
    Ok(Marker {
        path,
        meta,
        endpoint,
        meta_id: MetaId::of(&st, &bytes),
        meta_owner: (st.st_uid, st.st_mode),
    })
}

/// Seconds since `sidecar.pid` was modified; `None` when it is absent, not a
/// regular file, behind a mount point, or its mtime lies in the future.
/// (Opened `O_PATH` without crossing a mount, so a hung filesystem mounted
/// over it is never asked; the descriptor goes to `fds`.)
pub(crate) fn uptime_secs(
    loc: Loc<'_>,
    path: &Path,
    now: SystemTime,
    fds: &mut sys::MarkerFds,
) -> Result<Option<u64>> {
    let rel = loc.rel(PID_FILE);
    let opened = fds.open(|| {
        sys::openat2(
            loc.base(),
            &rel,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            sys::RESOLVE_NO_XDEV_STRICT,
        )
    });
    let st = match opened {
        Some(Ok(fd)) => {
            let st = sys::fstat(fd.as_fd());
            fds.keep(fd);
            st
        }
        Some(Err(e)) => Err(e),
        None => sys::lstatat(loc.base(), &rel),
    };
    match st {
        Ok(st) if sys::is_reg(&st) => Ok(uptime(&st, now)),
        Ok(_) => Ok(None),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) | Some(libc::EXDEV)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(StackError::io("stat", path.join("sidecar.pid"), e)),
    }
}

fn uptime(st: &libc::stat, now: SystemTime) -> Option<u64> {
    if st.st_mtime < 0 {
        return None;
    }
    let mtime = SystemTime::UNIX_EPOCH
        + Duration::new(
            st.st_mtime as u64,
            st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
        );
    now.duration_since(mtime).ok().map(|d| d.as_secs())
}

/// Opens `run/`, reads the marker `run/<sandbox_id>` and hands both to `f`,
/// with what the trust checks found (the one lookup by id, for `get` and
/// `stop`); `None` when there is no such marker directory. With `need`
/// (the action, for `stop`), a directory that fails the trust checks
/// refuses with `untrusted_directory` before any marker is read, even when
/// there is none.
pub(crate) fn with_marker<R>(
    runtime_dir: &Path,
    sandbox_id: &str,
    need: Option<&'static str>,
    f: impl FnOnce(BorrowedFd<'_>, &CString, Marker, &Trust) -> R,
) -> Result<Option<R>> {
    validate_sandbox_id(sandbox_id)?;
    let dirs = trust::open_dirs(runtime_dir)?;
    if let (Some(action), Some(trust)) = (need, &dirs.trust) {
        trust.require(action)?;
    }
    let Some(trust::RunDir {
        fd: run,
        path: run_path,
        trust,
    }) = dirs.run
    else {
        return Ok(None);
    };
    let name = CString::new(sandbox_id).expect("validated id has no NUL");
    let loc = Loc::Entry {
        run: run.as_fd(),
        name: &name,
    };
    let marker = match read_marker(
        loc,
        run_path.join(sandbox_id),
        &mut sys::MarkerFds::default(),
    ) {
        Ok(m) => m,
        // No marker directory at all is "absent"; a directory without
        // metadata.toml is a broken marker and stays an error.
        Err(e) if e.is_not_found() && is_absent(run.as_fd(), &name) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(f(run.as_fd(), &name, marker, &trust)))
}

pub(crate) fn is_absent(run: BorrowedFd<'_>, name: &CStr) -> bool {
    matches!(sys::lstatat(run, name), Err(e) if e.raw_os_error() == Some(libc::ENOENT))
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
