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

/// A symlink's relative target is resolved from the link's own directory,
/// never from the caller's working directory, also when it has more than
/// one component.
#[test]
fn a_relative_link_target_is_opened_beside_the_link() {
    let base = tempfile::tempdir().unwrap();
    let real = base.path().join("d/real");
    std::fs::create_dir_all(real.join("run")).unwrap();
    let link = base.path().join("link");
    std::os::unix::fs::symlink("d/real", &link).unwrap();
    let dirs = open_dirs(&link).unwrap();
    assert!(dirs.trust.is_some_and(|t| t.is_trusted()));
    let run = dirs.run.expect("run/ behind the relative link");
    assert_eq!(run.path, link.join("run"));
}

/// A `run` that is a symlink is refused as one (`ELOOP`, "refusing to
/// follow"); a `run` that is a file is an ordinary error, not called a
/// symlink.
#[test]
fn run_as_a_symlink_is_refused_as_one_and_a_file_is_not_called_one() {
    let rt = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = rt.path().join("run");
    std::os::unix::fs::symlink(elsewhere.path(), &run).unwrap();
    let e = open_dirs(rt.path()).err().expect("run/ is a symlink");
    assert_eq!(e.errno(), Some(libc::ELOOP), "{e}");
    assert!(
        e.to_string().contains("refusing to follow a symlink"),
        "{e}"
    );
    std::fs::remove_file(&run).unwrap();
    std::fs::write(&run, "x").unwrap();
    let e = open_dirs(rt.path()).err().expect("run/ is a file");
    assert_eq!(e.errno(), Some(libc::ENOTDIR), "{e}");
    assert!(!e.to_string().contains("symlink"), "{e}");
}

/// `chattr +i` on a directory for the guard's life: nothing can be
/// created in it, not even by root (`EPERM`).
struct Immutable<'a>(&'a Path);

impl<'a> Immutable<'a> {
    fn set(dir: &'a Path) -> Self {
        Self::chattr("+i", dir);
        Immutable(dir)
    }

    fn chattr(flag: &str, dir: &Path) {
        let out = std::process::Command::new("chattr")
            .arg(flag)
            .arg(dir)
            .output()
            .expect("chattr (e2fsprogs) is needed for this test");
        assert!(out.status.success(), "chattr {flag} {dir:?}: {out:?}");
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        Self::chattr("-i", self.0);
    }
}

/// A writer that cannot create the runtime directory or its `run/` says
/// so with the kernel's error, never taking it for "already there".
#[test]
fn a_writer_reports_why_a_directory_could_not_be_created() {
    let base = tempfile::tempdir().unwrap();
    let rt = base.path().join("rt");
    {
        let _frozen = Immutable::set(base.path());
        let e = open_run_for_writer(&rt, "create a marker")
            .err()
            .expect("the runtime directory cannot be created");
        assert_eq!(e.errno(), Some(libc::EPERM), "{e}");
        assert_eq!(e.path(), Some(rt.as_path()), "{e}");
    }
    std::fs::DirBuilder::new().mode(0o700).create(&rt).unwrap();
    let _frozen = Immutable::set(&rt);
    let e = open_run_for_writer(&rt, "create a marker")
        .err()
        .expect("run/ cannot be created");
    assert_eq!(e.errno(), Some(libc::EPERM), "{e}");
    assert_eq!(e.path(), Some(rt.join("run").as_path()), "{e}");
}

/// A runtime directory that is a dangling symlink of the caller's: the
/// writer creates nothing through it and says it is missing (`ENOENT`),
/// the link left as it was.
#[test]
fn a_writer_on_a_dangling_link_creates_nothing_and_says_missing() {
    let base = tempfile::tempdir().unwrap();
    let link = base.path().join("link");
    std::os::unix::fs::symlink(base.path().join("nowhere"), &link).unwrap();
    let e = open_run_for_writer(&link, "create a marker")
        .err()
        .expect("nothing to write in");
    assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
    assert!(!base.path().join("nowhere").exists());
    assert!(link.symlink_metadata().unwrap().is_symlink());
}

/// Writers racing to create the same runtime directory and `run/` all
/// get it: the one that loses the race to `mkdir` finds it there.
#[test]
fn writers_racing_to_create_run_all_get_it() {
    const WRITERS: usize = 8;
    for _ in 0..40 {
        let base = tempfile::tempdir().unwrap();
        let rt = base.path().join("rt");
        let start = std::sync::Barrier::new(WRITERS);
        std::thread::scope(|s| {
            let all: Vec<_> = (0..WRITERS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        open_run_for_writer(&rt, "create a marker").map(|run| run.path)
                    })
                })
                .collect();
            for w in all {
                assert_eq!(w.join().unwrap().unwrap(), rt.join("run"));
            }
        });
    }
}

/// The directory `open_dirs` opens on the way (the runtime directory's
/// parent) never leaks into a program another thread starts.
#[test]
fn the_parent_opened_on_the_way_never_leaks_into_a_program_started_meanwhile() {
    let base = tempfile::tempdir().unwrap();
    let parent = base.path().join("parent-of-rt");
    std::fs::create_dir_all(parent.join("rt/run")).unwrap();
    let rt = parent.join("rt");
    let leaked = crate::sidecar_markers::leak_tests::inherited_while(
        || {
            let _ = open_dirs(&rt);
        },
        |listing| listing.contains(&format!("-> {}\n", parent.display())),
    );
    assert_eq!(leaked, None);
}
