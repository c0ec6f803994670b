//! Whether a runtime directory may be acted on: the trust checks of
//! docs/design.md, "Trust" ("A trusted runtime directory").
//!
//! Everything is decided on open descriptors (`fstat`), never on a path
//! that could change between the check and the use:
//!
//! 1. the last component of the runtime directory is not followed when it
//!    is a symlink owned by someone other than the caller (effective uid)
//!    or root; a symlink it may follow is read (`readlinkat` on the
//!    `O_PATH` descriptor of the very link whose owner was checked) and its
//!    target checked the same way, so the kernel never resolves a link the
//!    library did not judge;
//! 2. the runtime directory is writable by its owner only;
//! 3. `run/` (opened with `O_NOFOLLOW` relative to the runtime directory's
//!    descriptor) is writable by its owner only, or is *shared*: sticky, so
//!    each tenant can remove only its own entries;
//! 4. `run/` and the runtime directory have the same owner, or one of them
//!    is root.
//!
//! Besides, `/tmp/firma-<euid>`, the caller's last-resort default, must be
//! the caller's own: anyone could have created it first.
//!
//! A directory that fails a check is still read (`list`, `get`, `inspect`,
//! `watch` answer, collecting nothing); what removes, signals or writes
//! calls [`Trust::require`] (the writer [`Trust::require_writer`]) and
//! refuses with `untrusted_directory`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::error::{Result, StackError};
use super::paths::{caller_path, last_resort};
use super::sys;

/// Symlinks followed at most, one after the other, for the runtime
/// directory's last component (each one checked).
const MAX_HOPS: usize = 8;

/// `run/`, open, with what the checks found.
pub(crate) struct RunDir {
    pub fd: OwnedFd,
    /// `<runtime_dir>/run`, absolute (lexically), for messages.
    pub path: PathBuf,
    pub trust: Trust,
}

/// What the checks found about a runtime directory and its `run/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Trust {
    runtime_owner: u32,
    runtime_mode: u32,
    /// The runtime directory's when `run/` does not exist (yet).
    run_owner: u32,
    run_mode: u32,
    /// `run/` is sticky and writable by others: a directory of tenants.
    shared: bool,
    /// The first check that failed, if any.
    problem: Option<Fault>,
}

/// A failed check: the directory at fault and why, for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fault {
    path: PathBuf,
    reason: String,
}

/// What opening a runtime directory gave.
pub(crate) struct Dirs {
    /// The runtime directory's descriptor (`O_PATH`); `None` when it does
    /// not exist or was not followed.
    pub runtime: Option<OwnedFd>,
    /// `None` only when the runtime directory does not exist.
    pub trust: Option<Trust>,
    /// `None` when `run/` does not exist (or the runtime directory was not
    /// followed).
    pub run: Option<RunDir>,
}

fn euid() -> u32 {
    sys::geteuid()
}

/// `uid 1001 (mallory)`, or `uid 1001` when `/etc/passwd` does not name it.
/// Read from the file, not through NSS: a message must not wait on a
/// directory service.
pub(crate) fn who(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({})", super::text::escape(&name)),
        None => format!("uid {uid}"),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let file = std::fs::File::open("/etc/passwd").ok()?;
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(file, 4 << 20), &mut text).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

fn mode_of(st: &libc::stat) -> u32 {
    st.st_mode & 0o7777
}

fn writable_by_others(mode: u32) -> bool {
    mode & 0o022 != 0
}

impl Trust {
    /// Judges a runtime directory (owner, mode) at `runtime_path` and its
    /// `run/` (`None`: missing) for `caller`.
    fn judge(
        caller: u32,
        runtime_path: &Path,
        (runtime_owner, runtime_mode): (u32, u32),
        run: Option<(&Path, u32, u32)>,
    ) -> Trust {
        let (run_owner, run_mode) = run.map_or((runtime_owner, 0), |(_, o, m)| (o, m));
        let shared = run.is_some() && writable_by_others(run_mode) && run_mode & 0o1000 != 0;
        let fault = |path: &Path, reason: String| {
            Some(Fault {
                path: path.to_path_buf(),
                reason,
            })
        };
        let problem = if writable_by_others(runtime_mode) {
            fault(
                runtime_path,
                format!(
                    "it is writable by group or others (owner {}, mode {runtime_mode:04o}); \
                     only its owner may write it: chmod go-w, or use a private directory \
                     (FIRMA_STATE_DIR)",
                    who(runtime_owner)
                ),
            )
        } else if runtime_owner != caller && runtime_path == last_resort(caller) {
            fault(
                runtime_path,
                format!(
                    "it is the last-resort default of uid {caller} but owned by {} \
                     (mode {runtime_mode:04o}): someone else created it first; remove it, \
                     or set FIRMA_STATE_DIR or XDG_RUNTIME_DIR",
                    who(runtime_owner)
                ),
            )
        } else if let Some((run_path, _, _)) = run
            && writable_by_others(run_mode)
            && !shared
        {
            fault(
                run_path,
                format!(
                    "it is writable by group or others and not sticky (owner {}, mode \
                     {run_mode:04o}); make it writable by its owner only (chmod go-w), or \
                     shared (chmod 1777: each tenant removes only its own entries)",
                    who(run_owner)
                ),
            )
        } else if let Some((run_path, _, _)) = run
            && run_owner != runtime_owner
            && run_owner != 0
            && runtime_owner != 0
        {
            fault(
                run_path,
                format!(
                    "it is owned by {} but the runtime directory by {}; they must have \
                     the same owner, or one of them must be root",
                    who(run_owner),
                    who(runtime_owner)
                ),
            )
        } else {
            None
        };
        Trust {
            runtime_owner,
            runtime_mode,
            run_owner,
            run_mode,
            shared,
            problem,
        }
    }

    /// A runtime directory that is a symlink owned by `owner`, neither the
    /// caller nor root: not followed, so nothing behind it is looked at.
    fn unfollowed(caller: u32, path: &Path, owner: u32, mode: u32) -> Trust {
        Trust {
            runtime_owner: owner,
            runtime_mode: mode,
            run_owner: owner,
            run_mode: 0,
            shared: false,
            problem: Some(Fault {
                path: path.to_path_buf(),
                reason: format!(
                    "it is a symlink owned by {}, neither the caller ({}) nor root, and is \
                     not followed; remove it, or name the directory it points to",
                    who(owner),
                    who(caller)
                ),
            }),
        }
    }

    /// Whether every check passed.
    pub(crate) fn is_trusted(&self) -> bool {
        self.problem.is_none()
    }

    /// Whether `run/` is shared (sticky and writable by others).
    #[allow(dead_code)] // For the authority checks (debris of a shared run/).
    pub(crate) fn shared(&self) -> bool {
        self.shared
    }

    /// The owner of `run/` (of the runtime directory while `run/` is
    /// missing): whose debris a scan may finish.
    #[allow(dead_code)] // For the authority checks (debris of run/'s owner).
    pub(crate) fn run_owner(&self) -> u32 {
        self.run_owner
    }

    /// The owners that bound what may be done here: the owners of the
    /// runtime directory and of `run/`, root excepted, each once. Root
    /// acting in a directory owned by U removes and signals only what U
    /// could.
    #[allow(dead_code)] // For the authority checks of stop and collection.
    pub(crate) fn bounding_owners(&self) -> impl Iterator<Item = u32> {
        let runtime = self.runtime_owner;
        let run = (self.run_owner != runtime).then_some(self.run_owner);
        std::iter::once(runtime).chain(run).filter(|&uid| uid != 0)
    }

    /// `Ok` when every check passed, else `untrusted_directory` for
    /// `action` (what was refused: "collect stale markers", ...).
    pub(crate) fn require(&self, action: &'static str) -> Result<()> {
        match &self.problem {
            None => Ok(()),
            Some(f) => Err(StackError::UntrustedDirectory {
                action,
                path: f.path.clone(),
                reason: f.reason.clone(),
            }),
        }
    }

    /// [`Trust::require`], and more for a writer: the runtime directory
    /// and `run/` are each owned by the caller or root, and a `run/` that
    /// is not the caller's is shared. A marker is never written where
    /// another user could rename, replace or read it from under its
    /// writer.
    pub(crate) fn require_writer(
        &self,
        action: &'static str,
        runtime_path: &Path,
        run_path: &Path,
    ) -> Result<()> {
        self.require(action)?;
        let caller = euid();
        let refuse = |path: &Path, reason: String| {
            Err(StackError::UntrustedDirectory {
                action,
                path: path.to_path_buf(),
                reason,
            })
        };
        let foreign = |owner: u32| owner != caller && owner != 0;
        for (path, owner, mode) in [
            (runtime_path, self.runtime_owner, self.runtime_mode),
            (run_path, self.run_owner, self.run_mode),
        ] {
            if foreign(owner) {
                return refuse(
                    path,
                    format!(
                        "it is owned by {} (mode {:04o}), neither the caller ({}) nor root; a \
                         marker is written only in a directory of its writer or root",
                        who(owner),
                        mode,
                        who(caller)
                    ),
                );
            }
        }
        if self.run_owner != caller && !self.shared {
            return refuse(
                run_path,
                format!(
                    "it is owned by {} and not shared (mode {:04o}); a tenant writes only \
                     in a sticky run/ (chmod 1777)",
                    who(self.run_owner),
                    self.run_mode
                ),
            );
        }
        Ok(())
    }

    /// One line for a person when a check failed: the directory and why.
    pub(crate) fn warning(&self) -> Option<String> {
        self.problem.as_ref().map(|f| {
            format!(
                "{} is not trusted: {}",
                super::text::path_string(&f.path),
                f.reason
            )
        })
    }
}

/// Where the runtime directory's last component is opened from.
enum Anchor {
    /// Opened relative to this directory under this name.
    At(OwnedFd, CString),
    /// A path without a last component to judge (`/`, or one ending in
    /// `..`): opened as it is.
    Whole(CString),
}

/// `p` split for opening: its parent opened (`O_PATH`, following links:
/// the caller named it), relative to `base` when `p` is relative.
fn anchor(base: Option<BorrowedFd<'_>>, p: &Path) -> io::Result<Anchor> {
    let Some(name) = p.file_name() else {
        return sys::cpath(p).map(Anchor::Whole);
    };
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let dir = match (parent, base) {
        (Some(d), Some(b)) if d.is_relative() => sys::openat(b, &sys::cpath(d)?, flags, 0)?,
        (Some(d), _) => sys::open(d, flags)?,
        (None, Some(b)) => b.try_clone_to_owned()?,
        (None, None) => sys::open(Path::new("."), flags)?,
    };
    Ok(Anchor::At(dir, sys::cstring(name)?))
}

/// The runtime directory, opened.
enum Runtime {
    Missing,
    /// A symlink the caller may not follow: its owner and mode.
    Unfollowed(u32, u32),
    Open(OwnedFd, libc::stat),
}

fn is_missing(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// Opens the runtime directory `path` (`O_PATH`), following its last
/// component only through symlinks owned by `caller` or root (check 1).
fn open_runtime(path: &Path, caller: u32) -> Result<Runtime> {
    let err = |e: io::Error| StackError::io("open", path, e);
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut target = path.to_path_buf();
    let mut base: Option<OwnedFd> = None;
    for _ in 0..=MAX_HOPS {
        let fd = match anchor(base.as_ref().map(AsFd::as_fd), &target) {
            Ok(Anchor::At(dir, name)) => {
                let r = sys::openat(dir.as_fd(), &name, flags, 0);
                base = Some(dir);
                r
            }
            Ok(Anchor::Whole(c)) => {
                let base = base.as_ref().map(AsFd::as_fd);
                sys::openat_or_cwd(base, &c, flags | libc::O_DIRECTORY, 0)
            }
            Err(e) => Err(e),
        };
        let fd = match fd {
            Ok(fd) => fd,
            Err(e) if is_missing(&e) => return Ok(Runtime::Missing),
            Err(e) => return Err(err(e)),
        };
        let st = sys::fstat(fd.as_fd()).map_err(err)?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => return Ok(Runtime::Open(fd, st)),
            libc::S_IFLNK if st.st_uid == caller || st.st_uid == 0 => {
                target = sys::read_link_fd(fd.as_fd()).map_err(err)?;
            }
            libc::S_IFLNK => return Ok(Runtime::Unfollowed(st.st_uid, mode_of(&st))),
            _ => return Err(err(io::Error::from_raw_os_error(libc::ENOTDIR))),
        }
    }
    Err(err(io::Error::from_raw_os_error(libc::ELOOP)))
}

/// Opens the runtime directory and its `run/` and runs the checks.
pub(crate) fn open_dirs(runtime_dir: &Path) -> Result<Dirs> {
    let path = caller_path(runtime_dir, "runtime_dir")?;
    let run_path = path.join("run");
    let caller = euid();
    let (runtime, st) = match open_runtime(&path, caller)? {
        Runtime::Missing => {
            return Ok(Dirs {
                runtime: None,
                trust: None,
                run: None,
            });
        }
        Runtime::Unfollowed(owner, mode) => {
            return Ok(Dirs {
                runtime: None,
                trust: Some(Trust::unfollowed(caller, &path, owner, mode)),
                run: None,
            });
        }
        Runtime::Open(fd, st) => (fd, st),
    };
    let runtime_stat = (st.st_uid, mode_of(&st));
    let run = match sys::openat(runtime.as_fd(), c"run", sys::DIR_FLAGS, 0) {
        Ok(fd) => fd,
        Err(e) if is_missing(&e) => {
            return Ok(Dirs {
                trust: Some(Trust::judge(caller, &path, runtime_stat, None)),
                runtime: Some(runtime),
                run: None,
            });
        }
        Err(_) if is_symlink_at(runtime.as_fd(), c"run") => {
            return Err(StackError::io(
                "open (refusing to follow a symlink)",
                run_path,
                io::Error::from_raw_os_error(libc::ELOOP),
            ));
        }
        Err(e) => return Err(StackError::io("open", run_path, e)),
    };
    let run_st = sys::fstat(run.as_fd()).map_err(|e| StackError::io("stat", &run_path, e))?;
    let trust = Trust::judge(
        caller,
        &path,
        runtime_stat,
        Some((&run_path, run_st.st_uid, mode_of(&run_st))),
    );
    Ok(Dirs {
        runtime: Some(runtime),
        trust: Some(trust.clone()),
        run: Some(RunDir {
            fd: run,
            path: run_path,
            trust,
        }),
    })
}

fn is_symlink_at(dir: BorrowedFd<'_>, name: &CStr) -> bool {
    sys::lstatat(dir, name).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

/// Opens `run/` of `runtime_dir` (see [`open_dirs`]); `None` when it does
/// not exist, or when the runtime directory is a symlink that is not
/// followed.
pub(crate) fn open_run(runtime_dir: &Path) -> Result<Option<RunDir>> {
    Ok(open_dirs(runtime_dir)?.run)
}

/// `run/` for a writer: the runtime directory and `run/` are created (mode
/// 0700) when missing, then [`Trust::require_writer`] must pass.
pub(crate) fn open_run_for_writer(runtime_dir: &Path, action: &'static str) -> Result<RunDir> {
    let path = caller_path(runtime_dir, "runtime_dir")?;
    let run_path = path.join("run");
    let refused = |trust: &Trust| trust.require_writer(action, &path, &run_path);
    let mut dirs = open_dirs(&path)?;
    if dirs.trust.is_none() {
        // A private directory (and its missing parents); an existing one is
        // judged below like any other.
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StackError::io("create", &path, e)),
        }
        dirs = open_dirs(&path)?;
    }
    let trust = dirs
        .trust
        .as_ref()
        .ok_or_else(|| StackError::io("open", &path, io::Error::from_raw_os_error(libc::ENOENT)))?;
    refused(trust)?;
    if dirs.run.is_none() {
        let runtime = dirs.runtime.as_ref().ok_or_else(|| {
            StackError::io("open", &path, io::Error::from_raw_os_error(libc::ENOENT))
        })?;
        // Created through the descriptor just judged; 0700 stays 0700.
        match sys::mkdirat(runtime.as_fd(), c"run", 0o700) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(StackError::io("create", &run_path, e)),
        }
        dirs = open_dirs(&path)?;
    }
    let run = dirs.run.ok_or_else(|| {
        StackError::io(
            "open",
            &run_path,
            io::Error::from_raw_os_error(libc::ENOENT),
        )
    })?;
    refused(&run.trust)?;
    Ok(run)
}

/// Runs the trust checks of docs/design.md, "Trust" on `runtime_dir` and
/// its `run/`: `Ok(None)` when they pass (or the directory does not
/// exist), `Ok(Some(line))` when one fails — one line for a person naming
/// the directory, its owner and mode and what to do. On such a directory
/// `gc_stale`, `stop`, `create_marker` and `remove_marker` refuse with
/// `untrusted_directory`, and `list`, `get`, `inspect` and `watch` answer
/// without collecting anything. An error only when the directory cannot be
/// opened.
pub fn check_runtime_dir(runtime_dir: impl AsRef<Path>) -> Result<Option<String>> {
    Ok(open_dirs(runtime_dir.as_ref())?
        .trust
        .and_then(|t| t.warning()))
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
