//! Replacing a file atomically, the one writer that does it: the new
//! contents go to a file in the same directory that has no name while it
//! is written — an unnamed `O_TMPFILE` — which is fsynced, given a fresh
//! random name with `linkat`, renamed over the target, and the directory
//! fsynced. A reader sees the old file or the new one, never a part, and
//! no name planted in the directory beforehand can block the write or
//! redirect it (a symlink at the target is replaced, never followed).
//!
//! Where the filesystem has no `O_TMPFILE`, the temporary file is created
//! under a random name with `O_CREAT | O_EXCL | O_NOFOLLOW` instead. Random
//! names are 128 bits from `getrandom(2)`, so nobody can plant anything
//! under one first. On failure the temporary file is removed and the
//! target is untouched.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::{cvt, fd, fs, random};

/// How many fresh random names are tried before giving up. With 128
/// random bits a name is never guessed; the bound only ends a loop that a
/// broken random source could make endless.
const NAME_ATTEMPTS: u32 = 16;

/// How the new file's permission bits are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Created with this mode, less the umask (as `open(2)` does).
    Create(libc::mode_t),
    /// Exactly this mode, whatever the umask (`fchmod` once created).
    Exact(libc::mode_t),
}

/// One atomic replacement of `name` in a directory.
#[derive(Clone, Copy, Debug)]
pub struct Replace<'a> {
    /// The target's name in the directory.
    pub name: &'a CStr,
    pub perm: Perm,
    /// A temporary name is `<temp_prefix><32 hex digits><temp_suffix>`.
    pub temp_prefix: &'a str,
    pub temp_suffix: &'a str,
    /// Use an unnamed `O_TMPFILE` where the filesystem has one (`false`:
    /// always the named fallback).
    pub unnamed: bool,
}

/// The step of a replacement that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Creating the temporary file.
    Create,
    /// `fchmod` for [`Perm::Exact`].
    Chmod,
    Write,
    /// `fsync` of the file.
    Fsync,
    /// `linkat` of the unnamed file to a temporary name.
    Link,
    /// `renameat` of the temporary name over the target ([`fs::rename_in`]).
    Rename,
    /// `fsync` of the directory.
    FsyncDir,
}

/// Why a replacement failed: the step, the temporary file's name when it
/// had one (it is removed again), and the error.
#[derive(Debug)]
pub struct Error {
    pub step: Step,
    pub temp: Option<CString>,
    pub source: io::Error,
}

impl Replace<'_> {
    /// Replaces the target in `dir` with `contents`; see the module
    /// documentation.
    pub fn write(&self, dir: BorrowedFd<'_>, contents: &[u8]) -> Result<(), Error> {
        let fail = |step, guard: &TempGuard<'_>, source| Error {
            step,
            temp: guard.name.clone(),
            source,
        };
        let create_mode = match self.perm {
            Perm::Create(mode) => mode,
            Perm::Exact(_) => 0o600,
        };
        let mut guard = TempGuard { dir, name: None };
        let file = self
            .open_temp(dir, create_mode, &mut guard)
            .map_err(|e| fail(Step::Create, &guard, e))?;
        if let Perm::Exact(mode) = self.perm {
            fs::fchmod(file.as_fd(), mode).map_err(|e| fail(Step::Chmod, &guard, e))?;
        }
        fs::write_all(file.as_fd(), contents).map_err(|e| fail(Step::Write, &guard, e))?;
        fs::fsync(file.as_fd()).map_err(|e| fail(Step::Fsync, &guard, e))?;
        if guard.name.is_none() {
            let name = self
                .link_temp(file.as_fd(), dir)
                .map_err(|e| fail(Step::Link, &guard, e))?;
            guard.name = Some(name);
        }
        drop(file);
        let temp = guard.name.clone().expect("named by now");
        fs::rename_in(dir, &temp, self.name).map_err(|e| fail(Step::Rename, &guard, e))?;
        guard.name = None;
        fs::fsync(dir).map_err(|e| fail(Step::FsyncDir, &guard, e))
    }

    /// A fresh temporary name.
    pub(crate) fn temp_name(&self) -> io::Result<CString> {
        let mut bytes = [0u8; 16];
        random::fill(&mut bytes)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        CString::new(format!("{}{hex}{}", self.temp_prefix, self.temp_suffix))
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// The temporary file in `dir`: unnamed when allowed and the
    /// filesystem has `O_TMPFILE`, else created under a random name (kept
    /// in `guard`, which removes it unless the rename took it).
    fn open_temp(
        &self,
        dir: BorrowedFd<'_>,
        mode: libc::mode_t,
        guard: &mut TempGuard<'_>,
    ) -> io::Result<OwnedFd> {
        if self.unnamed {
            let flags = libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC;
            match fs::openat(dir, c".", flags, mode) {
                Ok(fd) => return Ok(fd),
                // No O_TMPFILE here (the kernel or the filesystem): named.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOSYS)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        let mut attempt = 0;
        loop {
            let name = self.temp_name()?;
            match fs::openat(dir, &name, flags, mode) {
                Ok(fd) => {
                    guard.name = Some(name);
                    return Ok(fd);
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && attempt + 1 < NAME_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives the unnamed `file` a fresh random name in `dir` with `linkat`,
    /// which never follows or replaces what is at the new name (`EEXIST`:
    /// try another). Through `AT_EMPTY_PATH` where the caller may
    /// (`CAP_DAC_READ_SEARCH`), else through the descriptor's path
    /// ([`fd::fd_path`]).
    fn link_temp(&self, file: BorrowedFd<'_>, dir: BorrowedFd<'_>) -> io::Result<CString> {
        let proc_path = CString::new(fd::fd_path(file)).expect("no NUL in a descriptor's path");
        let mut attempt = 0;
        loop {
            let name = self.temp_name()?;
            let linked = match linkat(Some(file), c"", dir, &name, libc::AT_EMPTY_PATH) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EPERM)) => {
                    linkat(None, &proc_path, dir, &name, libc::AT_SYMLINK_FOLLOW)
                }
                other => other,
            };
            match linked {
                Ok(()) => return Ok(name),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && attempt + 1 < NAME_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `linkat(2)` from `from` (`None`: the current directory) to `to_dir/to`.
fn linkat(
    from: Option<BorrowedFd<'_>>,
    from_name: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
    flags: libc::c_int,
) -> io::Result<()> {
    let from = from.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    // SAFETY: valid descriptors (or AT_FDCWD) and NUL-terminated names.
    cvt(unsafe {
        libc::linkat(
            from,
            from_name.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Removes the temporary file, once it has a name, unless the rename took
/// it (`name` cleared).
struct TempGuard<'a> {
    dir: BorrowedFd<'a>,
    name: Option<CString>,
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let _ = fs::unlinkat(self.dir, name, 0);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// The names in `dir` that end `.tmp`: temporaries left behind (the
    /// metrics textfile's tests use it too).
    pub(crate) fn temps(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    fn replace(name: &CStr, perm: Perm, unnamed: bool) -> Replace<'_> {
        Replace {
            name,
            perm,
            temp_prefix: ".t-",
            temp_suffix: ".tmp",
            unnamed,
        }
    }

    #[test]
    fn temp_names_are_128_random_bits_with_prefix_and_suffix() {
        let r = replace(c"x", Perm::Create(0o600), true);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let name = r.temp_name().unwrap().into_string().unwrap();
            let hex = name
                .strip_prefix(".t-")
                .and_then(|r| r.strip_suffix(".tmp"))
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(hex.len(), 32, "{name}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(seen.insert(name), "a name came twice");
        }
    }

    /// Both ways (unnamed, and the named fallback of filesystems without
    /// `O_TMPFILE`): the same file and mode, a symlink at the target
    /// replaced not followed, no temporary file left, also when the
    /// rename fails.
    #[test]
    fn both_ways_replace_atomically_and_leave_nothing() {
        for unnamed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let fd = fs::open(dir.path(), fs::DIR_FLAGS).unwrap();
            let victim = dir.path().join("victim");
            std::fs::write(&victim, "keep me\n").unwrap();
            let path = dir.path().join("target");
            std::os::unix::fs::symlink(&victim, &path).unwrap();
            replace(c"target", Perm::Exact(0o644), unnamed)
                .write(fd.as_fd(), b"x 1\n")
                .unwrap();
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
            let m = std::fs::symlink_metadata(&path).unwrap();
            assert!(m.is_file());
            assert_eq!(m.permissions().mode() & 0o7777, 0o644);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "x 1\n");
            assert!(temps(dir.path()).is_empty(), "{unnamed}");

            let blocked = dir.path().join("blocked");
            std::fs::create_dir(&blocked).unwrap();
            std::fs::write(blocked.join("inside"), "").unwrap();
            let e = replace(c"blocked", Perm::Create(0o600), unnamed)
                .write(fd.as_fd(), b"x 1\n")
                .unwrap_err();
            assert_eq!(e.step, Step::Rename, "{e:?}");
            assert!(e.temp.is_some());
            assert!(temps(dir.path()).is_empty(), "{:?}", temps(dir.path()));
        }
    }
}
