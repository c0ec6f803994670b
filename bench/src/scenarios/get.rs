//! `get` of one marker, by every library surface, over the smallest fleet.

use super::{Bench, FleetAt, Level, Scenario};
use crate::Res;
use crate::contenders::{C, GO, PY, RUST, SURFACES};
use crate::fleet::sandbox_id;
use crate::stats::{fmt_ns, fmt_ratio};
use crate::table::{Target, head, heading, row};

pub const GET: &str = "get_per_call";

/// Calls per sample: short samples, many rounds, so load bursts of a
/// shared machine hit every surface alike.
const CALLS: usize = 300;

pub struct Get {
    rounds: usize,
    /// The fleet it ran over (the plan's first).
    n: Option<usize>,
}

impl Get {
    pub fn new(level: Level) -> Get {
        Get {
            rounds: level.pick(31, 3, 1),
            n: None,
        }
    }

    fn ratio(&self, b: &Bench, who: &'static str) -> f64 {
        self.n.map_or(f64::NAN, |n| b.ratio(GET, who, RUST, n))
    }
}

impl Scenario for Get {
    fn with_fleet(&mut self, b: &mut Bench, fleet: &FleetAt) -> Res<()> {
        if self.n.is_some() {
            return Ok(());
        }
        let n = fleet.n;
        self.n = Some(n);
        let req = format!("get {} {} {CALLS}", fleet.dir_s(), sandbox_id("hc", n / 2));
        for r in 0..self.rounds {
            for i in 0..SURFACES.len() {
                let who = SURFACES[(i + r) % SURFACES.len()];
                let Some(v) = b.ask(who, |w| w.ask(&req, 2)) else {
                    continue;
                };
                if v[0] as usize != CALLS {
                    b.warn(format!(
                        "{who}: get: {} of {CALLS} calls saw `running`",
                        v[0]
                    ));
                }
                b.record(GET, who, n, v[1] as f64 / CALLS as f64);
            }
        }
        Ok(())
    }

    fn render(&self, b: &Bench, o: &mut String) {
        let n = self.n.unwrap_or(0);
        heading(
            o,
            &format!("`get` of one marker (fleet of {n}, {CALLS} calls per sample)"),
        );
        head(o, &["surface", "calls/s", "per call", "× Rust"], "lrrr");
        for who in SURFACES {
            let m = b.median(GET, who, n);
            let name = who.replace("list", "get").replace("List", "Get");
            if m.is_nan() {
                row(o, &[name.as_str(), "pending", "", ""]);
            } else {
                let ratio = fmt_ratio(self.ratio(b, who));
                row(o, &[name, format!("{:.0}", 1e9 / m), fmt_ns(m), ratio]);
            }
        }
    }

    fn targets(&self, b: &Bench) -> Vec<Target> {
        [(PY, "Python", 1.5), (GO, "Go", 1.5), (C, "C", 1.1)]
            .into_iter()
            .map(|(who, lang, max)| {
                Target::at_most(
                    format!("{lang} `get`: ≤ {max}× Rust"),
                    self.ratio(b, who),
                    max,
                )
            })
            .collect()
    }
}
