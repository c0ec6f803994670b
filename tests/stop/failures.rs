//! docs/design.md, "Stop": an error from `pidfd_open` or
//! `pidfd_send_signal` other than `ESRCH` is never read as "the process
//! exited" (nothing is collected, the process lives on); `--signal KILL`
//! with a short grace; `waited_ms`.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use firma_stack::sidecar_markers::{StopOutcome, create_marker};

use crate::common::kit::*;
use crate::common::*;

/// A live `sleep` with a marker the core's writer wrote for it (its
/// identity recorded, so `stop` would signal it).
fn marked_sleeper(rt: &Path, id: &str) -> Child {
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    create_marker(rt, &meta(id, child.id())).unwrap();
    child
}

/// Errno values the testkit takes by number (it names only the common
/// ones).
const ESRCH: &str = "3";
const ENODEV: &str = "19";

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks existence.
    let exists = unsafe { libc::kill(pid as i32, 0) } == 0;
    exists && proc_state(pid) != "Z"
}

fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The error code of `firma sidecar stop --json`'s one answer.
fn error_code(stdout: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("firma printed no JSON ({e}): {stdout:?}"));
    v[0]["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {stdout}"))
        .to_owned()
}

/// `firma sidecar stop ID --grace-ms 200 --json` on `rt`, with `syscall`
/// failing with `errno` (the testkit's seccomp filter).
fn stop_with_failing(rt: &Path, id: &str, syscall: &str, errno: &str) -> std::process::Output {
    let rt = rt.to_str().unwrap();
    let args = [
        "--runtime-dir",
        rt,
        "sidecar",
        "stop",
        id,
        "--grace-ms",
        "200",
        "--json",
    ];
    firma_seccomp(errno, &[syscall], &args)
}

/// A marked sleeper stopped by `firma sidecar stop ID --json` with
/// `syscall` failing with `errno`: what the stop printed, and the sleeper.
struct StoppedUnder {
    rt: tempfile::TempDir,
    id: String,
    child: Child,
    pid: u32,
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

fn stop_under(syscall: &str, errno: &str) -> StoppedUnder {
    let rt = runtime();
    let id = format!("{syscall}-{errno}")
        .replace('_', "-")
        .to_lowercase();
    let child = marked_sleeper(rt.path(), &id);
    let pid = child.id();
    let out = stop_with_failing(rt.path(), &id, syscall, errno);
    StoppedUnder {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        rt,
        id,
        child,
        pid,
    }
}

/// Runs `firma sidecar stop ID --json` with `syscall` failing with `errno`
/// and checks nothing was taken for an exit: an error with `code`, the
/// process alive, the marker in place.
fn refused_stop(syscall: &str, errno: &str, code: &str) {
    let StoppedUnder {
        rt,
        id,
        child,
        pid,
        status,
        stdout,
        stderr,
    } = stop_under(syscall, errno);
    assert_eq!(
        status,
        Some(2),
        "{syscall} failing with {errno}: {stdout}{stderr}"
    );
    assert_eq!(error_code(&stdout), code, "{syscall}/{errno}: {stderr}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(alive(pid), "{syscall}/{errno}: the process was signalled");
    assert_eq!(run_names(rt.path()), [id.as_str()], "{syscall}/{errno}");
    assert!(has_metadata(&rt.path().join("run").join(&id)));
    end(child);
}

#[test]
fn pidfd_open_failing_with_eperm_enosys_or_emfile_is_an_error_never_an_exit() {
    for (errno, code) in [
        ("EPERM", "pidfd_unavailable"),
        ("ENOSYS", "pidfd_unavailable"),
        ("EMFILE", "io"),
        ("EINVAL", "io"),
        (ENODEV, "pidfd_unavailable"),
    ] {
        refused_stop("pidfd_open", errno, code);
    }
}

#[test]
fn pidfd_send_signal_failing_with_eperm_or_enosys_is_an_error_never_an_exit() {
    // ENODEV means "no pidfds" only from pidfd_open.
    let table = [
        ("EPERM", "not_authorized"),
        ("ENOSYS", "pidfd_unavailable"),
        ("EINVAL", "io"),
        (ENODEV, "io"),
    ];
    for (errno, code) in table {
        refused_stop("pidfd_send_signal", errno, code);
    }
}

/// `ESRCH` is the kernel's word that the process has exited, from
/// `pidfd_open` (gone since the judgement) and from `pidfd_send_signal`
/// (gone before the signal): either way this call sent nothing and says
/// the process exited, never an error. The process, made to look gone by
/// the seccomp filter, was not signalled.
#[test]
fn esrch_from_pidfd_open_or_pidfd_send_signal_is_an_exit_with_nothing_sent() {
    for syscall in ["pidfd_open", "pidfd_send_signal"] {
        let StoppedUnder {
            child,
            pid,
            status,
            stdout,
            stderr,
            ..
        } = stop_under(syscall, ESRCH);
        assert_eq!(status, Some(0), "{syscall}: {stdout}{stderr}");
        let outs: Vec<StopOutcome> = serde_json::from_str(&stdout).unwrap();
        assert!(outs[0].signals.is_empty(), "{syscall}: {stdout}");
        assert!(outs[0].exited && !outs[0].killed, "{syscall}: {stdout}");
        std::thread::sleep(Duration::from_millis(50));
        assert!(alive(pid), "{syscall}: the process was signalled");
        end(child);
    }
}

/// Under every descriptor limit from 3 up (`prlimit --nofile`, the
/// kernel's own `EMFILE`), `firma sidecar stop` either stops the process
/// (and collects its marker) or fails with the marker in place: running
/// out of descriptors anywhere on the way (the marker, `/proc`, the
/// pidfd's slot taken by the re-check after it) is never an exit. (`pidfd_open` itself cannot be the
/// one to hit the limit this way — every earlier step needs the same free
/// slot — so the seccomp test above makes it fail with `EMFILE` directly.)
#[test]
fn emfile_from_a_descriptor_limit_is_an_error_never_an_exit() {
    let rt = runtime();
    let mut child = marked_sleeper(rt.path(), "emfile");
    let pid = child.id();
    let mut failures = 0;
    let mut stopped = false;
    let mut signalled_earlier = false;
    for limit in 3..64 {
        let args = ["sidecar", "stop", "emfile", "--grace-ms", "2000", "--json"];
        let (code, stdout, stderr) = firma_with_nofile(limit, rt.path(), &args);
        if code == Some(0) {
            let outs: Vec<StopOutcome> = serde_json::from_str(&stdout).unwrap();
            // Signalled by this call, or by an earlier one that then failed
            // (and so left the marker for this one).
            let want: &[&str] = if signalled_earlier { &[] } else { &["SIGTERM"] };
            assert_eq!(outs[0].signals, want, "limit {limit}: {stdout}");
            assert!(
                outs[0].exited && outs[0].collected,
                "limit {limit}: {stdout}"
            );
            stopped = true;
            break;
        }
        failures += 1;
        // A failed call never collected the marker, whatever it had done.
        assert_eq!(run_names(rt.path()), ["emfile"], "limit {limit}: {stderr}");
        signalled_earlier |= !alive(pid);
    }
    assert!(stopped, "no descriptor limit below 64 let the stop through");
    assert!(
        failures >= 3,
        "only {failures} limits failed: the sweep proves little"
    );
    child.wait().unwrap();
}

/// A process that ignores SIGTERM, returned once the kernel shows it.
fn term_ignorer(rt: &Path, id: &str) -> Child {
    let child = Command::new("bash")
        .args(["-c", "trap '' TERM; exec sleep 60"])
        .spawn()
        .unwrap();
    wait_until("bash to ignore SIGTERM and exec sleep", || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        status.contains("Name:\tsleep")
    });
    create_marker(rt, &meta(id, child.id())).unwrap();
    child
}

/// `firma sidecar stop ID --signal KILL --grace-ms 0 --json`: exit 0,
/// one SIGKILL sent, and the sidecar reported killed, exited and collected.
fn kill_with_no_grace(rt: &Path, id: &str) {
    let args = [
        "sidecar",
        "stop",
        id,
        "--signal",
        "KILL",
        "--grace-ms",
        "0",
        "--json",
    ];
    let (code, stdout, stderr) = firma_in(rt, &args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let outs: Vec<StopOutcome> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outs[0].signals, ["SIGKILL"], "{stdout}");
    let o = &outs[0];
    assert!(o.killed && o.exited && o.collected, "{stdout}");
}

/// `--signal KILL --grace-ms 0`: one SIGKILL, never a second one, and the
/// exit is still waited for (`KILL_WAIT`), so it is reported exited and
/// collected although the grace period was over at once.
#[test]
fn signal_kill_with_no_grace_is_sent_once_and_still_waited_for() {
    let rt = runtime();
    let mut child = term_ignorer(rt.path(), "kill0");
    kill_with_no_grace(rt.path(), "kill0");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert_eq!(run_names(rt.path()), Vec::<String>::new());
}

/// `waited_ms` is the time spent waiting: at least the grace period a
/// SIGTERM-ignoring process used up, never more than the whole call took.
#[test]
fn waited_ms_is_the_time_spent_waiting() {
    let rt = runtime();
    let mut child = term_ignorer(rt.path(), "waits");
    let start = Instant::now();
    let (code, stdout, stderr) = firma_in(
        rt.path(),
        &["sidecar", "stop", "waits", "--grace-ms", "300", "--json"],
    );
    let wall = start.elapsed().as_millis() as u64;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let outs: Vec<StopOutcome> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outs[0].signals, ["SIGTERM", "SIGKILL"]);
    assert!(
        outs[0].waited_ms >= 300 && outs[0].waited_ms <= wall,
        "waited {} ms, grace 300 ms, the call took {wall} ms",
        outs[0].waited_ms
    );
    child.wait().unwrap();
}

/// The descriptors of this process, as (number, link target).
fn own_fds() -> Vec<(String, String)> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((
                e.file_name().into_string().unwrap(),
                target.display().to_string(),
            ))
        })
        .collect()
}

/// The descriptors a program started now inherits (`ls /proc/self/fd`).
fn inherited() -> Vec<String> {
    let out = Command::new("ls").arg("/proc/self/fd").output().unwrap();
    let mut fds: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    fds.sort();
    fds
}

/// While `stop` holds its pidfd and its lock (waiting out the grace
/// period of a process that ignores SIGTERM), a program started by
/// another thread of the same process inherits none of them: every
/// descriptor the core holds is close-on-exec.
#[test]
fn the_descriptors_stop_holds_are_close_on_exec() {
    use firma_stack::sidecar_markers::{StopOptions, stop};
    let rt = runtime();
    let mut child = term_ignorer(rt.path(), "cloexec");
    let before = inherited();
    let path = rt.path().to_owned();
    let stopper = std::thread::spawn(move || {
        let opts = StopOptions {
            grace: Duration::from_millis(2000),
            ..StopOptions::default()
        };
        stop(&path, "cloexec", &opts).unwrap().unwrap()
    });
    // Until the stop holds its pidfd and its lock (it then waits out the
    // grace period).
    wait_until("stop to hold a pidfd and its lock", || {
        let fds = own_fds();
        fds.iter().any(|(_, t)| t.contains("pidfd"))
            && fds.iter().any(|(_, t)| t.ends_with("/cloexec"))
    });
    let held: Vec<_> = own_fds();
    let during = inherited();
    let out = stopper.join().unwrap();
    // What a program inherits without the core's descriptors open (the
    // test harness may hand down a jobserver pipe or two): the same.
    assert_eq!(
        during, before,
        "a started program inherited the core's descriptors; this process held {held:?}"
    );
    assert_eq!(out.signals, ["SIGTERM", "SIGKILL"], "{out:?}");
    child.wait().unwrap();
}

/// Whether process `pid` holds a pidfd.
fn holds_a_pidfd(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .any(|t| t.to_string_lossy().contains("pidfd"))
        })
        .unwrap_or(false)
}

/// Without `openat2` (seccomp `ENOSYS`), the check that the marker is
/// still the one judged does not follow a symlink either: a stop waiting
/// for another, its `metadata.toml` meanwhile swapped for a symlink to the
/// very file it judged (moved aside), finds the lock free when the other
/// stop gives up, but not the marker it judged — it never takes over and
/// sends nothing.
#[test]
fn without_openat2_a_metadata_swapped_for_a_symlink_is_not_the_one_judged() {
    use firma_stack::sidecar_markers::{StopOptions, stop};
    let testkit = testkit(); // (built first, when it must be, not while timing counts)
    let rt = runtime();
    let child = term_ignorer(rt.path(), "swapped");
    let pid = child.id();
    // The first stop: SIGTERM (ignored), 3 s of grace, no SIGKILL.
    let path = rt.path().to_owned();
    let first = std::thread::spawn(move || {
        let opts = StopOptions {
            grace: Duration::from_secs(3),
            kill: false,
            ..StopOptions::default()
        };
        stop(&path, "swapped", &opts).unwrap().unwrap()
    });
    wait_until("the first stop to hold its lock", || {
        own_fds().iter().any(|(_, t)| t.ends_with("/swapped"))
    });
    // The second, without openat2, waits for the first.
    let second = Command::new(testkit)
        .args(["seccomp", "--errno", "ENOSYS", "--syscall", "openat2", "--"])
        .arg(FIRMA)
        .args(["--runtime-dir", rt.path().to_str().unwrap()])
        .args(["sidecar", "stop", "swapped", "--grace-ms", "4000"])
        .args(["--no-kill", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Holding a pidfd, it has judged the marker.
    wait_until("the second stop to pin the process", || {
        holds_a_pidfd(second.id())
    });
    let marker = rt.path().join("run/swapped");
    std::fs::rename(marker.join("metadata.toml"), marker.join("judged.toml")).unwrap();
    std::os::unix::fs::symlink("judged.toml", marker.join("metadata.toml")).unwrap();
    assert!(
        !first.is_finished(),
        "the first stop ended before the swap ({:?} after the second started): this test proves nothing",
        started.elapsed()
    );
    let out = first.join().unwrap();
    assert_eq!(out.signals, ["SIGTERM"], "{out:?}");
    assert!(!out.exited, "{out:?}");
    let done = second.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        !stderr.contains("firma-testkit seccomp: refused"),
        "the kernel refused the seccomp filter: {stderr}"
    );
    let outs: Vec<StopOutcome> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    assert!(outs[0].signals.is_empty(), "it took over: {stdout}");
    assert!(!outs[0].exited, "{stdout}");
    assert!(alive(pid));
    end(child);
}

/// A process of many threads, which takes the kernel a while to take down
/// after SIGKILL (every thread must exit), returned once all are running.
fn many_threads(rt: &Path, id: &str) -> Reaped {
    let child = child::python_ready(
        "import threading, time\n\
         for _ in range(2000):\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n\
         print('ready', flush=True)\n\
         time.sleep(60)\n",
        &[] as &[&str],
        "two thousand threads",
    );
    create_marker(rt, &meta(id, child.0.id())).unwrap();
    child
}

/// `--signal KILL --grace-ms 0` on a process slow to die (two thousand
/// threads to take down): the exit is still waited for (`KILL_WAIT`), so
/// it is reported exited and collected, not "still running". (The
/// correct code cannot fail this; one that did not wait after its only
/// SIGKILL fails it on nearly every run.)
#[test]
fn signal_kill_with_no_grace_waits_for_a_process_slow_to_die() {
    let rt = runtime();
    let mut child = many_threads(rt.path(), "slow");
    kill_with_no_grace(rt.path(), "slow");
    child.0.wait().unwrap();
}

/// A caller who may not read the process's credentials — a non-root user
/// under `/proc` mounted `hidepid=1` (a private mount namespace), stopping
/// a root process its own marker names, with the identity opt-out — is
/// refused `not_authorized`: credentials that cannot be read are never
/// taken for a process gone (nothing collected, the process alive).
#[test]
fn credentials_hidden_by_hidepid_are_a_refusal_never_an_exit() {
    use crate::common::users::TestUser;
    need_root("a throwaway user and a private /proc");
    let rt = runtime();
    let child = marked_sleeper(rt.path(), "hidden");
    let pid = child.id();
    let u = TestUser::new("hidecred");
    u.own(rt.path());
    let script = format!(
        "mount -t proc -o hidepid=1 proc /proc && \
         exec setpriv --reuid {uid} --regid {gid} --clear-groups \
         {FIRMA} --runtime-dir {dir} sidecar stop hidden --no-identity-check \
         --grace-ms 200 --json",
        uid = u.uid,
        gid = u.gid,
        dir = rt.path().display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert_eq!(error_code(&stdout), "not_authorized", "{stderr}");
    assert!(stdout.contains("credentials cannot be read"), "{stdout}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(alive(pid), "the process was signalled");
    assert_eq!(run_names(rt.path()), ["hidden"]);
    end(child);
}
