//! Real fixtures for the integration tests: example sidecar processes, dead
//! pids, zombies and hand-written markers.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod child;
pub mod ext4;
pub mod hung_fuse;
pub mod kit;
mod marker_meta;
pub mod pod;
mod testkit;
pub mod users;
pub mod xorshift;
// Like the rest of this module, not used by every test file.
#[allow(unused_imports)]
pub use child::{Reaped, first_line};
#[allow(unused_imports)]
pub use marker_meta::meta;

pub const SIDECAR: &str = env!("CARGO_BIN_EXE_firma-example-sidecar");
pub const FIRMA: &str = env!("CARGO_BIN_EXE_firma");

/// A running example sidecar; SIGTERMed and reaped on drop.
pub struct Sidecar {
    pub id: String,
    child: Option<Child>,
    pub pid: u32,
    pub marker: PathBuf,
}

impl Sidecar {
    pub fn start(runtime: &Path, id: &str, extra: &[&str]) -> Sidecar {
        let mut child = Command::new(SIDECAR)
            .arg("--runtime-dir")
            .arg(runtime)
            .args(["--id", id])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn example sidecar");
        let line = first_line(&mut child);
        let marker = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("sidecar {id} did not become ready: {line:?}"))
            .trim_end()
            .into();
        Sidecar {
            id: id.to_owned(),
            pid: child.id(),
            child: Some(child),
            marker,
        }
    }

    /// A TCP sidecar whose backlog is full: the kernel drops further SYNs,
    /// so a connect to it neither succeeds nor is refused.
    pub fn syn_dropping(runtime: &Path, id: &str) -> Sidecar {
        Sidecar::start(runtime, id, &["--tcp", "127.0.0.1:0", "--mode", "wedged"])
    }

    /// SIGKILLs the sidecar and reaps it: its pid is then dead (ESRCH) and
    /// its marker is stale.
    pub fn kill_and_reap(mut self) -> PathBuf {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.marker.clone()
    }

    /// SIGKILLs the sidecar without reaping it: it stays a zombie until the
    /// returned child is waited for.
    pub fn kill_leave_zombie(mut self) -> Child {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        wait_for_zombie(child.id());
        child
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

/// A process (`sleep`) a test wants left alone or stopped; killed and reaped
/// on drop.
pub struct Victim(pub Child);

impl Victim {
    /// Root's `sleep 600`.
    pub fn start() -> Victim {
        Victim::of(Command::new("sleep").arg("600"))
    }

    /// `cmd`, a `sleep`, spawned and seen to run `sleep` (so `/proc` shows
    /// what a stop would check).
    pub fn of(cmd: &mut Command) -> Victim {
        let child = cmd.spawn().unwrap();
        wait_until("sleep to exec", || {
            std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
                .is_ok_and(|c| c.trim() == "sleep")
        });
        Victim(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fields of `/proc/<pid>/stat` after the command name: index 0 is the
/// state (field 3), index 19 the start time in clock ticks (field 22).
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    after.split_whitespace().map(str::to_owned).collect()
}

/// The state letter of `pid` (`R`, `S`, `Z`, ...).
pub fn proc_state(pid: u32) -> String {
    stat_fields(pid).into_iter().next().unwrap()
}

/// The start time of `pid` in clock ticks since boot.
pub fn start_ticks(pid: u32) -> u64 {
    stat_fields(pid)[19].parse().unwrap()
}

/// This boot's id, as the kernel spells it.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_owned()
}

/// The inode of this process's pid namespace.
pub fn own_pid_ns() -> u64 {
    let link = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let s = link.to_str().unwrap();
    s.trim_start_matches("pid:[")
        .trim_end_matches(']')
        .parse()
        .unwrap()
}

/// Fails unless less than `bound` has passed since `start`: an upper bound
/// that proves "never hangs" (or "not by the slow path"), not a timing
/// assertion.
pub fn assert_within(start: std::time::Instant, bound: std::time::Duration, what: &str) {
    let took = start.elapsed();
    assert!(took < bound, "{what}: took {took:?}, bound {bound:?}");
}

/// Polls `f` until it holds; fails naming `what` after 10 s (a bound that
/// proves "never hangs", not a timing assertion).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Blocks until `/proc/<pid>/stat` shows state Z and no thread of the
/// process is left (the kernel finishes the exit asynchronously after
/// SIGKILL, thread by thread; a Z leader with live threads is alive).
pub fn wait_for_zombie(pid: u32) {
    let threads_gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| s.contains("\nThreads:\t1\n"))
            .unwrap_or(false)
    };
    while proc_state(pid) != "Z" || !threads_gone() {
        std::thread::yield_now();
    }
}

/// A pid that belonged to a process that has exited and been reaped.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A fresh runtime dir (removed on drop).
pub fn runtime() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("firma-test-")
        .tempdir()
        .unwrap()
}

/// A valid metadata.toml text for `id` and `pid`, plus `extra` lines.
pub fn metadata(id: &str, pid: i64, extra: &str) -> String {
    format!(
        "sandbox_id = \"{id}\"\nagent_id = \"agent\"\nsession_id = \"session\"\n\
         authority_url = \"https://authority.invalid\"\npolicy_bundle_version = \"v1\"\n\
         pid = {pid}\nstarted_at = \"2026-11-29T12:00:00Z\"\n{extra}"
    )
}

/// One marker of each kind in `runtime`, under the names given: a serving
/// sidecar (running), a sidecar without its socket (unhealthy), a stale
/// marker (a dead pid) and a broken one (not TOML). The two sidecars run
/// until the returned pair is dropped.
pub fn one_of_each(
    runtime: &Path,
    [serving, no_socket, stale, broken]: [&str; 4],
) -> (Sidecar, Sidecar) {
    let a = Sidecar::start(runtime, serving, &[]);
    let b = Sidecar::start(runtime, no_socket, &["--mode", "no-socket"]);
    write_stale(runtime, stale, dead_pid());
    write_marker(runtime, broken, "this is not toml = = =");
    (a, b)
}

/// Whether the marker directory `marker` still holds its metadata.toml:
/// what a test checks to see a marker was neither removed nor taken apart.
pub fn has_metadata(marker: &Path) -> bool {
    marker.join("metadata.toml").exists()
}

/// Writes `run/<dir_name>/metadata.toml` by hand (as a foreign writer
/// would), returning the marker path.
pub fn write_marker(runtime: &Path, dir_name: &str, contents: &str) -> PathBuf {
    let dir = runtime.join("run").join(dir_name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("metadata.toml"), contents).unwrap();
    dir
}

/// A stale marker: valid metadata naming a dead pid.
pub fn write_stale(runtime: &Path, id: &str, pid: u32) -> PathBuf {
    write_marker(runtime, id, &metadata(id, pid.into(), ""))
}

/// Names in `run/`, sorted; none when there is no `run/`.
pub fn run_names(runtime: &Path) -> Vec<String> {
    let run = runtime.join("run");
    if run.exists() {
        names_in(&run)
    } else {
        Vec::new()
    }
}

/// Names in the directory `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Opens permissions so an unprivileged user can read the tree.
pub fn open_up(path: &Path) {
    for entry in walk(path) {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        let meta = std::fs::symlink_metadata(&entry).unwrap();
        if meta.file_type().is_symlink() || meta.file_type().is_socket_like() {
            continue;
        }
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}
impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}

fn walk(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if std::fs::symlink_metadata(path)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        for e in std::fs::read_dir(path).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails the test, saying `why` root is needed, unless it runs as root
/// (`make test` does, in CI): such a test never passes silently.
pub fn need_root(why: &str) {
    assert!(
        is_root(),
        "{why}: run this test as root (make test does, in CI)"
    );
}

/// A fresh runtime dir for a test that needs root (see [`need_root`]).
pub fn root_runtime(why: &str) -> tempfile::TempDir {
    need_root(why);
    runtime()
}

/// Runs `cmd` and fails with its stderr (and `what`) unless it succeeded.
pub fn succeed(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sets the permission bits of `path` (following a symlink) to `mode`.
pub fn chmod(path: impl AsRef<Path>, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Creates the directory `path` (its parent must exist) with mode `mode`,
/// whatever the umask.
pub fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir(path).unwrap();
    chmod(path, mode);
}

/// (exit code, stdout, stderr) of a finished command; -1 for a signal.
pub fn decode(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs `cmd`, fails with its stderr (and `what`) unless it succeeded, and
/// parses its stdout as JSON.
pub fn json_output(cmd: &mut Command, what: &str) -> serde_json::Value {
    let out = succeed(cmd, what);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `(entry[first], entry[second])`, both strings, of each entry of a JSON
/// array of entries.
pub fn string_pairs(v: &serde_json::Value, first: &str, second: &str) -> Vec<(String, String)> {
    v.as_array()
        .expect("a JSON array of entries")
        .iter()
        .map(|e| {
            let field = |key: &str| e[key].as_str().unwrap().to_owned();
            (field(first), field(second))
        })
        .collect()
}

/// `(sandbox_id, state)` of each entry of a `status --json` answer.
pub fn id_states(v: &serde_json::Value) -> Vec<(String, String)> {
    string_pairs(v, "sandbox_id", "state")
}

/// `(name, reason)` of each entry of an `inspect --json` answer.
pub fn name_reasons(v: &serde_json::Value) -> Vec<(String, String)> {
    string_pairs(v, "name", "reason")
}

/// The JSON answer of `firma --runtime-dir <runtime> sidecar <subcommand>
/// --json` run by user 65534 (no supplementary groups) under its own
/// `/proc` mounted `hidepid=<hidepid>`, in a private mount namespace, with
/// the runtime directory opened up (`open_up`) for that user to read;
/// fails saying so when it or the kernel (refusing the namespace or the
/// mount) failed.
pub fn json_under_hidepid(hidepid: u8, runtime: &Path, subcommand: &str) -> serde_json::Value {
    json_under_hidepid_in(&["-m"], "", hidepid, runtime, subcommand)
}

/// [`json_under_hidepid`] in the namespaces `unshare UNSHARE…` makes (a
/// private mount namespace among them; with `-p -f`, the `/proc` mounted
/// is that pid namespace's), running the shell lines `before` as root
/// after the mount.
pub fn json_under_hidepid_in(
    unshare: &[&str],
    before: &str,
    hidepid: u8,
    runtime: &Path,
    subcommand: &str,
) -> serde_json::Value {
    open_up(runtime);
    let dir = runtime.to_str().unwrap();
    let script = format!(
        "mount -t proc -o hidepid={hidepid} proc /proc || exit 1\n{before}\n\
         exec setpriv --reuid 65534 --regid 65534 --clear-groups \
         {FIRMA} --runtime-dir {dir} sidecar {subcommand} --json"
    );
    json_output(
        Command::new("unshare").args(unshare).args([
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]),
        &format!("hidepid {subcommand} failed (or the kernel refused the namespaces)"),
    )
}

/// `firma --runtime-dir <runtime> <args>`, to run or spawn.
pub fn firma_command(runtime: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(FIRMA);
    cmd.arg("--runtime-dir").arg(runtime).args(args);
    cmd
}

/// Starts `n` processes `firma --runtime-dir <runtime> <args>` at once,
/// stdout and stderr piped.
pub fn spawn_firmas(n: usize, runtime: &Path, args: &[&str]) -> Vec<Child> {
    let mut cmd = firma_command(runtime, args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    (0..n).map(|_| cmd.spawn().expect("spawn firma")).collect()
}

/// Waits for a `firma ... --json` child and parses its stdout; panics with
/// its stderr when it failed.
pub fn wait_json<T: serde::de::DeserializeOwned>(child: Child) -> T {
    let out = child.wait_with_output().expect("wait for firma");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "firma failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("firma printed JSON")
}

/// Runs `firma` with `args`; returns (exit code, stdout, stderr).
pub fn firma(args: &[&str]) -> (i32, String, String) {
    decode(Command::new(FIRMA).args(args).output().unwrap())
}

/// `firma --runtime-dir RUNTIME` as nobody (uid and gid 65534, no other
/// groups) through `setpriv`; the caller adds the command.
pub fn firma_as_nobody(runtime: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", FIRMA])
        .arg("--runtime-dir")
        .arg(runtime);
    cmd
}

/// Runs `firma --runtime-dir RUNTIME` with `args`; returns (exit code,
/// stdout, stderr).
pub fn firma_in(runtime: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--runtime-dir", runtime.to_str().unwrap()];
    all.extend_from_slice(args);
    firma(&all)
}

/// Starts `unshare UNSHARE... --kill-child firma-example-sidecar` on `runtime`
/// as `id` and reads its `ready` line: the child and the marker it printed, or
/// the line it printed instead and unshare's stderr once it has exited (the
/// kernel refused the namespaces, or the sidecar failed).
pub fn start_unshared(
    unshare: &[&str],
    runtime: &Path,
    id: &str,
) -> Result<(Child, PathBuf), (String, String)> {
    let mut cmd = Command::new("unshare");
    cmd.args(unshare).arg("--kill-child");
    start_ready(cmd, runtime, id)
}

/// Runs `cmd firma-example-sidecar --runtime-dir RUNTIME --id ID` and reads
/// its `ready` line: the child and its marker, or the line and the
/// command's stderr once it has exited.
pub fn start_ready(
    mut cmd: Command,
    runtime: &Path,
    id: &str,
) -> Result<(Child, PathBuf), (String, String)> {
    let mut child = cmd
        .arg(SIDECAR)
        .arg("--runtime-dir")
        .arg(runtime)
        .args(["--id", id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) must be installed to test namespaces");
    let line = first_line(&mut child);
    match line.strip_prefix("ready ") {
        Some(marker) => Ok((child, PathBuf::from(marker.trim_end()))),
        None => {
            let out = child.wait_with_output().unwrap();
            Err((line, String::from_utf8_lossy(&out.stderr).into_owned()))
        }
    }
}

extern "C" fn do_nothing(_: libc::c_int) {}

/// Runs `wait` on a thread of its own while SIGUSR1 — handled, as a
/// Python or Go program's handlers are, by a handler that does nothing,
/// installed without `SA_RESTART` — is sent to that thread 20 times, 25 ms
/// apart, so that some land in whatever it waits in (`EINTR`); then runs
/// `then` (what ends the wait, if anything must) and returns what `wait`
/// returned. SIGUSR1 is used by nothing else in the test binaries.
pub fn interrupted<T: Send>(wait: impl FnOnce() -> T + Send, then: impl FnOnce()) -> T {
    // SAFETY: a handler that does nothing, for a signal nothing else uses.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = do_nothing as *const () as usize;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = s.spawn(move || {
            // SAFETY: no precondition.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            wait()
        });
        let thread = rx.recv().unwrap();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(25));
            // SAFETY: the waiter is not joined yet, so its id stays valid.
            unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
        }
        then();
        waiter.join().unwrap()
    })
}
