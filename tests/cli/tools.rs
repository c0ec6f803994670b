//! The outside programs the metrics and exporter tests run for real —
//! promtool, systemd-analyze, node_exporter, Prometheus, Alertmanager —
//! and what starting them takes: a process guarded for the test's life,
//! a one-shot run, a free port, a file of this repository. `make
//! metrics-tools` installs them; a missing one fails, never skips.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A child process killed and reaped on drop; with PR_SET_PDEATHSIG it also
/// dies if the test process dies first. Its stdout and stderr go to `log`.
pub struct Guarded {
    pub name: &'static str,
    pub child: Child,
    log: PathBuf,
}

impl Guarded {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Guarded {
        let err = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(err.try_clone().unwrap())
            .stderr(err);
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            let hint = if name.starts_with("prometheus") {
                " (installed by `make metrics-tools`; these tests never skip without it)"
            } else {
                ""
            };
            panic!("cannot start {name}: {e}{hint}")
        });
        Guarded { name, child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the child's output if it has exited.
    pub fn check_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus or Alertmanager (`name`, which take the same flags) with
/// `config`, listening on 127.0.0.1:`port`, its data in `work/<name>` and
/// its output in `work/<name>.log`.
pub fn prometheus_server(name: &'static str, config: &Path, work: &Path, port: u16) -> Guarded {
    let (storage_flag, extra): (&str, &[&str]) = match name {
        "prometheus" => ("--storage.tsdb.path", &[]),
        // No gossip: a single Alertmanager of its own.
        "prometheus-alertmanager" => ("--storage.path", &["--cluster.listen-address="]),
        _ => panic!("not a Prometheus server: {name}"),
    };
    Guarded::spawn(
        name,
        Command::new(name)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("{storage_flag}={}", work.join(name).display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra),
        work.join(format!("{name}.log")),
    )
}

/// Runs `cmd args…` with `stdin`; returns (exit code, stdout + stderr).
pub fn run_tool(cmd: &str, args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {cmd}: {e} (installed by `make metrics-tools`; never skipped)")
        });
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// promtool on what this repository ships: `check metrics` on each
/// exposition (exit 0, not a word of complaint), then `check rules` on the
/// rule file `rules` and `test rules` on its unit tests `rule_tests` (paths
/// in this repository; both exit 0). Returns the outputs of the two rule
/// runs.
pub fn promtool_checks(expositions: &[&str], rules: &str, rule_tests: &str) -> (String, String) {
    for text in expositions {
        let (code, out) = run_tool("promtool", &["check", "metrics"], text.as_bytes());
        assert_eq!((code, out.as_str()), (0, ""), "promtool on:\n{text}");
    }
    let rule_run = |verb: &str, rel: &str| {
        let path = repo_file(rel);
        let (code, out) = run_tool("promtool", &[verb, "rules", path.to_str().unwrap()], b"");
        assert_eq!(code, 0, "promtool {verb} rules {rel}: {out}");
        out
    };
    (rule_run("check", rules), rule_run("test", rule_tests))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `rel`, a path in this repository.
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
