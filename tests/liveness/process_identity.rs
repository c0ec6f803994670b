//! docs/design.md, "Invariants" (4): never call a pid dead on a missing /proc entry alone. (Zombies,
//! dead and reused pids, other boots and out-of-range pids are scenarios of
//! the conformance suite, tests/conformance, checked on every surface.)

use crate::common::*;

/// With /proc mounted `hidepid=2`, an unprivileged caller cannot see root's
/// processes in /proc; kill(pid, 0) answers EPERM, which proves the process
/// exists. The marker must be neither reported stopped nor collected.
#[test]
fn process_hidden_from_proc_is_alive_via_eperm() {
    need_root("a private /proc mount");
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
