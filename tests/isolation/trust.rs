//! The trust boundary of a runtime directory (docs/design.md, "Trust"):
//! what root (and any caller) does on a directory another user controls.
//!
//! Real users (`useradd`, removed again when each test ends) act through
//! `setpriv`; the attacks on `/tmp/firma-0` and `/run` run in private mount
//! namespaces with fresh tmpfs mounted over `/tmp` and `/run`, so the real
//! ones are never touched: such a test runs itself again under
//! `unshare -m --propagation private` ([`in_private_tmp_and_run`]).

use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::users::TestUser;
use crate::common::*;
use firma_stack::sidecar_markers::{
    ErrorCode, Event, ScanOptions, StopOptions, WatchOptions, check_runtime_dir, create_marker,
    gc_stale, get, inspect, list, remove_marker, scan, stop, watch,
};

const NEED_ROOT: &str = "the trust tests create users, chown directories and mount tmpfs";

// ---- fixtures ---------------------------------------------------------------

/// The inode of this process's mount namespace.
fn mount_ns() -> String {
    std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

const NS_ENV: &str = "FIRMA_TRUST_TEST_NS";
const OUTER_ENV: &str = "FIRMA_TRUST_TEST_OUTER_MNT";

/// Runs the test `name` (of this module) again, alone, in a private mount
/// namespace with a fresh tmpfs on `/tmp` (mode 1777) and on `/run` (mode
/// 0755). Returns `true` in that copy (go on with the test) and `false`
/// here, once the copy passed (the test is done).
fn in_private_tmp_and_run(name: &str) -> bool {
    need_root(NEED_ROOT);
    // The harness names a test by its path below the crate: `trust::name`.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let name = &format!("{module}::{name}");
    if std::env::var(NS_ENV).as_deref() == Ok(name) {
        let outer = std::env::var(OUTER_ENV).unwrap();
        assert_ne!(
            mount_ns(),
            outer,
            "not in a private mount namespace: refusing to mount over /tmp and /run"
        );
        // The binaries under test may live below /tmp or /run (a checkout
        // there): hold their directory open across the tmpfs and bind it
        // back at the same path (not canonicalized: the path now names the
        // empty tmpfs), so `firma` and the sidecar stay reachable.
        let bins = Path::new(FIRMA).parent().unwrap().to_path_buf();
        let held = std::fs::File::open(&bins).unwrap();
        for (dir, mode) in [("/tmp", "1777"), ("/run", "0755")] {
            succeed(
                Command::new("mount").args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("mode={mode}"),
                    "tmpfs",
                    dir,
                ]),
                &format!("mount tmpfs on {dir}"),
            );
            if bins.starts_with(dir) {
                use std::os::fd::AsRawFd;
                std::fs::create_dir_all(&bins).unwrap();
                let source = format!("/proc/{}/fd/{}", std::process::id(), held.as_raw_fd());
                succeed(
                    Command::new("mount")
                        .args(["--no-canonicalize", "--bind", &source])
                        .arg(&bins),
                    &format!("bind {} back over the tmpfs", bins.display()),
                );
            }
        }
        return true;
    }
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NS_ENV, name)
        .env(OUTER_ENV, mount_ns())
        .output()
        .expect("unshare (util-linux) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in a private mount namespace failed:\n{stdout}\n{stderr}"
    );
    false
}

/// A marker for `victim` with its full identity: a marker `stop` would act
/// on (the attacker can read all of it from /proc).
fn victim_marker(victim: &Victim, id: &str) -> String {
    metadata(
        id,
        victim.pid().into(),
        &format!(
            "boot_id = \"{}\"\npid_start_ticks = {}\n",
            boot_id(),
            start_ticks(victim.pid())
        ),
    )
}

/// `firma ARGS` as root with an empty environment (so the default runtime
/// directory is the fallback): (exit code, stdout, stderr).
fn firma_bare(args: &[&str]) -> (i32, String, String) {
    bare(Command::new(FIRMA), args)
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("firma: warning:"))
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn code_of<T: std::fmt::Debug>(r: firma_stack::sidecar_markers::Result<T>) -> ErrorCode {
    r.expect_err("refused").code()
}

fn fast_stop() -> StopOptions {
    StopOptions {
        grace: Duration::from_secs(2),
        ..StopOptions::default()
    }
}

/// A root-owned scratch directory others may traverse (0755), removed on
/// drop.
fn scratch() -> tempfile::TempDir {
    need_root(NEED_ROOT);
    let d = runtime();
    chmod(d.path(), 0o755);
    d
}

/// A [`scratch`] directory and in it root's directory `name` of mode
/// `mode`.
fn scratch_dir(name: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let base = scratch();
    let dir = base.path().join(name);
    mkdir(&dir, mode);
    (base, dir)
}

/// `cmd ARGS`, firma run with an empty environment (so the default runtime
/// directory is the fallback): (exit code, stdout, stderr).
fn bare(mut cmd: Command, args: &[&str]) -> (i32, String, String) {
    decode(
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .args(args)
            .output()
            .unwrap(),
    )
}

/// `stop victim` as `firma` runs it, on a marker planted for the live
/// `victim`: refused with exit `code` and a message saying `says`, and the
/// victim lives on.
fn assert_stop_refused(
    firma: impl Fn(&[&str]) -> (i32, String, String),
    victim: &mut Victim,
    code: i32,
    says: &str,
) {
    let (got, _, err) = firma(&["sidecar", "stop", "victim", "--grace-ms", "2000"]);
    assert_eq!(got, code, "{err}");
    assert!(err.contains(says), "{err}");
    assert!(victim.alive(), "stopped what a planted marker named");
}

/// The first line `cmd` prints on stdout (a sidecar's `ready` line), the
/// process killed and reaped after it.
fn first_line_then_kill(cmd: &mut Command) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    line
}

// ---- the squatted /tmp/firma-0 -----------------------------------------------

/// The attacker's `/tmp/firma-0`: mode 0777, a `run/` of 0777, a marker
/// naming root's `victim` process with its full identity, and a stale one.
fn squat_tmp_firma_0(attacker: &TestUser, victim: &Victim) {
    attacker.sh_with(
        "mkdir -m 0777 /tmp/firma-0 /tmp/firma-0/run /tmp/firma-0/run/victim \
         /tmp/firma-0/run/stale
         printf '%s' \"$VICTIM\" > /tmp/firma-0/run/victim/metadata.toml
         printf '%s' \"$STALE\" > /tmp/firma-0/run/stale/metadata.toml",
        &[],
        &[
            ("VICTIM", &victim_marker(victim, "victim")),
            ("STALE", &metadata("stale", dead_pid().into(), "")),
        ],
    );
}

#[test]
fn roots_default_is_run_firma_never_a_squatted_tmp_firma_0() {
    if !in_private_tmp_and_run("roots_default_is_run_firma_never_a_squatted_tmp_firma_0") {
        return;
    }
    let attacker = TestUser::new("sq");
    let mut victim = Victim::start();
    squat_tmp_firma_0(&attacker, &victim);

    // Root, with nothing in the environment, stops by id: the attacker's
    // marker is not where root looks.
    assert_stop_refused(firma_bare, &mut victim, 1, "/run/firma");
    let (code, out, err) = firma_bare(&["sidecar", "status", "--json"]);
    assert_eq!((code, out.as_str()), (0, "[]\n"), "{err}");
    assert!(
        err.contains("runtime directory /run/firma does not exist"),
        "{err}"
    );
    assert!(has_metadata(Path::new("/tmp/firma-0/run/stale")));

    // Root's sidecar writes its marker under /run/firma, created 0700.
    let line = first_line_then_kill(Command::new(SIDECAR).env_clear().args(["--id", "mine"]));
    assert_eq!(line, "ready /run/firma/run/mine\n");
    assert!(!Path::new("/tmp/firma-0/run/mine").exists());
    for dir in ["/run/firma", "/run/firma/run"] {
        let m = std::fs::metadata(dir).unwrap();
        assert_eq!((m.uid(), mode(Path::new(dir))), (0, 0o700), "{dir}");
    }
}

#[test]
fn a_squatted_runtime_dir_is_listed_read_only_and_refused_for_gc_stop_and_writes() {
    if !in_private_tmp_and_run(
        "a_squatted_runtime_dir_is_listed_read_only_and_refused_for_gc_stop_and_writes",
    ) {
        return;
    }
    let attacker = TestUser::new("sq");
    let mut victim = Victim::start();
    squat_tmp_firma_0(&attacker, &victim);
    let rt = Path::new("/tmp/firma-0");
    let stale = rt.join("run/stale");

    // Read-only operations answer, collect nothing, and warn once.
    let (code, out, err) = firma_in(rt, &["sidecar", "status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"sandbox_id\":\"victim\""), "{out}");
    let w = warnings(&err);
    assert_eq!(w.len(), 1, "{err}");
    assert!(
        w[0].contains("/tmp/firma-0 is not trusted") && w[0].contains("mode 0777"),
        "{err}"
    );
    assert!(w[0].contains(&format!("uid {} ({})", attacker.uid, attacker.name)));
    assert!(has_metadata(&stale));
    for args in [&["sidecar", "inspect"][..], &["sidecar", "get", "victim"]] {
        let (code, _, err) = firma_in(rt, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(warnings(&err).len(), 1, "{args:?}: {err}");
    }
    assert_eq!(list(rt).unwrap().len(), 1);
    let report = scan(rt, &ScanOptions::default()).unwrap();
    assert!(report.collected.is_empty());
    assert!(report.untrusted.as_deref().unwrap().contains("mode 0777"));
    assert_eq!(inspect(rt).unwrap().len(), 2);
    assert!(get(rt, "stale").unwrap().is_some());
    assert!(check_runtime_dir(rt).unwrap().is_some());
    let mut w = watch(rt, &WatchOptions::default()).unwrap();
    let mut events = Vec::new();
    while !matches!(events.last(), Some(Event::Synced { .. })) {
        assert!(events.len() < 10, "no synced: {events:?}");
        events.push(
            w.next(Some(Duration::from_secs(5)))
                .unwrap()
                .expect("an event"),
        );
    }
    drop(w);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Gone { .. })),
        "{events:?}"
    );
    assert!(has_metadata(&stale), "a watcher collected in it");

    // Everything that removes, signals or writes refuses.
    let (code, _, err) = firma_in(rt, &["sidecar", "gc"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refusing to collect stale markers"), "{err}");
    assert_stop_refused(
        |args| firma_in(rt, args),
        &mut victim,
        2,
        "refusing to stop a sidecar under /tmp/firma-0",
    );
    assert_eq!(code_of(gc_stale(rt)), ErrorCode::UntrustedDirectory);
    assert_eq!(
        code_of(stop(rt, "victim", &fast_stop())),
        ErrorCode::UntrustedDirectory
    );
    assert_eq!(
        code_of(stop(rt, "no-such", &fast_stop())),
        ErrorCode::UntrustedDirectory
    );
    assert!(victim.alive());
    assert_eq!(
        code_of(create_marker(rt, &meta("mine", std::process::id()))),
        ErrorCode::UntrustedDirectory
    );
    assert!(!rt.join("run/mine").exists());
    assert_eq!(
        code_of(remove_marker(rt, "stale")),
        ErrorCode::UntrustedDirectory
    );
    assert!(has_metadata(&stale));
    assert_eq!(run_names(rt), ["stale", "victim"]);
}

// ---- a symlink as the runtime directory ---------------------------------------

/// A new attacker (user `tag`) and its stale marker planted as `/run/lock`
/// (world-writable, sticky, as on most hosts): a marker named `lock` in a
/// `run/` that is `/run` when the runtime directory is `/`.
fn plant_run_lock(tag: &str) -> (TestUser, PathBuf) {
    let attacker = TestUser::new(tag);
    let lock = PathBuf::from("/run/lock");
    mkdir(&lock, 0o1777);
    attacker.sh_with(
        "printf '%s' \"$STALE\" > /run/lock/metadata.toml",
        &[],
        &[("STALE", &metadata("lock", dead_pid().into(), ""))],
    );
    std::fs::write(lock.join("LCK..ttyS0"), "root's lock\n").unwrap();
    (attacker, lock)
}

#[test]
fn an_attackers_symlink_to_root_as_tmp_firma_0_is_not_followed() {
    if !in_private_tmp_and_run("an_attackers_symlink_to_root_as_tmp_firma_0_is_not_followed") {
        return;
    }
    let (attacker, lock) = plant_run_lock("ln");
    attacker.sh("ln -s / /tmp/firma-0");
    let rt = Path::new("/tmp/firma-0");

    let (code, _, err) = firma_in(rt, &["sidecar", "gc"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("symlink owned by"), "{err}");
    let (code, out, err) = firma_in(rt, &["sidecar", "status", "--json"]);
    assert_eq!((code, out.as_str()), (0, "[]\n"), "{err}");
    assert_eq!(warnings(&err).len(), 1, "{err}");
    assert_eq!(code_of(gc_stale(rt)), ErrorCode::UntrustedDirectory);
    assert_eq!(
        code_of(stop(rt, "lock", &fast_stop())),
        ErrorCode::UntrustedDirectory
    );
    assert_eq!(
        code_of(remove_marker(rt, "lock")),
        ErrorCode::UntrustedDirectory
    );
    assert!(list(rt).unwrap().is_empty());
    assert!(inspect(rt).unwrap().is_empty());
    assert_eq!(
        code_of(create_marker(rt, &meta("planted", std::process::id()))),
        ErrorCode::UntrustedDirectory
    );
    assert!(!Path::new("/run/planted").exists());
    assert!(has_metadata(&lock) && lock.join("LCK..ttyS0").exists());
}

/// The same attack without a symlink: `FIRMA_STATE_DIR=/` (root's own
/// choice, or a careless unit file). `/` and `/run` pass the directory
/// checks (root's, 0755); what must save `/run/lock` is the marker rule:
/// a world-writable marker directory is nobody's claim and never
/// collected (docs/design.md, "Trust", "Whose claim a marker is").
#[test]
fn run_lock_survives_a_runtime_dir_of_slash() {
    if !in_private_tmp_and_run("run_lock_survives_a_runtime_dir_of_slash") {
        return;
    }
    let (_attacker, lock) = plant_run_lock("sl");
    let (code, _, err) = firma(&["--runtime-dir", "/", "sidecar", "gc"]);
    assert!(code == 0 || code == 2, "{err}");
    let (code, _, err) = firma(&["--runtime-dir", "/", "sidecar", "status"]);
    assert_eq!(code, 0, "{err}");
    let _ = gc_stale("/");
    assert!(has_metadata(&lock) && lock.join("LCK..ttyS0").exists());
}

/// A real directory with a stale marker, and a symlink to it: the symlink
/// is followed when the caller or root owns it, never when a stranger
/// does, however many links lead there.
#[test]
fn a_symlinked_runtime_dir_is_followed_only_through_links_of_the_caller_or_root() {
    let (base, real) = scratch_dir("real", 0o700);
    let stranger = TestUser::new("ln");
    let stale = write_stale(&real, "stale", dead_pid());
    let link = base.path().join("link");
    symlink(&real, &link).unwrap();

    stranger.chown(&link);
    assert_eq!(code_of(gc_stale(&link)), ErrorCode::UntrustedDirectory);
    assert_eq!(
        code_of(create_marker(&link, &meta("mine", std::process::id()))),
        ErrorCode::UntrustedDirectory
    );
    assert_eq!(
        code_of(remove_marker(&link, "stale")),
        ErrorCode::UntrustedDirectory
    );
    assert!(list(&link).unwrap().is_empty());
    let why = check_runtime_dir(&link).unwrap().unwrap();
    assert!(
        why.contains(&format!(
            "symlink owned by uid {} ({})",
            stranger.uid, stranger.name
        )),
        "{why}"
    );
    assert!(has_metadata(&stale));
    assert_eq!(run_names(&real), ["stale"]);

    // Root's link to the stranger's link: the second is not followed.
    let chain = base.path().join("chain");
    symlink("link", &chain).unwrap();
    assert_eq!(code_of(gc_stale(&chain)), ErrorCode::UntrustedDirectory);
    assert!(has_metadata(&stale));

    // Root's own link (relative, through root's own chain) is followed.
    lchown(&link, Some(0), Some(0)).unwrap();
    assert_eq!(check_runtime_dir(&chain).unwrap(), None);
    assert_eq!(gc_stale(&chain).unwrap(), ["stale"]);
    let dir = create_marker(&link, &meta("mine", std::process::id())).unwrap();
    assert_eq!(dir, link.join("run/mine"));
    assert!(real.join("run/mine").is_dir());
}

/// The link's owner is the caller: a user's own symlink is followed for
/// that user (a runtime directory on another disk, say).
#[test]
fn a_users_own_symlink_is_followed_for_that_user() {
    let base = scratch();
    let user = TestUser::new("ow");
    let real = base.path().join("real");
    user.mkdir(&real, 0o700);
    let link = base.path().join("link");
    symlink(&real, &link).unwrap();
    user.chown(&link);
    let line = first_line_then_kill(&mut user.sidecar(&link, "theirs"));
    assert_eq!(line, format!("ready {}/run/theirs\n", link.display()));
    assert!(real.join("run/theirs").is_dir());
}

/// The runtime directory's parent, and a runtime directory named by a
/// path ending in `..`, are opened `O_PATH`: a user reaches a runtime
/// directory below a parent it may traverse but not read (mode 0711), as
/// the kernel lets it, and is never refused for read permission it does
/// not need.
#[test]
fn a_parent_the_user_may_traverse_but_not_read_is_no_obstacle() {
    let (_base, parent) = scratch_dir("p", 0o711);
    let user = TestUser::new("tv");
    let rt = parent.join("rt");
    user.mkdir(&rt, 0o700);
    let line = first_line_then_kill(&mut user.sidecar(&rt, "mine"));
    assert_eq!(line, format!("ready {}/run/mine\n", rt.display()));
    for dir in [rt.clone(), rt.join("..")] {
        let (code, out, err) = firma_as(&user, &dir, &["sidecar", "status", "--json"]);
        assert_eq!(code, 0, "{}: {err}", dir.display());
        assert!(out.starts_with('['), "{out}");
    }
}

// ---- shared, group-writable, mixed owners -----------------------------------------

/// `firma --runtime-dir RT ARGS` as `user`: (exit code, stdout, stderr).
fn firma_as(user: &TestUser, rt: &Path, args: &[&str]) -> (i32, String, String) {
    decode(
        user.command(FIRMA)
            .arg("--runtime-dir")
            .arg(rt)
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn a_shared_sticky_run_serves_its_tenants_and_root() {
    let (_base, rt) = scratch_dir("rt", 0o755);
    let tenant = TestUser::new("tn");
    let run = rt.join("run");
    mkdir(&run, 0o1777);

    // A tenant's sidecar writes its marker there; so does root's.
    let mut theirs = tenant
        .sidecar(&rt, "theirs")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut theirs);
    assert_eq!(line, format!("ready {}\n", run.join("theirs").display()));
    assert_eq!(
        std::fs::metadata(run.join("theirs")).unwrap().uid(),
        tenant.uid
    );
    let mine = Sidecar::start(&rt, "mine", &[]);
    assert_eq!(check_runtime_dir(&rt).unwrap(), None);
    let ids: Vec<String> = list(&rt)
        .unwrap()
        .into_iter()
        .map(|e| e.sandbox_id)
        .collect();
    assert_eq!(ids, ["mine", "theirs"]);

    // The tenant lists and collects without a warning.
    let (code, out, err) = firma_as(&tenant, &rt, &["sidecar", "status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(warnings(&err).is_empty(), "{err}");
    // (Root's marker is root's 0700 directory: unreadable to the tenant.)
    assert!(out.contains("\"sandbox_id\":\"theirs\""), "{out}");

    // Once the tenant's sidecar is gone, its marker is collected.
    let _ = theirs.kill();
    let _ = theirs.wait();
    let (code, out, err) = firma_as(&tenant, &rt, &["sidecar", "gc", "--json"]);
    assert_eq!((code, out.as_str()), (0, "[\"theirs\"]\n"), "{err}");
    mine.kill_and_reap();
    assert_eq!(gc_stale(&rt).unwrap(), ["mine"]);
}

#[test]
fn a_run_writable_by_group_or_others_and_not_sticky_is_untrusted() {
    let (_base, rt) = scratch_dir("rt", 0o700);
    let stale = write_stale(&rt, "stale", dead_pid());
    for bad in [0o775, 0o770, 0o757, 0o777] {
        chmod(rt.join("run"), bad);
        assert_eq!(
            code_of(gc_stale(&rt)),
            ErrorCode::UntrustedDirectory,
            "{bad:o}"
        );
        let (code, _, err) = firma_in(&rt, &["sidecar", "status"]);
        assert_eq!(code, 0, "{err}");
        let w = warnings(&err);
        assert_eq!(w.len(), 1, "{bad:o}: {err}");
        assert!(w[0].contains(&format!("mode {bad:04o}")), "{err}");
        assert!(w[0].contains("not sticky"), "{err}");
        assert!(has_metadata(&stale), "{bad:o}");
    }
    // Sticky: shared, trusted.
    chmod(rt.join("run"), 0o1775);
    assert_eq!(gc_stale(&rt).unwrap(), ["stale"]);
}

#[test]
fn a_runtime_dir_writable_by_group_or_others_is_untrusted_even_if_sticky() {
    let (_base, rt) = scratch_dir("rt", 0o755);
    let stale = write_stale(&rt, "stale", dead_pid());
    chmod(rt.join("run"), 0o700);
    for bad in [0o770, 0o775, 0o1777] {
        chmod(&rt, bad);
        assert_eq!(
            code_of(gc_stale(&rt)),
            ErrorCode::UntrustedDirectory,
            "{bad:o}"
        );
        assert!(list(&rt).unwrap().is_empty());
        assert!(has_metadata(&stale), "{bad:o}");
    }
    chmod(&rt, 0o755);
    assert_eq!(gc_stale(&rt).unwrap(), ["stale"]);
}

#[test]
fn run_and_runtime_dir_of_two_users_are_untrusted_unless_one_is_root() {
    let (_base, rt) = scratch_dir("rt", 0o755);
    let a = TestUser::new("oa");
    let b = TestUser::new("ob");
    let stale = write_stale(&rt, "stale", dead_pid());
    let run = rt.join("run");
    chmod(&run, 0o755);
    a.chown(&rt);
    b.chown(&run);
    assert_eq!(code_of(gc_stale(&rt)), ErrorCode::UntrustedDirectory);
    let why = check_runtime_dir(&rt).unwrap().unwrap();
    assert!(
        why.contains(&format!("owned by uid {} ({})", b.uid, b.name)),
        "{why}"
    );
    assert!(has_metadata(&stale));
    // Root's run/ in a's directory, and b's run/ in root's: trusted.
    lchown(&run, Some(0), Some(0)).unwrap();
    assert_eq!(check_runtime_dir(&rt).unwrap(), None);
    lchown(&rt, Some(0), Some(0)).unwrap();
    b.chown(&run);
    assert_eq!(check_runtime_dir(&rt).unwrap(), None);
}

// ---- the writer -------------------------------------------------------------------

#[test]
fn roots_writer_never_writes_in_a_directory_another_user_owns() {
    let base = scratch();
    let user = TestUser::new("wr");
    let me = std::process::id();

    // The user's private runtime directory passes the checks, but root's
    // marker does not go there (the user could replace it at will).
    let rt = base.path().join("users");
    mkdir(&rt, 0o700);
    user.chown(&rt);
    assert_eq!(check_runtime_dir(&rt).unwrap(), None);
    let e = create_marker(&rt, &meta("mine", me)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UntrustedDirectory, "{e}");
    assert!(e.to_string().contains("neither the caller"), "{e}");
    assert!(
        !rt.join("run").exists(),
        "created run/ in the user's directory"
    );

    // Root's directory with the user's run/: the same.
    let rt = base.path().join("mixed");
    std::fs::create_dir_all(rt.join("run")).unwrap();
    chmod(&rt, 0o755);
    chmod(rt.join("run"), 0o700);
    user.chown(&rt.join("run"));
    assert_eq!(
        code_of(create_marker(&rt, &meta("mine", me))),
        ErrorCode::UntrustedDirectory
    );
    assert!(run_names(&rt).is_empty());

    // Missing directories are created private, run/ included.
    let rt = base.path().join("new/deeper");
    create_marker(&rt, &meta("mine", me)).unwrap();
    for dir in [base.path().join("new"), rt.clone(), rt.join("run")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    // An existing root directory of 0755 gets a 0700 run/.
    let rt = base.path().join("open");
    mkdir(&rt, 0o755);
    create_marker(&rt, &meta("mine", me)).unwrap();
    assert_eq!(mode(&rt.join("run")), 0o700);
    assert!(remove_marker(&rt, "mine").unwrap());
}

#[test]
fn a_users_last_resort_default_created_by_another_user_is_untrusted() {
    if !in_private_tmp_and_run("a_users_last_resort_default_created_by_another_user_is_untrusted") {
        return;
    }
    let user = TestUser::new("us");
    let squatter = TestUser::new("sq");
    let dir = format!("/tmp/firma-{}", user.uid);
    // The squatter's directory passes every other check: 0755, run/ shared.
    // Its marker names the user's own process, with its identity.
    let mut victim = Victim::of(user.command("sleep").arg("600"));
    squatter.sh_with(
        "mkdir -m 0755 \"$DIR\"; mkdir -m 1777 \"$DIR/run\"; mkdir -m 0755 \"$DIR/run/victim\"
         printf '%s' \"$VICTIM\" > \"$DIR/run/victim/metadata.toml\"",
        &[],
        &[("DIR", &dir), ("VICTIM", &victim_marker(&victim, "victim"))],
    );
    let users_bare = |args: &[&str]| bare(user.command(FIRMA), args);
    assert_stop_refused(users_bare, &mut victim, 2, "last-resort default");
    let (code, out, err) = users_bare(&["sidecar", "status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("victim"), "{out}");
    assert_eq!(warnings(&err).len(), 1, "{err}");
    let (code, _, err) = decode(
        user.command(SIDECAR)
            .env_clear()
            .args(["--id", "mine"])
            .output()
            .unwrap(),
    );
    assert_ne!(
        code, 0,
        "the user's sidecar wrote into the squatter's directory"
    );
    assert!(
        err.contains("untrusted") || err.contains("not trusted") || err.contains("refusing"),
        "{err}"
    );
    assert!(!Path::new(&dir).join("run/mine").exists());
}

// ---- the CLI's warning ----------------------------------------------------------

/// Every read-only command prints the one warning line on an untrusted
/// directory (watch before its stream), and none on a trusted one.
#[test]
fn every_read_only_cli_command_warns_once_on_an_untrusted_dir() {
    let (_base, rt) = scratch_dir("rt", 0o755);
    let stale = write_stale(&rt, "stale", dead_pid());
    // (The ones that collect last: on the trusted directory they remove
    // the stale marker.)
    let commands: [&[&str]; 5] = [
        &["sidecar", "get", "stale"],
        &["sidecar", "inspect"],
        &["sidecar", "status", "--no-gc", "--json"],
        &["sidecar", "metrics"],
        &["sidecar", "status"],
    ];
    for (mode, want) in [(0o777, 1), (0o700, 0)] {
        chmod(&rt, mode);
        for args in commands {
            let (code, _, err) = firma_in(&rt, args);
            assert_eq!(code, 0, "{mode:o} {args:?}: {err}");
            let w = warnings(&err);
            assert_eq!(w.len(), want, "{mode:o} {args:?}: {err}");
            if want == 1 {
                assert!(
                    w[0].ends_with(
                        "read-only: nothing is collected, and gc, stop and writers refuse"
                    ),
                    "{err}"
                );
                assert!(has_metadata(&stale), "{args:?} collected");
            }
        }
        let mut watch = Command::new(FIRMA)
            .arg("--runtime-dir")
            .arg(&rt)
            .args(["sidecar", "watch", "--no-gc"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The stream's first line (synced) comes after the warning.
        let _ = first_line(&mut watch);
        watch.kill().unwrap();
        let out = watch.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(warnings(&err).len(), want, "{mode:o} watch: {err}");
    }
}
