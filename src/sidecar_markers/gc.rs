//! Removing marker directories without ever racing another collector into a
//! half-removed marker.
//!
//! A marker leaves the namespace in one atomic step: it is renamed (with
//! `RENAME_NOREPLACE`) to a reserved name `.gc-<pid>-<pidns>-<random>` in
//! `run/`, and only the caller whose rename succeeded reports it. Before
//! anything is removed, the collector proves the tomb holds the very
//! `metadata.toml` it judged ([`holds_judged`]); otherwise the tree is put
//! back, or set aside under `.kept-…` when its name was taken meanwhile.
//! The renamed tree is removed afterwards; if that is interrupted, the
//! leftover is finished by a later scan ([`finish_leftover`]), but only
//! when `reserved::judge_debris` proves it the library's own and its maker
//! gone (docs/design.md, "Trust", "Debris").

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::read::{MAX_METADATA_BYTES, METADATA, MetaId};
use super::reserved::{GC_PREFIX, KEPT_PREFIX, Seen, reserved_name};
use super::sys;

/// Deepest directory nesting we remove; marker dirs are flat, and a deeper
/// tree is left for a human rather than recursed into without bound.
const MAX_DEPTH: usize = 8;

/// Moves `run/<name>` out of the namespace. `judged` identifies the
/// `metadata.toml` the caller judged stale: unless the tree moved holds that
/// very file (same device and inode, same bytes), it is put back and
/// `Ok(false)` returned. `Ok(false)` too when another caller took it first.
/// `Ok(true)`: it left the namespace through this call, which reports it
/// (its removal is best effort).
pub(crate) fn take(run: BorrowedFd<'_>, name: &CStr, judged: Option<MetaId>) -> io::Result<bool> {
    let tomb = loop {
        let tomb = reserved_name(GC_PREFIX);
        // (The tomb is ours alone while we live: scans only finish reserved
        // names whose maker is provably gone.)
        match sys::rename_noreplace(run, name, run, &tomb) {
            Ok(()) => break tomb,
            // Taken already (unguessable names make this a dead process's
            // leftover, or a plant): pick another.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(e),
        }
    };
    // The tomb is opened once (no symlink, no mount crossed), checked, and
    // emptied through that one descriptor: what is removed is what was
    // checked, even if someone renamed another tree to the tomb's name.
    let checked = match judged {
        None => None,
        Some(judged) => {
            let held = match open_subdir(run, &tomb) {
                Ok(dir) => {
                    holds_judged(dir.as_fd(), METADATA, &judged).map(|same| same.then_some(dir))
                }
                // Not a directory, or a mount point: not the judged marker.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOTDIR | libc::ELOOP | libc::EXDEV)
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            };
            match held {
                Ok(Some(dir)) => Some(dir),
                // Replaced (or changed) between our read and the rename:
                // not ours to delete.
                Ok(None) => {
                    put_back(run, &tomb, name)?;
                    return Ok(false);
                }
                Err(e) => {
                    let _ = put_back(run, &tomb, name);
                    return Err(e);
                }
            }
        }
    };
    // The marker has left the namespace: it is ours to report whatever
    // happens next. Removal is best effort; what cannot be removed now (say,
    // a tree nested deeper than we recurse) stays under the tomb name and
    // is finished by a scan after this process is gone.
    let _ = match checked {
        Some(dir) => remove_opened(run, &tomb, dir, 0),
        None => remove_tree(run, &tomb, 0),
    };
    Ok(true)
}

/// Puts a tree that is not the judged marker back from `tomb` to `name`.
/// When that fails — the name was taken again meanwhile — the tree goes
/// to a `.kept-…` name, which no scan ever removes: left under the tomb
/// name, a scan after this process exits would finish it as debris, and
/// delete a marker nobody judged.
pub(crate) fn put_back(run: BorrowedFd<'_>, tomb: &CStr, name: &CStr) -> io::Result<()> {
    let Err(first) = sys::rename_noreplace(run, tomb, run, name) else {
        return Ok(());
    };
    loop {
        let kept = reserved_name(KEPT_PREFIX);
        match sys::rename_noreplace(run, tomb, run, &kept) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            // Neither rename worked: report the first failure (the tree
            // stays under the tomb name, left alone while we live).
            Err(_) => return Err(first),
        }
    }
}

/// Whether the file `name` in the marker directory `dir` is the very
/// `metadata.toml` that `judged` identifies: a regular file with the same
/// device and inode **and** the same bytes. The one test of "still the
/// marker that was judged", used by collection ([`take`]) and by `stop`'s
/// lock. Opened without following a symlink or crossing a mount point
/// (`openat2` `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`, else
/// `O_NOFOLLOW` and mount ids compared), non-blocking, read up to the cap.
/// `Ok(false)` for anything else there (nothing, a symlink, a mount, a FIFO,
/// another file, other bytes); `Err` only when the check itself failed.
pub(crate) fn holds_judged(dir: BorrowedFd<'_>, name: &CStr, judged: &MetaId) -> io::Result<bool> {
    let file = match open_file_here(dir, name) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(
                    libc::ENOENT
                        | libc::ENOTDIR
                        | libc::ELOOP
                        | libc::EXDEV
                        | libc::ENXIO
                        | libc::ENODEV
                )
            ) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let st = sys::fstat(file.as_fd())?;
    if !sys::is_reg(&st)
        || (st.st_dev, st.st_ino) != (judged.dev, judged.ino)
        || st.st_size < 0
        || st.st_size as u64 > MAX_METADATA_BYTES as u64
    {
        return Ok(false);
    }
    match sys::read_capped(file.as_fd(), st.st_size as usize, MAX_METADATA_BYTES)? {
        Some(bytes) => Ok(MetaId::of(&st, &bytes) == *judged),
        None => Ok(false),
    }
}

/// Opens the file `name` in `dir` for reading without following a symlink
/// or crossing a mount point (a mount point is `EXDEV`).
fn open_file_here(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    const FLAGS: libc::c_int =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if let Some(r) = sys::openat2(dir, name, FLAGS, sys::RESOLVE_NO_XDEV_STRICT) {
        return r;
    }
    let file = sys::openat(dir, name, FLAGS, 0)?;
    match (sys::mount_id(dir), sys::mount_id(file.as_fd())) {
        (Some(a), Some(b)) if a != b => Err(io::Error::from_raw_os_error(libc::EXDEV)),
        _ => Ok(file),
    }
}

/// Finishes the removal of a leftover reserved name that `reserved::judge_debris`
/// called debris, provided it is still the entry judged (`seen`): a
/// directory is opened once and emptied through that descriptor, so a tree
/// renamed to the name after the judgement is never touched. Another scan
/// may be removing it at the same time; everything it removed first is fine.
pub(crate) fn finish_leftover(run: BorrowedFd<'_>, name: &CStr, seen: Seen) -> io::Result<()> {
    match open_subdir(run, name) {
        Ok(dir) => {
            let st = sys::fstat(dir.as_fd())?;
            if (st.st_dev, st.st_ino) != (seen.dev, seen.ino) {
                return Ok(());
            }
            remove_opened(run, name, dir, 0)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        // Not a directory (a file or symlink under a reserved name): only
        // ever unlinked, never followed; a directory swapped in meanwhile
        // is refused by unlinkat (EISDIR).
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
            ignore_enoent(sys::unlinkat(run, name, 0))
        }
        Err(e) => Err(e),
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
    remove_opened(parent, name, dir, depth)
}

/// Removes everything in `dir`, the open directory `parent/<name>`, then
/// `parent/<name>` itself (see [`remove_tree`]).
fn remove_opened(
    parent: BorrowedFd<'_>,
    name: &CStr,
    dir: OwnedFd,
    depth: usize,
) -> io::Result<()> {
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

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "gc_pins_tests.rs"]
mod pins;
