//! Thin, checked wrappers over the `*at` system calls the crate uses.
//!
//! Every wrapper returns `io::Result` built from `errno`; callers decide what
//! an error means. Nothing here follows a symlink unless the name says so.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod epoll;
pub mod eventfd;
pub mod inotify;
pub mod pidfd;
pub mod timerfd;

/// Flags for opening a directory we will only use as an anchor for `*at`.
pub const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

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
    // SAFETY: valid fd and NUL-terminated name.
    let fd =
        cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) })?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), or `None` when
/// unlimited or unreadable.
pub fn nofile_soft_limit() -> Option<u64> {
    // SAFETY: rlimit is plain old data; getrlimit fills it.
    let mut rl: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return None;
    }
    (rl.rlim_cur != libc::RLIM_INFINITY).then_some(rl.rlim_cur as u64)
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
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf.as_mut_ptr().add(buf.len()).cast(),
                spare,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // SAFETY: the kernel initialised `n` more bytes.
        unsafe { buf.set_len(buf.len() + n as usize) };
        if (n as usize) < spare {
            return Ok(if buf.len() > cap { None } else { Some(buf) });
        }
    }
}

pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        data = &data[n as usize..];
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

/// `renameat2(2)` with `RENAME_NOREPLACE`: fails with `EEXIST` rather than
/// replace anything (an empty directory included).
pub fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
) -> io::Result<()> {
    // SAFETY: valid fds and names.
    cvt(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
    .map(drop)
}

/// `kill(pid, 0)`: `Ok` when the process exists and we may signal it.
pub fn kill0(pid: libc::pid_t) -> io::Result<()> {
    debug_assert!(pid > 0, "kill(0|negative) would address process groups");
    // SAFETY: signal 0 only checks existence and permission.
    cvt(unsafe { libc::kill(pid, 0) }).map(drop)
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
    if unsafe { libc::lseek(dup.as_raw_fd(), 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
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

/// Gives the calling thread a descriptor table of its own that holds only
/// stdio and `keep` (one `close_range(CLOSE_RANGE_UNSHARE)`, plus one more
/// when `keep` is above 3); `false` when the kernel refuses (before 5.9, a
/// seccomp filter), and the thread goes on sharing the process's table.
///
/// For a scan's worker threads only, which the crate spawns and which end
/// with the scan: their descriptors then never interleave with another
/// thread's, so each marker's are consecutive and [`CloseLater`] closes
/// them in one call, and they do not contend for the process's table. The
/// private table holds no other descriptor of the process, so it keeps
/// none of the caller's files open. Anything that names a descriptor of
/// such a thread by path must use `/proc/thread-self/fd`, not
/// `/proc/self/fd` (that is the process leader's table).
pub(crate) fn private_fd_table(keep: BorrowedFd<'_>) -> bool {
    let keep = keep.as_raw_fd() as u32;
    let first = keep.saturating_add(1).max(3);
    // SAFETY: closes, in a fresh copy of the table that only this thread
    // uses, descriptors this thread does not own and will not touch.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    };
    if rc != 0 {
        return false;
    }
    if keep > 3 {
        // SAFETY: as above, the table is this thread's own now.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32) };
    }
    true
}

/// Descriptors one marker's checks are done with, closed together when
/// this is dropped: each run of consecutive descriptor numbers goes in one
/// `close_range(2)`, so a healthy marker's four or five descriptors
/// (metadata, `/proc/<pid>/stat`, `sidecar.pid`, `sidecar.sock`, the probe's
/// socket) usually cost one system call instead of one each.
///
/// Sound because every number in a run is a descriptor held here: no other
/// descriptor can lie between two of them, whatever other threads open.
/// When another thread's descriptor splits the numbers, that is two runs
/// (a scan's workers avoid that with [`private_fd_table`]).
/// Kernels without `close_range` (before 5.9, or a seccomp filter that
/// refuses it) get one `close` per descriptor.
#[derive(Default)]
pub(crate) struct CloseLater {
    fds: [libc::c_int; CloseLater::CAP],
    len: usize,
}

static CLOSE_RANGE_WORKS: AtomicBool = AtomicBool::new(true);

impl CloseLater {
    /// More than a marker's checks hold at once; any beyond are closed at once.
    const CAP: usize = 8;

    /// Holds `fd` until this is dropped.
    pub(crate) fn keep(&mut self, fd: OwnedFd) {
        if self.len == Self::CAP {
            drop(fd);
            return;
        }
        self.fds[self.len] = std::os::fd::IntoRawFd::into_raw_fd(fd);
        self.len += 1;
    }

    /// Runs `open`; when it fails for lack of descriptors while some are
    /// held here, closes those and runs it once more (a marker's own
    /// descriptors must not make its next check fail).
    pub(crate) fn open<R: Opened>(&mut self, open: impl Fn() -> R) -> R {
        let first = open();
        if first.short_of_descriptors() && self.len > 0 {
            self.close_now();
            return open();
        }
        first
    }

    /// Closes what is held now (a descriptor shortage needs them back).
    pub(crate) fn close_now(&mut self) {
        let fds = &mut self.fds[..self.len];
        fds.sort_unstable();
        let mut i = 0;
        while i < fds.len() {
            let mut j = i;
            while j + 1 < fds.len() && fds[j + 1] == fds[j] + 1 {
                j += 1;
            }
            let (lo, hi) = (fds[i], fds[j]);
            let ranged = j > i && CLOSE_RANGE_WORKS.load(Ordering::Relaxed) && {
                // SAFETY: every descriptor in lo..=hi is one this value owns
                // (see the type's doc); none is used after this.
                let rc =
                    unsafe { libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0u32) };
                if rc != 0 {
                    // ENOSYS, or EPERM from a filter: nothing was closed.
                    CLOSE_RANGE_WORKS.store(false, Ordering::Relaxed);
                }
                rc == 0
            };
            if !ranged {
                for &fd in &fds[i..=j] {
                    // SAFETY: owned here, closed once.
                    unsafe { libc::close(fd) };
                }
            }
            i = j + 1;
        }
        self.len = 0;
    }
}

/// What an open returns, asked whether it failed for lack of descriptors
/// (`EMFILE`, `ENFILE`): `io::Result`, or [`openat2`]'s `Option` of one.
pub(crate) trait Opened {
    fn short_of_descriptors(&self) -> bool;
}

impl<T> Opened for io::Result<T> {
    fn short_of_descriptors(&self) -> bool {
        matches!(self, Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
    }
}

impl<T> Opened for Option<io::Result<T>> {
    fn short_of_descriptors(&self) -> bool {
        self.as_ref().is_some_and(Opened::short_of_descriptors)
    }
}

impl Drop for CloseLater {
    fn drop(&mut self) {
        self.close_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    fn inode_of(fd: libc::c_int) -> Option<(u64, u64)> {
        // SAFETY: fd may be closed (EBADF) or another thread's: fstat only
        // reads its metadata.
        let mut st: libc::stat = unsafe { mem::zeroed() };
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    }

    /// The descriptors kept are closed, in runs or one by one, and one the
    /// caller holds between them stays open. Other test threads may open
    /// descriptors meanwhile, so "closed" is checked as "no longer this
    /// file" (each file here is a fresh temporary one).
    #[test]
    fn close_later_closes_what_it_holds_and_nothing_between() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(OwnedFd, (u64, u64))> = (0..6)
            .map(|i| {
                let f = std::fs::File::create(dir.path().join(format!("f{i}"))).unwrap();
                let fd = OwnedFd::from(f);
                let ino = inode_of(fd.as_raw_fd()).unwrap();
                (fd, ino)
            })
            .collect();
        let mut later = CloseLater::default();
        let mut kept = Vec::new();
        let mut held = Vec::new();
        for (i, (fd, ino)) in files.into_iter().enumerate() {
            if i == 2 {
                held.push((fd, ino));
            } else {
                kept.push((fd.as_raw_fd(), ino));
                later.keep(fd);
            }
        }
        drop(later);
        for (raw, ino) in kept {
            assert_ne!(inode_of(raw), Some(ino), "descriptor {raw} is still open");
        }
        for (fd, ino) in held {
            assert_eq!(inode_of(fd.as_fd().as_raw_fd()), Some(ino));
        }
    }

    /// A worker's private table holds stdio and the one descriptor kept,
    /// nothing else of the process; what it opens stays out of the
    /// process's table; `/proc/thread-self/fd` names its own descriptors.
    #[test]
    fn a_private_fd_table_holds_only_stdio_and_the_kept_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let run = OwnedFd::from(std::fs::File::open(dir.path()).unwrap());
        let other = OwnedFd::from(std::fs::File::create(dir.path().join("other")).unwrap());
        let (run_raw, other_raw) = (run.as_raw_fd(), other.as_raw_fd());
        let (mine, mine_ino) = std::thread::scope(|s| {
            s.spawn(|| {
                assert!(
                    private_fd_table(run.as_fd()),
                    "close_range(CLOSE_RANGE_UNSHARE) refused"
                );
                // SAFETY: only asks whether the number is open here.
                assert_eq!(unsafe { libc::fcntl(other_raw, libc::F_GETFD) }, -1);
                assert!(inode_of(run_raw).is_some(), "the kept descriptor is open");
                let mine = OwnedFd::from(std::fs::File::create(dir.path().join("mine")).unwrap());
                let ino = inode_of(mine.as_raw_fd()).unwrap();
                let via = std::fs::metadata(format!("/proc/thread-self/fd/{}", mine.as_raw_fd()));
                assert_eq!(via.unwrap().ino(), ino.1);
                (mine.as_raw_fd(), ino)
                // `mine` closes with the thread's table.
            })
            .join()
            .unwrap()
        });
        assert_ne!(
            inode_of(mine),
            Some(mine_ino),
            "a worker's file is in the process's table"
        );
        assert!(
            inode_of(other_raw).is_some(),
            "the process's own descriptors are untouched"
        );
    }

    /// More descriptors than it holds are closed at once, never leaked.
    #[test]
    fn close_later_beyond_its_capacity_closes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut later = CloseLater::default();
        let mut kept = Vec::new();
        for i in 0..CloseLater::CAP + 3 {
            let f = std::fs::File::create(dir.path().join(format!("g{i}"))).unwrap();
            let fd = OwnedFd::from(f);
            kept.push((fd.as_raw_fd(), inode_of(fd.as_raw_fd()).unwrap()));
            later.keep(fd);
        }
        later.close_now();
        for (raw, ino) in kept {
            assert_ne!(inode_of(raw), Some(ino), "descriptor {raw} is still open");
        }
    }
}
