//! The worker line protocol: every in-process contender (Rust, C, Python,
//! Go, the C floor) is a long-lived process answering one request per stdin
//! line, timing the call itself.
//!
//! ```text
//! list DIR REPS      -> ok ENTRIES RUNNING NS...   (one time per rep)
//! get DIR ID CALLS   -> ok RUNNING NS              (all calls together)
//! gc DIR             -> ok REMOVED NS              (Rust worker only)
//! quit
//! ```
//! Anything else is answered `err MESSAGE`. A time covers the call and
//! releasing its result, never counting entries.
//!
//! [`Worker`] is the driver's side; [`serve_rust`] is the Rust contender
//! (`firma-bench worker`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use firma_stack::sidecar_markers::{self as sm, State};

use crate::Res;

/// A running worker process. Dropping it sends `quit` and reaps it.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// The numbers of a `list` reply.
pub struct Listing {
    pub entries: usize,
    pub running: usize,
    /// Nanoseconds, one per rep.
    pub times: Vec<f64>,
}

impl Worker {
    pub fn start(mut cmd: Command) -> Res<Worker> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Worker {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends one request; returns the numbers after `ok`, at least `min`.
    pub fn ask(&mut self, req: &str, min: usize) -> Res<Vec<u64>> {
        let stdin = self.stdin.as_mut().ok_or("worker closed")?;
        writeln!(stdin, "{req}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("worker stdin: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("worker stdout: {e}"))?;
        let line = line.trim_end();
        let v: Vec<u64> = match line.strip_prefix("ok ") {
            Some(rest) => rest
                .split_whitespace()
                .map(|w| w.parse().map_err(|_| format!("bad reply {line:?}")))
                .collect::<Res<_>>()?,
            None if line.is_empty() => return Err("worker exited".into()),
            None => return Err(format!("worker: {line}")),
        };
        if v.len() < min {
            return Err(format!("short reply {line:?} to {req:?}"));
        }
        Ok(v)
    }

    /// `list DIR REPS`.
    pub fn list(&mut self, dir: &str, reps: usize) -> Res<Listing> {
        let v = self.ask(&format!("list {dir} {reps}"), 3)?;
        Ok(Listing {
            entries: v[0] as usize,
            running: v[1] as usize,
            times: v[2..].iter().map(|&t| t as f64).collect(),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        let _ = self.child.wait();
    }
}

/// The Rust contender: answers the protocol on stdin/stdout until `quit`
/// or end of input. A failed call is answered `err MESSAGE`.
pub fn serve_rust() -> Res<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words[..] {
            ["list", dir, reps] => count(reps).and_then(|reps| rust_list(dir, reps)),
            ["get", dir, id, calls] => count(calls).and_then(|calls| rust_get(dir, id, calls)),
            ["gc", dir] => rust_gc(dir),
            ["quit"] => break,
            _ => Err(format!("unknown request {line:?}")),
        };
        let reply = reply.unwrap_or_else(|e| format!("err {e}"));
        writeln!(out, "{reply}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn count(word: &str) -> Res<usize> {
    word.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("bad count {word:?}: a positive integer is needed"))
}

fn rust_list(dir: &str, reps: usize) -> Res<String> {
    let (mut entries, mut running) = (0, 0);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let v = sm::list(dir).map_err(|e| e.to_string())?;
        let call = t.elapsed();
        entries = v.len();
        running = v.iter().filter(|e| e.state == State::Running).count();
        let t = Instant::now();
        drop(v);
        times.push((call + t.elapsed()).as_nanos().to_string());
    }
    Ok(format!("ok {entries} {running} {}", times.join(" ")))
}

fn rust_get(dir: &str, id: &str, calls: usize) -> Res<String> {
    let mut running = 0;
    let t = Instant::now();
    for _ in 0..calls {
        let e = sm::get(dir, id).map_err(|e| e.to_string())?;
        if e.is_some_and(|e| e.state == State::Running) {
            running += 1;
        }
    }
    Ok(format!("ok {running} {}", t.elapsed().as_nanos()))
}

fn rust_gc(dir: &str) -> Res<String> {
    let t = Instant::now();
    let removed = sm::gc_stale(dir).map_err(|e| e.to_string())?;
    Ok(format!("ok {} {}", removed.len(), t.elapsed().as_nanos()))
}
