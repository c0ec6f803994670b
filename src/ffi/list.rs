//! The calls that read a runtime directory (or one marker directory):
//! list, get, gc_stale, probe_entry and inspect, each with its probe
//! timeout.

use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{FfiError, arg_str, boundary, on_runtime_dir, on_sandbox, to_json};
use crate::sidecar_markers::{self as sm, ProbeOptions, StackError};

/// [`on_runtime_dir`] for a call that probes, with `timeout_ms` read by
/// [`opts`] after the directory.
///
/// # Safety
/// As for [`on_runtime_dir`].
pub(super) unsafe fn probing_runtime_dir<T, E, F>(
    runtime_dir: *const c_char,
    timeout_ms: u32,
    out: *mut *mut c_char,
    f: F,
) -> i32
where
    T: Serialize,
    FfiError: From<E>,
    F: FnOnce(PathBuf, &ProbeOptions) -> Result<T, E>,
{
    // SAFETY: forwarded contract.
    unsafe { on_runtime_dir(runtime_dir, out, |dir| Ok(f(dir, &opts(timeout_ms)?)?)) }
}

/// `timeout_ms` argument: 0 is the core's default; anything above the
/// core's maximum is an invalid argument.
pub(super) fn opts(timeout_ms: u32) -> sm::Result<ProbeOptions> {
    let timeout = match timeout_ms {
        0 => sm::DEFAULT_TIMEOUT,
        ms => Duration::from_millis(ms.into()),
    };
    if timeout > sm::MAX_TIMEOUT {
        return Err(StackError::InvalidArgument {
            what: "timeout_ms".into(),
            reason: format!(
                "{timeout_ms} ms is above the maximum of {} ms",
                sm::MAX_TIMEOUT.as_millis()
            ),
        });
    }
    Ok(ProbeOptions::with_timeout(timeout))
}

/// Lists the live sidecars under `runtime_dir` (NULL: the default runtime
/// directory), probing each endpoint with the default timeout
/// (`FIRMA_DEFAULT_TIMEOUT_MS`).
///
/// On `FIRMA_OK`, `*out_json` is a JSON array of sidecar objects sorted by
/// `sandbox_id`, each with the keys `sandbox_id, agent_id, session_id,
/// authority_url, policy_bundle_version, pid, started_at, state` (`"running"`,
/// `"unhealthy"` or `"unknown"`), `listen` and `uptime_secs` (a number or
/// `null`). Markers of stopped sidecars are removed on the way and not
/// listed; corrupt or mismatched markers are skipped. A missing `run/` is
/// `[]`. On any other status `*out_json` is an error object
/// `{"code","message","path","errno"}`. Either way free it with
/// `firma_string_free`. A NULL `out_json` gives `FIRMA_INVALID_ARGUMENT` and
/// nothing is written.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `out_json` is NULL or
/// points to writable storage for one pointer. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_list(
    runtime_dir: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { firma_sidecar_list_with_timeout(runtime_dir, 0, out_json) }
}

/// `firma_sidecar_list` with the probe timeout of this call in milliseconds
/// (0: `FIRMA_DEFAULT_TIMEOUT_MS`; above `FIRMA_MAX_TIMEOUT_MS`:
/// `FIRMA_INVALID_ARGUMENT`). Endpoints are probed concurrently, so a
/// listing takes about one timeout at most.
///
/// # Safety
/// As for `firma_sidecar_list`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_list_with_timeout(
    runtime_dir: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { probing_runtime_dir(runtime_dir, timeout_ms, out_json, sm::list_with) }
}

/// Looks up and probes the sidecar `sandbox_id` under `runtime_dir` (NULL:
/// the default), whatever its state (`"stopped"` included); nothing is
/// removed.
///
/// On `FIRMA_OK`, `*out_json` is one sidecar object (as in
/// `firma_sidecar_list`), or the JSON literal `null` when no such marker
/// exists. An invalid sandbox id (empty, longer than 255 bytes, starting
/// with `.`, or with a byte outside `[A-Za-z0-9._-]`) is
/// `FIRMA_INVALID_ARGUMENT`; a malformed marker is `FIRMA_MARKER_PARSE` or
/// `FIRMA_IDENTITY_MISMATCH`. Free `*out_json` with `firma_string_free`.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `sandbox_id` is NULL or
/// a NUL-terminated string; `out_json` is NULL or writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_get(
    runtime_dir: *const c_char,
    sandbox_id: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { firma_sidecar_get_with_timeout(runtime_dir, sandbox_id, 0, out_json) }
}

/// `firma_sidecar_get` with the probe timeout of this call in milliseconds
/// (0: `FIRMA_DEFAULT_TIMEOUT_MS`; above `FIRMA_MAX_TIMEOUT_MS`:
/// `FIRMA_INVALID_ARGUMENT`).
///
/// # Safety
/// As for `firma_sidecar_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_get_with_timeout(
    runtime_dir: *const c_char,
    sandbox_id: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        on_sandbox(runtime_dir, sandbox_id, out_json, |dir, id| {
            sm::get_with(dir, id, &opts(timeout_ms)?)
        })
    }
}

/// Removes the marker of every stopped sidecar under `runtime_dir` (NULL:
/// the default). Nothing else is ever removed: not a live sidecar's marker,
/// not a corrupt or mismatched one, nothing outside `<runtime_dir>/run`.
///
/// On `FIRMA_OK`, `*out_json` is the JSON array of the removed sandbox ids,
/// sorted (`[]` when there were none or `run/` is missing). Of concurrent
/// callers, exactly one reports each removed id. Free `*out_json` with
/// `firma_string_free`.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `out_json` is NULL or
/// writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_gc_stale(
    runtime_dir: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { on_runtime_dir(runtime_dir, out_json, |dir| Ok(sm::gc_stale(dir)?)) }
}

/// Reads and probes the marker directory `marker_dir` (any path; its last
/// component must equal the marker's `sandbox_id`); nothing is removed.
///
/// On `FIRMA_OK`, `*out_json` is one sidecar object (as in
/// `firma_sidecar_list`; any state). A missing or unreadable
/// `metadata.toml` is `FIRMA_IO`, one that cannot be understood
/// `FIRMA_MARKER_PARSE`, a renamed directory `FIRMA_IDENTITY_MISMATCH`.
/// Free `*out_json` with `firma_string_free`.
///
/// # Safety
/// `marker_dir` is NULL or a NUL-terminated string; `out_json` is NULL or
/// writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_probe_entry(
    marker_dir: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { firma_sidecar_probe_entry_with_timeout(marker_dir, 0, out_json) }
}

/// `firma_sidecar_probe_entry` with the probe timeout of this call in
/// milliseconds (0: `FIRMA_DEFAULT_TIMEOUT_MS`; above
/// `FIRMA_MAX_TIMEOUT_MS`: `FIRMA_INVALID_ARGUMENT`).
///
/// # Safety
/// As for `firma_sidecar_probe_entry`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_probe_entry_with_timeout(
    marker_dir: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    boundary(out_json, || {
        // SAFETY: forwarded contract.
        let dir = unsafe { arg_str(marker_dir, "marker_dir") }?;
        to_json(&sm::probe_entry_with(dir, &opts(timeout_ms)?)?)
    })
}

/// Reports every entry of `<runtime_dir>/run` (NULL: the default runtime
/// directory) with why it is live, stale or broken, probing live endpoints
/// with the probe timeout `timeout_ms` (0: `FIRMA_DEFAULT_TIMEOUT_MS`; above
/// `FIRMA_MAX_TIMEOUT_MS`: `FIRMA_INVALID_ARGUMENT`). Read-only: nothing is
/// removed, not even stale markers.
///
/// On `FIRMA_OK`, `*out_json` is a JSON array sorted by `name`, one object
/// per entry (reserved names starting with `.` excepted), with the keys
/// `name` (the entry's name in `run/`), `verdict` (`"live"`, `"stale"` or
/// `"broken"`), `state` (as in `firma_sidecar_list`, or `null` when
/// broken), `reason` (a stable snake_case code such as `"serving"`,
/// `"process_gone"` or `"parse_error"`), `detail` (one line for a person),
/// `entry` (the sidecar object of `firma_sidecar_list`, `null` when broken)
/// and `error` (an error object `{"code","message","path","errno"}` when
/// broken, else `null`). A broken marker never fails the call; a missing
/// `run/` is `[]`. The call fails only when `run/` cannot be opened or read,
/// or an argument is invalid. Free `*out_json` with `firma_string_free`.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `out_json` is NULL or
/// writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_inspect(
    runtime_dir: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { probing_runtime_dir(runtime_dir, timeout_ms, out_json, sm::inspect_with) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::FIRMA_MAX_TIMEOUT_MS;
    use crate::sidecar_markers::ErrorCode;

    #[test]
    fn timeouts_follow_the_core_policy() {
        assert_eq!(opts(0).ok(), Some(ProbeOptions::default()));
        let max = opts(FIRMA_MAX_TIMEOUT_MS).ok().map(|o| o.timeout);
        assert_eq!(max, Some(sm::MAX_TIMEOUT));
        let err = opts(FIRMA_MAX_TIMEOUT_MS + 1).err().map(|e| e.info());
        let err = err.expect("above the maximum is an error");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("timeout_ms"), "{}", err.message);
    }
}
