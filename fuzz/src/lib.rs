//! Fuzz harnesses for firma-stack, as plain functions so the libFuzzer
//! targets in `fuzz_targets/` and the seed-replay test in `tests/` run the
//! very same code.
//!
//! Both harnesses are hermetic: every path they hand the library lies in a
//! fresh temporary directory, every TCP address a marker can name is a
//! loopback one (a case that could make the library probe anything else is
//! not probed), and the default runtime directory is pointed into a
//! temporary directory before the first call.

pub mod c_abi;
pub mod marker_dir;
pub mod snapshot;

use std::sync::OnceLock;

/// A pid that belonged to a process which exited and was reaped by us.
pub fn dead_pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(|| {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn `true`");
        let pid = child.id();
        child.wait().expect("reap `true`");
        pid
    })
}

/// True when `kill(pid, 0)` says ESRCH (no such process).
pub fn is_dead(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// This boot's id and this process's start time (field 22 of
/// `/proc/self/stat`), as a writer records them.
pub fn own_identity() -> (String, u64) {
    static ID: OnceLock<(String, u64)> = OnceLock::new();
    ID.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
        let ticks = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(19))
            .and_then(|t| t.parse().ok())
            .expect("field 22 of /proc/self/stat");
        (boot, ticks)
    })
    .clone()
}

/// A valid `metadata.toml` for sandbox `id` and `pid`.
pub fn metadata(id: &str, pid: u32) -> String {
    format!(
        "sandbox_id = {}\nagent_id = \"agent\"\nsession_id = \"session\"\n\
         authority_url = \"https://authority.invalid\"\npolicy_bundle_version = \"v1\"\n\
         pid = {pid}\nstarted_at = \"2026-11-29T12:00:00Z\"\n",
        toml_string(id)
    )
}

/// A TOML basic string holding `s` exactly.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
