//! Removing marker directories without ever racing another collector into a
//! half-removed marker.
//!
//! A marker leaves the namespace in one atomic step: it is renamed (with
//! `RENAME_NOREPLACE`) to a reserved name `.gc-<pid>-<n>` in `run/`, and only
//! the caller whose rename succeeded reports it. The renamed tree is removed
//! afterwards; if that is interrupted, the leftover `.gc-*` directory is
//! finished by a later collection. Listings never show dot-names.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::sys;

/// Prefix of a marker being removed: `.gc-<collector pid>-<n>`.
pub(crate) const GC_PREFIX: &str = ".gc-";

/// The owner pid encoded in a reserved name (`.gc-<pid>-<n>` of a
/// collector, `.tmp-<pid>-<n>` of a writer), if `name` is one.
pub(crate) fn reserved_owner(name: &[u8]) -> Option<u32> {
    let rest = name
        .strip_prefix(GC_PREFIX.as_bytes())
        .or_else(|| name.strip_prefix(super::writer::TMP_PREFIX.as_bytes()))?;
    let pid = rest.split(|&b| b == b'-').next()?;
    std::str::from_utf8(pid)
        .ok()?
        .parse()
        .ok()
        .filter(|p| (1..=super::MAX_PID).contains(p))
}
/// Deepest directory nesting we remove; marker dirs are flat, and a deeper
/// tree is left for a human rather than recursed into without bound.
const MAX_DEPTH: usize = 8;

static SEQ: AtomicU64 = AtomicU64::new(0);

fn tomb_name() -> CString {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    CString::new(format!("{GC_PREFIX}{}-{n}", std::process::id()))
        .expect("no NUL in a formatted name")
}

/// Moves `run/<name>` out of the namespace. `expect` is the (dev, ino) of
/// the `metadata.toml` the caller judged stale: if `name` now holds another
/// marker, it is put back and `Ok(false)` returned. `Ok(false)` too when
/// another caller took it first. `Ok(true)`: it left the namespace through
/// this call, which reports it (its removal is best effort).
pub(crate) fn take(
    run: BorrowedFd<'_>,
    name: &CStr,
    expect: Option<(u64, u64)>,
) -> io::Result<bool> {
    let tomb = loop {
        let tomb = tomb_name();
        // (The tomb is ours alone while we live: scans only finish reserved
        // names whose owner pid is gone.)
        match sys::rename_noreplace(run, name, run, &tomb) {
            Ok(()) => break tomb,
            // A dead process with our pid left this name behind: pick another.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(e),
        }
    };
    if let Some(expect) = expect {
        let mut meta = tomb.as_bytes().to_vec();
        meta.extend_from_slice(b"/metadata.toml");
        let meta = CString::new(meta).expect("no NUL");
        let same = match stat_beneath(run, &meta) {
            Ok(st) => (st.st_dev, st.st_ino) == expect,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EXDEV)) => false,
            Err(e) => {
                let _ = sys::rename_noreplace(run, &tomb, run, name);
                return Err(e);
            }
        };
        if !same {
            // Replaced between our read and the rename: not ours to delete.
            // If the name was taken again meanwhile, the tree stays under
            // the tomb name rather than being deleted unjudged.
            sys::rename_noreplace(run, &tomb, run, name)?;
            return Ok(false);
        }
    }
    // The marker has left the namespace: it is ours to report whatever
    // happens next. Removal is best effort; what cannot be removed now (say,
    // a tree nested deeper than we recurse) stays under the tomb name and
    // is finished by a scan after this process is gone.
    let _ = remove_tree(run, &tomb, 0);
    Ok(true)
}

/// Finishes the removal of a leftover reserved name whose owner is gone.
/// Another scan may be removing it at the same time; everything it removed
/// first is fine.
pub(crate) fn finish_leftover(run: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    remove_tree(run, name, 0)
}

/// `stat` of `rel` beneath `dir` without following a symlink or crossing
/// a mount point (`openat2` `O_PATH`, then `fstat`).
fn stat_beneath(dir: BorrowedFd<'_>, rel: &CStr) -> io::Result<libc::stat> {
    match sys::openat2(
        dir,
        rel,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        sys::RESOLVE_NO_XDEV_STRICT,
    ) {
        Some(fd) => sys::fstat(fd?.as_fd()),
        None => sys::lstatat(dir, rel),
    }
}

/// Opens the directory `parent/<name>` for removal without following a
/// symlink or entering another mount (`EXDEV`): a mount point inside a
/// marker — a bind mount of the same filesystem included — is never
/// descended into, so nothing behind it is deleted.
fn open_subdir(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    match sys::openat2(parent, name, sys::DIR_FLAGS, sys::RESOLVE_NO_XDEV_STRICT) {
        Some(r) => r,
        None => {
            let dir = sys::openat(parent, name, sys::DIR_FLAGS, 0)?;
            match (sys::mount_id(parent), sys::mount_id(dir.as_fd())) {
                (Some(a), Some(b)) if a != b => Err(io::Error::from_raw_os_error(libc::EXDEV)),
                _ => Ok(dir),
            }
        }
    }
}

/// Removes `parent/<name>` and everything beneath it, never following a
/// symlink and never crossing a mount point. Entries that vanish meanwhile
/// are not errors. What cannot be removed (a mount point, an immutable
/// file, a tree nested deeper than [`MAX_DEPTH`]) stays; the rest is still
/// removed, and the first error is returned.
pub(crate) fn remove_tree(parent: BorrowedFd<'_>, name: &CStr, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(
            "directory tree nested too deeply to remove",
        ));
    }
    let dir = match open_subdir(parent, name) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
            return ignore_enoent(sys::unlinkat(parent, name, 0));
        }
        Err(e) => return Err(e),
    };
    let mut first_err: Option<io::Error> = None;
    let mut note = |r: io::Result<()>| {
        if let Err(e) = r
            && first_err.is_none()
        {
            first_err = Some(e);
        }
    };
    match sys::read_dir(dir.as_fd()) {
        Ok(entries) => {
            for entry in entries {
                if entry.d_type == libc::DT_DIR {
                    note(remove_tree(dir.as_fd(), &entry.name, depth + 1));
                    continue;
                }
                match sys::unlinkat(dir.as_fd(), &entry.name, 0) {
                    Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                        note(remove_tree(dir.as_fd(), &entry.name, depth + 1))
                    }
                    other => note(ignore_enoent(other)),
                }
            }
        }
        Err(e) => note(Err(e)),
    }
    note(ignore_enoent(sys::unlinkat(
        parent,
        name,
        libc::AT_REMOVEDIR,
    )));
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn ignore_enoent(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}
