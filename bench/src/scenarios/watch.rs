//! The watcher at the default settings (`firma sidecar watch --json`, probe
//! interval 1 s) against polling `firma sidecar status --json` at 1 Hz, on
//! the same healthy fleet in one run: CPU share of a core over a window
//! (the watcher's from `/proc/<pid>/stat`, the polls' from `wait4`), time
//! to the first `synced`, memory per watched sidecar, and SIGKILL → `gone`
//! latency of real example sidecars added to the fleet.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Bench, FleetAt, Level, Scenario};
use crate::Res;
use crate::contenders::status_cmd;
use crate::procs::{run_timed, spawn_ready};
use crate::stats::{fmt_ns, fmt_ratio, median};
use crate::table::{Target, head, heading, row};

const WATCH: &str = "watch";
const POLL: &str = "status@1Hz";
/// Percent of a core (stored ×1e6 so the ns-shaped sample store keeps
/// decimals: read back with [`pct`]).
const CPU: &str = "watch_cpu";
const SYNCED: &str = "watch_synced";
const GONE: &str = "watch_kill_gone";
const RSS: &str = "watch_rss_per_sidecar";

fn pct(v: f64) -> f64 {
    v / 1e6
}

pub struct Watch {
    at: Vec<usize>,
    window: Duration,
    settle: Duration,
    victims: usize,
    /// RSS of a watcher of an empty directory (KiB): the per-sidecar
    /// figure is the growth beyond it.
    base_rss_kib: Option<f64>,
}

impl Watch {
    pub fn new(level: Level) -> Watch {
        Watch {
            at: level.pick(vec![1_000, 10_000], vec![1_000], vec![100]),
            // A full run's window is one default rescan interval (30 s):
            // each holds exactly one of the watcher's full scans, which
            // belong to its idle cost as much as its probe rounds do.
            window: level.pick(
                Duration::from_secs(30),
                Duration::from_secs(5),
                Duration::from_millis(500),
            ),
            settle: level.pick(
                Duration::from_secs(2),
                Duration::from_secs(1),
                Duration::from_millis(200),
            ),
            victims: level.pick(15, 5, 1),
            base_rss_kib: None,
        }
    }
}

/// A watcher child and its stdout lines, each with when it was read.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Watcher {
    fn start(firma: &Path, dir: &Path) -> Res<Watcher> {
        let mut child = Command::new(firma)
            .arg("--runtime-dir")
            .arg(dir)
            .args(["sidecar", "watch", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the watcher: {e}"))?;
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Ok(Watcher { child, lines })
    }

    /// The first line containing all of `needles`, and when it was read.
    fn until(&self, needles: &[&str], within: Duration) -> Res<Instant> {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, l)) if needles.iter().all(|n| l.contains(n)) => return Ok(at),
                Ok(_) => {}
                Err(_) => return Err(format!("watcher: no {needles:?} within {within:?}")),
            }
        }
    }

    /// User + system CPU seconds so far (all threads).
    fn cpu(&self) -> Res<f64> {
        crate::procs::cpu_seconds(self.child.id())
    }

    fn rss_kib(&self) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Watch {
    fn measure(&self, b: &mut Bench, dir: &Path, n: usize) -> Res<()> {
        let t0 = Instant::now();
        let w = Watcher::start(&b.firma, dir)?;
        let synced = w.until(&["\"event\":\"synced\""], Duration::from_secs(120))?;
        b.record(SYNCED, WATCH, n, (synced - t0).as_nanos() as f64);
        std::thread::sleep(self.settle);
        // Settled, before the window's full scan: what stays resident (a
        // full scan's temporaries are given back once it ends).
        if let (Some(rss), Some(base)) = (w.rss_kib(), self.base_rss_kib) {
            b.record(RSS, WATCH, n, (rss - base) * 1024.0 / n as f64);
        }
        let (c0, t1) = (w.cpu()?, Instant::now());
        std::thread::sleep(self.window);
        let share = (w.cpu()? - c0) / t1.elapsed().as_secs_f64();
        b.record(CPU, WATCH, n, share * 100.0 * 1e6);
        // Polling status at 1 Hz over the same window.
        let (mut cpu, t2) = (Duration::ZERO, Instant::now());
        while t2.elapsed() < self.window {
            let tick = Instant::now();
            cpu += run_timed(&mut status_cmd(&b.firma, dir))?.cpu;
            std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
        }
        let share = cpu.as_secs_f64() / t2.elapsed().as_secs_f64();
        b.record(CPU, POLL, n, share * 100.0 * 1e6);
        // SIGKILL -> gone, one real example sidecar at a time.
        for i in 0..self.victims {
            let id = format!("watch-victim-{i}");
            let mut cmd = Command::new(&b.example);
            cmd.arg("--runtime-dir")
                .arg(dir)
                .args(["--id", &id])
                .stdin(Stdio::null());
            let mut victim = spawn_ready(&mut cmd, &id)?;
            let quoted = format!("\"sandbox_id\":\"{id}\"");
            w.until(
                &["\"event\":\"appeared\"", &quoted],
                Duration::from_secs(30),
            )?;
            // Not at a fixed phase of the probe ticks.
            std::thread::sleep(Duration::from_millis(50 + 37 * i as u64 % 200));
            let killed = Instant::now();
            victim.kill().map_err(|e| e.to_string())?;
            let gone = w.until(&["\"event\":\"gone\"", &quoted], Duration::from_secs(30))?;
            b.record(GONE, WATCH, n, (gone - killed).as_nanos() as f64);
            let _ = victim.wait();
        }
        Ok(())
    }
}

impl Scenario for Watch {
    fn before_fleets(&mut self, b: &mut Bench) -> Res<()> {
        let dir = crate::procs::RemoveOnDrop(b.work.join("watch-empty"));
        std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
        let w = Watcher::start(&b.firma, &dir.0)?;
        w.until(&["\"event\":\"synced\""], Duration::from_secs(30))?;
        self.base_rss_kib = w.rss_kib();
        Ok(())
    }

    fn with_fleet(&mut self, b: &mut Bench, fleet: &FleetAt) -> Res<()> {
        fleet.measure_at(b, &self.at, "watch", |b| {
            self.measure(b, fleet.dir, fleet.n)
        });
        Ok(())
    }

    fn render(&self, b: &Bench, o: &mut String) {
        heading(
            o,
            "Watching at the default settings (probe interval 1 s) vs polling `status` at 1 Hz",
        );
        head(
            o,
            &[
                "N",
                "watch CPU",
                "status @ 1 Hz CPU",
                "polling / watch",
                "to `synced`",
                "kill → `gone` median",
                "kill → `gone` worst",
                "RSS per sidecar",
            ],
            "rrrrrrrr",
        );
        for &n in &self.at {
            let wc = pct(b.median(CPU, WATCH, n));
            let pc = pct(b.median(CPU, POLL, n));
            let gone = b.samples(GONE, WATCH, n).unwrap_or(&[]);
            let worst = gone.iter().copied().fold(f64::NAN, f64::max);
            row(
                o,
                &[
                    n.to_string(),
                    format!("{wc:.2} %"),
                    format!("{pc:.2} %"),
                    fmt_ratio(pc / wc),
                    fmt_ns(b.median(SYNCED, WATCH, n)),
                    fmt_ns(median(gone)),
                    fmt_ns(worst),
                    format!("{:.0} B", b.median(RSS, WATCH, n)),
                ],
            );
        }
    }

    fn targets(&self, b: &Bench) -> Vec<Target> {
        let mut t = Vec::new();
        for (n, max) in [(1_000, 0.5), (10_000, 3.0)] {
            if self.at.contains(&n) {
                t.push(Target::at_most(
                    format!("idle watcher at {n}: ≤ {max} % of a core"),
                    pct(b.median(CPU, WATCH, n)),
                    max,
                ));
                t.push(Target::at_most(
                    format!("idle watcher at {n}: ≥ 10× cheaper than status at 1 Hz (watch / polling ≤ 0.1)"),
                    pct(b.median(CPU, WATCH, n)) / pct(b.median(CPU, POLL, n)),
                    0.1,
                ));
            }
        }
        if let Some(&n) = self.at.last() {
            let gone = b.samples(GONE, WATCH, n).unwrap_or(&[]);
            let worst = gone.iter().copied().fold(f64::NAN, f64::max);
            t.push(Target::at_most(
                format!("SIGKILL → gone at {n}: median ≤ 5 ms (ms)"),
                median(gone) / 1e6,
                5.0,
            ));
            t.push(Target::at_most(
                format!("SIGKILL → gone at {n}: worst ≤ 50 ms (ms)"),
                worst / 1e6,
                50.0,
            ));
            t.push(Target::at_most(
                format!("time to synced at {n}: ≤ 0.3 s (s)"),
                b.median(SYNCED, WATCH, n) / 1e9,
                0.3,
            ));
            t.push(Target::at_most(
                format!("memory per watched sidecar at {n}: ≤ 2 KiB (KiB, RSS beyond an empty watch / N)"),
                b.median(RSS, WATCH, n) / 1024.0,
                2.0,
            ));
        }
        t
    }
}
