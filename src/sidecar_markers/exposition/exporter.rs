//! [`Exporter`]: a [`MetricsModel`] kept current by the core's watcher, for
//! a long-running process that serves the metrics (`firma sidecar
//! exporter`, or a supervisor on its own HTTP server).
//!
//! Two threads share the model behind a mutex:
//! - the watcher thread runs a `Watcher` (inotify, pidfds, probe rounds;
//!   collecting stale markers unless told not to) and applies each event;
//! - the inspect thread counts broken markers by reason with one read-only
//!   `inspect` pass every `inspect_interval` (the watcher reports live
//!   sidecars only).
//!
//! [`Exporter::render`] is a scrape: it renders the model under the lock
//! and adds one `stat` of the runtime directory; it never scans.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::encode::{Format, render_at};
use super::model::{MetricsModel, broken_by_reason};
use crate::sidecar_markers::{self as sm, Result, StackError, WatchOptions};

/// Called with each error the exporter's threads meet (a watcher error,
/// retried; an inspect pass that failed); the exporter keeps going.
pub type ErrorHook = Arc<dyn Fn(&StackError) + Send + Sync>;

/// How an [`Exporter`] watches.
#[derive(Clone)]
pub struct ExporterOptions {
    /// The watcher's options (probe timeout, probe interval, collection).
    pub watch: WatchOptions,
    /// How often broken markers are counted (one read-only inspect pass).
    pub inspect_interval: Duration,
    /// Errors met on the way (default: none; `firma` prints them).
    pub on_error: Option<ErrorHook>,
}

impl Default for ExporterOptions {
    fn default() -> Self {
        ExporterOptions {
            watch: WatchOptions {
                probe_interval: Duration::from_secs(2),
                ..WatchOptions::default()
            },
            inspect_interval: Duration::from_secs(60),
            on_error: None,
        }
    }
}

impl fmt::Debug for ExporterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterOptions")
            .field("watch", &self.watch)
            .field("inspect_interval", &self.inspect_interval)
            .field("on_error", &self.on_error.as_ref().map(|_| "set"))
            .finish()
    }
}

/// What the threads share: the model, and the stop flag they wait on.
struct Shared {
    model: Mutex<MetricsModel>,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn model(&self) -> MutexGuard<'_, MetricsModel> {
        // A panicking writer leaves the counters as they were: keep serving.
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopping(&self) -> bool {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps up to `d`; true when told to stop.
    fn sleep(&self, d: Duration) -> bool {
        let g = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .wake
            .wait_timeout_while(g, d, |stop| !*stop)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }
}

/// A watcher-fed [`MetricsModel`] and its two threads; dropping it stops
/// and joins them.
pub struct Exporter {
    dir: PathBuf,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// How long the watcher thread blocks before it looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

impl Exporter {
    /// Starts watching `runtime_dir`: fails as `watch` does (bad options,
    /// no inotify), or when a thread cannot be started.
    pub fn start(runtime_dir: impl AsRef<Path>, opts: &ExporterOptions) -> Result<Exporter> {
        let dir = runtime_dir.as_ref().to_path_buf();
        if opts.inspect_interval.is_zero() {
            return Err(StackError::InvalidArgument {
                what: "inspect_interval".into(),
                reason: "must be more than zero".into(),
            });
        }
        let mut watcher = sm::watch(&dir, &opts.watch)?;
        let shared = Arc::new(Shared {
            model: Mutex::new(MetricsModel::watcher()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let mut ex = Exporter {
            dir: dir.clone(),
            shared: Arc::clone(&shared),
            threads: Vec::new(),
        };
        let spawn_failed = |e| StackError::io("start a metrics thread for", &ex.dir, e);

        let (s, hook) = (Arc::clone(&shared), opts.on_error.clone());
        let t = std::thread::Builder::new()
            .name("firma-watch".into())
            .spawn(move || {
                while !s.stopping() {
                    match watcher.next(Some(POLL)) {
                        Ok(Some(ev)) => s.model().apply(&ev),
                        Ok(None) => {}
                        // Not the end: the watcher queues a resync and retries.
                        Err(e) => {
                            s.model().watch_errors_total += 1;
                            if let Some(h) = &hook {
                                h(&e);
                            }
                        }
                    }
                }
            })
            .map_err(spawn_failed)?;
        ex.threads.push(t);

        let (s, hook, probe) = (Arc::clone(&shared), opts.on_error.clone(), opts.watch.probe);
        let every = opts.inspect_interval;
        let t = std::thread::Builder::new()
            .name("firma-inspect".into())
            .spawn(move || {
                loop {
                    let start = Instant::now();
                    match sm::inspect_with(&dir, &probe) {
                        Ok(reports) => {
                            let broken = broken_by_reason(&reports);
                            let mut m = s.model();
                            m.broken = Some(broken);
                            m.scan = Some((start.elapsed(), SystemTime::now()));
                        }
                        // A missing runtime directory shows as firma_runtime_dir_up 0.
                        Err(e) => {
                            if let Some(h) = &hook {
                                h(&e);
                            }
                        }
                    }
                    if s.sleep(every.saturating_sub(start.elapsed())) {
                        return;
                    }
                }
            })
            .map_err(spawn_failed)?;
        ex.threads.push(t);
        Ok(ex)
    }

    /// One scrape in `format`: the model rendered under the lock, with a
    /// `stat` of the runtime directory (`firma_runtime_dir_up`); counted in
    /// `firma_exporter_scrapes_total`, its rendering time shown by the next
    /// one. Never scans.
    pub fn render(&self, format: Format) -> String {
        let up = std::fs::metadata(&self.dir).is_ok_and(|m| m.is_dir());
        let start = Instant::now();
        let mut m = self.shared.model();
        m.runtime_dir_up = up;
        let body = render_at(&m, format, SystemTime::now());
        m.last_scrape = Some(start.elapsed());
        match format {
            Format::Text => m.scrapes_text += 1,
            Format::OpenMetrics => m.scrapes_openmetrics += 1,
        }
        body
    }

    /// True once the watcher's first `synced` arrived and while no
    /// `resync` is pending (what `/healthz` answers).
    pub fn synced(&self) -> bool {
        self.shared.model().synced
    }

    /// A copy of the model as it is now.
    pub fn model(&self) -> MetricsModel {
        self.shared.model().clone()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter").field("dir", &self.dir).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A supervisor's use: start, wait for the first `synced`, scrape in
    /// both formats (each scrape counted), drop: the threads stop and are
    /// joined (never hangs: a generous bound, not a timing assertion).
    #[test]
    fn an_exporter_renders_scrapes_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Exporter::start(dir.path(), &ExporterOptions::default()).unwrap();
        let bound = Instant::now() + Duration::from_secs(30);
        while !ex.synced() {
            assert!(Instant::now() < bound, "never synced");
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = ex.render(Format::Text);
        assert!(text.contains("\nfirma_watch_synced 1\n"), "{text}");
        assert!(text.contains("\nfirma_runtime_dir_up 1\n"), "{text}");
        let om = ex.render(Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"), "{om}");
        let m = ex.model();
        assert_eq!((m.scrapes_text, m.scrapes_openmetrics), (1, 1));

        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(ex);
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("dropping the exporter stops its threads");
    }

    #[test]
    fn a_zero_inspect_interval_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ExporterOptions {
            inspect_interval: Duration::ZERO,
            ..ExporterOptions::default()
        };
        let e = Exporter::start(dir.path(), &opts).unwrap_err();
        assert!(e.to_string().contains("inspect_interval"), "{e}");
    }
}
