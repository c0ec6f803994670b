//! `firma_stack._native`: the Python binding of the firma-stack core.
//!
//! A thin layer: every function converts its arguments, calls exactly one
//! core function with the GIL released (see [`boundary::call_core`]; the
//! probing calls `list`, `get`, `inspect` and `probe_entry` through
//! [`boundary::call_core_interruptible`], so Ctrl-C ends their wait), and
//! converts the result or error back. Listing, probing, garbage collection
//! and marker writing all happen in the core (`firma_stack::sidecar_markers`).

mod boundary;
mod convert;
mod entry;
mod exceptions;
mod metrics;
mod report;
mod select;
mod stop;
mod view;
mod wait;
mod watch;

use std::ffi::OsString;

use firma_stack::sidecar_markers::{self as sm, ErrorCode, MetadataFile};
use pyo3::prelude::*;

use boundary::{call_core, call_core_interruptible};
use convert::{FsPath, SandboxId, pid_arg, probe_all, probe_options, runtime_dir_or_default};
use entry::SidecarEntry;
use report::{ErrorInfo, MarkerReport};
use select::{Names, Select};

/// `#[pyfunction]`s `name(runtime_dir=None, *, timeout=None, state=None,
/// agent=None, session=None, sandbox_id=None, <extra>=None...)` that probe
/// every marker under `runtime_dir` with the core's `f` (see
/// [`probe_all`]) and return the items the selection (see [`Select`];
/// `extra` is `reason` or nothing) matches by the core's `Filter` method
/// `matches`, each converted.
macro_rules! probe_all_pyfunctions {
    ($(
        $(#[$attr:meta])*
        fn $name:ident($($extra:ident),*) -> Vec<$item:ty> = $core:path, Filter::$matches:ident;
    )*) => {$(
        $(#[$attr])*
        #[pyfunction]
        #[pyo3(signature = (
            runtime_dir=None, *, timeout=None, state=None, agent=None, session=None,
            sandbox_id=None $(, $extra=None)*
        ))]
        #[allow(clippy::too_many_arguments)]
        fn $name(
            py: Python<'_>,
            runtime_dir: Option<FsPath>,
            timeout: Option<f64>,
            state: Option<Names>,
            agent: Option<String>,
            session: Option<String>,
            sandbox_id: Option<Names>,
            $($extra: Option<Names>,)*
        ) -> PyResult<Vec<$item>> {
            let select = Select {
                $($extra,)*
                ..Select::entries(state, agent, session, sandbox_id)
            };
            let filter = select.filter(py)?;
            probe_all(py, runtime_dir, timeout, $core, move |item| {
                filter.as_ref().is_none_or(|f| f.$matches(item))
            })
        }
    )*};
}

probe_all_pyfunctions! {
    /// Every live sidecar under `runtime_dir` (default: `default_runtime_dir()`),
    /// sorted by sandbox id, or those the selection matches. Stale markers
    /// are garbage-collected on the way.
    fn list() -> Vec<SidecarEntry> = sm::list_with, Filter::matches_entry;

    /// One report per entry of `run/` under `runtime_dir`, sorted by name: why
    /// each marker is live, stale or broken; only those the selection
    /// matches. Read-only: nothing is removed.
    fn inspect(reason) -> Vec<MarkerReport> = sm::inspect_with, Filter::matches_report;
}

/// The sidecar of `sandbox_id`, whatever its state, or `None` when there is
/// no such marker or the selection does not match it. Nothing is removed.
#[pyfunction]
#[pyo3(signature = (runtime_dir, sandbox_id, *, timeout=None, state=None, agent=None, session=None))]
#[allow(clippy::too_many_arguments)]
fn get(
    py: Python<'_>,
    runtime_dir: Option<FsPath>,
    sandbox_id: SandboxId,
    timeout: Option<f64>,
    state: Option<Names>,
    agent: Option<String>,
    session: Option<String>,
) -> PyResult<Option<SidecarEntry>> {
    let opts = probe_options(py, timeout)?;
    let filter = Select::entries(state, agent, session, None).filter(py)?;
    let (dir, id) = (runtime_dir.map(|d| d.0), sandbox_id.0);
    let entry = call_core_interruptible(py, move || {
        let entry = sm::get_with(runtime_dir_or_default(dir), &id, &opts)?;
        Ok(entry.filter(|e| filter.as_ref().is_none_or(|f| f.matches_entry(e))))
    })?;
    Ok(entry.map(SidecarEntry::from))
}

/// Removes every stale marker under `runtime_dir` and returns the removed
/// sandbox ids, sorted.
#[pyfunction]
#[pyo3(signature = (runtime_dir=None))]
fn gc_stale(py: Python<'_>, runtime_dir: Option<FsPath>) -> PyResult<Vec<String>> {
    let dir = runtime_dir.map(|d| d.0);
    call_core(py, move || sm::gc_stale(runtime_dir_or_default(dir)))
}

/// Reads and probes one marker directory. Nothing is removed.
#[pyfunction]
#[pyo3(signature = (marker_dir, *, timeout=None))]
fn probe_entry(py: Python<'_>, marker_dir: FsPath, timeout: Option<f64>) -> PyResult<SidecarEntry> {
    let opts = probe_options(py, timeout)?;
    let dir = marker_dir.0;
    let entry = call_core_interruptible(py, move || sm::probe_entry_with(dir, &opts))?;
    Ok(entry.into())
}

/// The runtime directory used when none is given: `$FIRMA_STATE_DIR` if set
/// and non-empty, else `$XDG_RUNTIME_DIR/firma`, else `/run/firma` for root
/// and `/tmp/firma-<uid>` for other users (the core's answer).
#[pyfunction]
fn default_runtime_dir(py: Python<'_>) -> PyResult<OsString> {
    let dir = call_core(py, || Ok(sm::default_runtime_dir()))?;
    Ok(dir.into_os_string())
}

/// Creates the marker `<runtime_dir>/run/<sandbox_id>` atomically and returns
/// its path. When `boot_id` or `pid_start_ticks` is `None`, the identity of
/// the live process `pid` is recorded.
#[pyfunction]
#[pyo3(signature = (
    runtime_dir, *, sandbox_id, agent_id, session_id, authority_url,
    policy_bundle_version, pid, started_at, listen=None, boot_id=None,
    pid_start_ticks=None,
))]
#[allow(clippy::too_many_arguments)]
fn create_marker(
    py: Python<'_>,
    runtime_dir: Option<FsPath>,
    sandbox_id: SandboxId,
    agent_id: String,
    session_id: String,
    authority_url: String,
    policy_bundle_version: String,
    pid: i64,
    started_at: String,
    listen: Option<String>,
    boot_id: Option<String>,
    pid_start_ticks: Option<u64>,
) -> PyResult<OsString> {
    let dir = runtime_dir.map(|d| d.0);
    let path = call_core(py, move || {
        let meta = MetadataFile {
            sandbox_id: sandbox_id.0,
            agent_id,
            session_id,
            authority_url,
            policy_bundle_version,
            pid: pid_arg(pid)?,
            started_at,
            listen,
            boot_id,
            pid_start_ticks,
            pid_ns_inode: None,
            boottime_offset_ns: None,
        };
        sm::create_marker(runtime_dir_or_default(dir), &meta)
    })?;
    Ok(path.into_os_string())
}

/// Removes the marker of `sandbox_id` whatever its state; `False` when there
/// was none.
#[pyfunction]
#[pyo3(signature = (runtime_dir, sandbox_id))]
fn remove_marker(
    py: Python<'_>,
    runtime_dir: Option<FsPath>,
    sandbox_id: SandboxId,
) -> PyResult<bool> {
    let dir = runtime_dir.map(|d| d.0);
    call_core(py, move || {
        sm::remove_marker(runtime_dir_or_default(dir), &sandbox_id.0)
    })
}

/// Runs the example sidecar (`firma_stack::example_sidecar`) with `argv`
/// (program name first, then the flags of `firma-example-sidecar`) until
/// SIGTERM or SIGINT, and returns its exit status. It blocks those signals
/// in the calling thread: `python -m firma_stack.example_sidecar` calls it
/// from the main thread of a process of its own. The GIL is released
/// while it runs.
#[pyfunction]
fn _run_example_sidecar(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(move || firma_stack::example_sidecar::main_with_args(argv))
}

/// Test hook: panics inside the boundary, to prove a panic surfaces as
/// `InternalError` and never as `PanicException`.
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    call_core(py, || -> sm::Result<()> {
        panic!("deliberate panic requested by _panic_for_test")
    })
}

/// Test hook: the exception class the binding raises for the core error
/// code `code` (the same exhaustive match as every raised error).
#[pyfunction]
fn _exception_class<'py>(py: Python<'py>, code: &str) -> PyResult<Bound<'py, PyAny>> {
    let parsed: ErrorCode = serde_json::from_value(serde_json::Value::String(code.to_owned()))
        .map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!("{code:?} is not an error code"))
        })?;
    exceptions::class_of(py, parsed)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SidecarEntry>()?;
    m.add_class::<MarkerReport>()?;
    m.add_class::<ErrorInfo>()?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(report::_marker_report_from_json, m)?)?;
    m.add_function(wrap_pyfunction!(report::_error_info_from_json, m)?)?;
    m.add_class::<watch::Watcher>()?;
    m.add_function(wrap_pyfunction!(list, m)?)?;
    m.add_function(wrap_pyfunction!(get, m)?)?;
    m.add_function(wrap_pyfunction!(gc_stale, m)?)?;
    m.add_function(wrap_pyfunction!(probe_entry, m)?)?;
    m.add_function(wrap_pyfunction!(default_runtime_dir, m)?)?;
    m.add_function(wrap_pyfunction!(create_marker, m)?)?;
    m.add_function(wrap_pyfunction!(remove_marker, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(_exception_class, m)?)?;
    m.add_function(wrap_pyfunction!(_run_example_sidecar, m)?)?;
    // The one version: the workspace's, from Cargo.toml.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<stop::StopOutcome>()?;
    m.add_class::<wait::WaitOutcome>()?;
    m.add_class::<wait::WaitStatus>()?;
    m.add_function(wrap_pyfunction!(wait::wait, m)?)?;
    m.add_function(wrap_pyfunction!(wait::runtime_dir_state, m)?)?;
    m.add_function(wrap_pyfunction!(stop::stop, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::render_metrics, m)?)?;
    m.add("DEFAULT_TIMEOUT", sm::DEFAULT_TIMEOUT.as_secs_f64())?;
    m.add("MAX_TIMEOUT", convert::MAX_TIMEOUT_SECS)?;
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    m.add("ERROR_CODES", pyo3::types::PyTuple::new(m.py(), codes)?)?;
    Ok(())
}
