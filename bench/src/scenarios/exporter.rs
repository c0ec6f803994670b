//! `firma sidecar exporter` at its defaults on the healthy fleets: the
//! server time of a scrape (the exporter's own
//! `firma_exporter_scrape_duration_seconds`, read from the scrape after),
//! the round trip seen by a client, the body's size, and the idle cost (CPU
//! share of a core from `/proc/<pid>/stat`, no scrape in the window).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Bench, FleetAt, Level, Scenario};
use crate::Res;
use crate::stats::{fmt_ns, median};
use crate::table::{Target, head, heading, row};

const WHO: &str = "exporter";
const SERVER: &str = "exporter_scrape_server";
const CLIENT: &str = "exporter_scrape_client";
const BYTES: &str = "exporter_body_bytes";
/// Percent of a core ×1e6 (the sample store keeps ns-shaped numbers).
const CPU: &str = "exporter_idle_cpu";

pub struct Exporter {
    at: Vec<usize>,
    scrapes: usize,
    window: Duration,
}

impl Exporter {
    pub fn new(level: Level) -> Exporter {
        Exporter {
            at: level.pick(vec![1_000, 10_000], vec![1_000], vec![100]),
            scrapes: level.pick(200, 50, 5),
            window: level.pick(
                Duration::from_secs(20),
                Duration::from_secs(5),
                Duration::from_millis(500),
            ),
        }
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(firma: &Path, dir: &Path) -> Res<Server> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(firma)
            .arg("--runtime-dir")
            .arg(dir)
            .args(["sidecar", "exporter", "--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the exporter: {e}"))?;
        let s = Server { child, addr };
        let end = Instant::now() + Duration::from_secs(120);
        while s.get("/healthz").map(|b| b.0) != Some(200) {
            if Instant::now() > end {
                return Err("exporter: not healthy within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(s)
    }

    fn get(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: b\r\n\r\n").as_bytes())
            .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let status = String::from_utf8_lossy(&raw[..split])
            .split(' ')
            .nth(1)?
            .parse()
            .ok()?;
        Some((status, raw[split + 4..].to_vec()))
    }

    fn cpu(&self) -> Res<f64> {
        crate::procs::cpu_seconds(self.child.id())
    }
}

/// The value of the unlabelled sample `name` in a 0.0.4 body.
fn gauge(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
        .parse()
        .ok()
}

fn p99(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n => v[((n * 99).div_ceil(100)).max(1) - 1],
    }
}

impl Exporter {
    fn measure(&self, b: &mut Bench, dir: &Path, n: usize) -> Res<()> {
        let s = Server::start(&b.firma, dir)?;
        for i in 0..=self.scrapes {
            let t = Instant::now();
            let (status, body) = s.get("/metrics").ok_or("a scrape failed")?;
            let took = t.elapsed();
            if status != 200 {
                return Err(format!("scrape: status {status}"));
            }
            let body = String::from_utf8_lossy(&body);
            // The first scrape has no previous one to report.
            if i > 0 {
                let server = gauge(&body, "firma_exporter_scrape_duration_seconds")
                    .ok_or("no firma_exporter_scrape_duration_seconds")?;
                b.record(SERVER, WHO, n, server * 1e9);
                b.record(CLIENT, WHO, n, took.as_nanos() as f64);
                b.record(BYTES, WHO, n, body.len() as f64);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let (c0, t0) = (s.cpu()?, Instant::now());
        std::thread::sleep(self.window);
        let share = (s.cpu()? - c0) / t0.elapsed().as_secs_f64();
        b.record(CPU, WHO, n, share * 100.0 * 1e6);
        Ok(())
    }
}

impl Scenario for Exporter {
    fn with_fleet(&mut self, b: &mut Bench, fleet: &FleetAt) -> Res<()> {
        fleet.measure_at(b, &self.at, "exporter", |b| {
            self.measure(b, fleet.dir, fleet.n)
        });
        Ok(())
    }

    fn render(&self, b: &Bench, o: &mut String) {
        heading(o, "The exporter at its defaults: a scrape, and idle");
        head(
            o,
            &[
                "N",
                "scrape server median",
                "server p99",
                "client round trip median",
                "client p99",
                "body",
                "idle CPU",
            ],
            "rrrrrrr",
        );
        for &n in &self.at {
            let server = b.samples(SERVER, WHO, n).unwrap_or(&[]);
            let client = b.samples(CLIENT, WHO, n).unwrap_or(&[]);
            row(
                o,
                &[
                    n.to_string(),
                    fmt_ns(median(server)),
                    fmt_ns(p99(server)),
                    fmt_ns(median(client)),
                    fmt_ns(p99(client)),
                    format!("{:.0} KiB", b.median(BYTES, WHO, n) / 1024.0),
                    format!("{:.2} %", b.median(CPU, WHO, n) / 1e6),
                ],
            );
        }
    }

    fn targets(&self, b: &Bench) -> Vec<Target> {
        let mut t = Vec::new();
        if self.at.contains(&10_000) {
            let server = b.samples(SERVER, WHO, 10_000).unwrap_or(&[]);
            t.push(Target::at_most(
                "exporter scrape at 10,000: server p99 ≤ 20 ms (ms)",
                p99(server) / 1e6,
                20.0,
            ));
            t.push(Target::at_most(
                "exporter scrape at 10,000: ≤ 2 MB uncompressed (MB)",
                b.median(BYTES, WHO, 10_000) / 1e6,
                2.0,
            ));
        }
        if self.at.contains(&1_000) {
            t.push(Target::at_most(
                "idle exporter at 1,000: ≤ 0.5 % of a core",
                b.median(CPU, WHO, 1_000) / 1e6,
                0.5,
            ));
        }
        t
    }
}
