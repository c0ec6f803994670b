//! The fixture tool and small runners: `firma-testkit` (for its `seccomp`
//! subcommand: a real seccomp filter installed before exec) and a runtime
//! directory laid out on a given filesystem.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::FIRMA;

pub use super::testkit::testkit;

/// `firma ARGS…` with the system calls `syscalls` failing with `errno`
/// (a real seccomp filter, installed before exec by the testkit).
pub fn firma_seccomp(errno: &str, syscalls: &[&str], args: &[&str]) -> Output {
    let mut cmd = Command::new(testkit());
    cmd.args(["seccomp", "--errno", errno]);
    for s in syscalls {
        cmd.args(["--syscall", s]);
    }
    cmd.arg("--").arg(FIRMA).args(args);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("firma-testkit seccomp: refused"),
        "the kernel refused the seccomp filter; this test proves nothing without it: {stderr}"
    );
    out
}

/// `firma --runtime-dir RT ARGS…` under a descriptor limit of `nofile`
/// (`prlimit --nofile`: the kernel's own `EMFILE`): its exit code, stdout
/// and stderr.
pub fn firma_with_nofile(nofile: u64, rt: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new("prlimit")
        .arg(format!("--nofile={nofile}"))
        .arg(FIRMA)
        .arg("--runtime-dir")
        .arg(rt)
        .args(args)
        .output()
        .expect("prlimit (util-linux) must be installed");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A runtime directory laid out on `root` (mode 0700, as the writer
/// wants it).
pub fn runtime_on(root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let rt = root.join("rt");
    std::fs::create_dir_all(rt.join("run")).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(rt.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    rt
}
