//! Files and directories: opening relative to a descriptor without
//! following symlinks or crossing mounts, stat, bounded reads, writes,
//! renames that never replace, directory listings.
//!
//! Every wrapper returns `io::Result` built from `errno`; callers decide
//! what an error means. Nothing here follows a symlink unless the name says
//! so.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::cvt;

/// Flags for opening a directory we will only use as an anchor for `*at`.
pub const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// A C string from a path; a NUL byte inside is `InvalidInput`.
pub fn cpath(p: &Path) -> io::Result<CString> {
    cstring(p.as_os_str())
}

pub fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `open(2)` of a path given by the caller.
pub fn open(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), flags, 0o600 as libc::c_uint) })?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` relative to `dir`.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    openat_or_cwd(Some(dir), name, flags, mode)
}

/// [`openat`] relative to `dir`, or to the current directory when `None`
/// (`AT_FDCWD`).
pub fn openat_or_cwd(
    dir: Option<BorrowedFd<'_>>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let dir = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: a valid fd (or AT_FDCWD) and a NUL-terminated name.
    let fd = cvt(unsafe { libc::openat(dir, name.as_ptr(), flags, mode as libc::c_uint) })?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The text of the symlink open as `link` (`O_PATH | O_NOFOLLOW`):
/// `readlinkat` with an empty name (the link itself, Linux 2.6.39+), so
/// the link read is the very one whose owner the caller checked.
pub fn read_link_fd(link: BorrowedFd<'_>) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid descriptor, empty NUL-terminated name and a buffer of
    // the length given.
    let n = cvt(unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })? as usize;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// `flock(LOCK_EX | LOCK_NB)`: the exclusive lock of the open file `fd`,
/// or `EWOULDBLOCK` when another open file description holds it.
pub fn flock_exclusive_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a valid descriptor; flock has no memory arguments.
    cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }).map(drop)
}

/// Whether `openat2(2)` works here; cleared the first time the kernel (or a
/// seccomp filter) says it does not.
static OPENAT2_WORKS: AtomicBool = AtomicBool::new(true);

/// How `openat2` may resolve a path below an anchor directory: never a
/// symlink, never `..` out of it, and (with `NO_XDEV`) never into another
/// mount, bind mounts of the same filesystem included.
pub const RESOLVE_BENEATH_STRICT: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
/// [`RESOLVE_BENEATH_STRICT`] plus `RESOLVE_NO_XDEV`.
pub const RESOLVE_NO_XDEV_STRICT: u64 = RESOLVE_BENEATH_STRICT | libc::RESOLVE_NO_XDEV;

/// `openat2(2)` of `rel` under `dir` with the given `resolve` flags (one of
/// the constants above): one call that opens a path of several components
/// without following any symlink or leaving `dir`. Crossing a mount point
/// under `RESOLVE_NO_XDEV` fails with `EXDEV` before the mounted
/// filesystem is asked anything, so a hung filesystem mounted below `dir`
/// cannot block it. `None` when `openat2` is unavailable; callers then open
/// component by component.
pub fn openat2(
    dir: BorrowedFd<'_>,
    rel: &CStr,
    flags: libc::c_int,
    resolve: u64,
) -> Option<io::Result<OwnedFd>> {
    if !OPENAT2_WORKS.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: open_how is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { MaybeUninit::zeroed().assume_init() };
    how.flags = flags as u64;
    how.resolve = resolve;
    // SAFETY: valid fd, NUL-terminated path, and a correctly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            rel.as_ptr(),
            &how as *const libc::open_how,
            mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        if matches!(
            err.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::E2BIG)
        ) {
            OPENAT2_WORKS.store(false, Ordering::Relaxed);
            return None;
        }
        return Some(Err(err));
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Some(Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }))
}

/// The mount id of what `fd` refers to (`statx` `STATX_MNT_ID`), or `None`
/// where the kernel does not report it.
pub fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    // SAFETY: statx is plain old data; all-zero is valid.
    let mut stx: libc::statx = unsafe { mem::zeroed() };
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, valid out-pointer.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    (rc == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id)
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer of the right type.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(2)` without following a final symlink.
pub fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd, name and out-pointer.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// Reads the whole regular (or proc) file behind `fd`, but never more than
/// `cap` bytes; `None` when the file holds more than `cap` bytes.
///
/// The first read asks for one byte more than `size_hint` (the `fstat` size):
/// on a regular file or a proc file a short read means end of file, so an
/// unchanged file costs exactly one `read`. A file that grew since `fstat`
/// is read on until EOF or the cap.
pub fn read_capped(
    fd: BorrowedFd<'_>,
    size_hint: usize,
    cap: usize,
) -> io::Result<Option<Vec<u8>>> {
    // One byte more than the cap tells "exactly cap" from "more than cap".
    let mut buf: Vec<u8> = Vec::with_capacity(size_hint.min(cap) + 1);
    loop {
        if buf.len() > cap {
            return Ok(None);
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().clamp(64, cap + 1 - buf.len()));
        }
        let spare = buf.capacity() - buf.len();
        // SAFETY: we read into the vector's spare capacity and only extend
        // its length by what the kernel reports written.
        let n = match cvt(unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf.as_mut_ptr().add(buf.len()).cast(),
                spare,
            )
        }) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // SAFETY: the kernel initialised `n` more bytes.
        unsafe { buf.set_len(buf.len() + n) };
        if n < spare {
            return Ok(if buf.len() > cap { None } else { Some(buf) });
        }
    }
}

/// Writes all of `data` (retrying on `EINTR` and short writes).
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: valid fd and buffer.
        match cvt(unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) }) {
            Ok(n) => data = &data[n as usize..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::fsync(fd.as_raw_fd()) }).map(drop)
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid fd and name.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd and name.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `renameat(2)` within one directory: `to` is replaced if it exists
/// (never followed).
pub fn rename_in(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    renameat2((dir, from), (dir, to), 0)
}

/// `fchmod(2)`: the mode of the open file `fd`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// `renameat2(2)` with `RENAME_NOREPLACE`: fails with `EEXIST` rather than
/// replace anything (an empty directory included).
pub fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
) -> io::Result<()> {
    renameat2((from_dir, from), (to_dir, to), libc::RENAME_NOREPLACE)
}

/// `renameat2(2)` of a (directory, name) pair to another; `flags` 0 is a
/// plain `renameat`.
fn renameat2(
    (from_dir, from): (BorrowedFd<'_>, &CStr),
    (to_dir, to): (BorrowedFd<'_>, &CStr),
    flags: libc::c_uint,
) -> io::Result<()> {
    // SAFETY: valid fds and NUL-terminated names.
    cvt(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// One directory entry: its name and `d_type`.
pub struct DirEntry {
    pub name: CString,
    pub d_type: u8,
}

/// Lists the entries of the directory `dir` (except `.` and `..`), reading
/// through a duplicate descriptor so `dir` stays usable.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    let dup = dir.try_clone_to_owned()?;
    // The duplicate shares the file offset; start from the beginning.
    // SAFETY: valid fd.
    cvt(unsafe { libc::lseek(dup.as_raw_fd(), 0, libc::SEEK_SET) })?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: fdopendir takes ownership of `raw` on success.
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: on failure the descriptor is still ours to close.
        unsafe { libc::close(raw) };
        return Err(err);
    }
    struct Closer(*mut libc::DIR);
    impl Drop for Closer {
        fn drop(&mut self) {
            // SAFETY: the DIR came from fdopendir and is closed once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let closer = Closer(dirp);
    let mut out = Vec::new();
    loop {
        // SAFETY: errno is thread-local; clear it to tell end from error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: dirp is a valid open DIR.
        let ent = unsafe { libc::readdir64(closer.0) };
        if ent.is_null() {
            let errno = unsafe { *libc::__errno_location() };
            if errno != 0 {
                return Err(io::Error::from_raw_os_error(errno));
            }
            break;
        }
        // SAFETY: readdir returned a valid entry with a NUL-terminated name.
        let (name, d_type) = unsafe {
            let e = &*ent;
            (CStr::from_ptr(e.d_name.as_ptr()), e.d_type)
        };
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        out.push(DirEntry {
            name: name.to_owned(),
            d_type,
        });
    }
    Ok(out)
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn is_reg(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}
