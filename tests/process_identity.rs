//! DESIGN §4.4: never signal or probe the wrong process, never reap another
//! process's children, never call a pid dead on a missing /proc entry alone.

mod common;

use common::*;
use firma_stack::sidecar_markers::{StackError, State, gc_stale, get, list};

fn proc_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .to_owned(),
    )
}

fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn zombie_is_stopped_and_is_never_reaped_by_the_library() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "zombie", &[]);
    let pid = sc.pid;
    let mut child = sc.kill_leave_zombie();
    assert_eq!(proc_state(pid).as_deref(), Some("Z"));
    assert_eq!(
        get(rt.path(), "zombie").unwrap().unwrap().state,
        State::Stopped
    );
    assert_eq!(gc_stale(rt.path()).unwrap(), ["zombie"]);
    // Still a zombie: nobody but its parent (this test) waited for it.
    assert_eq!(proc_state(pid).as_deref(), Some("Z"));
    child.wait().unwrap();
}

#[test]
fn reused_pid_with_other_start_time_is_stopped() {
    let rt = runtime();
    // A live process (this test) whose recorded start time differs: the pid
    // was reused since the marker was written.
    let me = std::process::id();
    let ticks = start_ticks(me);
    write_marker(
        rt.path(),
        "reused",
        &metadata(
            "reused",
            me.into(),
            &format!("pid_start_ticks = {}\n", ticks + 7),
        ),
    );
    write_marker(
        rt.path(),
        "same",
        &metadata("same", me.into(), &format!("pid_start_ticks = {ticks}\n")),
    );
    assert_eq!(
        get(rt.path(), "reused").unwrap().unwrap().state,
        State::Stopped
    );
    assert_ne!(
        get(rt.path(), "same").unwrap().unwrap().state,
        State::Stopped
    );
    let ids: Vec<_> = list(rt.path())
        .unwrap()
        .into_iter()
        .map(|e| e.sandbox_id)
        .collect();
    assert_eq!(ids, ["same"]);
    assert_eq!(run_names(rt.path()), ["same"]);
}

#[test]
fn marker_from_another_boot_is_stopped() {
    let rt = runtime();
    let me = std::process::id();
    write_marker(
        rt.path(),
        "old-boot",
        &metadata(
            "old-boot",
            me.into(),
            "boot_id = \"00000000-0000-0000-0000-000000000000\"\n",
        ),
    );
    assert_eq!(
        get(rt.path(), "old-boot").unwrap().unwrap().state,
        State::Stopped
    );
}

#[test]
fn dead_pid_is_stopped() {
    let rt = runtime();
    write_stale(rt.path(), "gone", dead_pid());
    assert_eq!(
        get(rt.path(), "gone").unwrap().unwrap().state,
        State::Stopped
    );
}

#[test]
fn out_of_range_pids_are_parse_errors_and_never_signalled() {
    let rt = runtime();
    for (id, pid) in [
        ("zero", "0"),
        ("minus-one", "-1"),
        ("negative", "-42"),
        ("too-big", "2147483648"),
        ("huge", "99999999999"),
        ("text", "\"1\""),
    ] {
        write_marker(
            rt.path(),
            id,
            &metadata(id, 0, "").replace("pid = 0", &format!("pid = {pid}")),
        );
        match get(rt.path(), id) {
            Err(StackError::MarkerParse { reason, .. }) => {
                assert!(reason.contains("pid"), "{id}: {reason}")
            }
            other => panic!("{id}: expected a parse error, got {other:?}"),
        }
    }
    // We are still alive (kill(0|-1, …) would have hit our process group),
    // the markers are all kept, and list skips them.
    assert!(list(rt.path()).unwrap().is_empty());
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert_eq!(run_names(rt.path()).len(), 6);
}

#[test]
fn pid_max_boundary_is_accepted() {
    let rt = runtime();
    write_marker(rt.path(), "max", &metadata("max", 2147483647, ""));
    // Almost certainly no such process: stopped, not a parse error.
    assert_eq!(
        get(rt.path(), "max").unwrap().unwrap().state,
        State::Stopped
    );
}

/// With /proc mounted `hidepid=2`, an unprivileged caller cannot see root's
/// processes in /proc; kill(pid, 0) answers EPERM, which proves the process
/// exists. The marker must be neither reported stopped nor collected.
#[test]
fn process_hidden_from_proc_is_alive_via_eperm() {
    if !is_root() {
        eprintln!("skipped: needs root for a private /proc mount");
        return;
    }
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t proc -o hidepid=2 proc /proc"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: cannot mount a private /proc here");
        return;
    }
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "hidden", &[]);
    open_up(rt.path());
    let script = format!(
        "mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid=65534 --regid=65534 --clear-groups \
         sh -c 'test ! -e /proc/{pid} || exit 90; {firma} --runtime-dir {rt} sidecar status --json; {firma} --runtime-dir {rt} sidecar gc --json'",
        pid = sc.pid,
        firma = FIRMA,
        rt = rt.path().display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status {:?}: {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let status = lines.next().unwrap();
    assert!(status.contains(r#""sandbox_id":"hidden""#), "{status}");
    assert!(!status.contains(r#""state":"stopped""#), "{status}");
    assert_eq!(lines.next(), Some("[]"));
    assert!(sc.marker.exists());
}
