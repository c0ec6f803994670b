//! `stop`'s unit tests: the lock's re-check, the signal errors read as
//! exits or not, and the refusals that need no sidecar.

use super::*;
use crate::sidecar_markers::model::MetadataFile;

/// A `sleep 60` and its marker `id` in a fresh runtime directory: with
/// the process's identity recorded when `identified`, the seed fields
/// only otherwise. The caller kills the child.
fn marked_sleep(
    id: &str,
    identified: bool,
) -> (tempfile::TempDir, std::process::Child, MetadataFile) {
    let rt = tempfile::tempdir().unwrap();
    let child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let meta = if identified {
        MetadataFile::identified_for_test(id, child.id())
    } else {
        MetadataFile::seed_for_test(id, child.id())
    };
    crate::sidecar_markers::create_marker(rt.path(), &meta).unwrap();
    (rt, child, meta)
}

#[test]
fn pidfd_of_a_dead_pid_is_esrch() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let e = Pidfd::open(pid).err().expect("no pidfd for a reaped pid");
    assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
}

/// The pids never signalled, at their boundaries: `pid_max` itself is
/// a valid pid (the kernel hands out pids below it), one above is not.
#[test]
fn pid_1_our_own_and_pids_above_pid_max_are_never_signalled() {
    let own = 4242;
    assert!(
        never_signalled(1, own, Some(100))
            .unwrap()
            .contains("pid 1")
    );
    assert!(
        never_signalled(own, own, Some(1 << 22))
            .unwrap()
            .contains("own pid")
    );
    assert_eq!(never_signalled(2, own, Some(100)), None);
    assert_eq!(never_signalled(100, own, Some(100)), None);
    let above = never_signalled(101, own, Some(100)).unwrap();
    assert!(above.contains("pid_max (100)"), "{above}");
    assert_eq!(never_signalled(MAX_PID, own, None), None);
    assert_eq!(never_signalled(MAX_PID, own, Some(MAX_PID)), None);
    assert!(
        never_signalled(MAX_PID + 1, own, None)
            .unwrap()
            .contains("out of range")
    );
    // This kernel's own pid_max is read, and is a real bound.
    let max = pid_max().expect("/proc/sys/kernel/pid_max is readable");
    assert!(never_signalled(max + 1, own, pid_max()).is_some());
    assert_eq!(never_signalled(max, own, pid_max()), None);
}

/// The lock is taken only for the marker judged: once its
/// `metadata.toml` was replaced by another (a sidecar restarted under
/// the same id), or removed, `lock` gives `None` and nothing may be
/// signalled; for the marker as judged it gives the lock.
#[test]
fn the_lock_rechecks_that_the_marker_is_still_the_one_judged() {
    let (rt, mut child, meta) = marked_sleep("relock", false);
    let file = rt.path().join("run/relock/metadata.toml");
    let opts = StopOptions::default();
    let try_lock_after = |change: &dyn Fn()| {
        read::with_marker(rt.path(), "relock", None, |run, name, marker, trust| {
            change();
            Job::new(run, name, marker, trust, &opts)
                .lock()
                .map(|lock| lock.is_some())
        })
        .unwrap()
        .unwrap()
    };
    let lock_after = |change: &dyn Fn()| try_lock_after(change).unwrap();
    assert!(
        lock_after(&|| ()),
        "the marker as judged must give the lock"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    // Replaced by a new file with the same bytes (the old one kept
    // aside, so the inode differs).
    let aside = rt.path().join("run/relock/old");
    assert!(!lock_after(&|| {
        std::fs::rename(&file, &aside).unwrap();
        std::fs::write(&file, &text).unwrap();
    }));
    std::fs::rename(&aside, &file).unwrap();
    assert!(
        lock_after(&|| ()),
        "put back, it is the judged marker again"
    );
    // Rewritten in place: same inode, other bytes (another start).
    assert!(!lock_after(&|| {
        std::fs::write(&file, text.replace("2024-01-01", "2024-01-02")).unwrap();
    }));
    // Gone.
    assert!(!lock_after(&|| std::fs::remove_file(&file).unwrap()));
    // The whole marker directory gone (collected by another): no
    // lock, and no error either.
    let dir = rt.path().join("run/relock");
    std::fs::remove_dir_all(&dir).unwrap();
    crate::sidecar_markers::create_marker(rt.path(), &meta).unwrap();
    assert!(!lock_after(&|| std::fs::remove_dir_all(&dir).unwrap()));
    // Its name now a file: the check cannot be made, an error (never
    // taken for "no lock" nor for the lock).
    crate::sidecar_markers::create_marker(rt.path(), &meta).unwrap();
    let err = try_lock_after(&|| {
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, "not a marker").unwrap();
    })
    .expect_err("a marker name that is no directory is an error");
    assert_eq!(err.code(), crate::sidecar_markers::ErrorCode::Io, "{err}");
    let _ = child.kill();
    let _ = child.wait();
}

/// A marker removed between its reading and the check of whose claim
/// it is — a concurrent stop that saw the process exit collected it —
/// leaves no marker to stop: `Ok(None)`, nothing signalled, never
/// `not_authorized` (which once failed one of two concurrent stops).
#[test]
fn a_marker_removed_after_it_was_read_is_no_marker_not_a_refusal() {
    let (rt, mut child, _) = marked_sleep("vanished", true);
    let opts = StopOptions::default();
    let dir = rt.path().join("run/vanished");
    let out = read::with_marker(rt.path(), "vanished", None, |run, name, marker, trust| {
        std::fs::remove_dir_all(&dir).unwrap();
        Job::new(run, name, marker, trust, &opts).run()
    })
    .unwrap()
    .unwrap();
    assert_eq!(out.unwrap(), None);
    assert_eq!(child.try_wait().unwrap(), None, "the process was signalled");
    let _ = child.kill();
    let _ = child.wait();
}
