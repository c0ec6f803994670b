//! Throwaway real users and groups (`useradd`/`groupadd`, removed again on
//! drop) and commands run as them (`setpriv`), for the trust-boundary and
//! debris tests. Root only: a test that needs them fails (never skips) when
//! it is not root.

use std::os::unix::fs::lchown;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// `useradd`, `userdel`, `groupadd` and `groupdel` lock the account files:
/// the tests of one binary take turns (other processes may hold the lock
/// too, hence the retries).
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// Runs the account tool `args[0]` with the rest as its arguments, retried
/// while it fails (another process holding the lock); the last stderr when
/// it never succeeded.
fn accounts(args: &[&str]) -> Result<(), String> {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let mut last = String::new();
    for _ in 0..100 {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("{} (passwd package) must be installed: {e}", args[0]));
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{args:?} kept failing: {last}"))
}

/// [`accounts`], failing the test unless it succeeded.
fn must(args: &[&str]) {
    accounts(args).unwrap_or_else(|e| panic!("{e}"));
}

/// [`accounts`] for a drop: fails the test unless it is failing already.
fn undo(args: &[&str]) {
    if let Err(e) = accounts(args)
        && !std::thread::panicking()
    {
        panic!("{e}");
    }
}

/// Runs `tool… NAME` (`useradd` or `groupadd` and its options) for a name
/// no other account of any test uses, `ft<tag><pid>x<n>` (`tag` shortened
/// to six characters; at most 32 bytes, as `useradd` wants): the name.
fn add(tag: &str, tool: &[&str]) -> String {
    super::need_root("creating throwaway users and groups with useradd and groupadd");
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "ft{}{}x{}",
        tag.chars().take(6).collect::<String>(),
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    );
    must(&[tool, &[name.as_str()]].concat());
    name
}

/// [`add`] of a user with `options`, no home and no login shell.
fn useradd(tag: &str, options: &[&str]) -> String {
    let user = [
        "useradd",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
    ];
    add(tag, &[&user[..], options].concat())
}

/// The number `id FLAG NAME` prints (`-u` the uid, `-g` the gid).
fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    assert!(out.status.success(), "id {flag} {name}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A throwaway group; removed on drop (after its members: drop them first).
pub struct TestGroup {
    pub name: String,
    pub gid: u32,
}

impl TestGroup {
    pub fn new(tag: &str) -> TestGroup {
        let name = add(tag, &["groupadd"]);
        let out = Command::new("getent")
            .args(["group", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "getent group {name}");
        let gid = String::from_utf8_lossy(&out.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        TestGroup { name, gid }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        undo(&["groupdel", &self.name]);
    }
}

/// A system user created for one test and deleted when dropped.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// A user with a group of its own.
    pub fn new(tag: &str) -> TestUser {
        let name = useradd(tag, &["--system", "--user-group"]);
        TestUser {
            uid: id_of("-u", &name),
            gid: id_of("-g", &name),
            name,
        }
    }

    /// A user whose primary group is `group`, with no group of its own.
    pub fn in_group(tag: &str, group: &TestGroup) -> TestUser {
        let name = useradd(tag, &["--no-user-group", "--gid", &group.name]);
        TestUser {
            uid: id_of("-u", &name),
            gid: group.gid,
            name,
        }
    }

    /// `setpriv` as this user (real, effective and saved uid and gid, no
    /// supplementary groups) running `program args…`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(program);
        cmd
    }

    /// The example sidecar as this user, on `runtime` as `id`.
    pub fn sidecar(&self, runtime: &Path, id: &str) -> Command {
        let mut cmd = self.command(super::SIDECAR);
        cmd.arg("--runtime-dir").arg(runtime).args(["--id", id]);
        cmd
    }

    /// Runs `sh -euc script` as this user; fails with its stderr unless it
    /// succeeded.
    pub fn sh(&self, script: &str) -> Output {
        self.sh_with(script, &[], &[])
    }

    /// [`TestUser::sh`] with `args` as `$1`… and `env` in its environment.
    pub fn sh_with(&self, script: &str, args: &[&Path], env: &[(&str, &str)]) -> Output {
        let mut sh = self.command("sh");
        sh.args(["-euc", script, "sh"])
            .args(args)
            .envs(env.iter().copied());
        super::succeed(&mut sh, &format!("as {}: {script}", self.name))
    }

    /// `chown -R` `path` to this user (what it would own had it made it).
    pub fn own(&self, path: &Path) {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Creates the directory `path` (its parent must exist) with `mode`,
    /// given to this user, as the user's own would be.
    pub fn mkdir(&self, path: &Path, mode: u32) {
        super::mkdir(path, mode);
        self.chown(path);
    }

    /// Gives `path` itself (a link, not what it points to) to this user.
    pub fn chown(&self, path: &Path) {
        lchown(path, Some(self.uid), Some(self.gid)).unwrap();
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its processes first (userdel refuses a logged-in user).
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        undo(&["userdel", &self.name]);
    }
}
