//! The C ABI: `extern "C"` functions returning an `int32_t` status and a
//! JSON string, over the core in [`crate::sidecar_markers`].
//!
//! This module only converts: C strings to Rust strings, results and errors
//! to JSON, panics to `FIRMA_INTERNAL`. Every decision is the core's.
//! `include/firma_stack.h` is generated from this module's files by cbindgen
//! (`make header`); the doc comments of the exported items are the header's
//! documentation, so they are written for C readers.
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
//!
//! One file per C concept: this one holds the constants, [`FirmaStatus`],
//! the error object, the one panic boundary (`boundary`) and the reading of
//! string arguments; `list.rs` the calls that read a runtime directory
//! (list, get, gc, probe, inspect); `library.rs` the calls about the
//! library itself (error codes, default runtime directory, freeing its
//! strings, ABI version); `metrics.rs` the Prometheus metrics of one scan;
//! `options.rs` the one parser of options objects;
//! `stop.rs` and `watch.rs` the calls of those names; `writer.rs` the
//! writer (`firma_marker_create`, `firma_marker_remove`); `select.rs` the
//! filtered calls, waiting and `firma_runtime_dir_state`.

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use serde::Serialize;

use crate::sidecar_markers::{self as sm, ErrorCode, ErrorInfo, StackError};

// cbindgen writes the exported functions module by module, in the order
// they are declared here, after the items of this file: the header's
// order. rustfmt sorts each group of `mod` lines, hence one group each.
mod list;

mod library;

mod metrics;

mod options;

mod stop;

mod watch;

mod writer;

mod select;

pub use library::{
    firma_abi_version, firma_default_runtime_dir, firma_error_codes, firma_string_free,
};
pub use list::{
    firma_sidecar_gc_stale, firma_sidecar_get, firma_sidecar_get_with_timeout,
    firma_sidecar_inspect, firma_sidecar_list, firma_sidecar_list_with_timeout,
    firma_sidecar_probe_entry, firma_sidecar_probe_entry_with_timeout,
};
pub use metrics::firma_render_metrics;
pub use select::{
    firma_runtime_dir_state, firma_sidecar_inspect_filtered, firma_sidecar_list_filtered,
    firma_sidecar_wait,
};
pub use stop::firma_sidecar_stop;
pub use watch::{
    firma_watch, firma_watch_close, firma_watch_fd, firma_watch_next, firma_watch_open,
};
pub use writer::{firma_marker_create, firma_marker_remove};

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
        "update FIRMA_STACK_VERSION_MAJOR in src/ffi/mod.rs, then `make header`"
    );
    assert!(
        FIRMA_STACK_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")),
        "update FIRMA_STACK_VERSION_MINOR in src/ffi/mod.rs, then `make header`"
    );
    assert!(
        FIRMA_STACK_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
        "update FIRMA_STACK_VERSION_PATCH in src/ffi/mod.rs, then `make header`"
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
    /// `"forked"`: a watcher was used from a process other than the one
    /// that opened it (a `fork()` child). The call touched none of its
    /// descriptors and took no lock; the parent's stream is unaffected.
    /// Open a new watcher in the child (closing the inherited one there
    /// only closes the child's copies).
    FIRMA_FORKED = 12,
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
            ErrorCode::Forked => FirmaStatus::FIRMA_FORKED,
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

/// An optional C string argument (such as `options_json`): NULL is `None`,
/// anything else is read as [`arg_str`] does.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn arg_opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { arg_str(p, what) }.map(Some)
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

/// [`on_runtime_dir`] for a call about one sidecar: reads `sandbox_id` as
/// [`arg_str`] does, after the directory, and runs `f` on both (a core
/// function of that signature as it is).
///
/// # Safety
/// As for [`on_runtime_dir`]; `sandbox_id` is NULL or a valid
/// NUL-terminated string.
unsafe fn on_sandbox<T: Serialize, E>(
    runtime_dir: *const c_char,
    sandbox_id: *const c_char,
    out: *mut *mut c_char,
    f: impl FnOnce(PathBuf, &str) -> Result<T, E>,
) -> i32
where
    FfiError: From<E>,
{
    // SAFETY: forwarded contract.
    unsafe {
        on_runtime_dir(runtime_dir, out, |dir| {
            Ok(f(dir, arg_str(sandbox_id, "sandbox_id")?)?)
        })
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
        use FirmaStatus::*;
        // Each status at the index of its documented number.
        let numbered = [
            FIRMA_OK,
            FIRMA_INVALID_ARGUMENT,
            FIRMA_IO,
            FIRMA_MARKER_PARSE,
            FIRMA_IDENTITY_MISMATCH,
            FIRMA_INTERNAL,
            FIRMA_IDENTITY_UNVERIFIABLE,
            FIRMA_PID_REUSED,
            FIRMA_REFUSED,
            FIRMA_PIDFD_UNAVAILABLE,
            FIRMA_UNTRUSTED_DIRECTORY,
            FIRMA_NOT_AUTHORIZED,
            FIRMA_FORKED,
        ];
        for (n, status) in numbered.into_iter().enumerate() {
            assert_eq!(status as usize, n, "{status:?}");
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
            r#"["invalid_argument","io","marker_parse","identity_mismatch","internal","identity_unverifiable","pid_reused","refused","pidfd_unavailable","untrusted_directory","not_authorized","forked"]"#
        );
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(FirmaStatus::of(code) as usize, i + 1, "{code}");
        }
    }
}
