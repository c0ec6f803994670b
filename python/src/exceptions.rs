//! Core errors to Python exceptions: the one place the mapping lives.
//!
//! The exception classes are plain Python classes in `firma_stack._errors`
//! (they need multiple inheritance: `ValueError`, `OSError`); this module
//! picks the class for each core variant, 1:1, and fills its attributes.

use firma_stack::sidecar_markers::{ErrorCode, StackError};
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

/// The `firma_stack._errors` class of each core error code: an exhaustive
/// match, so a new code fails to compile until it has a class.
///
/// | code                | Python class                                      |
/// |---------------------|---------------------------------------------------|
/// | `invalid_argument`  | `InvalidArgumentError` (`InvalidSandboxIdError` for an id) |
/// | `io`                | `StackIOError` (also `OSError`)                   |
/// | `marker_parse`      | `MarkerParseError`                                |
/// | `identity_mismatch` | `IdentityMismatchError`                           |
/// | `internal`          | `InternalError`                                   |
/// | `identity_unverifiable` | `IdentityUnverifiableError`                   |
/// | `pid_reused`        | `PidReusedError`                                  |
/// | `refused`           | `StopRefusedError`                                |
/// | `pidfd_unavailable` | `PidfdUnavailableError`                           |
/// | `untrusted_directory` | `UntrustedDirectoryError`                       |
/// | `not_authorized`    | `NotAuthorizedError`                              |
/// | `forked`            | `ForkedError`                                     |
pub(crate) fn class_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "InvalidArgumentError",
        ErrorCode::Io => "StackIOError",
        ErrorCode::MarkerParse => "MarkerParseError",
        ErrorCode::IdentityMismatch => "IdentityMismatchError",
        ErrorCode::Internal => "InternalError",
        ErrorCode::IdentityUnverifiable => "IdentityUnverifiableError",
        ErrorCode::PidReused => "PidReusedError",
        ErrorCode::Refused => "StopRefusedError",
        ErrorCode::PidfdUnavailable => "PidfdUnavailableError",
        ErrorCode::UntrustedDirectory => "UntrustedDirectoryError",
        ErrorCode::NotAuthorized => "NotAuthorizedError",
        ErrorCode::Forked => "ForkedError",
    }
}

/// The class object of [`class_name`].
pub(crate) fn class_of(py: Python<'_>, code: ErrorCode) -> PyResult<Bound<'_, PyAny>> {
    errors_module(py)?.getattr(class_name(code))
}

/// The exception for a core error: the class of its [`ErrorCode`] (an
/// invalid sandbox id gets the subclass `InvalidSandboxIdError`), the
/// attributes from the variant.
pub(crate) fn from_stack_error(py: Python<'_>, err: StackError) -> PyErr {
    let message = err.info().message;
    let path = obj(py, err.path().map(|p| p.as_os_str().to_owned()));
    let class = match &err {
        StackError::InvalidSandboxId { .. } => "InvalidSandboxIdError",
        _ => class_name(err.code()),
    };
    let attrs: Vec<(&str, Py<PyAny>)> = match &err {
        StackError::InvalidSandboxId { id, reason } => {
            vec![("sandbox_id", obj(py, id)), ("reason", obj(py, reason))]
        }
        StackError::InvalidArgument { what, reason } => {
            vec![("argument", obj(py, what)), ("reason", obj(py, reason))]
        }
        StackError::Io { action, source, .. } => vec![
            ("path", path),
            ("errno", obj(py, err.errno())),
            ("action", obj(py, *action)),
            ("detail", obj(py, source.to_string())),
        ],
        StackError::MarkerParse { reason, .. } => {
            vec![("path", path), ("reason", obj(py, reason))]
        }
        StackError::IdentityMismatch {
            directory,
            metadata,
            ..
        } => vec![
            ("path", path),
            ("directory", obj(py, directory)),
            ("metadata", obj(py, metadata)),
        ],
        StackError::IdentityUnverifiable {
            sandbox_id,
            pid,
            reason,
            ..
        }
        | StackError::Refused {
            sandbox_id,
            pid,
            reason,
            ..
        }
        | StackError::NotAuthorized {
            sandbox_id,
            pid,
            reason,
            ..
        } => vec![
            ("path", path),
            ("sandbox_id", obj(py, sandbox_id)),
            ("pid", obj(py, *pid)),
            ("reason", obj(py, reason)),
        ],
        StackError::PidReused {
            sandbox_id, pid, ..
        }
        | StackError::PidfdUnavailable {
            sandbox_id, pid, ..
        } => {
            let mut attrs = vec![
                ("path", path),
                ("sandbox_id", obj(py, sandbox_id)),
                ("pid", obj(py, *pid)),
            ];
            if matches!(err, StackError::PidfdUnavailable { .. }) {
                attrs.push(("errno", obj(py, err.errno())));
            }
            attrs
        }
        StackError::UntrustedDirectory { action, reason, .. } => vec![
            ("path", path),
            ("action", obj(py, *action)),
            ("reason", obj(py, reason)),
        ],
        StackError::Forked { owner, caller } => {
            vec![("owner_pid", obj(py, *owner)), ("pid", obj(py, *caller))]
        }
        // Attributes of a variant added later: the path, if any.
        _ => vec![("path", path)],
    };
    build(py, class, message, &attrs)
}

/// `InternalError` for a bug caught at the boundary (a panic).
pub(crate) fn internal(py: Python<'_>, message: &str) -> PyErr {
    build(py, "InternalError", message.to_owned(), &[])
}
