//! The C ABI: `extern "C"` functions returning an `int32_t` status and a
//! JSON string, over the core in [`crate::sidecar_markers`].
//!
//! Conventions (DESIGN §5, §4.7):
//! - every function returns a [`FirmaStatus`] as `int32_t`; `0` is OK;
//! - on success `*out_json` holds the JSON result; on failure it holds an
//!   error object `{"code", "message", "path", "errno"}` — the details travel
//!   with the call, never through thread-local state;
//! - every returned string is freed with [`firma_string_free`];
//! - NULL or non-UTF-8 arguments give `FIRMA_INVALID_ARGUMENT`; a NULL `out`
//!   pointer is never written; a NULL `runtime_dir` means the default;
//! - no panic crosses the boundary: it becomes `FIRMA_INTERNAL`.

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::sidecar_markers::{self as sm, ProbeOptions, StackError};

/// Version of the C ABI; bumped on any incompatible change.
pub const FIRMA_ABI_VERSION: u32 = 1;

/// Status codes. The numbers are part of the ABI and are never reused.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmaStatus {
    /// Success: `*out` holds the result.
    FIRMA_OK = 0,
    /// A NULL or non-UTF-8 argument, or an invalid sandbox id
    /// (error code `"invalid_argument"`).
    FIRMA_INVALID_ARGUMENT = 1,
    /// A system call failed (error code `"io"`; `errno` is set).
    FIRMA_IO = 2,
    /// A marker's `metadata.toml` cannot be understood (`"marker_parse"`).
    FIRMA_MARKER_PARSE = 3,
    /// A marker names another sandbox than its directory
    /// (`"identity_mismatch"`).
    FIRMA_IDENTITY_MISMATCH = 4,
    /// A bug: a panic was caught at the boundary (`"internal"`).
    FIRMA_INTERNAL = 5,
}

/// An error on its way across the boundary.
struct FfiError {
    status: FirmaStatus,
    code: &'static str,
    message: String,
    path: Option<String>,
    errno: Option<i32>,
}

impl FfiError {
    fn invalid(message: impl Into<String>) -> Self {
        FfiError {
            status: FirmaStatus::FIRMA_INVALID_ARGUMENT,
            code: "invalid_argument",
            message: message.into(),
            path: None,
            errno: None,
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        FfiError {
            status: FirmaStatus::FIRMA_INTERNAL,
            code: "internal",
            message: message.into(),
            path: None,
            errno: None,
        }
    }

    fn json(&self) -> String {
        #[derive(Serialize)]
        struct Obj<'a> {
            code: &'a str,
            message: &'a str,
            path: Option<&'a str>,
            errno: Option<i32>,
        }
        serde_json::to_string(&Obj {
            code: self.code,
            message: &self.message,
            path: self.path.as_deref(),
            errno: self.errno,
        })
        .unwrap_or_else(|_| {
            r#"{"code":"internal","message":"cannot serialize error","path":null,"errno":null}"#
                .to_owned()
        })
    }
}

impl From<StackError> for FfiError {
    fn from(e: StackError) -> Self {
        let status = match e.code() {
            "invalid_argument" => FirmaStatus::FIRMA_INVALID_ARGUMENT,
            "io" => FirmaStatus::FIRMA_IO,
            "marker_parse" => FirmaStatus::FIRMA_MARKER_PARSE,
            "identity_mismatch" => FirmaStatus::FIRMA_IDENTITY_MISMATCH,
            _ => FirmaStatus::FIRMA_INTERNAL,
        };
        FfiError {
            status,
            code: e.code(),
            message: e.to_string(),
            path: e.path().map(|p| p.to_string_lossy().into_owned()),
            errno: e.errno(),
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, FfiError> {
    serde_json::to_string(value)
        .map_err(|e| FfiError::internal(format!("cannot serialize result: {e}")))
}

/// The one boundary every exported function goes through: checks `out`,
/// runs `f` catching panics, and stores the result or error JSON in `*out`.
fn boundary<F>(out: *mut *mut c_char, f: F) -> i32
where
    F: FnOnce() -> Result<String, FfiError>,
{
    if out.is_null() {
        return FirmaStatus::FIRMA_INVALID_ARGUMENT as i32;
    }
    let (status, json) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(json)) => (FirmaStatus::FIRMA_OK, json),
        Ok(Err(e)) => (e.status, e.json()),
        Err(_) => {
            let e = FfiError::internal("internal error: a panic was caught at the C boundary");
            (e.status, e.json())
        }
    };
    // JSON escapes NUL as \u0000, so this cannot fail; stay safe regardless.
    let c = CString::new(json).unwrap_or_else(|_| c"{\"code\":\"internal\"}".to_owned());
    // SAFETY: `out` is non-NULL and the caller promises it is writable.
    unsafe { *out = c.into_raw() };
    status as i32
}

/// Borrows a required C string argument as UTF-8.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| FfiError::invalid(format!("{what} is not valid UTF-8")))
}

/// `runtime_dir` argument: NULL means the default runtime directory.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn arg_runtime_dir(p: *const c_char) -> Result<PathBuf, FfiError> {
    if p.is_null() {
        return Ok(sm::default_runtime_dir());
    }
    // SAFETY: forwarded contract.
    unsafe { arg_str(p, "runtime_dir") }.map(PathBuf::from)
}

fn opts(timeout_ms: u32) -> ProbeOptions {
    if timeout_ms == 0 {
        ProbeOptions::default()
    } else {
        ProbeOptions::with_timeout(Duration::from_millis(timeout_ms.into()))
    }
}

/// Lists the live sidecars under `runtime_dir` (NULL: the default) as a JSON
/// array sorted by sandbox id, collecting stale markers on the way.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `out_json` is NULL or
/// points to writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_list(
    runtime_dir: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { firma_sidecar_list_with_timeout(runtime_dir, 0, out_json) }
}

/// [`firma_sidecar_list`] with a probe timeout in milliseconds (0: the
/// default, 200 ms).
///
/// # Safety
/// As for [`firma_sidecar_list`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_list_with_timeout(
    runtime_dir: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    boundary(out_json, || {
        // SAFETY: forwarded contract.
        let dir = unsafe { arg_runtime_dir(runtime_dir) }?;
        to_json(&sm::list_with(dir, &opts(timeout_ms))?)
    })
}

/// Looks up one sidecar; `*out_json` is its JSON object, or `null` when no
/// such marker exists. An invalid sandbox id is `FIRMA_INVALID_ARGUMENT`.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `sandbox_id` is a
/// NUL-terminated string; `out_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_get(
    runtime_dir: *const c_char,
    sandbox_id: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { firma_sidecar_get_with_timeout(runtime_dir, sandbox_id, 0, out_json) }
}

/// [`firma_sidecar_get`] with a probe timeout in milliseconds (0: default).
///
/// # Safety
/// As for [`firma_sidecar_get`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_get_with_timeout(
    runtime_dir: *const c_char,
    sandbox_id: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    boundary(out_json, || {
        // SAFETY: forwarded contract.
        let dir = unsafe { arg_runtime_dir(runtime_dir) }?;
        // SAFETY: forwarded contract.
        let id = unsafe { arg_str(sandbox_id, "sandbox_id") }?;
        to_json(&sm::get_with(dir, id, &opts(timeout_ms))?)
    })
}

/// Removes every stale marker; `*out_json` is the JSON array of removed
/// sandbox ids, sorted.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `out_json` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_gc_stale(
    runtime_dir: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    boundary(out_json, || {
        // SAFETY: forwarded contract.
        let dir = unsafe { arg_runtime_dir(runtime_dir) }?;
        to_json(&sm::gc_stale(dir)?)
    })
}

/// Reads and probes the marker directory `marker_dir`; nothing is removed.
///
/// # Safety
/// `marker_dir` is a NUL-terminated string; `out_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_probe_entry(
    marker_dir: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { firma_sidecar_probe_entry_with_timeout(marker_dir, 0, out_json) }
}

/// [`firma_sidecar_probe_entry`] with a probe timeout in milliseconds
/// (0: default).
///
/// # Safety
/// As for [`firma_sidecar_probe_entry`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_probe_entry_with_timeout(
    marker_dir: *const c_char,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
) -> i32 {
    boundary(out_json, || {
        // SAFETY: forwarded contract.
        let dir = unsafe { arg_str(marker_dir, "marker_dir") }?;
        to_json(&sm::probe_entry_with(dir, &opts(timeout_ms))?)
    })
}

/// The default runtime directory as a plain string (not JSON).
///
/// # Safety
/// `out_path` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_default_runtime_dir(out_path: *mut *mut c_char) -> i32 {
    boundary(out_path, || {
        let dir = sm::default_runtime_dir();
        dir.to_str().map(str::to_owned).ok_or_else(|| {
            FfiError::invalid(format!(
                "default runtime dir {} is not valid UTF-8",
                dir.display()
            ))
        })
    })
}

/// Frees a string returned by any function here. NULL is a no-op.
///
/// # Safety
/// `s` is NULL or a string returned by this library, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: `s` came from CString::into_raw in `boundary`.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// The C ABI version ([`FIRMA_ABI_VERSION`]).
#[unsafe(no_mangle)]
pub extern "C" fn firma_abi_version() -> u32 {
    FIRMA_ABI_VERSION
}
