//! docs/design.md, "Invariants" (5): any number of processes may list and gc at once; each stale
//! id is reported removed by exactly one caller; nobody fails because
//! another removed a marker first; live and corrupt markers survive.

use std::collections::BTreeSet;

use crate::common::*;
use firma_stack::sidecar_markers::{gc_stale, list};

const STALE: usize = 1200;

fn fleet(rt: &std::path::Path) -> (Vec<Sidecar>, BTreeSet<String>) {
    let dead = dead_pid();
    let stale: BTreeSet<String> = (0..STALE).map(|i| format!("stale-{i:04}")).collect();
    for id in &stale {
        write_stale(rt, id, dead);
    }
    write_marker(rt, "corrupt", "not toml at all [");
    let live = vec![
        Sidecar::start(rt, "live-a", &[]),
        Sidecar::start(rt, "live-b", &["--mode", "wedged"]),
    ];
    (live, stale)
}

#[test]
fn concurrent_gc_processes_report_each_stale_id_exactly_once() {
    let rt = runtime();
    let (_live, stale) = fleet(rt.path());
    let children = spawn_firmas(4, rt.path(), &["sidecar", "gc", "--json"]);
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for child in children {
        let ids: Vec<String> = wait_json(child);
        total += ids.len();
        seen.extend(ids);
    }
    assert_eq!(total, STALE, "some id was reported by two collectors");
    assert_eq!(seen, stale);
    assert_eq!(run_names(rt.path()), ["corrupt", "live-a", "live-b"]);
}

#[test]
fn concurrent_list_and_gc_threads_and_processes_never_fail() {
    let rt = runtime();
    let (_live, stale) = fleet(rt.path());
    let status = spawn_firmas(2, rt.path(), &["sidecar", "status", "--json"]);
    let reported: Vec<Vec<String>> = std::thread::scope(|s| {
        let gcs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| gc_stale(rt.path()).unwrap()))
            .collect();
        let lists: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let entries = list(rt.path()).unwrap();
                    // Only live sidecars are ever listed, never half-removed ones.
                    let ids: Vec<_> = entries.iter().map(|e| e.sandbox_id.as_str()).collect();
                    assert_eq!(ids, ["live-a", "live-b"]);
                })
            })
            .collect();
        lists.into_iter().for_each(|h| h.join().unwrap());
        gcs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for child in status {
        let v: Vec<serde_json::Value> = wait_json(child);
        assert_eq!(v.len(), 2);
    }
    // Reported ids never repeat (list collects silently, so not all appear).
    let all: Vec<&String> = reported.iter().flatten().collect();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len());
    assert!(unique.iter().all(|id| stale.contains(*id)));
    assert_eq!(run_names(rt.path()), ["corrupt", "live-a", "live-b"]);
}

/// A large `run/` is judged by several worker threads that take batches of
/// entries as they go: every marker must still be judged exactly once, and
/// the report must come back sorted whatever order the workers finished in.
#[test]
fn one_large_scan_judges_every_marker_once_and_sorts_them() {
    use firma_stack::sidecar_markers::{ProbeOptions, ScanOptions, State, scan};
    let rt = runtime();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept (and drop) every probe, so the backlog never fills up.
    std::thread::spawn(move || for _ in listener.incoming() {});
    let me = std::process::id();
    let dead = dead_pid();
    let (mut live, mut stale, mut broken) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved names, so each batch holds every kind of entry.
    for i in 0..700 {
        let id = format!("m-{i:04}");
        match i % 3 {
            0 => {
                let listen = format!("listen = \"{addr}\"\n");
                write_marker(rt.path(), &id, &metadata(&id, me.into(), &listen));
                live.push(id);
            }
            1 => {
                write_stale(rt.path(), &id, dead);
                stale.push(id);
            }
            _ => {
                write_marker(rt.path(), &id, "not toml at all [");
                broken.push(id);
            }
        }
    }
    let opts = ScanOptions {
        probe: Some(ProbeOptions::with_timeout(std::time::Duration::from_secs(
            5,
        ))),
        collect: true,
    };
    let report = scan(rt.path(), &opts).unwrap();
    let ids: Vec<String> = report.live.iter().map(|e| e.sandbox_id.clone()).collect();
    assert_eq!(ids, live, "live markers missing, repeated or out of order");
    assert!(
        report.live.iter().all(|e| e.state == State::Running),
        "{:?}",
        report.live.iter().find(|e| e.state != State::Running)
    );
    assert_eq!(report.collected, stale);
    assert_eq!(report.broken, broken);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Descriptors open in this process (other tests' threads open some too,
/// hence the margin where this is compared).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A scan that splits 600 markers' sockets between worker threads closes
/// every descriptor it opened (each marker's are closed together, in runs
/// of consecutive numbers, while the other worker opens its own), and every
/// marker is still probed: all `running`.
#[test]
fn a_two_worker_scan_closes_every_descriptor_it_opens() {
    let rt = runtime();
    let me: i64 = std::process::id().into();
    let mut listeners = Vec::new();
    for i in 0..600 {
        let id = format!("s-{i:04}");
        let dir = write_marker(rt.path(), &id, &metadata(&id, me, ""));
        listeners.push(std::os::unix::net::UnixListener::bind(dir.join("sidecar.sock")).unwrap());
    }
    let before = open_descriptors();
    for round in 0..3 {
        let entries = list(rt.path()).unwrap();
        assert_eq!(entries.len(), 600, "round {round}");
        let running = entries
            .iter()
            .filter(|e| e.state == firma_stack::sidecar_markers::State::Running)
            .count();
        assert_eq!(running, 600, "round {round}: every socket answers");
        // Empty the backlogs so the next round's connects find room.
        for l in &listeners {
            l.set_nonblocking(true).unwrap();
            while l.accept().is_ok() {}
        }
    }
    let after = open_descriptors();
    assert!(
        after < before + 64,
        "{before} descriptors before three scans of 600 markers, {after} after"
    );
}
