//! What is measured: one module per scenario, run in the order of
//! [`registry`].
//!
//! The driver ([`crate::run`]) calls every scenario's hooks in registry
//! order: [`Scenario::before_fleets`] once, [`Scenario::with_fleet`] while
//! each healthy fleet of the plan stands (fleets are costly, so scenarios
//! share them), [`Scenario::after_fleets`] once (for scenarios that lay
//! down fixtures of their own), then [`Scenario::render`] for the table and
//! [`Scenario::targets`] for the targets table. Samples go to
//! [`Bench::record`], which also feeds samples.tsv; a scenario may read
//! another's samples (e.g. the floor per marker) through [`Bench::median`].
//!
//! Adding a scenario: a new module here implementing [`Scenario`], and one
//! line in [`registry`] (see bench/README.md).

mod containers;
mod exporter;
mod get;
mod healthy;
mod probe_method;
mod rss;
mod stale;
mod syn;
mod syscalls;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Res;
use crate::contenders::{Contender, Pending};
use crate::stats::{median, paired_ratio};
use crate::table::Target;
use crate::worker::Worker;

/// Every scenario by name (what `firma-bench run --only` takes), in the
/// order it is run and printed.
pub fn registry(level: Level) -> Vec<(&'static str, Box<dyn Scenario>)> {
    vec![
        ("healthy", Box::new(healthy::Healthy::new(level))),
        (
            "probe_method",
            Box::new(probe_method::ProbeMethod::new(level)),
        ),
        ("get", Box::new(get::Get::new(level))),
        ("stale", Box::new(stale::Stale::new(level))),
        ("containers", Box::new(containers::Containers::new(level))),
        ("syn", Box::new(syn::Syn::new(level))),
        ("syscalls", Box::new(syscalls::Syscalls::new(level))),
        ("rss", Box::new(rss::Rss::new(level))),
        ("watch", Box::new(watch::Watch::new(level))),
        ("exporter", Box::new(exporter::Exporter::new(level))),
    ]
}

/// One benchmark scenario. Every hook but `render` does nothing by default.
pub trait Scenario {
    /// Before any fleet stands (zero-marker baselines).
    fn before_fleets(&mut self, _b: &mut Bench) -> Res<()> {
        Ok(())
    }
    /// While a healthy fleet of `fleet.n` sidecars stands in `fleet.dir`.
    fn with_fleet(&mut self, _b: &mut Bench, _fleet: &FleetAt) -> Res<()> {
        Ok(())
    }
    /// After the last fleet is gone.
    fn after_fleets(&mut self, _b: &mut Bench) -> Res<()> {
        Ok(())
    }
    /// Its section(s) of the table.
    fn render(&self, b: &Bench, o: &mut String);
    /// Its rows of the targets table.
    fn targets(&self, _b: &Bench) -> Vec<Target> {
        Vec::new()
    }
}

/// A fleet standing while [`Scenario::with_fleet`] runs.
pub struct FleetAt<'a> {
    pub size: FleetSize,
    pub n: usize,
    pub dir: &'a Path,
}

impl FleetAt<'_> {
    /// The directory as worker requests name it.
    pub fn dir_s(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Runs `measure` if this fleet's size is one of `sizes`; its error is
    /// a warning (`what at N: …`) and the run goes on with the next fleet.
    pub fn measure_at(
        &self,
        b: &mut Bench,
        sizes: &[usize],
        what: &str,
        measure: impl FnOnce(&mut Bench) -> Res<()>,
    ) {
        if sizes.contains(&self.n)
            && let Err(e) = measure(b)
        {
            b.warn(format!("{what} at {}: {e}", self.n));
        }
    }
}

pub use crate::cli::{FleetSize, Level};

/// What every scenario shares: the programs, the contenders, the samples.
pub struct Bench {
    pub level: Level,
    pub fleets: Vec<FleetSize>,
    /// Scratch directory of this run (removed at the end).
    pub base: PathBuf,
    /// Runtime dirs live under this (tmpfs when there is one).
    pub work: PathBuf,
    pub firma: PathBuf,
    pub example: PathBuf,
    pub floor: PathBuf,
    pub contenders: Vec<Contender>,
    /// (what, contender, N) -> samples in nanoseconds, one per round.
    pub samples: BTreeMap<(&'static str, &'static str, usize), Vec<f64>>,
    /// Results that look wrong; printed with ⚠ (and failing `--strict`).
    pub warnings: Vec<String>,
    /// Things skipped on purpose (e.g. no strace); printed, not failing.
    pub notes: Vec<String>,
}

impl Bench {
    pub fn record(&mut self, what: &'static str, who: &'static str, n: usize, ns: f64) {
        self.samples.entry((what, who, n)).or_default().push(ns);
    }

    pub fn samples(&self, what: &'static str, who: &'static str, n: usize) -> Option<&[f64]> {
        self.samples.get(&(what, who, n)).map(Vec::as_slice)
    }

    /// Median of the samples (NaN when there are none).
    pub fn median(&self, what: &'static str, who: &'static str, n: usize) -> f64 {
        self.samples(what, who, n).map(median).unwrap_or(f64::NAN)
    }

    /// `a / b` paired round by round (NaN when either is missing).
    pub fn ratio(&self, what: &'static str, a: &'static str, b: &'static str, n: usize) -> f64 {
        match (self.samples(what, a, n), self.samples(what, b, n)) {
            (Some(x), Some(y)) => paired_ratio(x, y),
            _ => f64::NAN,
        }
    }

    /// A runtime directory `name` with an empty `run/`, in this run's
    /// scratch directory: what a scenario measures at zero markers.
    pub fn empty_runtime(&self, name: &str) -> Res<PathBuf> {
        let dir = self.base.join(name);
        std::fs::create_dir_all(dir.join("run")).map_err(|e| e.to_string())?;
        Ok(dir)
    }

    pub fn warn(&mut self, msg: String) {
        eprintln!("bench: ⚠ {msg}");
        self.warnings.push(msg);
    }

    /// The largest healthy fleet of the plan.
    pub fn largest(&self) -> usize {
        self.fleets.last().map(|f| f.n).unwrap_or(0)
    }

    pub fn contender(&mut self, name: &'static str) -> Option<&mut Contender> {
        self.contenders.iter_mut().find(|c| c.name == name)
    }

    /// Runs `f` on the worker of contender `name`. None when it has none
    /// (pending) or `f` failed, which takes it out of the run.
    pub fn ask<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Worker) -> Res<T>,
    ) -> Option<T> {
        let c = self.contender(name)?;
        let got = f(c.worker()?);
        got.map_err(|e| c.fail(e)).ok()
    }

    /// Contenders that broke during the run, with why.
    pub fn failed(&self) -> Vec<(&'static str, &str)> {
        self.contenders
            .iter()
            .filter_map(|c| match c.pending() {
                Some(Pending::Failed(why)) => Some((c.name, why.as_str())),
                _ => None,
            })
            .collect()
    }
}
