//! `list` by probe method: the Rust `list` with the fleet probe (one
//! socket-diagnostics dump per scan, the default) against the same call
//! forced to `connect` every endpoint (`FIRMA_PROBE_METHOD=connect`, a second
//! Rust worker), beside the C floor, round-robin in one run; and the system
//! calls per healthy marker of `firma sidecar status --json` by method.

use std::fmt::Write as _;
use std::process::Command;

use super::{Bench, FleetAt, Level, Scenario};
use crate::Res;
use crate::contenders::{FLOOR, RUST, status_cmd};
use crate::stats::{fmt_ns, fmt_ratio, paired_ratio};
use crate::strace::{self, Counts};
use crate::table::{Target, head, heading, row};
use crate::worker::Worker;

/// The samples' name in [`Bench::samples`] and samples.tsv.
pub const LIST_BY_METHOD: &str = "list-by-method";
/// The Rust `list` forced to connect.
pub const RUST_CONNECT: &str = "Rust `list`, FIRMA_PROBE_METHOD=connect";

/// `firma sidecar status --json` over `dir`, through `env` so the probe
/// method can be set under strace (`None`: the default).
fn status_with(b: &Bench, dir: &std::path::Path, method: Option<&str>) -> Command {
    let inner = status_cmd(&b.firma, dir);
    let mut c = Command::new("env");
    if let Some(m) = method {
        c.arg(format!("FIRMA_PROBE_METHOD={m}"));
    } else {
        c.arg("-u").arg("FIRMA_PROBE_METHOD");
    }
    c.arg(inner.get_program()).args(inner.get_args());
    c
}

pub struct ProbeMethod {
    /// The worker forced to connect; `None` once it broke.
    connect: Option<Worker>,
    /// N of the syscall counts.
    strace_n: usize,
    /// (default, connect) at zero markers.
    baseline: Option<(Counts, Counts)>,
    /// Per-marker totals (default, connect).
    per_marker: Option<(f64, f64)>,
    /// N -> (floor, rust, rust-connect) paired samples per round.
    rows: Vec<usize>,
}

impl ProbeMethod {
    pub fn new(level: Level) -> ProbeMethod {
        let exe = std::env::current_exe().ok();
        let connect = exe.and_then(|exe| {
            let mut cmd = Command::new(exe);
            cmd.arg("worker").env("FIRMA_PROBE_METHOD", "connect");
            Worker::start(cmd).ok()
        });
        ProbeMethod {
            connect,
            strace_n: level.pick(1_000, 1_000, 100),
            baseline: None,
            per_marker: None,
            rows: Vec::new(),
        }
    }

    fn counts(b: &Bench, dir: &std::path::Path, tag: &str) -> Res<(Counts, Counts)> {
        let auto = strace::counts(
            &b.base.join(format!("strace-method-auto-{tag}")),
            &status_with(b, dir, None),
        )?;
        let connect = strace::counts(
            &b.base.join(format!("strace-method-connect-{tag}")),
            &status_with(b, dir, Some("connect")),
        )?;
        Ok((auto, connect))
    }
}

impl Scenario for ProbeMethod {
    fn before_fleets(&mut self, b: &mut Bench) -> Res<()> {
        if !strace::available() {
            return Ok(());
        }
        let empty = b.empty_runtime("empty-method")?;
        self.baseline = Some(Self::counts(b, &empty, "0")?);
        Ok(())
    }

    fn with_fleet(&mut self, b: &mut Bench, fleet: &FleetAt) -> Res<()> {
        let n = fleet.n;
        let dir = fleet.dir_s();
        if self.connect.is_none() {
            b.warn(format!("{RUST_CONNECT}: the worker did not start"));
            return Ok(());
        }
        // Warm-up.
        let _ = self.connect.as_mut().map(|w| w.list(&dir, 1));
        for r in 0..fleet.size.rounds {
            for i in 0..3 {
                match (i + r) % 3 {
                    0 => {
                        if let Some(s) = b.contenders.iter_mut().find(|c| c.name == FLOOR)
                            && let Some(s) = s.list(fleet.dir, fleet.size.reps)
                        {
                            b.record(LIST_BY_METHOD, FLOOR, n, s.ns);
                        }
                    }
                    1 => {
                        if let Some(s) = b.contenders.iter_mut().find(|c| c.name == RUST)
                            && let Some(s) = s.list(fleet.dir, fleet.size.reps)
                        {
                            b.record(LIST_BY_METHOD, RUST, n, s.ns);
                        }
                    }
                    _ => {
                        let Some(w) = self.connect.as_mut() else {
                            continue;
                        };
                        match w.list(&dir, fleet.size.reps) {
                            Ok(l) => {
                                if l.running != n {
                                    b.warn(format!(
                                        "{RUST_CONNECT}, N={n}: {} running (expected {n})",
                                        l.running
                                    ));
                                }
                                b.record(
                                    LIST_BY_METHOD,
                                    RUST_CONNECT,
                                    n,
                                    crate::stats::median(&l.times),
                                );
                            }
                            Err(e) => {
                                b.warn(format!("{RUST_CONNECT}: {e}"));
                                self.connect = None;
                            }
                        }
                    }
                }
            }
        }
        self.rows.push(n);
        if n == self.strace_n
            && let Some((auto0, connect0)) = &self.baseline
        {
            let (auto, connect) = Self::counts(b, fleet.dir, "n")?;
            let total = |v: Vec<(String, f64)>| v.iter().map(|(_, c)| c).sum::<f64>();
            self.per_marker = Some((
                total(strace::per_marker(&auto, auto0, n)),
                total(strace::per_marker(&connect, connect0, n)),
            ));
        }
        Ok(())
    }

    fn render(&self, b: &Bench, o: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        heading(
            o,
            "`list` by probe method (Rust, in-process; one run, round-robin): the fleet \
             probe (one sock_diag dump) against connect to every endpoint",
        );
        head(
            o,
            &[
                "N",
                "floor (C)",
                "connect",
                "sock_diag",
                "connect / floor",
                "sock_diag / floor",
                "sock_diag / connect",
            ],
            "rrrrrrr",
        );
        for &n in &self.rows {
            let s = |who| b.samples(LIST_BY_METHOD, who, n);
            let r = |a, c| match (s(a), s(c)) {
                (Some(x), Some(y)) => fmt_ratio(paired_ratio(x, y)),
                _ => "—".into(),
            };
            let m = |who| fmt_ns(b.median(LIST_BY_METHOD, who, n));
            row(
                o,
                &[
                    n.to_string(),
                    m(FLOOR),
                    m(RUST_CONNECT),
                    m(RUST),
                    r(RUST_CONNECT, FLOOR),
                    r(RUST, FLOOR),
                    r(RUST, RUST_CONNECT),
                ],
            );
        }
        if let Some((auto, connect)) = self.per_marker {
            let _ = writeln!(
                o,
                "\nSystem calls per healthy marker of `firma sidecar status --json` \
                 (`strace -f -c`, N={} minus N=0): {auto:.2} with the fleet probe, \
                 {connect:.2} with connect.",
                self.strace_n
            );
        }
    }

    fn targets(&self, b: &Bench) -> Vec<Target> {
        let Some(&n) = self.rows.iter().max() else {
            return Vec::new();
        };
        vec![Target::at_most(
            format!("`list` with the fleet probe, N={n}: ≤ 0.5× the C floor"),
            b.ratio(LIST_BY_METHOD, RUST, FLOOR, n),
            0.5,
        )]
    }
}
