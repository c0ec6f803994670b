//! `_Watcher`: the core's shared watcher (`SharedWatcher`: any thread may
//! step it, each with its own deadline, none holding a lock while it
//! waits, the selection applied inside the step), for `firma_stack.watch`
//! and `firma_stack.awatch` (python/firma_stack/_watch.py).
//!
//! Events cross as plain tuples `(kind, sandbox_id, entry, previous,
//! reason, at)`; the Python side turns them into typed event classes.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use firma_stack::sidecar_markers::{self as sm, Event, StackError};
use pyo3::prelude::*;

use crate::boundary::call_core;
use crate::convert::{FsPath, Zero, probe_options, runtime_dir_or_default, seconds};
use crate::entry::SidecarEntry;
use crate::exceptions;
use crate::select::{Names, Select};

/// Longest the GIL-free wait lasts before signals are checked (so Ctrl-C
/// interrupts a blocking iteration).
const SLICE: Duration = Duration::from_millis(200);

type EventTuple = (
    &'static str,
    Option<String>,
    Option<SidecarEntry>,
    Option<&'static str>,
    Option<String>,
    String,
);

fn to_tuple(ev: Event) -> EventTuple {
    let kind = ev.kind();
    match ev {
        Event::Appeared {
            sandbox_id,
            entry,
            at,
        } => (kind, Some(sandbox_id), Some(entry.into()), None, None, at),
        Event::Changed {
            sandbox_id,
            entry,
            previous,
            at,
        } => (
            kind,
            Some(sandbox_id),
            Some(entry.into()),
            Some(previous.as_str()),
            None,
            at,
        ),
        Event::Gone {
            sandbox_id,
            reason,
            at,
        } => (
            kind,
            Some(sandbox_id),
            None,
            None,
            Some(reason.as_str().to_owned()),
            at,
        ),
        Event::Synced { at } => (kind, None, None, None, None, at),
        Event::Resync { reason, at } => (kind, None, None, None, Some(reason), at),
    }
}

/// A watch interval: `(0, MAX_WATCH_INTERVAL]` seconds.
pub(crate) fn interval(py: Python<'_>, what: &str, secs: f64) -> PyResult<Duration> {
    seconds(py, what, secs, sm::MAX_WATCH_INTERVAL, Zero::Refused)
}

/// How long `next_event` may wait: any finite number of seconds `>= 0`.
fn wait_seconds(py: Python<'_>, what: &str, secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        exceptions::from_stack_error(
            py,
            StackError::InvalidArgument {
                what: what.into(),
                reason: format!("{secs} s is not a finite number of seconds >= 0"),
            },
        )
    })
}

fn closed_error() -> PyErr {
    pyo3::exceptions::PyValueError::new_err("the watcher is closed")
}

/// A watcher of one runtime directory (see `firma_stack.watch`).
///
/// Each `next_event` holds the read side of `shared` for one slice of its
/// wait (many threads may), `close` the write side to take the watcher
/// out: it waits for the slices under way, at most one each.
///
/// `owner` and `closed` live outside the lock: in a `fork()` child the
/// lock may be held by a thread that does not exist there, so the child
/// must be refused (`ForkedError`) and may close without ever waiting
/// for it.
#[pyclass(module = "firma_stack._native", name = "_Watcher", frozen)]
pub(crate) struct Watcher {
    shared: RwLock<Option<sm::SharedWatcher>>,
    owner: sm::WatcherOwner,
    closed: AtomicBool,
    fd: i32,
}

#[pymethods]
impl Watcher {
    #[new]
    #[pyo3(signature = (runtime_dir=None, *, timeout=None, probe_interval=1.0, collect=true,
                        rescan_interval=30.0, state=None, agent=None, session=None,
                        sandbox_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        runtime_dir: Option<FsPath>,
        timeout: Option<f64>,
        probe_interval: f64,
        collect: bool,
        rescan_interval: f64,
        state: Option<Names>,
        agent: Option<String>,
        session: Option<String>,
        sandbox_id: Option<Names>,
    ) -> PyResult<Self> {
        let filter = Select::entries(state, agent, session, sandbox_id)
            .filter(py)?
            .map(sm::EventFilter::new);
        let opts = sm::WatchOptions {
            probe: probe_options(py, timeout)?,
            probe_interval: interval(py, "probe_interval", probe_interval)?,
            collect,
            rescan_interval: interval(py, "rescan_interval", rescan_interval)?,
        };
        let dir = runtime_dir.map(|d| d.0);
        let w = call_core(py, move || sm::watch(runtime_dir_or_default(dir), &opts))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
        Ok(Watcher {
            owner: w.owner(),
            shared: RwLock::new(Some(sm::SharedWatcher::filtered(w, filter))),
            closed: AtomicBool::new(false),
            fd,
        })
    }

    /// The next event as a tuple, waiting at most `timeout` seconds (`None`:
    /// until there is one); `None` when the timeout passed, also while
    /// other threads wait on the same watcher. The GIL is released while
    /// waiting; signals are checked every 0.2 s. In a `fork()` child:
    /// `ForkedError`, before any lock is taken.
    #[pyo3(signature = (timeout=None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<EventTuple>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        self.owner
            .check()
            .map_err(|e| exceptions::from_stack_error(py, e))?;
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + wait_seconds(py, "timeout", t)?),
            None => None,
        };
        loop {
            // Closed by another thread since the last slice: stop stepping,
            // so its close() gets the write side instead of waiting
            // behind us.
            if self.closed.load(Ordering::Acquire) {
                return Err(closed_error());
            }
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
                None => SLICE,
            };
            let end = Instant::now() + slice;
            let got = call_core(py, || {
                let guard = self.shared.read().unwrap_or_else(|p| p.into_inner());
                guard.as_ref().map(|w| w.next(Some(end))).transpose()
            })?;
            match got {
                None => return Err(closed_error()),
                Some(Some(ev)) => return Ok(Some(to_tuple(ev))),
                Some(None) => {}
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// The descriptor that becomes readable when `next_event(0)` may have
    /// an event (only poll it).
    fn fileno(&self) -> PyResult<i32> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        Ok(self.fd)
    }

    /// Stops watching and closes every descriptor; idempotent. Waits for
    /// the `next_event` calls running in other threads (at most one slice
    /// of their wait, 0.2 s). In a `fork()` child it never waits: it
    /// closes the child's copies of the descriptors if the lock is free,
    /// and otherwise leaves them to the child's exit; the parent's watcher
    /// is untouched.
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        let w = if self.owner.check().is_ok() {
            py.detach(|| {
                self.shared
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
            })
        } else {
            match self.shared.try_write() {
                Ok(mut g) => g.take(),
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        };
        drop(w);
    }

    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
