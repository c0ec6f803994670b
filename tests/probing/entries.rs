//! docs/design.md, "Entries" and "Reason codes": the value of
//! `uptime_secs`, and `not_a_directory` both from readdir's type and from
//! `ENOTDIR` when readdir says `DT_UNKNOWN` (a real ext4 without the
//! `filetype` feature).

use std::path::Path;
use std::process::Command;

use crate::common::ext4::Ext4;
use crate::common::kit::runtime_on;
use crate::common::*;

/// `firma sidecar inspect --json` as (name, reason) pairs.
fn reasons(rt: &Path) -> Vec<(String, String)> {
    let v = json_output(
        Command::new(FIRMA)
            .arg("--runtime-dir")
            .arg(rt)
            .args(["sidecar", "inspect", "--json"]),
        "inspect",
    );
    name_reasons(&v)
}

fn lay_odd_entries(rt: &Path) {
    let run = rt.join("run");
    std::fs::write(run.join("plain"), "x").unwrap();
    let dir = run.join("real");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&dir, run.join("alink")).unwrap();
}

/// (name, d_type) of every entry of `dir` but `.` and `..`, from readdir.
fn readdir_types(dir: &Path) -> Vec<(String, u8)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let mut out = Vec::new();
    // SAFETY: opendir/readdir/closedir on a valid path; each dirent is
    // read before the next call.
    unsafe {
        let d = libc::opendir(c.as_ptr());
        assert!(!d.is_null());
        loop {
            let e = libc::readdir(d);
            if e.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                .to_string_lossy()
                .into_owned();
            if name != "." && name != ".." {
                out.push((name, (*e).d_type));
            }
        }
        libc::closedir(d);
    }
    assert!(!out.is_empty());
    out
}

fn want() -> Vec<(String, String)> {
    vec![
        ("alink".into(), "symlink".into()),
        ("plain".into(), "not_a_directory".into()),
        ("real".into(), "io_error".into()),
    ]
}

#[test]
fn a_file_in_run_is_not_a_directory_by_its_type() {
    let rt = runtime();
    std::fs::create_dir_all(rt.path().join("run")).unwrap();
    lay_odd_entries(rt.path());
    assert_eq!(reasons(rt.path()), want());
}

/// The same entries where readdir reports no types: opening the file as a
/// directory fails with `ENOTDIR` (the symlink with `ELOOP`), and the
/// reasons are the same.
#[test]
fn a_file_in_run_is_not_a_directory_by_enotdir_when_readdir_gives_no_type() {
    let fs = Ext4::without_filetype();
    let rt = runtime_on(&fs.mnt);
    lay_odd_entries(&rt);
    // Verify readdir gives no types here (else this proves nothing).
    for (name, d_type) in readdir_types(&rt.join("run")) {
        assert_eq!(d_type, libc::DT_UNKNOWN, "{name}: readdir gave a type");
    }
    assert_eq!(reasons(&rt), want());
}

/// `uptime_secs` is the age of `sidecar.pid`'s mtime in whole seconds,
/// and `null` for an mtime in the future.
#[test]
fn uptime_secs_is_the_age_of_sidecar_pid() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "up", &[]);
    let pid_file = sc.marker.join("sidecar.pid");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let touch = |at: u64| {
        let st = Command::new("touch")
            .args(["-h", "-d", &format!("@{at}")])
            .arg(&pid_file)
            .status()
            .unwrap();
        assert!(st.success());
    };
    let uptime = || {
        let v = json_output(
            Command::new(FIRMA)
                .arg("--runtime-dir")
                .arg(rt.path())
                .args(["sidecar", "get", "up", "--json"]),
            "get",
        );
        v["uptime_secs"].clone()
    };
    touch(now - 1000);
    let u = uptime().as_u64().expect("uptime_secs set");
    assert!((1000..=1003).contains(&u), "uptime_secs {u}, want 1000");
    touch(now + 1000);
    assert_eq!(uptime(), serde_json::Value::Null);
}
