//! `firma sidecar check` and `firma sidecar wait`: health as an exit
//! status, and waiting on the core's watch stream ([`sm::wait`]) instead
//! of polling.
//!
//! `check` exits 0 only when every id is `running`; otherwise the worst
//! seen, in the order 2 (an error), 1 (no marker), 6 (stopped), 5
//! (unknown), 4 (unhealthy). `wait` exits 0 when every id met the
//! condition, 7 when the timeout passed first, 2 on an error.

use firma_stack::sidecar_markers::{self as sm, State, WaitFor, WaitOptions, text};

use crate::args::{ProbeArgs, WaitArgs};
use crate::ctx::Ctx;
use crate::output::{EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, Output, json_line};

/// `check`: a sidecar is unhealthy.
pub const EXIT_UNHEALTHY: u8 = 4;
/// `check`: a sidecar's state is unknown.
pub const EXIT_UNKNOWN: u8 = 5;
/// `check`: a sidecar has stopped.
pub const EXIT_STOPPED: u8 = 6;
/// `wait`: the timeout passed.
pub const EXIT_TIMEOUT: u8 = 7;

/// How bad each outcome is, for the exit precedence.
fn rank(code: u8) -> u8 {
    match code {
        EXIT_OK => 0,
        EXIT_UNHEALTHY => 1,
        EXIT_UNKNOWN => 2,
        EXIT_STOPPED => 3,
        EXIT_NOT_FOUND => 4,
        _ => 5,
    }
}

fn state_code(s: State) -> u8 {
    match s {
        State::Running => EXIT_OK,
        State::Unhealthy => EXIT_UNHEALTHY,
        State::Unknown => EXIT_UNKNOWN,
        State::Stopped => EXIT_STOPPED,
    }
}

/// `firma sidecar check ID…`: one line per id (`ID STATE`, `ID missing`)
/// unless `quiet`.
pub fn check(ctx: &Ctx, ids: &[String], quiet: bool, probe: ProbeArgs) -> Result<Output, String> {
    for id in ids {
        sm::validate_sandbox_id(id).map_err(|e| e.info().message)?;
    }
    let opts = ctx.probe(probe);
    let mut out = Output::default();
    let mut worst = EXIT_OK;
    for id in ids {
        let (code, word) = match sm::get_with(&ctx.dir, id, &opts) {
            Ok(Some(e)) => (state_code(e.state), e.state.as_str().to_owned()),
            Ok(None) => (EXIT_NOT_FOUND, "missing".to_owned()),
            Err(e) => {
                out.note(e.info().message);
                (EXIT_ERROR, "error".to_owned())
            }
        };
        if rank(code) > rank(worst) {
            worst = code;
        }
        if !quiet {
            out.stdout
                .push_str(&format!("{} {word}\n", text::escape(id)));
        }
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    }
    out.code = worst;
    Ok(out)
}

/// `firma sidecar wait ID… --for running|gone --timeout DUR`.
pub fn wait(ctx: &Ctx, args: &WaitArgs) -> Result<Output, String> {
    let condition = if args.condition == "gone" {
        WaitFor::Gone
    } else {
        WaitFor::Running
    };
    let opts = WaitOptions {
        condition,
        timeout: args.timeout,
        probe: ctx.probe(args.probe),
        ..WaitOptions::default()
    };
    let mut out = Output::default();
    if ctx.missing() {
        out.note(ctx.missing_warning());
    }
    let outcome = sm::wait(&ctx.dir, &args.sandbox_ids, &opts).map_err(|e| e.info().message)?;
    if args.json {
        out.stdout = json_line(&outcome)?;
    } else if !outcome.met {
        for s in outcome.sidecars.iter().filter(|s| !s.met) {
            out.note(format!(
                "{} is {} after {} ms, not {condition}",
                text::escape(&s.sandbox_id),
                s.state.map_or("missing", State::as_str),
                outcome.waited_ms
            ));
        }
    }
    out.code = if outcome.met { EXIT_OK } else { EXIT_TIMEOUT };
    Ok(out)
}
