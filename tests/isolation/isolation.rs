//! One marker never breaks a call, hangs it, or reaches beyond its own tree
//! (docs/design.md, "Per-marker failures"). Real bind and tmpfs mounts, a real FUSE mount whose daemon
//! never answers, real `chattr`, read-only bind mounts, a sticky `run/`
//! with a non-root reader, `prlimit`, an IPv6 link-local endpoint.
//!
//! These need root (CI runs `make test` as root); a refusal by the kernel
//! fails the test with a message saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::hung_fuse::HungFuse;
use crate::common::{
    FIRMA, Sidecar, chmod, dead_pid, firma_as_nobody, has_metadata, json_output, metadata,
    names_in, need_root, root_runtime, runtime, succeed, write_marker, write_stale,
};
use firma_stack::sidecar_markers::{
    ProbeOptions, ScanOptions, State, gc_stale, get, get_with, inspect, list, list_with, scan,
};

fn run(cmd: &str, args: &[&str]) {
    succeed(
        Command::new(cmd).args(args),
        &format!("`{cmd} {args:?}` was refused"),
    );
}

const NEED_ROOT: &str = "these tests mount filesystems";

/// Mounts made by a test, lazily unmounted (deepest first) on drop.
#[derive(Default)]
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn bind(&mut self, from: &Path, to: &Path) {
        need_root(NEED_ROOT);
        run("mount", &["--bind", s(from), s(to)]);
        self.0.push(to.to_path_buf());
    }

    fn tmpfs(&mut self, to: &Path) {
        need_root(NEED_ROOT);
        run(
            "mount",
            &["-t", "tmpfs", "-o", "size=1m", "firma-test", s(to)],
        );
        self.0.push(to.to_path_buf());
    }

    /// Everything mounted below `root` (the tests rename marker dirs that
    /// hold mounts, so the paths recorded at mount time may have moved).
    fn sweep(root: &Path) {
        let table = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let mut under: Vec<String> = table
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(s(root)))
            .map(str::to_owned)
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            // (A mount inside a collected marker moved with its tomb; the
            // sweep of the runtime dir finds it.)
            let _ = Command::new("umount")
                .args(["-l", s(m)])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `f` on a thread and fails the test if it has not returned within
/// `bound` (the thread is then left behind, blocked).
fn returns_within<T: Send + 'static>(
    what: &str,
    bound: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|_| panic!("{what} did not return within {bound:?}: it hangs"))
}

#[test]
fn gc_never_deletes_behind_a_bind_mount_or_a_tmpfs_inside_a_stale_marker() {
    let rt = runtime();
    let outside = runtime();
    std::fs::write(outside.path().join("precious"), "keep me").unwrap();
    let dead = dead_pid();
    let m1 = write_stale(rt.path(), "stale-bind", dead);
    let m2 = write_stale(rt.path(), "stale-tmpfs", dead);
    std::fs::create_dir_all(m1.join("deep/sub")).unwrap();
    std::fs::create_dir_all(m2.join("t")).unwrap();
    let mut mounts = Mounts::default();
    mounts.bind(outside.path(), &m1.join("deep/sub"));
    mounts.tmpfs(&m2.join("t"));
    std::fs::write(m2.join("t/inside-tmpfs"), "keep me too").unwrap();
    let mut removed = gc_stale(rt.path()).unwrap();
    removed.sort();
    // Both left the namespace (reported once each) ...
    assert_eq!(removed, ["stale-bind", "stale-tmpfs"]);
    // ... but nothing behind the mounts was touched.
    assert_eq!(names_in(outside.path()), ["precious"]);
    let table = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(table.contains(s(rt.path())), "the mounts are still there");
    let tmpfs_file = walk_find(rt.path(), "inside-tmpfs");
    assert!(tmpfs_file.is_some(), "the tmpfs file was deleted");
    // The next calls do not fail on the leftovers.
    assert!(list(rt.path()).unwrap().is_empty());
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    drop(mounts);
    Mounts::sweep(rt.path());
}

fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        if e.file_name() == name {
            return Some(e.path());
        }
        if e.file_type().ok()?.is_dir()
            && let Some(p) = walk_find(&e.path(), name)
        {
            return Some(p);
        }
    }
    None
}

/// A stale marker that cannot be renamed never fails a call, and every
/// other stale marker is still collected and reported.
#[test]
fn stale_markers_that_cannot_be_renamed_fail_nothing() {
    let rt = root_runtime(NEED_ROOT);
    let live = Sidecar::start(rt.path(), "alive", &[]);
    let dead = dead_pid();
    let immutable = write_stale(rt.path(), "immutable", dead);
    write_stale(rt.path(), "collectable", dead);
    let mount_point = write_stale(rt.path(), "mount-point", dead);
    let other = runtime();
    let mut mounts = Mounts::default();
    mounts.bind(&mount_point, &mount_point);
    run("chattr", &["+i", s(&immutable)]);
    let report = scan(rt.path(), &ScanOptions::default());
    run("chattr", &["-i", s(&immutable)]);
    let report = report.unwrap();
    assert_eq!(report.collected, ["collectable"], "{report:?}");
    assert_eq!(
        report
            .live
            .iter()
            .map(|e| e.sandbox_id.as_str())
            .collect::<Vec<_>>(),
        ["alive"]
    );
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].name, "immutable");
    assert_eq!(report.problems[0].error.errno, Some(libc::EPERM));
    assert_eq!(
        report.broken,
        ["mount-point"],
        "a mount point is never read"
    );
    assert!(has_metadata(&immutable));
    drop(mounts);
    drop(other);
    // run/ append-only: nothing can be renamed out of it.
    write_stale(rt.path(), "stale-a", dead);
    run("chattr", &["+a", s(&rt.path().join("run"))]);
    let listed = list(rt.path());
    let removed = gc_stale(rt.path());
    run("chattr", &["-a", s(&rt.path().join("run"))]);
    assert_eq!(listed.unwrap().len(), 1, "the live sidecar is still listed");
    assert!(removed.unwrap().is_empty());
    drop(live);
}

#[test]
fn a_read_only_runtime_dir_lists_normally_and_collects_nothing() {
    let rt = runtime();
    let _live = Sidecar::start(rt.path(), "alive", &[]);
    write_stale(rt.path(), "stale", dead_pid());
    let ro = runtime();
    let mut mounts = Mounts::default();
    mounts.bind(rt.path(), ro.path());
    run("mount", &["-o", "remount,ro,bind", s(ro.path())]);
    let report = scan(ro.path(), &ScanOptions::default()).unwrap();
    assert_eq!(report.live.len(), 1);
    assert_eq!(report.live[0].state, State::Running);
    assert!(report.collected.is_empty());
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].error.errno, Some(libc::EROFS));
    let (code, out, _) = crate::common::firma_in(ro.path(), &["sidecar", "status", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"alive\""));
    assert!(rt.path().join("run/stale").exists());
}

#[test]
fn sticky_run_and_a_foreign_marker_fail_nothing_for_a_non_root_reader() {
    let rt = root_runtime(NEED_ROOT);
    let dead = dead_pid();
    write_stale(rt.path(), "foreign", dead);
    // Our own user's live marker, hand-written for the test process.
    let me = std::process::id();
    write_marker(rt.path(), "mine", &metadata("mine", me.into(), ""));
    crate::common::open_up(rt.path());
    let run_dir = rt.path().join("run");
    std::os::unix::fs::chown(run_dir.join("foreign"), Some(4242), Some(4242)).unwrap();
    chmod(&run_dir, 0o1777);
    let v = json_output(
        firma_as_nobody(rt.path()).args(["sidecar", "status", "--json"]),
        "status as another user failed",
    );
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["sandbox_id"], "mine");
    assert!(has_metadata(&run_dir.join("foreign")));
}

#[test]
fn an_odd_endpoint_is_that_markers_state_only() {
    let rt = runtime();
    let me = std::process::id();
    write_marker(
        rt.path(),
        "link-local",
        &metadata("link-local", me.into(), "listen = \"[fe80::1]:80\"\n"),
    );
    let _ok = Sidecar::start(rt.path(), "fine", &[]);
    let e = get(rt.path(), "link-local").unwrap().unwrap();
    assert_eq!(e.state, State::Unhealthy);
    let all = list(rt.path()).unwrap();
    assert_eq!(all.len(), 2);
    let r = inspect(rt.path()).unwrap();
    let ll = r.iter().find(|r| r.name == "link-local").unwrap();
    assert_eq!(ll.reason.as_str(), "connect_error", "{ll:?}");
    assert!(ll.detail.contains("nvalid argument"), "{}", ll.detail);
}

#[test]
fn slow_endpoints_beyond_the_descriptor_limit_cost_windows_not_errors() {
    let rt = runtime();
    // A TCP sidecar with its backlog filled: further SYNs are dropped.
    let wedged = Sidecar::syn_dropping(rt.path(), "wedged");
    let listen = get(rt.path(), "wedged").unwrap().unwrap().listen;
    let n = 1100;
    for i in 0..n {
        let id = format!("slow-{i:04}");
        let extra = format!("listen = \"{listen}\"\n");
        write_marker(rt.path(), &id, &metadata(&id, wedged.pid.into(), &extra));
    }
    let started = Instant::now();
    let out = succeed(
        Command::new("prlimit")
            .args(["--nofile=1024:1024", FIRMA, "--runtime-dir", s(rt.path())])
            .args(["--timeout-ms", "200", "sidecar", "status", "--json"]),
        "status under 1,024 descriptors failed",
    );
    let took = started.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), n + 1);
    assert!(
        arr.iter().all(|e| e["state"] == "unhealthy"),
        "every slow endpoint is unhealthy (timeout)"
    );
    // ⌈1101 / window⌉ timeouts of 200 ms; a generous bound for a loaded
    // machine that still proves it does not wait once per endpoint.
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn a_filesystem_that_never_answers_cannot_hang_a_call() {
    let rt = runtime();
    let hung_dir = runtime();
    let fuse = HungFuse::mount(&hung_dir.path().join("mnt"));
    let hung = fuse.at.clone();
    let me = std::process::id();
    // 1. A listen path under the mount.
    let listen = format!("listen = \"{}\"\n", hung.join("x.sock").display());
    write_marker(
        rt.path(),
        "listen-hung",
        &metadata("listen-hung", me.into(), &listen),
    );
    // 2. sidecar.sock a symlink into it.
    let m = write_marker(
        rt.path(),
        "symlink-hung",
        &metadata("symlink-hung", me.into(), ""),
    );
    std::os::unix::fs::symlink(hung.join("y.sock"), m.join("sidecar.sock")).unwrap();
    // 3. A marker directory that is the mount itself.
    let inner = runtime();
    let fuse2 = HungFuse::mount(&rt.path().join("run").join("dir-hung"));
    // 4. A mount inside a stale marker.
    let stale = write_stale(rt.path(), "stale-hung", dead_pid());
    let fuse3 = HungFuse::mount(&stale.join("sub"));
    let _serving = Sidecar::start(rt.path(), "serving", &[]);

    let timeout = Duration::from_millis(100);
    let bound = Duration::from_secs(5);
    let dir = rt.path().to_path_buf();
    let d = dir.clone();
    let got = returns_within("get through a listen path", bound, move || {
        get_with(&d, "listen-hung", &ProbeOptions::with_timeout(timeout))
    });
    assert_eq!(got.unwrap().unwrap().state, State::Unhealthy);
    let d = dir.clone();
    let got = returns_within("get through a symlinked socket", bound, move || {
        get_with(&d, "symlink-hung", &ProbeOptions::with_timeout(timeout))
    });
    assert_eq!(got.unwrap().unwrap().state, State::Unhealthy);
    let d = dir.clone();
    let removed = returns_within("gc_stale", bound, move || gc_stale(&d)).unwrap();
    assert_eq!(removed, ["stale-hung"]);
    let d = dir.clone();
    let listed = returns_within("list", bound, move || {
        list_with(&d, &ProbeOptions::with_timeout(timeout))
    })
    .unwrap();
    let ids: Vec<(&str, State)> = listed
        .iter()
        .map(|e| (e.sandbox_id.as_str(), e.state))
        .collect();
    assert_eq!(
        ids,
        [
            ("listen-hung", State::Unhealthy),
            ("serving", State::Running),
            ("symlink-hung", State::Unhealthy)
        ]
    );
    let d = dir.clone();
    let reports = returns_within("inspect", bound, move || {
        firma_stack::sidecar_markers::inspect_with(&d, &ProbeOptions::with_timeout(timeout))
    })
    .unwrap();
    let dir_hung = reports.iter().find(|r| r.name == "dir-hung").unwrap();
    assert_eq!(dir_hung.reason.as_str(), "mount_point");
    // The CLI too, as a whole process, on fresh mounts. (Beside a lookup
    // still stuck in the old ones it would exit as well, its own lookup
    // waiting in a child process: probing/hung.rs checks that case.)
    drop(fuse3);
    drop(fuse2);
    drop(fuse);
    let fuse = HungFuse::mount(&hung);
    let fuse2 = HungFuse::mount(&rt.path().join("run").join("dir-hung"));
    let d = s(&dir).to_owned();
    let (code, _, err) = returns_within("firma sidecar status", bound, move || {
        crate::common::firma(&[
            "--runtime-dir",
            &d,
            "--timeout-ms",
            "100",
            "sidecar",
            "status",
        ])
    });
    assert_eq!(code, 0, "{err}");
    drop(fuse2);
    drop(fuse);
    drop(inner);
    Mounts::sweep(rt.path());
}

#[test]
fn non_utf8_runtime_dirs_are_refused_clearly() {
    use std::os::unix::ffi::OsStrExt;
    let bad = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/firma-\xff-dir"));
    let err = list(bad).unwrap_err();
    assert_eq!(err.code(), "invalid_argument");
    let msg = err.to_string();
    assert!(msg.contains("\\xff") && msg.contains("UTF-8"), "{msg}");
    assert_eq!(gc_stale(bad).unwrap_err().code(), "invalid_argument");
}

#[test]
fn relative_runtime_dirs_give_absolute_listen_paths() {
    let rt = runtime();
    let _sc = Sidecar::start(rt.path(), "abs", &[]);
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(rt.path(), &cwd);
    let e = get(&rel, "abs").unwrap().unwrap();
    assert!(e.listen.starts_with('/'), "{}", e.listen);
    assert_eq!(
        std::fs::canonicalize(&e.listen).unwrap(),
        std::fs::canonicalize(rt.path().join("run/abs/sidecar.sock")).unwrap()
    );
}

/// `target` relative to `base` with `..` components (both absolute).
fn pathdiff(target: &Path, base: &Path) -> PathBuf {
    let ups = base.components().count() - 1;
    let mut p = PathBuf::new();
    for _ in 0..ups {
        p.push("..");
    }
    p.join(target.strip_prefix("/").unwrap())
}

/// A `sidecar.sock` that is a symlink to a real socket is followed — on a
/// guarded helper thread, as any path the library does not control.
#[test]
fn a_symlinked_marker_socket_is_still_probed() {
    let rt = runtime();
    let real = Sidecar::start(rt.path(), "real", &[]);
    let me = std::process::id();
    let m = write_marker(rt.path(), "linked", &metadata("linked", me.into(), ""));
    std::os::unix::fs::symlink(real.marker.join("sidecar.sock"), m.join("sidecar.sock")).unwrap();
    assert_eq!(
        get(rt.path(), "linked").unwrap().unwrap().state,
        State::Running
    );
    std::fs::remove_file(m.join("sidecar.sock")).unwrap();
    std::os::unix::fs::symlink(rt.path().join("nowhere.sock"), m.join("sidecar.sock")).unwrap();
    let r = inspect(rt.path()).unwrap();
    let linked = r.iter().find(|r| r.name == "linked").unwrap();
    assert_eq!(linked.reason.as_str(), "endpoint_missing", "{linked:?}");
}
