//! What a scrape shows: the sidecars the watcher has reported so far, the
//! counters of its stream, and the last count of broken markers. The
//! watcher thread and the broken-marker thread write it; a scrape only
//! reads it under the lock (it never scans).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use firma_stack::sidecar_markers::{Event, GoneReason, SidecarEntry};

/// The exporter's view of the host.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Sandbox id → entry, as the events so far describe them.
    pub sidecars: BTreeMap<String, SidecarEntry>,
    /// True once the stream is complete (`synced`), false after `resync`.
    pub synced: bool,
    /// Stale markers this exporter's watcher removed (`gone`, `collected`).
    pub collected_total: u64,
    /// `resync` events (the watcher lost track and rescanned).
    pub resyncs_total: u64,
    /// Errors the watcher returned (each followed by a retry).
    pub watch_errors_total: u64,
    /// Broken entries of `run/` by reason code, from the last inspect pass;
    /// `None` before the first one finished.
    pub broken: Option<BTreeMap<&'static str, u64>>,
    /// How long the last inspect pass took, and when it finished.
    pub scan: Option<(Duration, SystemTime)>,
    /// How long rendering the previous scrape took.
    pub last_scrape: Option<Duration>,
    /// Scrapes served before this one, in the text format 0.0.4 and in
    /// OpenMetrics.
    pub scrapes_text: u64,
    pub scrapes_openmetrics: u64,
}

impl Model {
    /// Applies one event of the watcher's stream.
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
            } => self.collected_total += 1,
            _ => {}
        }
        ev.apply(&mut self.sidecars);
    }
}

/// What a scrape adds to the model: only a `stat` of the runtime directory
/// (`firma_runtime_dir_up`), never a scan.
pub fn runtime_dir_up(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use firma_stack::sidecar_markers::State;

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
        let mut m = Model::default();
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
        assert_eq!(
            (m.collected_total, m.resyncs_total, m.synced),
            (1, 1, false)
        );
    }
}
