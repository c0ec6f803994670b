//! The watcher: `firma_watch` and its options object, `firma_watch_open`,
//! `firma_watch_next`, `firma_watch_fd` and `firma_watch_close`.

use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
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
    /// The process that opened it, checked before any lock is taken.
    owner: sm::WatcherOwner,
    fd: i32,
    turn: Turn,
    /// Locked only while holding the turn, so never waited for.
    inner: Mutex<sm::Watcher>,
}

/// The right to step the watcher, taken with a deadline (std's `Mutex` has
/// no timed lock).
struct Turn {
    busy: Mutex<bool>,
    free: Condvar,
}

struct TurnHeld<'a>(&'a Turn);

impl Drop for TurnHeld<'_> {
    fn drop(&mut self) {
        *lock(&self.0.busy) = false;
        self.0.free.notify_one();
    }
}

/// A poisoned lock here only guards a flag or a watcher whose own state a
/// panic cannot corrupt for the next call (the core's `next` is retried).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Turn {
    /// Waits for the turn until `deadline` (`None`: as long as it takes);
    /// `None` when the deadline passed first.
    fn take(&self, deadline: Option<Instant>) -> Option<TurnHeld<'_>> {
        let mut busy = lock(&self.busy);
        while *busy {
            busy = match deadline {
                None => self.free.wait(busy).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.free
                        .wait_timeout(busy, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        *busy = true;
        Some(TurnHeld(self))
    }
}

/// Waits until `fd` is readable or `deadline` passes; EINTR is a short
/// wait (the caller looks again).
fn wait_readable(fd: i32, deadline: Option<Instant>) {
    let ms = match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            // Rounded up, so the wait never ends just before the deadline.
            i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
        }
    };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; the descriptor belongs to the watcher,
    // which the caller keeps open.
    unsafe { libc::poll(&mut pfd, 1, ms) };
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
        let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
        opened = Box::into_raw(Box::new(firma_watch {
            magic: AtomicU64::new(OPEN),
            owner: w.owner(),
            fd,
            turn: Turn {
                busy: Mutex::new(false),
                free: Condvar::new(),
            },
            inner: Mutex::new(w),
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
        // Before any lock: in a fork() child a lock may be held by a
        // thread that does not exist there.
        w.owner.check()?;
        let deadline = u64::try_from(timeout_ms)
            .ok()
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        loop {
            let Some(turn) = w.turn.take(deadline) else {
                return Ok("null".to_owned());
            };
            // Never waits: an event queued, or the work that is due.
            let got = lock(&w.inner).next(Some(Duration::ZERO));
            drop(turn);
            if let Some(ev) = got? {
                return to_json(&ev);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok("null".to_owned());
            }
            // The descriptor is readable exactly when a step may have
            // something (an event queued, a trigger, the timer).
            wait_readable(w.fd, deadline);
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
