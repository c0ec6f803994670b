//! A real FUSE mount whose daemon never answers: the fixture of every test
//! that a hung filesystem must not hang (tests/isolation, tests/probing).
//! Nothing reads `/dev/fuse`, so the kernel's first request (`INIT`) and
//! every lookup after it wait until the descriptor is closed, which aborts
//! the connection. Needs root; a kernel refusing the mount fails the test.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The mount; dropping it closes the daemon's end (aborting every request
/// in flight) and unmounts lazily.
pub struct HungFuse {
    fd: Option<OwnedFd>,
    pub at: PathBuf,
}

impl HungFuse {
    pub fn mount(at: &Path) -> HungFuse {
        super::need_root("a FUSE mount needs root");
        std::fs::create_dir_all(at).unwrap();
        let dev = CString::new("/dev/fuse").unwrap();
        // SAFETY: plain open(2).
        let raw = unsafe { libc::open(dev.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        assert!(
            raw >= 0,
            "cannot open /dev/fuse (no FUSE in this kernel?): {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let opts = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fd.as_raw_fd()
        ))
        .unwrap();
        let target = CString::new(at.to_str().unwrap()).unwrap();
        // SAFETY: valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                c"firma-hung".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "the kernel refused a FUSE mount: {}",
            std::io::Error::last_os_error()
        );
        HungFuse {
            fd: Some(fd),
            at: at.to_path_buf(),
        }
    }
}

impl Drop for HungFuse {
    fn drop(&mut self) {
        drop(self.fd.take());
        let _ = Command::new("umount")
            .args(["-l", self.at.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
