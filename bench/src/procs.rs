//! Child processes of the driver: whole-process contenders timed from spawn
//! to reaped exit, the fleet process, sidecars and scratch directories that
//! clean up after themselves.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Res;

/// Result of one whole-process run.
pub struct Timed {
    pub wall: Duration,
    pub out: Vec<u8>,
    pub maxrss_kib: u64,
    /// User + system CPU time of the process (all its threads).
    pub cpu: Duration,
}

/// Runs `cmd` to completion, timing it from spawn to reaped exit and taking
/// its peak RSS and CPU time from `wait4`. A non-zero exit is an error.
pub fn run_timed(cmd: &mut Command) -> Res<Timed> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child with valid out-pointers.
        let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
        if rc >= 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("wait4: {e}"));
        }
    }
    let wall = t0.elapsed();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{cmd:?} failed (wait status {status})"));
    }
    Ok(Timed {
        wall,
        out,
        maxrss_kib: ru.ru_maxrss as u64,
        cpu: timeval(ru.ru_utime) + timeval(ru.ru_stime),
    })
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::new(
        t.tv_sec.max(0) as u64,
        (t.tv_usec.clamp(0, 999_999) * 1000) as u32,
    )
}

/// How often `needle` occurs in `hay` (counting entries in JSON output).
pub fn count_sub(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Starts `cmd` with piped stdout and waits for its first line, which must
/// start with `ready`. Returns the child with its stdin (when piped) open.
pub fn spawn_ready(cmd: &mut Command, what: &str) -> Res<Child> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {what}: {e}"))?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
    if read.is_err() || !line.starts_with("ready") {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{what} did not get ready: {line:?}"));
    }
    Ok(child)
}

/// A healthy fleet served by a `firma-bench fleet` process. Dropping it
/// closes the fleet's stdin (it then kills its sidecars) and removes `dir`.
pub struct FleetProc {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

impl FleetProc {
    pub fn start(dir: &Path, n: usize) -> Res<FleetProc> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.arg("fleet")
            .arg(dir)
            .arg(n.to_string())
            .stdin(Stdio::piped());
        let mut child = spawn_ready(&mut cmd, &format!("fleet of {n}"))?;
        Ok(FleetProc {
            stdin: child.stdin.take(),
            child,
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for FleetProc {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the fleet cleans up and exits
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sidecar processes a scenario started itself; SIGTERMed and reaped on drop.
#[derive(Default)]
pub struct Sidecars(pub Vec<Child>);

impl Drop for Sidecars {
    fn drop(&mut self) {
        for c in &self.0 {
            // SAFETY: our own child's pid.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// A scratch directory removed (with everything in it) on drop.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The 1-minute load average, as /proc/loadavg prints it.
/// User + system CPU seconds that the running process `pid` (all its
/// threads) has used so far, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Res<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("no ) in stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = f[11].parse::<f64>().map_err(|e| e.to_string())?
        + f[12].parse::<f64>().map_err(|e| e.to_string())?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}
