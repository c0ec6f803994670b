//! More unit tests of `gc.rs`, each pinning one behaviour a mutant could
//! change unnoticed: a marker that changes between its judgement and the
//! rename is put back (or, a mount point, never moved); which removal
//! errors are surfaced (`remove_tree`, `finish_leftover`) and which
//! swallowed (`take`, once the marker left the namespace); the exact
//! outcome of the recursion bound; leftovers that are files or symlinks;
//! a leftover under this very process's pid; readdir's `DT_UNKNOWN`
//! (a real ext4 without the `filetype` feature); close-on-exec.

use super::tests::child::{Reaped, python_ready};
use super::tests::ext4::Ext4;
use super::tests::{dead_pid, names, open_run, read, stale};
use super::*;
use crate::sidecar_markers::process;
use crate::sidecar_markers::{create_marker, gc_stale};
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory holding one file, `precious`, that no removal may reach.
struct Precious(tempfile::TempDir);

impl Precious {
    fn new() -> Precious {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), "x").unwrap();
        Precious(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn intact(&self) -> bool {
        self.0.path().join("precious").exists()
    }
}

/// A fresh directory, opened.
fn opened_dir() -> (tempfile::TempDir, OwnedFd) {
    let root = tempfile::tempdir().unwrap();
    let fd = sys::open(root.path(), sys::DIR_FLAGS).unwrap();
    (root, fd)
}

/// `path` (not followed) as a scan saw it.
fn seen(path: &Path) -> crate::sidecar_markers::reserved::Seen {
    let st = std::fs::symlink_metadata(path).unwrap();
    crate::sidecar_markers::reserved::Seen {
        dev: st.dev(),
        ino: st.ino(),
    }
}

/// The identity of the marker `name` of `run` as judged.
fn judged(run: BorrowedFd<'_>, run_path: &Path, name: &CStr) -> MetaId {
    read(run, run_path, name).meta_id
}

/// A runtime dir with one stale marker `id`, opened: (dir, run/, run fd).
fn one_stale(id: &str) -> (tempfile::TempDir, PathBuf, OwnedFd) {
    let rt = tempfile::tempdir().unwrap();
    create_marker(rt.path(), &stale(id)).unwrap();
    let run = rt.path().join("run");
    let fd = open_run(&run);
    (rt, run, fd)
}

/// [`one_stale`], judged: also the marker's name and its identity.
fn one_judged(id: &str) -> (tempfile::TempDir, PathBuf, OwnedFd, CString, MetaId) {
    let (rt, run, fd) = one_stale(id);
    let name = CString::new(id).unwrap();
    let meta_id = judged(fd.as_fd(), &run, &name);
    (rt, run, fd, name, meta_id)
}

#[test]
fn a_marker_that_lost_its_metadata_after_its_judgement_is_put_back() {
    let (_rt, run, fd, name, id) = one_judged("lost");
    std::fs::remove_file(run.join("lost/metadata.toml")).unwrap();
    assert!(!take(fd.as_fd(), &name, Some(id)).unwrap());
    assert_eq!(names(&run), ["lost"]);
}

#[test]
fn a_marker_whose_metadata_changed_in_place_after_its_judgement_is_put_back() {
    let (_rt, run, fd, name, id) = one_judged("changed");
    let file = run.join("changed/metadata.toml");
    let ino = std::fs::metadata(&file).unwrap().ino();
    let text = std::fs::read_to_string(&file).unwrap();
    // Same inode, same length, other bytes.
    std::fs::write(&file, text.replace("agent", "AGENT")).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino);
    assert!(!take(fd.as_fd(), &name, Some(id)).unwrap());
    assert_eq!(names(&run), ["changed"]);
    assert!(file.exists());
}

/// Unmounts `path` on drop.
struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn bind(from: &Path, to: &Path) -> Mounted {
    assert_eq!(
        sys::geteuid(),
        0,
        "this test bind-mounts and must run as root; it proves nothing otherwise"
    );
    let st = Command::new("mount")
        .arg("--bind")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "mount --bind refused: this test needs it");
    Mounted(to.to_owned())
}

/// A marker directory that became a mount point after its judgement
/// cannot leave the namespace (the kernel refuses the rename with
/// `EBUSY`): the error is surfaced, nothing moved, nothing behind the
/// mount touched.
#[test]
fn a_marker_that_became_a_mount_point_after_its_judgement_is_not_taken() {
    let (_rt, run, fd, name, id) = one_judged("mounted");
    let other = Precious::new();
    let _m = bind(other.path(), &run.join("mounted"));
    let e = take(fd.as_fd(), &name, Some(id)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
    assert_eq!(names(&run), ["mounted"]);
    assert!(other.intact());
}

/// `d1/d2/…/d{n}`, each level holding a file `f`, under `root/<top>`.
fn deep(root: &Path, top: &str, n: usize) -> PathBuf {
    let mut p = root.join(top);
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("f"), "x").unwrap();
    for i in 1..=n {
        p = p.join(format!("d{i}"));
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("f"), "x").unwrap();
    }
    root.join(top)
}

/// What is left of [`deep`]'s tree: the relative paths, sorted.
fn left(top: &Path) -> Vec<String> {
    fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap().path();
            out.push(e.strip_prefix(base).unwrap().display().to_string());
            if e.is_dir() {
                walk(base, &e, out);
            }
        }
    }
    let mut out = Vec::new();
    if top.exists() {
        walk(top, top, &mut out);
    }
    out.sort();
    out
}

/// The levels beyond [`MAX_DEPTH`] of a 12-deep tree, and the chain of
/// emptied directories down to them: exactly what the bound leaves.
fn beyond_the_bound() -> Vec<String> {
    let mut want = Vec::new();
    let mut p = String::new();
    for i in 1..=12 {
        p = if p.is_empty() {
            format!("d{i}")
        } else {
            format!("{p}/d{i}")
        };
        want.push(p.clone());
        if i > MAX_DEPTH {
            want.push(format!("{p}/f"));
        }
    }
    want.sort();
    want
}

/// `remove_tree` of a tree nested deeper than [`MAX_DEPTH`] removes every
/// file down to the bound, leaves the levels beyond it untouched (and the
/// directories leading to them), and says so with an error.
#[test]
fn remove_tree_stops_exactly_at_the_bound_and_says_so() {
    assert_eq!(MAX_DEPTH, 8, "the expectations below are for a bound of 8");
    let root = tempfile::tempdir().unwrap();
    let top = deep(root.path(), "t", 12);
    let fd = sys::open(root.path(), sys::DIR_FLAGS).unwrap();
    let e = remove_tree(fd.as_fd(), c"t", 0).unwrap_err();
    assert!(e.to_string().contains("nested too deeply"), "{e}");
    assert_eq!(left(&top), beyond_the_bound());
    // A tree exactly at the bound goes entirely.
    let top = deep(root.path(), "u", MAX_DEPTH);
    remove_tree(fd.as_fd(), c"u", 0).unwrap();
    assert!(!top.exists());
}

/// Once the marker left the namespace, `take` reports it whatever its
/// removal does: the too-deep rest stays under the tomb name (for a scan
/// after this process exits), and `take` is `Ok(true)`. `finish_leftover`
/// of that tomb surfaces the same error and leaves the same rest.
#[test]
fn take_swallows_a_removal_error_after_the_rename_finish_leftover_surfaces_it() {
    let (_rt, run, fd, name, id) = one_judged("deep");
    std::fs::remove_file(run.join("deep/f")).ok();
    // The tree beneath the marker: deep/d1/…/d12.
    let mut p = run.join("deep");
    for i in 1..=12 {
        p = p.join(format!("d{i}"));
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("f"), "x").unwrap();
    }
    assert!(take(fd.as_fd(), &name, Some(id)).unwrap());
    let tombs = names(&run);
    assert_eq!(tombs.len(), 1, "{tombs:?}");
    assert!(tombs[0].starts_with(".gc-"), "{tombs:?}");
    let tomb = run.join(&tombs[0]);
    assert_eq!(left(&tomb), beyond_the_bound());
    let st = std::fs::metadata(&tomb).unwrap();
    let tomb_name = CString::new(tombs[0].clone()).unwrap();
    let seen = crate::sidecar_markers::reserved::Seen {
        dev: st.dev(),
        ino: st.ino(),
    };
    let e = finish_leftover(fd.as_fd(), &tomb_name, seen).unwrap_err();
    assert!(e.to_string().contains("nested too deeply"), "{e}");
    assert_eq!(left(&tomb), beyond_the_bound());
}

fn own_ns() -> u64 {
    process::own_namespaces().0.expect("own pid namespace")
}

/// A `.gc-` leftover named with this very process's pid (and pid
/// namespace), left by an earlier process that had the same pid: while we
/// live its maker cannot be proved gone, so it is left alone, and
/// collection goes on under a fresh name beside it.
#[test]
fn a_leftover_under_our_own_pid_is_left_alone_and_collection_goes_on() {
    let (rt, run, _fd) = one_stale("next");
    let leftover = run.join(format!(
        ".gc-{}-{}-0123456789abcdef",
        std::process::id(),
        own_ns()
    ));
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("metadata.toml"), "old").unwrap();
    assert_eq!(gc_stale(rt.path()).unwrap(), ["next"]);
    let left = names(&run);
    assert_eq!(
        left,
        [leftover.file_name().unwrap().to_str().unwrap().to_owned()]
    );
    assert_eq!(
        std::fs::read_to_string(leftover.join("metadata.toml")).unwrap(),
        "old"
    );
}

/// Leftovers of a dead collector that are a file or a symlink (to a
/// directory with content) are unlinked, never followed.
#[test]
fn leftovers_that_are_files_or_symlinks_are_unlinked_never_followed() {
    let rt = tempfile::tempdir().unwrap();
    create_marker(rt.path(), &stale("s")).unwrap();
    let run = rt.path().join("run");
    let elsewhere = Precious::new();
    let dead = dead_pid();
    let file = run.join(format!(".gc-{dead}-{}-00000000000000a1", own_ns()));
    let link = run.join(format!(".gc-{dead}-{}-00000000000000a2", own_ns()));
    std::fs::write(&file, "x").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
    assert_eq!(gc_stale(rt.path()).unwrap(), ["s"]);
    assert_eq!(names(&run), Vec::<String>::new());
    assert!(elsewhere.intact());
    // finish_leftover says so too, for each, directly.
    let fd = sys::open(&run, sys::DIR_FLAGS).unwrap();
    std::fs::write(&file, "x").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
    for p in [&file, &link] {
        let seen = seen(p);
        let n = CString::new(p.file_name().unwrap().to_str().unwrap()).unwrap();
        finish_leftover(fd.as_fd(), &n, seen).unwrap();
        assert!(std::fs::symlink_metadata(p).is_err(), "{p:?} left");
    }
    assert!(elsewhere.intact());
}

/// Close-on-exec as the kernel reports it: the octal `flags:` line of
/// /proc/self/fdinfo (no unsafe here: the core denies it outside sys/).
fn cloexec(fd: BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    let flags: String = crate::sidecar_markers::sys::proc_field(&info, "flags:").unwrap();
    let flags = u32::from_str_radix(&flags, 8).unwrap();
    flags & libc::O_CLOEXEC as u32 != 0
}

/// Every descriptor collection opens is close-on-exec: a supervisor that
/// collects on one thread and starts a program on another leaks none.
#[test]
fn descriptors_opened_for_collection_are_close_on_exec() {
    let (_rt, run, fd) = one_stale("cx");
    let dir = open_subdir(fd.as_fd(), c"cx").unwrap();
    assert!(cloexec(dir.as_fd()));
    let file = open_file_here(dir.as_fd(), METADATA).unwrap();
    assert!(cloexec(file.as_fd()));
    assert!(cloexec(fd.as_fd()));
    drop(run);
}

/// On a filesystem whose readdir says `DT_UNKNOWN` (checked here), a
/// marker tree with subdirectories, files and a symlink is removed
/// entirely: a subdirectory is found by `unlinkat`'s `EISDIR`, and the
/// symlink's target is untouched.
#[test]
fn dt_unknown_entries_are_removed_as_what_they_are() {
    let fs = Ext4::without_filetype();
    let top = fs.mnt.join("m");
    std::fs::create_dir_all(top.join("a/b/c")).unwrap();
    std::fs::write(top.join("a/b/c/f"), "x").unwrap();
    std::fs::write(top.join("g"), "x").unwrap();
    let outside = fs.mnt.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, top.join("link")).unwrap();
    let dir = sys::open(&top, sys::DIR_FLAGS).unwrap();
    let entries = sys::read_dir(dir.as_fd()).unwrap();
    let a = entries.iter().find(|e| e.name.as_bytes() == b"a").unwrap();
    assert_eq!(
        a.d_type,
        libc::DT_UNKNOWN,
        "readdir gave a type on an ext4 without filetype: the path is not exercised"
    );
    drop(dir);
    let parent = sys::open(&fs.mnt, sys::DIR_FLAGS).unwrap();
    remove_tree(parent.as_fd(), c"m", 0).unwrap();
    assert!(!top.exists());
    assert!(outside.join("precious").exists());
}

/// A marker another collector took first (gone from `run/` between the
/// judgement and the rename) is not an error: `take` says "not mine",
/// `Ok(false)`, and touches nothing. (Found by `make mutants`: the ENOENT
/// arm could be dropped unnoticed.)
#[test]
fn a_marker_taken_by_another_collector_first_is_not_an_error() {
    let (_rt, run, fd, name, id) = one_judged("first");
    std::fs::remove_dir_all(run.join("first")).unwrap();
    assert!(!take(fd.as_fd(), &name, Some(id)).unwrap());
    assert!(!take(fd.as_fd(), &name, None).unwrap());
    assert_eq!(names(&run), Vec::<String>::new());
}

/// A marker directory replaced, after its judgement, by a symlink to a
/// copy of itself or by a regular file: the tomb is not a directory this
/// collector may open (`ELOOP`, `ENOTDIR`), so it is put back under its
/// name — `Ok(false)`, not an error — and the copy behind the symlink is
/// untouched. (Found by `make mutants`.)
#[test]
fn a_marker_replaced_by_a_symlink_or_a_file_after_its_judgement_is_put_back() {
    let (rt, run, fd, name, id) = one_judged("swap");
    let copy = rt.path().join("copy");
    std::fs::rename(run.join("swap"), &copy).unwrap();
    std::os::unix::fs::symlink(&copy, run.join("swap")).unwrap();
    assert!(!take(fd.as_fd(), &name, Some(id)).unwrap());
    assert_eq!(names(&run), ["swap"]);
    assert!(
        std::fs::symlink_metadata(run.join("swap"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(copy.join("metadata.toml").exists());
    std::fs::remove_file(run.join("swap")).unwrap();
    std::fs::write(run.join("swap"), "not a directory").unwrap();
    assert!(!take(fd.as_fd(), &name, Some(id)).unwrap());
    assert_eq!(names(&run), ["swap"]);
    assert!(std::fs::metadata(run.join("swap")).unwrap().is_file());
}

/// A judged `metadata.toml` of exactly the size cap (64 KiB, comments
/// padding it) is still the judged marker: collected, not put back.
/// (Found by `make mutants`: the cap's boundary was not pinned.)
#[test]
fn a_judged_metadata_of_exactly_the_cap_is_collected() {
    let (_rt, run, fd) = one_stale("full");
    let file = run.join("full/metadata.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    let pad = MAX_METADATA_BYTES - text.len() - 2;
    text.push('#');
    text.push_str(&"x".repeat(pad));
    text.push('\n');
    assert_eq!(text.len(), MAX_METADATA_BYTES);
    std::fs::write(&file, &text).unwrap();
    let name = CString::new("full").unwrap();
    let id = judged(fd.as_fd(), &run, &name);
    assert!(take(fd.as_fd(), &name, Some(id)).unwrap());
    assert_eq!(names(&run), Vec::<String>::new());
}

/// A judged `metadata.toml` replaced by a directory after its judgement:
/// not the judged file, so the marker is put back — `Ok(false)`, never an
/// error from reading a directory. (Found by `make mutants`.)
#[test]
fn a_metadata_replaced_by_a_directory_after_its_judgement_is_put_back() {
    let (_rt, run, fd, name, id) = one_judged("dir");
    let file = run.join("dir/metadata.toml");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    assert!(!take(fd.as_fd(), &name, Some(id)).unwrap());
    assert_eq!(names(&run), ["dir"]);
    assert!(file.is_dir());
}

/// `remove_tree` of what is not a directory to descend: nothing there is
/// done already (`Ok`), a file or a symlink is unlinked (the symlink's
/// target untouched), and a mount point is an error (`EXDEV`) with
/// nothing behind it removed. (Found by `make mutants`.)
#[test]
fn remove_tree_of_nothing_a_file_a_symlink_or_a_mount_point() {
    let (root, fd) = opened_dir();
    remove_tree(fd.as_fd(), c"nothing", 0).unwrap();
    std::fs::write(root.path().join("file"), "x").unwrap();
    remove_tree(fd.as_fd(), c"file", 0).unwrap();
    assert!(!root.path().join("file").exists());
    let target = Precious::new();
    std::os::unix::fs::symlink(target.path(), root.path().join("link")).unwrap();
    remove_tree(fd.as_fd(), c"link", 0).unwrap();
    assert!(std::fs::symlink_metadata(root.path().join("link")).is_err());
    assert!(target.intact());
    std::fs::create_dir(root.path().join("mnt")).unwrap();
    let _m = bind(target.path(), &root.path().join("mnt"));
    let e = remove_tree(fd.as_fd(), c"mnt", 0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{e}");
    assert!(target.intact());
}

/// A leftover another scan finished first is not an error.
#[test]
fn finishing_a_leftover_that_is_already_gone_is_ok() {
    let (_root, fd) = opened_dir();
    let seen = crate::sidecar_markers::reserved::Seen { dev: 0, ino: 0 };
    finish_leftover(fd.as_fd(), c".gc-1-1-0123456789abcdef", seen).unwrap();
}

/// Where readdir says `DT_UNKNOWN`, subdirectories are found through
/// `unlinkat`'s `EISDIR` — and still count against the depth bound: the
/// same exact outcome as on a filesystem that reports types.
#[test]
fn the_depth_bound_holds_where_readdir_gives_no_types() {
    let fs = Ext4::without_filetype();
    let top = deep(&fs.mnt, "t", 12);
    let dir = sys::open(&top, sys::DIR_FLAGS).unwrap();
    let entries = sys::read_dir(dir.as_fd()).unwrap();
    assert!(
        entries.iter().all(|e| e.d_type == libc::DT_UNKNOWN),
        "readdir gave types: the path is not exercised"
    );
    drop(dir);
    let fd = sys::open(&fs.mnt, sys::DIR_FLAGS).unwrap();
    let e = remove_tree(fd.as_fd(), c"t", 0).unwrap_err();
    assert!(e.to_string().contains("nested too deeply"), "{e}");
    assert_eq!(left(&top), beyond_the_bound());
}

/// A process holding a write lease on `path` (python's `fcntl`), until
/// dropped. Lease breaks (`SIGIO`) are ignored: the lease stands until
/// the kernel's lease-break-time, longer than any test here.
fn leased(path: &Path) -> Reaped {
    python_ready(
        "import fcntl, os, signal, sys, time\n\
         signal.signal(signal.SIGIO, signal.SIG_IGN)\n\
         fd = os.open(sys.argv[1], os.O_RDONLY)\n\
         fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)\n\
         print('ready', flush=True)\n\
         time.sleep(120)\n",
        &[path],
        "a write lease",
    )
}

/// When the check that the tomb holds the judged `metadata.toml` cannot
/// be made — here the file is under another process's write lease since
/// the judgement, so the non-blocking open fails with `EWOULDBLOCK` — the
/// marker is put back and the failure returned, not read as "another
/// marker now" (`Ok(false)`, said by nobody). The open never waits for
/// the lease to break.
#[test]
fn a_check_that_cannot_open_the_judged_metadata_is_an_error_and_puts_it_back() {
    let (_rt, run, fd, name, id) = one_judged("leased");
    let lease = leased(&run.join("leased/metadata.toml"));
    let err = take(fd.as_fd(), &name, Some(id)).expect_err("the check failed");
    assert_eq!(err.raw_os_error(), Some(libc::EWOULDBLOCK), "{err}");
    assert_eq!(names(&run), ["leased"]);
    drop(lease);
    assert!(take(fd.as_fd(), &name, Some(id)).unwrap());
    assert_eq!(names(&run), Vec::<String>::new());
}

/// A leftover that is a mount point is never entered nor unlinked:
/// finishing it fails with `EXDEV` (not an unlink's `EISDIR`), nothing
/// behind the mount touched.
#[test]
fn finishing_a_leftover_that_is_a_mount_point_fails_exdev() {
    let (root, fd) = opened_dir();
    let name = c".gc-1-1-0123456789abcdef";
    let leftover = root.path().join(name.to_str().unwrap());
    std::fs::create_dir(&leftover).unwrap();
    let target = Precious::new();
    let _m = bind(target.path(), &leftover);
    let seen = seen(&leftover);
    let e = finish_leftover(fd.as_fd(), name, seen).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{e}");
    assert!(target.intact());
}

/// A file in a tree that cannot be unlinked — here a file mount point
/// (`EBUSY`) — is an error of the removal, the one the kernel gave, never
/// swallowed: everything else is removed, the file and what it mounts
/// stay, and the tree's directories that hold it.
#[test]
fn a_file_that_cannot_be_unlinked_is_the_removals_error() {
    let (root, fd) = opened_dir();
    let top = root.path().join("t");
    std::fs::create_dir_all(top.join("sub")).unwrap();
    std::fs::write(top.join("a"), "x").unwrap();
    std::fs::write(top.join("sub/b"), "x").unwrap();
    std::fs::write(top.join("sub/pinned"), "").unwrap();
    let source = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(source.path(), "precious").unwrap();
    let _m = bind(source.path(), &top.join("sub/pinned"));
    let e = remove_tree(fd.as_fd(), c"t", 0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
    assert!(!top.join("a").exists() && !top.join("sub/b").exists());
    assert!(top.join("sub/pinned").exists());
    assert_eq!(std::fs::read_to_string(source.path()).unwrap(), "precious");
}

/// Two scans may finish the same leftover at once: entries the other one
/// removed first (files, subdirectories, the top itself) are not errors.
/// Four removals race over one wide tree; each succeeds, and the tree is
/// gone. (The correct code cannot fail this; code that took a vanished
/// entry for an error fails it on nearly every run.)
#[test]
fn concurrent_removals_of_one_tree_all_succeed() {
    for _ in 0..2 {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("t");
        for d in 0..4 {
            let sub = top.join(format!("d{d}"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..100 {
                std::fs::write(sub.join(format!("f{f}")), "").unwrap();
                std::fs::write(top.join(format!("f{d}-{f}")), "").unwrap();
            }
        }
        let barrier = std::sync::Barrier::new(4);
        let results: Vec<io::Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let fd = sys::open(root.path(), sys::DIR_FLAGS).unwrap();
                        barrier.wait();
                        remove_tree(fd.as_fd(), c"t", 0)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            r.unwrap();
        }
        assert!(!top.exists());
    }
}
