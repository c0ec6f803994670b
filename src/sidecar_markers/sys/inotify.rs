//! `inotify(7)`: events about files and directories, read from a
//! descriptor, and the parsing of what is read.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// A non-blocking, close-on-exec inotify instance.
pub struct Inotify {
    fd: OwnedFd,
}

/// A good size for the buffer given to [`Inotify::read`] (64 KiB: a few
/// thousand events without a name, hundreds with the longest).
pub const READ_BUF_LEN: usize = 64 * 1024;

impl Inotify {
    /// `inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`.
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: creates a descriptor; no pointer is passed.
        let fd = cvt(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        // SAFETY: a new descriptor that nothing else owns.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// `inotify_add_watch(2)`: the watch descriptor for `path` (the same
    /// one again for an inode already watched, its mask replaced).
    pub fn add_watch(&self, path: &CStr, mask: u32) -> io::Result<i32> {
        // SAFETY: valid descriptor and NUL-terminated path.
        cvt(unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask) })
    }

    /// `inotify_rm_watch(2)`; a stale `wd` only yields `EINVAL`. An
    /// `IN_IGNORED` event for `wd` follows.
    pub fn rm_watch(&self, wd: i32) -> io::Result<()> {
        // SAFETY: valid descriptor; `wd` is a plain number.
        cvt(unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) }).map(drop)
    }

    /// Reads whole events into `buf` (see [`READ_BUF_LEN`]); the bytes
    /// read go to [`parse_events`]. `WouldBlock` when there are none.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: reading into a valid buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One event as read: the watch it belongs to, its mask, and the name of
/// the entry it is about (empty for an event about the watched inode
/// itself), without its NUL padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InotifyEvent<'a> {
    pub wd: i32,
    pub mask: u32,
    pub name: &'a [u8],
}

/// The size of `struct inotify_event` without its name.
const HEADER: usize = std::mem::size_of::<libc::inotify_event>();

/// The events in `bytes` (what one [`Inotify::read`] returned), in order.
/// A header cut short at the end is ignored; a name cut short is taken as
/// far as it goes.
pub fn parse_events(bytes: &[u8]) -> impl Iterator<Item = InotifyEvent<'_>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + HEADER > bytes.len() {
            return None;
        }
        // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[]; }
        let field = |at: usize| {
            let b = &bytes[off + at..off + at + 4];
            [b[0], b[1], b[2], b[3]]
        };
        let wd = i32::from_ne_bytes(field(0));
        let mask = u32::from_ne_bytes(field(4));
        let name_len = u32::from_ne_bytes(field(12)) as usize;
        let start = off + HEADER;
        let name = &bytes[start..start.saturating_add(name_len).min(bytes.len())];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        off = start.saturating_add(name_len);
        Some(InotifyEvent { wd, mask, name })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The bytes the kernel would write for one event (`name` padded with
    /// NULs to `name_len`).
    fn raw(wd: i32, mask: u32, name: &[u8], name_len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&wd.to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&name_len.to_ne_bytes());
        let mut padded = name.to_vec();
        padded.resize(name_len as usize, 0);
        v.extend_from_slice(&padded);
        v
    }

    #[test]
    fn header_layout_is_the_kernels() {
        assert_eq!(HEADER, 16);
        assert_eq!(std::mem::offset_of!(libc::inotify_event, wd), 0);
        assert_eq!(std::mem::offset_of!(libc::inotify_event, mask), 4);
        assert_eq!(std::mem::offset_of!(libc::inotify_event, len), 12);
    }

    #[test]
    fn parses_events_with_and_without_names() {
        let mut bytes = raw(1, libc::IN_CREATE, b"sb-1", 16);
        bytes.extend(raw(2, libc::IN_DELETE_SELF, b"", 0));
        bytes.extend(raw(3, libc::IN_MOVED_TO, b"exactly-16-bytes", 16));
        let evs: Vec<_> = parse_events(&bytes).collect();
        assert_eq!(
            evs,
            [
                InotifyEvent {
                    wd: 1,
                    mask: libc::IN_CREATE,
                    name: b"sb-1"
                },
                InotifyEvent {
                    wd: 2,
                    mask: libc::IN_DELETE_SELF,
                    name: b""
                },
                InotifyEvent {
                    wd: 3,
                    mask: libc::IN_MOVED_TO,
                    name: b"exactly-16-bytes"
                },
            ]
        );
    }

    #[test]
    fn a_truncated_tail_is_taken_as_far_as_it_goes() {
        let mut bytes = raw(1, libc::IN_CREATE, b"abcdef", 16);
        bytes.truncate(HEADER + 3);
        let evs: Vec<_> = parse_events(&bytes).collect();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].name, b"abc");
        let mut bytes = raw(1, libc::IN_CREATE, b"x", 16);
        bytes.extend_from_slice(&[0; HEADER - 1]);
        assert_eq!(parse_events(&bytes).count(), 1, "half a header is no event");
        assert_eq!(parse_events(&[]).count(), 0);
    }

    #[test]
    fn reads_what_the_kernel_reports() {
        let dir = tempfile::tempdir().unwrap();
        let ino = Inotify::new().unwrap();
        let mut buf = vec![0u8; READ_BUF_LEN];
        assert_eq!(
            ino.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let path = super::super::cpath(dir.path()).unwrap();
        let wd = ino.add_watch(&path, libc::IN_CREATE).unwrap();
        assert_eq!(ino.add_watch(&path, libc::IN_CREATE).unwrap(), wd);
        std::fs::write(dir.path().join("made"), b"").unwrap();
        let mut n = 0;
        for _ in 0..100 {
            match ino.read(&mut buf) {
                Ok(got) => {
                    n = got;
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let evs: Vec<_> = parse_events(&buf[..n]).collect();
        assert_eq!(evs.len(), 1);
        assert_eq!((evs[0].wd, evs[0].name), (wd, &b"made"[..]));
        assert_ne!(evs[0].mask & libc::IN_CREATE, 0);
        ino.rm_watch(wd).unwrap();
        assert!(ino.rm_watch(wd).is_err(), "a stale wd is refused");
    }
}
