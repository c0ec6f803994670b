//! Seeing into containers (docs/design.md, "Liveness", "Process identity"):
//! a reader in the initial pid namespace finds a sidecar recorded in a
//! child (or grandchild) pid namespace under its own pid for it, proves its
//! identity as for a host process, and proves its death once nothing is
//! left at the recorded `(namespace, pid)`. A reader that cannot see every
//! process (`hidepid=2`, not root) keeps the old rule: never stale.
//!
//! Real namespaces (`unshare`), root; where the kernel refuses one, the
//! test fails saying so.

use std::path::Path;

use crate::common::pod::Pod;
use crate::common::{
    assert_within, has_metadata, json_under_hidepid, root_runtime, runtime, start_ticks,
};
use firma_stack::sidecar_markers::{State, gc_stale, get, inspect, list};

const NEED_ROOT: &str = "these tests build pid namespaces";

/// Asserts `name`'s verdict and reason in `inspect`; gives its detail.
fn expect(rt: &Path, name: &str, verdict: &str, why: &str) -> String {
    let reports = inspect(rt).unwrap();
    let r = reports
        .iter()
        .find(|r| r.name == name)
        .expect("the marker is reported");
    assert_eq!(
        (r.verdict.as_str(), r.reason.as_str()),
        (verdict, why),
        "{name}: {}",
        r.detail
    );
    r.detail.clone()
}

/// The contained sidecar is `running` while it serves, `unhealthy` when
/// its endpoint stops answering while it lives, and `stopped` (collected)
/// once its namespace died — judged through its host pid.
#[test]
fn a_contained_sidecar_is_running_then_stopped_and_collected() {
    let rt = runtime();
    let pod = Pod::start(&["-p", "-f", "--mount-proc"], rt.path(), "pod");
    let meta = pod.meta();
    assert_eq!(meta.pid, 1, "the sidecar is its namespace's pid 1");
    let host = pod.host_pid().expect("the sidecar runs");
    assert_ne!(host, 1, "pid 1 here is the host's init, not the sidecar");
    assert_eq!(
        get(rt.path(), "pod").unwrap().unwrap().state,
        State::Running
    );
    let detail = expect(rt.path(), "pod", "live", "serving");
    assert!(!detail.contains("not verified"), "{detail}");
    assert_eq!(gc_stale(rt.path()).unwrap(), Vec::<String>::new());
    // Stop serving while alive: unhealthy, as for a host process.
    std::fs::remove_file(pod.marker.join("sidecar.sock")).unwrap();
    assert_eq!(
        get(rt.path(), "pod").unwrap().unwrap().state,
        State::Unhealthy
    );
    pod.kill();
    let reports = inspect(rt.path()).unwrap();
    let r = reports.iter().find(|r| r.name == "pod").expect("reported");
    let (why, detail) = (r.reason.as_str(), r.detail.as_str());
    assert_eq!(r.verdict.as_str(), "stale", "{why}: {detail}");
    // The dead namespace's inode number may be taken at once by a pid
    // namespace made meanwhile (by another test): its pid 1 is then
    // another process, `pid_reused`. Stale either way.
    match why {
        "process_gone" => assert!(detail.contains("in its pid namespace"), "{detail}"),
        "pid_reused" => assert!(detail.contains("of its pid namespace"), "{detail}"),
        _ => panic!("{why}: {detail}"),
    }
    assert_eq!(gc_stale(rt.path()).unwrap(), ["pod"]);
    assert_eq!(list(rt.path()).unwrap(), vec![]);
}

/// A sidecar two pid namespaces down is found and judged the same way.
#[test]
fn a_sidecar_in_a_nested_pid_namespace_is_found_and_collected() {
    let rt = runtime();
    let pod = Pod::start(
        &[
            "-p",
            "-f",
            "--mount-proc",
            "--kill-child",
            "unshare",
            "-p",
            "-f",
            "--mount-proc",
        ],
        rt.path(),
        "nested",
    );
    let host = pod.host_pid().expect("the sidecar runs");
    let status = std::fs::read_to_string(format!("/proc/{host}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(
        nspid.split_whitespace().count(),
        4,
        "three namespaces deep: {nspid}"
    );
    assert_eq!(
        get(rt.path(), "nested").unwrap().unwrap().state,
        State::Running
    );
    assert_eq!(gc_stale(rt.path()).unwrap(), Vec::<String>::new());
    pod.kill();
    assert_eq!(gc_stale(rt.path()).unwrap(), ["nested"]);
}

/// A sidecar in a pid and a time namespace (boottime 1000 s ahead): its
/// start ticks, corrected by the recorded offset, are its host process's.
#[test]
fn a_contained_sidecar_in_a_time_namespace_is_verified() {
    let rt = runtime();
    let pod = Pod::start(
        &["-p", "-f", "--mount-proc", "-T", "--boottime", "1000"],
        rt.path(),
        "timed",
    );
    let meta = pod.meta();
    assert_eq!(meta.boottime_offset_ns, Some(1_000_000_000_000));
    let host = pod.host_pid().expect("the sidecar runs");
    let ticks = meta.pid_start_ticks.unwrap();
    assert!(
        ticks > start_ticks(host) + 99_000,
        "recorded {ticks}, here {}",
        start_ticks(host)
    );
    let detail = expect(rt.path(), "timed", "live", "serving");
    assert!(!detail.contains("not"), "{detail}");
    // Recorded ticks that are not its process's prove another process.
    let mut forged = std::fs::read_to_string(pod.marker.join("metadata.toml")).unwrap();
    forged = forged.replace(
        &format!("pid_start_ticks = {ticks}"),
        &format!("pid_start_ticks = {}", ticks + 500),
    );
    std::fs::write(pod.marker.join("metadata.toml"), forged).unwrap();
    expect(rt.path(), "timed", "stale", "pid_reused");
    pod.kill();
}

/// A reader that is not root, with `/proc` mounted `hidepid=2`, cannot see
/// every process: a contained sidecar whose namespace died stays `unknown`
/// (never stale), and its detail says why. Root on the plain `/proc` proves
/// the same death.
#[test]
fn hidepid_hides_a_dead_container_from_a_non_root_reader_never_stale() {
    let rt = root_runtime(NEED_ROOT);
    let pod = Pod::start(&["-p", "-f", "--mount-proc"], rt.path(), "hidden");
    pod.kill();
    let v = json_under_hidepid(2, rt.path(), "inspect");
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["state"], "unknown", "{v:?}");
    assert_eq!(v[0]["reason"], "unverifiable", "{v:?}");
    let detail = v[0]["detail"].as_str().unwrap();
    assert!(detail.contains("hidepid"), "{detail}");
    assert!(has_metadata(&rt.path().join("run/hidden")));
    // Root, seeing everything, proves it gone.
    assert_eq!(gc_stale(rt.path()).unwrap(), ["hidden"]);
}

/// `watch` pins a contained sidecar by a pidfd on its host pid: with a
/// probe interval of a minute, its death is reported within seconds, as a
/// host sidecar's is (and its marker collected).
#[test]
fn watch_reports_a_contained_sidecars_death_through_its_host_pid() {
    use firma_stack::sidecar_markers::{Event, GoneReason, WatchOptions, watch};
    use std::time::{Duration, Instant};
    let rt = runtime();
    let pod = Pod::start(&["-p", "-f", "--mount-proc"], rt.path(), "watched");
    let opts = WatchOptions {
        probe_interval: Duration::from_secs(60),
        rescan_interval: Duration::from_secs(60),
        collect: true,
        ..WatchOptions::default()
    };
    let mut w = watch(rt.path(), &opts).unwrap();
    let until =
        |w: &mut firma_stack::sidecar_markers::Watcher, what: &str, f: &dyn Fn(&Event) -> bool| {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let left = end.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "timed out waiting for {what}");
                if let Some(e) = w.next(Some(left)).unwrap()
                    && f(&e)
                {
                    return e;
                }
            }
        };
    until(&mut w, "synced", &|e| e.kind() == "synced");
    assert_eq!(w.known()["watched"].state, State::Running);
    let killed = Instant::now();
    pod.kill();
    let e = until(&mut w, "gone", &|e| e.kind() == "gone");
    match e {
        Event::Gone {
            sandbox_id, reason, ..
        } => {
            assert_eq!(sandbox_id, "watched");
            assert_eq!(reason, GoneReason::Collected);
        }
        other => panic!("{other:?}"),
    }
    assert_within(killed, Duration::from_secs(5), "gone, by the pidfd");
}

/// A marker with only the seven seed fields (the upstream launcher's),
/// written by a sidecar in a container: its pid is the container's and no
/// process has it here. The pid alone would call it gone and collect a live
/// sidecar's marker; the listener of its own socket, whose pid in its own
/// namespace is the recorded one, proves it alive — on every path that
/// judges (inspect, get, list, gc). Once it dies, it is stale.
#[test]
fn a_contained_sidecar_without_identity_is_proved_alive_by_its_socket() {
    let rt = runtime();
    let pod = Pod::start_bare(rt.path(), "bare");
    let detail = expect(rt.path(), "bare", "live", "serving");
    assert!(detail.contains("listener of its socket"), "{detail}");
    assert_eq!(
        get(rt.path(), "bare").unwrap().unwrap().state,
        State::Running
    );
    assert_eq!(gc_stale(rt.path()).unwrap(), Vec::<String>::new());
    assert_eq!(list(rt.path()).unwrap().len(), 1);
    assert!(
        has_metadata(&pod.marker),
        "the live sidecar's marker was kept"
    );
    let host = pod.host_pid_unrecorded().expect("the sidecar runs");
    pod.kill_host(host);
    expect(rt.path(), "bare", "stale", "process_gone");
    assert_eq!(gc_stale(rt.path()).unwrap(), ["bare"]);
}
