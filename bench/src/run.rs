//! `firma-bench run`: every scenario of [`crate::scenarios::registry`] over
//! every contender of [`crate::contenders::all`], then one table.
//!
//! Contenders alternate round-robin within each round, so drift of a shared
//! machine lands on all of them alike; the table shows medians over rounds
//! and ratios that are medians of per-round ratios.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Res;
use crate::cli::RunArgs;
use crate::contenders::{self, Pending};
use crate::fleet::raise_nofile;
use crate::procs::{FleetProc, RemoveOnDrop, loadavg};
use crate::scenarios::{Bench, FleetAt, Level, Scenario, registry};
use crate::table;

pub fn main(args: &RunArgs) -> Res<()> {
    let level = args.level();
    let started = Instant::now();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    // Before our own fleets add to it.
    let load = loadavg();
    raise_nofile(65_536, 1_024).map_err(|e| format!("raise RLIMIT_NOFILE: {e}"))?;
    let work = args.work_dir();
    let base = work.join(format!("firma-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let _cleanup = RemoveOnDrop(base.clone());
    let firma = args.target.join("firma");
    let example = args.target.join("firma-example-sidecar");
    for p in [&firma, &example, &args.floor] {
        if !p.is_file() {
            return Err(format!("{} is missing (run `make bench`)", p.display()));
        }
    }
    let mut fleets = level.fleets();
    if !args.at.is_empty() {
        let plan: Vec<usize> = fleets.iter().map(|f| f.n).collect();
        if let Some(n) = args.at.iter().find(|n| !plan.contains(n)) {
            return Err(format!("--at {n}: not a fleet of this run's plan {plan:?}"));
        }
        fleets.retain(|f| args.at.contains(&f.n));
    }
    let mut b = Bench {
        level,
        fleets,
        base,
        work,
        contenders: contenders::all(args, &firma)?,
        firma,
        example,
        floor: args.floor.clone(),
        samples: BTreeMap::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    let mut scenarios = selected(level, &args.only)?;
    run_scenarios(&mut b, &mut scenarios)?;

    let mut table = header(args, &b, &date, &load, started.elapsed());
    let mut targets = Vec::new();
    for s in &scenarios {
        s.render(&b, &mut table);
        targets.extend(s.targets(&b));
    }
    table::targets(&mut table, "Targets (BENCHMARKS.md)", &targets);
    footer(&b, &mut table);
    print!("{table}");
    if let Some(out) = &args.out {
        write_out(out, &table, &b)?;
    }
    let failed = b.failed();
    if args.strict && (!failed.is_empty() || !b.warnings.is_empty()) {
        return Err(format!(
            "--strict: {} contender(s) failed, {} warning(s) (see the table)",
            failed.len(),
            b.warnings.len()
        ));
    }
    Ok(())
}

/// The scenarios of the registry named in `only` (all when it is empty).
fn selected(level: Level, only: &[String]) -> Res<Vec<Box<dyn Scenario>>> {
    let all = registry(level);
    let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    if let Some(bad) = only.iter().find(|o| !names.contains(&o.as_str())) {
        return Err(format!("--only {bad}: no such scenario (one of {names:?})"));
    }
    Ok(all
        .into_iter()
        .filter(|(n, _)| only.is_empty() || only.iter().any(|o| o == n))
        .map(|(_, s)| s)
        .collect())
}

/// The hooks of every scenario, in registry order, around the fleets.
fn run_scenarios(b: &mut Bench, scenarios: &mut [Box<dyn Scenario>]) -> Res<()> {
    for s in scenarios.iter_mut() {
        s.before_fleets(b)?;
    }
    for size in b.fleets.clone() {
        let t = Instant::now();
        let n = size.n;
        let dir = b.base.join(format!("fleet-{n}"));
        let fleet = FleetProc::start(&dir, n)?;
        eprintln!(
            "bench: fleet of {n} healthy sidecars ready ({:.1} s)",
            t.elapsed().as_secs_f64()
        );
        let at = FleetAt { size, n, dir: &dir };
        for s in scenarios.iter_mut() {
            s.with_fleet(b, &at)?;
        }
        drop(fleet);
        eprintln!("bench: N = {n} done in {:.1} s", t.elapsed().as_secs_f64());
    }
    for s in scenarios.iter_mut() {
        s.after_fleets(b)?;
    }
    Ok(())
}

fn header(args: &RunArgs, b: &Bench, date: &str, load: &str, took: Duration) -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut o = String::from("## firma-stack benchmarks\n\n");
    let _ = writeln!(
        o,
        "- machine: `nproc` = **{nproc}**, Linux {}, runtime dirs on {}",
        kernel.trim(),
        b.work.display()
    );
    let _ = writeln!(
        o,
        "- command: `{}`; date: {date}; took {:.0} s; 1-minute load average {load} before the run \
         (the machine is shared: absolute times are noisy; ratios are medians of per-round ratios, \
         which cancel drift between rounds)",
        args.command,
        took.as_secs_f64(),
    );
    let rounds: Vec<String> = b
        .fleets
        .iter()
        .map(|f| format!("N={}: {} rounds × {}", f.n, f.rounds, f.reps))
        .collect();
    let _ = writeln!(
        o,
        "- medians over rounds, contenders alternated round-robin ({}; in-process sample = median of its reps)",
        rounds.join(", ")
    );
    o
}

/// Pending contenders, notes and warnings, after the tables.
fn footer(b: &Bench, o: &mut String) {
    for c in &b.contenders {
        match c.pending() {
            Some(Pending::NotBuilt(why)) => {
                let _ = writeln!(o, "\n- {}: pending: {why}", c.name);
            }
            Some(Pending::Failed(why)) => {
                let _ = writeln!(o, "\n- {}: failed: {why}", c.name);
            }
            None => {}
        }
    }
    for n in &b.notes {
        let _ = writeln!(o, "\n- {n}");
    }
    for w in &b.warnings {
        let _ = writeln!(o, "\n⚠ {w}");
    }
}

/// The table to `out`, every sample to samples.tsv beside it.
fn write_out(out: &Path, table: &str, b: &Bench) -> Res<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(out, table).map_err(|e| format!("{}: {e}", out.display()))?;
    let raw = out.with_file_name("samples.tsv");
    let mut tsv = String::from("what\tcontender\tn\tround\tns\n");
    for ((what, who, n), v) in &b.samples {
        for (r, ns) in v.iter().enumerate() {
            let _ = writeln!(tsv, "{what}\t{who}\t{n}\t{r}\t{ns:.0}");
        }
    }
    std::fs::write(&raw, tsv).map_err(|e| format!("{}: {e}", raw.display()))?;
    eprintln!(
        "bench: table in {}, every sample in {}",
        out.display(),
        raw.display()
    );
    Ok(())
}
