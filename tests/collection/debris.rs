//! docs/design.md, "Trust", "Debris": a reserved name (`.tmp-…` of a
//! writer, `.gc-…` of a collector) is finished by a scan only when it is
//! provably the library's — owned by the owner of `run/` or root, or, in a
//! shared (sticky) `run/`, by the caller — and its maker is provably gone in
//! the maker's own pid namespace, which the name records. Everything else
//! is left, and `inspect` shows it (reason `leftover`).
//!
//! Real fixtures only: throwaway users made with `useradd` (removed at the
//! end), actions run as them with `setpriv`, real pid namespaces
//! (`unshare`). Root only; each test fails loudly where the system refuses
//! what it needs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::users::{TestGroup, TestUser};
use crate::common::*;
use firma_stack::sidecar_markers::{ErrorCode, Reason, Verdict, gc_stale, inspect, list};

/// A well-formed random part: what matters here is who owns an entry and
/// what its name records, not the random bits.
const RANDOM: &str = "0123456789abcdef";

/// Two throwaway users sharing a throwaway primary group, removed on drop
/// (the users first: a group is removed only without members).
struct Tenants {
    a: TestUser,
    b: TestUser,
    group: TestGroup,
}

impl Tenants {
    fn new(tag: &str) -> Tenants {
        let group = TestGroup::new(&format!("g{tag}"));
        let a = TestUser::in_group(&format!("a{tag}"), &group);
        let b = TestUser::in_group(&format!("b{tag}"), &group);
        Tenants { a, b, group }
    }
}

/// What a tenant does in these tests, beside [`TestUser`]'s own.
trait Tenant {
    fn sleeper(&self) -> Reaped;
    fn write_marker(&self, run: &Path, id: &str, pid: u32) -> PathBuf;
    fn gc(&self, rt: &Path);
}

impl Tenant for TestUser {
    /// A live process of this user: its sidecar.
    fn sleeper(&self) -> Reaped {
        Reaped(self.command("sleep").arg("60").spawn().unwrap())
    }

    /// A marker this user writes by hand in `run`, for its live `pid`.
    fn write_marker(&self, run: &Path, id: &str, pid: u32) -> PathBuf {
        let dir = run.join(id);
        let mut child = self
            .command("sh")
            .args([
                "-c",
                r#"umask 077 && mkdir "$1" && cat > "$1/metadata.toml""#,
                "sh",
            ])
            .arg(&dir)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metadata(id, pid.into(), "").as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "{} writes {id}", self.name);
        dir
    }

    /// `firma --runtime-dir RT sidecar gc` as this user.
    fn gc(&self, rt: &Path) {
        let mut gc = self.command(FIRMA);
        gc.arg("--runtime-dir").arg(rt).args(["sidecar", "gc"]);
        succeed(&mut gc, &format!("gc as {}", self.name));
    }
}

/// A runtime dir others may enter, and its `run/` with `owner`, `gid` and
/// `mode`.
fn shared_runtime(owner: u32, gid: u32, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let rt = runtime();
    chmod(rt.path(), 0o755);
    let run = rt.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::os::unix::fs::chown(&run, Some(owner), Some(gid)).unwrap();
    chmod(&run, mode);
    (rt, run)
}

/// A fresh runtime dir and its `run/`, root's, for a test that needs root
/// for `why`.
fn root_run(why: &str) -> (tempfile::TempDir, PathBuf) {
    let rt = root_runtime(why);
    let run = rt.path().join("run");
    std::fs::create_dir(&run).unwrap();
    (rt, run)
}

/// `<prefix><pid>-<pidns>-<random>`: a reserved name of the current form.
fn reserved(prefix: &str, pid: u32, ns: u64) -> String {
    format!("{prefix}{pid}-{ns}-{RANDOM}")
}

/// A reserved directory `name` in `run`, made by root and given to `uid`,
/// with a file in it.
fn debris(run: &Path, name: &str, uid: u32) -> PathBuf {
    let d = run.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("metadata.toml"), "half").unwrap();
    for p in [&d, &d.join("metadata.toml")] {
        std::os::unix::fs::chown(p, Some(uid), None).unwrap();
    }
    d
}

/// `inspect`'s report of the entry `name`: it must be there, as a
/// `leftover`, its detail containing `why`.
fn assert_leftover(rt: &Path, name: &str, why: &str) {
    let reports = inspect(rt).unwrap();
    let r = reports
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("inspect does not show {name}: {reports:?}"));
    assert_eq!(r.verdict, Verdict::Broken, "{r:?}");
    assert_eq!(r.reason, Reason::Leftover, "{r:?}");
    assert!(r.state.is_none() && r.entry.is_none(), "{r:?}");
    assert!(
        r.detail.contains(why),
        "{name}: {:?} lacks {why:?}",
        r.detail
    );
}

/// The laundering attack: in a shared, group-writable `run/` without the
/// sticky bit, tenant A renames tenant B's live marker to reserved names of
/// a dead pid (the old form, and the current form with this reader's own
/// pid namespace). Root's next `status`, `list` and `gc` must not delete
/// B's files: B's tree is not owned by `run/`'s owner or root.
#[test]
fn a_tenant_cannot_launder_anothers_marker_into_debris() {
    let t = Tenants::new("l");
    let (rt, run) = shared_runtime(0, t.group.gid, 0o770);
    let sidecar = t.b.sleeper();
    let b1 = t.b.write_marker(&run, "b-1", sidecar.0.id());
    let b2 = t.b.write_marker(&run, "b-2", sidecar.0.id());
    let dead = dead_pid();
    let old_form = format!(".tmp-{dead}-0");
    let new_form = reserved(".gc-", dead, own_pid_ns());
    t.a.sh_with(
        r#"mv "$1" "$2" && mv "$3" "$4""#,
        &[&b1, &run.join(&old_form), &b2, &run.join(&new_form)],
        &[],
    );

    let (code, _, err) = firma_in(rt.path(), &["sidecar", "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(list(rt.path()).unwrap().is_empty());
    // Such a run/ also fails the directory checks: gc refuses outright, and
    // status and list collect nothing there. The owner rule alone is
    // proved in trusted directories by the test below.
    let e = gc_stale(rt.path()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UntrustedDirectory, "{e}");
    drop(sidecar);

    for name in [&old_form, &new_form] {
        let meta = run.join(name).join("metadata.toml");
        assert!(meta.exists(), "root deleted B's laundered marker {name}");
        assert!(
            std::fs::read_to_string(&meta)
                .unwrap()
                .contains("sandbox_id = \"b-"),
            "{name} changed"
        );
        assert_leftover(
            rt.path(),
            name,
            &format!(
                "owned by uid {}, neither run/'s owner (uid 0) nor root",
                t.b.uid
            ),
        );
    }
}

/// The owner rule in directories that are trusted as they are (a private,
/// root-owned `run/`; a sticky one shared by tenants; one owned by a user):
/// only debris owned by `run/`'s owner or root — or, in a sticky `run/`, by
/// the caller — is finished; every entry here records a dead pid of this
/// reader's own pid namespace, so ownership alone decides.
#[test]
fn only_debris_owned_by_runs_owner_or_root_or_a_sticky_runs_caller_is_finished() {
    let t = Tenants::new("o");
    let ns = own_pid_ns();
    let dead = dead_pid();

    // A private run/ of root's (0700), with a tree of A's renamed in by root.
    let (rt, run) = shared_runtime(0, 0, 0o700);
    let roots = debris(&run, &reserved(".tmp-", dead, ns), 0);
    let as_name = reserved(".gc-", dead, ns);
    let a_s = debris(&run, &as_name, t.a.uid);
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert!(!roots.exists(), "root's own debris of a dead writer stayed");
    assert!(a_s.join("metadata.toml").exists(), "A's tree was deleted");
    assert_leftover(rt.path(), &as_name, &format!("owned by uid {}", t.a.uid));

    // A sticky run/ (01777, root's): each tenant may finish its own debris;
    // root finishes root's and leaves the tenants'.
    let (rt, run) = shared_runtime(0, 0, 0o1777);
    let a_name = reserved(".tmp-", dead, ns);
    let b_name = reserved(".gc-", dead, ns);
    let roots = debris(
        &run,
        &reserved(".gc-", dead, ns).replace(RANDOM, "fedcba9876543210"),
        0,
    );
    let a_s = debris(&run, &a_name, t.a.uid);
    let b_s = debris(&run, &b_name, t.b.uid);
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert!(!roots.exists(), "root's own debris stayed");
    assert!(
        a_s.exists() && b_s.exists(),
        "root finished a tenant's debris"
    );
    assert_leftover(
        rt.path(),
        &b_name,
        &format!(
            "owned by uid {}, neither run/'s owner (uid 0) nor root, nor the caller (uid 0)",
            t.b.uid
        ),
    );
    t.b.gc(rt.path());
    assert!(
        !b_s.exists(),
        "B's own debris in a sticky run/ stayed after B's gc"
    );
    assert!(
        a_s.join("metadata.toml").exists(),
        "B's gc deleted A's tree"
    );

    // A run/ owned by A (0700) in a root-owned runtime dir: root finishes
    // A's debris (run/'s owner), never B's.
    let (rt, run) = shared_runtime(t.a.uid, t.group.gid, 0o700);
    let a_s = debris(&run, &reserved(".tmp-", dead, ns), t.a.uid);
    let b_name = reserved(".tmp-", dead, ns).replace(RANDOM, "00000000000000ff");
    let b_s = debris(&run, &b_name, t.b.uid);
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert!(!a_s.exists(), "debris owned by run/'s owner stayed");
    assert!(b_s.join("metadata.toml").exists(), "B's tree was deleted");
    assert_leftover(
        rt.path(),
        &b_name,
        &format!("neither run/'s owner (uid {}) nor root", t.a.uid),
    );
}

/// Whether no process on this host has `pid` (`kill(pid, 0)`: `ESRCH`).
fn host_has_no(pid: u32) -> bool {
    // SAFETY: signal 0 delivers nothing.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// A pid no process on this host has, from `from` on.
fn free_host_pid(from: u32) -> u32 {
    (from..from + 10_000)
        .find(|&p| host_has_no(p))
        .expect("a free pid")
}

/// A writer in a child pid namespace (`unshare -p -f --mount-proc`) makes
/// its temp dir under the library's name — its pid *there*, chosen (via
/// `ns_last_pid`) to be a pid no host process has, and its namespace — and
/// holds it. The host's scans must leave it: from the host that pid proves
/// nothing. Even after the writer died, nothing on the host can prove it,
/// so it stays (shown by `inspect`).
#[test]
fn a_live_writer_in_a_child_pid_namespace_keeps_its_temp_dir() {
    let (rt, run) = root_run("a child pid namespace with its own ns_last_pid");
    let pid = free_host_pid(30555);
    let mut writer = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
        ])
        .arg(
            r#"echo $(($2 - 1)) > /proc/sys/kernel/ns_last_pid || exit 97
               sh -c '
                 ns=$(stat -L -c %i /proc/self/ns/pid) || exit 98
                 d="$1/.tmp-$$-$ns-0123456789abcdef"
                 mkdir -m 700 "$d" && echo half > "$d/metadata.toml" || exit 99
                 echo "$$ $ns"
                 cd "$d" && exec sleep 60' sh "$1""#,
        )
        .args(["sh", run.to_str().unwrap(), &pid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux)");
    let mut line = String::new();
    BufReader::new(writer.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() != 2 {
        let _ = writer.kill();
        let out = writer.wait_with_output().unwrap();
        panic!(
            "THE KERNEL REFUSED A CHILD PID NAMESPACE, OR ITS ns_last_pid: this test cannot run \
             here and fails on purpose ({line:?}, {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (their_pid, their_ns) = (fields[0] as u32, fields[1]);
    assert_eq!(
        their_pid, pid,
        "ns_last_pid did not give the writer the pid asked for"
    );
    assert_ne!(their_ns, own_pid_ns());
    let name = format!(".tmp-{pid}-{their_ns}-{RANDOM}");
    let tmp = run.join(&name);
    assert!(tmp.join("metadata.toml").exists());

    // The pid means nothing here: no host process has it.
    assert!(
        host_has_no(pid),
        "a host process took pid {pid} meanwhile; run again"
    );
    assert!(list(rt.path()).unwrap().is_empty());
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    let (code, _, err) = firma_in(rt.path(), &["sidecar", "gc"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        tmp.join("metadata.toml").exists(),
        "the host deleted the temp dir of a live writer in a child pid namespace"
    );
    assert_leftover(
        rt.path(),
        &name,
        &format!("pid namespace {their_ns}, not this reader's"),
    );

    let _ = writer.kill();
    let _ = writer.wait();
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert!(
        tmp.exists(),
        "its writer's death is not provable from the host"
    );
}

/// The other way round: a supervisor in its own pid namespace reads the
/// host's `run/`, where host writers are at work (this test process: alive
/// on the host, absent from the supervisor's namespace). Neither the old
/// form of a name (which records no namespace: its pid is the initial
/// namespace's, and the supervisor is not there) nor the current one (which
/// records the host's) may be finished from there.
#[test]
fn a_supervisor_in_its_own_pid_namespace_finishes_no_host_debris() {
    let (rt, run) = root_run("a child pid namespace");
    let me = std::process::id();
    let old_form = format!(".tmp-{me}-0");
    let new_form = reserved(".gc-", me, own_pid_ns());
    for name in [&old_form, &new_form] {
        debris(&run, name, 0);
    }
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child", FIRMA])
        .arg("--runtime-dir")
        .arg(rt.path())
        .args(["sidecar", "gc"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "THE KERNEL REFUSED A CHILD PID NAMESPACE (or firma failed): this test fails on \
         purpose: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [&old_form, &new_form] {
        assert!(
            run.join(name).join("metadata.toml").exists(),
            "a supervisor in its own pid namespace finished the host's {name}"
        );
    }
    // On the host, this process is alive: at work, left and not reported.
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert!(run.join(&old_form).exists() && run.join(&new_form).exists());
    assert!(inspect(rt.path()).unwrap().is_empty());
}
