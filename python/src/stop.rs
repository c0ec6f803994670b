//! `stop` and `StopOutcome`: the Python face of the core's
//! `sidecar_markers::stop` (which does all the work, GIL released).

use firma_stack::sidecar_markers as sm;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::boundary::call_core;
use crate::convert::{FsPath, SandboxId, Zero, invalid_argument, runtime_dir_or_default, seconds};
use crate::view::view_pymethods;

view_pymethods! {
    /// What one `stop` did; `to_dict()` is the outcome JSON of every surface.
    class StopOutcome(sm::StopOutcome) {
        sandbox_id -> &str = |o| &o.sandbox_id;
        pid -> u32 = |o| o.pid;
        /// Names of the signals this call sent, in order.
        signals -> Vec<String> = |o| o.signals.clone();
        exited -> bool = |o| o.exited;
        killed -> bool = |o| o.killed;
        /// This call removed the marker.
        collected -> bool = |o| o.collected;
        waited_ms -> u64 = |o| o.waited_ms;
    }
    methods {
        /// The outcome JSON object of the C ABI and `firma sidecar stop
        /// --json`, as a dict (the same serializer).
        fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let json = serde_json::to_string(&self.inner).map_err(|e| {
                crate::exceptions::internal(py, &format!("cannot serialize outcome: {e}"))
            })?;
            LOADS.import(py, "json", "loads")?.call1((json,))
        }

        fn __repr__(&self) -> String {
            let o = &self.inner;
            let b = |v: bool| if v { "True" } else { "False" };
            format!(
                "StopOutcome(sandbox_id={:?}, pid={}, signals={:?}, exited={}, killed={}, \
                 collected={}, waited_ms={})",
                o.sandbox_id,
                o.pid,
                o.signals,
                b(o.exited),
                b(o.killed),
                b(o.collected),
                o.waited_ms
            )
        }
    }
}

/// A signal argument: a number (`int`, `signal.Signals`), or a name as
/// the CLI and the C ABI take it (`"TERM"`, `"SIGTERM"`, `"SIGRTMIN+2"`),
/// read by the core's `parse_signal`.
#[derive(FromPyObject)]
pub(crate) enum SignalArg {
    #[pyo3(transparent, annotation = "int")]
    Number(i64),
    #[pyo3(transparent, annotation = "str")]
    Name(String),
}

impl SignalArg {
    fn to_signal(&self) -> sm::Result<i32> {
        match self {
            SignalArg::Number(n) => i32::try_from(*n)
                .map_err(|_| invalid_argument("signal", format!("{n} is not a signal number"))),
            SignalArg::Name(name) => sm::parse_signal(name),
        }
    }
}

/// Stops the sidecar of `sandbox_id` safely (identity checked, then
/// checked again with a pidfd held, signalled only through the pidfd),
/// waits up to `grace` seconds, SIGKILLs it if `kill`, and collects its
/// marker. `None` when there is no such marker. The GIL is released while
/// it waits. `signal` is a number or a name (`"TERM"`, `"SIGTERM"`); 15 is
/// SIGTERM on every Linux architecture.
#[pyfunction]
#[pyo3(
    signature = (runtime_dir, sandbox_id, *, signal=SignalArg::Number(15), grace=10.0, kill=true,
                 verify_identity=true),
    text_signature = "(runtime_dir, sandbox_id, *, signal=15, grace=10.0, kill=True, \
                      verify_identity=True)"
)]
pub(crate) fn stop(
    py: Python<'_>,
    runtime_dir: Option<FsPath>,
    sandbox_id: SandboxId,
    signal: SignalArg,
    grace: f64,
    kill: bool,
    verify_identity: bool,
) -> PyResult<Option<StopOutcome>> {
    let (dir, id) = (runtime_dir.map(|d| d.0), sandbox_id.0);
    let grace = seconds(py, "grace", grace, sm::MAX_GRACE, Zero::Allowed)?;
    let outcome = call_core(py, move || {
        let opts = sm::StopOptions {
            signal: signal.to_signal()?,
            grace,
            kill,
            verify_identity,
        };
        sm::stop(runtime_dir_or_default(dir), &id, &opts)
    })?;
    Ok(outcome.map(|inner| StopOutcome { inner }))
}
