//! Fault injection with real races (SECURITY.md): markers and `run/` changing
//! under a listing, the descriptor limit lowered, a sidecar dying while it
//! is probed, writers killed half-way. No hooks and no mocks: other threads
//! and processes really rename, remove and replace things while the library
//! works, and every call must either answer correctly or fail with a clear
//! `io` error — never panic, never hang, never remove what is not stale.

use std::collections::BTreeSet;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use firma_stack::sidecar_markers::{
    MetadataFile, ProbeOptions, State, create_marker, gc_stale, get, list, list_with,
};

fn me() -> u32 {
    std::process::id()
}

/// A marker naming this (live) test process, written as a foreign writer
/// would (no identity fields): listed `unhealthy` (no socket), never stale.
fn write_live(rt: &Path, id: &str) -> PathBuf {
    write_marker(rt, id, &metadata(id, me().into(), ""))
}

fn ids(entries: &[firma_stack::sidecar_markers::SidecarEntry]) -> Vec<String> {
    entries.iter().map(|e| e.sandbox_id.clone()).collect()
}

/// Markers vanish (renamed away and back, removed and rewritten), appear
/// (new stale markers keep arriving) and are replaced (by a symlink to a
/// stale marker outside `run/`, by a regular file, by a directory whose
/// metadata is swapped atomically) while other threads list and collect in
/// a loop. No call fails; only stale markers are removed, each reported
/// once; the live markers the mutators own are never taken from them.
#[test]
fn markers_vanishing_appearing_and_replaced_under_concurrent_listing() {
    let rt = runtime();
    let outside = runtime();
    let dead = dead_pid();
    let run = rt.path().join("run");
    // Live markers nobody touches: every listing must show them.
    for id in ["keep-a", "keep-b"] {
        write_live(rt.path(), id);
    }
    write_marker(rt.path(), "corrupt", "not [ toml");
    // A stale marker outside run/ that symlinks will point at.
    let bait = write_stale(outside.path(), "bait", dead);
    let churn: Vec<String> = (0..4).map(|i| format!("churn-{i}")).collect();
    for id in &churn {
        write_live(rt.path(), id);
    }

    let stop = AtomicBool::new(false);
    let rounds = 150;
    let (reported, stale_written) = std::thread::scope(|s| {
        // Mutators: each owns one churn marker. Every step must succeed: a
        // failure means someone else removed a live marker.
        let mutators: Vec<_> = churn
            .iter()
            .enumerate()
            .map(|(k, id)| {
                let run = run.clone();
                let bait = bait.clone();
                s.spawn(move || {
                    let path = run.join(id);
                    let aside = run.join(format!(".aside-{k}"));
                    for round in 0..rounds {
                        match round % 5 {
                            // Vanish and reappear under the same name.
                            0 => {
                                std::fs::rename(&path, &aside).unwrap();
                                std::fs::rename(&aside, &path).unwrap();
                            }
                            // Removed recursively, then written again.
                            1 => {
                                std::fs::remove_dir_all(&path).unwrap();
                                write_live(run.parent().unwrap(), id);
                            }
                            // Replaced by a symlink to a stale marker outside.
                            2 => {
                                std::fs::rename(&path, &aside).unwrap();
                                symlink(&bait, &path).unwrap();
                                std::fs::remove_file(&path).unwrap();
                                std::fs::rename(&aside, &path).unwrap();
                            }
                            // Replaced by a regular file.
                            3 => {
                                std::fs::rename(&path, &aside).unwrap();
                                std::fs::write(&path, "not a marker").unwrap();
                                std::fs::remove_file(&path).unwrap();
                                std::fs::rename(&aside, &path).unwrap();
                            }
                            // metadata.toml replaced atomically (temp + rename).
                            _ => {
                                let tmp = path.join(".metadata.toml.tmp");
                                std::fs::write(&tmp, metadata(id, me().into(), "x = 1\n")).unwrap();
                                std::fs::rename(&tmp, path.join("metadata.toml")).unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        // Stale markers keep appearing.
        let creator = s.spawn(|| {
            let mut written = BTreeSet::new();
            for i in 0..200 {
                let id = format!("stale-{i:03}");
                write_stale(rt.path(), &id, dead);
                written.insert(id);
            }
            written
        });
        let collectors: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        mine.extend(gc_stale(rt.path()).unwrap());
                    }
                    mine
                })
            })
            .collect();
        let listers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let got = ids(&list(rt.path()).unwrap());
                        for keep in ["keep-a", "keep-b"] {
                            assert!(got.iter().any(|g| g == keep), "{keep} missing: {got:?}");
                        }
                        for g in &got {
                            assert!(
                                g.starts_with("keep-") || g.starts_with("churn-"),
                                "listed {g}, which is not live"
                            );
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        mutators.into_iter().for_each(|h| h.join().unwrap());
        let written = creator.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        let listings: usize = listers.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(listings > 0);
        let reported: Vec<String> = collectors
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        (reported, written)
    });
    let unique: BTreeSet<&String> = reported.iter().collect();
    assert_eq!(unique.len(), reported.len(), "an id was reported twice");
    assert!(unique.iter().all(|id| stale_written.contains(*id)));
    // What the loops left stale, one more collection takes.
    gc_stale(rt.path()).unwrap();
    let mut expected = vec!["corrupt".to_owned(), "keep-a".into(), "keep-b".into()];
    expected.extend(churn.iter().cloned());
    expected.sort();
    assert_eq!(run_names(rt.path()), expected);
    assert!(has_metadata(&bait), "followed a symlink out of run/");
}

/// `run/` itself renamed away, replaced by a symlink to a directory of
/// markers elsewhere, replaced by a file, or missing, while listings and
/// collections run in a loop. Each call answers from the real `run/` or
/// fails with an `io` error; nothing behind the symlink is listed or
/// removed.
#[test]
fn run_dir_removed_or_replaced_by_a_symlink_mid_listing() {
    let rt = runtime();
    let outside = runtime();
    let dead = dead_pid();
    write_live(rt.path(), "inside");
    // Behind the symlink: a live marker (must never be listed) and a stale
    // one (must never be removed).
    write_live(outside.path(), "outside-live");
    let bait = write_stale(outside.path(), "outside-stale", dead);
    let run = rt.path().join("run");
    let away = rt.path().join("run.away");
    let stop = AtomicBool::new(false);
    let errors = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|k| {
                let stop = &stop;
                let rt = rt.path();
                s.spawn(move || {
                    let mut errors = BTreeSet::new();
                    while !stop.load(Ordering::Relaxed) {
                        let r = if k == 0 {
                            gc_stale(rt).map(|removed| {
                                assert!(removed.is_empty(), "removed {removed:?}");
                            })
                        } else {
                            list(rt).map(|e| {
                                let got = ids(&e);
                                assert!(got.is_empty() || got == ["inside"], "listed {got:?}");
                            })
                        };
                        if let Err(e) = r {
                            assert_eq!(e.code(), "io", "{e}");
                            errors.insert(e.errno());
                        }
                    }
                    errors
                })
            })
            .collect();
        for round in 0..300 {
            std::fs::rename(&run, &away).unwrap();
            match round % 3 {
                0 => {
                    symlink(outside.path().join("run"), &run).unwrap();
                    std::fs::remove_file(&run).unwrap();
                }
                1 => {
                    std::fs::write(&run, "not a directory").unwrap();
                    std::fs::remove_file(&run).unwrap();
                }
                _ => std::thread::yield_now(),
            }
            std::fs::rename(&away, &run).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<BTreeSet<_>>()
    });
    // Only the errors a symlinked or non-directory run/ explains.
    for errno in &errors {
        assert!(
            matches!(*errno, Some(libc::ELOOP) | Some(libc::ENOTDIR)),
            "unexpected errno {errno:?}"
        );
    }
    assert!(has_metadata(&bait));
    assert_eq!(run_names(rt.path()), ["inside"]);
    assert_eq!(run_names(outside.path()), ["outside-live", "outside-stale"]);
}

/// Runs `firma` with RLIMIT_NOFILE lowered to `limit` in the child.
fn firma_with_fd_limit(limit: u64, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(FIRMA);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// With the descriptor limit lowered so sockets or files cannot be opened,
/// `firma sidecar status|get|gc` either answers — each sidecar with its
/// true state, or `unknown` where the probe could not be made, or left out
/// where its marker could not even be read (a per-marker shortage never
/// fails the call) — or exits 2 with one clear line naming an I/O error
/// when `run/` itself cannot be opened. Never a panic, never a sidecar
/// misreported as `unhealthy`, never a live or corrupt marker removed.
#[test]
fn lowered_fd_limit_gives_a_clear_io_error_or_the_right_answer() {
    let rt = runtime();
    let dir = rt.path().to_str().unwrap().to_owned();
    let _unix = Sidecar::start(rt.path(), "serve-unix", &[]);
    let _tcp = Sidecar::start(rt.path(), "serve-tcp", &["--tcp", "127.0.0.1:0"]);
    let _wedged = Sidecar::start(rt.path(), "wedged", &["--mode", "wedged"]);
    write_marker(rt.path(), "corrupt", "garbage [");
    let dead = dead_pid();
    let stale: Vec<String> = (0..6).map(|i| format!("stale-{i}")).collect();
    let base = ["--runtime-dir", dir.as_str(), "sidecar"];
    let args = |rest: &[&'static str]| -> Vec<String> {
        base.iter().chain(rest).map(|s| s.to_string()).collect()
    };
    let truth = list(rt.path()).unwrap();
    let truth_states: Vec<(String, State)> = truth
        .iter()
        .map(|e| (e.sandbox_id.clone(), e.state))
        .collect();
    assert_eq!(
        truth_states,
        [
            ("serve-tcp".to_owned(), State::Running),
            ("serve-unix".to_owned(), State::Running),
            ("wedged".to_owned(), State::Unhealthy)
        ]
    );
    let mut clean_runs = 0;
    let mut exact_runs = 0;
    let mut io_errors = 0;
    // 0-2 are stdio; from 3 up the process can open ever more.
    for limit in 3..=14u64 {
        for id in &stale {
            if !rt.path().join("run").join(id).exists() {
                write_stale(rt.path(), id, dead);
            }
        }
        for cmd in [
            args(&["status", "--json"]),
            args(&["get", "serve-unix", "--json"]),
            args(&["gc", "--json"]),
        ] {
            let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let (code, out, err) = firma_with_fd_limit(limit, &argv);
            assert!(
                !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
                "limit {limit} {argv:?}: {err}"
            );
            if err.contains("error while loading shared libraries") {
                // The dynamic loader itself needs a descriptor: not ours.
                continue;
            }
            match code {
                Some(0) => {
                    clean_runs += 1;
                    let v: serde_json::Value = serde_json::from_str(&out)
                        .unwrap_or_else(|e| panic!("limit {limit}: {e}: {out:?}"));
                    match argv[3] {
                        "status" => {
                            let got = id_states(&v);
                            for (id, state) in &got {
                                let truth = truth_states
                                    .iter()
                                    .find(|(i, _)| i == id)
                                    .unwrap_or_else(|| panic!("limit {limit}: listed {id}"));
                                assert!(
                                    state == truth.1.as_str() || state == "unknown",
                                    "limit {limit}: {id} is {state}, truly {:?}",
                                    truth.1
                                );
                            }
                            if got.len() == truth_states.len()
                                && got
                                    .iter()
                                    .zip(&truth_states)
                                    .all(|(g, t)| g.1 == t.1.as_str())
                            {
                                exact_runs += 1;
                            }
                        }
                        "get" => assert!(
                            v["state"] == "running" || v["state"] == "unknown",
                            "limit {limit}: {out}"
                        ),
                        _ => {
                            for id in v.as_array().unwrap() {
                                assert!(
                                    stale.iter().any(|s| s == id.as_str().unwrap()),
                                    "limit {limit}: gc removed {id}"
                                );
                            }
                        }
                    }
                }
                Some(2) => {
                    io_errors += 1;
                    assert_eq!(err.lines().count(), 1, "limit {limit}: {err}");
                    assert!(
                        err.contains("Too many open files") || err.contains("os error 24"),
                        "limit {limit}: not a clear descriptor error: {err}"
                    );
                }
                other => panic!("limit {limit} {argv:?}: exit {other:?}: {err}"),
            }
            for keep in ["serve-unix", "serve-tcp", "wedged", "corrupt"] {
                assert!(
                    rt.path()
                        .join("run")
                        .join(keep)
                        .join("metadata.toml")
                        .exists(),
                    "limit {limit} {argv:?} removed {keep}"
                );
            }
        }
    }
    assert!(io_errors > 0, "no limit was low enough to fail");
    assert!(clean_runs > 0, "no limit was high enough to succeed");
    assert!(
        exact_runs > 0,
        "no limit was high enough for the exact answer"
    );
}

/// The local port of `addr` ("127.0.0.1:PORT") as /proc/net/tcp shows it.
fn port_of(listen: &str) -> u16 {
    listen.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// True while some socket of this network namespace is in SYN_SENT towards
/// `port` on loopback: a connect to it is in flight.
fn syn_sent_to(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[2] == remote && f[3] == "02"
    })
}

/// A TCP sidecar that drops SYNs is killed while a listing with a 2 s probe
/// timeout waits on it: the listing still returns within its timeout (no
/// hang), reports the sidecar as it was judged (alive, not serving:
/// `unhealthy`) and keeps its marker; the next listing sees it stopped and
/// collects it.
#[test]
fn sidecar_dying_mid_probe_neither_hangs_nor_confuses_the_listing() {
    let rt = runtime();
    let wedged = Sidecar::syn_dropping(rt.path(), "dying");
    let _ok = Sidecar::start(rt.path(), "steady", &[]);
    let meta: MetadataFile =
        toml::from_str(&std::fs::read_to_string(wedged.marker.join("metadata.toml")).unwrap())
            .unwrap();
    let port = port_of(meta.listen.as_deref().unwrap());
    let opts = ProbeOptions::with_timeout(Duration::from_secs(2));
    let (entries, took) = std::thread::scope(|s| {
        let lister = s.spawn(|| {
            let t = Instant::now();
            let r = list_with(rt.path(), &opts);
            (r, t.elapsed())
        });
        // Wait until the probe's SYN is really in flight, then kill.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !syn_sent_to(port) {
            assert!(Instant::now() < deadline, "the probe never connected");
            assert!(!lister.is_finished(), "listing ended before probing");
            std::thread::yield_now();
        }
        let marker = wedged.kill_and_reap();
        let (r, took) = lister.join().unwrap();
        assert!(marker.exists());
        (r.unwrap(), took)
    });
    assert!(took < Duration::from_secs(15), "listing took {took:?}");
    let states: Vec<_> = entries
        .iter()
        .map(|e| (e.sandbox_id.as_str(), e.state))
        .collect();
    assert_eq!(
        states,
        [("dying", State::Unhealthy), ("steady", State::Running)]
    );
    let again = list(rt.path()).unwrap();
    assert_eq!(ids(&again), ["steady"]);
    assert_eq!(run_names(rt.path()), ["steady"]);
}

/// Real interrupted writers: example sidecars SIGKILLed at once, wherever
/// they are in writing their marker (before, between temp file and rename,
/// after). Plus the leftovers of a foreign writer that writes
/// `metadata.toml` through a temp file inside the marker directory. Readers
/// ignore every temp name, a live writer's temp directory is never
/// collected, a dead writer's is, and writers are never blocked.
#[test]
fn writers_interrupted_between_temp_file_and_rename() {
    let rt = runtime();
    let cut: Vec<String> = (0..24).map(|i| format!("cut-{i}")).collect();
    for (i, id) in cut.iter().enumerate() {
        let mut child = Command::new(SIDECAR)
            .arg("--runtime-dir")
            .arg(rt.path())
            .args(["--id", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the few milliseconds a sidecar takes to
        // write its marker (jitter, not a wait for anything).
        std::thread::sleep(Duration::from_micros(250 * i as u64));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // A live writer mid-way (this process's pid): its temp dir is sacred.
    let live_tmp = rt.path().join(format!("run/.tmp-{}-900", me()));
    std::fs::create_dir_all(&live_tmp).unwrap();
    std::fs::write(live_tmp.join(".metadata.toml.tmp"), "half").unwrap();
    // A foreign writer died between its temp file and the rename: the marker
    // directory holds only `.metadata.toml.tmp` ...
    let half = rt.path().join("run/half");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(
        half.join(".metadata.toml.tmp"),
        metadata("half", me().into(), ""),
    )
    .unwrap();
    // ... or a complete metadata.toml next to a stale temp file.
    let whole = write_live(rt.path(), "whole");
    std::fs::write(whole.join(".metadata.toml.tmp"), "sandbox_id = \"other\"").unwrap();

    // Readers: temp names are never listed; the half marker is skipped by
    // list and an I/O error (no metadata.toml) for get.
    let listed = ids(&list(rt.path()).unwrap());
    assert_eq!(listed, ["whole"]);
    assert_eq!(get(rt.path(), "whole").unwrap().unwrap().pid, me());
    assert_eq!(
        get(rt.path(), "half").unwrap_err().errno(),
        Some(libc::ENOENT)
    );
    // The killed writers' debris is gone (dead pids: tmp dirs and stale
    // markers alike), the live writer's temp dir and the foreign ones stay.
    gc_stale(rt.path()).unwrap();
    let mut left = run_names(rt.path());
    left.retain(|n| n.starts_with(".tmp-") || n.starts_with("cut-"));
    assert_eq!(left, [format!(".tmp-{}-900", me())]);
    assert!(live_tmp.join(".metadata.toml.tmp").exists());
    assert!(half.join(".metadata.toml.tmp").exists());
    // Writers are not blocked by any of it: every id can be written anew.
    for id in cut.iter().chain([&"half-2".to_owned()]) {
        create_marker(rt.path(), &meta(id, me())).unwrap();
    }
    assert_eq!(ids(&list(rt.path()).unwrap()).len(), cut.len() + 2);
}

/// A socket file named `metadata.toml` (anyone who can write `run/` can
/// bind one) is as malformed as a FIFO: one such marker must not break the
/// listing of every other sidecar (docs/design.md, "Operations": corrupt markers are skipped).
#[test]
fn socket_named_metadata_is_skipped_not_fatal() {
    let rt = runtime();
    write_live(rt.path(), "fine");
    let dir = rt.path().join("run/sock");
    std::fs::create_dir_all(&dir).unwrap();
    let l = std::os::unix::net::UnixListener::bind(dir.join("metadata.toml")).unwrap();
    drop(l);
    let got = list(rt.path());
    assert!(got.is_ok(), "one socket file broke the listing: {got:?}");
    assert_eq!(ids(&got.unwrap()), ["fine"]);
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert_eq!(
        get(rt.path(), "sock").unwrap_err().code(),
        "marker_parse",
        "a socket is not a regular file"
    );
    assert!(has_metadata(&dir));
}

/// A leftover the library cannot finish removing (here a `.gc-` tree
/// nested deeper than it recurses) must not make every later listing and
/// collection fail: cleaning leftovers is opportunistic, and docs/design.md, "Operations" lets
/// `list` fail only when `run/` cannot be enumerated or a marker cannot be
/// read.
#[test]
fn leftover_that_cannot_be_removed_does_not_break_listing() {
    let rt = runtime();
    write_live(rt.path(), "fine");
    let mut deep = rt.path().join("run/.gc-424242-0");
    for i in 0..12 {
        deep.push(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    let got = list(rt.path());
    assert!(
        got.is_ok(),
        "an undeletable leftover broke the listing: {got:?}"
    );
    assert_eq!(ids(&got.unwrap()), ["fine"]);
    assert!(gc_stale(rt.path()).is_ok());
    assert!(has_metadata(&rt.path().join("run/fine")));
}

/// A `.gc-<pid>-<n>` directory is the tomb of a collection in progress as
/// long as its collector lives: between its rename and its removal (or its
/// rename back, when the marker was replaced meanwhile) another collector
/// must leave it alone, or that collection fails with ENOENT, the id is
/// reported by nobody, and a marker that was about to be put back is
/// deleted unjudged. Only the tomb of a collector that is gone (ESRCH) is
/// debris to finish, as for `.tmp-` names.
#[test]
fn tomb_of_a_live_collector_is_left_alone() {
    let rt = runtime();
    // What this process's collector holds for a moment mid-collection: a
    // (live) marker just renamed to its tomb name.
    let tomb = rt.path().join(format!("run/.gc-{}-4242", me()));
    std::fs::create_dir_all(&tomb).unwrap();
    std::fs::write(
        tomb.join("metadata.toml"),
        metadata("taken", me().into(), ""),
    )
    .unwrap();
    // The debris of a collector that died is still finished.
    let debris = rt.path().join(format!("run/.gc-{}-0", dead_pid()));
    std::fs::create_dir_all(&debris).unwrap();
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert!(!debris.exists());
    assert!(
        has_metadata(&tomb),
        "removed the tomb of a collection still in progress"
    );
}

/// A stale marker whose tree cannot be removed whole (nested deeper than
/// the library recurses; found by the `marker_dir` fuzz target) must not
/// leave `run/` unreported (docs/design.md, "Invariants" (5): each stale id is reported by
/// exactly one caller): either the call reports the id — its name is free
/// again, the remains may stay as debris under a reserved name — or the
/// marker stays under its own name.
#[test]
fn stale_marker_too_deep_to_remove_is_reported_or_kept() {
    let rt = runtime();
    let marker = write_stale(rt.path(), "deep", dead_pid());
    let mut d = marker.clone();
    for i in 0..12 {
        d.push(format!("d{i}"));
    }
    std::fs::create_dir_all(&d).unwrap();
    match gc_stale(rt.path()) {
        Ok(ids) => assert_eq!(ids, ["deep"], "taken out of run/ but not reported"),
        Err(e) => assert!(
            has_metadata(&marker),
            "gc_stale failed ({e}) after taking the marker out of run/: nobody \
             reports it, and run/ now holds {:?}",
            run_names(rt.path())
        ),
    }
    assert!(list(rt.path()).is_ok());
}
