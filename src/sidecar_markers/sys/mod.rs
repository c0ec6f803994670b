//! Every raw system call of the crate, one file per kind, as small
//! functions and types that return `io::Result` and own their descriptors.
//! Outside `sys/` the crate has no `unsafe` but the C ABI's (`src/ffi/`);
//! the binaries have none (their signal handling goes through `nix`).
//!
//! - [`fs`]: files and directories through descriptors (`openat`,
//!   `openat2`, `fstatat`, `renameat2`, `getdents`, ...);
//! - [`fd`]: closing a marker's descriptors together, a scan worker's
//!   private descriptor table, naming a descriptor by path, the counter
//!   descriptor that `eventfd` and `timerfd` share (`CounterFd`);
//! - [`proc`]: the process itself (ids, `kill(pid, 0)`, limits) and the
//!   `Key:` lines of `/proc` status and fdinfo texts;
//! - [`socket`]: the probe's sockets (`socket`, `connect`, `SO_ERROR`,
//!   `SO_PEERPIDFD`; `listen` for the example sidecar);
//! - [`lookup`]: path lookups that cannot hold the process hostage
//!   (`openat2(RESOLVE_CACHED)`, a `clone3` child for the rest);
//! - [`random`]: random bytes (`getrandom(2)`);
//! - [`atomic`]: the one atomic file writer (`O_TMPFILE`, `linkat`,
//!   `renameat`, `fsync`);
//! - [`epoll`], [`eventfd`], [`timerfd`], [`inotify`]: the watcher's event
//!   loop, wake-ups, timer and directory notifications;
//! - [`pidfd`]: a process pinned by a pidfd (open, signal, wait for exit);
//! - [`heap`]: freed heap given back to the kernel after a large scan;
//! - [`rlimit`]: the descriptor limit, raised once towards the hard one
//!   for the watcher, and the descriptors open now.

pub(crate) mod atomic;
pub(crate) mod fd;
pub(crate) mod fs;
pub(crate) mod heap;
pub(crate) mod lookup;
pub(crate) mod proc;
pub(crate) mod random;
pub(crate) mod rlimit;
pub(crate) mod sock_diag;
pub(crate) mod socket;

use std::io;

pub mod epoll;
pub mod eventfd;
pub mod inotify;
pub mod pidfd;
pub mod timerfd;

pub(crate) use fd::MarkerFds;
pub use fd::{fd_path, fdinfo, poll};
pub use fs::{
    DIR_FLAGS, DirEntry, RESOLVE_NO_XDEV_STRICT, cpath, cstring, flock_exclusive_nonblocking,
    fstat, fsync, is_dir, is_reg, lstatat, mkdirat, mount_id, open, openat, openat_or_cwd, openat2,
    read_capped, read_dir, read_link_fd, rename_noreplace, unlinkat, write_all,
};
pub use proc::{clk_tck, geteuid, kill0, nofile_soft_limit, proc_field};

/// A system call's return value that is `-1` on failure (`errno` set).
pub(crate) trait MinusOne: Copy + PartialEq {
    const MINUS_ONE: Self;
}

impl MinusOne for i32 {
    const MINUS_ONE: i32 = -1;
}

impl MinusOne for i64 {
    const MINUS_ONE: i64 = -1;
}

impl MinusOne for isize {
    const MINUS_ONE: isize = -1;
}

/// The one conversion of a raw return value to `io::Result`: `-1` is the
/// error `errno` holds, anything else is the value.
pub(crate) fn cvt<T: MinusOne>(ret: T) -> io::Result<T> {
    if ret == T::MINUS_ONE {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
