//! `MarkerReport` and `ErrorInfo`: immutable views of what the core's
//! `inspect` says about each entry of `run/`.

use firma_stack::sidecar_markers as sm;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::entry::{SidecarEntry, py_code, py_state};
use crate::view::{repr_str, view_pymethods};

fn py_verdict(py: Python<'_>, verdict: sm::Verdict) -> PyResult<Bound<'_, PyAny>> {
    static VERDICT: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    py_code(py, &VERDICT, "Verdict", verdict.as_str())
}

fn py_reason(py: Python<'_>, reason: sm::Reason) -> PyResult<Bound<'_, PyAny>> {
    static REASON: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    py_code(py, &REASON, "Reason", reason.as_str())
}

view_pymethods! {
    /// Why an entry of `run/` is broken: the error object every surface reports.
    class ErrorInfo(sm::ErrorInfo), hashable {
        /// The error code, as the `code` of the matching exception class.
        code -> &'static str = |e| e.code.as_str();
        message -> &str = |e| &e.message;
        path -> Option<&str> = |e| e.path.as_deref();
        errno -> Option<i32> = |e| e.errno;
    }
    /// The JSON object `{"code", "message", "path", "errno"}`, as a dict.
    to_dict, pickled by _error_info_from_json;
    methods {
        fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
            let e = &self.inner;
            Ok(format!(
                "ErrorInfo(code={}, message={}, path={}, errno={})",
                repr_str(py, e.code.as_str())?,
                repr_str(py, &e.message)?,
                e.path
                    .as_deref()
                    .map_or_else(|| Ok("None".to_owned()), |p| repr_str(py, p))?,
                e.errno.map_or_else(|| "None".to_owned(), |n| n.to_string()),
            ))
        }
    }
}

impl From<sm::MarkerReport> for MarkerReport {
    fn from(inner: sm::MarkerReport) -> Self {
        MarkerReport { inner }
    }
}

view_pymethods! {
    /// One entry of `run/` as `inspect` reports it.
    class MarkerReport(sm::MarkerReport), hashable {
        /// The entry's name in `run/`.
        name -> &str = |r| &r.name;
        detail -> &str = |r| &r.detail;
        entry -> Option<SidecarEntry> = |r| r.entry.clone().map(SidecarEntry::from);
        error -> Option<ErrorInfo> = |r| r.error.clone().map(|inner| ErrorInfo { inner });
    }
    /// The JSON object of the C ABI and `firma sidecar inspect --json`, as
    /// a dict: the same serializer, so the same keys, order and values.
    to_dict, pickled by _marker_report_from_json;
    methods {
        #[getter]
        fn verdict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            py_verdict(py, self.inner.verdict)
        }

        #[getter]
        fn state<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
            self.inner.state.map(|s| py_state(py, s)).transpose()
        }

        #[getter]
        fn reason<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            py_reason(py, self.inner.reason)
        }

        fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
            let r = &self.inner;
            let entry = match self.entry() {
                Some(e) => Bound::new(py, e)?.repr()?.to_cow()?.into_owned(),
                None => "None".to_owned(),
            };
            let error = match self.error() {
                Some(e) => e.__repr__(py)?,
                None => "None".to_owned(),
            };
            Ok(format!(
                "MarkerReport(name={}, verdict=Verdict.{}, state={}, reason=Reason.{}, detail={}, \
                 entry={entry}, error={error})",
                repr_str(py, &r.name)?,
                r.verdict.as_str().to_uppercase(),
                r.state.map_or_else(
                    || "None".to_owned(),
                    |s| format!("State.{}", s.as_str().to_uppercase())
                ),
                r.reason.as_str().to_uppercase(),
                repr_str(py, &r.detail)?,
            ))
        }
    }
}

/// Unpickling: a `MarkerReport` from the JSON `__reduce__` wrote.
#[pyfunction]
pub(crate) fn _marker_report_from_json(text: &str) -> PyResult<MarkerReport> {
    serde_json::from_str::<sm::MarkerReport>(text)
        .map(MarkerReport::from)
        .map_err(|e| PyValueError::new_err(format!("not a marker report: {e}")))
}

/// Unpickling: an `ErrorInfo` from the JSON `__reduce__` wrote.
#[pyfunction]
pub(crate) fn _error_info_from_json(text: &str) -> PyResult<ErrorInfo> {
    serde_json::from_str::<sm::ErrorInfo>(text)
        .map(|inner| ErrorInfo { inner })
        .map_err(|e| PyValueError::new_err(format!("not an error object: {e}")))
}
