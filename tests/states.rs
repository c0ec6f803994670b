//! Every state of DESIGN §3, decided by probing real processes and sockets.

mod common;

use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use common::*;
use firma_stack::sidecar_markers::{
    self as sm, MetadataFile, ProbeOptions, State, create_marker, get, get_with, list, list_with,
};

fn state_of(runtime: &std::path::Path, id: &str) -> State {
    get(runtime, id).unwrap().unwrap().state
}

#[test]
fn serving_sidecar_is_running_with_its_metadata() {
    let rt = runtime();
    let sc = Sidecar::start(
        rt.path(),
        "web-1",
        &["--agent", "planner", "--session", "s-1"],
    );
    let entries = list(rt.path()).unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.sandbox_id, "web-1");
    assert_eq!(e.agent_id, "planner");
    assert_eq!(e.session_id, "s-1");
    assert_eq!(e.pid, sc.pid);
    assert_eq!(e.state, State::Running);
    assert_eq!(e.listen, sc.marker.join("sidecar.sock").to_str().unwrap());
    assert!(e.uptime_secs.is_some_and(|u| u < 600), "{e:?}");
}

#[test]
fn wedged_unix_sidecar_is_unhealthy_without_waiting() {
    let rt = runtime();
    let _sc = Sidecar::start(rt.path(), "stuck", &["--mode", "wedged"]);
    // A generous timeout: a full backlog must be answered at once (EAGAIN),
    // never by waiting the timeout out.
    let opts = ProbeOptions::with_timeout(Duration::from_secs(30));
    let t = Instant::now();
    let e = get_with(rt.path(), "stuck", &opts).unwrap().unwrap();
    assert_eq!(e.state, State::Unhealthy);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn sidecar_without_socket_is_unhealthy() {
    let rt = runtime();
    let _sc = Sidecar::start(rt.path(), "mute", &["--mode", "no-socket"]);
    assert_eq!(state_of(rt.path(), "mute"), State::Unhealthy);
}

#[test]
fn socket_that_refuses_is_unhealthy() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "refuse", &["--mode", "no-socket"]);
    // A socket file nobody listens on any more: connect gets ECONNREFUSED.
    let l = UnixListener::bind(sc.marker.join("sidecar.sock")).unwrap();
    drop(l);
    assert!(sc.marker.join("sidecar.sock").exists());
    assert_eq!(state_of(rt.path(), "refuse"), State::Unhealthy);
}

#[test]
fn tcp_sidecar_running_and_wedged_tcp_times_out_unhealthy() {
    let rt = runtime();
    let _ok = Sidecar::start(rt.path(), "tcp-ok", &["--tcp", "127.0.0.1:0"]);
    let _wedged = Sidecar::start(
        rt.path(),
        "tcp-wedged",
        &["--tcp", "127.0.0.1:0", "--mode", "wedged"],
    );
    let opts = ProbeOptions::with_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let entries = list_with(rt.path(), &opts).unwrap();
    let took = t.elapsed();
    let states: Vec<_> = entries
        .iter()
        .map(|e| (e.sandbox_id.as_str(), e.state))
        .collect();
    assert_eq!(
        states,
        [("tcp-ok", State::Running), ("tcp-wedged", State::Unhealthy)]
    );
    assert!(entries[0].listen.starts_with("127.0.0.1:"));
    // The SYN is dropped, so the answer is the timeout: not before it, and
    // not hanging (generous upper bound for a loaded machine).
    assert!(
        took >= Duration::from_millis(290),
        "answered in {took:?}, before the timeout"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn many_wedged_tcp_endpoints_share_one_deadline() {
    let rt = runtime();
    let sidecars: Vec<_> = (0..8)
        .map(|i| {
            Sidecar::start(
                rt.path(),
                &format!("w{i}"),
                &["--tcp", "127.0.0.1:0", "--mode", "wedged"],
            )
        })
        .collect();
    let timeout = Duration::from_millis(500);
    let t = Instant::now();
    let entries = list_with(rt.path(), &ProbeOptions::with_timeout(timeout)).unwrap();
    let took = t.elapsed();
    assert_eq!(entries.len(), sidecars.len());
    assert!(entries.iter().all(|e| e.state == State::Unhealthy));
    // Probed one after another this would take 8 × 500 ms = 4 s.
    assert!(
        took < Duration::from_millis(2500),
        "8 wedged endpoints took {took:?}"
    );
}

#[test]
fn killed_sidecar_is_stopped_for_get_and_collected_by_list() {
    let rt = runtime();
    let _live = Sidecar::start(rt.path(), "live", &[]);
    let dead = Sidecar::start(rt.path(), "dead", &[]);
    let marker = dead.kill_and_reap();
    // get reports it and removes nothing.
    assert_eq!(state_of(rt.path(), "dead"), State::Stopped);
    assert!(marker.exists());
    let ids: Vec<_> = list(rt.path())
        .unwrap()
        .into_iter()
        .map(|e| e.sandbox_id)
        .collect();
    assert_eq!(ids, ["live"]);
    assert!(!marker.exists(), "stale marker left behind by list");
    assert_eq!(get(rt.path(), "dead").unwrap(), None);
}

#[test]
fn gc_stale_removes_only_stopped_and_reports_ids_sorted() {
    let rt = runtime();
    let _live = Sidecar::start(rt.path(), "live", &[]);
    let dead = dead_pid();
    for id in ["c", "a", "b"] {
        write_stale(rt.path(), id, dead);
    }
    assert_eq!(sm::gc_stale(rt.path()).unwrap(), ["a", "b", "c"]);
    assert_eq!(run_names(rt.path()), ["live"]);
    assert!(sm::gc_stale(rt.path()).unwrap().is_empty());
}

#[test]
fn socket_path_longer_than_sun_path_is_probed() {
    // Nest the runtime dir so <marker>/sidecar.sock exceeds 108 bytes.
    let rt = runtime();
    let deep = rt.path().join("a".repeat(60)).join("b".repeat(60));
    let sc = Sidecar::start(&deep, "long-path", &["--mode", "no-socket"]);
    let sock = sc.marker.join("sidecar.sock");
    assert!(sock.as_os_str().len() > 108);
    // Bind through the directory's /proc/self/fd path, as the library connects.
    let dir = std::fs::File::open(&sc.marker).unwrap();
    let short = format!(
        "/proc/self/fd/{}/sidecar.sock",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    );
    let _listener = UnixListener::bind(&short).unwrap();
    let e = get(&deep, "long-path").unwrap().unwrap();
    assert_eq!(e.state, State::Running);
    assert_eq!(e.listen, sock.to_str().unwrap());
    // And an explicit `listen` path that long is probed too.
    let me = std::process::id();
    create_marker(
        &deep,
        &MetadataFile {
            sandbox_id: "explicit".into(),
            agent_id: "a".into(),
            session_id: "s".into(),
            authority_url: "u".into(),
            policy_bundle_version: "v".into(),
            pid: me,
            started_at: "2026-11-29T00:00:00Z".into(),
            listen: Some(sock.to_str().unwrap().into()),
            boot_id: None,
            pid_start_ticks: None,
            pid_ns_inode: None,
            boottime_offset_ns: None,
        },
    )
    .unwrap();
    assert_eq!(state_of(&deep, "explicit"), State::Running);
}

#[test]
fn permission_denied_on_socket_is_unknown_not_stopped() {
    if !is_root() {
        eprintln!("skipped: needs root to probe as another user");
        return;
    }
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "private", &[]);
    open_up(rt.path());
    // The socket stays 0755 root-owned... make it unwritable for others.
    std::fs::set_permissions(
        sc.marker.join("sidecar.sock"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", FIRMA])
        .arg("--runtime-dir")
        .arg(rt.path())
        .args(["sidecar", "get", "private", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(r#""state":"unknown""#), "{stdout}");
}

#[test]
fn huge_timeout_does_not_overflow() {
    let rt = runtime();
    let _ok = Sidecar::start(rt.path(), "tcp-ok", &["--tcp", "127.0.0.1:0"]);
    let e = get_with(
        rt.path(),
        "tcp-ok",
        &ProbeOptions::with_timeout(Duration::MAX),
    )
    .unwrap()
    .unwrap();
    assert_eq!(e.state, State::Running);
}
