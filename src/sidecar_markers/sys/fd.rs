//! Descriptors: one marker's closed together, a scan worker's private
//! descriptor table, how to name a descriptor by path, and the counter
//! descriptors (eventfd, timerfd) read the same way.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::cvt;

/// `/proc/thread-self/<dir>/<fd>`: how the calling thread names one of its
/// own descriptors by path, and the one place the crate spells it.
///
/// Always `thread-self`, never `self`: a scan's worker threads each have a
/// descriptor table of their own ([`MarkerFds::private_table`]), and
/// `/proc/self/fd/<n>` names descriptor `n` of the process leader's table —
/// another file, or none — not the worker's. On a thread that shares the
/// process's table the two name the same file, so `thread-self` is right
/// everywhere.
fn thread_self(dir: &str, fd: BorrowedFd<'_>) -> String {
    format!("/proc/thread-self/{dir}/{}", fd.as_raw_fd())
}

/// A non-blocking descriptor read as one native-endian `u64` counter that
/// the read resets: an eventfd's value, a timerfd's expiries. `K` names the
/// kind ([`super::eventfd::EventFd`], [`super::timerfd::TimerFd`]), whose
/// own calls (adding, arming) are its inherent methods; reading and the
/// descriptor are the same for both and written once here.
pub struct CounterFd<K> {
    fd: OwnedFd,
    kind: PhantomData<K>,
}

impl<K> CounterFd<K> {
    /// Owns `fd`, just returned by a create call (`eventfd`,
    /// `timerfd_create`) that succeeded.
    pub(super) fn from_new(fd: RawFd) -> CounterFd<K> {
        CounterFd {
            // SAFETY: a new descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            kind: PhantomData,
        }
    }

    /// Reads the counter and resets it to zero (the descriptor is not
    /// readable any more); `WouldBlock` when it is zero already.
    pub fn take(&self) -> io::Result<u64> {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64.
        cvt(unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) })?;
        Ok(v)
    }
}

impl<K> AsFd for CounterFd<K> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The path of the calling thread's descriptor `fd` (`/proc/thread-self/fd/<fd>`,
/// see [`thread_self`]): a lookup through it ends at the very inode `fd`
/// refers to (an `O_PATH` socket or directory, say), following no name.
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    thread_self("fd", fd)
}

/// The text of `/proc/thread-self/fdinfo/<fd>` (see [`thread_self`]).
pub fn fdinfo(fd: BorrowedFd<'_>) -> io::Result<String> {
    std::fs::read_to_string(thread_self("fdinfo", fd))
}

/// `poll(2)` of `fds` for up to `timeout_ms` milliseconds (-1: no limit):
/// how many have events (their `revents` set).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
    cvt(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) })
        .map(|n| n as usize)
}

/// The descriptors one marker's checks are done with (its `metadata.toml`,
/// `/proc/<pid>/stat`, `sidecar.pid`, `sidecar.sock`, the probe's socket),
/// held until the marker is judged and then closed together: each run of
/// consecutive descriptor numbers in one `close_range(2)`. A scan owns one
/// per marker and passes it as one `&mut` to what opens them (reading the
/// marker, its uptime, its liveness, its probe); a call that judges one
/// marker alone uses one the same way.
///
/// What it buys: a healthy marker's four or five descriptors usually cost
/// one `close_range` instead of one `close` each. With the private
/// descriptor tables of a scan's workers ([`MarkerFds::private_table`]),
/// which keep each marker's numbers consecutive, a listing makes 11.08
/// system calls per healthy marker, against the C floor's 14; workers
/// sharing one table interleaved their numbers and measured 13.4–14.1
/// (BENCHMARKS.md). Nothing else depends on it: without it every
/// descriptor would simply be closed where it is dropped.
///
/// Sound because every number in a run is a descriptor held here: no other
/// descriptor can lie between two of them, whatever other threads open.
/// When another thread's descriptor splits the numbers, that is two runs.
/// Kernels without `close_range` (before 5.9, or a seccomp filter that
/// refuses it) get one `close` per descriptor.
#[derive(Default)]
pub(crate) struct MarkerFds {
    fds: [libc::c_int; MarkerFds::CAP],
    len: usize,
}

static CLOSE_RANGE_WORKS: AtomicBool = AtomicBool::new(true);

impl MarkerFds {
    /// More than a marker's checks hold at once; any beyond are closed at once.
    const CAP: usize = 8;

    /// Gives the calling thread a descriptor table of its own that holds
    /// only stdio and `keep` (one `close_range(CLOSE_RANGE_UNSHARE)`, plus
    /// one more when `keep` is above 3); `false` when the kernel refuses
    /// (before 5.9, a seccomp filter), and the thread goes on sharing the
    /// process's table.
    ///
    /// For a scan's worker threads only, which the crate spawns and which
    /// end with the scan: their descriptors then never interleave with
    /// another thread's, so each marker's are consecutive and close in one
    /// call, and they do not contend for the process's table. The private
    /// table holds no other descriptor of the process, so it keeps none of
    /// the caller's files open. Anything that names a descriptor of such a
    /// thread by path goes through [`fd_path`] (`/proc/thread-self`, never
    /// `/proc/self`, which is the process leader's table).
    pub(crate) fn private_table(keep: BorrowedFd<'_>) -> bool {
        let keep = keep.as_raw_fd() as u32;
        let first = keep.saturating_add(1).max(3);
        // SAFETY: closes, in a fresh copy of the table that only this
        // thread uses, descriptors this thread does not own and will not
        // touch.
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

    /// Closes what is held now (a descriptor shortage needs them back, or
    /// the marker is about to be removed).
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
/// (`EMFILE`, `ENFILE`): `io::Result`, or `openat2`'s `Option` of one.
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

impl Drop for MarkerFds {
    fn drop(&mut self) {
        self.close_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem;
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
    fn marker_fds_close_what_they_hold_and_nothing_between() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(OwnedFd, (u64, u64))> = (0..6)
            .map(|i| {
                let f = std::fs::File::create(dir.path().join(format!("f{i}"))).unwrap();
                let fd = OwnedFd::from(f);
                let ino = inode_of(fd.as_raw_fd()).unwrap();
                (fd, ino)
            })
            .collect();
        let mut marker = MarkerFds::default();
        let mut kept = Vec::new();
        let mut held = Vec::new();
        for (i, (fd, ino)) in files.into_iter().enumerate() {
            if i == 2 {
                held.push((fd, ino));
            } else {
                kept.push((fd.as_raw_fd(), ino));
                marker.keep(fd);
            }
        }
        drop(marker);
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
                    MarkerFds::private_table(run.as_fd()),
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
    fn marker_fds_beyond_capacity_close_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut held = MarkerFds::default();
        let mut kept = Vec::new();
        for i in 0..MarkerFds::CAP + 3 {
            let f = std::fs::File::create(dir.path().join(format!("g{i}"))).unwrap();
            let fd = OwnedFd::from(f);
            kept.push((fd.as_raw_fd(), inode_of(fd.as_raw_fd()).unwrap()));
            held.keep(fd);
        }
        held.close_now();
        for (raw, ino) in kept {
            assert_ne!(inode_of(raw), Some(ino), "descriptor {raw} is still open");
        }
    }
}
