//! Collection (docs/design.md, "Operations", "Trust"): on a kernel
//! without `openat2` — forced for real with a seccomp filter answering
//! `ENOSYS` — the mount-id check alone keeps removal out of a bind mount
//! inside a stale marker.

use std::path::Path;
use std::process::Command;

use crate::common::kit::testkit;
use crate::common::*;

/// Runs `firma sidecar gc` on `rt` in a private mount namespace where
/// `run/stale/sub` is a bind mount of `other`, with `openat2` failing with
/// `ENOSYS` when `no_openat2`. Returns gc's stdout.
fn gc_over_a_bind_mount(rt: &Path, other: &Path, no_openat2: bool) -> String {
    let seccomp = if no_openat2 {
        format!(
            "{} seccomp --errno ENOSYS --syscall openat2 -- ",
            testkit().display()
        )
    } else {
        String::new()
    };
    let script = format!(
        "set -e; mount --bind {other} {rt}/run/stale/sub; \
         {seccomp}{FIRMA} --runtime-dir {rt} sidecar gc",
        other = other.display(),
        rt = rt.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) must be installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("refused"),
        "the kernel refused the fixture: {stderr}"
    );
    assert!(out.status.success(), "gc failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn check(no_openat2: bool) {
    need_root("bind-mounting in a private mount namespace");
    let rt = runtime();
    let marker = write_stale(rt.path(), "stale", dead_pid());
    std::fs::create_dir(marker.join("sub")).unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir(other.path().join("keep")).unwrap();
    std::fs::write(other.path().join("keep/precious"), "x").unwrap();
    std::fs::write(other.path().join("precious"), "x").unwrap();
    let stdout = gc_over_a_bind_mount(rt.path(), other.path(), no_openat2);
    assert_eq!(stdout, "removed stale\n", "no_openat2={no_openat2}");
    assert!(
        other.path().join("precious").exists() && other.path().join("keep/precious").exists(),
        "removal crossed into the bind mount (no_openat2={no_openat2})"
    );
    // The marker left the namespace; what the mount held back stays under
    // the tomb name (its mount point, now an empty directory here).
    let names = run_names(rt.path());
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(".gc-"), "{names:?}");
}

#[test]
fn without_openat2_the_mount_id_check_keeps_removal_out_of_a_bind_mount() {
    check(true);
}

#[test]
fn with_openat2_removal_stays_out_of_a_bind_mount() {
    check(false);
}
