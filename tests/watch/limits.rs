//! The watcher at the limits a fleet reaches, through the CLI a
//! supervisor runs (`firma sidecar watch --json`) under real limits:
//! `prlimit` on descriptors, and the inotify limits of a user namespace of
//! its own (`/proc/sys/user/max_inotify_*`, which bound that namespace
//! only, so nothing else on the host is starved).
//!
//! What must hold: a shortage is never "the marker vanished" (no live
//! sidecar reported gone, exactly the killed ones gone), every `resync` is
//! followed by `synced`, and a watcher returns to events once a limit is
//! lifted. No timing is asserted but upper bounds proving it never hangs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use firma_stack::sidecar_markers::{create_marker, list};

/// `firma sidecar watch --json` in a child, its events read on a thread.
pub struct CliWatch {
    child: Child,
    events: mpsc::Receiver<Value>,
    /// Every event so far, in order.
    pub seen: Vec<Value>,
    /// The state the events describe: id → state.
    pub state: BTreeMap<String, String>,
}

impl CliWatch {
    /// Runs `wrapper... firma --runtime-dir RUNTIME sidecar watch --json
    /// extra...`.
    pub fn start(wrapper: &[&str], runtime: &Path, extra: &[&str]) -> CliWatch {
        let (program, pre) = match wrapper.split_first() {
            Some((p, rest)) => (*p, rest.to_vec()),
            None => (FIRMA, vec![]),
        };
        let mut cmd = Command::new(program);
        cmd.args(pre);
        if !wrapper.is_empty() {
            cmd.arg(FIRMA);
        }
        cmd.arg("--runtime-dir")
            .arg(runtime)
            .args(["sidecar", "watch", "--json"])
            .args(extra)
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn firma sidecar watch");
        let out = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        CliWatch {
            child,
            events,
            seen: Vec::new(),
            state: BTreeMap::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes one event (waiting at most `wait`) and applies it.
    pub fn take(&mut self, wait: Duration) -> Option<Value> {
        let ev = self.events.recv_timeout(wait).ok()?;
        let id = ev["sandbox_id"].as_str().map(str::to_owned);
        match (ev["event"].as_str().unwrap(), id) {
            ("appeared", Some(id)) => {
                assert!(!self.state.contains_key(&id), "appeared twice: {ev}");
                self.state
                    .insert(id, ev["entry"]["state"].as_str().unwrap().into());
            }
            ("changed", Some(id)) => {
                let old = self.state.get(&id).unwrap_or_else(|| panic!("{ev}"));
                assert_eq!(Some(old.as_str()), ev["previous"].as_str(), "{ev}");
                self.state
                    .insert(id, ev["entry"]["state"].as_str().unwrap().into());
            }
            ("gone", Some(id)) => {
                assert!(self.state.remove(&id).is_some(), "gone unknown: {ev}");
            }
            ("synced" | "resync", None) => {}
            other => panic!("unexpected event {other:?}: {ev}"),
        }
        self.seen.push(ev.clone());
        Some(ev)
    }

    /// Takes events until `pred` holds for one; fails after `within`.
    pub fn until(&mut self, within: Duration, what: &str, pred: impl Fn(&Value) -> bool) {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.take(left) {
                Some(ev) if pred(&ev) => return,
                Some(_) => {}
                None => panic!(
                    "no {what} within {within:?}; last events: {:#?}",
                    self.tail()
                ),
            }
        }
    }

    /// Takes events until the model satisfies `pred`; fails after `within`.
    pub fn until_state(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
    ) {
        let end = Instant::now() + within;
        while !pred(&self.state) {
            let left = end.saturating_duration_since(Instant::now());
            if self.take(left.min(Duration::from_millis(200))).is_none() && left.is_zero() {
                panic!(
                    "{what} not within {within:?}; last events: {:#?}",
                    self.tail()
                );
            }
        }
    }

    /// Takes events until none comes for `quiet`.
    pub fn drain(&mut self, quiet: Duration) {
        while self.take(quiet).is_some() {}
    }

    fn tail(&self) -> &[Value] {
        &self.seen[self.seen.len().saturating_sub(20)..]
    }

    pub fn count(&self, kind: &str) -> usize {
        self.seen.iter().filter(|e| e["event"] == kind).count()
    }

    /// Every `resync` is followed by a `synced`.
    pub fn assert_resyncs_synced(&self) {
        let last_resync = self.seen.iter().rposition(|e| e["event"] == "resync");
        if let Some(i) = last_resync {
            assert!(
                self.seen[i..].iter().any(|e| e["event"] == "synced"),
                "a resync never followed by synced: {:#?}",
                &self.seen[i..]
            );
        }
    }
}

impl Drop for CliWatch {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// What `list` says now: id → state.
pub fn listed_states(runtime: &Path) -> BTreeMap<String, String> {
    list(runtime)
        .unwrap()
        .into_iter()
        .map(|e| (e.sandbox_id, e.state.as_str().to_owned()))
        .collect()
}

fn is_gone(ev: &Value) -> bool {
    ev["event"] == "gone"
}

/// 200 real sidecars watched under 64 descriptors: 20 SIGKILLed are
/// exactly the 20 reported gone, no live one is ever reported gone, every
/// `resync` is followed by `synced`, and the stream ends equal to `list`.
#[test]
fn two_hundred_sidecars_under_64_descriptors_lose_exactly_the_killed() {
    let rt = runtime();
    let mut fleet: Vec<Sidecar> = (0..200)
        .map(|i| Sidecar::start(rt.path(), &format!("fd64-{i:03}"), &[]))
        .collect();
    let mut w = CliWatch::start(&["prlimit", "--nofile=64:64", "--"], rt.path(), &[]);
    w.until(Duration::from_secs(60), "the first synced", |e| {
        e["event"] == "synced"
    });
    assert_eq!(w.state.len(), 200, "{:#?}", w.tail());
    assert!(w.state.values().all(|s| s == "running"), "{:?}", w.state);

    let killed: BTreeSet<String> = (0..20)
        .map(|k| {
            let sc = fleet.remove(k * 9);
            let id = sc.id.clone();
            sc.kill_and_reap();
            id
        })
        .collect();
    w.until_state(Duration::from_secs(30), "the 20 killed gone", |s| {
        killed.iter().all(|k| !s.contains_key(k))
    });
    // A few probe rounds more: nothing else may go.
    w.drain(Duration::from_secs(3));
    let gone: BTreeSet<String> = w
        .seen
        .iter()
        .filter(|e| is_gone(e))
        .map(|e| e["sandbox_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(gone, killed, "exactly the killed are gone");
    for ev in &w.seen {
        if ev["event"] == "changed" {
            let id = ev["sandbox_id"].as_str().unwrap();
            assert!(
                killed.contains(id),
                "a live sidecar changed under the limit: {ev}"
            );
        }
    }
    w.assert_resyncs_synced();
    assert_eq!(w.state, listed_states(rt.path()));
    assert_eq!(w.state.len(), 180);
}

/// Accepts (and drops) every connection to `listeners` until stopped, so
/// the probes always find room in their backlogs.
fn serve(listeners: Arc<std::sync::Mutex<Vec<UnixListener>>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let ls = listeners.lock().unwrap();
        let mut fds: Vec<libc::pollfd> = ls
            .iter()
            .map(|l| libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid array of pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        for (p, l) in fds.iter().zip(ls.iter()) {
            if p.revents & libc::POLLIN != 0 {
                while l.accept().is_ok() {}
            }
        }
        drop(ls);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A fleet of markers naming a few `sleep` processes, each marker's
/// `sidecar.sock` a listener served by a thread of this process.
struct SocketFleet {
    sleepers: Vec<Child>,
    listeners: Arc<std::sync::Mutex<Vec<UnixListener>>>,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
    runtime: PathBuf,
}

impl SocketFleet {
    fn new(runtime: &Path) -> SocketFleet {
        let listeners = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let (l, s) = (listeners.clone(), stop.clone());
            std::thread::spawn(move || serve(l, s))
        };
        SocketFleet {
            sleepers: (0..20)
                .map(|_| Command::new("sleep").arg("3600").spawn().unwrap())
                .collect(),
            listeners,
            stop,
            server: Some(server),
            runtime: runtime.to_owned(),
        }
    }

    /// A marker `id` naming one of the sleepers, its socket listening.
    fn add(&mut self, id: &str) -> PathBuf {
        let pid = self.sleepers[id.len() % self.sleepers.len()].id();
        let dir = create_marker(&self.runtime, &meta(id, pid)).unwrap();
        let l = UnixListener::bind(dir.join("sidecar.sock")).unwrap();
        l.set_nonblocking(true).unwrap();
        self.listeners.lock().unwrap().push(l);
        dir
    }
}

impl Drop for SocketFleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.server.take() {
            let _ = s.join();
        }
        for s in &mut self.sleepers {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// 1,500 sidecars under the common soft limit of 1,024 (hard 20,000, and
/// hard 1,024 too, where nothing can be raised): the initial scan is
/// complete, new sidecars appear, a removed socket changes state, every
/// `resync` is followed by `synced`, and the stream equals `list`.
#[test]
fn fifteen_hundred_sidecars_under_a_soft_limit_of_1024_stay_seen() {
    for nofile in ["--nofile=1024:20000", "--nofile=1024:1024"] {
        let rt = runtime();
        let mut fleet = SocketFleet::new(rt.path());
        for i in 0..1500 {
            fleet.add(&format!("soft-{i:04}"));
        }
        let mut w = CliWatch::start(&["prlimit", nofile, "--"], rt.path(), &[]);
        w.until(Duration::from_secs(60), "the first synced", |e| {
            e["event"] == "synced"
        });
        w.until_state(Duration::from_secs(30), "1,500 running", |s| {
            s.len() == 1500 && s.values().all(|v| v == "running")
        });
        for i in 0..10 {
            fleet.add(&format!("late-{i}"));
        }
        w.until_state(Duration::from_secs(30), "10 new sidecars", |s| {
            (0..10).all(|i| s.get(&format!("late-{i}")).is_some_and(|v| v == "running"))
        });
        std::fs::remove_file(rt.path().join("run/soft-0042/sidecar.sock")).unwrap();
        w.until_state(Duration::from_secs(30), "the socket removed", |s| {
            s.get("soft-0042").is_some_and(|v| v == "unhealthy")
        });
        w.drain(Duration::from_millis(1500));
        assert_eq!(w.count("gone"), 0, "{nofile}: {:#?}", w.tail());
        w.assert_resyncs_synced();
        assert_eq!(w.state, listed_states(rt.path()), "{nofile}");
        eprintln!(
            "{nofile}: {} events, {} resync",
            w.seen.len(),
            w.count("resync")
        );
    }
}

/// Writes `value` to `/proc/sys/user/<knob>` in the user namespace of
/// `pid` (as that namespace's root: the host's limits are untouched).
fn set_user_limit(pid: u32, knob: &str, value: u64) {
    let out = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-U",
            "--preserve-credentials",
            "sh",
            "-c",
        ])
        .arg(format!("echo {value} > /proc/sys/user/{knob}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot set {knob} in the watcher's user namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pid of the watcher inside `unshare ... sh -c 'exec firma'`: the
/// same process (exec), so the child's pid.
fn watcher_in_userns(runtime: &Path, watches: u64, instances: u64) -> CliWatch {
    // The limits are set before the watcher starts, in its own namespace.
    let script = format!(
        "echo {watches} > /proc/sys/user/max_inotify_watches && \
         echo {instances} > /proc/sys/user/max_inotify_instances && exec \"$0\" \"$@\""
    );
    CliWatch::start(
        &["unshare", "--user", "--map-root-user", "sh", "-c", &script],
        runtime,
        &[],
    )
}

/// Too few inotify watches (or no inotify instance at all): the watcher
/// says so in a `resync`, is followed by `synced`, keeps the stream
/// exact by polling; once the limit is lifted it returns to events (a
/// marker rewritten between probe rounds is seen at once).
#[test]
fn a_lifted_inotify_limit_returns_the_watcher_to_events() {
    for (watches, instances, what) in [(3, 128, "watches"), (1000, 0, "instances")] {
        let rt = runtime();
        let mut fleet = SocketFleet::new(rt.path());
        for i in 0..20 {
            fleet.add(&format!("ino-{i:02}"));
        }
        let mut w = watcher_in_userns(rt.path(), watches, instances);
        w.until(Duration::from_secs(30), "the first synced", |e| {
            e["event"] == "synced"
        });
        // The degradation's resync (before the first synced, or after).
        if w.count("resync") == 0 {
            w.until(Duration::from_secs(10), "the degradation's resync", |e| {
                e["event"] == "resync"
            });
            w.until(Duration::from_secs(10), "synced after the resync", |e| {
                e["event"] == "synced"
            });
        }
        let resync = w.seen.iter().find(|e| e["event"] == "resync").unwrap();
        assert!(
            resync["reason"].as_str().unwrap().contains("inotify"),
            "{resync}"
        );
        assert_eq!(w.state.len(), 20, "{what}");
        // Polling, the stream stays exact, and the degradation is said
        // once however many full scans meet the limit again (a probe
        // round is one, every second).
        fleet.add("ino-polled");
        w.until_state(Duration::from_secs(10), "a marker seen by polling", |s| {
            s.contains_key("ino-polled")
        });
        let end = Instant::now() + Duration::from_millis(2500);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            w.take(left);
        }
        assert_eq!(w.count("resync"), 1, "{what}: {:#?}", w.seen);
        // Lift the limit: within a few probe rounds the watcher is back on
        // events.
        set_user_limit(w.pid(), "max_inotify_watches", 100_000);
        set_user_limit(w.pid(), "max_inotify_instances", 128);
        w.drain(Duration::from_secs(3));
        // On events: a socket removed is seen at once, not at the next
        // probe round; measured as "within half a probe interval" over a
        // few tries so a round that happens to fall there cannot pass it.
        let mut quick = 0;
        for i in 0..5 {
            let id = format!("ino-{i:02}");
            std::thread::sleep(Duration::from_millis(150));
            let t0 = Instant::now();
            std::fs::remove_file(rt.path().join(format!("run/{id}/sidecar.sock"))).unwrap();
            w.until_state(Duration::from_secs(10), "the socket removed", |s| {
                s.get(&id).is_some_and(|v| v == "unhealthy")
            });
            if t0.elapsed() < Duration::from_millis(150) {
                quick += 1;
            }
        }
        assert!(
            quick >= 4,
            "{what}: after the limit was lifted the watcher still polls ({quick}/5 seen at once)"
        );
        w.assert_resyncs_synced();
        assert_eq!(w.count("gone"), 0);
        w.drain(Duration::from_millis(500));
        assert_eq!(w.state, listed_states(rt.path()), "{what}");
    }
}

/// `pidfd_open` refused by the kernel (the testkit's seccomp filter):
/// `EMFILE` is the pidfd budget spent (`out of descriptors`, the budget
/// shrunk to what is held), `ENOSYS` and `EPERM` are pidfds unavailable.
/// Either way one `resync` says so, `synced` follows, and a sidecar's exit
/// is still seen, at the probe interval.
#[test]
fn pidfd_open_refused_is_said_once_and_exits_are_still_seen() {
    let testkit = crate::common::kit::testkit();
    let testkit = testkit.to_str().unwrap();
    for (errno, says) in [
        ("EMFILE", "out of descriptors (Too many open files"),
        ("ENOSYS", "pidfds are unavailable ("),
        ("EPERM", "pidfds are unavailable ("),
    ] {
        let rt = runtime();
        let a = Sidecar::start(rt.path(), "pf-a", &[]);
        let _b = Sidecar::start(rt.path(), "pf-b", &[]);
        let seccomp = [testkit, "seccomp", "--errno", errno];
        let mut w = CliWatch::start(
            &[&seccomp[..], &["--syscall", "pidfd_open", "--"]].concat(),
            rt.path(),
            &["--probe-interval-ms", "200"],
        );
        w.until(Duration::from_secs(30), "the first synced", |e| {
            e["event"] == "synced"
        });
        a.kill_and_reap();
        w.until_state(Duration::from_secs(10), "the exit seen", |s| {
            !s.contains_key("pf-a")
        });
        w.drain(Duration::from_millis(500));
        let resyncs: Vec<&str> = w
            .seen
            .iter()
            .filter(|e| e["event"] == "resync")
            .map(|e| e["reason"].as_str().unwrap())
            .collect();
        assert_eq!(resyncs.len(), 1, "{errno}: {resyncs:?}");
        assert!(resyncs[0].starts_with(says), "{errno}: {}", resyncs[0]);
        w.assert_resyncs_synced();
        assert_eq!(w.state, listed_states(rt.path()), "{errno}");
    }
}

/// Only marker directories take an inotify watch: directories whose
/// names are no sandbox id take none (nor do files: the watch is
/// `IN_ONLYDIR`). A watcher with room for exactly the watches of `run/`
/// and its one marker is not degraded by them.
#[test]
fn only_marker_directories_take_an_inotify_watch() {
    let rt = runtime();
    let mut fleet = SocketFleet::new(rt.path());
    fleet.add("only-marker");
    for i in 0..5 {
        std::fs::write(rt.path().join(format!("run/file-{i}")), b"").unwrap();
    }
    for bad in ["not an id", "not-an-id!"] {
        std::fs::create_dir(rt.path().join("run").join(bad)).unwrap();
    }
    let mut w = watcher_in_userns(rt.path(), 2, 128);
    w.until(Duration::from_secs(30), "the first synced", |e| {
        e["event"] == "synced"
    });
    w.drain(Duration::from_millis(1500));
    assert_eq!(w.count("resync"), 0, "{:#?}", w.seen);
    assert_eq!(w.state.len(), 1);
}
