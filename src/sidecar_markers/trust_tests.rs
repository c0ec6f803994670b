//! Unit tests of `trust.rs`: the four checks, the last-resort default,
//! what a refusal says, and what a writer needs.

use super::*;
use crate::sidecar_markers::error::ErrorCode;

fn judge(caller: u32, rt: (u32, u32), run: Option<(u32, u32)>) -> Trust {
    let run_path = Path::new("/x/run");
    Trust::judge(
        caller,
        Path::new("/x"),
        rt,
        run.map(|(o, m)| (run_path, o, m)),
    )
}

#[test]
fn the_four_checks() {
    // Private, one owner: trusted, bounded by that owner.
    let t = judge(0, (1000, 0o700), Some((1000, 0o700)));
    assert!(t.is_trusted());
    assert_eq!(t.bounding_owners().collect::<Vec<_>>(), [1000]);
    // Writable by others: no.
    assert!(!judge(0, (1000, 0o777), Some((1000, 0o700))).is_trusted());
    assert!(!judge(0, (1000, 0o770), Some((1000, 0o700))).is_trusted());
    // A sticky runtime dir is still writable by others.
    assert!(!judge(0, (0, 0o1777), Some((0, 0o700))).is_trusted());
    // run/ group-writable, not sticky: no; sticky: shared.
    assert!(!judge(0, (0, 0o755), Some((0, 0o775))).is_trusted());
    let shared = judge(1000, (0, 0o755), Some((0, 0o1777)));
    assert!(shared.is_trusted() && shared.shared());
    assert_eq!(shared.bounding_owners().count(), 0);
    // Owners that differ, neither root: no; one root: yes.
    assert!(!judge(0, (1000, 0o755), Some((1001, 0o755))).is_trusted());
    let t = judge(0, (0, 0o755), Some((1001, 0o700)));
    assert!(t.is_trusted());
    assert_eq!(t.bounding_owners().collect::<Vec<_>>(), [1001]);
    let t = judge(0, (1000, 0o755), Some((0, 0o755)));
    assert_eq!(t.bounding_owners().collect::<Vec<_>>(), [1000]);
}

#[test]
fn the_last_resort_default_must_be_the_callers() {
    let t = Trust::judge(1000, &last_resort(1000), (1001, 0o700), None);
    let e = t.require("collect stale markers").unwrap_err();
    assert_eq!(e.code(), ErrorCode::UntrustedDirectory);
    assert!(e.to_string().contains("last-resort default"), "{e}");
    assert!(Trust::judge(1000, &last_resort(1000), (1000, 0o700), None).is_trusted());
    // Someone else's default is an ordinary directory.
    assert!(Trust::judge(0, &last_resort(1000), (1000, 0o700), None).is_trusted());
}

#[test]
fn a_refusal_names_directory_owner_mode_and_a_remedy() {
    let t = judge(0, (0, 0o755), Some((0, 0o775)));
    let e = t.require("collect stale markers").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("refusing to collect stale markers under /x/run: "),
        "{msg}"
    );
    assert!(
        msg.contains("owner uid 0") && msg.contains("mode 0775"),
        "{msg}"
    );
    assert!(msg.contains("chmod"), "{msg}");
    assert_eq!(e.path(), Some(Path::new("/x/run")));
}

#[test]
fn a_writer_needs_its_own_or_roots_directories() {
    let rt = Path::new("/x");
    let run = Path::new("/x/run");
    let w = |caller, t: (u32, u32), r: (u32, u32)| {
        let trust = Trust::judge(caller, rt, t, Some((run, r.0, r.1)));
        // The caller is this process: only the rule's shape is tested
        // for caller == euid.
        trust.require_writer("create a marker", rt, run)
    };
    let me = euid();
    assert!(w(me, (me, 0o700), (me, 0o700)).is_ok());
    let other = if me == 4242 { 4243 } else { 4242 };
    assert!(w(me, (other, 0o755), (other, 0o755)).is_err());
    assert!(w(me, (me, 0o700), (other, 0o755)).is_err());
    if me != 0 {
        // A tenant writes in root's directory only when run/ is shared.
        assert!(w(me, (0, 0o755), (0, 0o1777)).is_ok());
        assert!(w(me, (0, 0o755), (0, 0o755)).is_err());
    }
}

/// A private `run/` is not shared; `run_owner` is the owner of `run/`
/// (of the runtime directory while `run/` is missing).
#[test]
fn shared_and_run_owner_say_what_run_is() {
    let t = judge(0, (1000, 0o700), Some((1001, 0o700)));
    assert!(!t.shared());
    assert_eq!(t.run_owner(), 1001);
    assert_eq!(judge(0, (1002, 0o700), None).run_owner(), 1002);
}

/// Only a runtime directory or `run/` that does not exist (`ENOENT`) is
/// missing: a path through a file, or a `run` that is a file, is an
/// error (`ENOTDIR`), never taken for "nothing there".
#[test]
fn only_enoent_is_missing_a_file_in_the_way_is_an_error() {
    let rt = tempfile::tempdir().unwrap();
    let file = rt.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let e = open_dirs(&file.join("below"))
        .err()
        .expect("through a file");
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    let dirs = open_dirs(&rt.path().join("absent")).unwrap();
    assert!(dirs.trust.is_none() && dirs.run.is_none());
    std::fs::write(rt.path().join("run"), "x").unwrap();
    let e = open_dirs(rt.path()).err().expect("run/ is a file");
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
}
