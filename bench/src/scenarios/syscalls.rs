//! System calls per healthy marker of `firma sidecar status --json` and of
//! the floor, from `strace -f -c` at N minus at zero markers.

use super::{Bench, FleetAt, Level, Scenario};
use crate::Res;
use crate::contenders::{floor_cmd, status_cmd};
use crate::strace::{self, Counts};
use crate::table::{Target, head, heading, row};

pub struct Syscalls {
    n: usize,
    /// (firma, floor) at zero markers; None without strace.
    baseline: Option<(Counts, Counts)>,
    firma: Vec<(String, f64)>,
    floor: Vec<(String, f64)>,
}

impl Syscalls {
    pub fn new(level: Level) -> Syscalls {
        Syscalls {
            n: level.pick(1_000, 1_000, 100),
            baseline: None,
            firma: Vec::new(),
            floor: Vec::new(),
        }
    }

    /// (firma, floor) counts over the runtime directory `dir`.
    fn count(b: &Bench, dir: &std::path::Path, tag: &str) -> Res<(Counts, Counts)> {
        let firma = strace::counts(
            &b.base.join(format!("strace-firma-{tag}")),
            &status_cmd(&b.firma, dir),
        )?;
        let floor = strace::counts(
            &b.base.join(format!("strace-floor-{tag}")),
            &floor_cmd(&b.floor, dir),
        )?;
        Ok((firma, floor))
    }

    fn totals(&self) -> (f64, f64) {
        let total = |v: &[(String, f64)]| v.iter().map(|(_, c)| c).sum::<f64>();
        (total(&self.firma), total(&self.floor))
    }
}

impl Scenario for Syscalls {
    fn before_fleets(&mut self, b: &mut Bench) -> Res<()> {
        if !strace::available() {
            b.notes
                .push("strace not found: syscall counts skipped".into());
            return Ok(());
        }
        let empty = b.empty_runtime("empty")?;
        self.baseline = Some(Self::count(b, &empty, "0")?);
        Ok(())
    }

    fn with_fleet(&mut self, b: &mut Bench, fleet: &FleetAt) -> Res<()> {
        if fleet.n != self.n {
            return Ok(());
        }
        if let Some((firma0, floor0)) = &self.baseline {
            let (firma, floor) = Self::count(b, fleet.dir, "n")?;
            self.firma = strace::per_marker(&firma, firma0, fleet.n);
            self.floor = strace::per_marker(&floor, floor0, fleet.n);
        }
        Ok(())
    }

    fn render(&self, _b: &Bench, o: &mut String) {
        if self.firma.is_empty() {
            return;
        }
        heading(
            o,
            &format!(
                "System calls per healthy marker (`strace -f -c`, N={} minus N=0, divided by N)",
                self.n
            ),
        );
        head(
            o,
            &["syscall", "`firma sidecar status --json`", "floor"],
            "lrr",
        );
        let mut names: Vec<&String> = self.firma.iter().map(|(k, _)| k).collect();
        for (k, _) in &self.floor {
            if !names.contains(&k) {
                names.push(k);
            }
        }
        let get =
            |v: &[(String, f64)], k: &str| v.iter().find(|(n, _)| n == k).map_or(0.0, |x| x.1);
        for k in names {
            let (a, b) = (get(&self.firma, k), get(&self.floor, k));
            if a.abs() >= 0.005 || b.abs() >= 0.005 {
                row(o, &[k.clone(), format!("{a:.2}"), format!("{b:.2}")]);
            }
        }
        let (a, b) = self.totals();
        row(
            o,
            &[
                "**total**".to_owned(),
                format!("**{a:.2}**"),
                format!("**{b:.2}**"),
            ],
        );
    }

    fn targets(&self, _b: &Bench) -> Vec<Target> {
        let (firma, floor) = self.totals();
        vec![Target {
            what: "syscalls per healthy marker < floor's".into(),
            measured: format!("{firma:.2} vs {floor:.2}"),
            ok: (!self.firma.is_empty()).then_some(firma < floor),
        }]
    }
}
