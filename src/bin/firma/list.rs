//! `firma sidecar status|get|inspect|gc`: the commands that read (and, for
//! status and gc, collect) the markers of a runtime directory and print
//! them as a table, JSON or ids.

use firma_stack::sidecar_markers::{
    self as sm, Filter, ScanOptions, ScanReport, SidecarEntry, StackError, text,
};

use crate::args::{ProbeArgs, SelectArgs, ShapeArgs, StatusArgs};
use crate::ctx::{Ctx, untrusted_note};
use crate::output::{EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, Output, json_line};
use crate::render;
use crate::shape::{self, Kind};

/// One line for a person from a core error.
fn message(e: &StackError) -> String {
    e.info().message
}

/// `firma sidecar status`.
pub fn status(ctx: &Ctx, a: StatusArgs) -> Result<Output, String> {
    for id in &a.sandbox_ids {
        sm::validate_sandbox_id(id).map_err(|e| message(&e))?;
    }
    let mut filter = a.select.filter();
    filter.sandbox_ids = a.sandbox_ids.clone();
    let opts = ScanOptions {
        probe: Some(ctx.probe(a.probe)),
        collect: !a.no_gc,
    };
    let report = sm::scan(&ctx.dir, &opts).map_err(|e| message(&e))?;
    let mut live: Vec<&SidecarEntry> = report
        .live
        .iter()
        .filter(|e| filter.matches_entry(e))
        .collect();
    shape::sort(&mut live, a.shape.sort.as_deref(), Kind::Entries)?;
    let mut out = Output::default();
    let table = !a.json && !a.quiet && !a.shape.json_lines && a.shape.format.is_none();
    if a.json {
        out.stdout = json_line(&live)?;
    } else if a.shape.json_lines {
        out.stdout = json_lines(&live)?;
    } else if a.quiet {
        for e in &live {
            out.stdout.push_str(&text::escape(&e.sandbox_id));
            out.stdout.push('\n');
        }
    } else {
        out.stdout = shape::print(&live, Kind::Entries, &a.shape, render::colour_wanted())?;
    }
    if let Some(w) = &report.untrusted {
        out.note(untrusted_note(w));
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else {
        if table && filter.is_empty() && report.live.is_empty() {
            out.note(format!("no live sidecars in {}", ctx.shown()));
        }
        scan_notes(&mut out, &report, true);
    }
    Ok(out)
}

/// One JSON value per line.
fn json_lines<T: serde::Serialize>(items: &[T]) -> Result<String, String> {
    let mut s = String::new();
    for i in items {
        s.push_str(&json_line(i)?);
    }
    Ok(s)
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
pub fn get(
    ctx: &Ctx,
    ids: &[String],
    json: bool,
    select: &SelectArgs,
    shape: &ShapeArgs,
    probe: ProbeArgs,
) -> Result<Output, String> {
    // Bad input is refused before anything is looked at.
    for id in ids {
        sm::validate_sandbox_id(id).map_err(|e| message(&e))?;
    }
    let filter = select.filter();
    let opts = ctx.probe(probe);
    let mut out = Output::default();
    let mut found: Vec<Option<SidecarEntry>> = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    let mut failed = false;
    for id in ids {
        match sm::get_with(&ctx.dir, id, &opts) {
            // An entry the selection leaves out is not shown at all.
            Ok(Some(entry)) if filter.matches_entry(&entry) => found.push(Some(entry)),
            Ok(Some(_)) => {}
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
    if shape.sort.is_some() {
        shape::sort(&mut found, shape.sort.as_deref(), Kind::Entries)?;
    }
    if json || shape.json_lines {
        // One value per id and line, always: an entry object, or null.
        // On exit 2 stdout stays empty: a script never takes a partial
        // answer for a whole one.
        if !failed {
            out.stdout = json_lines(&found)?;
        }
    } else if found.iter().any(Option::is_some) {
        let shown: Vec<&SidecarEntry> = found.iter().flatten().collect();
        out.stdout = shape::print(&shown, Kind::Entries, shape, render::colour_wanted())?;
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
    filter: &Filter,
    shape: &ShapeArgs,
    probe: ProbeArgs,
) -> Result<Output, String> {
    let reports = sm::inspect_with(&ctx.dir, &ctx.probe(probe)).map_err(|e| message(&e))?;
    let mut out = Output::default();
    let mut missing = Vec::new();
    let named: Vec<&sm::MarkerReport> = if names.is_empty() {
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
    let mut shown: Vec<&sm::MarkerReport> = named
        .into_iter()
        .filter(|r| filter.matches_report(r))
        .collect();
    shape::sort(&mut shown, shape.sort.as_deref(), Kind::Reports)?;
    if json {
        out.stdout = json_line(&shown)?;
    } else if shape.json_lines {
        out.stdout = json_lines(&shown)?;
    } else {
        out.stdout = shape::print(&shown, Kind::Reports, shape, render::colour_wanted())?;
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else {
        if let Some(w) = ctx.untrusted_warning() {
            out.note(w);
        }
        if names.is_empty() && reports.is_empty() && !json && !shape.json_lines {
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
