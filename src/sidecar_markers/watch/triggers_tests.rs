//! The triggers' transitions, unit-tested on a real inotify instance.

use super::*;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::sidecar_markers::sys::inotify::{READ_BUF_LEN, parse_events};

const RUN: i32 = 1;
const PARENT: i32 = 2;

/// Watches on `run/` (or, with `parent`, on the runtime directory
/// only) and on the markers `dirs` (wd, name).
fn wds(parent: bool, dirs: &[(i32, &str)]) -> Wds {
    Wds {
        run: (!parent).then_some(RUN),
        parent: parent.then_some(PARENT),
        dirs: dirs.iter().map(|(wd, n)| (*wd, n.to_string())).collect(),
        names: dirs.iter().map(|(wd, n)| (n.to_string(), *wd)).collect(),
    }
}

fn marker(name: &str) -> Look {
    Look::Marker(name.into())
}

/// Every transition: the watches before, the event, what it asks for,
/// and the watches after.
#[test]
fn each_inotify_event_does_what_it_should() {
    use libc::{
        IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED, IN_ISDIR, IN_MOVE_SELF,
        IN_MOVED_FROM, IN_MOVED_TO, IN_Q_OVERFLOW,
    };
    let meta = METADATA.to_bytes();
    let sock = SOCKET_FILE.to_bytes();
    let pid = PID_FILE.to_bytes();
    let two = wds(false, &[(10, "sb-a"), (11, "sb-b")]);
    let parent = wds(true, &[]);
    let no_run = Wds {
        run: None,
        ..two.clone()
    };
    let no_parent = Wds {
        parent: None,
        ..parent.clone()
    };
    let without_a = wds(false, &[(11, "sb-b")]);
    let without_b = wds(false, &[(10, "sb-a")]);
    // sb-a's directory was replaced: 12 is its new watch, 10 the old.
    let replaced = Wds {
        dirs: [(10, "sb-a".into()), (12, "sb-a".into())].into(),
        names: [("sb-a".into(), 12)].into(),
        ..wds(false, &[])
    };
    let old_gone = wds(false, &[(12, "sb-a")]);
    // A hidden name watched (the watcher never does): still no marker.
    let hidden = wds(false, &[(13, ".sb-h")]);
    let look = Reaction::look;
    let unwatch = |wd, look| Reaction {
        unwatch: Some(wd),
        look,
    };
    type Row<'a> = (&'a str, &'a Wds, i32, u32, &'a [u8], Reaction, &'a Wds);
    use Look::{Nothing, Overflow, Rescan};
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("overflow",                 &two,      -1,     IN_Q_OVERFLOW,                  b"",          look(Overflow),             &two),
        ("overflow wins",            &two,      RUN,    IN_Q_OVERFLOW | IN_DELETE_SELF, b"",          look(Overflow),             &two),
        // The runtime directory, while run/ is missing.
        ("run/ created",             &parent,   PARENT, IN_CREATE | IN_ISDIR,           b"run",       look(Rescan),               &parent),
        ("run/ moved in",            &parent,   PARENT, IN_MOVED_TO | IN_ISDIR,         b"run",       look(Rescan),               &parent),
        ("another entry",            &parent,   PARENT, IN_CREATE,                      b"other",     look(Nothing),              &parent),
        ("runtime dir deleted",      &parent,   PARENT, IN_DELETE_SELF,                 b"",          look(Rescan),               &parent),
        ("runtime dir unwatched",    &parent,   PARENT, IN_IGNORED,                     b"",          look(Rescan),               &no_parent),
        // run/ itself.
        ("run/ deleted",             &two,      RUN,    IN_DELETE_SELF,                 b"",          unwatch(RUN, Rescan),       &no_run),
        ("run/ moved",               &two,      RUN,    IN_MOVE_SELF,                   b"",          unwatch(RUN, Rescan),       &no_run),
        ("run/ unwatched",           &two,      RUN,    IN_IGNORED,                     b"",          look(Rescan),               &no_run),
        // Entries of run/.
        ("marker created",           &two,      RUN,    IN_CREATE | IN_ISDIR,           b"sb-new",    look(marker("sb-new")),     &two),
        ("marker moved in",          &two,      RUN,    IN_MOVED_TO | IN_ISDIR,         b"sb-a",      look(marker("sb-a")),       &two),
        ("marker deleted",           &two,      RUN,    IN_DELETE | IN_ISDIR,           b"sb-a",      unwatch(10, marker("sb-a")), &without_a),
        ("marker moved out",         &two,      RUN,    IN_MOVED_FROM | IN_ISDIR,       b"sb-b",      unwatch(11, marker("sb-b")), &without_b),
        ("unwatched marker deleted", &two,      RUN,    IN_DELETE,                      b"sb-c",      look(marker("sb-c")),       &two),
        ("hidden name",              &two,      RUN,    IN_CREATE,                      b".sb-a.tmp", look(Nothing),              &two),
        ("no name",                  &two,      RUN,    IN_CREATE,                      b"",          look(Nothing),              &two),
        ("hidden name moved out",    &hidden,   RUN,    IN_MOVED_FROM | IN_ISDIR,       b".sb-h",     look(Nothing),              &hidden),
        ("not UTF-8",                &two,      RUN,    IN_CREATE,                      b"sb-\xff",   look(Nothing),              &two),
        ("not a sandbox id",         &two,      RUN,    IN_CREATE,                      b"sb a",      look(Nothing),              &two),
        // A marker directory.
        ("metadata written",         &two,      10,     IN_CLOSE_WRITE,                 meta,         look(marker("sb-a")),       &two),
        ("metadata replaced",        &two,      10,     IN_MOVED_TO,                    meta,         look(marker("sb-a")),       &two),
        ("metadata removed",         &two,      11,     IN_DELETE,                      meta,         look(marker("sb-b")),       &two),
        ("socket created",           &two,      10,     IN_CREATE,                      sock,         look(marker("sb-a")),       &two),
        ("pid file removed",         &two,      10,     IN_DELETE,                      pid,          look(marker("sb-a")),       &two),
        ("another file",             &two,      10,     IN_CREATE,                      b"notes.txt", look(Nothing),              &two),
        ("marker dir deleted",       &two,      10,     IN_DELETE_SELF,                 b"",          look(marker("sb-a")),       &two),
        ("marker dir unwatched",     &two,      10,     IN_IGNORED,                     b"",          look(marker("sb-a")),       &without_a),
        ("old watch, dir replaced",  &replaced, 10,     IN_IGNORED,                     b"",          look(marker("sb-a")),       &old_gone),
        ("a watch forgotten",        &two,      99,     IN_CLOSE_WRITE,                 meta,         look(Nothing),              &two),
    ];
    for (what, before, wd, mask, name, want, after) in table {
        let mut w = before.clone();
        assert_eq!(w.on_event(wd, mask, name), want, "{what}");
        assert_eq!(&w, after, "{what}");
    }
}

#[test]
fn a_marker_watched_again_keeps_its_wd_and_a_replaced_one_forgets_the_old() {
    let mut w = Wds::default();
    w.marker_watched("sb-a", 10);
    assert_eq!(w, wds(true, &[(10, "sb-a")]).without_parent());
    w.marker_watched("sb-a", 10);
    assert_eq!(w, wds(true, &[(10, "sb-a")]).without_parent());
    w.marker_watched("sb-a", 12);
    assert_eq!(w, wds(true, &[(12, "sb-a")]).without_parent());
    // The old watch's IN_IGNORED then finds nothing.
    assert_eq!(
        w.on_event(10, libc::IN_IGNORED, b""),
        Reaction::look(Look::Nothing)
    );
}

impl Wds {
    fn without_parent(self) -> Wds {
        Wds {
            parent: None,
            ..self
        }
    }
}

fn open_dir(p: &Path) -> OwnedFd {
    OwnedFd::from(std::fs::File::open(p).unwrap())
}

/// What the inotify events read at once ask for; `None` when none is
/// queued.
fn read_looks(w: &mut Watches) -> Option<Vec<Look>> {
    let mut buf = vec![0u8; READ_BUF_LEN];
    let Some(Ok(n)) = w.read(&mut buf) else {
        return None;
    };
    let evs: Vec<(i32, u32, Vec<u8>)> = parse_events(&buf[..n])
        .map(|e| (e.wd, e.mask, e.name.to_vec()))
        .collect();
    Some(
        evs.into_iter()
            .map(|(wd, mask, name)| w.on_event(wd, mask, &name))
            .collect(),
    )
}

/// Waits for inotify events and returns what they ask for.
fn looks(w: &mut Watches) -> Vec<Look> {
    for _ in 0..200 {
        if let Some(looks) = read_looks(w) {
            return looks;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no inotify event");
}

/// What the events queued now ask for, without waiting (the kernel
/// queues an event in the system call that causes it): none when
/// nothing is queued.
fn queued(w: &mut Watches) -> Vec<Look> {
    let mut all = Vec::new();
    while let Some(looks) = read_looks(w) {
        all.extend(looks);
    }
    all
}

/// With the kernel: the runtime directory is watched while `run/` is
/// missing, `run/` and a marker through their open descriptors once it
/// exists, and the events come back as what they ask for.
#[test]
fn watches_follow_run_and_its_markers() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let mut w = Watches::new(Some(Inotify::new().unwrap()));
    assert!(w.polling(), "nothing watched yet");
    w.watch_parent(&run_path);
    assert!(w.wds.parent.is_some() && !w.polling());
    std::fs::create_dir(&run_path).unwrap();
    assert_eq!(looks(&mut w), [Look::Rescan]);
    let run = open_dir(&run_path);
    assert_eq!(w.watch_run(run.as_fd(), &run_path), None);
    assert!(w.wds.run.is_some() && w.wds.parent.is_none() && !w.polling());
    assert_eq!(looks(&mut w), [Look::Nothing], "the parent's IN_IGNORED");
    w.watch_parent(&run_path);
    assert!(w.wds.parent.is_none(), "not while run/ is watched");
    std::fs::create_dir(run_path.join("sb-a")).unwrap();
    assert_eq!(looks(&mut w), [marker("sb-a")]);
    assert!(!w.watches_marker("sb-a"));
    assert_eq!(w.watch_marker(run.as_fd(), c"sb-a"), None);
    let wd = w.wds.names["sb-a"];
    assert_eq!(w.watch_marker(run.as_fd(), c"sb-a"), None);
    assert_eq!(w.wds.names["sb-a"], wd, "the same directory, the same wd");
    assert!(w.watches_marker("sb-a"));
    std::fs::write(run_path.join("sb-a/metadata.toml"), b"x").unwrap();
    assert!(looks(&mut w).iter().all(|l| *l == marker("sb-a")));
    // Who may connect to the socket file changed: the probe rounds
    // must stop judging it by the file they knew.
    let sock = run_path.join("sb-a/sidecar.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert!(looks(&mut w).iter().all(|l| *l == marker("sb-a")));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(looks(&mut w), [marker("sb-a")], "a chmod of sidecar.sock");
    drop(listener);
    assert_eq!(w.watch_marker(run.as_fd(), c"sb-missing"), None);
    assert!(!w.watches_marker("sb-missing"), "gone: simply not watched");
    w.forget_run();
    assert!(w.wds.run.is_none() && w.polling());
}

#[test]
fn without_inotify_nothing_is_watched_and_everything_polled() {
    let dir = tempfile::tempdir().unwrap();
    let run = open_dir(dir.path());
    let mut w = Watches::new(None);
    w.watch_parent(&dir.path().join("run"));
    assert_eq!(w.watch_run(run.as_fd(), dir.path()), None);
    assert_eq!(w.watch_marker(run.as_fd(), c"sb-a"), None);
    assert_eq!(w.wds, Wds::default());
    assert!(w.polling());
    assert!(w.read(&mut [0; 64]).is_none());
}

/// At the watch limit the watcher polls, and says so once, by the
/// sysctl to raise.
#[test]
fn the_watch_limit_degrades_to_polling() {
    let mut w = Watches::new(Some(Inotify::new().unwrap()));
    w.wds.run = Some(RUN);
    assert!(!w.polling());
    w.watch_limit = true;
    assert!(w.polling());
    let e = io::Error::from_raw_os_error(libc::ENOSPC);
    assert_eq!(
        watch_failure("a marker directory", &e),
        "the inotify watch limit is reached watching a marker directory \
         (fs.inotify.max_user_watches): judging every marker each probe interval"
    );
    let e = io::Error::from_raw_os_error(libc::EACCES);
    assert!(watch_failure("run/", &e).starts_with("cannot watch run/ (Permission denied"));
}

/// Each event `RUN_MASK` and `PARENT_MASK` ask the kernel for, seen
/// happen: `run/` moved into the runtime directory; a marker moved into
/// `run/`, out of it, created and removed; `run/` itself moved away.
#[test]
fn the_run_watch_sees_markers_come_and_go_and_run_itself_move() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let mut w = Watches::new(Some(Inotify::new().unwrap()));
    w.watch_parent(&run_path);
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    assert_eq!(queued(&mut w), [Look::Nothing], "another entry");
    std::fs::rename(&staging, &run_path).unwrap();
    assert_eq!(queued(&mut w), [Look::Rescan], "run/ moved in");
    let run = open_dir(&run_path);
    assert_eq!(w.watch_run(run.as_fd(), &run_path), None);
    assert_eq!(queued(&mut w), [Look::Nothing], "the parent's IN_IGNORED");
    let outside = dir.path().join("sb-m");
    std::fs::create_dir(&outside).unwrap();
    std::fs::rename(&outside, run_path.join("sb-m")).unwrap();
    assert_eq!(queued(&mut w), [marker("sb-m")], "moved in");
    assert_eq!(w.watch_marker(run.as_fd(), c"sb-m"), None);
    assert!(w.watches_marker("sb-m"));
    std::fs::rename(run_path.join("sb-m"), &outside).unwrap();
    assert_eq!(
        queued(&mut w),
        [marker("sb-m"), Look::Nothing],
        "moved out: its watch removed (then the kernel's IN_IGNORED)"
    );
    assert!(!w.watches_marker("sb-m"));
    std::fs::create_dir(run_path.join("sb-d")).unwrap();
    assert_eq!(queued(&mut w), [marker("sb-d")], "created");
    std::fs::remove_dir(run_path.join("sb-d")).unwrap();
    assert_eq!(queued(&mut w), [marker("sb-d")], "removed");
    std::fs::rename(&run_path, dir.path().join("run.old")).unwrap();
    assert_eq!(
        queued(&mut w),
        [Look::Rescan, Look::Nothing],
        "run/ moved away: its watch removed (then the kernel's IN_IGNORED)"
    );
    assert!(!w.watching_run() && w.polling());
}

/// Each event `MARKER_MASK` asks the kernel for, seen happen:
/// `metadata.toml` renamed into place and out of it, `sidecar.pid`
/// removed; the other names written in between ask for nothing.
#[test]
fn a_marker_watch_sees_its_files_replaced_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let m = run_path.join("sb-a");
    std::fs::create_dir_all(&m).unwrap();
    let run = open_dir(&run_path);
    let mut w = Watches::new(Some(Inotify::new().unwrap()));
    assert_eq!(w.watch_marker(run.as_fd(), c"sb-a"), None);
    assert!(w.watches_marker("sb-a"));
    std::fs::write(m.join("metadata.toml.new"), b"x").unwrap();
    assert!(queued(&mut w).iter().all(|l| *l == Look::Nothing));
    std::fs::rename(m.join("metadata.toml.new"), m.join("metadata.toml")).unwrap();
    assert_eq!(
        queued(&mut w),
        [Look::Nothing, marker("sb-a")],
        "metadata.toml replaced"
    );
    std::fs::rename(m.join("metadata.toml"), m.join("metadata.toml.old")).unwrap();
    assert_eq!(
        queued(&mut w),
        [marker("sb-a"), Look::Nothing],
        "metadata.toml moved away"
    );
    std::fs::write(m.join("sidecar.pid"), b"1").unwrap();
    assert!(queued(&mut w).iter().all(|l| *l == marker("sb-a")));
    std::fs::remove_file(m.join("sidecar.pid")).unwrap();
    assert_eq!(queued(&mut w), [marker("sb-a")], "sidecar.pid removed");
}

/// Only directories are watched, and a marker that is a symlink is not
/// followed: `run/` through a descriptor of a file is a degradation; a
/// marker name that is a file, or a symlink to a directory, is not
/// watched; nor is a runtime directory that is a file.
#[test]
fn only_directories_are_watched_and_symlinks_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    std::fs::create_dir(&run_path).unwrap();
    let file = run_path.join("sb-file");
    std::fs::write(&file, b"").unwrap();
    std::os::unix::fs::symlink(dir.path(), run_path.join("sb-link")).unwrap();
    let mut w = Watches::new(Some(Inotify::new().unwrap()));
    let not_dir = OwnedFd::from(std::fs::File::open(&file).unwrap());
    let d = w.watch_run(not_dir.as_fd(), &file).expect("a degradation");
    assert_eq!(d.key, "watch-run");
    assert!(d.reason.contains("Not a directory"), "{}", d.reason);
    assert!(!w.watching_run());
    let run = open_dir(&run_path);
    assert_eq!(w.watch_run(run.as_fd(), &run_path), None);
    for name in [c"sb-file", c"sb-link"] {
        assert_eq!(w.watch_marker(run.as_fd(), name), None);
        assert!(!w.watches_marker(name.to_str().unwrap()), "{name:?}");
    }
    let mut p = Watches::new(Some(Inotify::new().unwrap()));
    p.watch_parent(&file.join("run"));
    assert!(p.wds.parent.is_none() && p.polling());
}

/// An inotify instance had later (the instance limit lifted) starts
/// afresh; the watch limit met is tried again when asked.
#[test]
fn an_instance_had_later_and_the_watch_limit_retried() {
    let mut w = Watches::new(None);
    assert!(!w.has_inotify());
    w.wds = wds(false, &[(10, "sb-a")]);
    w.watch_limit = true;
    w.set_inotify(Inotify::new().unwrap());
    assert!(w.has_inotify() && !w.at_watch_limit());
    assert_eq!(w.wds, Wds::default());
    w.watch_limit = true;
    assert!(w.at_watch_limit());
    w.retry_watch_limit();
    assert!(!w.at_watch_limit());
}

/// Runs the test `name` of this module again, in new namespaces
/// (`unshare ARGS`) after the shell command `prelude` there: true in that
/// run, where the test goes on; false in this one, once that run passed.
fn again_in_namespaces(name: &str, unshare: &[&str], prelude: &str) -> bool {
    const ENV: &str = "FIRMA_TRIGGERS_TEST_IN_NAMESPACES";
    if std::env::var(ENV).is_ok_and(|n| n == name) {
        return true;
    }
    let module = module_path!().split_once("::").unwrap().1;
    let out = std::process::Command::new("unshare")
        .args(unshare)
        .args(["sh", "-c", &format!("{prelude} && exec \"$0\" \"$@\"")])
        .arg(std::env::current_exe().unwrap())
        .args([&format!("{module}::{name}"), "--exact", "--test-threads=1"])
        .env(ENV, name)
        .output()
        .expect("unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} under unshare {unshare:?} after `{prelude}` failed (or the kernel refused):\n\
         {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Where `/proc` is missing (here a tmpfs over it, in a mount namespace
/// of the test's own), `run/` is watched by its path, not given up, and
/// a symlink in its place is not followed.
#[test]
fn without_proc_run_is_watched_by_its_path() {
    let name = "without_proc_run_is_watched_by_its_path";
    let unshare = ["--mount", "--propagation", "private"];
    if !again_in_namespaces(name, &unshare, "mount -t tmpfs tmpfs /proc") {
        return;
    }
    assert!(!Path::new("/proc/thread-self").exists(), "/proc is hidden");
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    std::fs::create_dir(&run_path).unwrap();
    let run = open_dir(&run_path);
    let mut w = Watches::new(Some(Inotify::new().unwrap()));
    assert_eq!(w.watch_run(run.as_fd(), &run_path), None);
    assert!(w.watching_run());
    std::fs::create_dir(run_path.join("sb-p")).unwrap();
    assert_eq!(looks(&mut w), [marker("sb-p")]);
    let link = dir.path().join("run-link");
    std::os::unix::fs::symlink(&run_path, &link).unwrap();
    let mut w = Watches::new(Some(Inotify::new().unwrap()));
    let d = w.watch_run(run.as_fd(), &link).expect("a degradation");
    assert!(d.reason.contains("Not a directory"), "{}", d.reason);
    assert!(!w.watching_run());
}

/// At the inotify watch limit (here a user namespace allowing two
/// watches), the marker not watched is a degradation, and no other marker
/// is tried until the limit is retried.
#[test]
fn the_watch_limit_is_met_once_until_retried() {
    let name = "the_watch_limit_is_met_once_until_retried";
    let unshare = ["--user", "--map-root-user"];
    if !again_in_namespaces(
        name,
        &unshare,
        "echo 2 > /proc/sys/user/max_inotify_watches",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    for m in ["sb-0", "sb-1", "sb-2"] {
        std::fs::create_dir_all(run_path.join(m)).unwrap();
    }
    let run = open_dir(&run_path);
    let mut w = Watches::new(Some(Inotify::new().unwrap()));
    assert_eq!(w.watch_run(run.as_fd(), &run_path), None);
    assert_eq!(w.watch_marker(run.as_fd(), c"sb-0"), None);
    assert!(w.watches_marker("sb-0") && !w.polling());
    let d = w.watch_marker(run.as_fd(), c"sb-1").expect("ENOSPC");
    assert_eq!(d.key, "watch-marker");
    assert!(d.reason.contains("max_user_watches"), "{}", d.reason);
    assert!(w.at_watch_limit() && w.polling() && !w.watches_marker("sb-1"));
    assert_eq!(w.watch_marker(run.as_fd(), c"sb-2"), None, "not tried");
    w.retry_watch_limit();
    assert!(
        w.watch_marker(run.as_fd(), c"sb-2").is_some(),
        "tried again"
    );
}
