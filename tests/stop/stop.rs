//! docs/design.md, "Stop": stopping a sidecar through a pidfd, with real processes — a
//! serving example sidecar, a process that ignores SIGTERM, a reused pid, a
//! marker without identity, dead and zombie pids, a sidecar in another pid
//! namespace, pids that are never signalled, and two concurrent stops.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::common::*;
use firma_stack::sidecar_markers::{
    ErrorCode, MetadataFile, StopOptions, StopOutcome, create_marker, stop,
};

fn opts(grace_ms: u64) -> StopOptions {
    StopOptions {
        grace: Duration::from_millis(grace_ms),
        ..StopOptions::default()
    }
}

/// [`opts`] with the documented-unsafe opt-out of the identity check.
fn unverified(grace_ms: u64) -> StopOptions {
    StopOptions {
        verify_identity: false,
        ..opts(grace_ms)
    }
}

/// A marker for the live process `pid`, written by the core's writer (which
/// records its identity), optionally with wrong start ticks.
fn marker_for(rt: &Path, id: &str, pid: u32, ticks: Option<u64>) {
    let meta = MetadataFile {
        pid_start_ticks: ticks,
        ..meta(id, pid)
    };
    create_marker(rt, &meta).unwrap();
}

/// `child`, with a marker for it (as [`marker_for`], its identity recorded).
fn marked(rt: &Path, id: &str, child: Child) -> Child {
    marker_for(rt, id, child.id(), None);
    child
}

/// `firma --runtime-dir RT sidecar stop ARGS...`: (exit code, stdout, stderr).
fn firma_stop(rt: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--runtime-dir", rt.to_str().unwrap(), "sidecar", "stop"];
    all.extend_from_slice(args);
    firma(&all)
}

/// A live process (`sleep`) that SIGTERM kills.
fn sleeper() -> Child {
    Command::new("sleep").arg("60").spawn().unwrap()
}

/// A live process that ignores SIGTERM (`trap "" TERM`, kept across exec),
/// returned once the kernel shows the signal ignored. (The caller waits for
/// it; a panic here leaves it to PID 1.)
#[allow(clippy::zombie_processes)]
fn term_ignorer() -> Child {
    let child = Command::new("bash")
        .args(["-c", "trap '' TERM; exec sleep 60"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let ign = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        if ign & (1 << (libc::SIGTERM - 1)) != 0 && status.contains("Name:\tsleep") {
            return child;
        }
        if Instant::now() >= deadline {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            panic!("bash never ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks existence.
    let exists = unsafe { libc::kill(pid as i32, 0) } == 0;
    exists && proc_state(pid) != "Z"
}

fn gone_by(child: &mut Child) -> i32 {
    child.wait().unwrap().signal().unwrap_or(0)
}

#[test]
fn serving_sidecar_stops_on_sigterm_and_its_marker_is_gone() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "serve-1", &[]);
    let pid = sc.pid;
    let out = stop(rt.path(), "serve-1", &opts(5_000)).unwrap().unwrap();
    assert_eq!(out.sandbox_id, "serve-1");
    assert_eq!(out.pid, pid);
    assert_eq!(out.signals, ["SIGTERM"]);
    assert!(out.exited && !out.killed);
    // The example sidecar removes its own marker on SIGTERM, so the marker
    // is gone and this call had nothing left to collect.
    assert!(!out.collected);
    assert!(!sc.marker.exists());
    assert_eq!(run_names(rt.path()), Vec::<String>::new());
    let json = serde_json::to_string(&out).unwrap();
    assert!(
        json.starts_with(&format!(
            "{{\"sandbox_id\":\"serve-1\",\"pid\":{pid},\"signals\":[\"SIGTERM\"],\"exited\":true,\"killed\":false,\"collected\":false,\"waited_ms\":"
        )),
        "{json}"
    );
}

#[test]
fn a_process_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let rt = runtime();
    let mut child = marked(rt.path(), "stubborn", term_ignorer());
    let out = stop(rt.path(), "stubborn", &opts(400)).unwrap().unwrap();
    assert_eq!(out.signals, ["SIGTERM", "SIGKILL"]);
    assert!(out.exited && out.killed && out.collected, "{out:?}");
    assert!(out.waited_ms >= 400, "grace not honoured: {out:?}");
    assert_eq!(gone_by(&mut child), libc::SIGKILL);
    assert_eq!(run_names(rt.path()), Vec::<String>::new());
}

#[test]
fn no_kill_leaves_it_running_with_exit_3_and_the_marker_kept() {
    let rt = runtime();
    let mut child = marked(rt.path(), "stays", term_ignorer());
    let pid = child.id();
    let (code, stdout, _) = firma_stop(
        rt.path(),
        &["stays", "--grace-ms", "200", "--no-kill", "--json"],
    );
    assert_eq!(code, 3, "{stdout}");
    let outs: Vec<StopOutcome> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outs[0].signals, ["SIGTERM"]);
    assert!(!outs[0].exited && !outs[0].killed && !outs[0].collected);
    assert!(outs[0].waited_ms >= 200);
    assert!(alive(pid));
    assert_eq!(run_names(rt.path()), ["stays"]);
    // Without --no-kill the same command finishes the job.
    let (code, _, stderr) = firma_stop(rt.path(), &["stays", "--grace-ms", "100"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(gone_by(&mut child), libc::SIGKILL);
    assert_eq!(run_names(rt.path()), Vec::<String>::new());
}

#[test]
fn a_reused_pid_is_refused_and_that_process_is_untouched() {
    let rt = runtime();
    let mut child = sleeper();
    let pid = child.id();
    marker_for(rt.path(), "reused", pid, Some(start_ticks(pid) + 9));
    let err = stop(rt.path(), "reused", &opts(100)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PidReused);
    assert_eq!(err.code().as_str(), "pid_reused");
    assert!(err.to_string().contains("another process"), "{err}");
    // Even the unsafe opt-out does not override a proof of reuse.
    let unsafe_opts = unverified(100);
    assert_eq!(
        stop(rt.path(), "reused", &unsafe_opts).unwrap_err().code(),
        ErrorCode::PidReused
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(alive(pid), "the other process was signalled");
    assert_eq!(run_names(rt.path()), ["reused"]);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_marker_without_identity_is_refused_unless_the_caller_opts_out() {
    let rt = runtime();
    let mut child = sleeper();
    let pid = child.id();
    write_marker(rt.path(), "bare", &metadata("bare", pid.into(), ""));
    let err = stop(rt.path(), "bare", &opts(100)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdentityUnverifiable);
    assert!(err.to_string().contains("boot_id"), "{err}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(alive(pid));
    let (code, stdout, stderr) = firma_stop(rt.path(), &["bare", "--json"]);
    assert_eq!(code, 2);
    assert!(
        stdout
            .starts_with("[{\"sandbox_id\":\"bare\",\"error\":{\"code\":\"identity_unverifiable\""),
        "{stdout}"
    );
    assert!(stderr.contains("cannot be verified"), "{stderr}");
    assert!(alive(pid));
    // The documented-unsafe opt-out.
    let unsafe_opts = unverified(5_000);
    let out = stop(rt.path(), "bare", &unsafe_opts).unwrap().unwrap();
    assert_eq!(out.signals, ["SIGTERM"]);
    assert!(out.exited && out.collected && !out.killed);
    assert_eq!(gone_by(&mut child), libc::SIGTERM);
}

#[test]
fn a_dead_pid_is_not_signalled_and_its_marker_is_collected() {
    let rt = runtime();
    write_stale(rt.path(), "dead", dead_pid());
    let out = stop(rt.path(), "dead", &opts(100)).unwrap().unwrap();
    assert!(out.signals.is_empty() && out.exited && out.collected && !out.killed);
    assert_eq!(out.waited_ms, 0);
    assert_eq!(run_names(rt.path()), Vec::<String>::new());
    // Now there is no such marker.
    assert_eq!(stop(rt.path(), "dead", &opts(100)).unwrap(), None);
    let (code, stdout, _) = firma_stop(rt.path(), &["dead", "--json"]);
    assert_eq!((code, stdout.as_str()), (1, "[null]\n"));
}

#[test]
fn a_zombie_is_not_signalled_not_reaped_and_its_marker_is_collected() {
    let rt = runtime();
    let mut child = marked(rt.path(), "zombie", sleeper());
    let pid = child.id();
    child.kill().unwrap();
    wait_for_zombie(pid);
    let out = stop(rt.path(), "zombie", &opts(100)).unwrap().unwrap();
    assert!(
        out.signals.is_empty() && out.exited && out.collected,
        "{out:?}"
    );
    assert_eq!(run_names(rt.path()), Vec::<String>::new());
    // Still our zombie: the library never waits for anyone's child.
    assert_eq!(proc_state(pid), "Z");
    child.wait().unwrap();
}

#[test]
fn pid_1_and_the_callers_own_pid_are_refused() {
    let rt = runtime();
    marker_for(rt.path(), "init", 1, None);
    marker_for(rt.path(), "me", std::process::id(), None);
    for id in ["init", "me"] {
        let err = stop(rt.path(), id, &opts(100)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Refused, "{id}: {err}");
        assert_eq!(err.code().as_str(), "refused");
    }
    // Still here, and so are the markers.
    assert_eq!(run_names(rt.path()), ["init", "me"]);
}

#[test]
fn two_concurrent_stops_signal_once_and_report_the_collection_once() {
    for round in 0..5 {
        let rt = runtime();
        let mut child = marked(rt.path(), "twice", sleeper());
        let barrier = Arc::new(Barrier::new(2));
        let outs: Vec<Option<StopOutcome>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (b, p) = (barrier.clone(), rt.path());
                    s.spawn(move || {
                        b.wait();
                        stop(p, "twice", &opts(5_000)).unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let sent: usize = outs.iter().flatten().map(|o| o.signals.len()).sum();
        let collected = outs.iter().flatten().filter(|o| o.collected).count();
        assert_eq!(sent, 1, "round {round}: {outs:?}");
        assert_eq!(collected, 1, "round {round}: {outs:?}");
        assert!(
            outs.iter().flatten().all(|o| o.exited),
            "round {round}: {outs:?}"
        );
        assert_eq!(gone_by(&mut child), libc::SIGTERM);
        assert_eq!(run_names(rt.path()), Vec::<String>::new());
    }
}

#[test]
fn bad_options_and_ids_are_clear_errors() {
    let rt = runtime();
    let bad_signal = StopOptions {
        signal: 0,
        ..StopOptions::default()
    };
    let e = stop(rt.path(), "x", &bad_signal).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("signal"), "{e}");
    let e = stop(rt.path(), "../x", &StopOptions::default()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let (code, _, stderr) = firma_stop(rt.path(), &["x", "--signal", "NOPE"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("NOPE"), "{stderr}");
}

#[test]
fn two_concurrent_cli_stops_signal_once_and_neither_fails() {
    let rt = runtime();
    let mut child = marked(rt.path(), "cli-twice", sleeper());
    let dir = rt.path().to_str().unwrap();
    let spawn = || {
        Command::new(FIRMA)
            .args([
                "--runtime-dir",
                dir,
                "sidecar",
                "stop",
                "cli-twice",
                "--json",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let mut sent = 0;
    let mut collected = 0;
    for p in [a, b] {
        let out = p.wait_with_output().unwrap();
        let code = out.status.code().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        // 0: it stopped (or saw stopped) the sidecar; 1: the other one had
        // already collected the marker. Never an error.
        assert!(code == 0 || code == 1, "exit {code}: {text}");
        let outs: Vec<Option<StopOutcome>> = serde_json::from_str(&text).unwrap();
        for o in outs.into_iter().flatten() {
            sent += o.signals.len();
            collected += usize::from(o.collected);
        }
    }
    assert_eq!((sent, collected), (1, 1));
    assert_eq!(gone_by(&mut child), libc::SIGTERM);
}

/// `--signal` is parsed strictly: `SIGRTMIN+-30` once read as SIGRTMIN - 30
/// (SIGILL) and was sent. Each malformed form exits 2 naming the value and
/// saying why, and the sidecar is not signalled; `SIGRTMAX-N` works.
#[test]
fn malformed_signal_names_exit_2_with_a_clear_message_and_send_nothing() {
    let rt = runtime();
    let mut child = marked(rt.path(), "strict", sleeper());
    let pid = child.id();
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let cases = [
        ("SIGRTMIN+-30", "plain ASCII digits"),
        ("SIGRTMIN+-1", "plain ASCII digits"),
        ("SIGRTMIN++1", "plain ASCII digits"),
        (
            &format!("SIGRTMIN+{}", max - min + 1),
            "outside the real-time signals",
        ),
        (
            &format!("SIGRTMAX-{}", max - min + 1),
            "outside the real-time signals",
        ),
        ("SIGRTMAX--1", "plain ASCII digits"),
        ("SIGRTMIN-1", "not a signal name"),
        ("+15", "no sign"),
        ("-15", "no sign"),
        (" 15 ", "no sign, space"),
        ("015", "leading zero"),
        ("", "empty"),
        ("SIG TERM", "no sign, space"),
        ("TERM\n", "no sign, space"),
    ];
    for (bad, why) in cases {
        // `--signal=VALUE`, so a leading '-' reaches the parser.
        let arg = format!("--signal={bad}");
        let (code, stdout, stderr) = firma_stop(rt.path(), &["strict", &arg, "--grace-ms", "100"]);
        assert_eq!(code, 2, "{bad:?}: {stdout}{stderr}");
        assert!(stderr.contains("signal"), "{bad:?}: {stderr}");
        assert!(stderr.contains(why), "{bad:?}: {stderr}");
        assert!(stderr.contains(&format!("{bad:?}")), "{bad:?}: {stderr}");
        assert!(stdout.is_empty(), "{bad:?}: {stdout}");
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(alive(pid), "a malformed --signal was sent");
    assert_eq!(run_names(rt.path()), ["strict"]);
    // The symmetric form kill(1) prints is accepted: SIGRTMAX-N.
    let (code, stdout, stderr) = firma_stop(
        rt.path(),
        &[
            "strict",
            &format!("--signal=SIGRTMAX-{}", max - min),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let outs: Vec<StopOutcome> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outs[0].signals, ["SIGRTMIN"]);
    assert!(outs[0].exited && outs[0].collected, "{outs:?}");
    assert_eq!(gone_by(&mut child), min);
}

// ---------------------------------------------------------------------
// The stop lock: in a directory only the caller can write, never one the
// marker's owner (or anyone else) can hold.

const NOBODY: u32 = 65534;

/// `setpriv` as `uid` (its own group, no others), running `program`.
fn as_user(uid: u32, program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(program);
    cmd
}

/// An example sidecar run by `uid` in `rt` (which `uid` owns): the child
/// and its marker directory, once it printed `ready`.
fn sidecar_as(uid: u32, rt: &Path, id: &str) -> (Reaped, std::path::PathBuf) {
    let mut child = as_user(uid, SIDECAR)
        .arg("--runtime-dir")
        .arg(rt)
        .args(["--id", id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    let child = Reaped(child);
    let marker = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("sidecar {id} did not become ready: {line:?}"))
        .trim_end()
        .into();
    (child, marker)
}

/// `flock PATH` held by a process of `uid` (`flock --no-fork`, then a
/// shell that says so and sleeps), returned once the lock is held.
fn flock_held_by(uid: u32, path: &Path) -> Reaped {
    let mut child = as_user(uid, "flock")
        .arg("--no-fork")
        .arg(path)
        .args(["sh", "-c", "echo locked; exec sleep 60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    assert_eq!(line, "locked\n", "flock {} as {uid}", path.display());
    Reaped(child)
}

/// The name of the lock directory of `rt`'s `run/` in a lock root:
/// `<dev>-<ino>` in hex.
fn lock_key(rt: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(rt.join("run")).unwrap();
    format!("{:x}-{:x}", m.dev(), m.ino())
}

/// A sidecar's owner can `flock` its own marker directory. The stop lock
/// once was that very flock: root's stop then only waited for an exit
/// nobody caused, sent nothing, and failed after grace + 5 s saying "still
/// running 5000 ms after SIGKILL". Now the owner's lock is nothing to the
/// stop: SIGTERM goes at once, and the lock root's own lock leaves nothing
/// behind in `/run/firma-stop-locks` (0700, root's).
#[test]
fn the_markers_owner_holding_a_lock_on_it_cannot_delay_roots_stop() {
    let rt = root_runtime("a sidecar run by another user");
    std::os::unix::fs::chown(rt.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let (mut sc, marker) = sidecar_as(NOBODY, rt.path(), "owned");
    let pid = sc.0.id();
    // The owner locks its marker directory, run/ and metadata.toml.
    let _held: Vec<Reaped> = [
        marker.clone(),
        rt.path().join("run"),
        marker.join("metadata.toml"),
    ]
    .iter()
    .map(|p| flock_held_by(NOBODY, p))
    .collect();

    let start = Instant::now();
    let out = stop(rt.path(), "owned", &opts(3_000)).unwrap().unwrap();
    let took = start.elapsed();
    assert_eq!(out.pid, pid);
    assert_eq!(out.signals, ["SIGTERM"], "{out:?}");
    assert!(out.exited && !out.killed, "{out:?}");
    assert!(
        took < Duration::from_millis(2_500),
        "the stop waited {took:?}: {out:?}"
    );
    assert!(
        sc.0.wait().unwrap().success(),
        "the sidecar exits 0 on SIGTERM"
    );
    assert!(!marker.exists());

    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = Path::new("/run/firma-stop-locks");
    let m = std::fs::symlink_metadata(root).unwrap();
    assert!(m.is_dir());
    assert_eq!((m.uid(), m.permissions().mode() & 0o7777), (0, 0o700));
    assert!(!root.join(lock_key(rt.path())).exists(), "a lock was left");
}

/// A non-root caller's lock root falls back to `/tmp/firma-stop-locks-<euid>`
/// (without `XDG_RUNTIME_DIR`), a name anyone may take first. Taken by
/// another user — a directory of its own holding a locked lock file, or a
/// symlink to a directory that would pass every check, where another user
/// holds the lock — it is not used: the stop goes on unserialised, and
/// signals at once.
#[test]
fn a_squatted_lock_directory_neither_delays_nor_vetoes_a_users_stop() {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};
    let rt = root_runtime("a squatter and a sidecar of other users");
    chown(rt.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let squat = std::path::PathBuf::from(format!("/tmp/firma-stop-locks-{NOBODY}"));
    let elsewhere = tempfile::tempdir().unwrap();
    let clear = |p: &Path| {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if m.is_dir() {
                std::fs::remove_dir_all(p).unwrap();
            } else {
                std::fs::remove_file(p).unwrap();
            }
        }
    };
    let squatter = 4242;
    for variant in ["another user's directory", "a symlink"] {
        let id = if variant == "a symlink" {
            "sq-link"
        } else {
            "sq-dir"
        };
        let (mut sc, marker) = sidecar_as(NOBODY, rt.path(), id);
        let key = lock_key(rt.path());
        clear(&squat);
        let lock_dir = if variant == "a symlink" {
            // A directory of the stopping user's own, not writable by
            // others: followed, it would pass the checks.
            let target = elsewhere.path().join("target");
            std::fs::create_dir_all(target.join(&key)).unwrap();
            for d in [target.clone(), target.join(&key)] {
                chown(&d, Some(NOBODY), Some(NOBODY)).unwrap();
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            symlink(&target, &squat).unwrap();
            target.join(&key)
        } else {
            std::fs::create_dir_all(squat.join(&key)).unwrap();
            for d in [squat.clone(), squat.join(&key)] {
                chown(&d, Some(squatter), Some(squatter)).unwrap();
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
            }
            squat.join(&key)
        };
        let lock_file = lock_dir.join(id);
        std::fs::write(&lock_file, "").unwrap();
        std::fs::set_permissions(&lock_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        if variant == "a symlink" {
            // The very file the user's own stop would create.
            chown(&lock_file, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let _held = flock_held_by(squatter, &lock_file);

        let start = Instant::now();
        let out = as_user(NOBODY, FIRMA)
            .env_remove("XDG_RUNTIME_DIR")
            .arg("--runtime-dir")
            .arg(rt.path())
            .args(["sidecar", "stop", id, "--grace-ms", "3000", "--json"])
            .output()
            .unwrap();
        let took = start.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{variant}: {stdout}{stderr}");
        let outs: Vec<StopOutcome> = serde_json::from_str(&stdout).unwrap();
        assert_eq!(outs[0].signals, ["SIGTERM"], "{variant}: {outs:?}");
        assert!(outs[0].exited, "{variant}: {outs:?}");
        assert!(
            took < Duration::from_millis(2_500),
            "{variant}: the stop waited {took:?}"
        );
        assert!(sc.0.wait().unwrap().success());
        assert!(!marker.exists());
        // The squatter's name and files are left as they were.
        assert!(lock_file.exists(), "{variant}");
    }
    clear(&squat);
}

/// A bash that notes each SIGTERM in `flag` and keeps running: it shows
/// when a stop has signalled. Returned once its trap is set.
fn term_noter(flag: &Path) -> Child {
    let mut child = Command::new("bash")
        .args([
            "-c",
            "trap 'echo >> \"$0\"' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .arg(flag)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(first_line(&mut child), "ready\n");
    child
}

/// A stop that finds another stop of the same marker under way only
/// waits; when its wait ends first, it says so truthfully: no signal sent
/// by it, `exited: false`, and never "after SIGKILL" (a SIGKILL nobody had
/// sent yet). The first stop then finishes the job with its own SIGKILL.
#[test]
fn a_stop_that_waits_for_another_never_claims_a_sigkill() {
    let rt = root_runtime("two stops through the root lock directory");
    let flag = rt.path().join("signalled");
    let mut child = Reaped(marked(rt.path(), "slow", term_noter(&flag)));
    let first = std::thread::scope(|s| {
        let first = s.spawn(|| stop(rt.path(), "slow", &opts(7_500)).unwrap().unwrap());
        wait_until("the first stop sent SIGTERM", || flag.exists());
        // This one's wait is 0 + 5 s: it ends while the first is in its grace.
        let (code, stdout, stderr) = firma_stop(rt.path(), &["slow", "--grace-ms", "0", "--json"]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        let outs: Vec<StopOutcome> = serde_json::from_str(&stdout).unwrap();
        let o = &outs[0];
        assert!(
            o.signals.is_empty() && !o.exited && !o.killed && !o.collected,
            "{o:?}"
        );
        assert!(o.waited_ms >= 5_000, "{o:?}");
        assert!(!stderr.contains("SIGKILL"), "{stderr}");
        assert!(
            stderr.contains("still running after")
                && stderr
                    .contains("this call sent no signal: another stop of it holds the stop lock"),
            "{stderr}"
        );
        first.join().unwrap()
    });
    assert_eq!(first.signals, ["SIGTERM", "SIGKILL"], "{first:?}");
    assert!(first.exited && first.killed && first.collected, "{first:?}");
    assert_eq!(gone_by(&mut child.0), libc::SIGKILL);
    assert_eq!(run_names(rt.path()), Vec::<String>::new());
}

/// When the stop under way ends with the process still running (it was
/// `kill: false`), a stop that was waiting for it takes the lock and does
/// what its own options say: here SIGTERM, then SIGKILL.
#[test]
fn a_waiting_stop_takes_over_when_the_other_one_leaves_the_process_running() {
    let rt = root_runtime("two stops through the root lock directory");
    let flag = rt.path().join("signalled");
    let mut child = Reaped(marked(rt.path(), "handover", term_noter(&flag)));
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| {
            let no_kill = StopOptions {
                kill: false,
                ..opts(1_500)
            };
            stop(rt.path(), "handover", &no_kill).unwrap().unwrap()
        });
        wait_until("the first stop sent SIGTERM", || flag.exists());
        let second = stop(rt.path(), "handover", &opts(200)).unwrap().unwrap();
        (first.join().unwrap(), second)
    });
    assert_eq!(first.signals, ["SIGTERM"], "{first:?}");
    assert!(!first.exited && !first.collected, "{first:?}");
    assert_eq!(second.signals, ["SIGTERM", "SIGKILL"], "{second:?}");
    assert!(
        second.exited && second.killed && second.collected,
        "{second:?}"
    );
    // It waited for the first (about 1.5 s), then its own 200 ms grace.
    assert!(second.waited_ms >= 1_000, "{second:?}");
    assert_eq!(gone_by(&mut child.0), libc::SIGKILL);
    let notes = std::fs::read_to_string(&flag).unwrap();
    assert_eq!(notes.lines().count(), 2, "one SIGTERM from each stop");
}

/// Rewrites the marker of a running sidecar with `change` applied to its
/// metadata (its socket still served by the sidecar).
fn rewrite(marker: &Path, change: impl FnOnce(&mut MetadataFile)) {
    let path = marker.join("metadata.toml");
    let mut meta: MetadataFile = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut meta);
    std::fs::write(&path, toml::to_string(&meta).unwrap()).unwrap();
}

/// The marker's own socket proves a process only where the identity
/// fields decide nothing: a serving sidecar whose marker records other
/// start ticks is `pid_reused`, one whose marker records another boot is
/// from another boot (collected, never signalled) — the listener of the
/// socket, at the recorded pid, notwithstanding.
#[test]
fn a_socket_never_overrides_a_verdict_of_the_identity_fields() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "fields", &[]);
    rewrite(&sc.marker, |m| {
        m.pid_start_ticks = m.pid_start_ticks.map(|t| t + 9);
    });
    let err = stop(rt.path(), "fields", &opts(5_000)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PidReused, "{err}");
    assert!(alive(sc.pid), "the sidecar was signalled");
    rewrite(&sc.marker, |m| {
        m.pid_start_ticks = m.pid_start_ticks.map(|t| t - 9);
        m.boot_id = Some("00000000-0000-4000-8000-000000000000".into());
    });
    let out = stop(rt.path(), "fields", &opts(5_000)).unwrap().unwrap();
    assert!(out.signals.is_empty(), "{out:?}");
    assert!(out.exited && out.collected, "{out:?}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(alive(sc.pid), "the sidecar was signalled");
}
