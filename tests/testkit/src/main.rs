//! `firma-testkit`: the one fixture tool of the conformance suite
//! (`tests/conformance/`). Every surface's runner (Rust, C, Python, Go, CLI)
//! asks it to lay down a scenario's fixture and to put answers into one
//! canonical form, so the fixtures and the normalisation exist once.
//!
//! ```text
//! firma-testkit up [--lines] SCENARIO.json
//! ```
//!
//! creates a fresh temporary directory, lays the scenario's fixture down in
//! it — live, zombie and dead processes; serving, wedged, refused and TCP
//! endpoints; markers written by the core's writer or by hand; FIFOs,
//! symlinks and plain files — and prints the plan: one JSON line (or, with
//! `--lines`, a line-based form for C: `place NAME xHEX` lines, `step …`
//! lines, then `ready`) holding the placeholders and every step with its
//! expected answer already substituted and canonicalised. It then answers
//! requests on stdin, one per line:
//!
//! - `canon ok JSON` / `canon error JSON`: the canonical form of a surface's
//!   answer (a success value, or an error object of which `code`, `path` and
//!   `errno` are kept; `uptime_secs` numbers become `"set"`);
//! - `disk N`: the canonical state of the disk for step `N` (the names in
//!   `run/`, and which of the step's `paths` exist).
//!
//! ```text
//! firma-testkit seccomp --errno ERRNO --syscall NAME [--syscall NAME…] -- CMD ARGS…
//! ```
//!
//! runs CMD with the named system calls failing with ERRNO (a real seccomp
//! filter; see [`seccomp`]): the error paths the kernel alone can take.
//!
//! When stdin closes, on SIGTERM/SIGINT/SIGHUP, or when its parent dies
//! (`PR_SET_PDEATHSIG`), it kills and reaps its processes and removes the
//! directory.
//!
//! The modules, each using only those listed before it: [`scenario`] (the
//! file and its keys), [`fixture`] (the directory, the teardown, the
//! signals), [`canon`] (the canonical form), [`placeholders`],
//! [`processes`], [`endpoints`], [`markers`] (markers and other files),
//! [`plan`] (the plan and its printing) and [`requests`] (the stdin loop);
//! [`up`] below runs them in order.

mod canon;
mod endpoints;
mod fixture;
mod markers;
mod placeholders;
mod plan;
mod processes;
mod requests;
mod scenario;
mod seccomp;

use std::path::Path;
use std::process::ExitCode;

use crate::scenario::{Res, Scenario};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("seccomp") {
        return ExitCode::from(seccomp::run(&args[1..]));
    }
    let (lines, scenario) = match args.as_slice() {
        [up, path] if up == "up" => (false, path),
        [up, flag, path] if up == "up" && flag == "--lines" => (true, path),
        _ => {
            eprintln!("usage: firma-testkit up [--lines] SCENARIO.json | seccomp …");
            return ExitCode::from(2);
        }
    };
    match up(Path::new(scenario), lines) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fixture::teardown();
            eprintln!("firma-testkit: {}: {e}", scenario);
            ExitCode::FAILURE
        }
    }
}

/// `firma-testkit up`: lays the fixture down step by step, prints the plan,
/// answers requests until stdin closes, then tears everything down.
fn up(scenario_path: &Path, lines: bool) -> Res<()> {
    // Die with the parent; block the signals every later thread inherits.
    let signals = fixture::arm()?;
    let scenario = Scenario::read(scenario_path)?;
    let dirs = fixture::Dirs::create(&scenario)?;
    let mut ph = fixture::placeholders(&dirs)?;

    // 1. Processes, forked before any thread exists.
    processes::start_all(&scenario, &mut ph)?;
    // Then the signal thread: any of the blocked signals ends the fixture.
    fixture::end_on_signal(signals);

    // 2. TCP endpoints (markers name their port).
    let endpoints = scenario.endpoints()?;
    let mut held = endpoints::bind_tcp(&endpoints, &mut ph)?;

    // 3. Markers.
    let laid = markers::lay_markers(&scenario, &dirs, &ph)?;

    // 4. Unix endpoints (usually inside a marker directory).
    held.extend(endpoints::bind_unix(&endpoints, &ph)?);

    // 5. Other things on disk.
    markers::lay_files(&scenario, &ph)?;

    // 6. The plan.
    let plan = plan::Plan::make(&scenario, &ph, &laid)?;
    plan.print(&scenario, &ph, lines)?;

    // 7. Requests until stdin closes.
    requests::answer_until_eof(&dirs.runtime, &plan.disk_paths);
    drop(held);
    fixture::teardown();
    Ok(())
}
