//! The lock that serialises concurrent stops of one marker, kept where only
//! the caller can write.
//!
//! Two stops of one marker must not both signal: one takes this lock and
//! signals, the others wait for the exit it causes. The lock used to be a
//! `flock` on the marker directory, which the marker's owner — untrusted —
//! can open and lock too: root's stop then only waited, sent nothing, and
//! failed after the grace period. So the lock now lives in a directory of
//! the caller's own, which nobody else can write:
//!
//! - euid 0: `/run/firma-stop-locks` (then `/tmp/firma-stop-locks-0`);
//! - any other euid: `$XDG_RUNTIME_DIR/firma-stop-locks` when
//!   `$XDG_RUNTIME_DIR` is absolute, owned by the caller and writable by
//!   nobody else; else `/tmp/firma-stop-locks-<euid>`.
//!
//! Each is created `0700` with `mkdirat` and used only once `openat`
//! (`O_DIRECTORY|O_NOFOLLOW`) and `fstat` on the opened descriptor show a
//! directory owned by the caller's euid without group or other write
//! permission. Inside it, `<dev>-<ino>` of the marker's `run/` (hex) is a
//! directory of the same kind, and the lock is the file named by the
//! sandbox id in it, opened `O_CREAT|O_NOFOLLOW|O_CLOEXEC` mode 0600 and
//! locked `flock(LOCK_EX|LOCK_NB)`.
//!
//! The holder removes its lock file (and the `<dev>-<ino>` directory, when
//! empty) before releasing it, so nothing accumulates. A taker that opened
//! the file just before that removal may then lock an inode no longer named:
//! after locking, it checks that the name still leads to the very inode it
//! locked, with a link count above zero, and starts again otherwise. A
//! `<dev>-<ino>` directory removed under a taker makes its `openat` fail
//! with `ENOENT`, and it starts again too.
//!
//! When no such directory can be had — `/tmp/firma-stop-locks-<euid>` held
//! by someone else, a read-only `/run`, no inodes left — the stop goes on
//! *without* cross-process serialisation: the lock only keeps concurrent
//! stops from signalling twice, it protects nothing, so nobody's lock (or
//! squatted name) may stall or veto a stop.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use super::sys;

/// How often a stop that waits for another one's signal looks again at the
/// lock (it takes over when the other stop ended with the process alive).
pub(super) const RETRY_EVERY: Duration = Duration::from_millis(50);

/// How many times a taker starts again after a holder removed the file or
/// directory it had opened. Only stops of the caller's own race here.
const ATTEMPTS: u32 = 64;

/// The stop lock of one marker, held until dropped (or this call proceeds
/// without one; see the module documentation).
pub(super) struct StopLock {
    // Only held: dropping it releases the lock (None: unserialised).
    _held: Option<Held>,
}

/// A lock file this process has locked: removed, then released, on drop.
struct Held {
    root: OwnedFd,
    sub: CString,
    dir: OwnedFd,
    name: CString,
    // Closed after `Drop::drop` removed the names: that releases the lock.
    _file: OwnedFd,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Removed while still locked, so no one can lock this inode and
        // believe it is the lock (takers check the name after locking).
        let _ = sys::unlinkat(self.dir.as_fd(), &self.name, 0);
        // The last lock of this run/ takes its directory with it; another
        // stop's file in it makes this fail with ENOTEMPTY, as it should.
        let _ = sys::unlinkat(self.root.as_fd(), &self.sub, libc::AT_REMOVEDIR);
    }
}

/// The outcome of [`take`].
pub(super) enum Taken {
    /// This call may signal: it holds the lock, or there is no private
    /// place for one (then it proceeds unserialised).
    Go(StopLock),
    /// Another stop of this marker, by a process of the caller's own euid,
    /// holds the lock.
    Busy,
}

/// Takes the stop lock of the marker `sandbox_id` in the `run/` directory
/// `run`, without waiting.
pub(super) fn take(run: BorrowedFd<'_>, sandbox_id: &CStr) -> Taken {
    let unserialised = || Taken::Go(StopLock { _held: None });
    let Some(root) = private_root() else {
        return unserialised();
    };
    let Ok(st) = sys::fstat(run) else {
        return unserialised();
    };
    let sub = CString::new(format!("{:x}-{:x}", st.st_dev, st.st_ino))
        .expect("no NUL in a formatted name");
    for _ in 0..ATTEMPTS {
        match try_once(&root, &sub, sandbox_id) {
            Attempt::Held(dir, file) => {
                return Taken::Go(StopLock {
                    _held: Some(Held {
                        root,
                        sub,
                        dir,
                        name: sandbox_id.to_owned(),
                        _file: file,
                    }),
                });
            }
            Attempt::Busy => return Taken::Busy,
            Attempt::Again => continue,
            Attempt::Unavailable => return unserialised(),
        }
    }
    unserialised()
}

enum Attempt {
    Held(OwnedFd, OwnedFd),
    Busy,
    /// A holder removed what this attempt opened: start again.
    Again,
    /// No usable lock here: proceed without one.
    Unavailable,
}

fn try_once(root: &OwnedFd, sub: &CStr, name: &CStr) -> Attempt {
    let euid = euid();
    let dir = match private_dir(root.as_fd(), sub, euid) {
        Ok(Some(dir)) => dir,
        Ok(None) => return Attempt::Unavailable,
        // Removed by the last holder between mkdirat and openat.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Attempt::Again,
        Err(_) => return Attempt::Unavailable,
    };
    let flags = libc::O_RDONLY
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_CLOEXEC
        | libc::O_NONBLOCK
        | libc::O_NOCTTY;
    let file = match sys::openat(dir.as_fd(), name, flags, 0o600) {
        Ok(file) => file,
        // The directory was removed after we opened it: it was empty.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Attempt::Again,
        Err(_) => return Attempt::Unavailable,
    };
    match sys::fstat(file.as_fd()) {
        Ok(st) if sys::is_reg(&st) && st.st_uid == euid => {}
        _ => return Attempt::Unavailable,
    }
    if let Err(e) = sys::flock_exclusive_nonblocking(file.as_fd()) {
        return match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Attempt::Busy,
            Some(libc::EINTR) => Attempt::Again,
            _ => Attempt::Unavailable,
        };
    }
    if still_named(dir.as_fd(), name, file.as_fd()) {
        Attempt::Held(dir, file)
    } else {
        Attempt::Again
    }
}

/// Whether `name` in `dir` still leads to the inode `file` is open on, and
/// that inode is still linked: a file its holder removed before releasing
/// it can be locked, but it is no longer the lock.
fn still_named(dir: BorrowedFd<'_>, name: &CStr, file: BorrowedFd<'_>) -> bool {
    match (sys::fstat(file), sys::lstatat(dir, name)) {
        (Ok(held), Ok(named)) => {
            held.st_nlink > 0 && (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
        }
        _ => false,
    }
}

fn euid() -> libc::uid_t {
    sys::geteuid()
}

/// Whether `st` is a directory only `euid` can write: owned by `euid`, no
/// group or other write permission.
fn private(st: &libc::stat, euid: libc::uid_t) -> bool {
    sys::is_dir(st) && st.st_uid == euid && st.st_mode & 0o022 == 0
}

/// `name` in `parent`, created `0700` when missing, opened without
/// following a symlink: `Ok(None)` unless the opened directory is
/// [`private`] to `euid`.
fn private_dir(
    parent: BorrowedFd<'_>,
    name: &CStr,
    euid: libc::uid_t,
) -> io::Result<Option<OwnedFd>> {
    // EEXIST is the usual case; anything else shows in the open.
    let _ = sys::mkdirat(parent, name, 0o700);
    let dir = sys::openat(parent, name, sys::DIR_FLAGS, 0)?;
    let st = sys::fstat(dir.as_fd())?;
    Ok(private(&st, euid).then_some(dir))
}

/// The caller's private lock directory (see the module documentation), or
/// `None` when there is none to be had.
fn private_root() -> Option<OwnedFd> {
    let euid = euid();
    let in_dir = |parent: &OwnedFd, name: &CStr| private_dir(parent.as_fd(), name, euid).ok()?;
    let open_dir = |path: &OsStr| {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        sys::open(Path::new(path), flags).ok()
    };
    if euid == 0 {
        if let Some(dir) =
            open_dir(OsStr::new("/run")).and_then(|run| in_dir(&run, c"firma-stop-locks"))
        {
            return Some(dir);
        }
    } else if let Some(xdg) =
        std::env::var_os("XDG_RUNTIME_DIR").filter(|x| x.as_bytes().starts_with(b"/"))
    {
        // The runtime directory itself must be the caller's alone; its last
        // component may be a symlink (as the XDG rules allow), what counts
        // is the directory opened.
        let owned =
            open_dir(&xdg).filter(|d| sys::fstat(d.as_fd()).is_ok_and(|st| private(&st, euid)));
        if let Some(dir) = owned.and_then(|xdg| in_dir(&xdg, c"firma-stop-locks")) {
            return Some(dir);
        }
    }
    let name =
        CString::new(format!("firma-stop-locks-{euid}")).expect("no NUL in a formatted name");
    open_dir(OsStr::new("/tmp")).and_then(|tmp| in_dir(&tmp, &name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn dir_fd(path: &std::path::Path) -> OwnedFd {
        sys::open(path, sys::DIR_FLAGS).unwrap()
    }

    #[test]
    fn a_private_directory_is_the_callers_alone_or_refused() {
        let euid = euid();
        let t = tempfile::tempdir().unwrap();
        let parent = dir_fd(t.path());
        // Created 0700 (the umask only removes bits) and accepted.
        let made = private_dir(parent.as_fd(), c"made", euid).unwrap().unwrap();
        let st = sys::fstat(made.as_fd()).unwrap();
        assert_eq!((st.st_uid, st.st_mode & 0o7777 & !0o700), (euid, 0));
        // Reopened as it is.
        assert!(
            private_dir(parent.as_fd(), c"made", euid)
                .unwrap()
                .is_some()
        );
        // Writable by group or others: refused, and left as it is.
        for mode in [0o770, 0o707, 0o1777] {
            let p = t.path().join(format!("open-{mode:o}"));
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let name = CString::new(format!("open-{mode:o}")).unwrap();
            assert!(
                private_dir(parent.as_fd(), &name, euid).unwrap().is_none(),
                "{mode:o}"
            );
            let after = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(after, mode);
        }
        // Someone else's: refused (as any other euid sees the caller's).
        assert!(
            private_dir(parent.as_fd(), c"made", euid + 1)
                .unwrap()
                .is_none()
        );
        // A symlink to a private directory, and a plain file: never used.
        symlink(t.path().join("made"), t.path().join("link")).unwrap();
        // (O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR, or ELOOP.)
        let e = private_dir(parent.as_fd(), c"link", euid).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)),
            "{e}"
        );
        std::fs::write(t.path().join("file"), "").unwrap();
        let e = private_dir(parent.as_fd(), c"file", euid).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn a_lock_file_unlinked_or_replaced_after_it_was_opened_is_not_the_lock() {
        let t = tempfile::tempdir().unwrap();
        let dir = dir_fd(t.path());
        let open = || {
            sys::openat(
                dir.as_fd(),
                c"id",
                libc::O_RDONLY | libc::O_CREAT | libc::O_CLOEXEC,
                0o600,
            )
            .unwrap()
        };
        let file = open();
        assert!(still_named(dir.as_fd(), c"id", file.as_fd()));
        sys::unlinkat(dir.as_fd(), c"id", 0).unwrap();
        assert!(!still_named(dir.as_fd(), c"id", file.as_fd()));
        let other = open();
        assert!(!still_named(dir.as_fd(), c"id", file.as_fd()));
        assert!(still_named(dir.as_fd(), c"id", other.as_fd()));
    }

    #[test]
    fn one_taker_holds_the_others_are_busy_and_release_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let run = dir_fd(t.path());
        let Taken::Go(first) = take(run.as_fd(), c"sb-1") else {
            panic!("the first taker must go");
        };
        let held = first._held.as_ref().expect("a private lock directory here");
        let (root_st, sub) = (sys::fstat(held.root.as_fd()).unwrap(), held.sub.clone());
        assert!(private(&root_st, euid()));
        // Another marker of the same run/ has a lock of its own.
        let Taken::Go(other) = take(run.as_fd(), c"sb-2") else {
            panic!("another marker's lock is free");
        };
        for _ in 0..3 {
            assert!(matches!(take(run.as_fd(), c"sb-1"), Taken::Busy));
        }
        drop(first);
        let Taken::Go(again) = take(run.as_fd(), c"sb-1") else {
            panic!("released");
        };
        let again = again._held.expect("a private lock directory here");
        let root = again.root.try_clone().unwrap();
        drop(again);
        drop(other);
        // Nothing is left for this run/: no lock file, no directory.
        let e = sys::lstatat(root.as_fd(), &sub).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
