//! What the exposition shows: [`MetricsModel`], built either from one scan
//! ([`MetricsModel::scan`], a snapshot: `firma sidecar metrics`,
//! `render_metrics` on every surface) or kept current by a watcher's
//! events ([`MetricsModel::apply`], the exporter).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::sidecar_markers::scan::{self, Mode, Scan};
use crate::sidecar_markers::{
    Event, GoneReason, MarkerReport, ProbeOptions, Result, SidecarEntry, State, Verdict,
    runtime_dir_state,
};

/// How a [`MetricsModel`] was made, which decides the families only one
/// kind has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelKind {
    /// One scan: `firma_markers_collected` is a gauge (what this scan
    /// removed); no watcher or exporter families.
    #[default]
    Snapshot,
    /// A watcher's stream: `firma_markers_collected_total` is a counter
    /// since the start, and the `firma_watch_*` and `firma_exporter_*`
    /// families are shown.
    Watcher,
}

/// What one [`MetricsModel::scan`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsOptions {
    /// The probe of every live sidecar's endpoint.
    pub probe: ProbeOptions,
    /// Remove stale markers as `list` does (default `true`); with `false`
    /// nothing is removed and their sidecars are shown `stopped`.
    pub collect: bool,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            probe: ProbeOptions::default(),
            collect: true,
        }
    }
}

/// The metrics' view of a runtime directory. Its fields are public so a
/// supervisor can keep one itself; [`super::Exporter`] keeps one current
/// from a watcher.
#[derive(Clone, Debug, Default)]
pub struct MetricsModel {
    pub kind: ModelKind,
    /// Sandbox id → entry: the live sidecars, and the stopped ones whose
    /// markers stay (not collecting, or not allowed to).
    pub sidecars: BTreeMap<String, SidecarEntry>,
    /// Watcher: true once the stream is complete (`synced`), false after
    /// `resync`. Snapshot: always true.
    pub synced: bool,
    /// Stale markers removed: by this scan (snapshot) or since the start
    /// (watcher).
    pub collected: u64,
    /// `resync` events (the watcher lost track and rescanned).
    pub resyncs_total: u64,
    /// Errors the watcher returned (each followed by a retry).
    pub watch_errors_total: u64,
    /// Broken entries of `run/` by reason code; `None` before the first
    /// inspect pass.
    pub broken: Option<BTreeMap<String, u64>>,
    /// How long the last scan or inspect pass took, and when it finished.
    pub scan: Option<(Duration, SystemTime)>,
    /// Whether the runtime directory was there (`firma_runtime_dir_up`).
    pub runtime_dir_up: bool,
    /// Exporter: how long rendering the previous scrape took.
    pub last_scrape: Option<Duration>,
    /// Exporter: scrapes served before this one, in the text format 0.0.4
    /// and in OpenMetrics.
    pub scrapes_text: u64,
    pub scrapes_openmetrics: u64,
    /// Set when the runtime directory fails the trust checks
    /// (`ScanReport::untrusted`): nothing was collected.
    pub untrusted: Option<String>,
}

impl MetricsModel {
    /// An empty model for a watcher's stream.
    pub fn watcher() -> MetricsModel {
        MetricsModel {
            kind: ModelKind::Watcher,
            ..MetricsModel::default()
        }
    }

    /// One scan of `runtime_dir` (one pass: read, judge, probe, collect
    /// unless `opts.collect` is false), as a snapshot. A runtime directory
    /// that is missing or unreadable is an empty model with
    /// `runtime_dir_up` false, so the alert on it fires; an error only for
    /// bad options or a `run/` that is there but cannot be listed.
    pub fn scan(runtime_dir: impl AsRef<Path>, opts: &MetricsOptions) -> Result<MetricsModel> {
        let dir = runtime_dir.as_ref();
        opts.probe.validate()?;
        let start = Instant::now();
        let state = runtime_dir_state(dir);
        let found = match scan::run_scan(dir, Mode::new(Some(opts.probe), opts.collect, true), None)
        {
            Ok(s) => s,
            Err(_) if !state.is_up() => Scan::default(),
            Err(e) => return Err(e),
        };
        let mut m = MetricsModel::from_reports(&found.reports);
        m.collected = found.collected.len() as u64;
        m.untrusted = found.untrusted;
        m.runtime_dir_up = state.is_up();
        m.synced = true;
        m.scan = Some((start.elapsed(), SystemTime::now()));
        Ok(m)
    }

    /// A snapshot of what `inspect` reported: live and stale entries as
    /// sidecars (stale ones `stopped`), broken ones counted by reason.
    pub fn from_reports(reports: &[MarkerReport]) -> MetricsModel {
        let mut m = MetricsModel {
            broken: Some(broken_by_reason(reports)),
            ..MetricsModel::default()
        };
        for r in reports {
            match (r.verdict, &r.entry) {
                (Verdict::Live, Some(e)) => {
                    m.sidecars.insert(e.sandbox_id.clone(), e.clone());
                }
                (Verdict::Stale, Some(e)) => {
                    let stopped = SidecarEntry {
                        state: State::Stopped,
                        ..e.clone()
                    };
                    m.sidecars.insert(e.sandbox_id.clone(), stopped);
                }
                _ => {}
            }
        }
        m
    }

    /// Applies one event of a watcher's stream.
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Synced { .. } => self.synced = true,
            Event::Resync { .. } => {
                self.synced = false;
                self.resyncs_total += 1;
            }
            Event::Gone {
                reason: GoneReason::Collected,
                ..
            } => self.collected += 1,
            _ => {}
        }
        ev.apply(&mut self.sidecars);
    }
}

/// Broken entries of `reports` by reason code.
pub fn broken_by_reason(reports: &[MarkerReport]) -> BTreeMap<String, u64> {
    let mut broken = BTreeMap::new();
    for r in reports.iter().filter(|r| r.verdict == Verdict::Broken) {
        *broken.entry(r.reason.as_str().to_owned()).or_default() += 1;
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, state: State) -> SidecarEntry {
        SidecarEntry {
            sandbox_id: id.into(),
            agent_id: "a".into(),
            session_id: "s".into(),
            authority_url: "https://auth".into(),
            policy_bundle_version: "v1".into(),
            pid: 42,
            started_at: "2026-01-01T00:00:00Z".into(),
            state,
            listen: "/x".into(),
            uptime_secs: Some(5),
        }
    }

    #[test]
    fn events_keep_the_model_and_the_counters() {
        let mut m = MetricsModel::watcher();
        let at = String::from("t");
        m.apply(&Event::Appeared {
            sandbox_id: "x".into(),
            entry: entry("x", State::Running),
            at: at.clone(),
        });
        m.apply(&Event::Synced { at: at.clone() });
        assert!(m.synced);
        assert_eq!(m.sidecars.len(), 1);
        m.apply(&Event::Gone {
            sandbox_id: "x".into(),
            reason: GoneReason::Collected,
            at: at.clone(),
        });
        m.apply(&Event::Resync {
            reason: "overflow".into(),
            at,
        });
        assert!(m.sidecars.is_empty());
        assert_eq!((m.collected, m.resyncs_total, m.synced), (1, 1, false));
    }
}
