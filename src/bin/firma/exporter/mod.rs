//! `firma sidecar exporter`: a long-running Prometheus exporter.
//!
//! Three threads share one [`model::Model`] behind a mutex:
//!
//! - the watcher thread runs the core's `Watcher` (inotify, pidfds, probe
//!   rounds; collecting stale markers unless `--no-gc`) and applies each
//!   event to the model;
//! - the inspect thread counts broken markers by reason with one read-only
//!   `inspect` pass every `--inspect-interval-ms` (the watcher reports live
//!   sidecars only);
//! - the main thread serves HTTP (`/metrics`, `/healthz`) and stops on
//!   SIGINT/SIGTERM. A scrape renders the model under the lock and adds a
//!   `stat` of the runtime directory: it never scans.
//!
//! docs/design.md, "Metrics" (its exporter part), is the contract;
//! SECURITY.md says what the endpoint exposes.

mod encode;
mod http;
mod model;

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use firma_stack::sidecar_markers::{self as sm, ProbeOptions, Verdict, WatchOptions};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::args::ProbeArgs;
use model::Model;

/// The address the exporter listens on when `--listen` is not given:
/// loopback only (SECURITY.md, "Exporter").
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9847";

/// Options of `firma sidecar exporter`.
#[derive(Args, Debug)]
pub struct ExporterArgs {
    /// Where to serve /metrics and /healthz: IP:PORT, or a path (containing
    /// a `/`) for a Unix socket.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Read-only: collect nothing (a stopped sidecar stays, state `stopped`).
    #[arg(long)]
    pub no_gc: bool,
    /// How often every known sidecar is judged again and probed (a death
    /// is seen at once through its pidfd whatever this is).
    #[arg(long, value_name = "MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub probe_interval_ms: u64,
    /// How often broken markers are counted (one read-only inspect pass).
    #[arg(long, value_name = "MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub inspect_interval_ms: u64,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

type Shared = Arc<Mutex<Model>>;

/// Requests answered at once; more get 503 (a scraper retries at its next
/// interval).
const MAX_IN_FLIGHT: usize = 8;

fn lock(m: &Shared) -> MutexGuard<'_, Model> {
    // A panicking writer leaves the counters as they were: keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the exporter until SIGINT/SIGTERM; returns the exit code.
pub fn run(dir: &Path, probe: ProbeOptions, args: &ExporterArgs) -> Result<u8, String> {
    // Before any thread starts, so they all inherit the blocked mask.
    let sigfd = crate::signals::termination_fd()?;
    let server = http::bind(&args.listen)?;
    let opts = WatchOptions {
        probe,
        probe_interval: Duration::from_millis(args.probe_interval_ms),
        collect: !args.no_gc,
        ..WatchOptions::default()
    };
    let watcher = sm::watch(dir, &opts).map_err(|e| e.to_string())?;
    let shared: Shared = Arc::new(Mutex::new(Model::default()));

    let m = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("firma-watch".into())
        .spawn(move || watch_loop(watcher, &m))
        .map_err(|e| format!("cannot start the watcher thread: {e}"))?;

    let m = Arc::clone(&shared);
    let inspect_dir = dir.to_path_buf();
    let every = Duration::from_millis(args.inspect_interval_ms);
    std::thread::Builder::new()
        .name("firma-inspect".into())
        .spawn(move || inspect_loop(&inspect_dir, probe, every, &m))
        .map_err(|e| format!("cannot start the inspect thread: {e}"))?;

    eprintln!("firma: exporter listening on {}", args.listen);
    let dir = Arc::new(dir.to_path_buf());
    let busy = Arc::new(AtomicUsize::new(0));
    loop {
        if let Some(req) = server
            .recv_timeout(Duration::from_millis(200))
            .map_err(|e| format!("cannot accept: {e}"))?
        {
            // Each answer on a thread of its own, so a client that never
            // reads its response holds one thread, not the server; at most
            // MAX_IN_FLIGHT at once, the rest get 503 at once.
            if busy.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
                busy.fetch_sub(1, Ordering::SeqCst);
                http::overloaded(req);
            } else {
                let (m, d, b) = (Arc::clone(&shared), Arc::clone(&dir), Arc::clone(&busy));
                let spawned =
                    std::thread::Builder::new()
                        .name("firma-http".into())
                        .spawn(move || {
                            http::respond(req, &m, &d);
                            b.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    busy.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        if terminated(&sigfd) {
            http::unbind(&args.listen);
            return Ok(0);
        }
    }
}

fn terminated(sigfd: &nix::sys::signalfd::SignalFd) -> bool {
    let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

fn watch_loop(mut watcher: sm::Watcher, m: &Shared) {
    loop {
        match watcher.next(None) {
            Ok(Some(ev)) => lock(m).apply(&ev),
            Ok(None) => {}
            // Not the end: the watcher queues a resync and retries.
            Err(e) => {
                lock(m).watch_errors_total += 1;
                eprintln!("firma: {e}");
            }
        }
    }
}

fn inspect_loop(dir: &PathBuf, probe: ProbeOptions, every: Duration, m: &Shared) {
    loop {
        let start = Instant::now();
        match sm::inspect_with(dir, &probe) {
            Ok(reports) => {
                let mut broken: BTreeMap<&'static str, u64> = BTreeMap::new();
                for r in reports.iter().filter(|r| r.verdict == Verdict::Broken) {
                    *broken.entry(r.reason.as_str()).or_default() += 1;
                }
                let mut g = lock(m);
                g.broken = Some(broken);
                g.scan = Some((start.elapsed(), SystemTime::now()));
            }
            // A missing runtime directory shows as firma_runtime_dir_up 0.
            Err(e) => eprintln!("firma: {e}"),
        }
        std::thread::sleep(every.saturating_sub(start.elapsed()));
    }
}
