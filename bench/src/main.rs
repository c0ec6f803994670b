//! `firma-bench`: the benchmark driver behind `make bench` (issue 6).
//!
//! - `firma-bench fleet DIR N`: create N healthy sidecars under DIR (see
//!   `fleet.rs`), print `ready N`, keep serving until stdin closes, then
//!   kill every child and remove DIR.
//! - `firma-bench worker`: the in-process Rust contender, speaking the
//!   line protocol every worker speaks (see `run.rs`).
//! - `firma-bench run [options]`: the whole benchmark; prints one table.

mod fleet;
mod run;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use firma_stack::sidecar_markers::{self as sm, State};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("fleet") => fleet_main(&args[1..]),
        Some("worker") => worker_main(),
        Some("run") => run::main(&args[1..]),
        _ => Err("usage: firma-bench fleet DIR N | worker | run [options]".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("firma-bench: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn fleet_main(args: &[String]) -> Result<(), String> {
    let [dir, n] = args else {
        return Err("usage: firma-bench fleet DIR N".into());
    };
    let n: usize = n.parse().map_err(|_| format!("bad N {n:?}"))?;
    let fleet = fleet::Fleet::healthy(&PathBuf::from(dir), n).map_err(|e| e.to_string())?;
    println!("ready {}", fleet.len());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Serve until the driver closes our stdin (or dies).
    let mut sink = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut sink)
        .is_ok_and(|n| n > 0)
    {
        sink.clear();
    }
    drop(fleet);
    Ok(())
}

/// The Rust contender: one request per stdin line, one reply per line.
/// Times cover the call and dropping its result.
fn worker_main() -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words[..] {
            ["list", dir, reps] => {
                let reps: usize = reps.parse().unwrap_or(1);
                let (mut entries, mut running) = (0, 0);
                let mut times = Vec::with_capacity(reps);
                for _ in 0..reps {
                    let t = Instant::now();
                    let r = sm::list(dir);
                    if let Ok(v) = &r {
                        entries = v.len();
                        running = v.iter().filter(|e| e.state == State::Running).count();
                    }
                    drop(r.map_err(|e| e.to_string())?);
                    times.push(t.elapsed().as_nanos().to_string());
                }
                format!("ok {entries} {running} {}", times.join(" "))
            }
            ["get", dir, id, calls] => {
                let calls: usize = calls.parse().unwrap_or(1);
                let mut running = 0;
                let t = Instant::now();
                for _ in 0..calls {
                    let e = sm::get(dir, id).map_err(|e| e.to_string())?;
                    if e.is_some_and(|e| e.state == State::Running) {
                        running += 1;
                    }
                }
                format!("ok {running} {}", t.elapsed().as_nanos())
            }
            ["gc", dir] => {
                let t = Instant::now();
                let removed = sm::gc_stale(dir).map_err(|e| e.to_string())?;
                let ns = t.elapsed().as_nanos();
                format!("ok {} {ns}", removed.len())
            }
            ["quit"] => break,
            _ => format!("err unknown request {line:?}"),
        };
        writeln!(out, "{reply}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}
