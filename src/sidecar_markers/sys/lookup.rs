//! Path lookups that cannot hold this process hostage.
//!
//! A lookup that reaches a filesystem which never answers (a hung FUSE
//! daemon) blocks its task; a second lookup of the same directory, from any
//! process, then waits *uninterruptibly* for the directory's lock, and a
//! process with such a thread cannot exit, not even on `SIGKILL`, until the
//! first lookup returns. So a lookup of a path the library does not control
//! is made in two steps:
//!
//! - [`open_cached`]: `openat2(RESOLVE_CACHED)` (Linux 5.12), which
//!   resolves the path from the dentry cache alone and says `EAGAIN` where
//!   that would need the filesystem: never blocks;
//! - [`ChildConnect`]: otherwise the lookup and `connect(2)` run in a child
//!   *process* (`clone3`, no `CLONE_VM`, exit signal 0 so neither the host's
//!   `SIGCHLD` handler nor its `waitpid(-1)` ever sees it), which closes
//!   every descriptor but a pipe and reports `connect`'s errno through it. A child stuck in the lookup keeps
//!   only itself: this process can still exit, and the orphan is reaped by
//!   init when the filesystem answers or is aborted.

use std::ffi::CStr;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;
use super::socket::UnixAddr;

/// `openat2(AT_FDCWD, path, O_PATH | O_CLOEXEC, RESOLVE_CACHED)` of an
/// absolute path (the last component followed, as `connect` follows it):
/// `Ok(None)` when the dentry cache cannot answer (`EAGAIN`), or the kernel
/// has no `openat2`/`RESOLVE_CACHED` (`ENOSYS`, `EINVAL`, `EPERM` from a
/// seccomp filter, `E2BIG`). Never blocks on a filesystem.
pub fn open_cached(path: &CStr) -> io::Result<Option<OwnedFd>> {
    // SAFETY: open_how is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_CACHED;
    // SAFETY: a NUL-terminated path and a correctly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const libc::open_how,
            mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EAGAIN | libc::ENOSYS | libc::EINVAL | libc::EPERM | libc::E2BIG) => {
                Ok(None)
            }
            _ => Err(err),
        };
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }))
}

/// `struct clone_args` as of Linux 5.3 (`CLONE_ARGS_SIZE_VER0`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// A child process connecting to a Unix socket path; see the module.
pub struct ChildConnect {
    pidfd: OwnedFd,
    pipe: OwnedFd,
}

impl ChildConnect {
    /// Starts a child that (after `chdir(dir)`, when given: how a path too
    /// long for `sun_path` is reached) makes one non-blocking `connect` to
    /// `addr` and reports its errno (0: connected).
    pub fn start(dir: Option<&CStr>, addr: &UnixAddr) -> io::Result<ChildConnect> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` is a writable array of two ints.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
        // SAFETY: fresh descriptors nothing else owns.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut pidfd: libc::c_int = -1;
        let args = CloneArgs {
            flags: libc::CLONE_PIDFD as u64,
            pidfd: &mut pidfd as *mut libc::c_int as u64,
            exit_signal: 0,
            ..CloneArgs::default()
        };
        let (sa, sa_len) = addr.raw();
        let wr_raw = wr.as_raw_fd();
        // SAFETY: clone3 without CLONE_VM: the child runs on a copy of this
        // address space and, below, makes only async-signal-safe calls
        // (chdir, socket, connect, write, _exit) on memory prepared before
        // the clone; it never returns into Rust code.
        let mut pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                mem::size_of::<CloneArgs>(),
            )
        };
        if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            // No clone3 (before 5.3, or a seccomp filter that refuses it so
            // that libc falls back): the same child through clone(2), whose
            // third argument is where CLONE_PIDFD stores the pidfd; exit
            // signal 0 is the low byte of the flags.
            // SAFETY: as above; a stack of 0 runs the child on its copy of
            // this thread's stack, as fork does.
            pid = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    libc::CLONE_PIDFD as libc::c_ulong,
                    0usize,
                    &mut pidfd as *mut libc::c_int,
                    0usize,
                    0usize,
                )
            };
        }
        if pid == 0 {
            // SAFETY: the child; see above.
            unsafe {
                // Hold nothing of the parent's but the pipe: a child stuck
                // in a lookup must not keep the host's pipes, sockets or
                // devices (the FUSE connection itself) open.
                if wr_raw > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, (wr_raw - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (wr_raw + 1) as u32, u32::MAX, 0u32);
                let mut err = 0;
                if let Some(d) = dir
                    && libc::chdir(d.as_ptr()) != 0
                {
                    err = *libc::__errno_location();
                }
                if err == 0 {
                    let s = libc::socket(
                        libc::AF_UNIX,
                        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        0,
                    );
                    if s < 0 || libc::connect(s, sa, sa_len) != 0 {
                        err = *libc::__errno_location();
                    }
                }
                let bytes = err.to_ne_bytes();
                libc::write(wr_raw, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0);
            }
        }
        cvt(pid)?;
        drop(wr);
        // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        Ok(ChildConnect { pidfd, pipe: rd })
    }

    /// Waits (interruptibly: a thread waiting here never keeps the process
    /// from exiting) for the child's report and reaps it: `connect`'s errno,
    /// 0 when it connected. An error when the child ended without a report.
    pub fn wait(self) -> io::Result<i32> {
        let mut got: Option<i32> = None;
        loop {
            let mut buf = [0u8; 4];
            // SAFETY: `buf` is a writable buffer of 4 bytes.
            let n = unsafe { libc::read(self.pipe.as_raw_fd(), buf.as_mut_ptr().cast(), 4) };
            if n == 4 {
                got = Some(i32::from_ne_bytes(buf));
                break;
            }
            if n == 0 {
                break; // every write end closed: the child is gone.
            }
            let err = io::Error::last_os_error();
            if n > 0 || !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                break;
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.pipe.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            match super::poll(&mut fds, -1) {
                Ok(_) if fds[0].revents == 0 && fds[1].revents != 0 => {
                    // Exited; one last read for a report written just before.
                    // SAFETY: as above.
                    let n =
                        unsafe { libc::read(self.pipe.as_raw_fd(), buf.as_mut_ptr().cast(), 4) };
                    if n == 4 {
                        got = Some(i32::from_ne_bytes(buf));
                    }
                    break;
                }
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        self.reap();
        got.ok_or_else(|| io::Error::other("the lookup process ended without a report"))
    }

    /// `waitid(P_PIDFD, WEXITED | __WALL)`, retried on `EINTR`.
    fn reap(&self) {
        loop {
            // SAFETY: siginfo_t is plain old data; all-zero is valid.
            let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
            // SAFETY: a pidfd we own and a writable siginfo_t.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::__WALL,
                )
            };
            if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return;
            }
        }
    }
}

/// The type, mode, owner, device and inode of what the `O_PATH` descriptor
/// `fd` refers to, from the attributes the kernel has cached
/// (`statx(AT_EMPTY_PATH | AT_STATX_DONT_SYNC)`): a FUSE or NFS file is not
/// revalidated with its server, so this never waits on a filesystem. Only
/// those fields of the `stat` are set.
pub fn fstat_cached(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: statx is plain old data; all-zero is valid.
    let mut stx: libc::statx = unsafe { mem::zeroed() };
    // SAFETY: a valid descriptor, an empty NUL-terminated path and a
    // writable statx.
    cvt(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            libc::STATX_TYPE | libc::STATX_MODE | libc::STATX_UID | libc::STATX_INO,
            &mut stx,
        )
    })?;
    // SAFETY: stat is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    st.st_dev = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor);
    st.st_ino = stx.stx_ino;
    st.st_mode = libc::mode_t::from(stx.stx_mode);
    st.st_uid = stx.stx_uid;
    Ok(st)
}
