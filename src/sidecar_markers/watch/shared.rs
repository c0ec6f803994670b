//! A watcher several threads may step, each with its own deadline: the
//! C ABI's handle and the Python watcher are shared by their callers'
//! threads, and a `next` with a timeout must not wait past it behind
//! another thread's `next` that waits forever. An [`EventFilter`] given
//! at the start is applied inside the step, so that the events it sees
//! are the stream's, in order, whichever thread takes them.
//!
//! The right to step the watcher is a *turn*, taken with a deadline (std's
//! `Mutex` has no timed lock). A step never waits (`next(0)`: an event
//! queued, or the work that is due); between steps the turn is given back
//! and the caller waits for the watcher's descriptor to become readable,
//! which it does exactly when a step may have something. So a waiting
//! thread never holds the turn, and every caller's deadline holds.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Event, Watcher, WatcherOwner};
use crate::sidecar_markers::EventFilter;
use crate::sidecar_markers::error::Result;
use crate::sidecar_markers::sys;

/// A [`Watcher`] shared between threads; see the module docs.
pub struct SharedWatcher {
    owner: WatcherOwner,
    fd: RawFd,
    turn: Mutex<bool>,
    free: Condvar,
    /// Locked only while holding the turn, so never waited for.
    inner: Mutex<Stepped>,
}

/// The watcher and the selection its events pass (`None`: all).
struct Stepped {
    watcher: Watcher,
    filter: Option<EventFilter>,
}

impl Stepped {
    /// The next event the selection passes, without waiting.
    fn step(&mut self) -> Result<Option<Event>> {
        loop {
            match self.watcher.next(Some(Duration::ZERO))? {
                Some(ev) if self.filter.as_mut().is_some_and(|f| !f.admit(&ev)) => {}
                other => return Ok(other),
            }
        }
    }
}

/// A poisoned lock here only guards a flag or a watcher whose own state a
/// panic cannot corrupt for the next call (the core's `next` is retried).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct TurnHeld<'a>(&'a SharedWatcher);

impl Drop for TurnHeld<'_> {
    fn drop(&mut self) {
        *lock(&self.0.turn) = false;
        self.0.free.notify_one();
    }
}

impl SharedWatcher {
    pub fn new(watcher: Watcher) -> SharedWatcher {
        SharedWatcher::filtered(watcher, None)
    }

    /// A shared watcher whose `next` gives only the events `filter`
    /// passes (`None`: every event).
    pub fn filtered(watcher: Watcher, filter: Option<EventFilter>) -> SharedWatcher {
        SharedWatcher {
            owner: watcher.owner(),
            fd: watcher.as_fd().as_raw_fd(),
            turn: Mutex::new(false),
            free: Condvar::new(),
            inner: Mutex::new(Stepped { watcher, filter }),
        }
    }

    /// The watcher's descriptor: readable when `next` may return an event
    /// without waiting (only poll it; it belongs to the watcher).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The next event, waiting until `deadline` at most (`None`: until
    /// there is one), the wait for another thread's step included; `None`
    /// when the deadline passed. In a `fork()` child: the `forked` error,
    /// before any lock is taken (one may be held by a thread that does not
    /// exist there).
    pub fn next(&self, deadline: Option<Instant>) -> Result<Option<Event>> {
        self.owner.check()?;
        loop {
            let Some(turn) = self.take_turn(deadline) else {
                return Ok(None);
            };
            let got = lock(&self.inner).step();
            drop(turn);
            if let Some(ev) = got? {
                return Ok(Some(ev));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            self.wait_readable(deadline);
        }
    }

    /// Waits for the turn until `deadline` (`None`: as long as it takes);
    /// `None` when the deadline passed first.
    fn take_turn(&self, deadline: Option<Instant>) -> Option<TurnHeld<'_>> {
        let mut busy = lock(&self.turn);
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

    /// Waits until the descriptor is readable or `deadline` passes; an
    /// interrupted or failed wait is a short one (the caller steps again).
    fn wait_readable(&self, deadline: Option<Instant>) {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Rounded up, so the wait never ends just before the deadline.
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            }
        };
        let mut pfd = [libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        let _ = sys::poll(&mut pfd, ms);
    }
}
