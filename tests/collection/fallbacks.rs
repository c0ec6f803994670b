//! Collection (docs/design.md, "Operations", "Trust"): on a kernel
//! without `openat2` — forced for real with a seccomp filter answering
//! `ENOSYS` — the mount-id check alone keeps removal out of a bind mount
//! inside a stale marker.

use std::path::Path;
use std::process::Command;

use crate::common::kit::{firma_with_nofile, testkit};
use crate::common::*;

/// The command prefix that makes `openat2` fail with `ENOSYS` for what it
/// runs (the testkit's seccomp filter), or nothing.
fn no_openat2_prefix(no_openat2: bool) -> String {
    if no_openat2 {
        format!(
            "{} seccomp --errno ENOSYS --syscall openat2 -- ",
            testkit().display()
        )
    } else {
        String::new()
    }
}

/// Runs `script` with `sh` in a private mount namespace; fails loudly when
/// the kernel refuses the fixture or the script fails; gives its stdout.
fn in_private_mounts(script: &str) -> String {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
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

/// Runs `firma sidecar gc` on `rt` in a private mount namespace where
/// `run/stale/sub` is a bind mount of `other`, with `openat2` failing with
/// `ENOSYS` when `no_openat2`. Returns gc's stdout.
fn gc_over_a_bind_mount(rt: &Path, other: &Path, no_openat2: bool) -> String {
    let seccomp = no_openat2_prefix(no_openat2);
    let script = format!(
        "set -e; mount --bind {other} {rt}/run/stale/sub; \
         {seccomp}{FIRMA} --runtime-dir {rt} sidecar gc",
        other = other.display(),
        rt = rt.display(),
    );
    in_private_mounts(&script)
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

/// Runs `firma sidecar gc` on `rt` in a private mount namespace where the
/// stale marker's own `metadata.toml` is bind-mounted over itself (same
/// file, same bytes: only its being a mount point differs), with
/// `openat2` failing with `ENOSYS` when `no_openat2`. Returns gc's stdout.
fn gc_with_metadata_bound_over_itself(rt: &Path, no_openat2: bool) -> String {
    let seccomp = no_openat2_prefix(no_openat2);
    let file = rt.join("run/stale/metadata.toml");
    let script = format!(
        "set -e; mount --bind {file} {file}; \
         {seccomp}{FIRMA} --runtime-dir {rt} sidecar gc; \
         test -f {file}",
        file = file.display(),
        rt = rt.display(),
    );
    in_private_mounts(&script)
}

/// A stale marker whose `metadata.toml` is a mount point (of itself) is
/// never taken: with `openat2` it is not even read; without it (seccomp
/// `ENOSYS`) it is read, judged stale, but the check that the tomb still
/// holds the judged file refuses a mount point by its mount id, so the
/// marker is put back, unreported, whole.
#[test]
fn a_metadata_that_is_a_mount_point_is_never_taken_with_or_without_openat2() {
    need_root("bind-mounting in a private mount namespace");
    for no_openat2 in [false, true] {
        let rt = runtime();
        write_stale(rt.path(), "stale", dead_pid());
        let stdout = gc_with_metadata_bound_over_itself(rt.path(), no_openat2);
        assert!(
            !stdout.contains("removed"),
            "no_openat2={no_openat2}: {stdout}"
        );
        assert_eq!(run_names(rt.path()), ["stale"], "no_openat2={no_openat2}");
        assert!(has_metadata(&rt.path().join("run/stale")));
    }
}

/// Under every descriptor limit from 3 up (`prlimit --nofile`, the
/// kernel's own `EMFILE`), `firma sidecar gc` of a stale marker either
/// removes it and says so, or keeps it in place and says why (a failed
/// run, or the scan's warning naming `EMFILE`): running out of descriptors
/// anywhere on the way is never a silent "not removed", and never leaves
/// the marker under its tomb name. (Opening the tomb after the rename is
/// never the first to hit the limit — the judgement before it needs more
/// descriptors at once — so the test beside this one fails that open with
/// `EACCES` instead.)
#[test]
fn emfile_anywhere_in_collection_is_said_or_the_marker_removed() {
    let rt = runtime();
    write_stale(rt.path(), "stale", dead_pid());
    let mut kept = 0;
    let mut removed = false;
    for limit in 3..64 {
        let (code, stdout, stderr) = firma_with_nofile(limit, rt.path(), &["sidecar", "gc"]);
        if stdout == "removed stale\n" {
            assert_eq!(code, Some(0), "limit {limit}: {stderr}");
            assert_eq!(run_names(rt.path()), Vec::<String>::new());
            removed = true;
            break;
        }
        kept += 1;
        assert_eq!(stdout, "", "limit {limit}");
        assert!(
            code != Some(0) || stderr.contains("Too many open files"),
            "limit {limit}: the marker was kept and nothing said why: {stderr}"
        );
        assert_eq!(run_names(rt.path()), ["stale"], "limit {limit}: {stderr}");
    }
    assert!(removed, "no descriptor limit below 64 let gc through");
    assert!(
        kept >= 3,
        "only {kept} limits failed: the sweep proves little"
    );
}

/// A stale marker that its owner (not root) cannot list — its directory
/// mode 0100, so `metadata.toml` is read, judged and the marker renamed
/// to its tomb, but the tomb cannot be opened for the check (`EACCES`) —
/// is put back and the failure said, never taken for "another marker
/// now" and skipped in silence. Made listable again, it is collected.
#[test]
fn a_tomb_that_cannot_be_opened_for_its_check_is_put_back_and_said() {
    use crate::common::users::TestUser;
    need_root("running gc as a throwaway user");
    let rt = runtime();
    let marker = write_stale(rt.path(), "stale", dead_pid());
    let u = TestUser::new("tombx");
    u.own(rt.path());
    chmod(&marker, 0o100);
    let gc = || {
        let out = u
            .command(FIRMA)
            .args(["--runtime-dir", rt.path().to_str().unwrap()])
            .args(["sidecar", "gc"])
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (stdout, stderr) = gc();
    assert_eq!(stdout, "", "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert_eq!(run_names(rt.path()), ["stale"], "{stderr}");
    chmod(&marker, 0o700);
    let (stdout, stderr) = gc();
    assert_eq!(stdout, "removed stale\n", "{stderr}");
}

/// With or without `openat2` (seccomp `ENOSYS`), a marker whose
/// `metadata.toml` is a symlink (to a stale marker's, elsewhere) is
/// reported as a symlink and never followed, and a marker directory that
/// is a mount point (another stale marker bind-mounted there) is reported
/// as one and never read: `inspect` names both, `gc` takes neither.
#[test]
fn symlinked_metadata_and_a_mounted_marker_are_never_read_with_or_without_openat2() {
    need_root("bind-mounting in a private mount namespace");
    for no_openat2 in [false, true] {
        let rt = runtime();
        let elsewhere = runtime();
        let real = write_stale(elsewhere.path(), "linked", dead_pid());
        let linked = rt.path().join("run/linked");
        std::fs::create_dir_all(&linked).unwrap();
        std::os::unix::fs::symlink(real.join("metadata.toml"), linked.join("metadata.toml"))
            .unwrap();
        let other = write_stale(elsewhere.path(), "bound", dead_pid());
        std::fs::create_dir(rt.path().join("run/bound")).unwrap();
        let seccomp = no_openat2_prefix(no_openat2);
        let script = format!(
            "set -e; mount --bind {other} {rt}/run/bound; \
             {seccomp}{FIRMA} --runtime-dir {rt} sidecar inspect --json; \
             {seccomp}{FIRMA} --runtime-dir {rt} sidecar gc >&2",
            other = other.display(),
            rt = rt.path().display(),
        );
        let v: serde_json::Value = serde_json::from_str(&in_private_mounts(&script)).unwrap();
        let mut got = name_reasons(&v);
        got.sort();
        let want = [("bound", "mount_point"), ("linked", "symlink")];
        let want: Vec<_> = want.map(|(n, r)| (n.to_owned(), r.to_owned())).into();
        assert_eq!(got, want, "no_openat2={no_openat2}");
        assert_eq!(run_names(rt.path()), ["bound", "linked"]);
        assert!(has_metadata(&other) && has_metadata(&real));
    }
}
