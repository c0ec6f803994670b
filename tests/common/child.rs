//! Children a test starts and must never leave behind: shared by the
//! integration tests (through `common`) and by the unit tests of
//! `src/sidecar_markers/gc.rs`, which include this file by `#[path]`. It
//! needs nothing but std.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child killed and reaped when dropped, so a failing test leaves no
/// process behind (holding the harness's output, a lock or a lease).
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `python3 -c script args…`, returned once it printed `ready` on its
/// stdout: the script prints that when its fixture stands. `what` names
/// the fixture in the failure when it never does (the kernel refused it).
pub fn python_ready<S: AsRef<OsStr>>(script: &str, args: &[S], what: &str) -> Reaped {
    let mut child = Reaped(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 must be installed"),
    );
    let line = first_line(&mut child.0);
    assert_eq!(line, "ready\n", "{what}: the child never stood ready");
    child
}

/// The first line a child prints on its (piped) stdout, with its newline;
/// empty when it closed stdout without printing one.
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .expect("read the child's first line");
    line
}
