//! The writer: `firma_marker_create` and its marker object,
//! `firma_marker_remove`. Every check (the sandbox id, the pid, `listen`,
//! the trust of the directory) and every recorded identity is the core's
//! `create_marker` / `remove_marker`.

use std::ffi::c_char;

use super::options::{options_object, parse_options};
use super::{FfiError, arg_str, on_runtime_dir, on_sandbox};
use crate::sidecar_markers::{self as sm, MetadataFile};

/// The JSON marker of `firma_marker_create`: the five text keys are
/// required, `pid`, `started_at` and `listen` optional.
#[derive(Default)]
struct MarkerJson {
    sandbox_id: Option<String>,
    agent_id: Option<String>,
    session_id: Option<String>,
    authority_url: Option<String>,
    policy_bundle_version: Option<String>,
    pid: Option<u32>,
    started_at: Option<String>,
    listen: Option<String>,
}

/// What the text keys of the marker object must be.
const TEXT: &str = "a string";

options_object!(MarkerJson {
    "sandbox_id": TEXT => |m, v| m.sandbox_id = Some(v);
    "agent_id": TEXT => |m, v| m.agent_id = Some(v);
    "session_id": TEXT => |m, v| m.session_id = Some(v);
    "authority_url": TEXT => |m, v| m.authority_url = Some(v);
    "policy_bundle_version": TEXT => |m, v| m.policy_bundle_version = Some(v);
    "pid": "a process id (an integer)" => |m, v| m.pid = Some(v);
    "started_at": TEXT => |m, v| m.started_at = Some(v);
    "listen": "a string or null" => |m, v| m.listen = v;
});

/// The core's metadata from the marker object: a missing required key is
/// an invalid argument naming it; `pid` defaults to the calling process,
/// `started_at` to now. The identity fields are left to the core, which
/// records those of the process `pid`.
pub(super) fn marker_metadata(json: &str) -> Result<MetadataFile, FfiError> {
    let m: MarkerJson = parse_options(Some(json), "marker_json")?;
    let required = |v: Option<String>, key: &str| {
        v.ok_or_else(|| FfiError::invalid(format!("marker_json: missing key \"{key}\"")))
    };
    Ok(MetadataFile {
        sandbox_id: required(m.sandbox_id, "sandbox_id")?,
        agent_id: required(m.agent_id, "agent_id")?,
        session_id: required(m.session_id, "session_id")?,
        authority_url: required(m.authority_url, "authority_url")?,
        policy_bundle_version: required(m.policy_bundle_version, "policy_bundle_version")?,
        pid: m.pid.unwrap_or_else(std::process::id),
        started_at: m.started_at.unwrap_or_else(sm::now_rfc3339),
        listen: m.listen,
        boot_id: None,
        pid_start_ticks: None,
        pid_ns_inode: None,
        boottime_offset_ns: None,
    })
}

/// Writes the marker `<runtime_dir>/run/<sandbox_id>` (NULL `runtime_dir`:
/// the default) atomically: readers never see it without its metadata, and
/// an existing marker is never overwritten (`FIRMA_IO`, "marker already
/// exists").
///
/// `marker_json` is a JSON object with the required keys `"sandbox_id"`,
/// `"agent_id"`, `"session_id"`, `"authority_url"`,
/// `"policy_bundle_version"` (strings) and the optional `"pid"` (default:
/// the calling process), `"started_at"` (RFC 3339; default: now, UTC) and
/// `"listen"` (an absolute Unix socket path or `host:port`; default: the
/// marker's `sidecar.sock`). The library records the identity of the
/// process `pid` (its start time, the boot id, its pid and time namespaces),
/// so `firma_sidecar_stop` can verify it later; a `pid` with no process is
/// `FIRMA_IO` (`ESRCH`). A missing, unknown or repeated key, a value of the
/// wrong type, an invalid sandbox id, pid or `listen` is
/// `FIRMA_INVALID_ARGUMENT` naming it; a directory that fails the trust
/// checks (or is not the caller's or root's) is `FIRMA_UNTRUSTED_DIRECTORY`.
/// On any failure nothing is written. Missing directories are created
/// (mode 0700).
///
/// On `FIRMA_OK`, `*out_json` is the marker directory's path as a JSON
/// string. Free `*out_json` with `firma_string_free`.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `marker_json` is NULL
/// or a NUL-terminated string; `out_json` is NULL or writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_marker_create(
    runtime_dir: *const c_char,
    marker_json: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        on_runtime_dir(runtime_dir, out_json, |dir| {
            let meta = marker_metadata(arg_str(marker_json, "marker_json")?)?;
            Ok(sm::create_marker(dir, &meta)?)
        })
    }
}

/// Removes the marker of `sandbox_id` under `runtime_dir` (NULL: the
/// default) whatever its state: for the writer of a marker, on its way
/// out. The same atomic rename-then-delete as collection; a symlink or a
/// file in `run/` is never removed (`FIRMA_MARKER_PARSE`). An invalid
/// sandbox id is `FIRMA_INVALID_ARGUMENT`; a directory that fails the trust
/// checks `FIRMA_UNTRUSTED_DIRECTORY`, whether or not the marker exists.
///
/// On `FIRMA_OK`, `*out_json` is the JSON literal `true` (removed) or
/// `false` (there was none). Free it with `firma_string_free`.
///
/// # Safety
/// `runtime_dir` is NULL or a NUL-terminated string; `sandbox_id` is NULL
/// or a NUL-terminated string; `out_json` is NULL or writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_marker_remove(
    runtime_dir: *const c_char,
    sandbox_id: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { on_sandbox(runtime_dir, sandbox_id, out_json, sm::remove_marker) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar_markers::ErrorCode;

    fn invalid(json: &str) -> String {
        let e = marker_metadata(json).expect_err("an error").0;
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{}", e.message);
        e.message
    }

    const FULL: &str = r#"{"sandbox_id":"s","agent_id":"a","session_id":"x","authority_url":"u","policy_bundle_version":"1"}"#;

    #[test]
    fn the_marker_object_defaults_to_the_calling_process_now() {
        let m = marker_metadata(FULL).ok().expect("valid");
        assert_eq!(m.pid, std::process::id());
        assert!(m.started_at.ends_with('Z'), "{}", m.started_at);
        assert_eq!((m.listen, m.boot_id, m.pid_start_ticks), (None, None, None));
    }

    #[test]
    fn a_bad_marker_object_names_the_key() {
        let missing = invalid(r#"{"sandbox_id":"s","agent_id":"a"}"#);
        assert!(missing.contains(r#"missing key "session_id""#), "{missing}");
        let dup = invalid(r#"{"sandbox_id":"s","sandbox_id":"t"}"#);
        assert!(dup.contains(r#"duplicate key "sandbox_id""#), "{dup}");
        let unknown = invalid(r#"{"boot_id":"b"}"#);
        assert!(unknown.contains(r#"unknown key "boot_id""#), "{unknown}");
        let pid = invalid(r#"{"pid":-1}"#);
        assert!(pid.contains(r#""pid" must be a process id"#), "{pid}");
        assert!(pid.starts_with("marker_json: "), "{pid}");
    }
}
