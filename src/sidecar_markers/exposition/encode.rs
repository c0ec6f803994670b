//! The one encoder of the metrics, in the two formats a scraper may ask
//! for: the Prometheus text format 0.0.4 and OpenMetrics 1.0.0
//! (docs/design.md, "Metrics"). One list of families, written by one
//! function; the formats differ only in how a family is named on its
//! `# TYPE` line (OpenMetrics names a counter without `_total` and an info
//! without `_info`, and has `info` as a type), in OpenMetrics' closing
//! `# EOF`, and nothing else. The kind of model (snapshot or watcher)
//! decides only the families that have a meaning for one kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::model::{MetricsModel, ModelKind};
use crate::sidecar_markers::metrics::{STATES, escape_help, write_sample};
use crate::sidecar_markers::{SidecarEntry, State};

/// The two exposition formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`),
    /// what node_exporter's textfile collector reads.
    #[default]
    Text,
    /// OpenMetrics 1.0.0 (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

impl Format {
    /// `"text"` or `"openmetrics"`: the name every surface takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::OpenMetrics => "openmetrics",
        }
    }

    /// The format named `"text"` or `"openmetrics"`.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "text" => Some(Format::Text),
            "openmetrics" => Some(Format::OpenMetrics),
            _ => None,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` (with a q above 0), else 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            if parts.next() != Some("application/openmetrics-text") {
                continue;
            }
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if !refused {
                return Format::OpenMetrics;
            }
        }
        Format::Text
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Info,
}

struct Writer {
    out: String,
    format: Format,
    name: &'static str,
}

impl Writer {
    fn family(&mut self, name: &'static str, kind: Kind, help: &str) {
        self.name = name;
        let (shown, ty) = match (self.format, kind) {
            (_, Kind::Gauge) => (name, "gauge"),
            (Format::Text, Kind::Counter) => (name, "counter"),
            (Format::Text, Kind::Info) => (name, "gauge"),
            (Format::OpenMetrics, Kind::Counter) => {
                (name.strip_suffix("_total").unwrap_or(name), "counter")
            }
            (Format::OpenMetrics, Kind::Info) => {
                (name.strip_suffix("_info").unwrap_or(name), "info")
            }
        };
        let _ = writeln!(self.out, "# HELP {shown} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {shown} {ty}");
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: &str) {
        write_sample(&mut self.out, self.name, labels, value);
    }
}

fn seconds(d: Duration) -> String {
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

fn unix(t: SystemTime) -> String {
    seconds(t.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// Whole seconds as an integer, else with milliseconds.
fn unix_short(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    match d.subsec_millis() {
        0 => d.as_secs().to_string(),
        ms => format!("{}.{ms:03}", d.as_secs()),
    }
}

/// The start time of a sidecar in seconds since the epoch: its
/// `started_at` (RFC 3339), else `now - uptime`; `None` when neither is
/// known.
fn start_time(e: &SidecarEntry, now: SystemTime) -> Option<String> {
    if let Ok(t) = humantime::parse_rfc3339(&e.started_at) {
        return Some(unix_short(t));
    }
    e.uptime_secs
        .and_then(|u| now.checked_sub(Duration::from_secs(u)))
        .map(|t| {
            format!(
                "{}",
                t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
            )
        })
}

/// The whole exposition of `m` at `now` (the start time of a sidecar whose
/// `started_at` is not RFC 3339 is `now` minus its uptime).
pub fn render_at(m: &MetricsModel, format: Format, now: SystemTime) -> String {
    let watcher = m.kind == ModelKind::Watcher;
    let mut w = Writer {
        out: String::with_capacity(1024 + m.sidecars.len() * 320),
        format,
        name: "",
    };

    w.family(
        "firma_sidecar_up",
        Kind::Gauge,
        "1 when the sidecar is running (process alive, endpoint accepted a connection), else 0.",
    );
    for e in m.sidecars.values() {
        let up = if e.state == State::Running { "1" } else { "0" };
        w.sample(
            &[
                ("sandbox_id", &e.sandbox_id),
                ("agent_id", &e.agent_id),
                ("session_id", &e.session_id),
            ],
            up,
        );
    }

    w.family(
        "firma_sidecar_start_time_seconds",
        Kind::Gauge,
        "When the sidecar started (its marker's started_at), in seconds since the Unix epoch.",
    );
    for e in m.sidecars.values() {
        if let Some(t) = start_time(e, now) {
            w.sample(&[("sandbox_id", &e.sandbox_id)], &t);
        }
    }

    w.family("firma_sidecars", Kind::Gauge, "Sidecars known, by state.");
    for st in STATES {
        let n = m.sidecars.values().filter(|e| e.state == st).count();
        w.sample(&[("state", st.as_str())], &n.to_string());
    }

    w.family(
        "firma_sidecars_by_policy",
        Kind::Gauge,
        "Sidecars known, by the authority and policy bundle they run with.",
    );
    let mut policies: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for e in m.sidecars.values() {
        *policies
            .entry((&e.authority_url, &e.policy_bundle_version))
            .or_default() += 1;
    }
    for ((url, bundle), n) in policies {
        w.sample(
            &[("authority_url", url), ("policy_bundle_version", bundle)],
            &n.to_string(),
        );
    }

    w.family(
        "firma_markers_broken",
        Kind::Gauge,
        "Entries of run/ that cannot be read or understood, by reason code (never listed, never removed).",
    );
    for (reason, n) in m.broken.iter().flatten() {
        w.sample(&[("reason", reason)], &n.to_string());
    }

    if watcher {
        w.family(
            "firma_markers_collected_total",
            Kind::Counter,
            "Markers of stopped sidecars this exporter removed since it started.",
        );
    } else {
        w.family(
            "firma_markers_collected",
            Kind::Gauge,
            "Markers of stopped sidecars removed by this scan.",
        );
    }
    w.sample(&[], &m.collected.to_string());

    if watcher {
        w.family(
            "firma_watch_resyncs_total",
            Kind::Counter,
            "Times the watcher lost track of run/ (or ran degraded) and rescanned.",
        );
        w.sample(&[], &m.resyncs_total.to_string());
        w.family(
            "firma_watch_errors_total",
            Kind::Counter,
            "Errors the watcher returned (each retried after a pause).",
        );
        w.sample(&[], &m.watch_errors_total.to_string());
        w.family(
            "firma_watch_synced",
            Kind::Gauge,
            "1 when the watcher's view is complete (synced), 0 while it rescans.",
        );
        w.sample(&[], if m.synced { "1" } else { "0" });
    }

    w.family(
        "firma_runtime_dir_up",
        Kind::Gauge,
        "1 when the runtime directory is there to be read, else 0 (every other count is then 0).",
    );
    w.sample(&[], if m.runtime_dir_up { "1" } else { "0" });

    if let Some((d, at)) = m.scan {
        w.family(
            "firma_scan_duration_seconds",
            Kind::Gauge,
            "How long the last scan (or inspect pass counting broken markers) took.",
        );
        w.sample(&[], &seconds(d));
        w.family(
            "firma_scan_timestamp_seconds",
            Kind::Gauge,
            "When the last scan finished, in seconds since the Unix epoch.",
        );
        w.sample(&[], &unix(at));
    }

    if watcher {
        if let Some(d) = m.last_scrape {
            w.family(
                "firma_exporter_scrape_duration_seconds",
                Kind::Gauge,
                "How long rendering the previous scrape took.",
            );
            w.sample(&[], &seconds(d));
        }
        w.family(
            "firma_exporter_scrapes_total",
            Kind::Counter,
            "Scrapes served before this one, by exposition format.",
        );
        w.sample(&[("format", "text")], &m.scrapes_text.to_string());
        w.sample(
            &[("format", "openmetrics")],
            &m.scrapes_openmetrics.to_string(),
        );
    }

    w.family(
        "firma_build_info",
        Kind::Info,
        "The version of firma-stack that rendered these metrics; always 1.",
    );
    w.sample(&[("version", env!("CARGO_PKG_VERSION"))], "1");

    if format == Format::OpenMetrics {
        w.out.push_str("# EOF\n");
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_started_at_else_now_minus_uptime() {
        let mut e = SidecarEntry {
            sandbox_id: "x".into(),
            agent_id: "a".into(),
            session_id: "s".into(),
            authority_url: "u".into(),
            policy_bundle_version: "v".into(),
            pid: 1,
            started_at: "2026-01-01T00:00:00Z".into(),
            state: State::Running,
            listen: "/x".into(),
            uptime_secs: Some(10),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(start_time(&e, now).as_deref(), Some("1767225600"));
        e.started_at = "2026-01-01T00:00:00.250Z".into();
        assert_eq!(start_time(&e, now).as_deref(), Some("1767225600.250"));
        e.started_at = "yesterday".into();
        assert_eq!(start_time(&e, now).as_deref(), Some("1799999990"));
        e.uptime_secs = None;
        assert_eq!(start_time(&e, now), None);
    }

    #[test]
    fn accept_headers_choose_the_format() {
        use Format::*;
        for (accept, want) in [
            (None, Text),
            (Some("text/plain"), Text),
            (
                Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text; q=0"), Text),
            (Some("*/*"), Text),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn both_formats_name_counters_and_infos_as_they_require() {
        let m = MetricsModel::watcher();
        let now = SystemTime::now();
        let p = render_at(&m, Format::Text, now);
        assert!(p.contains("# TYPE firma_markers_collected_total counter\n"));
        assert!(p.contains("# TYPE firma_build_info gauge\n"));
        assert!(!p.contains("# EOF"));
        let o = render_at(&m, Format::OpenMetrics, now);
        assert!(
            o.contains("# TYPE firma_markers_collected counter\nfirma_markers_collected_total 0\n")
        );
        assert!(o.contains("# TYPE firma_build info\n"));
        assert!(o.ends_with("# EOF\n"));
    }

    #[test]
    fn a_snapshot_has_no_watcher_families_and_a_collected_gauge() {
        let m = MetricsModel::default();
        for f in [Format::Text, Format::OpenMetrics] {
            let t = render_at(&m, f, SystemTime::now());
            assert!(
                t.contains("# TYPE firma_markers_collected gauge\nfirma_markers_collected 0\n")
            );
            assert!(!t.contains("_watch_") && !t.contains("_exporter_"), "{t}");
        }
    }
}
