//! The scenario's processes: `sleeper` (alive until the teardown),
//! `zombie` (exited, not reaped) and `dead` (exited and reaped, its pid
//! free), each forked before any thread exists.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fixture::{FIXTURE, check};
use crate::scenario::{Res, Scenario};

/// Starts every process of `"processes"` and adds its placeholders:
/// `{pid:NAME}`, and `{ticks:NAME}` / `{other_ticks:NAME}` (its start time,
/// and one it does not have) where `/proc` shows it.
pub fn start_all(scenario: &Scenario, ph: &mut BTreeMap<String, Value>) -> Res<()> {
    let Some(procs) = scenario.get("processes") else {
        return Ok(());
    };
    let procs = procs.as_object().ok_or("processes must be an object")?;
    for (pname, kind) in procs {
        let pid = start_process(kind.as_str().unwrap_or(""))
            .map_err(|e| format!("process {pname:?}: {e}"))?;
        ph.insert(format!("pid:{pname}"), json!(pid));
        if let Some(ticks) = start_ticks(pid) {
            ph.insert(format!("ticks:{pname}"), json!(ticks));
            ph.insert(format!("other_ticks:{pname}"), json!(ticks + 7));
        }
    }
    Ok(())
}

fn start_process(kind: &str) -> Res<libc::pid_t> {
    if !matches!(kind, "sleeper" | "zombie" | "dead") {
        return Err(format!("kind {kind:?} is not one of sleeper, zombie, dead"));
    }
    // SAFETY: no other thread exists yet; the child only makes
    // async-signal-safe calls before it pauses or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls in the child.
        unsafe {
            if kind == "sleeper" {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                loop {
                    libc::pause();
                }
            }
            libc::_exit(0);
        }
    }
    let mut fx = FIXTURE.lock().unwrap();
    let fx = fx.as_mut().expect("fixture set up");
    match kind {
        "sleeper" => {
            fx.kill.push(pid);
            fx.reap.push(pid);
        }
        "zombie" => {
            fx.reap.push(pid);
            // The kernel finishes the exit asynchronously.
            let mut tries = 0;
            while proc_state(pid).as_deref() != Some("Z") {
                tries += 1;
                if tries > 10_000 {
                    return Err(format!("pid {pid} never became a zombie"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        _ => {
            let mut status = 0;
            // SAFETY: reaping our own child.
            check(unsafe { libc::waitpid(pid, &mut status, 0) }, "waitpid")?;
        }
    }
    Ok(pid)
}

fn proc_stat_fields(pid: libc::pid_t) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

fn proc_state(pid: libc::pid_t) -> Option<String> {
    proc_stat_fields(pid)?.into_iter().next()
}

/// Field 22 of /proc/<pid>/stat (the 20th after the command name).
fn start_ticks(pid: libc::pid_t) -> Option<u64> {
    proc_stat_fields(pid)?.get(19)?.parse().ok()
}
