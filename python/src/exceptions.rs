//! Core errors to Python exceptions: the one place the mapping lives.
//!
//! The exception classes are plain Python classes in `firma_stack._errors`
//! (they need multiple inheritance: `ValueError`, `OSError`); this module
//! picks the class for each core variant, 1:1, and fills its attributes.

use firma_stack::sidecar_markers::StackError;
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

const ERRORS_MODULE: &str = "firma_stack._errors";

fn errors_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import(ERRORS_MODULE)?.unbind()))
        .map(|m| m.bind(py).clone())
}

/// Instantiates `firma_stack._errors.<class>(message, **kwargs)` as a `PyErr`.
fn build(py: Python<'_>, class: &str, message: String, kwargs: &[(&str, Py<PyAny>)]) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let cls = errors_module(py)?.getattr(class)?;
        let dict = PyDict::new(py);
        for (key, value) in kwargs {
            dict.set_item(key, value)?;
        }
        let exc = cls.call((message,), Some(&dict))?;
        Ok(PyErr::from_value(exc))
    })();
    // If the exception itself cannot be built (a broken install), raise
    // that failure rather than hide it.
    made.unwrap_or_else(|e| e)
}

fn obj<'py, T>(py: Python<'py>, value: T) -> Py<PyAny>
where
    T: IntoPyObject<'py>,
{
    match value.into_bound_py_any(py) {
        Ok(v) => v.unbind(),
        Err(_) => py.None(),
    }
}

/// The exception for a core error. Class per variant:
///
/// | core variant         | Python class            | code                |
/// |----------------------|-------------------------|---------------------|
/// | `InvalidSandboxId`   | `InvalidSandboxIdError` | `invalid_argument`  |
/// | `InvalidArgument`    | `InvalidArgumentError`  | `invalid_argument`  |
/// | `Io`                 | `StackIOError`          | `io`                |
/// | `MarkerParse`        | `MarkerParseError`      | `marker_parse`      |
/// | `IdentityMismatch`   | `IdentityMismatchError` | `identity_mismatch` |
/// | (a variant added later) | `InternalError`      | `internal`          |
pub(crate) fn from_stack_error(py: Python<'_>, err: StackError) -> PyErr {
    let message = err.to_string();
    let path = obj(py, err.path().map(|p| p.as_os_str().to_owned()));
    match &err {
        StackError::InvalidSandboxId { id, reason } => build(
            py,
            "InvalidSandboxIdError",
            message,
            &[("sandbox_id", obj(py, id)), ("reason", obj(py, reason))],
        ),
        StackError::InvalidArgument { what, reason } => build(
            py,
            "InvalidArgumentError",
            message,
            &[("argument", obj(py, what)), ("reason", obj(py, reason))],
        ),
        StackError::Io { action, source, .. } => build(
            py,
            "StackIOError",
            message,
            &[
                ("path", path),
                ("errno", obj(py, err.errno())),
                ("action", obj(py, *action)),
                ("detail", obj(py, source.to_string())),
            ],
        ),
        StackError::MarkerParse { reason, .. } => build(
            py,
            "MarkerParseError",
            message,
            &[("path", path), ("reason", obj(py, reason))],
        ),
        StackError::IdentityMismatch {
            directory,
            metadata,
            ..
        } => build(
            py,
            "IdentityMismatchError",
            message,
            &[
                ("path", path),
                ("directory", obj(py, directory)),
                ("metadata", obj(py, metadata)),
            ],
        ),
        // `StackError` is non-exhaustive: a variant this binding does not
        // know yet is still an error, reported with its core code.
        other => build(
            py,
            "InternalError",
            message,
            &[("core_code", obj(py, other.code()))],
        ),
    }
}

/// `InternalError` for a bug caught at the boundary (a panic).
pub(crate) fn internal(py: Python<'_>, message: &str) -> PyErr {
    build(py, "InternalError", message.to_owned(), &[])
}
