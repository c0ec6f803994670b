//! Unit tests of `gc.rs`: collection against a re-created marker on a
//! real ext4 filesystem (freed inode numbers are handed out again at once),
//! a mount point, a name taken back, and debris swapped after its judgement.

use super::*;
use crate::sidecar_markers::model::MetadataFile;
use crate::sidecar_markers::process;
use crate::sidecar_markers::read::{self, Loc};
use crate::sidecar_markers::reserved::{Debris, judge_debris};
use crate::sidecar_markers::{
    Reason as ReportReason, create_marker, gc_stale, inspect, remove_marker,
};
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

// The fixtures below are shared with the sibling module of more unit
// tests, gc_pins_tests.rs.

/// Children killed and reaped on drop, shared with the integration tests.
#[path = "../../tests/common/child.rs"]
pub(super) mod child;
/// The ext4 loop-device fixture, shared with the integration tests.
#[path = "../../tests/common/ext4.rs"]
pub(super) mod ext4;
use ext4::Ext4;

pub(super) fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_owned()
}

fn meta(id: &str, pid: u32) -> MetadataFile {
    MetadataFile::seed_for_test(id, pid)
}

/// A marker of a process that is gone (identity given, so the writer
/// does not look the process up).
pub(super) fn stale(id: &str) -> MetadataFile {
    MetadataFile {
        boot_id: Some(boot_id()),
        pid_start_ticks: Some(1),
        ..meta(id, dead_pid())
    }
}

pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

pub(super) fn open_run(run: &Path) -> OwnedFd {
    sys::open(run, sys::DIR_FLAGS).unwrap()
}

/// The marker `name` of `run` as read for a judgement.
pub(super) fn read(run: BorrowedFd<'_>, run_path: &Path, name: &CStr) -> read::Marker {
    let path = run_path.join(name.to_str().unwrap());
    read::read_marker(
        Loc::Entry { run, name },
        path,
        &mut sys::MarkerFds::default(),
    )
    .unwrap_or_else(|b| panic!("{}", b.error))
}

/// A stale marker `web` in `rt/` on a real ext4, judged: the filesystem
/// (unmounted on drop), `rt/`, `rt/run/`, its descriptor and the marker
/// as read for the judgement.
fn stale_web_on_ext4() -> (Ext4, PathBuf, PathBuf, OwnedFd, read::Marker) {
    let fs = Ext4::new();
    let rt = fs.mnt.join("rt");
    let run_path = rt.join("run");
    create_marker(&rt, &stale("web")).unwrap();
    let run = open_run(&run_path);
    let judged = read(run.as_fd(), &run_path, c"web");
    assert!(
        process::liveness(&judged.meta).is_stale(),
        "the fixture must be judged stale"
    );
    (fs, rt, run_path, run, judged)
}

/// docs/design.md, "Trust", "The judged marker stays the judged marker":
/// a stale marker is judged; its sidecar's launcher then removes it and
/// writes a live marker under the same id, whose `metadata.toml` gets the
/// freed inode number (ext4). The collector's `take` with the stale
/// judgement must put the live marker back, unreported.
#[test]
fn a_live_marker_recreated_on_the_judged_inode_is_put_back_unreported() {
    let (_fs, rt, run_path, run, judged) = stale_web_on_ext4();

    // The restart: the old marker goes, the launcher writes the new one.
    assert!(remove_marker(&rt, "web").unwrap());
    create_marker(&rt, &meta("web", std::process::id())).unwrap();
    let new_meta = run_path.join("web/metadata.toml");
    let ino = std::fs::symlink_metadata(&new_meta).unwrap().ino();
    assert_eq!(
        ino, judged.meta_id.ino,
        "ext4 did not hand the freed inode number to the new metadata.toml: this test \
         cannot show what it is for"
    );
    let live = read(run.as_fd(), &run_path, c"web");
    assert!(!process::liveness(&live.meta).is_stale());
    assert_eq!(
        (live.meta_id.dev, live.meta_id.ino),
        (judged.meta_id.dev, judged.meta_id.ino)
    );

    let taken = take(run.as_fd(), c"web", Some(judged.meta_id)).unwrap();
    assert!(!taken, "the live replacement was reported collected");
    assert_eq!(names(&run_path), ["web"], "nothing may be left beside it");
    let back = read(run.as_fd(), &run_path, c"web");
    assert_eq!(back.meta.pid, std::process::id(), "not the live marker");
    assert_eq!(back.meta_id, live.meta_id);
    // And a whole collection agrees: the live marker stays.
    assert!(gc_stale(&rt).unwrap().is_empty());
    assert_eq!(names(&run_path), ["web"]);
}

/// The same judged file, but behind a mount point now (a bind mount of
/// the very file onto itself: same device, inode and bytes): never read
/// across, so not proved the judged one, put back.
#[test]
fn a_judged_metadata_that_became_a_mount_point_is_put_back() {
    let (_fs, _rt, run_path, run, judged) = stale_web_on_ext4();
    let file = run_path.join("web/metadata.toml");
    let st = Command::new("mount")
        .arg("--bind")
        .arg(&file)
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success(), "mount --bind refused: this test needs it");
    let taken = take(run.as_fd(), c"web", Some(judged.meta_id));
    let umounted = Command::new("umount")
        .arg(&file)
        .status()
        .is_ok_and(|s| s.success());
    assert!(!taken.unwrap(), "taken across a mount point");
    assert!(umounted, "umount of the bind mount failed");
    assert_eq!(names(&run_path), ["web"]);
    // Unmounted, it is the judged marker again, and collected.
    assert!(take(run.as_fd(), c"web", Some(judged.meta_id)).unwrap());
    assert!(names(&run_path).is_empty());
}

/// A tree that is not the judged marker, whose name was taken again
/// while it was out: it is set aside under `.kept-…`, never left under
/// the tomb name (which a scan would finish once this process exits),
/// and no scan ever removes it; `inspect` shows it as `leftover`.
#[test]
fn a_tree_that_cannot_be_put_back_is_kept_for_a_person_never_removed() {
    let rt = tempfile::tempdir().unwrap();
    let run_path = rt.path().join("run");
    create_marker(rt.path(), &meta("web", std::process::id())).unwrap();
    let run = open_run(&run_path);
    // The tree out of the namespace under a tomb name, as take leaves
    // it before putting it back.
    let tomb = reserved_name(GC_PREFIX);
    let tomb_path = run_path.join(tomb.to_str().unwrap());
    std::fs::create_dir(&tomb_path).unwrap();
    std::fs::write(tomb_path.join("metadata.toml"), "the unjudged one").unwrap();
    let before = std::fs::read(run_path.join("web/metadata.toml")).unwrap();

    put_back(run.as_fd(), &tomb, c"web").unwrap();
    let left = names(&run_path);
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[1], "web");
    let kept = &left[0];
    assert!(kept.starts_with(KEPT_PREFIX), "left under {kept:?}");
    assert_eq!(
        std::fs::read(run_path.join("web/metadata.toml")).unwrap(),
        before,
        "the marker under the name was touched"
    );
    assert_eq!(
        std::fs::read_to_string(run_path.join(kept).join("metadata.toml")).unwrap(),
        "the unjudged one"
    );

    // Kept trees stay, whoever made them, dead or alive.
    let by_dead = format!(
        "{KEPT_PREFIX}{}-{}-0123456789abcdef",
        dead_pid(),
        process::own_namespaces().0.unwrap()
    );
    std::fs::create_dir(run_path.join(&by_dead)).unwrap();
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    let mut expected = vec![by_dead.clone(), kept.clone(), "web".to_owned()];
    expected.sort();
    assert_eq!(names(&run_path), expected);
    let reports = inspect(rt.path()).unwrap();
    for name in [&by_dead, kept] {
        let r = reports.iter().find(|r| &r.name == name).unwrap();
        assert_eq!(r.reason, ReportReason::Leftover, "{r:?}");
        assert_eq!(r.verdict.as_str(), "broken");
        assert!(
            r.detail.contains("never removed automatically"),
            "{}",
            r.detail
        );
    }
}

/// Debris is finished only as judged: a tree renamed to the debris's
/// name between the judgement and the removal is not touched.
#[test]
fn debris_swapped_after_its_judgement_is_not_removed() {
    let rt = tempfile::tempdir().unwrap();
    let run_path = rt.path().join("run");
    std::fs::create_dir(&run_path).unwrap();
    let run = open_run(&run_path);
    let ns = process::own_namespaces().0.unwrap();
    let name = format!(".tmp-{}-{ns}-0123456789abcdef", dead_pid());
    std::fs::create_dir(run_path.join(&name)).unwrap();
    let cname = CString::new(name.clone()).unwrap();
    let Debris::Finish(seen) = judge_debris(run.as_fd(), &cname) else {
        panic!("root's debris of a dead writer in our namespace is not debris");
    };
    // Swapped: the judged dir goes, a marker is renamed in.
    std::fs::rename(run_path.join(&name), run_path.join("gone")).unwrap();
    create_marker(rt.path(), &meta("web", std::process::id())).unwrap();
    std::fs::rename(run_path.join("web"), run_path.join(&name)).unwrap();
    finish_leftover(run.as_fd(), &cname, seen).unwrap();
    assert!(
        run_path.join(&name).join("metadata.toml").exists(),
        "removed a tree that was not the one judged"
    );
    // Judged afresh, it is debris again, and goes.
    let Debris::Finish(seen) = judge_debris(run.as_fd(), &cname) else {
        panic!("not debris");
    };
    finish_leftover(run.as_fd(), &cname, seen).unwrap();
    assert_eq!(names(&run_path), ["gone"]);
}
