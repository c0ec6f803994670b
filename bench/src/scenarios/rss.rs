//! Peak RSS of `firma sidecar status --json` at zero markers and over some
//! healthy fleets, and its growth per marker beyond the JSON it prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{Bench, FleetAt, Level, Scenario};
use crate::Res;
use crate::contenders::status_cmd;
use crate::procs::run_timed;
use crate::stats::median;
use crate::table::{Target, head, heading, row};

pub struct Rss {
    /// Fleet sizes measured besides zero.
    at: Vec<usize>,
    runs: usize,
    /// N -> (peak RSS KiB per run, JSON bytes).
    seen: BTreeMap<usize, (Vec<f64>, usize)>,
}

impl Rss {
    pub fn new(level: Level) -> Rss {
        Rss {
            at: level.pick(vec![1_000, 10_000], vec![1_000], vec![100]),
            runs: level.pick(3, 1, 1),
            seen: BTreeMap::new(),
        }
    }

    fn measure(&mut self, b: &Bench, dir: &Path, n: usize) -> Res<()> {
        for _ in 0..self.runs {
            let t = run_timed(&mut status_cmd(&b.firma, dir))?;
            let e = self.seen.entry(n).or_default();
            e.0.push(t.maxrss_kib as f64);
            e.1 = t.out.len();
        }
        Ok(())
    }

    /// Bytes of RSS per marker beyond the JSON output, between `lo` and `hi`.
    fn growth(&self, lo: usize, hi: usize) -> Option<f64> {
        let (r0, j0) = self.seen.get(&lo)?;
        let (r1, j1) = self.seen.get(&hi)?;
        let rss = (median(r1) - median(r0)) * 1024.0;
        Some((rss - (*j1 as f64 - *j0 as f64)) / (hi - lo) as f64)
    }

    /// Growth between the two largest fleets (zero markers does not count:
    /// start-up costs would dominate).
    fn large_growth(&self) -> Option<(usize, usize, f64)> {
        let ns: Vec<usize> = self.seen.keys().copied().filter(|&n| n > 0).collect();
        let [.., lo, hi] = ns[..] else { return None };
        Some((lo, hi, self.growth(lo, hi)?))
    }
}

impl Scenario for Rss {
    fn before_fleets(&mut self, b: &mut Bench) -> Res<()> {
        let empty = b.empty_runtime("empty")?;
        self.measure(b, &empty, 0)
    }

    fn with_fleet(&mut self, b: &mut Bench, fleet: &FleetAt) -> Res<()> {
        if self.at.contains(&fleet.n) {
            self.measure(b, fleet.dir, fleet.n)?;
        }
        Ok(())
    }

    fn render(&self, _b: &Bench, o: &mut String) {
        heading(o, "Peak RSS of `firma sidecar status --json`");
        head(o, &["N", "peak RSS", "JSON output"], "rrr");
        for (n, (kib, json)) in &self.seen {
            let kib = format!("{:.0} KiB", median(kib));
            let json = format!("{:.0} KiB", *json as f64 / 1024.0);
            row(o, &[n.to_string(), kib, json]);
        }
        let mut parts = Vec::new();
        if let Some((lo, hi, g)) = self.large_growth() {
            parts.push(format!("{g:.0} B between N={lo} and {hi}"));
        }
        if let Some(&first) = self.at.first()
            && let Some(g) = self.growth(0, first)
        {
            parts.push(format!("{g:.0} B between 0 and {first}"));
        }
        if !parts.is_empty() {
            let _ = writeln!(
                o,
                "\nGrowth per marker beyond the JSON output: {}.",
                parts.join("; ")
            );
        }
    }

    fn targets(&self, _b: &Bench) -> Vec<Target> {
        let g = self.large_growth().map(|(_, _, g)| g);
        vec![Target {
            what: "peak RSS beyond JSON: < 2 KiB per marker".into(),
            measured: g.map_or("—".into(), |g| format!("{g:.0} B")),
            ok: g.map(|g| g < 2048.0),
        }]
    }
}
