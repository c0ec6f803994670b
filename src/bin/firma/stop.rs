//! `firma sidecar stop ID…`: the command's logic (the core's
//! [`stop`](firma_stack::sidecar_markers::stop) does the work; the options
//! are [`StopArgs`]).
//!
//! Exit codes: 0 every named sidecar is gone; 1 a marker does not exist;
//! 3 `--no-kill` was given and a sidecar is still running after the grace
//! period (its marker is kept); 2 an error or a refusal (nothing was
//! signalled for that id). With several ids every id is handled, at most
//! [`PARALLEL`] at once (`--all`: every live sidecar the selection
//! matches); the exit code is the worst seen, in the order 2, 3, 1, 0
//! (`--ignore-missing`: a missing marker counts as 0). `--json` prints one
//! element per id on every exit, in the order of the ids: the outcome,
//! `null` for a missing marker, `{"sandbox_id", "error"}` for a failure.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use firma_stack::sidecar_markers::{self as sm, ScanOptions, StopOptions, StopOutcome};

use crate::args::StopArgs;

/// At most this many sidecars are stopped at once.
pub const PARALLEL: usize = 16;

/// The ids `--all` stops: every live sidecar the selection matches (one
/// read-only scan; nothing is collected).
fn selected(dir: &Path, args: &StopArgs) -> Result<Vec<String>, String> {
    let filter = args.select.filter();
    let opts = ScanOptions {
        // States other than stopped need the probe.
        probe: Some(sm::ProbeOptions::default()),
        collect: false,
    };
    let report = sm::scan(dir, &opts).map_err(|e| e.info().message)?;
    Ok(report
        .live
        .into_iter()
        .filter(|e| filter.matches_entry(e))
        .map(|e| e.sandbox_id)
        .collect())
}

/// Runs `work` on every id, at most [`PARALLEL`] at a time; the results in
/// the order of `ids`.
fn in_parallel<T: Send>(ids: &[String], work: impl Fn(&str) -> T + Sync) -> Vec<T> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..ids.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(ids.len()) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(id) = ids.get(i) else { break };
                    let r = work(id);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every id was handled"))
        .collect()
}

/// Stops the ids (in parallel); returns the text for stdout and the exit
/// code. Per-id errors go to stderr, in the order of the ids.
pub fn run(dir: &Path, args: &StopArgs) -> Result<(String, u8), String> {
    let opts = StopOptions {
        signal: args.signal,
        grace: Duration::from_millis(args.grace_ms),
        kill: !args.no_kill,
        verify_identity: !args.no_identity_check,
    };
    let ids = if args.all {
        let ids = selected(dir, args)?;
        if ids.is_empty() {
            eprintln!("firma: no live sidecar matches in {}", dir.display());
        }
        ids
    } else {
        // Bad input is refused before anything is signalled.
        for id in &args.sandbox_ids {
            sm::validate_sandbox_id(id).map_err(|e| e.info().message)?;
        }
        args.sandbox_ids.clone()
    };
    let results = in_parallel(&ids, |id| sm::stop(dir, id, &opts));
    let mut out = String::new();
    let mut json = Vec::new();
    let (mut error, mut running, mut missing) = (false, false, false);
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(Some(o)) => {
                running |= !o.exited;
                if !o.exited && opts.kill {
                    // Still alive, though the caller asked for SIGKILL: say
                    // what was sent, never a SIGKILL that was not.
                    error = true;
                    eprintln!("firma: {}", still_running(id, &o));
                }
                if !args.json {
                    out.push_str(&human(&o));
                }
                json.push(to_json(&o)?);
            }
            Ok(None) => {
                if !args.ignore_missing {
                    missing = true;
                    eprintln!("firma: no sidecar {id:?} in {}", dir.display());
                }
                json.push("null".to_owned());
            }
            Err(e) => {
                error = true;
                eprintln!("firma: {e}");
                json.push(to_json(&Failed {
                    sandbox_id: id,
                    error: e.info(),
                })?);
            }
        }
    }
    if args.json {
        out = format!("[{}]\n", json.join(","));
    }
    let code = if error {
        2
    } else if running {
        3
    } else if missing {
        1
    } else {
        0
    };
    Ok((out, code))
}

/// Why a stop that was to end with SIGKILL left the process running, as
/// the outcome shows it: after this call's SIGKILL, or with no signal sent
/// by this call (another stop of it held the stop lock and has not ended
/// it yet).
fn still_running(id: &str, o: &StopOutcome) -> String {
    if o.killed {
        format!(
            "sidecar {id:?} (pid {}) is still running {} ms after SIGKILL",
            o.pid,
            sm::KILL_WAIT.as_millis()
        )
    } else if o.signals.is_empty() {
        format!(
            "sidecar {id:?} (pid {}) is still running after {} ms; this call sent no signal: \
             another stop of it holds the stop lock and has not ended it",
            o.pid, o.waited_ms
        )
    } else {
        format!(
            "sidecar {id:?} (pid {}) is still running after {} ms; this call sent {}",
            o.pid,
            o.waited_ms,
            o.signals.join(", then ")
        )
    }
}

/// The element of `--json` for an id that failed.
#[derive(serde::Serialize)]
struct Failed<'a> {
    sandbox_id: &'a str,
    error: sm::ErrorInfo,
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("cannot serialize output: {e}"))
}

fn human(o: &StopOutcome) -> String {
    let sent = if o.signals.is_empty() {
        "no signal sent".to_owned()
    } else {
        format!("sent {}", o.signals.join(", then "))
    };
    let state = if o.exited {
        format!("exited (waited {} ms)", o.waited_ms)
    } else {
        format!("still running after {} ms", o.waited_ms)
    };
    let marker = match (o.collected, o.exited) {
        (true, _) => "marker removed",
        (false, true) => "marker already gone",
        (false, false) => "marker kept",
    };
    format!(
        "{} (pid {}): {sent}; {state}; {marker}\n",
        o.sandbox_id, o.pid
    )
}
