//! Torture test (docs/design.md, "Invariants" (1 and 5)): several `firma` processes
//! list and collect the same runtime directory in loops, an in-process
//! collector joins them, while other threads write live and stale markers,
//! start real sidecars and SIGKILL or SIGTERM them, and leave corrupt
//! markers of every kind. Then, with no listing running, a batch of fresh
//! stale markers is collected by concurrent `firma sidecar gc` processes.
//!
//! At the end: no call failed; every dead sidecar's and stale marker is
//! gone; every stale id was reported by at most one collector during the
//! chaos (a listing collects silently, so not every id is reported) and by
//! exactly one in the gc-only phase; every live sidecar's, live and corrupt
//! marker is intact; nothing behind a symlink was touched.
//!
//! Bounded by work, not time: a fixed number of sidecars, markers and
//! rounds; the loops stop when the writers are done (about 20–40 s on two
//! cores).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::*;
use firma_stack::sidecar_markers::{MetadataFile, create_marker, gc_stale, list};

const SIDECAR_ROUNDS: usize = 120;
const STALE_MARKERS: usize = 3000;
const OWN_MARKERS: usize = 100;
const CORRUPT_MARKERS: usize = 48;
const FINAL_STALE: usize = 300;

/// `firma --runtime-dir DIR --timeout-ms 100 sidecar ARGS... --json`: the
/// parsed stdout; panics (failing the test) on any exit other than 0.
fn firma_json(rt: &Path, args: &[&str]) -> serde_json::Value {
    json_output(
        Command::new(FIRMA)
            .arg("--runtime-dir")
            .arg(rt)
            .args(["--timeout-ms", "100", "sidecar"])
            .args(args)
            .arg("--json"),
        &format!("firma {args:?} failed"),
    )
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn own_meta(id: &str) -> MetadataFile {
    MetadataFile {
        agent_id: "torture".into(),
        ..meta(id, std::process::id())
    }
}

/// One corrupt marker of kind `i % 6`; none of them may ever be removed.
fn write_corrupt(rt: &Path, outside: &Path, i: usize, dead: u32) -> String {
    let id = format!("bad-{i:02}");
    let dir = rt.join("run").join(&id);
    match i % 6 {
        0 => drop(write_marker(rt, &id, "garbage [ not toml")),
        // Stale-looking, but names another sandbox.
        1 => drop(write_marker(
            rt,
            &id,
            &metadata("elsewhere", dead.into(), ""),
        )),
        // Stale-looking, but pid 0 (kill(0, …) must stay unreachable).
        2 => drop(write_marker(rt, &id, &metadata(&id, 0, ""))),
        // A FIFO named metadata.toml.
        3 => {
            std::fs::create_dir_all(&dir).unwrap();
            let c = CString::new(dir.join("metadata.toml").to_str().unwrap()).unwrap();
            // SAFETY: valid path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        }
        // metadata.toml a symlink to a stale marker's metadata outside.
        4 => {
            std::fs::create_dir_all(&dir).unwrap();
            let target = outside.join(format!("{id}.toml"));
            std::fs::write(&target, metadata(&id, dead.into(), "")).unwrap();
            symlink(&target, dir.join("metadata.toml")).unwrap();
        }
        // The marker directory itself a symlink to a stale marker outside.
        _ => {
            let target = write_stale(outside, &id, dead);
            symlink(&target, &dir).unwrap();
        }
    }
    id
}

#[test]
fn collectors_listers_writers_and_dying_sidecars_all_at_once() {
    let rt = runtime();
    let outside = runtime();
    let rt = rt.path();
    let dead = dead_pid();
    // Sidecars that live through the whole run: always listed.
    let keepers = [
        Sidecar::start(rt, "keep-unix", &[]),
        Sidecar::start(rt, "keep-tcp", &["--tcp", "127.0.0.1:0"]),
        Sidecar::start(rt, "keep-wedged", &["--mode", "wedged"]),
    ];
    let keeper_ids: Vec<String> = keepers.iter().map(|s| s.id.clone()).collect();

    let writers_done = AtomicBool::new(false);
    let own_written = AtomicUsize::new(0);
    // Ids that are stale or will become stale; never listable once stale.
    let stale_ids = Mutex::new(BTreeSet::<String>::new());
    // Ids a listing must never show.
    let never_listed = Mutex::new(BTreeSet::<String>::new());
    let survivors = Mutex::new(Vec::<Sidecar>::new());

    // What every listing must satisfy.
    let check_listing = |ids: Vec<String>, own_before: usize, states: Vec<String>| {
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "listing not sorted");
        assert!(states.iter().all(|st| st != "stopped"), "{states:?}");
        let never = never_listed.lock().unwrap();
        for id in &ids {
            assert!(
                !never.contains(id),
                "listed {id}, which is stale or corrupt"
            );
        }
        for k in &keeper_ids {
            assert!(ids.contains(k), "live sidecar {k} missing from {ids:?}");
        }
        for i in 0..own_before {
            let own = format!("own-{i:03}");
            assert!(ids.contains(&own), "live marker {own} missing from {ids:?}");
        }
    };
    let reports: Vec<Vec<String>> = std::thread::scope(|s| {
        // Writers of plain markers: stale ones, live ones (this process).
        let stale_writer = s.spawn(|| {
            for i in 0..STALE_MARKERS {
                let id = format!("st-{i:04}");
                stale_ids.lock().unwrap().insert(id.clone());
                never_listed.lock().unwrap().insert(id.clone());
                write_stale(rt, &id, dead);
            }
        });
        let own_writer = s.spawn(|| {
            for i in 0..OWN_MARKERS {
                create_marker(rt, &own_meta(&format!("own-{i:03}"))).unwrap();
                own_written.store(i + 1, Ordering::SeqCst);
            }
        });
        let corrupt_writer = s.spawn(|| {
            for i in 0..CORRUPT_MARKERS {
                let id = write_corrupt(rt, outside.path(), i, dead);
                never_listed.lock().unwrap().insert(id);
            }
        });
        // Real sidecars: started, then SIGKILLed (reaped at once or left a
        // zombie for a while), SIGTERMed (they remove their own marker), or
        // left running.
        let sidecar_thread = s.spawn(|| {
            let modes: [&[&str]; 4] = [
                &[],
                &["--mode", "wedged"],
                &["--mode", "no-socket"],
                &["--tcp", "127.0.0.1:0"],
            ];
            let mut zombies = Vec::new();
            for i in 0..SIDECAR_ROUNDS {
                let id = format!("sc-{i:02}");
                let sc = Sidecar::start(rt, &id, modes[i % modes.len()]);
                match i % 4 {
                    0 => {
                        stale_ids.lock().unwrap().insert(id);
                        sc.kill_and_reap();
                    }
                    1 => {
                        stale_ids.lock().unwrap().insert(id);
                        zombies.push(sc.kill_leave_zombie());
                    }
                    2 => {
                        let marker = sc.marker.clone();
                        drop(sc); // SIGTERM, waited for
                        assert!(!marker.exists(), "{id} did not remove its marker");
                    }
                    _ => survivors.lock().unwrap().push(sc),
                }
            }
            for mut z in zombies {
                z.wait().unwrap();
            }
        });

        // Collectors: two `firma sidecar gc` loops and one in-process loop.
        let mut collectors = Vec::new();
        for _ in 0..2 {
            collectors.push(s.spawn(|| {
                let mut mine = Vec::new();
                while !writers_done.load(Ordering::SeqCst) {
                    mine.extend(strings(&firma_json(rt, &["gc"])));
                }
                mine
            }));
        }
        collectors.push(s.spawn(|| {
            let mut mine = Vec::new();
            while !writers_done.load(Ordering::SeqCst) {
                mine.extend(gc_stale(rt).unwrap());
            }
            mine
        }));
        // Listers: two `firma sidecar status` loops and one in-process loop.
        let mut listers = Vec::new();
        for _ in 0..2 {
            listers.push(s.spawn(|| {
                let mut n = 0;
                while !writers_done.load(Ordering::SeqCst) {
                    let own_before = own_written.load(Ordering::SeqCst);
                    let v = firma_json(rt, &["status"]);
                    let entries = v.as_array().unwrap();
                    let field = |k: &str| -> Vec<String> {
                        entries
                            .iter()
                            .map(|e| e[k].as_str().unwrap().to_owned())
                            .collect()
                    };
                    check_listing(field("sandbox_id"), own_before, field("state"));
                    n += 1;
                }
                n
            }));
        }
        listers.push(s.spawn(|| {
            let mut n = 0;
            while !writers_done.load(Ordering::SeqCst) {
                let own_before = own_written.load(Ordering::SeqCst);
                let entries = list(rt).unwrap();
                check_listing(
                    entries.iter().map(|e| e.sandbox_id.clone()).collect(),
                    own_before,
                    entries.iter().map(|e| e.state.to_string()).collect(),
                );
                n += 1;
            }
            n
        }));

        for h in [stale_writer, own_writer, corrupt_writer, sidecar_thread] {
            h.join().unwrap();
        }
        writers_done.store(true, Ordering::SeqCst);
        let listings: usize = listers.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(listings >= 3, "the listers hardly ran ({listings})");
        let reports: Vec<Vec<String>> = collectors.into_iter().map(|h| h.join().unwrap()).collect();
        eprintln!(
            "torture: {listings} listings; collectors reported {} ids",
            reports.iter().map(Vec::len).sum::<usize>()
        );
        reports
    });

    // During the chaos: at most one collector per id, and only stale ids.
    let stale_ids = stale_ids.into_inner().unwrap();
    let all: Vec<&String> = reports.iter().flatten().collect();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "an id was reported by two collectors"
    );
    for id in &unique {
        assert!(
            stale_ids.contains(*id),
            "collected {id}, which was not stale"
        );
    }

    // The gc-only phase: fresh stale markers and freshly killed sidecars,
    // collected by concurrent `firma sidecar gc` processes and nobody else.
    let mut expected: BTreeSet<String> = (0..FINAL_STALE)
        .map(|i| {
            let id = format!("final-{i:03}");
            write_stale(rt, &id, dead);
            id
        })
        .collect();
    let mut survivors = survivors.into_inner().unwrap();
    for _ in 0..2 {
        let sc = survivors.pop().unwrap();
        expected.insert(sc.id.clone());
        sc.kill_and_reap();
    }
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(FIRMA)
                .arg("--runtime-dir")
                .arg(rt)
                .args(["sidecar", "gc", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut final_reports = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        final_reports.extend(strings(&serde_json::from_slice(&out.stdout).unwrap()));
    }
    let final_set: BTreeSet<String> = final_reports.iter().cloned().collect();
    assert_eq!(
        final_set.len(),
        final_reports.len(),
        "an id was reported by two gc processes"
    );
    assert!(
        expected.is_subset(&final_set),
        "not collected: {:?}",
        expected.difference(&final_set).collect::<Vec<_>>()
    );
    for id in final_set.difference(&expected) {
        assert!(
            stale_ids.contains(id),
            "collected {id}, which was not stale"
        );
        assert!(!unique.contains(id), "{id} collected twice over the run");
    }

    // What is left: exactly the live and the corrupt.
    let mut want: BTreeSet<String> = keeper_ids.iter().cloned().collect();
    want.extend(survivors.iter().map(|s| s.id.clone()));
    want.extend((0..OWN_MARKERS).map(|i| format!("own-{i:03}")));
    want.extend((0..CORRUPT_MARKERS).map(|i| format!("bad-{i:02}")));
    let left: BTreeSet<String> = run_names(rt).into_iter().collect();
    assert_eq!(
        left, want,
        "run/ does not hold exactly the live and corrupt"
    );
    // Every stale marker, and every dead sidecar's, is gone.
    for id in &stale_ids {
        assert!(!left.contains(id), "{id} was left behind");
    }
    // The corrupt markers are intact, and nothing outside run/ was touched.
    for i in 0..CORRUPT_MARKERS {
        let m = rt.join(format!("run/bad-{i:02}/metadata.toml"));
        assert!(
            std::fs::symlink_metadata(&m).is_ok(),
            "{} lost its metadata",
            m.display()
        );
    }
    for i in (0..CORRUPT_MARKERS).filter(|i| i % 6 == 4) {
        assert!(outside.path().join(format!("bad-{i:02}.toml")).exists());
    }
    for i in (0..CORRUPT_MARKERS).filter(|i| i % 6 == 5) {
        let target = outside.path().join(format!("run/bad-{i:02}/metadata.toml"));
        assert!(target.exists(), "followed a symlink out of run/");
    }
    drop(survivors);
    drop(keepers);
}
