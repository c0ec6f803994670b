//! `gc_stale` and `list` over N stale markers (real dead pids), the set
//! laid down afresh before every call; compared per marker with the floor
//! over the largest healthy fleet.

use std::time::Instant;

use super::healthy::LIST;
use super::{Bench, Level, Scenario};
use crate::Res;
use crate::contenders::{FLOOR, RUST};
use crate::fleet::StaleSet;
use crate::stats::{fmt_ns, fmt_ratio};
use crate::table::{Target, head, heading, row};

const GC: &str = "gc_stale";
const LIST_STALE: &str = "list_stale";

pub struct Stale {
    n: usize,
    rounds: usize,
}

impl Stale {
    pub fn new(level: Level) -> Stale {
        Stale {
            n: level.pick(10_000, 1_000, 100),
            rounds: level.pick(5, 3, 1),
        }
    }

    /// Per-marker time of `what` over the floor's per marker (healthy,
    /// largest fleet).
    fn per_marker(&self, b: &Bench, what: &'static str) -> (f64, f64) {
        let big = b.largest();
        let floor = b.median(LIST, FLOOR, big) / big as f64;
        let pm = b.median(what, RUST, self.n) / self.n as f64;
        (pm, pm / floor)
    }
}

impl Scenario for Stale {
    fn after_fleets(&mut self, b: &mut Bench) -> Res<()> {
        let t0 = Instant::now();
        let set = StaleSet::build(&b.base.join("stale-scratch"), self.n)
            .map_err(|e| format!("stale set: {e}"))?;
        eprintln!(
            "bench: {} stale markers built ({:.1} s)",
            set.len(),
            t0.elapsed().as_secs_f64()
        );
        let dir = b.base.join("stale");
        let dir_s = dir.to_string_lossy().into_owned();
        // gc_stale and list alternate which goes first, round by round.
        for r in 0..self.rounds {
            for k in 0..2 {
                set.restore(&dir)
                    .map_err(|e| format!("restore stale set: {e}"))?;
                if (k + r) % 2 == 0 {
                    let Some(v) = b.ask(RUST, |w| w.ask(&format!("gc {dir_s}"), 2)) else {
                        return Ok(());
                    };
                    if v[0] as usize != set.len() {
                        b.warn(format!("gc_stale removed {} of {}", v[0], set.len()));
                    }
                    b.record(GC, RUST, self.n, v[1] as f64);
                } else {
                    let Some(l) = b.ask(RUST, |w| w.list(&dir_s, 1)) else {
                        return Ok(());
                    };
                    if l.entries != 0 {
                        b.warn(format!(
                            "list over stale markers returned {} entries",
                            l.entries
                        ));
                    }
                    b.record(LIST_STALE, RUST, self.n, l.times[0]);
                }
                let left = std::fs::read_dir(dir.join("run"))
                    .map(|d| d.count())
                    .unwrap_or(0);
                if left != 0 {
                    b.warn(format!("{left} entries left in run/ after collecting"));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "bench: stale phase done ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn render(&self, b: &Bench, o: &mut String) {
        let heading_text = format!(
            "Collecting {} stale markers (dead pids; set laid down afresh each round)",
            self.n
        );
        heading(o, &heading_text);
        let floor_col = format!("× floor per marker (healthy, N={})", b.largest());
        head(
            o,
            &["operation", "median", "per marker", &floor_col],
            "lrrr",
        );
        for (label, what) in [
            ("Rust `gc_stale`", GC),
            ("Rust `list` over the same", LIST_STALE),
        ] {
            let (pm, ratio) = self.per_marker(b, what);
            let m = fmt_ns(b.median(what, RUST, self.n));
            row(o, &[label.to_owned(), m, fmt_ns(pm), fmt_ratio(ratio)]);
        }
    }

    fn targets(&self, b: &Bench) -> Vec<Target> {
        let n = self.n;
        vec![
            Target::at_most(
                format!("`gc_stale` of {n} stale: ≤ 2× floor per marker"),
                self.per_marker(b, GC).1,
                2.0,
            ),
            Target::at_most(
                format!("`list` over {n} stale: ≤ 2× floor per marker"),
                self.per_marker(b, LIST_STALE).1,
                2.0,
            ),
        ]
    }
}
