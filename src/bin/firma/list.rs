//! `firma sidecar status|get|inspect|gc`: the commands that read (and, for
//! status and gc, collect) the markers of a runtime directory and print
//! them as a table, JSON or ids.

use firma_stack::sidecar_markers::{self as sm, ScanOptions, ScanReport, StackError, text};

use crate::args::ProbeArgs;
use crate::ctx::{Ctx, untrusted_note};
use crate::output::{EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, Output, json_line};
use crate::render;

/// One line for a person from a core error.
fn message(e: &StackError) -> String {
    e.info().message
}

/// `firma sidecar status`.
pub fn status(
    ctx: &Ctx,
    json: bool,
    quiet: bool,
    no_gc: bool,
    probe: ProbeArgs,
) -> Result<Output, String> {
    let opts = ScanOptions {
        probe: Some(ctx.probe(probe)),
        collect: !no_gc,
    };
    let report = sm::scan(&ctx.dir, &opts).map_err(|e| message(&e))?;
    let mut out = Output::default();
    if json {
        out.stdout = json_line(&report.live)?;
    } else if quiet {
        for e in &report.live {
            out.stdout.push_str(&text::escape(&e.sandbox_id));
            out.stdout.push('\n');
        }
    } else {
        out.stdout = render::entries_table(&report.live, render::colour_wanted());
    }
    if let Some(w) = &report.untrusted {
        out.note(untrusted_note(w));
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else {
        if !json && !quiet && report.live.is_empty() {
            out.note(format!("no live sidecars in {}", ctx.shown()));
        }
        scan_notes(&mut out, &report, true);
    }
    Ok(out)
}

/// The stderr lines of a scan: what it collected (when `show_collected`),
/// what it skipped, and each problem it met.
fn scan_notes(out: &mut Output, report: &ScanReport, show_collected: bool) {
    let collected = &report.collected;
    if show_collected && !collected.is_empty() {
        out.note(format!(
            "collected {}: {}",
            render::count(collected.len(), "stale marker"),
            render::name_list(collected)
        ));
    }
    if !report.broken.is_empty() {
        let n = report.broken.len();
        out.note(format!(
            "{} could not be read: {} (see firma sidecar inspect)",
            render::count(n, "marker"),
            render::name_list(&report.broken)
        ));
    }
    for p in &report.problems {
        out.note(text::escape(&p.error.message));
    }
}

/// `firma sidecar get`.
pub fn get(ctx: &Ctx, ids: &[String], json: bool, probe: ProbeArgs) -> Result<Output, String> {
    // Bad input is refused before anything is looked at.
    for id in ids {
        sm::validate_sandbox_id(id).map_err(|e| message(&e))?;
    }
    let opts = ctx.probe(probe);
    let mut out = Output::default();
    let mut found = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    let mut failed = false;
    for id in ids {
        match sm::get_with(&ctx.dir, id, &opts) {
            Ok(Some(entry)) => found.push(Some(entry)),
            Ok(None) => {
                missing.push(id);
                found.push(None);
            }
            // One id: exactly the error, as before several were accepted.
            Err(e) if ids.len() == 1 => return Err(message(&e)),
            Err(e) => {
                out.note(message(&e));
                failed = true;
                found.push(None);
            }
        }
    }
    out.code = if failed {
        EXIT_ERROR
    } else if missing.is_empty() {
        EXIT_OK
    } else {
        EXIT_NOT_FOUND
    };
    if json {
        // On exit 2 stdout stays empty: a script never takes a partial
        // answer for a whole one.
        if !failed {
            out.stdout = match found.as_slice() {
                [one] => json_line(one)?,
                many => json_line(&many)?,
            };
        }
    } else if found.iter().any(Option::is_some) {
        out.stdout = render::entries_table(found.iter().flatten(), render::colour_wanted());
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else if let Some(w) = ctx.untrusted_warning() {
        out.note(w);
    }
    for id in missing {
        out.note(format!(
            "no sidecar \"{}\" in {}",
            text::escape(id),
            ctx.shown()
        ));
    }
    Ok(out)
}

/// `firma sidecar inspect`.
pub fn inspect(
    ctx: &Ctx,
    names: &[String],
    json: bool,
    probe: ProbeArgs,
) -> Result<Output, String> {
    let reports = sm::inspect_with(&ctx.dir, &ctx.probe(probe)).map_err(|e| message(&e))?;
    let mut out = Output::default();
    let mut missing = Vec::new();
    let shown: Vec<&sm::MarkerReport> = if names.is_empty() {
        reports.iter().collect()
    } else {
        names
            .iter()
            .filter_map(|n| {
                let r = reports.iter().find(|r| &r.name == n);
                if r.is_none() {
                    missing.push(n);
                }
                r
            })
            .collect()
    };
    if json {
        out.stdout = json_line(&shown)?;
    } else {
        out.stdout = render::reports_table(shown.iter().copied(), render::colour_wanted());
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else {
        if let Some(w) = ctx.untrusted_warning() {
            out.note(w);
        }
        if names.is_empty() && reports.is_empty() && !json {
            out.note(format!("no markers in {}", ctx.run_shown()));
        }
    }
    for n in &missing {
        out.note(format!(
            "no entry \"{}\" in {}",
            text::escape(n),
            ctx.run_shown()
        ));
    }
    out.code = if missing.is_empty() {
        EXIT_OK
    } else {
        EXIT_NOT_FOUND
    };
    Ok(out)
}

/// `firma sidecar gc`.
pub fn gc(ctx: &Ctx, json: bool) -> Result<Output, String> {
    let opts = ScanOptions {
        probe: None,
        collect: true,
    };
    let report = sm::scan(&ctx.dir, &opts).map_err(|e| message(&e))?;
    if let Some(w) = &report.untrusted {
        // What gc_stale refuses with untrusted_directory; the scan removed
        // nothing.
        return Err(format!(
            "refusing to collect stale markers: {}",
            text::escape(w)
        ));
    }
    let mut out = Output::default();
    if json {
        out.stdout = json_line(&report.collected)?;
    } else {
        for id in &report.collected {
            out.stdout
                .push_str(&format!("removed {}\n", text::escape(id)));
        }
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else {
        if report.collected.is_empty() && !json {
            out.note(format!("no stale markers in {}", ctx.shown()));
        }
        scan_notes(&mut out, &report, false);
    }
    Ok(out)
}
