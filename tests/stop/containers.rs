//! Stopping across pid namespaces (docs/design.md, "Stop", "Trust"): the
//! host stops a containerised sidecar through a pidfd on its host pid, with
//! the ownership rule and refusals of a host process; a host process that
//! merely shares the recorded pid's number is never signalled; in a user
//! namespace the container's root is the host uid it maps to.
//!
//! Real namespaces (`unshare`), root; where the kernel refuses one, the
//! test fails saying so.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::pod::Pod;
use crate::common::users::TestUser;
use crate::common::*;
use firma_stack::sidecar_markers::{
    ErrorCode, MetadataFile, StackError, State, StopOptions, get, stop,
};

fn opts() -> StopOptions {
    StopOptions {
        grace: Duration::from_secs(5),
        ..StopOptions::default()
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && proc_state(pid) != "Z"
}

/// A stopped pod is gone: its marker removed, its host process `host`
/// exited (waited for, as `what`).
fn assert_stopped(pod: &Pod, host: u32, what: &str) {
    assert!(!pod.marker.exists());
    wait_until(what, || !alive(host));
}

/// `stop` from the host stops a sidecar that is pid 1 of its own pid
/// namespace: SIGTERM through a pidfd on its host pid, the exit seen, the
/// marker collected. (Pid 1 here, the host's init, is never touched.)
#[test]
fn the_host_stops_a_contained_sidecar_through_its_host_pid() {
    let rt = runtime();
    let pod = Pod::start(&["-p", "-f", "--mount-proc"], rt.path(), "pod");
    assert_eq!(pod.meta().pid, 1);
    let host = pod.host_pid().expect("the sidecar runs");
    assert_ne!(host, 1);
    let out = stop(rt.path(), "pod", &opts()).unwrap().unwrap();
    assert_eq!(out.pid, 1, "the outcome names the recorded pid");
    assert_eq!(out.signals, ["SIGTERM"]);
    // The example sidecar removes its own marker on SIGTERM (else stop
    // collects it): gone either way.
    assert!(out.exited && !out.killed, "{out:?}");
    assert_stopped(&pod, host, "the sidecar's host process to go");
}

/// A marker recorded in a live container under the number of a live *host*
/// process (with that host process's start ticks, the best forgery there
/// is): the container has no such pid, so the recorded process is
/// provably gone — the host process is never signalled, the marker is
/// collected.
#[test]
fn a_host_process_with_the_recorded_number_is_never_signalled() {
    let rt = runtime();
    let pod = Pod::start(&["-p", "-f", "--mount-proc"], rt.path(), "pod");
    let mut victim = Command::new("sleep").arg("300").spawn().unwrap();
    let h = victim.id();
    let mut forged = pod.meta();
    forged.sandbox_id = "forged".into();
    forged.pid = h;
    forged.pid_start_ticks = Some(start_ticks(h));
    forged.listen = None;
    create_forged(rt.path(), &forged);
    assert_eq!(
        get(rt.path(), "forged").unwrap().unwrap().state,
        State::Stopped
    );
    let out = stop(rt.path(), "forged", &opts()).unwrap().unwrap();
    assert!(out.signals.is_empty(), "{out:?}");
    assert!(out.exited && out.collected, "{out:?}");
    assert!(
        alive(h),
        "the host process sharing the number was signalled"
    );
    // Even on the unsafe opt-out.
    create_forged(rt.path(), &forged);
    let unsafe_opts = StopOptions {
        verify_identity: false,
        ..opts()
    };
    let out = stop(rt.path(), "forged", &unsafe_opts).unwrap().unwrap();
    assert!(out.signals.is_empty(), "{out:?}");
    assert!(alive(h));
    victim.kill().unwrap();
    victim.wait().unwrap();
    drop(pod);
}

/// Writes `meta` as the marker `run/<sandbox_id>` by hand (mode 0700/0600,
/// owned by the caller), as its writer would.
fn create_forged(rt: &Path, meta: &MetadataFile) {
    let dir = rt.join("run").join(&meta.sandbox_id);
    let _ = std::fs::remove_dir_all(&dir);
    mkdir(&dir, 0o700);
    let path = dir.join("metadata.toml");
    std::fs::write(&path, toml::to_string(meta).unwrap()).unwrap();
    chmod(&path, 0o600);
}

/// The refusals of a host process hold across namespaces: a marker owned
/// by a user who could not signal the (root) contained sidecar is refused
/// `not_authorized`, and the sidecar keeps running.
#[test]
fn a_contained_root_sidecar_claimed_by_another_user_is_not_signalled() {
    let rt = root_runtime("these tests build pid namespaces");
    let pod = Pod::start(&["-p", "-f", "--mount-proc"], rt.path(), "pod");
    let host = pod.host_pid().unwrap();
    let u = TestUser::new("cstop");
    u.own(&pod.marker);
    let err = stop(rt.path(), "pod", &opts()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotAuthorized, "{err}");
    assert!(err.to_string().contains(&format!("uid {}", u.uid)), "{err}");
    assert!(alive(host));
}

/// In a user namespace (`unshare -U -r`), the sidecar is root inside but
/// its host credentials are the uid that made the namespace: the marker it
/// writes is that uid's, and so is the process seen from the host. Root on
/// the host stops it under that uid's authority; a marker of that uid that
/// names a root process in another container is refused — the container's
/// root is not the host's.
#[test]
fn a_user_namespace_root_is_its_host_uid() {
    let rt = runtime();
    let u = TestUser::new("cuserns");
    u.own(rt.path());
    let mut as_u = u.command("env");
    as_u.current_dir("/");
    let pod = Pod::start_by(
        as_u,
        &["-U", "-r", "-p", "-f", "--mount-proc"],
        rt.path(),
        "userns",
    );
    let host = pod.host_pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{host}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|v| v == u.uid.to_string()),
        "seen from the host, the container's root is uid {}: {uid_line}",
        u.uid
    );
    assert_eq!(std::fs::metadata(&pod.marker).unwrap().uid(), u.uid);
    // A root sidecar in another container, and a marker of the user's
    // naming it (as the container's root could write one).
    let root_rt = runtime();
    let root_pod = Pod::start(&["-p", "-f", "--mount-proc"], root_rt.path(), "rootpod");
    let root_host = root_pod.host_pid().unwrap();
    let mut claim = root_pod.meta();
    claim.sandbox_id = "claim".into();
    claim.listen = None;
    create_forged(rt.path(), &claim);
    u.own(&rt.path().join("run/claim"));
    let err = stop(rt.path(), "claim", &opts()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotAuthorized, "{err}");
    assert!(alive(root_host));
    // The user's own sidecar: stopped.
    let out = stop(rt.path(), "userns", &opts()).unwrap().unwrap();
    assert_eq!(out.signals, ["SIGTERM"], "{out:?}");
    assert!(out.exited, "{out:?}");
    assert_stopped(&pod, host, "the user-namespace sidecar to go");
}

/// A contained sidecar whose marker records no identity at all (the seven
/// seed fields and a pid, as writers that know no better write it): the
/// listener of the marker's own socket, whose pid in its own namespace is
/// the recorded one, proves the process; `stop` signals that listener, and
/// never the host's pid of the same number.
#[test]
fn a_contained_sidecar_with_no_identity_fields_is_proved_by_its_socket() {
    let rt = runtime();
    let pod = Pod::start(&["-p", "-f", "--mount-proc"], rt.path(), "bare");
    let host = pod.host_pid().unwrap();
    let mut bare = pod.meta();
    bare.boot_id = None;
    bare.pid_start_ticks = None;
    bare.pid_ns_inode = None;
    bare.boottime_offset_ns = None;
    let path = pod.marker.join("metadata.toml");
    std::fs::write(&path, toml::to_string(&bare).unwrap()).unwrap();
    assert_eq!(bare.pid, 1);
    let out = stop(rt.path(), "bare", &opts()).unwrap().unwrap();
    assert_eq!(out.signals, ["SIGTERM"], "{out:?}");
    assert!(out.exited, "{out:?}");
    wait_until("the sidecar to go", || !alive(host));
    assert!(alive(1), "the host's pid 1 lives on");
}

/// A marker with only the seed fields from a sidecar in a container: its
/// pid names no process here, but the listener of its socket proves it.
/// `stop` signals that listener through its pidfd; it never takes the
/// missing host pid for "already gone" and drops the live sidecar's marker.
#[test]
fn the_host_stops_a_contained_sidecar_without_identity_by_its_socket() {
    let rt = runtime();
    let pod = Pod::start_bare(rt.path(), "bare");
    let host = pod.host_pid_unrecorded().expect("the sidecar runs");
    let out = stop(rt.path(), "bare", &opts()).unwrap().unwrap();
    assert_eq!(out.signals, ["SIGTERM"], "{out:?}");
    assert!(out.exited && !out.killed, "{out:?}");
    assert_stopped(&pod, host, "the sidecar's host process to go");
}

/// A contained sidecar `id` whose marker `edit` rewrote (after its host
/// pid was found from the marker as written): the pod, its host pid and
/// the marker as it now is.
fn edited_pod(
    rt: &Path,
    id: &str,
    edit: impl FnOnce(&mut MetadataFile),
) -> (Pod, u32, MetadataFile) {
    let pod = Pod::start(&["-p", "-f", "--mount-proc"], rt, id);
    let host = pod.host_pid().unwrap();
    let mut meta = pod.meta();
    edit(&mut meta);
    let toml = toml::to_string(&meta).unwrap();
    std::fs::write(pod.marker.join("metadata.toml"), toml).unwrap();
    (pod, host, meta)
}

/// `stop` of `id` is refused with `code`, and the contained sidecar at
/// `host` keeps running; gives the error.
fn refused(rt: &Path, id: &str, host: u32, code: ErrorCode) -> StackError {
    let err = stop(rt, id, &opts()).unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(alive(host), "the contained sidecar was signalled");
    err
}

/// A contained sidecar whose marker records its pid namespace but neither
/// `boot_id` nor its start ticks: the fields cannot prove it, the
/// listener of its own socket can — the listener is in the recorded
/// namespace under the recorded pid (its host pid differs) — and `stop`
/// signals it through that listener.
#[test]
fn a_contained_sidecar_recording_only_its_namespace_is_proved_by_its_socket() {
    let rt = runtime();
    let (_pod, host, meta) = edited_pod(rt.path(), "nsonly", |meta| {
        assert!(meta.pid_ns_inode.is_some(), "{meta:?}");
        meta.boot_id = None;
        meta.pid_start_ticks = None;
    });
    assert_ne!(host, meta.pid);
    let out = stop(rt.path(), "nsonly", &opts()).unwrap().unwrap();
    assert_eq!(out.signals, ["SIGTERM"], "{out:?}");
    assert!(out.exited, "{out:?}");
    wait_until("the sidecar to go", || !alive(host));
}

/// In another pid namespace too, the socket proves nothing the identity
/// fields decided: a contained sidecar whose marker records start ticks
/// that are not its own is `pid_reused` and keeps running, although the
/// listener of its socket is at the recorded pid of the recorded
/// namespace.
#[test]
fn a_contained_sidecar_with_other_start_ticks_is_refused_its_socket_notwithstanding() {
    let rt = runtime();
    let (_pod, host, _) = edited_pod(rt.path(), "reticked", |meta| {
        meta.pid_start_ticks = meta.pid_start_ticks.map(|t| t + 9);
    });
    refused(rt.path(), "reticked", host, ErrorCode::PidReused);
}

/// A marker that says it comes from the reader's own pid namespace is
/// proved by its socket only when the listener has the recorded pid
/// *here*: a contained listener whose pid in its own namespace is the
/// recorded one proves nothing (that rule is for markers that record no
/// namespace). Refused, the contained sidecar keeps running.
#[test]
fn a_marker_of_our_namespace_is_not_proved_by_a_contained_listener() {
    let rt = runtime();
    let own_ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    let (_pod, host, _) = edited_pod(rt.path(), "ours", |meta| {
        assert_eq!(meta.pid, 1);
        assert_ne!(meta.pid_ns_inode, Some(own_ns));
        meta.pid_ns_inode = Some(own_ns);
        meta.boot_id = None;
        meta.pid_start_ticks = None;
        meta.boottime_offset_ns = None;
    });
    refused(rt.path(), "ours", host, ErrorCode::IdentityUnverifiable);
}

/// A boot id that proves nothing (not a UUID) makes a contained marker
/// unverifiable, and no socket proves it either: whatever listens at the
/// recorded pid of the recorded namespace, the boot it was recorded in is
/// unknown. Refused, the contained sidecar keeps running.
#[test]
fn a_contained_marker_whose_boot_id_proves_nothing_is_not_proved_by_its_socket() {
    let rt = runtime();
    let (_pod, host, _) = edited_pod(rt.path(), "noboot", |meta| {
        meta.boot_id = Some("not-a-uuid".into());
    });
    let err = refused(rt.path(), "noboot", host, ErrorCode::IdentityUnverifiable);
    assert!(err.to_string().contains("not a UUID"), "{err}");
}
