//! `firma sidecar watch` as a user runs it: NDJSON or readable lines, one
//! per event as it happens, and exit 0 on SIGINT/SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;
use firma_stack::sidecar_markers::Event;

struct Stream {
    child: Option<std::process::Child>,
    lines: mpsc::Receiver<String>,
}

fn start(runtime: &std::path::Path, extra: &[&str]) -> Stream {
    let mut child = Command::new(FIRMA)
        .arg("--runtime-dir")
        .arg(runtime)
        .args(["sidecar", "watch"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    Stream {
        child: Some(child),
        lines,
    }
}

impl Stream {
    /// The next line, within an upper bound that proves it is not held
    /// back (flushed per event).
    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(5))
            .expect("no line from firma sidecar watch within 5 s")
    }

    fn stop(mut self, signal: i32) -> i32 {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn json_stream_reports_each_event_as_it_happens_and_exits_0_on_sigterm() {
    let rt = runtime();
    let a = Sidecar::start(rt.path(), "cli-a", &[]);
    let s = start(rt.path(), &["--json", "--probe-interval-ms", "60000"]);
    let first: Event = serde_json::from_str(&s.line()).unwrap();
    assert!(
        matches!(&first, Event::Appeared { sandbox_id, entry, .. } if sandbox_id == "cli-a" && entry.pid == a.pid),
        "{first:?}"
    );
    let synced: serde_json::Value = serde_json::from_str(&s.line()).unwrap();
    assert_eq!(synced["event"], "synced");
    let b = Sidecar::start(rt.path(), "cli-b", &[]);
    let ev: Event = serde_json::from_str(&s.line()).unwrap();
    assert_eq!(ev.sandbox_id(), Some("cli-b"), "{ev:?}");
    b.kill_and_reap();
    // (cli-b may first be reported changed to running: its marker can
    // appear just before its socket does; and, killed, unhealthy: its
    // socket closes while it exits, before its process is gone.)
    let gone = loop {
        let v: serde_json::Value = serde_json::from_str(&s.line()).unwrap();
        if v["event"] != "changed" {
            break v;
        }
        let state = &v["entry"]["state"];
        assert!(state == "running" || state == "unhealthy", "{v}");
    };
    assert_eq!(gone["event"], "gone");
    assert_eq!(gone["sandbox_id"], "cli-b");
    assert_eq!(gone["reason"], "collected");
    assert_eq!(s.stop(libc::SIGTERM), 0);
}

#[test]
fn readable_lines_escape_marker_text_and_exit_0_on_sigint() {
    let rt = runtime();
    write_marker(
        rt.path(),
        "cli-esc",
        &metadata("cli-esc", std::process::id().into(), "")
            .replace("agent = \"agent\"", "")
            .replace(
                "agent_id = \"agent\"",
                "agent_id = \"evil\\nline\\u001b[31m\"",
            ),
    );
    let s = start(rt.path(), &["--no-gc"]);
    let line = s.line();
    assert!(
        line.contains("  cli-esc  appeared  unhealthy  pid "),
        "{line}"
    );
    assert!(line.contains("agent evil\\nline\\u{1b}[31m"), "{line}");
    assert!(!line.contains('\u{1b}'));
    let synced = s.line();
    assert!(synced.ends_with("  synced"), "{synced}");
    assert_eq!(s.stop(libc::SIGINT), 0);
}

#[test]
fn bad_probe_interval_is_a_usage_error() {
    let rt = runtime();
    let (code, _, err) = firma_in(rt.path(), &["sidecar", "watch", "--probe-interval-ms", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("probe-interval-ms"), "{err}");
}
