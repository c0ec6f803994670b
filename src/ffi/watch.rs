//! The watcher: `firma_watch` and its options object, `firma_watch_open`,
//! `firma_watch_next`, `firma_watch_fd` and `firma_watch_close`.

use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::library::firma_string_free;
use super::options::{OptionsObject, option_value, parse_options};
use super::{FfiError, FirmaStatus, arg_opt_str, arg_runtime_dir, boundary, to_json};
use crate::sidecar_markers as sm;

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
/// the default, as an absent key). Each value is read straight into the
/// core's options, which start as the defaults.
#[derive(Default)]
struct WatchOptionsJson(sm::WatchOptions);

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
        let o = &mut self.0;
        let interval = match key {
            "timeout_ms" => &mut o.probe.timeout,
            "probe_interval_ms" => &mut o.probe_interval,
            "rescan_interval_ms" => &mut o.rescan_interval,
            // "collect": the visitor passes only known keys.
            _ => {
                let collect: Option<bool> = option_value(map, key, "true, false or null")?;
                o.collect = collect.unwrap_or(o.collect);
                return Ok(());
            }
        };
        let ms: Option<u64> =
            option_value(map, key, "a non-negative integer of milliseconds or null")?;
        if let Some(ms) = ms {
            *interval = Duration::from_millis(ms);
        }
        Ok(())
    }
}

pub(super) fn watch_options(json: Option<&str>) -> Result<sm::WatchOptions, FfiError> {
    parse_options(json).map(|WatchOptionsJson(o)| o)
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
        // SAFETY: forwarded contract.
        let json = unsafe { arg_opt_str(options_json, "options_json") }?;
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
