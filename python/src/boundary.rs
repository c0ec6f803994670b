//! The one place the binding calls into the core.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use firma_stack::sidecar_markers::Result as CoreResult;
use pyo3::prelude::*;

use crate::exceptions;

/// Runs `f` (one call into the core) with the GIL released, so other Python
/// threads keep running while the core reads files and probes sockets.
///
/// A core error becomes the matching `firma_stack` exception; a panic is
/// caught here and becomes `InternalError`, never `PanicException`.
pub(crate) fn call_core<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> CoreResult<T> + Send,
{
    match py.detach(move || catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(exceptions::from_stack_error(py, err)),
        Err(payload) => Err(exceptions::internal(py, &panic_message(payload.as_ref()))),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    format!("internal error: a panic was caught at the Python boundary: {detail}")
}
