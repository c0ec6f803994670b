//! The metrics of a runtime directory as Prometheus exposition text: one
//! model ([`MetricsModel`]), one encoder ([`MetricsModel::render`], text
//! 0.0.4 or OpenMetrics), fed either by one scan ([`render_metrics`],
//! `firma sidecar metrics`, the C, Python and Go `render_metrics`) or by a
//! watcher ([`Exporter`], `firma sidecar exporter`). Public through
//! [`crate::sidecar_markers::metrics`]; docs/design.md, "Metrics", is the
//! contract.

mod encode;
mod exporter;
mod model;

use std::path::Path;
use std::time::SystemTime;

pub use encode::Format;
pub use exporter::{ErrorHook, Exporter, ExporterOptions};
pub use model::{MetricsModel, MetricsOptions, ModelKind, broken_by_reason};

use crate::sidecar_markers::Result;

impl MetricsModel {
    /// The exposition of this model in `format`.
    pub fn render(&self, format: Format) -> String {
        encode::render_at(self, format, SystemTime::now())
    }

    /// [`MetricsModel::render`] as if rendered at `now` (only the start
    /// time of a sidecar whose `started_at` is not RFC 3339 depends on it).
    pub fn render_at(&self, format: Format, now: SystemTime) -> String {
        encode::render_at(self, format, now)
    }
}

/// Scans `runtime_dir` once ([`MetricsModel::scan`]) and renders it in
/// `format`: what `firma sidecar metrics` prints.
pub fn render_metrics(
    runtime_dir: impl AsRef<Path>,
    opts: &MetricsOptions,
    format: Format,
) -> Result<String> {
    Ok(MetricsModel::scan(runtime_dir, opts)?.render(format))
}
