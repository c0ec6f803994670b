//! The one place the binding calls into the core.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use firma_stack::sidecar_markers::{Result as CoreResult, StackError};
use pyo3::prelude::*;

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

/// [`call_core`] for a call that may block for long (a probe waits up to
/// its timeout, which may be minutes): the call runs on a thread of its
/// own while this one waits for it with the GIL released, in slices of
/// [`SIGNAL_SLICE`], running Python's signal handlers between them. So
/// Ctrl-C (or whatever a handler raises) interrupts the wait at once; the
/// abandoned call ends on its own thread within its own timeout, and its
/// result is dropped. (Python runs signal handlers only on the main
/// thread; elsewhere this is a plain wait.)
pub(crate) fn call_core_interruptible<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = on_worker(Box::new(move || {
        // The receiver may be gone (interrupted): nothing to do then.
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
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
    let mut rx = rx;
    loop {
        // The receiver moves in and out (it is `Send`, not `Sync`).
        let (got, back) = py.detach(move || (rx.recv_timeout(SIGNAL_SLICE), rx));
        rx = back;
        match got {
            Ok(Ok(Ok(value))) => return Ok(value),
            Ok(Ok(Err(err))) => return Err(exceptions::from_stack_error(py, err)),
            Ok(Err(payload)) => {
                return Err(exceptions::internal(py, &panic_message(payload.as_ref())));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(exceptions::internal(
                    py,
                    "internal error: the thread of a call ended without an answer",
                ));
            }
        }
    }
}

/// A call handed to a worker thread.
type Job = Box<dyn FnOnce() + Send>;

/// Idle workers of this process, each waiting on its channel: a call
/// reuses one instead of starting a thread (starting one costs more than a
/// `get` of one marker). A worker still busy with an abandoned call is not
/// idle, so a new one is started; at most [`MAX_IDLE`] wait. `pid` is the
/// process the workers run in: after `fork()` the child has none of them,
/// and the list is dropped rather than handed calls no thread will take.
struct Workers {
    pid: u32,
    idle: Vec<mpsc::Sender<Job>>,
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
    let idle = workers().as_mut().and_then(|w| w.idle.pop());
    let job = match idle {
        Some(worker) => match worker.send(job) {
            Ok(()) => return Ok(()),
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("firma-call".into())
        .spawn(move || {
            let mut job = job;
            loop {
                job();
                {
                    let mut w = workers();
                    match w.as_mut() {
                        Some(w) if w.idle.len() < MAX_IDLE => w.idle.push(tx.clone()),
                        _ => return,
                    }
                }
                match rx.recv() {
                    Ok(next) => job = next,
                    Err(_) => return,
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
