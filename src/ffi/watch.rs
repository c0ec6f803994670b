//! The watcher: `firma_watch` and its options object, `firma_watch_open`,
//! `firma_watch_next`, `firma_watch_fd` and `firma_watch_close`.

use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::library::firma_string_free;
use super::options::{MS_OR_NULL, millis_unless_null, options_object, parse_options, unless_null};
use super::{FfiError, FirmaStatus, arg_opt_str, arg_runtime_dir, boundary, to_json};
use crate::sidecar_markers as sm;

/// `firma_watch::magic` of an open watcher ("firmawat").
const OPEN: u64 = 0x6669_726d_6177_6174;
/// `firma_watch::magic` written by `firma_watch_close` just before the
/// memory is freed.
const CLOSED: u64 = 0x636c_6f73_6564_2121;

/// A watcher of one runtime directory, from `firma_watch_open`; opaque.
///
/// Threads: a watcher may be used from any thread. Calls of
/// `firma_watch_next` on the same watcher may overlap: each waits on the
/// watcher's descriptor without holding anything, and only the short step
/// that takes an event (or does the work that is due) is serialized; a
/// caller whose timeout passes while another holds that step returns on
/// time. `firma_watch_fd` may be called at any time, from any thread.
/// `firma_watch_close` must be the last call on a watcher: never
/// concurrently with, or after, any other call on it. Different watchers
/// are independent.
pub struct firma_watch {
    /// [`OPEN`] until `firma_watch_close`.
    magic: AtomicU64,
    /// Steps with a deadline each, from any thread (the core's
    /// `SharedWatcher`).
    shared: sm::SharedWatcher,
}

/// The JSON options of `firma_watch_open`; every key optional (`null` is
/// the default, as an absent key). Each value is read straight into the
/// core's options, which start as the defaults.
#[derive(Default)]
struct WatchOptionsJson(sm::WatchOptions);

options_object!(WatchOptionsJson {
    "timeout_ms": MS_OR_NULL => |o, v| millis_unless_null(&mut o.0.probe.timeout, v);
    "probe_interval_ms": MS_OR_NULL => |o, v| millis_unless_null(&mut o.0.probe_interval, v);
    "rescan_interval_ms": MS_OR_NULL => |o, v| millis_unless_null(&mut o.0.rescan_interval, v);
    "collect": "true, false or null" => |o, v| unless_null(&mut o.0.collect, v);
});

pub(super) fn watch_options(json: Option<&str>) -> Result<sm::WatchOptions, FfiError> {
    parse_options(json, "options_json").map(|WatchOptionsJson(o)| o)
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
        opened = Box::into_raw(Box::new(firma_watch {
            magic: AtomicU64::new(OPEN),
            shared: sm::SharedWatcher::new(w),
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
/// is RFC 3339 UTC with milliseconds. Free it with `firma_string_free`.
///
/// On failure it is an error object, and the failure is not the end of
/// the stream: the watcher keeps its state and a later call retries (one
/// probe interval later), so keep calling. The exceptions:
/// `FIRMA_FORKED`, when the calling process is not the one that opened
/// the watcher (a `fork()` child: checked before any lock is taken or any
/// descriptor touched, so the parent's stream is unaffected), and
/// `FIRMA_INVALID_ARGUMENT` for a NULL `w` or, best effort, one already
/// closed (detected while its memory has not been reused: never rely on
/// it).
///
/// The timeout holds while other threads call `firma_watch_next` on the
/// same watcher, including one waiting with a negative timeout: waiting
/// holds no lock.
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
        // access is taken (the turn serializes the steps).
        let w = unsafe { w.as_ref() }.ok_or_else(|| FfiError::invalid("watch is NULL"))?;
        if w.magic.load(Ordering::Acquire) != OPEN {
            return Err(FfiError::invalid("the watcher was closed"));
        }
        let deadline = u64::try_from(timeout_ms)
            .ok()
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        // The forked check comes first, before any lock is taken.
        match w.shared.next(deadline)? {
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
    unsafe { w.as_ref() }.map_or(-1, |w| w.shared.fd())
}

/// Stops watching and releases every descriptor of `w`. NULL is a no-op,
/// and so, best effort, is a watcher already closed. In a `fork()` child
/// it closes only the child's copies of the descriptors: the parent's
/// watcher goes on.
///
/// # Safety
/// `w` is NULL or a watcher from `firma_watch_open`, closed once, with no
/// other call on it running or following.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_watch_close(w: *mut firma_watch) {
    // SAFETY: NULL or a watcher per the contract.
    // Read before writing: a handle closed twice writes nothing.
    let open = unsafe { w.as_ref() }.is_some_and(|w| {
        w.magic.load(Ordering::Acquire) == OPEN
            && w.magic
                .compare_exchange(OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    });
    if open {
        // SAFETY: came from Box::into_raw in firma_watch_open; closed once.
        let w = unsafe { Box::from_raw(w) };
        // A poisoned lock still owns the watcher: drop it either way.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(w)));
    }
}
