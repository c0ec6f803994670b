//! Argument conversions: paths, sandbox ids, pids and probe timeouts.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use firma_stack::sidecar_markers::{self as sm, ProbeOptions, StackError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyFloat, PyString};

use crate::boundary::call_core_interruptible;
use crate::exceptions;

/// Longest probe timeout accepted, in seconds: the core's maximum.
pub(crate) const MAX_TIMEOUT_SECS: f64 = sm::MAX_TIMEOUT.as_secs_f64();

/// A filesystem path given as `str`, `bytes` or any `os.PathLike`, converted
/// the way `os.fsencode` does (so undecodable names round-trip).
pub(crate) struct FsPath(pub(crate) PathBuf);

impl<'a, 'py> FromPyObject<'a, 'py> for FsPath {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        // An ASCII `str`, the common case, is the same bytes in every
        // filesystem encoding: no call of `os.fsencode` for it.
        if let Ok(s) = obj.cast::<PyString>()
            && let Ok(text) = s.to_cow()
            && text.is_ascii()
        {
            return Ok(FsPath(PathBuf::from(text.into_owned())));
        }
        static FSENCODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let py = obj.py();
        let encoded = FSENCODE.import(py, "os", "fsencode")?.call1((obj,))?;
        let bytes = encoded.cast::<PyBytes>()?;
        Ok(FsPath(PathBuf::from(OsString::from_vec(
            bytes.as_bytes().to_vec(),
        ))))
    }
}

/// `None` means the default runtime directory, resolved by the core (call
/// it inside the GIL-free closure: it is a core call too).
pub(crate) fn runtime_dir_or_default(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(sm::default_runtime_dir)
}

/// A sandbox id argument, a `str` converted lossily on purpose: an
/// unencodable character becomes U+FFFD, which the core rejects as an
/// invalid sandbox id.
pub(crate) struct SandboxId(pub(crate) String);

impl<'a, 'py> FromPyObject<'a, 'py> for SandboxId {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(SandboxId(
            obj.cast::<PyString>()?.to_string_lossy().into_owned(),
        ))
    }
}

/// The core's error for an argument out of its range.
pub(crate) fn invalid_argument(what: &str, reason: String) -> StackError {
    StackError::InvalidArgument {
        what: what.into(),
        reason,
    }
}

/// A pid argument: an int that does not even fit a `u32` gets the core's
/// own error kind (the core checks the rest of the range).
pub(crate) fn pid_arg(pid: i64) -> Result<u32, StackError> {
    u32::try_from(pid)
        .map_err(|_| invalid_argument("pid", format!("{pid} is out of range 1..={}", sm::MAX_PID)))
}

/// A call that probes every marker under `runtime_dir` (`list`, `inspect`):
/// the probe options of `timeout`, then the core's `f` on the directory
/// (`None`: the default) with the GIL released, the items `keep` (the
/// core's filter) refuses left out, each other one converted.
/// Interruptible: Ctrl-C ends the wait at once (see
/// [`call_core_interruptible`]).
pub(crate) fn probe_all<T, P>(
    py: Python<'_>,
    runtime_dir: Option<FsPath>,
    timeout: Option<f64>,
    f: fn(PathBuf, &ProbeOptions) -> sm::Result<Vec<T>>,
    keep: impl Fn(&T) -> bool + Send + 'static,
) -> PyResult<Vec<P>>
where
    T: Send + 'static,
    P: From<T>,
{
    let opts = probe_options(py, timeout)?;
    let dir = runtime_dir.map(|d| d.0);
    let items = call_core_interruptible(py, move || {
        let mut items = f(runtime_dir_or_default(dir), &opts)?;
        items.retain(|item| keep(item));
        Ok(items)
    })?;
    Ok(items.into_iter().map(P::from).collect())
}

/// Maps an optional timeout in seconds to the core's probe options.
/// `None` is the core's default; otherwise see [`seconds`].
pub(crate) fn probe_options(py: Python<'_>, timeout: Option<f64>) -> PyResult<ProbeOptions> {
    match timeout {
        None => Ok(ProbeOptions::default()),
        Some(secs) => Ok(ProbeOptions::with_timeout(seconds(
            py,
            "timeout",
            secs,
            sm::MAX_TIMEOUT,
            Zero::Refused,
        )?)),
    }
}

/// Whether a duration argument may be zero.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zero {
    /// More than 0 (a timeout, an interval).
    Refused,
    /// 0 is "no wait" (a grace period, a wait that judges once).
    Allowed,
}

/// A duration argument in seconds (`int` or `float`), in `(0, max]` or
/// `[0, max]` seconds as `zero` says, `max` being the core's bound. Out of
/// range (NaN, infinite, negative, or so short it rounds to no time at all
/// when zero is refused) is `InvalidArgumentError` naming `what`, in
/// seconds, the unit of the argument: the core checks the same ranges
/// again, but speaks in milliseconds, the unit of the C ABI.
pub(crate) fn seconds(
    py: Python<'_>,
    what: &str,
    secs: f64,
    max: Duration,
    zero: Zero,
) -> PyResult<Duration> {
    let max_secs = max.as_secs_f64();
    // Compared as given, before rounding to nanoseconds: a hair above the
    // maximum is above it.
    let d = Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| secs <= max_secs && (zero == Zero::Allowed || !d.is_zero()));
    d.ok_or_else(|| {
        let open = if zero == Zero::Refused { "(" } else { "[" };
        // Both numbers as Python writes them (`nan`, `1e-12`, `600.0`).
        let repr = |x: f64| {
            PyFloat::new(py, x)
                .repr()
                .map_or_else(|_| x.to_string(), |r| r.to_string())
        };
        let reason = format!(
            "{} s is not in {open}0, {}] seconds",
            repr(secs),
            repr(max_secs)
        );
        exceptions::from_stack_error(py, invalid_argument(what, reason))
    })
}
