//! Listing over TCP endpoints that drop SYNs: every probe runs into the
//! timeout, and the listing must still take about one timeout, not one per
//! endpoint.

use std::process::{Command, Stdio};

use firma_stack::sidecar_markers::DEFAULT_TIMEOUT;

use super::{Bench, Level, Scenario};
use crate::Res;
use crate::contenders::{CLI, RUST, status_cmd};
use crate::procs::{Sidecars, count_sub, run_timed, spawn_ready};
use crate::stats::{fmt_ns, fmt_ratio};
use crate::table::{Target, head, heading, row};

const ENDPOINTS: usize = 20;
const LIST_SYN: &str = "list_syn";

pub struct Syn {
    rounds: usize,
}

impl Syn {
    pub fn new(level: Level) -> Syn {
        Syn {
            rounds: level.pick(5, 2, 1),
        }
    }

    fn timeouts(b: &Bench, who: &'static str) -> (f64, f64) {
        let m = b.median(LIST_SYN, who, ENDPOINTS);
        (m, m / DEFAULT_TIMEOUT.as_nanos() as f64)
    }
}

/// `ENDPOINTS` example sidecars in `wedged` mode on TCP: their listening
/// sockets never accept, so connects stall once the backlog is full.
fn start_wedged(b: &Bench, dir: &std::path::Path) -> Res<Sidecars> {
    let mut sidecars = Sidecars::default();
    for i in 0..ENDPOINTS {
        let mut cmd = Command::new(&b.example);
        cmd.arg("--runtime-dir")
            .arg(dir)
            .args(["--id", &format!("syn-{i:02}"), "--mode", "wedged"])
            .args(["--tcp", "127.0.0.1:0"])
            .stdin(Stdio::null());
        sidecars
            .0
            .push(spawn_ready(&mut cmd, &format!("wedged sidecar {i}"))?);
    }
    Ok(sidecars)
}

impl Scenario for Syn {
    fn after_fleets(&mut self, b: &mut Bench) -> Res<()> {
        let dir = b.base.join("syn");
        let sidecars = start_wedged(b, &dir)?;
        let dir_s = dir.to_string_lossy().into_owned();
        for r in 0..self.rounds {
            for k in 0..2 {
                if (k + r) % 2 == 0 {
                    let Some(l) = b.ask(RUST, |w| w.list(&dir_s, 1)) else {
                        continue;
                    };
                    if l.entries != ENDPOINTS || l.running != 0 {
                        b.warn(format!(
                            "SYN: Rust saw {} entries, {} running",
                            l.entries, l.running
                        ));
                    }
                    b.record(LIST_SYN, RUST, ENDPOINTS, l.times[0]);
                } else {
                    let t = run_timed(&mut status_cmd(&b.firma, &dir))?;
                    let unhealthy = count_sub(&t.out, b"\"state\":\"unhealthy\"");
                    if unhealthy != ENDPOINTS {
                        b.warn(format!("SYN: CLI saw {unhealthy} unhealthy of {ENDPOINTS}"));
                    }
                    b.record(LIST_SYN, CLI, ENDPOINTS, t.wall.as_nanos() as f64);
                }
            }
        }
        drop(sidecars);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    fn render(&self, b: &Bench, o: &mut String) {
        let ms = DEFAULT_TIMEOUT.as_millis();
        heading(
            o,
            &format!("{ENDPOINTS} TCP endpoints that drop SYNs (probe timeout {ms} ms)"),
        );
        head(o, &["listing", "median", "× timeout"], "lrr");
        for (label, who) in [
            ("Rust `list` (in-process)", RUST),
            ("`firma sidecar status --json` (process)", CLI),
        ] {
            let (m, r) = Self::timeouts(b, who);
            row(o, &[label.to_owned(), fmt_ns(m), fmt_ratio(r)]);
        }
    }

    fn targets(&self, b: &Bench) -> Vec<Target> {
        vec![Target::at_most(
            format!("{ENDPOINTS} SYN-dropping endpoints: ≤ 1.2× timeout"),
            Self::timeouts(b, RUST).1,
            1.2,
        )]
    }
}
