//! Probing a Unix socket path the library does not control without ever
//! blocking on its lookup: from the dentry cache alone, else in a child
//! process waited for by a helper thread, one lookup per path in flight
//! process-wide, and a path whose lookup outlived the timeout *stuck*
//! (see the module docs of [`super`]).

use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Outcome, classify, connect_unix, errno_of};
use crate::sidecar_markers::sys;
use crate::sidecar_markers::sys::socket::UnixAddr;

/// Connects to a Unix socket path the library does not control, without
/// ever blocking this thread or this process on the path's lookup:
///
/// 1. resolved from the dentry cache alone ([`sys::lookup::open_cached`]),
///    it is judged by the fleet probe where the dump answers
///    ([`Prober::connect_cached`](super::Prober::connect_cached)), or found missing;
/// 2. otherwise the lookup runs in a child process
///    ([`sys::lookup::ChildConnect`]) waited for by a helper thread, and is
///    shared: a probe of a path whose lookup is already in flight in this
///    process joins it instead of starting another; once that lookup has
///    outlived the caller's timeout the path is *stuck* and the probe
///    answers [`Outcome::Stuck`] at once, as does a probe of any path in
///    the directory of a stuck path. At most [`MAX_PATH_THREADS`] lookups
///    are in flight.
pub(super) fn connect_unix_path_guarded(
    path: PathBuf,
    deadline: Instant,
    timeout: Duration,
) -> PathProbe {
    let mut flights = FLIGHTS.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        // A flight that has answered is landing: its answer is older than
        // this probe, so it is neither joined nor stuck.
        if let Some((_, f)) = flights
            .iter()
            .find(|(p, f)| *p == path && !f.has_answered())
        {
            if now.saturating_duration_since(f.started) >= timeout {
                return PathProbe::Done(Outcome::Stuck);
            }
            return PathProbe::Waiting(f.clone());
        }
        let stuck_dir = flights.iter().any(|(p, f)| {
            !f.has_answered()
                && now.saturating_duration_since(f.started) >= timeout
                && p.parent().is_some_and(|d| path.starts_with(d))
        });
        if stuck_dir {
            return PathProbe::Done(Outcome::Stuck);
        }
        if flights.len() < MAX_PATH_THREADS {
            break;
        }
        if now >= deadline {
            return PathProbe::Done(Outcome::Unavailable(
                "too many probes are stuck on paths that do not answer",
            ));
        }
        flights = FLIGHT_ENDED
            .wait_timeout(flights, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    let flight = Arc::new(Flight {
        started: Instant::now(),
        answer: Mutex::new(None),
        answered: Condvar::new(),
    });
    flights.push((path.clone(), flight.clone()));
    drop(flights);
    let mine = flight.clone();
    let spawned = std::thread::Builder::new()
        .name("firma-path-probe".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let outcome = connect_path_in_child(&path);
            mine.answer(outcome);
            land(&mine);
        });
    match spawned {
        Ok(_) => PathProbe::Waiting(flight),
        Err(_) => {
            land(&flight);
            PathProbe::Done(Outcome::Unavailable("cannot start a probe thread"))
        }
    }
}

/// Step 2 of [`connect_unix_path_guarded`], on the helper thread: the
/// lookup and connect in a child process. A path too long for `sun_path`
/// is reached from its parent directory (the child's working directory).
pub(super) fn connect_path_in_child(path: &Path) -> Outcome {
    let bytes = path.as_os_str().as_bytes();
    let started = match UnixAddr::new(bytes) {
        Some(addr) => sys::lookup::ChildConnect::start(None, &addr),
        None => {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Outcome::ConnectError(libc::ENAMETOOLONG);
            };
            let (Ok(dir), Some(addr)) = (sys::cpath(parent), UnixAddr::new(name.as_bytes())) else {
                return Outcome::ConnectError(libc::ENAMETOOLONG);
            };
            sys::lookup::ChildConnect::start(Some(&dir), &addr)
        }
    };
    match started.map(sys::lookup::ChildConnect::wait) {
        Ok(Ok(0)) => Outcome::Serving,
        Ok(Ok(errno)) => classify(errno),
        Ok(Err(_)) => Outcome::Unavailable("the lookup process ended without an answer"),
        // No child process allowed here (a seccomp filter refusing clone3
        // and clone with CLONE_PIDFD, kernels before 5.2): the lookup on
        // this helper thread, as before (a process whose thread is stuck
        // behind another lookup then cannot exit until it returns).
        Err(e) if [libc::ENOSYS, libc::EPERM, libc::EINVAL].contains(&errno_of(&e)) => {
            connect_path_blocking(path)
        }
        Err(e) => classify(errno_of(&e)),
    }
}

/// The body of a path probe made directly (may block in the path lookup):
/// for the marker's own `sidecar.sock` where `openat2` is missing, and on a
/// helper thread where no child process can be made.
pub(super) fn connect_path_blocking(path: &Path) -> Outcome {
    let bytes = path.as_os_str().as_bytes();
    if UnixAddr::new(bytes).is_some() {
        return connect_unix(bytes, &mut sys::MarkerFds::default());
    }
    // Too long for sun_path: through the parent directory's descriptor.
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Outcome::ConnectError(libc::ENAMETOOLONG);
    };
    match sys::open(parent, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) {
        Ok(dir) => {
            let mut short = sys::fd_path(dir.as_fd()).into_bytes();
            short.push(b'/');
            short.extend_from_slice(name.as_bytes());
            connect_unix(&short, &mut sys::MarkerFds::default())
        }
        Err(e) => classify(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// Most path lookups that may be in flight at once, process-wide (each
/// holds a helper thread and a child process until its lookup returns).
pub(crate) const MAX_PATH_THREADS: usize = 64;

/// One path lookup in flight, shared by every probe of that path.
pub(crate) struct Flight {
    pub(super) started: Instant,
    pub(super) answer: Mutex<Option<Outcome>>,
    pub(super) answered: Condvar,
}

impl Flight {
    pub(super) fn has_answered(&self) -> bool {
        self.answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub(super) fn answer(&self, outcome: Outcome) {
        *self.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.answered.notify_all();
    }

    /// The answer, waiting for it until `deadline`.
    pub(super) fn wait_until(&self, deadline: Instant) -> Option<Outcome> {
        let mut answer = self.answer.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(o) = *answer {
                return Some(o);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            answer = self
                .answered
                .wait_timeout(answer, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The path lookups in flight in this process (at most
/// [`MAX_PATH_THREADS`], so a list).
pub(super) static FLIGHTS: Mutex<Vec<(PathBuf, Arc<Flight>)>> = Mutex::new(Vec::new());
static FLIGHT_ENDED: Condvar = Condvar::new();

/// Takes `flight` out of [`FLIGHTS`]: its lookup returned.
pub(super) fn land(flight: &Arc<Flight>) {
    let mut flights = FLIGHTS.lock().unwrap_or_else(|p| p.into_inner());
    flights.retain(|(_, f)| !Arc::ptr_eq(f, flight));
    FLIGHT_ENDED.notify_all();
}

pub(super) enum PathProbe {
    Done(Outcome),
    Waiting(Arc<Flight>),
}
