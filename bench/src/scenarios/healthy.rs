//! `list` over N healthy sidecars: every contender, round-robin, at every
//! fleet size of the plan.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Bench, FleetAt, Level, Scenario};
use crate::Res;
use crate::contenders::{C, CLI, FLOOR, FLOOR_PROC, GO, PY, RUST};
use crate::stats::{fmt_ns, fmt_ratio, median, spread};
use crate::table::{Target, head, heading, row};

/// The samples' name in [`Bench::samples`] and samples.tsv.
pub const LIST: &str = "list";

const ROWS: [&str; 7] = [FLOOR, RUST, C, PY, GO, CLI, FLOOR_PROC];

pub struct Healthy {
    /// N of the whole-process target.
    cli_n: usize,
    /// (contender, N) -> what looked wrong.
    anomalies: BTreeMap<(&'static str, usize), String>,
    /// N -> CPU time / wall time of `firma sidecar status`, per round.
    cli_cores: BTreeMap<usize, Vec<f64>>,
}

impl Healthy {
    pub fn new(level: Level) -> Healthy {
        Healthy {
            cli_n: level.pick(2_000, 1_000, 100),
            anomalies: BTreeMap::new(),
            cli_cores: BTreeMap::new(),
        }
    }
}

/// The floor a contender is compared with: in-process or whole process.
fn floor_of(name: &str) -> &'static str {
    if name == CLI || name == FLOOR_PROC {
        FLOOR_PROC
    } else {
        FLOOR
    }
}

impl Scenario for Healthy {
    fn with_fleet(&mut self, b: &mut Bench, fleet: &FleetAt) -> Res<()> {
        let n = fleet.n;
        // Warm-up: one listing each (dentries, page cache, lazy init).
        for c in b.contenders.iter_mut() {
            let _ = c.list(fleet.dir, 1);
        }
        // Each round visits every contender once, the first one rotating,
        // so drift of a shared machine lands on all of them alike.
        let k = b.contenders.len();
        for r in 0..fleet.size.rounds {
            for i in 0..k {
                let c = &mut b.contenders[(i + r) % k];
                let name = c.name;
                let Some(s) = c.list(fleet.dir, fleet.size.reps) else {
                    continue;
                };
                if (s.entries != n || s.running != n) && !self.anomalies.contains_key(&(name, n)) {
                    let what = format!(
                        "saw {} entries, {} running (expected {n})",
                        s.entries, s.running
                    );
                    b.warn(format!("{name}, N={n}: {what}"));
                    self.anomalies.insert((name, n), what);
                }
                if let (CLI, Some(cores)) = (name, s.cores) {
                    self.cli_cores.entry(n).or_default().push(cores);
                }
                b.record(LIST, name, n, s.ns);
            }
        }
        Ok(())
    }

    fn render(&self, b: &Bench, o: &mut String) {
        heading(o, "`list` over N healthy sidecars");
        head(
            o,
            &[
                "contender",
                "N",
                "median",
                "spread",
                "per marker",
                "× floor",
                "× Rust",
            ],
            "lrrrrrr",
        );
        for f in &b.fleets {
            let n = f.n;
            for name in ROWS {
                let mut cells = vec![name.to_owned(), n.to_string()];
                match b.samples(LIST, name, n) {
                    None => cells.extend(["pending", "", "", "", ""].map(String::from)),
                    Some(v) => cells.extend([
                        fmt_ns(median(v)),
                        spread(v),
                        fmt_ns(median(v) / n as f64),
                        fmt_ratio(b.ratio(LIST, name, floor_of(name), n)),
                        if [C, PY, GO].contains(&name) {
                            fmt_ratio(b.ratio(LIST, name, RUST, n))
                        } else {
                            String::new()
                        },
                    ]),
                }
                if let Some(a) = self.anomalies.get(&(name, n)) {
                    let last = cells.len() - 1;
                    let _ = write!(cells[last], " ⚠ {a}");
                }
                row(o, &cells);
            }
        }
        let cores: Vec<String> = self
            .cli_cores
            .iter()
            .map(|(n, v)| format!("N={n}: {:.2}", median(v)))
            .collect();
        let _ = writeln!(
            o,
            "\nCores used by `firma sidecar status` (its CPU time / wall time, median): {}.",
            cores.join(", ")
        );
        let _ = writeln!(
            o,
            "\nIn-process rows are timed inside the worker (call + releasing the result); × floor is against the in-process floor. \
             Whole-process rows are timed by the driver from spawn to exit; × floor is against the floor run as a whole process."
        );
    }

    fn targets(&self, b: &Bench) -> Vec<Target> {
        let big = b.largest();
        let mut cli = Target::at_most(
            format!(
                "`firma sidecar status --json`, N={}: ≤ 1.0× floor",
                self.cli_n
            ),
            b.ratio(LIST, CLI, FLOOR_PROC, self.cli_n),
            1.0,
        );
        let inproc = fmt_ratio(b.ratio(LIST, CLI, FLOOR, self.cli_n));
        cli.measured = format!("{} (vs in-process floor {inproc})", cli.measured);
        vec![
            Target::at_most(
                format!("in-process `list`, N={big}: ≤ 0.8× floor"),
                b.ratio(LIST, RUST, FLOOR, big),
                0.8,
            ),
            cli,
        ]
    }
}
