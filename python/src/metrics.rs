//! `render_metrics`: one scan rendered as Prometheus metrics by the core's
//! one encoder (docs/design.md, "Metrics").

use firma_stack::sidecar_markers::metrics::{self as core_metrics, Format, MetricsOptions};
use pyo3::prelude::*;

use crate::boundary::call_core_interruptible;
use crate::convert::{FsPath, invalid_argument, probe_options, runtime_dir_or_default};
use crate::exceptions;

/// The sidecars under `runtime_dir` (default: `default_runtime_dir()`) as
/// Prometheus metrics, from one scan: `format` `"text"` (the text format
/// 0.0.4) or `"openmetrics"` (OpenMetrics 1.0.0). With `collect` (the
/// default) stale markers are removed and counted; without, they are shown
/// `stopped`. The same text as `firma sidecar metrics` and every other
/// surface's `render_metrics`.
#[pyfunction]
#[pyo3(signature = (runtime_dir=None, *, format="text", timeout=None, collect=true))]
pub(crate) fn render_metrics(
    py: Python<'_>,
    runtime_dir: Option<FsPath>,
    format: &str,
    timeout: Option<f64>,
    collect: bool,
) -> PyResult<String> {
    let Some(format) = Format::from_name(format) else {
        let reason = format!("{format:?} is neither \"text\" nor \"openmetrics\"");
        return Err(exceptions::from_stack_error(
            py,
            invalid_argument("format", reason),
        ));
    };
    let opts = MetricsOptions {
        probe: probe_options(py, timeout)?,
        collect,
    };
    let dir = runtime_dir.map(|d| d.0);
    call_core_interruptible(py, move || {
        core_metrics::render_metrics(runtime_dir_or_default(dir), &opts, format)
    })
}
