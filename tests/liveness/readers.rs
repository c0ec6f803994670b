//! docs/design.md, "Liveness" and "Process identity", from readers the
//! kernel really constrains: a time namespace with nanosecond boottime
//! offsets, a reader that cannot read its own boot id, and `/proc` mounted
//! with `hidepid=2`.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use firma_stack::sidecar_markers::create_marker;

use crate::common::users::TestUser;
use crate::common::*;

/// `(name, reason)` of every report of `firma sidecar inspect --json`
/// as `cmd` runs it (a shell line, for namespaces and users); fails with
/// its stderr unless it succeeded.
fn reasons(cmd: &mut Command) -> Vec<(String, String)> {
    name_reasons(&json_output(cmd, "inspect"))
}

fn inspect_cmd(rt: &Path) -> String {
    format!(
        "{FIRMA} --runtime-dir {} sidecar inspect --json",
        rt.display()
    )
}

/// `sh -c SCRIPT` in a private mount namespace of its own (what it
/// mounts is seen by it alone, and gone when it exits).
fn in_private_mount_ns(script: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", script]);
    cmd
}

/// `sh -c SCRIPT`.
fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

/// A live `sleep` and a marker for it, written by the core's writer (boot
/// id and start ticks recorded), not serving.
fn marked_sleeper(rt: &Path, id: &str) -> Child {
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    create_marker(rt, &meta(id, child.id())).unwrap();
    child
}

fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// With `/proc/sys/kernel/random/boot_id` unreadable to the reader (an
/// empty file bound over it in a private mount namespace), a recorded boot
/// id proves nothing either way: a live sidecar and a dead pid that record
/// one are both `unverifiable`, never stale; a dead pid recording none is
/// still provably gone.
#[test]
fn a_reader_without_its_own_boot_id_calls_a_recorded_one_unverifiable() {
    let rt = root_runtime("binding over boot_id in a mount namespace");
    let live = marked_sleeper(rt.path(), "live");
    let dead = dead_pid();
    let with_boot = format!("boot_id = \"{}\"\npid_start_ticks = 1\n", boot_id());
    write_marker(
        rt.path(),
        "dead-boot",
        &metadata("dead-boot", dead.into(), &with_boot),
    );
    write_marker(
        rt.path(),
        "dead-bare",
        &metadata("dead-bare", dead.into(), ""),
    );
    let script = format!(
        "mount --bind /dev/null /proc/sys/kernel/random/boot_id && \
         test ! -s /proc/sys/kernel/random/boot_id && exec {}",
        inspect_cmd(rt.path())
    );
    assert_eq!(
        reasons(&mut in_private_mount_ns(&script)),
        [
            ("dead-bare".into(), "process_gone".into()),
            ("dead-boot".into(), "unverifiable".into()),
            ("live".into(), "unverifiable".into()),
        ]
    );
    // The same markers from a reader that can read it.
    assert_eq!(
        reasons(&mut sh(&inspect_cmd(rt.path()))),
        [
            ("dead-bare".into(), "process_gone".into()),
            ("dead-boot".into(), "process_gone".into()),
            ("live".into(), "endpoint_missing".into()),
        ]
    );
    end(live);
}

/// Under `/proc` mounted `hidepid=2` (in a private mount namespace), an
/// unprivileged reader cannot see root's sidecar in `/proc`: the sidecar
/// is alive with its identity unchecked (`kill(pid, 0)` says `EPERM`), so a
/// non-serving one is `unhealthy` (`endpoint_missing`) — not `unknown`
/// (`unverifiable`), and not stale; nor is its identity foreign (the
/// reader is in the pid's namespace). A dead pid is still gone (`ESRCH`).
#[test]
fn under_hidepid_a_hidden_live_sidecar_is_alive_unchecked_not_unverifiable() {
    let user = TestUser::new("hidepid");
    let dir = tempfile::Builder::new()
        .prefix("firma-hidepid-")
        .tempdir()
        .unwrap();
    let rt = dir.path().join("rt");
    std::fs::create_dir(&rt).unwrap();
    let live = marked_sleeper(&rt, "hidden");
    write_stale(&rt, "gone", dead_pid());
    // The directory stays root's (which every user trusts), readable.
    open_up(dir.path());
    let script = format!(
        "mount -t proc -o hidepid=2 proc /proc && \
         exec setpriv --reuid={uid} --regid={gid} --clear-groups sh -c \
         'test ! -e /proc/{pid} && exec {cmd}'",
        uid = user.uid,
        gid = user.gid,
        pid = live.id(),
        cmd = inspect_cmd(&rt)
    );
    let v = json_output(&mut in_private_mount_ns(&script), "inspect");
    assert_eq!(
        name_reasons(&v),
        [
            ("gone".into(), "process_gone".into()),
            ("hidden".into(), "endpoint_missing".into()),
        ]
    );
    // Unchecked, as a hidden pid of the reader's own namespace is (which
    // the opt-out of `stop` may override), not foreign.
    let detail = v[1]["detail"].as_str().unwrap();
    assert!(
        detail.ends_with("identity not checked: /proc hides the process"),
        "{detail}"
    );
    end(live);
}

/// The example sidecar started in a fresh time namespace whose boottime
/// offset is `secs` s + `nanos` ns (written to `/proc/self/timens_offsets`
/// after `unshare(CLONE_NEWTIME)`; the exec enters it). Fails loudly when
/// the kernel refuses time namespaces.
fn timens_sidecar(rt: &Path, id: &str, secs: i64, nanos: i64) -> (Child, PathBuf) {
    let offsets = CString::new(format!("boottime {secs} {nanos}")).unwrap();
    let mut cmd = Command::new(SIDECAR);
    cmd.arg("--runtime-dir")
        .arg(rt)
        .args(["--id", id])
        .stdout(Stdio::piped());
    // SAFETY: only async-signal-safe calls (unshare, open, write, close)
    // between fork and exec; the buffers were made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWTIME) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(
                c"/proc/self/timens_offsets".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let b = offsets.as_bytes();
            let n = libc::write(fd, b.as_ptr().cast(), b.len());
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if n != b.len() as isize {
                return Err(err);
            }
            Ok(())
        })
    };
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("the kernel refused a time namespace with boottime {secs} s {nanos} ns: {e}; this test proves nothing without one")
    });
    let line = first_line(&mut child);
    let marker = PathBuf::from(
        line.strip_prefix("ready ")
            .unwrap_or_else(|| panic!("sidecar {id} did not become ready: {line:?}"))
            .trim_end(),
    );
    let seen = std::fs::read_to_string(format!("/proc/{}/timens_offsets", child.id())).unwrap();
    assert!(
        seen.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f == ["boottime", &secs.to_string(), &nanos.to_string()]
        }),
        "the sidecar is not in the time namespace asked for: {seen:?}"
    );
    (child, marker)
}

fn meta_line(marker: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(marker.join("metadata.toml")).unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{key} =")))
        .unwrap_or_else(|| panic!("{key} not recorded: {text}"))
        .to_owned()
}

/// Sidecars in time namespaces with a sub-tick offset (3 ms), a negative
/// one (−4.75 s) and a large one with nanoseconds (1000 s + 500 ns) are
/// `serving` to a reader in the initial time namespace: the offsets the
/// writer records bring their start ticks back to the reader's. A copy of
/// such a marker whose start ticks are two ticks off — the pid held by
/// another process — is `pid_reused`, not alive.
#[test]
fn time_namespace_sidecars_are_alive_and_a_reused_pid_in_one_is_not() {
    let rt = runtime();
    let cases = [
        ("subtick", 0, 3_000_000),
        ("negative", -5, 250_000_000),
        ("large", 1000, 500),
    ];
    let mut children = Vec::new();
    for (id, secs, nanos) in cases {
        let (child, marker) = timens_sidecar(rt.path(), id, secs, nanos);
        let recorded = meta_line(&marker, "boottime_offset_ns");
        let want = secs * 1_000_000_000 + nanos;
        assert_eq!(recorded, format!("boottime_offset_ns = {want}"), "{id}");
        children.push((Reaped(child), marker));
    }
    let reasons_now = || reasons(&mut sh(&inspect_cmd(rt.path())));
    assert_eq!(
        reasons_now(),
        [
            ("large".into(), "serving".into()),
            ("negative".into(), "serving".into()),
            ("subtick".into(), "serving".into()),
        ]
    );
    // The large offset's marker, as a process that held the pid earlier
    // (or later) would have left it: start ticks two ticks off.
    let marker = &children[2].1;
    let line = meta_line(marker, "pid_start_ticks");
    let ticks: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let text = std::fs::read_to_string(marker.join("metadata.toml")).unwrap();
    let edited = text.replace(&line, &format!("pid_start_ticks = {}", ticks + 2));
    std::fs::write(marker.join("metadata.toml"), edited).unwrap();
    assert_eq!(
        reasons_now(),
        [
            ("large".into(), "pid_reused".into()),
            ("negative".into(), "serving".into()),
            ("subtick".into(), "serving".into()),
        ]
    );
    drop(children);
}
