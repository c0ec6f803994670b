//! A fresh ext4 filesystem on a loop device: the fixture of the judged-marker
//! tests, here (`collection::judged_marker`) and in the unit tests of
//! `src/sidecar_markers/gc.rs`, which include this file by `#[path]`. It
//! needs nothing but std and tempfile.

use std::path::PathBuf;
use std::process::Command;

/// A fresh ext4 filesystem on a loop device, mounted in a temporary
/// directory and unmounted (and removed) on drop. ext4 hands a freed inode
/// number to the next new file at once, which is what makes a re-created
/// marker look like the judged one by (dev, ino). Fails loudly when the
/// kernel or the caller cannot mount it: the tests that need it must never
/// pass without it.
pub struct Ext4 {
    _dir: tempfile::TempDir,
    pub mnt: PathBuf,
}

impl Ext4 {
    pub fn new() -> Ext4 {
        Ext4::with_options(&[])
    }

    /// An ext4 made with `-O ^filetype`: its readdir reports `DT_UNKNOWN`
    /// for every entry (the tests that need it check that it does).
    #[allow(dead_code)] // not every includer needs it
    pub fn without_filetype() -> Ext4 {
        Ext4::with_options(&["-O", "^filetype"])
    }

    /// `mkfs.ext4` with `options` added.
    fn with_options(options: &[&str]) -> Ext4 {
        // /proc/self belongs to the effective uid (no unsafe here: the gc
        // unit tests that include this file deny it).
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata("/proc/self").unwrap().uid(),
            0,
            "this test mounts an ext4 image and must run as root; it proves nothing otherwise"
        );
        let dir = tempfile::Builder::new()
            .prefix("firma-ext4-")
            .tempdir()
            .unwrap();
        let img = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(
                out.status.success(),
                "{cmd:?} failed ({}): {} — this test needs a real ext4 mount",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        };
        run(Command::new("truncate").args(["-s", "32M"]).arg(&img));
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .args(options)
            .arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        Ext4 { _dir: dir, mnt }
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}
