//! `firma_sidecar_stop`: its options object and the call.

use std::ffi::c_char;
use std::time::Duration;

use super::options::{options_object, parse_options};
use super::{FfiError, arg_opt_str, on_sandbox};
use crate::sidecar_markers as sm;

/// The JSON options of `firma_sidecar_stop`; every key optional. Each value
/// is read straight into the core's options (the defaults stand for absent
/// keys), except the signal, resolved once the whole object is read.
#[derive(Default)]
struct StopOptionsJson {
    opts: sm::StopOptions,
    signal: Option<SignalJson>,
}

/// A signal given by name (`"SIGTERM"`) or number (`15`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum SignalJson {
    Number(i64),
    Name(String),
}

/// What `"kill"` and `"verify_identity"` must be.
const BOOL: &str = "true or false";

options_object!(StopOptionsJson {
    "signal": "a signal name or number" => |o, v| o.signal = Some(v);
    "grace_ms": "a non-negative integer of milliseconds" =>
        |o, v| o.opts.grace = Duration::from_millis(v);
    "kill": BOOL => |o, v| o.opts.kill = v;
    "verify_identity": BOOL => |o, v| o.opts.verify_identity = v;
});

/// Stop options from the JSON object of `firma_sidecar_stop`.
pub(super) fn stop_options(json: Option<&str>) -> Result<sm::StopOptions, FfiError> {
    let StopOptionsJson { mut opts, signal } = parse_options(json, "options_json")?;
    match signal {
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
        on_sandbox(runtime_dir, sandbox_id, out_json, |dir, id| {
            let opts = stop_options(arg_opt_str(options_json, "options_json")?)?;
            Ok::<_, FfiError>(sm::stop(dir, id, &opts)?)
        })
    }
}
