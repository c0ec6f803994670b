//! docs/design.md, "Trust": a marker is a claim, not a proof. These tests
//! attack `stop` (and collection) as an unprivileged user would — real users
//! made with `useradd`, their processes run through `setpriv`, markers they
//! write by hand with identity fields copied from `/proc` — and check that
//! root lends its authority to none of it, while legitimate use (root
//! stopping a tenant's own sidecar, a shared sticky `run/`) keeps working.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::users::TestUser;
use crate::common::*;
use firma_stack::sidecar_markers::{ErrorCode, StopOptions, gc_stale, stop};

fn opts() -> StopOptions {
    StopOptions {
        grace: Duration::from_secs(5),
        ..StopOptions::default()
    }
}

/// The identity lines a writer records for `pid`: anyone can read them
/// from `/proc`, which is why they prove nothing about authority.
fn identity_of(pid: u32) -> String {
    format!(
        "boot_id = \"{}\"\npid_start_ticks = {}\npid_ns_inode = {}\n",
        boot_id(),
        start_ticks(pid),
        own_pid_ns()
    )
}

/// A marker naming `pid` with its full `/proc` identity: a claim `stop`
/// would act on, were it the writer's to make.
fn claim(id: &str, pid: u32) -> String {
    metadata(id, pid.into(), &identity_of(pid))
}

/// A scratch directory others may traverse (mode 0711), and the path of the
/// test's runtime directory in it (not made yet).
fn scratch() -> (tempfile::TempDir, PathBuf) {
    need_root("the trust-boundary tests use real users");
    let d = runtime();
    chmod(d.path(), 0o711);
    let rt = d.path().join("rt");
    (d, rt)
}

/// As `user`, creates `rt/run/<id>/metadata.toml` (everything 0700/0600,
/// the user's own) naming `pid` with its `/proc` identity: a forged marker.
fn forge(user: &TestUser, rt: &Path, id: &str, pid: u32) -> PathBuf {
    let meta = claim(id, pid);
    let marker = rt.join("run").join(id);
    user.sh(&format!(
        "umask 077; mkdir -p '{}' && printf '%s' '{}' > '{}/metadata.toml'",
        marker.display(),
        meta,
        marker.display()
    ));
    marker
}

/// A process of `user`'s own (`sleep`), as its sidecar would be.
fn sleeper_as(user: &TestUser) -> Child {
    let child = user
        .command("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the user's sleep to exec", || {
        std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
            .is_ok_and(|c| c.trim() == "sleep")
    });
    child
}

/// Gives the directory `marker` mode `dir` and its `metadata.toml` mode `file`.
fn modes(marker: &Path, dir: u32, file: u32) {
    chmod(marker, dir);
    chmod(marker.join("metadata.toml"), file);
}

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

fn refused_code(rt: &Path, id: &str, o: &StopOptions) -> ErrorCode {
    stop(rt, id, o)
        .map(|out| panic!("stop of {id} was not refused: {out:?}"))
        .unwrap_err()
        .code()
}

#[test]
fn a_forged_marker_cannot_make_root_signal_a_root_daemon_or_another_tenant() {
    let (_s, rt) = scratch();
    let attacker = TestUser::new("atk");
    let tenant = TestUser::new("ten");
    attacker.mkdir(&rt, 0o700);
    let mut daemon = Victim::start();
    let mut other = sleeper_as(&tenant);
    forge(&attacker, &rt, "daemon", daemon.pid());
    forge(&attacker, &rt, "other", other.id());
    for id in ["daemon", "other"] {
        assert_eq!(refused_code(&rt, id, &opts()), ErrorCode::NotAuthorized);
        // The opt-out changes nothing about authority.
        let unsafe_opts = StopOptions {
            verify_identity: false,
            ..opts()
        };
        assert_eq!(
            refused_code(&rt, id, &unsafe_opts),
            ErrorCode::NotAuthorized
        );
        // The CLI: exit 2, the code named, nothing signalled.
        let (code, _out, err) = firma_in(&rt, &["sidecar", "stop", id, "--json"]);
        assert_eq!(code, 2, "{err}");
    }
    assert!(daemon.alive() && alive(&mut other));
    let (_, out, _) = firma_in(&rt, &["sidecar", "stop", "daemon", "--json"]);
    assert!(out.contains("not_authorized"), "{out}");
    assert!(rt.join("run/daemon/metadata.toml").exists());
    other.kill().unwrap();
    let _ = other.wait();
}

#[test]
fn kernel_threads_are_never_signalled_even_on_roots_own_marker() {
    let (s, rt) = scratch();
    let attacker = TestUser::new("kth");
    attacker.mkdir(&rt, 0o700);
    forge(&attacker, &rt, "kthreadd", 2);
    let e = stop(&rt, "kthreadd", &opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotAuthorized, "{e}");
    // Root's own marker for kthreadd: root could signal it, the rule
    // still refuses a kernel thread.
    let rt2 = s.path().join("rt2");
    write_marker(&rt2, "kthreadd", &claim("kthreadd", 2));
    let e = stop(&rt2, "kthreadd", &opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotAuthorized, "{e}");
    assert!(e.to_string().contains("kernel thread"), "{e}");
}

#[test]
fn the_shell_that_runs_firma_is_never_signalled() {
    let (_s, rt) = scratch();
    // `sh` writes a marker for itself (root's own, a valid claim), then
    // runs `firma stop` on it: firma's parent, an ancestor of the caller.
    let script = format!(
        "d='{rt}/run/parent'; mkdir -p \"$d\"; \
         printf 'sandbox_id = \"parent\"\\nagent_id = \"a\"\\nsession_id = \"s\"\\n\
authority_url = \"u\"\\npolicy_bundle_version = \"p\"\\npid = %s\\nstarted_at = \"t\"\\n\
boot_id = \"%s\"\\npid_start_ticks = %s\\npid_ns_inode = {ns}\\n' \
         $$ \"$(cat /proc/sys/kernel/random/boot_id)\" \
         \"$(cut -d')' -f2- /proc/$$/stat | awk '{{print $20}}')\" > \"$d/metadata.toml\"; \
         '{firma}' --runtime-dir '{rt}' sidecar stop parent --json; echo \"exit=$?\"",
        rt = rt.display(),
        ns = own_pid_ns(),
        firma = FIRMA,
    );
    let (code, stdout, stderr) = decode(Command::new("sh").args(["-c", &script]).output().unwrap());
    // sh survived to print firma's exit code: it was not signalled.
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(stdout.contains("exit=2"), "{stdout}");
    assert!(
        stdout.contains("not_authorized") && stdout.contains("ancestor"),
        "{stdout}"
    );
}

#[test]
fn root_stops_a_tenants_own_sidecar_in_the_tenants_directory() {
    let (_s, rt) = scratch();
    let tenant = TestUser::new("own");
    tenant.mkdir(&rt, 0o700);
    let mut mine = sleeper_as(&tenant);
    let marker = forge(&tenant, &rt, "mine", mine.id());
    let out = stop(&rt, "mine", &opts()).unwrap().unwrap();
    assert_eq!(out.signals, ["SIGTERM"]);
    assert!(out.exited && out.collected, "{out:?}");
    assert!(!marker.exists());
    let status = mine.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn a_shared_sticky_run_lets_root_stop_each_tenant_only_within_its_own_processes() {
    let (_s, rt) = scratch();
    let alice = TestUser::new("ali");
    let bob = TestUser::new("bob");
    std::fs::create_dir_all(rt.join("run")).unwrap();
    chmod(&rt, 0o755);
    chmod(rt.join("run"), 0o1777);
    let mut a = sleeper_as(&alice);
    let mut b = sleeper_as(&bob);
    forge(&alice, &rt, "alice", a.id());
    // Alice claims Bob's process: refused; Bob's own claim: stopped.
    forge(&alice, &rt, "alice-claims-bob", b.id());
    assert_eq!(
        refused_code(&rt, "alice-claims-bob", &opts()),
        ErrorCode::NotAuthorized
    );
    assert!(alive(&mut b));
    let out = stop(&rt, "alice", &opts()).unwrap().unwrap();
    assert!(out.exited && out.collected, "{out:?}");
    a.wait().unwrap();
    b.kill().unwrap();
    b.wait().unwrap();
}

#[test]
fn a_marker_writable_by_others_is_nobodys_claim() {
    let (_s, rt) = scratch();
    let mut victim = Victim::start();
    let marker = write_marker(&rt, "open", &claim("open", victim.pid()));
    for (dir_mode, file_mode) in [
        (0o777, 0o600),
        (0o770, 0o600),
        (0o700, 0o666),
        (0o700, 0o620),
    ] {
        modes(&marker, dir_mode, file_mode);
        let e = stop(&rt, "open", &opts()).unwrap_err();
        assert_eq!(
            e.code(),
            ErrorCode::NotAuthorized,
            "{dir_mode:o}/{file_mode:o}: {e}"
        );
        assert!(e.to_string().contains("nobody's claim"), "{e}");
    }
    assert!(victim.alive());
    // Owners that disagree: a directory of another user's holding root's file.
    let user = TestUser::new("dis");
    modes(&marker, 0o700, 0o600);
    std::os::unix::fs::chown(&marker, Some(user.uid), Some(user.gid)).unwrap();
    let e = stop(&rt, "open", &opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotAuthorized, "{e}");
    assert!(victim.alive());
}

#[test]
fn the_opt_out_never_overrides_another_pid_namespace() {
    let (_s, rt) = scratch();
    let mut victim = Victim::start();
    // The identity of a host process, recorded as if in another namespace:
    // the number names some other process there, not this one. No process
    // is in that namespace, and this reader sees every process: the
    // recorded one is gone, and nothing is signalled, opt-out or not.
    let extra = format!(
        "boot_id = \"{}\"\npid_start_ticks = {}\npid_ns_inode = 4026531000\n",
        boot_id(),
        start_ticks(victim.pid())
    );
    let pid = victim.pid();
    let write = || write_marker(&rt, "foreign", &metadata("foreign", pid.into(), &extra));
    write();
    let unsafe_opts = StopOptions {
        verify_identity: false,
        ..opts()
    };
    let out = stop(&rt, "foreign", &unsafe_opts).unwrap().unwrap();
    assert!(out.signals.is_empty() && out.collected, "{out:?}");
    assert!(victim.alive());
    write();
    let (code, out, _) = firma_in(
        &rt,
        &[
            "sidecar",
            "stop",
            "foreign",
            "--no-identity-check",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"signals\":[]"), "{out}");
    assert!(victim.alive());
}

#[test]
fn a_non_root_caller_gets_not_authorized_from_the_kernels_eperm() {
    let (_s, rt) = scratch();
    let user = TestUser::new("npr");
    let mut victim = Victim::start();
    // Root's own valid claim, readable by everyone: root's marker, so the
    // claim allows the signal; the caller is the one who may not.
    let marker = write_marker(&rt, "roots", &claim("roots", victim.pid()));
    for d in [&rt, &rt.join("run"), &marker] {
        chmod(d, 0o755);
    }
    chmod(marker.join("metadata.toml"), 0o644);
    let (code, stdout, stderr) = decode(
        user.command(FIRMA)
            .arg("--runtime-dir")
            .arg(&rt)
            .args(["sidecar", "stop", "roots", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 2, "{stdout} {stderr}");
    assert!(stdout.contains("not_authorized"), "{stdout}");
    assert!(victim.alive());
    assert!(marker.join("metadata.toml").exists());
}

#[test]
fn collection_removes_only_what_the_directory_owner_could() {
    let (_s, rt) = scratch();
    let tenant = TestUser::new("col");
    tenant.mkdir(&rt, 0o700);
    tenant.sh(&format!("umask 077; mkdir '{}/run'", rt.display()));
    // Root's marker (root-owned, 0700) in the tenant's run/: stale, but the
    // tenant could not have removed it, so neither does root's gc.
    let roots = write_stale(&rt, "roots-stale", dead_pid());
    // The tenant's own stale marker goes.
    let dead = dead_pid();
    let theirs = rt.join("run/theirs");
    tenant.sh(&format!(
        "umask 077; mkdir '{}' && printf '%s' '{}' > '{}/metadata.toml'",
        theirs.display(),
        metadata("theirs", dead.into(), ""),
        theirs.display()
    ));
    assert_eq!(gc_stale(&rt).unwrap(), ["theirs"]);
    assert!(has_metadata(&roots) && !theirs.exists());
}

/// Rewrites a marker's metadata.toml with only the seven seed fields (as
/// the upstream launcher writes it: no identity) naming `pid`.
fn strip_identity(marker: &Path, id: &str, pid: u32) {
    std::fs::write(marker.join("metadata.toml"), metadata(id, pid.into(), "")).unwrap();
}

#[test]
fn the_listener_of_the_markers_own_socket_proves_a_marker_without_identity() {
    let rt = root_runtime("stop's socket proof");
    let sidecar = Sidecar::start(rt.path(), "bare-serving", &[]);
    strip_identity(&sidecar.marker, "bare-serving", sidecar.pid);
    // No identity fields: without the listener's proof this would be
    // identity_unverifiable. The socket's listener is the recorded pid.
    let out = stop(rt.path(), "bare-serving", &opts()).unwrap().unwrap();
    assert_eq!(out.signals, ["SIGTERM"], "{out:?}");
    assert!(out.exited, "{out:?}");
    assert_ne!(proc_state(sidecar.pid), "S", "the sidecar was stopped");
}

#[test]
fn a_socket_served_by_another_process_proves_nothing() {
    let rt = root_runtime("stop's socket proof");
    let sidecar = Sidecar::start(rt.path(), "decoy", &[]);
    let mut victim = Victim::start();
    // The marker names the sleeper, but its socket is the sidecar's.
    strip_identity(&sidecar.marker, "decoy", victim.pid());
    assert_eq!(
        refused_code(rt.path(), "decoy", &opts()),
        ErrorCode::IdentityUnverifiable
    );
    assert!(victim.alive());
}
