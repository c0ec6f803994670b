//! The one place the binding calls into the core.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{Thread, ThreadId};
use std::time::{Duration, Instant};

use firma_stack::sidecar_markers::{Result as CoreResult, StackError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::exceptions;

/// Runs `f` (one call into the core) with the GIL released, so other Python
/// threads keep running while the core reads files and probes sockets.
///
/// A core error becomes the matching `firma_stack` exception; a panic is
/// caught here and becomes `InternalError`, never `PanicException`.
pub(crate) fn call_core<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> CoreResult<T> + Send,
{
    match py.detach(move || catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(exceptions::from_stack_error(py, err)),
        Err(payload) => Err(exceptions::internal(py, &panic_message(payload.as_ref()))),
    }
}

/// How long [`call_core_interruptible`] waits between two checks for
/// signals.
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// How long a caller keeps looking for its answer, and an idle worker for
/// its next call, before parking (see [`await_flag`]). A `get` of one
/// marker takes well under the caller's spin, and the next call of a loop
/// comes well within the worker's: in a run of calls neither side sleeps,
/// so no call pays for a wake-up of the other's thread (a futex and a trip
/// through the scheduler, which cost about half of a `get`). A long call
/// costs one spin of CPU more, once.
const CALLER_SPIN: Duration = Duration::from_micros(100);
const WORKER_SPIN: Duration = Duration::from_micros(200);

/// [`call_core`] for a call that may block for long (a probe waits up to
/// its timeout, which may be minutes): the call runs on a worker thread
/// while this one waits for it with the GIL released, in slices of
/// [`SIGNAL_SLICE`], running Python's signal handlers between them. So
/// Ctrl-C (or whatever a handler raises) interrupts the wait at once; the
/// abandoned call ends on its own thread within its own timeout, and its
/// result is dropped.
///
/// Python runs signal handlers only on the main thread: on any other, a
/// wait would be interrupted by nothing, so the call is a plain
/// [`call_core`] there, on the caller's own thread.
pub(crate) fn call_core_interruptible<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    if !on_main_thread(py)? {
        return call_core(py, f);
    }
    let answer = Arc::new(Answer::new());
    let to_caller = Arc::clone(&answer);
    let spawned = on_worker(Box::new(move || {
        // Nobody may wait any more (interrupted): the answer is dropped.
        to_caller.give(catch_unwind(AssertUnwindSafe(f)));
    }));
    if let Err(source) = spawned {
        return Err(exceptions::from_stack_error(
            py,
            StackError::Io {
                action: "start a thread for",
                path: "the call".into(),
                source,
            },
        ));
    }
    let mut spin = CALLER_SPIN;
    loop {
        match py.detach(|| answer.wait(spin, SIGNAL_SLICE)) {
            Some(Ok(Ok(value))) => return Ok(value),
            Some(Ok(Err(err))) => return Err(exceptions::from_stack_error(py, err)),
            Some(Err(payload)) => {
                return Err(exceptions::internal(py, &panic_message(payload.as_ref())));
            }
            None => py.check_signals()?,
        }
        spin = Duration::ZERO;
    }
}

/// The process and thread Python runs signal handlers on, once seen.
static MAIN_THREAD: Mutex<Option<(u32, ThreadId)>> = Mutex::new(None);

/// Whether this is Python's main thread (`threading.main_thread()`), the
/// one that runs signal handlers. Asked of Python until it says yes, then
/// remembered for this process (a `fork()` child asks again: its main
/// thread is the one that forked).
fn on_main_thread(py: Python<'_>) -> PyResult<bool> {
    let (pid, me) = (std::process::id(), std::thread::current().id());
    if let Some((p, main)) = *MAIN_THREAD.lock().unwrap_or_else(|e| e.into_inner())
        && p == pid
    {
        return Ok(main == me);
    }
    static MAIN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static CURRENT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let main = MAIN.import(py, "threading", "main_thread")?.call0()?;
    let current = CURRENT.import(py, "threading", "current_thread")?.call0()?;
    if !main.is(&current) {
        return Ok(false);
    }
    *MAIN_THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some((pid, me));
    Ok(true)
}

/// Waits for `ready`: yields the CPU while it is false for up to `spin`,
/// then parks this thread (whose `unpark` follows every store to `ready`)
/// until it holds or `deadline` (`None`: none) passes. Whether it holds.
///
/// Yielding rather than spinning in place: on a machine with few CPUs the
/// other side (or the sidecar answering the probe) may need this very
/// CPU, and a thread spinning in place would hold it for a whole time
/// slice.
fn await_flag(ready: &AtomicBool, spin: Duration, deadline: Option<Instant>) -> bool {
    let started = Instant::now();
    while !ready.load(Ordering::Acquire) {
        let now = Instant::now();
        if now.duration_since(started) < spin {
            std::thread::yield_now();
            continue;
        }
        match deadline {
            None => std::thread::park(),
            Some(d) if now < d => std::thread::park_timeout(d - now),
            Some(_) => return false,
        }
    }
    true
}

/// The result of one call, handed from its worker to the caller waiting.
struct Answer<R> {
    ready: AtomicBool,
    value: Mutex<Option<R>>,
    caller: Thread,
}

impl<R> Answer<R> {
    fn new() -> Self {
        Answer {
            ready: AtomicBool::new(false),
            value: Mutex::new(None),
            caller: std::thread::current(),
        }
    }

    fn give(&self, value: R) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        self.ready.store(true, Ordering::Release);
        self.caller.unpark();
    }

    /// The answer, if it comes within `spin` and then `slice`.
    fn wait(&self, spin: Duration, slice: Duration) -> Option<R> {
        if !await_flag(&self.ready, spin, Some(Instant::now() + slice)) {
            return None;
        }
        self.value.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A call handed to a worker thread.
type Job = Box<dyn FnOnce() + Send>;

/// Where a caller puts the next call of an idle worker.
struct Inbox {
    ready: AtomicBool,
    job: Mutex<Option<Job>>,
}

/// An idle worker: its inbox and its thread, to wake it.
struct Idle {
    inbox: Arc<Inbox>,
    thread: Thread,
}

/// Idle workers of this process, each waiting on its inbox: a call reuses
/// one instead of starting a thread (starting one costs more than a `get`
/// of one marker). A worker still busy with an abandoned call is not idle,
/// so a new one is started; at most [`MAX_IDLE`] wait. `pid` is the
/// process the workers run in: after `fork()` the child has none of them,
/// and the list is dropped rather than handed calls no thread will take.
struct Workers {
    pid: u32,
    idle: Vec<Idle>,
}

const MAX_IDLE: usize = 4;

static WORKERS: Mutex<Option<Workers>> = Mutex::new(None);

fn workers() -> std::sync::MutexGuard<'static, Option<Workers>> {
    let mut w = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if w.as_ref().is_none_or(|w| w.pid != pid) {
        *w = Some(Workers {
            pid,
            idle: Vec::new(),
        });
    }
    w
}

/// Runs `job` on an idle worker, or on a new one that then waits for more.
fn on_worker(job: Job) -> std::io::Result<()> {
    if let Some(worker) = workers().as_mut().and_then(|w| w.idle.pop()) {
        *worker.inbox.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        worker.inbox.ready.store(true, Ordering::Release);
        worker.thread.unpark();
        return Ok(());
    }
    std::thread::Builder::new()
        .name("firma-call".into())
        .spawn(move || {
            let inbox = Arc::new(Inbox {
                ready: AtomicBool::new(false),
                job: Mutex::new(None),
            });
            let mut job = job;
            loop {
                job();
                {
                    let mut w = workers();
                    match w.as_mut() {
                        Some(w) if w.idle.len() < MAX_IDLE => w.idle.push(Idle {
                            inbox: Arc::clone(&inbox),
                            thread: std::thread::current(),
                        }),
                        _ => return,
                    }
                }
                await_flag(&inbox.ready, WORKER_SPIN, None);
                inbox.ready.store(false, Ordering::Relaxed);
                match inbox.job.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(next) => job = next,
                    None => return,
                }
            }
        })?;
    Ok(())
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    format!("internal error: a panic was caught at the Python boundary: {detail}")
}
