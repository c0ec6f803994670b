//! `MarkerReport` and `ErrorInfo`: immutable views of what the core's
//! `inspect` says about each entry of `run/`.

use firma_stack::sidecar_markers as sm;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};

use crate::entry::{SidecarEntry, core_json, loads, py_code, py_state, repr_str};

fn py_verdict(py: Python<'_>, verdict: sm::Verdict) -> PyResult<Bound<'_, PyAny>> {
    static VERDICT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    py_code(py, &VERDICT, "Verdict", verdict.as_str())
}

fn py_reason(py: Python<'_>, reason: sm::Reason) -> PyResult<Bound<'_, PyAny>> {
    static REASON: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    py_code(py, &REASON, "Reason", reason.as_str())
}

/// Pickling and `copy`: `(firma_stack._native.<rebuild>, (json,))`, the
/// value rebuilt from the core's own JSON of it.
fn reduce<'py>(
    py: Python<'py>,
    rebuild: &str,
    text: serde_json::Result<String>,
) -> PyResult<Bound<'py, PyTuple>> {
    let text = core_json(py, text)?;
    let f = py.import("firma_stack._native")?.getattr(rebuild)?;
    let args = PyTuple::new(py, [text])?;
    PyTuple::new(py, [f, args.into_any()])
}

/// Why an entry of `run/` is broken: the error object every surface reports.
#[pyclass(frozen, eq, hash, module = "firma_stack", name = "ErrorInfo")]
#[derive(PartialEq, Hash)]
pub(crate) struct ErrorInfo {
    inner: sm::ErrorInfo,
}

#[pymethods]
impl ErrorInfo {
    /// The error code, as the `code` of the matching exception class.
    #[getter]
    fn code(&self) -> &'static str {
        self.inner.code.as_str()
    }

    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }

    #[getter]
    fn path(&self) -> Option<&str> {
        self.inner.path.as_deref()
    }

    #[getter]
    fn errno(&self) -> Option<i32> {
        self.inner.errno
    }

    /// The JSON object `{"code", "message", "path", "errno"}`, as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, serde_json::to_string(&self.inner))
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        reduce(
            py,
            "_error_info_from_json",
            serde_json::to_string(&self.inner),
        )
    }

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

/// One entry of `run/` as `inspect` reports it.
#[pyclass(frozen, eq, hash, module = "firma_stack", name = "MarkerReport")]
#[derive(PartialEq, Hash)]
pub(crate) struct MarkerReport {
    inner: sm::MarkerReport,
}

impl From<sm::MarkerReport> for MarkerReport {
    fn from(inner: sm::MarkerReport) -> Self {
        MarkerReport { inner }
    }
}

#[pymethods]
impl MarkerReport {
    /// The entry's name in `run/`.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

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

    #[getter]
    fn detail(&self) -> &str {
        &self.inner.detail
    }

    #[getter]
    fn entry(&self) -> Option<SidecarEntry> {
        self.inner.entry.clone().map(SidecarEntry::from)
    }

    #[getter]
    fn error(&self) -> Option<ErrorInfo> {
        self.inner.error.clone().map(|inner| ErrorInfo { inner })
    }

    /// The JSON object of the C ABI and `firma sidecar inspect --json`, as
    /// a dict: the same serializer, so the same keys, order and values.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, serde_json::to_string(&self.inner))
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        reduce(
            py,
            "_marker_report_from_json",
            serde_json::to_string(&self.inner),
        )
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
