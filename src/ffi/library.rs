//! The calls about the library itself rather than a runtime directory: the
//! error codes it reports, its default runtime directory, freeing the
//! strings it hands out, and its ABI version.

use std::ffi::{CString, c_char};

use super::{FIRMA_ABI_VERSION, FfiError, boundary, to_json};
use crate::sidecar_markers::{self as sm, ErrorCode};

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
