//! `wait`, `WaitOutcome` and `WaitStatus`: the Python face of the core's
//! `sidecar_markers::wait` (docs/design.md, "Waiting"), and
//! `runtime_dir_state`.

use firma_stack::sidecar_markers as sm;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::boundary::{call_core, call_core_interruptible};
use crate::convert::{
    FsPath, Zero, invalid_argument, probe_options, runtime_dir_or_default, seconds,
};
use crate::entry::{py_code, py_state};
use crate::exceptions;
use crate::select::Names;
use crate::view::{repr_str, view_pymethods};
use crate::watch::interval;

view_pymethods! {
    /// One id as `wait` last saw it.
    class WaitStatus(sm::WaitStatus) {
        sandbox_id -> &str = |s| &s.sandbox_id;
        /// Whether it meets the condition.
        met -> bool = |s| s.met;
    }
    /// `{"sandbox_id", "state", "met"}`, as a dict.
    to_dict;
    methods {
        /// Its state; `None` when it has no marker.
        #[getter]
        fn state<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
            self.inner.state.map(|s| py_state(py, s)).transpose()
        }

        fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
            let s = &self.inner;
            Ok(format!(
                "WaitStatus(sandbox_id={}, state={}, met={})",
                repr_str(py, &s.sandbox_id)?,
                s.state.map_or_else(
                    || "None".to_owned(),
                    |s| format!("State.{}", s.as_str().to_uppercase())
                ),
                if s.met { "True" } else { "False" },
            ))
        }
    }
}

view_pymethods! {
    /// What one `wait` ended with.
    class WaitOutcome(sm::WaitOutcome) {
        /// What was waited for: `"running"` or `"gone"`.
        condition -> &'static str = |o| o.condition.as_str();
        /// Every id met the condition before the timeout.
        met -> bool = |o| o.met;
        waited_ms -> u64 = |o| o.waited_ms;
        /// Every id, in the order given.
        sidecars -> Vec<WaitStatus> = |o| {
            o.sidecars.iter().cloned().map(|inner| WaitStatus { inner }).collect()
        };
    }
    /// The JSON object of `firma sidecar wait --json` (`{"condition",
    /// "met", "waited_ms", "sidecars"}`), as a dict: the same serializer.
    to_dict;
    methods {
        fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
            let o = &self.inner;
            let sidecars = self
                .sidecars()
                .into_iter()
                .map(|s| s.__repr__(py))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(format!(
                "WaitOutcome(condition={}, met={}, waited_ms={}, sidecars=[{}])",
                repr_str(py, o.condition.as_str())?,
                if o.met { "True" } else { "False" },
                o.waited_ms,
                sidecars.join(", "),
            ))
        }
    }
}

/// The core's (serde) reading of a condition name.
fn condition(name: &str) -> sm::Result<sm::WaitFor> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        invalid_argument(
            "for_",
            format!("{name:?} is not a condition (running, gone)"),
        )
    })
}

/// Waits until every one of `sandbox_ids` meets `for_` (`"running"`: a
/// marker in state running; `"gone"`: no marker, or state stopped) or
/// `timeout` seconds pass (a timeout is not an error: `met` is false).
/// Read-only, on the core's watcher; interruptible like `list`.
#[pyfunction]
#[pyo3(signature = (
    sandbox_ids, *, for_="running", timeout=30.0, runtime_dir=None, probe_interval=1.0,
    probe_timeout=None,
))]
pub(crate) fn wait(
    py: Python<'_>,
    sandbox_ids: Names,
    for_: &str,
    timeout: f64,
    runtime_dir: Option<FsPath>,
    probe_interval: f64,
    probe_timeout: Option<f64>,
) -> PyResult<WaitOutcome> {
    let opts = sm::WaitOptions {
        condition: condition(for_).map_err(|e| exceptions::from_stack_error(py, e))?,
        timeout: seconds(
            py,
            "timeout",
            timeout,
            sm::MAX_WATCH_INTERVAL,
            Zero::Allowed,
        )?,
        probe: probe_options(py, probe_timeout)?,
        probe_interval: interval(py, "probe_interval", probe_interval)?,
    };
    let (dir, ids) = (runtime_dir.map(|d| d.0), sandbox_ids.0);
    let inner = call_core_interruptible(py, move || {
        sm::wait(runtime_dir_or_default(dir), &ids, &opts)
    })?;
    Ok(WaitOutcome { inner })
}

/// Whether `runtime_dir` (default: `default_runtime_dir()`) is there to be
/// read, as a `RuntimeDirState`: `list` and the other reading calls answer
/// a missing directory as an empty one, so a mistyped path looks like an
/// idle host; this tells the two apart. Never fails.
#[pyfunction]
#[pyo3(signature = (runtime_dir=None))]
pub(crate) fn runtime_dir_state(
    py: Python<'_>,
    runtime_dir: Option<FsPath>,
) -> PyResult<Bound<'_, PyAny>> {
    static STATES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let dir = runtime_dir.map(|d| d.0);
    let state = call_core(py, move || {
        Ok(sm::runtime_dir_state(runtime_dir_or_default(dir)))
    })?;
    py_code(py, &STATES, "RuntimeDirState", state.as_str())
}
