//! Selecting and waiting: `firma_sidecar_list_filtered` and
//! `firma_sidecar_inspect_filtered` (the core's `Filter`, read by
//! `Filter::from_json`), `firma_sidecar_wait` and its object,
//! `firma_runtime_dir_state`.

use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

use super::list::{opts, probing_runtime_dir};
use super::options::{options_object, parse_options};
use super::{FfiError, arg_opt_str, on_runtime_dir};
use crate::sidecar_markers::{self as sm, Filter};

/// The body of the filtered calls: reads `filter_json` (NULL: the empty
/// filter, else `Filter::from_json`), runs the core's `fetch` and keeps
/// what `keep` says the filter selects.
///
/// # Safety
/// As for [`probing_runtime_dir`]; `filter_json` is NULL or a valid
/// NUL-terminated string.
unsafe fn filtered<T: serde::Serialize>(
    runtime_dir: *const c_char,
    filter_json: *const c_char,
    timeout_ms: u32,
    out: *mut *mut c_char,
    fetch: impl FnOnce(PathBuf, &sm::ProbeOptions) -> sm::Result<Vec<T>>,
    keep: impl Fn(&Filter, &T) -> bool,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        probing_runtime_dir(runtime_dir, timeout_ms, out, |dir, o| {
            let filter = match arg_opt_str(filter_json, "filter_json")? {
                Some(json) => Filter::from_json(json)?,
                None => Filter::default(),
            };
            let mut items = fetch(dir, o)?;
            items.retain(|item| keep(&filter, item));
            Ok::<_, FfiError>(items)
        })
    }
}

/// `firma_sidecar_list_with_timeout`, keeping only the sidecars the filter
/// `filter_json` selects: NULL (everything) or the JSON object
/// `{"states": [...], "agent": "...", "session": "...", "reasons": [...],
/// "sandbox_ids": [...]}`, every key optional; every key given must match
/// (a list: one of its values). An entry has no reason, so a filter with
/// `"reasons"` selects none. An unknown key, state or reason, a key given
/// twice, or a value of the wrong type is `FIRMA_INVALID_ARGUMENT` naming
/// it. Stale markers are collected as `firma_sidecar_list` does, whether or
/// not the filter selects them.
///
/// # Safety
/// `runtime_dir` and `filter_json` are NULL or NUL-terminated strings;
/// `out_json` is NULL or writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_list_filtered(
    runtime_dir: *const c_char,
    filter_json: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    let (fetch, keep) = (sm::list_with, Filter::matches_entry);
    // SAFETY: forwarded contract.
    unsafe { filtered(runtime_dir, filter_json, timeout_ms, out_json, fetch, keep) }
}

/// `firma_sidecar_inspect`, keeping only the reports the filter
/// `filter_json` selects (as in `firma_sidecar_list_filtered`; a report
/// matches `"sandbox_ids"` by its name, `"reasons"` by its reason, and a
/// broken one, which has no entry, matches no `"agent"` or `"session"`).
/// Read-only.
///
/// # Safety
/// `runtime_dir` and `filter_json` are NULL or NUL-terminated strings;
/// `out_json` is NULL or writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_inspect_filtered(
    runtime_dir: *const c_char,
    filter_json: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    let (fetch, keep) = (sm::inspect_with, Filter::matches_report);
    // SAFETY: forwarded contract.
    unsafe { filtered(runtime_dir, filter_json, timeout_ms, out_json, fetch, keep) }
}

/// The JSON object of `firma_sidecar_wait`.
#[derive(Default)]
struct WaitJson {
    sandbox_ids: Option<Vec<String>>,
    condition: Option<sm::WaitFor>,
    timeout_ms: Option<u64>,
    probe_timeout_ms: Option<u32>,
    probe_interval_ms: Option<u64>,
}

/// What the keys of milliseconds of `firma_sidecar_wait` must be.
const MS: &str = "a non-negative integer of milliseconds";

options_object!(WaitJson {
    "sandbox_ids": "an array of sandbox ids" => |w, v| w.sandbox_ids = Some(v);
    "for": "\"running\" or \"gone\"" => |w, v| w.condition = Some(v);
    "timeout_ms": MS => |w, v| w.timeout_ms = Some(v);
    "probe_timeout_ms": MS => |w, v| w.probe_timeout_ms = Some(v);
    "probe_interval_ms": MS => |w, v| w.probe_interval_ms = Some(v);
});

/// The ids and options of `firma_sidecar_wait` from its JSON object.
fn wait_request(json: Option<&str>) -> Result<(Vec<String>, sm::WaitOptions), FfiError> {
    let w: WaitJson = parse_options(json, "wait_json")?;
    let missing = |key: &str| FfiError::invalid(format!("wait_json: missing key \"{key}\""));
    let ids = w.sandbox_ids.ok_or_else(|| missing("sandbox_ids"))?;
    let condition = w.condition.ok_or_else(|| missing("for"))?;
    let mut o = sm::WaitOptions {
        condition,
        probe: opts(w.probe_timeout_ms.unwrap_or(0))?,
        ..sm::WaitOptions::default()
    };
    if let Some(ms) = w.timeout_ms {
        o.timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = w.probe_interval_ms {
        o.probe_interval = Duration::from_millis(ms);
    }
    Ok((ids, o))
}

/// Waits until every sidecar named in `wait_json` meets its condition under
/// `runtime_dir` (NULL: the default), or the timeout passes, on a read-only
/// watcher (exits are seen at once, endpoints at each probe round); nothing
/// is collected. Blocks up to the timeout.
///
/// `wait_json` is a JSON object with `"sandbox_ids"` (required, a non-empty
/// array), `"for"` (required: `"running"`, a marker whose state is
/// `running`, or `"gone"`, no marker or state `stopped`), `"timeout_ms"`
/// (default 30000, at most one day; 0 judges once after the first full
/// scan), `"probe_timeout_ms"` (0 or absent: `FIRMA_DEFAULT_TIMEOUT_MS`)
/// and `"probe_interval_ms"` (default 1000). An unknown, missing or
/// repeated key, a value of the wrong type or out of range, or an invalid
/// sandbox id is `FIRMA_INVALID_ARGUMENT` naming it.
///
/// A timeout is not an error: on `FIRMA_OK`, `*out_json` is the outcome
/// `{"condition", "met" (every id met it), "waited_ms", "sidecars":
/// [{"sandbox_id", "state" (null: no marker), "met"}]}`, ids in the order
/// given. A missing runtime directory is waited on as an empty one. Free
/// `*out_json` with `firma_string_free`.
///
/// # Safety
/// `runtime_dir` and `wait_json` are NULL or NUL-terminated strings;
/// `out_json` is NULL or writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_wait(
    runtime_dir: *const c_char,
    wait_json: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        on_runtime_dir(runtime_dir, out_json, |dir| {
            let (ids, o) = wait_request(arg_opt_str(wait_json, "wait_json")?)?;
            Ok(sm::wait(dir, &ids, &o)?)
        })
    }
}

/// Whether `runtime_dir` (NULL: the default) is there to be read: the
/// reading calls answer a directory that does not exist as an empty one, so
/// a mistyped path looks like an idle host; this tells them apart. Never
/// fails for the directory's sake (only for a bad argument).
///
/// On `FIRMA_OK`, `*out_json` is a JSON string: `"present"` (a directory
/// that can be listed, its `run/` too when it exists), `"missing"` (nothing
/// at that path) or `"unreadable"` (not a directory, or it or its `run/`
/// cannot be listed). Free it with `firma_string_free`.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `out_json` is NULL or
/// writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_runtime_dir_state(
    runtime_dir: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { on_runtime_dir(runtime_dir, out_json, |dir| Ok(sm::runtime_dir_state(dir))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar_markers::ErrorCode;

    fn invalid(json: &str) -> String {
        let e = wait_request(Some(json)).expect_err("an error").0;
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{}", e.message);
        e.message
    }

    #[test]
    fn the_wait_object_is_read_strictly() {
        let (ids, o) = wait_request(Some(
            r#"{"sandbox_ids":["a","b"],"for":"gone","timeout_ms":5,"probe_interval_ms":7}"#,
        ))
        .ok()
        .expect("valid");
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(o.condition, sm::WaitFor::Gone);
        assert_eq!(o.timeout, Duration::from_millis(5));
        assert_eq!(o.probe_interval, Duration::from_millis(7));
        assert_eq!(o.probe, sm::ProbeOptions::default());
        let m = invalid(r#"{"for":"running"}"#);
        assert!(m.contains(r#"missing key "sandbox_ids""#), "{m}");
        let m = invalid(r#"{"sandbox_ids":["a"]}"#);
        assert!(m.contains(r#"missing key "for""#), "{m}");
        let m = invalid(r#"{"sandbox_ids":["a"],"for":"up"}"#);
        assert!(m.contains(r#""for" must be "running" or "gone""#), "{m}");
        let m = invalid(r#"{"for":"gone","for":"running"}"#);
        assert!(m.contains(r#"duplicate key "for""#), "{m}");
        let m = invalid(r#"{"sandbox_ids":["a"],"for":"gone","probe_timeout_ms":600001}"#);
        assert!(m.contains("timeout_ms"), "{m}");
    }
}
