//! The C ABI: `extern "C"` functions returning an `int32_t` status and a
//! JSON string, over the core in [`crate::sidecar_markers`].
//!
//! This module only converts: C strings to Rust strings, results and errors
//! to JSON, panics to `FIRMA_INTERNAL`. Every decision is the core's.
//! `include/firma_stack.h` is generated from this file by cbindgen
//! (`make header`); the doc comments below are the header's documentation,
//! so they are written for C readers.
//!
//! Conventions (docs/design.md, "Surfaces" and "Invariants" (7)):
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

use crate::sidecar_markers::{self as sm, ErrorCode, ErrorInfo, ProbeOptions, StackError};

/// Version of the C ABI, as returned by `firma_abi_version()`. Bumped on any
/// incompatible change; it is also the number in the shared library's
/// SONAME (`libfirma_stack.so.<FIRMA_ABI_VERSION>`).
pub const FIRMA_ABI_VERSION: u32 = 1;

/// Major version of the firma-stack release this header belongs to.
pub const FIRMA_STACK_VERSION_MAJOR: u32 = 0;
/// Minor version of the firma-stack release this header belongs to.
pub const FIRMA_STACK_VERSION_MINOR: u32 = 1;
/// Patch version of the firma-stack release this header belongs to.
pub const FIRMA_STACK_VERSION_PATCH: u32 = 0;

// The literals above are what cbindgen copies into the header (it cannot
// evaluate `env!`); these checks make a version bump in Cargo.toml fail to
// compile until they follow. The header derives `FIRMA_STACK_VERSION`, the
// "MAJOR.MINOR.PATCH" string, from them (cbindgen.toml `after_includes`).
const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version part is not a number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

const _: () = {
    assert!(
        FIRMA_STACK_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")),
        "update FIRMA_STACK_VERSION_MAJOR in src/ffi.rs, then `make header`"
    );
    assert!(
        FIRMA_STACK_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")),
        "update FIRMA_STACK_VERSION_MINOR in src/ffi.rs, then `make header`"
    );
    assert!(
        FIRMA_STACK_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
        "update FIRMA_STACK_VERSION_PATCH in src/ffi.rs, then `make header`"
    );
};

/// The probe timeout, in milliseconds, of a call given `timeout_ms` 0 (and
/// of the functions without a `timeout_ms` argument).
pub const FIRMA_DEFAULT_TIMEOUT_MS: u32 = 200;
/// The longest probe timeout, in milliseconds, any function accepts (10
/// minutes); a larger `timeout_ms` is `FIRMA_INVALID_ARGUMENT`.
pub const FIRMA_MAX_TIMEOUT_MS: u32 = 600_000;

// Literals for cbindgen again; the core owns the policy, and these checks
// keep the header's numbers equal to it.
const _: () = {
    assert!(
        FIRMA_DEFAULT_TIMEOUT_MS as u128 == sm::DEFAULT_TIMEOUT.as_millis(),
        "FIRMA_DEFAULT_TIMEOUT_MS must equal the core's DEFAULT_TIMEOUT, then `make header`"
    );
    assert!(
        FIRMA_MAX_TIMEOUT_MS as u128 == sm::MAX_TIMEOUT.as_millis(),
        "FIRMA_MAX_TIMEOUT_MS must equal the core's MAX_TIMEOUT, then `make header`"
    );
};

/// Status codes returned by every `firma_*` function that can fail. The
/// numbers are part of the ABI: they never change and are never reused.
/// Each non-zero code matches the `"code"` string of the error object stored
/// in `*out_json`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmaStatus {
    /// Success: `*out_json` holds the result.
    FIRMA_OK = 0,
    /// `"invalid_argument"`: a NULL `out` pointer (nothing is written), a
    /// NULL or non-UTF-8 string argument, or an invalid sandbox id.
    FIRMA_INVALID_ARGUMENT = 1,
    /// `"io"`: a system call failed; the error object's `"path"` names what
    /// and `"errno"` holds the OS error number.
    FIRMA_IO = 2,
    /// `"marker_parse"`: a marker's `metadata.toml` cannot be understood (not
    /// a regular file, a symlink, too large, not TOML, a missing key, a pid
    /// out of range, ...).
    FIRMA_MARKER_PARSE = 3,
    /// `"identity_mismatch"`: a marker's `sandbox_id` differs from its
    /// directory name.
    FIRMA_IDENTITY_MISMATCH = 4,
    /// `"internal"`: a bug in the library (a panic was caught at the
    /// boundary). Please report it.
    FIRMA_INTERNAL = 5,
    /// `"identity_unverifiable"`: `firma_sidecar_stop` refused, because the
    /// process's identity cannot be proved (the marker records no
    /// `boot_id`/`pid_start_ticks`, or comes from another pid namespace).
    /// Nothing was signalled.
    FIRMA_IDENTITY_UNVERIFIABLE = 6,
    /// `"pid_reused"`: `firma_sidecar_stop` refused, because the marker's
    /// pid belongs to another process now. Nothing was signalled.
    FIRMA_PID_REUSED = 7,
    /// `"refused"`: `firma_sidecar_stop` refused a pid it never signals
    /// (1, the caller's own, one above `pid_max`). Nothing was signalled.
    FIRMA_REFUSED = 8,
    /// `"pidfd_unavailable"`: `firma_sidecar_stop` cannot use pidfds (Linux
    /// 5.3 or later is required); it never falls back to signalling by bare
    /// pid. Nothing was signalled.
    FIRMA_PIDFD_UNAVAILABLE = 9,
    /// `"untrusted_directory"`: the runtime directory or its `run/` fails
    /// the trust checks (writable by others, a stranger's symlink, owners
    /// that disagree) for a call that removes, signals or writes. Nothing
    /// was changed.
    FIRMA_UNTRUSTED_DIRECTORY = 10,
    /// `"not_authorized"`: `firma_sidecar_stop` refused, because the
    /// marker's owner (bounded by the runtime directory's owner) could not
    /// signal that process, the marker is nobody's claim, or the process is
    /// a kernel thread or the caller's ancestor. Nothing was signalled.
    FIRMA_NOT_AUTHORIZED = 11,
}

/// An error on its way across the boundary: the core's error object. Its
/// status is always derived from its code ([`FirmaStatus::of`]).
struct FfiError(ErrorInfo);

impl FfiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        FfiError(ErrorInfo {
            code,
            message: message.into(),
            path: None,
            errno: None,
        })
    }

    fn invalid(message: impl Into<String>) -> Self {
        FfiError::new(ErrorCode::InvalidArgument, message)
    }

    fn internal(message: impl Into<String>) -> Self {
        FfiError::new(ErrorCode::Internal, message)
    }

    fn status(&self) -> FirmaStatus {
        FirmaStatus::of(self.0.code)
    }

    fn json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| {
            r#"{"code":"internal","message":"cannot serialize error","path":null,"errno":null}"#
                .to_owned()
        })
    }
}

impl FirmaStatus {
    /// The status of each core error code: an exhaustive match, so a new
    /// code fails to compile until it has its own, never reused, number.
    fn of(code: ErrorCode) -> Self {
        match code {
            ErrorCode::InvalidArgument => FirmaStatus::FIRMA_INVALID_ARGUMENT,
            ErrorCode::Io => FirmaStatus::FIRMA_IO,
            ErrorCode::MarkerParse => FirmaStatus::FIRMA_MARKER_PARSE,
            ErrorCode::IdentityMismatch => FirmaStatus::FIRMA_IDENTITY_MISMATCH,
            ErrorCode::Internal => FirmaStatus::FIRMA_INTERNAL,
            ErrorCode::IdentityUnverifiable => FirmaStatus::FIRMA_IDENTITY_UNVERIFIABLE,
            ErrorCode::PidReused => FirmaStatus::FIRMA_PID_REUSED,
            ErrorCode::Refused => FirmaStatus::FIRMA_REFUSED,
            ErrorCode::PidfdUnavailable => FirmaStatus::FIRMA_PIDFD_UNAVAILABLE,
            ErrorCode::UntrustedDirectory => FirmaStatus::FIRMA_UNTRUSTED_DIRECTORY,
            ErrorCode::NotAuthorized => FirmaStatus::FIRMA_NOT_AUTHORIZED,
        }
    }
}

impl From<StackError> for FfiError {
    fn from(e: StackError) -> Self {
        FfiError(e.info())
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
    const LAST_RESORT: &CStr = c"{\"code\":\"internal\",\"message\":\"cannot build the result string\",\"path\":null,\"errno\":null}";
    if out.is_null() {
        return FirmaStatus::FIRMA_INVALID_ARGUMENT as i32;
    }
    let converted = catch_unwind(AssertUnwindSafe(|| {
        let (status, json) = match f() {
            Ok(json) => (FirmaStatus::FIRMA_OK, json),
            Err(e) => (e.status(), e.json()),
        };
        // JSON escapes NUL as \u0000, so this cannot fail; stay safe regardless.
        (
            status,
            CString::new(json).unwrap_or_else(|_| LAST_RESORT.to_owned()),
        )
    }));
    let (status, c) = match converted {
        Ok(done) => done,
        Err(payload) => {
            // Dropping a panic payload can itself panic; leak it instead
            // (this path is a bug report, not a steady state).
            std::mem::forget(payload);
            let e = FfiError::internal("internal error: a panic was caught at the C boundary");
            let c = CString::new(e.json()).unwrap_or_else(|_| LAST_RESORT.to_owned());
            (e.status(), c)
        }
    };
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

/// The body of every call on a runtime directory: reads `runtime_dir` as
/// [`arg_runtime_dir`] does, then runs `f` on it inside [`boundary`], which
/// stores its value as JSON (or its error) in `*out`.
///
/// # Safety
/// `runtime_dir` is NULL or a valid NUL-terminated string; `out` is NULL or
/// writable.
unsafe fn on_runtime_dir<T, F>(runtime_dir: *const c_char, out: *mut *mut c_char, f: F) -> i32
where
    T: Serialize,
    F: FnOnce(PathBuf) -> Result<T, FfiError>,
{
    boundary(out, || {
        // SAFETY: forwarded contract.
        let dir = unsafe { arg_runtime_dir(runtime_dir) }?;
        to_json(&f(dir)?)
    })
}

/// [`on_runtime_dir`] for a call that probes, with `timeout_ms` read by
/// [`opts`] after the directory.
///
/// # Safety
/// As for [`on_runtime_dir`].
unsafe fn probing_runtime_dir<T, F>(
    runtime_dir: *const c_char,
    timeout_ms: u32,
    out: *mut *mut c_char,
    f: F,
) -> i32
where
    T: Serialize,
    F: FnOnce(PathBuf, &ProbeOptions) -> Result<T, StackError>,
{
    // SAFETY: forwarded contract.
    unsafe { on_runtime_dir(runtime_dir, out, |dir| Ok(f(dir, &opts(timeout_ms)?)?)) }
}

/// `timeout_ms` argument: 0 is the core's default; anything above the
/// core's maximum is an invalid argument.
fn opts(timeout_ms: u32) -> Result<ProbeOptions, FfiError> {
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
        }
        .into());
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
        on_runtime_dir(runtime_dir, out_json, |dir| {
            let id = arg_str(sandbox_id, "sandbox_id")?;
            Ok(sm::get_with(dir, id, &opts(timeout_ms)?)?)
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

/// Every error code the library can report, as a JSON array of strings in
/// status order: the first is the `"code"` of status 1
/// (`FIRMA_INVALID_ARGUMENT`), the second of status 2, and so on. Meant for
/// bindings, to test that they map every code. Free `*out_json` with
/// `firma_string_free`.
///
/// # Safety
/// `out_json` is NULL or writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_error_codes(out_json: *mut *mut c_char) -> i32 {
    boundary(out_json, || to_json(&ErrorCode::ALL))
}

/// The runtime directory used when `runtime_dir` is NULL: `$FIRMA_STATE_DIR`
/// if set and non-empty, else `$XDG_RUNTIME_DIR/firma`, else `/run/firma`
/// for root (effective uid 0) and `/tmp/firma-<uid>` for other users; the
/// core's `default_runtime_dir`, so every surface agrees.
///
/// On `FIRMA_OK`, `*out_path` is the path as a plain string (not JSON); a
/// path that is not UTF-8 is `FIRMA_INVALID_ARGUMENT` with an error object.
/// Free `*out_path` with `firma_string_free`.
///
/// # Safety
/// `out_path` is NULL or writable. Thread-safe, as long as no other thread
/// changes the environment (`setenv`) at the same time.
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

/// Frees a string stored in `*out_json` / `*out_path` by any function of
/// this library. NULL is a no-op. Never pass it anything else (not even a
/// string from `malloc`), and free each string once.
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

/// The C ABI version of the loaded library. A program built against this
/// header should check that it equals `FIRMA_ABI_VERSION`.
#[unsafe(no_mangle)]
pub extern "C" fn firma_abi_version() -> u32 {
    FIRMA_ABI_VERSION
}

// Options objects. Every JSON object the ABI accepts (the options of
// `firma_sidecar_stop` and of `firma_watch_open`) is read one way, by
// `parse_options`: a serde visitor over the object's keys that refuses a
// key it has already seen, a key it does not know, and a value of the wrong
// type, each naming the key. serde_json's own maps keep the last of
// duplicate keys, so `{"verify_identity":true,"verify_identity":false}`
// would mean false here while a validator that reads the first key saw
// true; a duplicate is refused instead (after decoding escapes, so
// `"verify\u005fidentity"` is the same key).

/// An options object: its keys, and how to read the value of each.
trait OptionsObject: Default {
    /// Every key, in the order error messages list them.
    const KEYS: &'static [&'static str];
    /// Reads the value of `key` (one of `KEYS`, seen once) from `map`.
    fn read<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error>;
}

/// A key as JSON spells it, quoted and escaped: one line, whatever it holds.
fn quoted(key: &str) -> String {
    serde_json::Value::String(key.to_owned()).to_string()
}

/// The value of `key`, or an error naming the key and what it must be.
fn option_value<'de, V, A>(map: &mut A, key: &str, want: &str) -> Result<V, A::Error>
where
    V: serde::Deserialize<'de>,
    A: serde::de::MapAccess<'de>,
{
    map.next_value()
        .map_err(|_| serde::de::Error::custom(format!("{} must be {want}", quoted(key))))
}

/// Deserializes an [`OptionsObject`] from a JSON object, key by key.
struct Options<T>(T);

impl<'de, T: OptionsObject> serde::Deserialize<'de> for Options<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: OptionsObject> serde::de::Visitor<'de> for Visit<T> {
            type Value = Options<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a JSON object with any of the keys {}",
                    T::KEYS.join(", ")
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let mut out = T::default();
                let mut seen: Vec<String> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !T::KEYS.contains(&key.as_str()) {
                        return Err(A::Error::custom(format!(
                            "unknown key {} (known: {})",
                            quoted(&key),
                            T::KEYS.join(", ")
                        )));
                    }
                    if seen.contains(&key) {
                        return Err(A::Error::custom(format!(
                            "duplicate key {}: each key may appear once",
                            quoted(&key)
                        )));
                    }
                    out.read(&key, &mut map)?;
                    seen.push(key);
                }
                Ok(Options(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The one way an options object is parsed: NULL (`None`) is the defaults;
/// otherwise one JSON object, each key known and present once, each value
/// of its key's type. The error names the argument and the bad key.
fn parse_options<T: OptionsObject>(json: Option<&str>) -> Result<T, FfiError> {
    let Some(json) = json else {
        return Ok(T::default());
    };
    serde_json::from_str::<Options<T>>(json)
        .map(|o| o.0)
        .map_err(|e| {
            let shown = sm::text::one_line(&e.to_string());
            FfiError::invalid(if e.is_data() {
                format!("options_json: {shown}")
            } else {
                format!("options_json is not valid JSON: {shown}")
            })
        })
}

/// The JSON options of `firma_sidecar_stop`; every key optional.
#[derive(Default)]
struct StopOptionsJson {
    signal: Option<SignalJson>,
    grace_ms: Option<u64>,
    kill: Option<bool>,
    verify_identity: Option<bool>,
}

/// A signal given by name (`"SIGTERM"`) or number (`15`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum SignalJson {
    Number(i64),
    Name(String),
}

impl OptionsObject for StopOptionsJson {
    const KEYS: &'static [&'static str] = &["signal", "grace_ms", "kill", "verify_identity"];

    fn read<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        const BOOL: &str = "true or false";
        match key {
            "signal" => self.signal = Some(option_value(map, key, "a signal name or number")?),
            "grace_ms" => {
                let want = "a non-negative integer of milliseconds";
                self.grace_ms = Some(option_value(map, key, want)?);
            }
            "kill" => self.kill = Some(option_value(map, key, BOOL)?),
            // "verify_identity": the visitor passes only known keys.
            _ => self.verify_identity = Some(option_value(map, key, BOOL)?),
        }
        Ok(())
    }
}

/// Stop options from the JSON object of `firma_sidecar_stop`.
fn stop_options(json: Option<&str>) -> Result<sm::StopOptions, FfiError> {
    let j: StopOptionsJson = parse_options(json)?;
    let mut opts = sm::StopOptions::default();
    match j.signal {
        Some(SignalJson::Name(name)) => opts.signal = sm::parse_signal(&name)?,
        Some(SignalJson::Number(n)) => {
            let max = libc::SIGRTMAX();
            opts.signal = i32::try_from(n)
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    FfiError::invalid(format!(
                        "options_json: \"signal\" {n} is not a signal number in 1..={max}"
                    ))
                })?;
        }
        None => {}
    }
    if let Some(ms) = j.grace_ms {
        opts.grace = Duration::from_millis(ms);
    }
    if let Some(kill) = j.kill {
        opts.kill = kill;
    }
    if let Some(verify) = j.verify_identity {
        opts.verify_identity = verify;
    }
    Ok(opts)
}

/// Stops the sidecar `sandbox_id` under `runtime_dir` (NULL: the default)
/// safely: its identity is checked, a pidfd pins the process, the identity
/// is checked again, and only then is it signalled, through the pidfd
/// (never by bare pid). Waits up to the grace period for the exit, sends
/// `SIGKILL` (through the same pidfd) if it is still alive and `kill`
/// allows, waits again (at most 5 s), and collects the marker. Blocks for
/// up to the grace period plus 5 s.
///
/// Concurrent stops of one marker signal once: they are serialised by a
/// lock in a directory only the caller can write (for root
/// `/run/firma-stop-locks`), never one the marker's owner can hold. A call
/// that finds another stop under way sends nothing and waits for that
/// exit, then reports `"signals": []` (with `"exited": false` if its own
/// wait ended first); if the other stop ends leaving the process running,
/// this call stops it as its options say, so it may block up to twice the
/// bound above.
///
/// `options_json` is NULL (the defaults) or a JSON object with any of
/// `"signal"` (a name such as `"SIGTERM"`/`"TERM"` or a number; default
/// SIGTERM), `"grace_ms"` (default 10000, at most 600000), `"kill"`
/// (default true) and `"verify_identity"` (default true; false is the
/// UNSAFE opt-out that signals a pid whose identity cannot be proved). A
/// `"signal"` name is read strictly: no sign, space or leading zero in a
/// number or in the N of `"SIGRTMIN+N"`/`"SIGRTMAX-N"`. An unknown key, a
/// key given twice (even spelled with an escape), a value of the wrong type
/// or out of range is `FIRMA_INVALID_ARGUMENT`, naming the key, and nothing
/// is signalled.
///
/// On `FIRMA_OK`, `*out_json` is the outcome `{"sandbox_id", "pid",
/// "signals" (names sent, in order), "exited", "killed", "collected" (this
/// call removed the marker), "waited_ms"}`, or the JSON literal `null` when
/// there is no such marker. A process already gone (or a zombie) is not
/// signalled and its marker is collected. With `"kill": false`, a process
/// still running after the grace period gives `"exited": false` and its
/// marker stays. Refusals, with nothing signalled: `FIRMA_IDENTITY_UNVERIFIABLE`,
/// `FIRMA_PID_REUSED`, `FIRMA_REFUSED`, `FIRMA_PIDFD_UNAVAILABLE`,
/// `FIRMA_NOT_AUTHORIZED`, `FIRMA_UNTRUSTED_DIRECTORY`. Free
/// `*out_json` with `firma_string_free`.
///
/// # Safety
/// `runtime_dir` and `options_json` are NULL or NUL-terminated strings;
/// `sandbox_id` is NULL or a NUL-terminated string; `out_json` is NULL or
/// writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_sidecar_stop(
    runtime_dir: *const c_char,
    sandbox_id: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        on_runtime_dir(runtime_dir, out_json, |dir| {
            let id = arg_str(sandbox_id, "sandbox_id")?;
            let options = if options_json.is_null() {
                None
            } else {
                Some(arg_str(options_json, "options_json")?)
            };
            let opts = stop_options(options)?;
            Ok(sm::stop(dir, id, &opts)?)
        })
    }
}

/// A watcher of one runtime directory, from `firma_watch_open`; opaque.
///
/// Threads: a watcher may be used from any thread. Calls of
/// `firma_watch_next` on the same watcher are serialized (a second caller
/// waits for the first); `firma_watch_fd` may be called at any time, from
/// any thread. `firma_watch_close` must be the last call on a watcher: never
/// concurrently with, or after, any other call on it. Different watchers are
/// independent.
pub struct firma_watch {
    fd: i32,
    inner: std::sync::Mutex<sm::Watcher>,
}

/// The JSON options of `firma_watch_open`; every key optional (`null` is
/// the default, as an absent key).
#[derive(Default)]
struct WatchOptionsJson {
    timeout_ms: Option<u64>,
    probe_interval_ms: Option<u64>,
    rescan_interval_ms: Option<u64>,
    collect: Option<bool>,
}

impl OptionsObject for WatchOptionsJson {
    const KEYS: &'static [&'static str] = &[
        "timeout_ms",
        "probe_interval_ms",
        "rescan_interval_ms",
        "collect",
    ];

    fn read<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        const MS: &str = "a non-negative integer of milliseconds or null";
        match key {
            "timeout_ms" => self.timeout_ms = option_value(map, key, MS)?,
            "probe_interval_ms" => self.probe_interval_ms = option_value(map, key, MS)?,
            "rescan_interval_ms" => self.rescan_interval_ms = option_value(map, key, MS)?,
            // "collect": the visitor passes only known keys.
            _ => self.collect = option_value(map, key, "true, false or null")?,
        }
        Ok(())
    }
}

fn watch_options(json: Option<&str>) -> Result<sm::WatchOptions, FfiError> {
    let j: WatchOptionsJson = parse_options(json)?;
    let mut o = sm::WatchOptions::default();
    if let Some(ms) = j.timeout_ms {
        o.probe.timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = j.probe_interval_ms {
        o.probe_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = j.rescan_interval_ms {
        o.rescan_interval = Duration::from_millis(ms);
    }
    if let Some(c) = j.collect {
        o.collect = c;
    }
    Ok(o)
}

/// Starts watching `<runtime_dir>/run` (NULL: the default runtime
/// directory). `options_json` is NULL (all defaults) or a JSON object with
/// any of `"timeout_ms"` (probe timeout, default 200), `"probe_interval_ms"`
/// (how often live sidecars are judged again, default 1000),
/// `"rescan_interval_ms"` (full rescan, default 30000) and `"collect"`
/// (default true: stale markers are collected as `firma_sidecar_list` does;
/// false: read-only); `null` is the default. An unknown key, a key given
/// twice (even spelled with an escape), a value of the wrong type or out of
/// range is `FIRMA_INVALID_ARGUMENT`, naming the key.
///
/// The initial scan happens here. On `FIRMA_OK`, `*out_watch` is the new
/// watcher (release it with `firma_watch_close`) and `*out_error_json` is
/// set to NULL; on failure `*out_watch` is NULL and `*out_error_json` an
/// error object to free with `firma_string_free`. NULL `out_watch` or
/// `out_error_json` gives `FIRMA_INVALID_ARGUMENT` and nothing is written
/// (through the other non-NULL one either).
///
/// # Safety
/// `runtime_dir` and `options_json` are NULL or NUL-terminated strings;
/// `out_watch` and `out_error_json` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_watch_open(
    runtime_dir: *const c_char,
    options_json: *const c_char,
    out_watch: *mut *mut firma_watch,
    out_error_json: *mut *mut c_char,
) -> i32 {
    if out_watch.is_null() || out_error_json.is_null() {
        return FirmaStatus::FIRMA_INVALID_ARGUMENT as i32;
    }
    let mut opened: *mut firma_watch = std::ptr::null_mut();
    let status = boundary(out_error_json, || {
        // SAFETY: forwarded contract.
        let dir = unsafe { arg_runtime_dir(runtime_dir) }?;
        let json = if options_json.is_null() {
            None
        } else {
            // SAFETY: forwarded contract.
            Some(unsafe { arg_str(options_json, "options_json") }?)
        };
        let opts = watch_options(json)?;
        let w = sm::watch(dir, &opts)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
        opened = Box::into_raw(Box::new(firma_watch {
            fd,
            inner: std::sync::Mutex::new(w),
        }));
        Ok(String::new())
    });
    if status == FirmaStatus::FIRMA_OK as i32 {
        // SAFETY: boundary stored a string it allocated; out pointers are
        // non-NULL and writable.
        unsafe {
            firma_string_free(*out_error_json);
            *out_error_json = std::ptr::null_mut();
        }
    }
    // SAFETY: non-NULL and writable per the contract.
    unsafe { *out_watch = opened };
    status
}

/// The next event of `w`, waiting at most `timeout_ms` milliseconds (0:
/// never wait; negative: until there is one).
///
/// On `FIRMA_OK`, `*out_event_json` is one event object, or the JSON
/// literal `null` when the timeout passed first:
/// `{"event":"appeared","sandbox_id","entry":{sidecar object},"at"}`,
/// `{"event":"synced","at"}` (the events before it describe the whole
/// directory), `{"event":"changed","sandbox_id","entry","previous":STATE,"at"}`,
/// `{"event":"gone","sandbox_id","reason":"collected"|"removed","at"}`,
/// `{"event":"resync","reason","at"}` (lost track; `synced` follows); `at`
/// is RFC 3339 UTC with milliseconds. On failure it is an error object; the
/// watcher stays usable and a later call retries. Free it with
/// `firma_string_free`. A NULL `w` is `FIRMA_INVALID_ARGUMENT`.
///
/// # Safety
/// `w` is NULL or a watcher from `firma_watch_open`, not closed;
/// `out_event_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_watch_next(
    w: *mut firma_watch,
    timeout_ms: i32,
    out_event_json: *mut *mut c_char,
) -> i32 {
    boundary(out_event_json, || {
        // SAFETY: NULL or a live watcher per the contract; only shared
        // access is taken (the Mutex serializes).
        let w = unsafe { w.as_ref() }.ok_or_else(|| FfiError::invalid("watch is NULL"))?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let mut inner = w
            .inner
            .lock()
            .map_err(|_| FfiError::internal("the watcher was poisoned by an earlier panic"))?;
        match inner.next(timeout)? {
            Some(ev) => to_json(&ev),
            None => Ok("null".to_owned()),
        }
    })
}

/// A descriptor that becomes readable when `firma_watch_next(w, 0, ...)`
/// may return an event: put it in your `poll`/`epoll`/event loop. It
/// belongs to the watcher: never read, write or close it. -1 for NULL.
///
/// # Safety
/// `w` is NULL or a watcher from `firma_watch_open`, not closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_watch_fd(w: *const firma_watch) -> i32 {
    // SAFETY: NULL or a live watcher per the contract.
    unsafe { w.as_ref() }.map_or(-1, |w| w.fd)
}

/// Stops watching and releases every descriptor of `w`. NULL is a no-op.
///
/// # Safety
/// `w` is NULL or a watcher from `firma_watch_open`, closed once, with no
/// other call on it running or following.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_watch_close(w: *mut firma_watch) {
    if !w.is_null() {
        // SAFETY: came from Box::into_raw in firma_watch_open; closed once.
        let w = unsafe { Box::from_raw(w) };
        // A poisoned lock still owns the watcher: drop it either way.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(w)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes the string `boundary` stored, freeing it the C way.
    fn take(p: *mut c_char) -> String {
        assert!(!p.is_null());
        // SAFETY: `p` came from `boundary`; freed right after copying.
        let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
        // SAFETY: as above, freed once.
        unsafe { firma_string_free(p) };
        s
    }

    #[test]
    fn a_panic_becomes_internal_with_an_error_object() {
        let mut out: *mut c_char = std::ptr::null_mut();
        let st = boundary(&mut out, || panic!("deliberate test panic"));
        assert_eq!(st, FirmaStatus::FIRMA_INTERNAL as i32);
        assert_eq!(
            take(out),
            r#"{"code":"internal","message":"internal error: a panic was caught at the C boundary","path":null,"errno":null}"#
        );
    }

    #[test]
    fn a_null_out_pointer_runs_nothing() {
        let mut ran = false;
        let st = boundary(std::ptr::null_mut(), || {
            ran = true;
            Ok(String::new())
        });
        assert_eq!(st, FirmaStatus::FIRMA_INVALID_ARGUMENT as i32);
        assert!(!ran);
    }

    #[test]
    fn status_numbers_match_error_codes() {
        let cases = [
            (FirmaStatus::FIRMA_OK, 0),
            (FirmaStatus::FIRMA_INVALID_ARGUMENT, 1),
            (FirmaStatus::FIRMA_IO, 2),
            (FirmaStatus::FIRMA_MARKER_PARSE, 3),
            (FirmaStatus::FIRMA_IDENTITY_MISMATCH, 4),
            (FirmaStatus::FIRMA_INTERNAL, 5),
            (FirmaStatus::FIRMA_IDENTITY_UNVERIFIABLE, 6),
            (FirmaStatus::FIRMA_PID_REUSED, 7),
            (FirmaStatus::FIRMA_REFUSED, 8),
            (FirmaStatus::FIRMA_PIDFD_UNAVAILABLE, 9),
            (FirmaStatus::FIRMA_UNTRUSTED_DIRECTORY, 10),
            (FirmaStatus::FIRMA_NOT_AUTHORIZED, 11),
        ];
        for (status, n) in cases {
            assert_eq!(status as i32, n);
        }
        let e = FfiError::from(sm::validate_sandbox_id("../x").unwrap_err());
        assert_eq!(
            (e.status(), e.0.code),
            (
                FirmaStatus::FIRMA_INVALID_ARGUMENT,
                ErrorCode::InvalidArgument
            )
        );
    }

    #[test]
    fn error_codes_are_listed_in_status_order() {
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: `out` is writable.
        let st = unsafe { firma_error_codes(&mut out) };
        assert_eq!(st, FirmaStatus::FIRMA_OK as i32);
        assert_eq!(
            take(out),
            r#"["invalid_argument","io","marker_parse","identity_mismatch","internal","identity_unverifiable","pid_reused","refused","pidfd_unavailable","untrusted_directory","not_authorized"]"#
        );
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(FirmaStatus::of(code) as usize, i + 1, "{code}");
        }
    }

    /// The message of an options error (it must be `invalid_argument`).
    fn invalid<T>(r: Result<T, FfiError>) -> String {
        let e = r.err().expect("an error").0;
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{}", e.message);
        e.message
    }

    #[test]
    fn a_duplicate_key_in_any_options_object_is_refused_naming_it() {
        let stop_dups = [
            (
                r#"{"verify_identity":true,"verify_identity":false}"#,
                "verify_identity",
            ),
            (
                r#"{"verify_identity":false,"verify_identity":true}"#,
                "verify_identity",
            ),
            (
                r#"{"verify_identity":false,"verify_identity":false}"#,
                "verify_identity",
            ),
            // The same key spelled with an escape is the same key.
            (
                r#"{"verify_identity":true,"verify\u005fidentity":false}"#,
                "verify_identity",
            ),
            (r#"{"signal":"TERM","kill":true,"signal":9}"#, "signal"),
            (r#"{"grace_ms":10,"grace_ms":20}"#, "grace_ms"),
            (r#"{"kill":true,"kill":false}"#, "kill"),
        ];
        for (json, key) in stop_dups {
            let msg = invalid(stop_options(Some(json)));
            assert!(msg.contains("duplicate key"), "{json}: {msg}");
            assert!(msg.contains(&format!("\"{key}\"")), "{json}: {msg}");
            assert!(msg.starts_with("options_json: "), "{json}: {msg}");
        }
        let watch_dups = [
            (r#"{"collect":false,"collect":true}"#, "collect"),
            (r#"{"timeout_ms":100,"timeout_ms":200}"#, "timeout_ms"),
            (
                r#"{"probe_interval_ms":null,"probe_interval_ms":5}"#,
                "probe_interval_ms",
            ),
            (
                r#"{"rescan_interval_ms":5,"collect":true,"rescan_interval_ms":5}"#,
                "rescan_interval_ms",
            ),
        ];
        for (json, key) in watch_dups {
            let msg = invalid(watch_options(Some(json)));
            assert!(msg.contains("duplicate key"), "{json}: {msg}");
            assert!(msg.contains(&format!("\"{key}\"")), "{json}: {msg}");
        }
    }

    #[test]
    fn options_objects_are_read_one_way_with_errors_naming_key_and_value() {
        let o = stop_options(Some(
            r#"{"signal":"INT","grace_ms":25,"kill":false,"verify_identity":false}"#,
        ))
        .ok()
        .expect("valid stop options");
        assert_eq!(
            o,
            sm::StopOptions {
                signal: libc::SIGINT,
                grace: Duration::from_millis(25),
                kill: false,
                verify_identity: false,
            }
        );
        assert_eq!(
            stop_options(Some(r#"{"signal":9}"#)).ok().map(|o| o.signal),
            Some(9)
        );
        assert_eq!(
            stop_options(Some("{}")).ok(),
            Some(sm::StopOptions::default())
        );
        assert_eq!(stop_options(None).ok(), Some(sm::StopOptions::default()));
        let w = watch_options(Some(
            r#"{"timeout_ms":7,"probe_interval_ms":8,"rescan_interval_ms":null,"collect":false}"#,
        ))
        .ok()
        .expect("valid watch options");
        let d = sm::WatchOptions::default();
        assert_eq!(w.probe.timeout, Duration::from_millis(7));
        assert_eq!(w.probe_interval, Duration::from_millis(8));
        assert_eq!(w.rescan_interval, d.rescan_interval);
        assert!(!w.collect);

        let stop_bad = [
            (
                r#"{"grace":1}"#,
                r#"unknown key "grace" (known: signal, grace_ms, kill, verify_identity)"#,
            ),
            (r#"{"kill":1}"#, r#""kill" must be true or false"#),
            (r#"{"kill":null}"#, r#""kill" must be true or false"#),
            (
                r#"{"verify_identity":"no"}"#,
                r#""verify_identity" must be true or false"#,
            ),
            (
                r#"{"grace_ms":-5}"#,
                r#""grace_ms" must be a non-negative integer"#,
            ),
            (
                r#"{"grace_ms":1.5}"#,
                r#""grace_ms" must be a non-negative integer"#,
            ),
            (
                r#"{"signal":[9]}"#,
                r#""signal" must be a signal name or number"#,
            ),
            (
                r#"{"signal":1.5}"#,
                r#""signal" must be a signal name or number"#,
            ),
            (
                r#"{"signal":0}"#,
                r#""signal" 0 is not a signal number in 1..="#,
            ),
            (
                r#"{"signal":-15}"#,
                r#""signal" -15 is not a signal number"#,
            ),
            (
                r#"{"signal":4294967311}"#,
                r#""signal" 4294967311 is not a signal number"#,
            ),
            (
                r#"{"signal":"SIGRTMIN+-30"}"#,
                r#""SIGRTMIN+-30" is not a signal"#,
            ),
            (r#"{"signal":"NOPE"}"#, r#""NOPE" is not a signal name"#),
            // A control character in a key is escaped, never echoed raw.
            ("{\"a\\nb\":1}", r#"unknown key "a\nb""#),
            (
                "[]",
                "options_json: invalid type: sequence, expected a JSON object",
            ),
            (
                "null",
                "options_json: invalid type: null, expected a JSON object",
            ),
            ("{", "options_json is not valid JSON"),
            (r#"{"kill":true} x"#, "options_json is not valid JSON"),
        ];
        for (json, want) in stop_bad {
            let msg = invalid(stop_options(Some(json)));
            assert!(msg.contains(want), "{json}: {msg}");
            assert!(!msg.contains('\n'), "{json}: {msg}");
        }
        let watch_bad = [
            (
                r#"{"probe_interval":5}"#,
                r#"unknown key "probe_interval" (known: timeout_ms,"#,
            ),
            (
                r#"{"collect":1}"#,
                r#""collect" must be true, false or null"#,
            ),
            (
                r#"{"timeout_ms":-1}"#,
                r#""timeout_ms" must be a non-negative integer"#,
            ),
            (
                "7",
                "options_json: invalid type: integer `7`, expected a JSON object",
            ),
        ];
        for (json, want) in watch_bad {
            let msg = invalid(watch_options(Some(json)));
            assert!(msg.contains(want), "{json}: {msg}");
        }
    }

    #[test]
    fn timeouts_follow_the_core_policy() {
        assert_eq!(opts(0).ok(), Some(ProbeOptions::default()));
        let max = opts(FIRMA_MAX_TIMEOUT_MS).ok().map(|o| o.timeout);
        assert_eq!(max, Some(sm::MAX_TIMEOUT));
        let err = opts(FIRMA_MAX_TIMEOUT_MS + 1).err().map(|e| e.0);
        let err = err.expect("above the maximum is an error");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("timeout_ms"), "{}", err.message);
    }
}
