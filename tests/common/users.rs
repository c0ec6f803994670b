//! Throwaway real users (`useradd`/`userdel`) and commands run as them
//! (`setpriv`), for the trust-boundary tests. Root only: a test that needs
//! them fails (never skips) when it is not root.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A system user created for one test and deleted when dropped.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// `useradd` a user no other test uses (retried while another
    /// `useradd` holds the password file's lock).
    pub fn new(tag: &str) -> TestUser {
        super::need_root("creating a throwaway user with useradd");
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ft{}{}{}",
            tag.chars().take(6).collect::<String>(),
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut last = String::new();
        for _ in 0..100 {
            let out = Command::new("useradd")
                .args(["--system", "--no-create-home", "--user-group"])
                .args(["--shell", "/usr/sbin/nologin", &name])
                .output()
                .expect("useradd (passwd package) must be installed");
            if out.status.success() {
                let id = |flag: &str| -> u32 {
                    let out = Command::new("id").args([flag, &name]).output().unwrap();
                    String::from_utf8(out.stdout)
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap()
                };
                return TestUser {
                    uid: id("-u"),
                    gid: id("-g"),
                    name,
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("useradd {name} failed: {last}");
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

    /// Runs `sh -c script` as this user; fails with its stderr unless it
    /// succeeded.
    pub fn sh(&self, script: &str) -> Output {
        let out = self.command("sh").args(["-c", script]).output().unwrap();
        assert!(
            out.status.success(),
            "as {}: {script}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
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
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its processes first (userdel refuses a logged-in user).
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        for _ in 0..100 {
            match Command::new("userdel").arg(&self.name).output() {
                Ok(o) if o.status.success() => return,
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }
}
