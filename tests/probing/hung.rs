//! No hang contagion (docs/design.md, "Probing", "A path that does not
//! answer"): a real watcher process and a real `status` beside it, both
//! probing a live marker whose `listen` path lies in a real FUSE mount whose
//! daemon never answers.
//!
//! The watcher looks the path up once and no more, however many rounds go
//! by (no new thread, no new lookup per round); `status` started beside it
//! answers and exits within a bound, although the watcher's lookup of the
//! same path is still stuck; the stream's state for the marker is the state
//! `status` prints, and stays so.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::hung_fuse::HungFuse;
use crate::common::kit::testkit;
use crate::common::*;

/// Threads of `pid`, and its child processes (the lookups it started).
fn threads_and_children(pid: u32) -> (usize, usize) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    let children: usize = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| {
            let t = t.unwrap().path().join("children");
            std::fs::read_to_string(t)
                .unwrap_or_default()
                .split_whitespace()
                .count()
        })
        .sum();
    (threads, children)
}

/// Waits for `child` to exit, up to `bound`: whether it did (a child that
/// did not is left behind).
fn exits_within(child: &mut Child, bound: Duration) -> bool {
    let end = Instant::now() + bound;
    while Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The latest state the stream gave each marker, from its NDJSON lines.
fn stream_states(lines: &[serde_json::Value], id: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|e| e["sandbox_id"] == id)
        .filter_map(|e| e["entry"]["state"].as_str().map(str::to_owned))
        .collect()
}

/// Kills the watcher even when an assertion fails first.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

/// Runs `cmd` (a `firma` command printing JSON, perhaps behind a
/// wrapper): it must exit within a bound (else `stuck` says why, and it is
/// killed) and succeed. Its JSON output.
fn answers_and_exits(mut cmd: Command, stuck: &str) -> serde_json::Value {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !exits_within(&mut child, Duration::from_secs(10)) {
        let state = proc_state(child.id());
        let _ = child.kill();
        panic!("{stuck} (state {state})");
    }
    let got = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(
        !stderr.contains("firma-testkit seccomp: refused"),
        "the kernel refused the seccomp filter: {stderr}"
    );
    assert!(got.status.success(), "{stderr}");
    serde_json::from_slice(&got.stdout).unwrap()
}

/// The entry of `listed` whose `key` is `id`.
fn listed_as<'a>(listed: &'a serde_json::Value, key: &str, id: &str) -> &'a serde_json::Value {
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e[key] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"))
}

#[test]
fn a_hung_path_beside_a_watcher_neither_spreads_nor_holds_status() {
    let rt = runtime();
    let hung_dir = runtime();
    let fuse = HungFuse::mount(&hung_dir.path().join("mnt"));
    let me = i64::from(std::process::id());
    for (id, sock) in [("hung", "x.sock"), ("hung-too", "y.sock")] {
        let listen = format!("listen = \"{}\"\n", fuse.at.join(sock).display());
        write_marker(rt.path(), id, &metadata(id, me, &listen));
    }
    let _serving = Sidecar::start(rt.path(), "serving", &[]);

    let mut watcher = Command::new(FIRMA)
        .arg("--runtime-dir")
        .arg(rt.path())
        .args([
            "sidecar",
            "watch",
            "--json",
            "--probe-interval-ms",
            "100",
            "--timeout-ms",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wpid = watcher.id();
    let _reap = KillOnDrop(wpid);
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    let out = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while !lines
        .iter()
        .any(|e: &serde_json::Value| e["event"] == "synced")
    {
        let left = end.saturating_duration_since(Instant::now());
        lines.push(rx.recv_timeout(left).expect("the watcher never synced"));
    }
    // A few rounds for the lookups to get stuck, then many more.
    std::thread::sleep(Duration::from_millis(600));
    let (t1, c1) = threads_and_children(wpid);
    std::thread::sleep(Duration::from_millis(2000));
    let (t2, c2) = threads_and_children(wpid);
    assert!(
        t2 <= t1 && c2 <= 2,
        "the watcher keeps starting lookups of a stuck path: threads {t1} -> {t2}, \
         lookup processes {c1} -> {c2} over ~20 rounds"
    );

    // `status` beside it, its own lookup of the same path queued behind
    // the watcher's, must answer and exit.
    let mut status = Command::new(FIRMA);
    status.arg("--runtime-dir").arg(rt.path()).args([
        "sidecar",
        "status",
        "--json",
        "--timeout-ms",
        "100",
    ]);
    let listed = answers_and_exits(
        status,
        "`firma sidecar status` answered but could not exit: its lookup waits behind \
         the watcher's",
    );
    let status_state = |id: &str| {
        listed_as(&listed, "sandbox_id", id)["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    while let Ok(e) = rx.try_recv() {
        lines.push(e);
    }
    for id in ["hung", "hung-too"] {
        let want = status_state(id);
        assert_eq!(want, "unhealthy", "{id}");
        let states = stream_states(&lines, id);
        assert!(
            !states.is_empty() && states.iter().all(|s| *s == want),
            "{id}: status says {want}, the stream said {states:?}"
        );
    }
    assert_eq!(status_state("serving"), "running");

    let _ = watcher.kill();
    let _ = watcher.wait();
    drop(fuse);
}

/// Without `openat2` (a seccomp filter answering `ENOSYS`, as before 5.6),
/// the marker's own socket is found with `lstat`: a real socket there is
/// connected to by path at once, but a `sidecar.sock` that is a symlink
/// (here into a FUSE mount whose daemon never answers) still goes to a
/// guarded lookup, so `inspect` answers `timeout` and exits.
#[test]
fn without_openat2_a_symlinked_marker_socket_into_a_hung_mount_does_not_hold_inspect() {
    let testkit = testkit();
    let rt = runtime();
    let hung_dir = runtime();
    let fuse = HungFuse::mount(&hung_dir.path().join("mnt"));
    let me = i64::from(std::process::id());
    let m = write_marker(rt.path(), "linked", &metadata("linked", me, ""));
    std::os::unix::fs::symlink(fuse.at.join("x.sock"), m.join("sidecar.sock")).unwrap();
    let _serving = Sidecar::start(rt.path(), "serving", &[]);

    let mut inspect = Command::new(testkit);
    inspect
        .args(["seccomp", "--errno", "ENOSYS", "--syscall", "openat2", "--"])
        .arg(FIRMA)
        .arg("--runtime-dir")
        .arg(rt.path())
        .args(["sidecar", "inspect", "--json", "--timeout-ms", "300"]);
    let listed = answers_and_exits(
        inspect,
        "`firma sidecar inspect` without openat2 is stuck on the symlinked socket",
    );
    let by_id = |id: &str| listed_as(&listed, "name", id).clone();
    assert_eq!(by_id("linked")["reason"], "timeout", "{listed}");
    assert_eq!(by_id("serving")["reason"], "serving", "{listed}");
    drop(fuse);
}

/// Where no child process with a pidfd can be made (a seccomp filter:
/// `clone3` unknown, `clone` with `CLONE_PIDFD` refused `EPERM` or
/// `ENOSYS`), a socket path out of the dentry cache's reach (through
/// `/proc/self/root`, a link the cached lookup does not follow) is still
/// probed, by a lookup on a helper thread: a serving sidecar is
/// `running`, never `unknown` for the refused clone. A child that cannot
/// be made for a shortage of the moment (`ENOMEM`) is not that case: the
/// probe says `unknown` rather than look up on a thread, where a hung
/// mount would hold it.
#[test]
fn without_child_processes_a_path_probe_looks_up_on_a_thread() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "real", &[]);
    let sock = sc.marker.join("sidecar.sock");
    let listen = format!("listen = \"/proc/self/root{}\"\n", sock.display());
    write_marker(
        rt.path(),
        "via-proc",
        &metadata("via-proc", sc.pid.into(), &listen),
    );
    let rt_s = rt.path().to_str().unwrap();
    let args = [
        "--runtime-dir",
        rt_s,
        "sidecar",
        "get",
        "via-proc",
        "--json",
    ];
    for (filter, errno, want) in [
        (None, "", "running"),
        (Some("clone_pidfd"), "EPERM", "running"),
        (Some("clone_pidfd"), "ENOSYS", "running"),
        (Some("clone_pidfd"), "ENOMEM", "unknown"),
    ] {
        let out = match filter {
            None => Command::new(FIRMA).args(args).output().unwrap(),
            Some(f) => crate::common::kit::firma_seccomp(errno, &[f], &args),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{filter:?}/{errno}: {stdout}{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["state"], want, "{filter:?}/{errno}: {stdout}");
    }
}
