//! `firma sidecar exporter`: a long-running Prometheus exporter. The model,
//! its threads and the encoder are the library's
//! (`firma_stack::sidecar_markers::metrics::Exporter`); this is only the
//! command's arguments and the HTTP side (`http.rs`): the main thread
//! serves `/metrics` and `/healthz` and stops on SIGINT/SIGTERM.
//!
//! docs/design.md, "Metrics" (its exporter part), is the contract;
//! SECURITY.md says what the endpoint exposes.

mod http;

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use firma_stack::sidecar_markers::metrics::{Exporter, ExporterOptions};
use firma_stack::sidecar_markers::{ProbeOptions, WatchOptions, text};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::args::ExporterArgs;

/// Requests answered at once; more get 503 (a scraper retries at its next
/// interval).
const MAX_IN_FLIGHT: usize = 8;

/// Runs the exporter until SIGINT/SIGTERM; returns the exit code.
pub fn run(dir: &Path, probe: ProbeOptions, args: &ExporterArgs) -> Result<u8, String> {
    // Before any thread starts, so they all inherit the blocked mask.
    let sigfd = crate::signals::termination_fd()?;
    let server = http::bind(&args.listen)?;
    let opts = ExporterOptions {
        watch: WatchOptions {
            probe,
            probe_interval: Duration::from_millis(args.probe_interval_ms),
            collect: !args.no_gc,
            ..WatchOptions::default()
        },
        inspect_interval: Duration::from_millis(args.inspect_interval_ms),
        on_error: Some(Arc::new(|e| {
            eprintln!("firma: {}", text::one_line(&e.to_string()))
        })),
    };
    let exporter = Arc::new(Exporter::start(dir, &opts).map_err(|e| e.to_string())?);

    eprintln!("firma: exporter listening on {}", args.listen);
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
                let (ex, b) = (Arc::clone(&exporter), Arc::clone(&busy));
                let spawned =
                    std::thread::Builder::new()
                        .name("firma-http".into())
                        .spawn(move || {
                            http::respond(req, &ex);
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
