//! Watching `run/`: a stream of events instead of polling `list`.
//!
//! A [`Watcher`] keeps the state `list` would return and reports each change
//! as an [`Event`]. What tells it to look again:
//!
//! - inotify on `run/` (a marker renamed in, created, deleted or moved out)
//!   and on each marker directory (`metadata.toml` replaced, `sidecar.sock`
//!   or `sidecar.pid` created, removed or their attributes changed);
//! - a pidfd per live sidecar, readable the moment its process exits;
//! - every probe interval, all known markers are judged again (their
//!   endpoints probed concurrently under one deadline; a settled sidecar's
//!   known socket file only matched in the round's one socket-diagnostics
//!   dump: docs/design.md, "Events");
//! - every rescan interval, all of `run/` is scanned again (a safety net).
//!
//! Whatever the trigger, the markers to look at go through the same scan
//! code as `list` (the one liveness function, the same assessment, the same
//! collection with `gc::take`): the watcher only compares the result with
//! what it reported before. When inotify overflows or runs out of watches,
//! or pidfds are unavailable, it says so in a `resync` event, rescans, and
//! reports `synced` once the stream is complete again; without inotify or
//! pidfds it judges everything at the probe interval instead.
//!
//! Everything waits on one epoll descriptor ([`Watcher::as_raw_fd`]): it
//! holds the inotify descriptor, the pidfds, a timerfd armed for the next
//! probe or rescan, and an eventfd that stays readable while events are
//! queued, so the descriptor is readable exactly when [`Watcher::next`] may
//! have something without waiting.
//!
//! # Where each part lives
//!
//! - `mod.rs`: the public API, [`watch`] and [`Watcher`];
//! - `events.rs`: [`Event`], [`GoneReason`] and their JSON
//!   (docs/design.md, "Events");
//! - `options.rs`: [`WatchOptions`], its defaults, [`MAX_WATCH_INTERVAL`]
//!   and the range checks;
//! - `diff.rs`: what was reported so far and its comparison with a new
//!   scan, as events (pure);
//! - `schedule.rs`: when to look again and at what: probe rounds,
//!   rescans, markers waiting, the full scan owed (`resync`), the pause
//!   after a failure, degradations announced once (pure);
//! - `triggers.rs`: the inotify watches and what each inotify event asks
//!   for (the bookkeeping pure);
//! - `pids.rs`: the pidfd per live sidecar;
//! - `engine.rs`: the epoll loop over all of it, the timer and the queue.
//!
//! Every system call goes through the owning types of `sys/` (`epoll.rs`,
//! `inotify.rs`, `timerfd.rs`, `eventfd.rs`, `pidfd.rs`): nothing here
//! handles a raw descriptor.

mod diff;
mod engine;
mod events;
mod options;
mod pids;
mod schedule;
mod shared;
mod triggers;

pub use events::{Event, GoneReason};
pub use options::{MAX_WATCH_INTERVAL, WatchOptions};
pub use shared::SharedWatcher;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use super::error::{Result, StackError};
use super::{SidecarEntry, caller_path};
use engine::Engine;

/// A live view of `run/`; see the module docs.
///
/// `next` takes `&mut self`: one thread at a time. The watcher is `Send`,
/// so it may move between threads. Dropping it closes every descriptor.
///
/// A watcher belongs to the process that created it: after `fork()` the
/// child shares its descriptors (the epoll set, inotify, the timer) with
/// the parent, and reading them would take the parent's events. So `next`
/// from any other process fails with `forked` before touching any of them
/// (see [`WatcherOwner`]); dropping the watcher in the child only closes
/// the child's copies.
pub struct Watcher {
    owner: WatcherOwner,
    engine: Engine,
}

/// The process a [`Watcher`] belongs to: the one that created it.
///
/// Bindings that keep a watcher behind a lock copy this out of it
/// ([`Watcher::owner`]) and [`check`](Self::check) it *before* taking the
/// lock: in a `fork()` child the lock may be held by a thread that does not
/// exist there, and waiting for it would never end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatcherOwner {
    pid: u32,
}

impl WatcherOwner {
    fn current() -> WatcherOwner {
        WatcherOwner {
            pid: std::process::id(),
        }
    }

    /// The id of the process that created the watcher.
    pub fn pid(self) -> u32 {
        self.pid
    }

    /// `Ok` in the process that created the watcher; in any other (a
    /// `fork()` child) the `forked` error. Touches no descriptor and takes
    /// no lock.
    pub fn check(self) -> Result<()> {
        let caller = std::process::id();
        if caller == self.pid {
            Ok(())
        } else {
            Err(StackError::Forked {
                owner: self.pid,
                caller,
            })
        }
    }
}

/// Starts watching `<runtime_dir>/run`. The initial scan happens here: its
/// `appeared` events and one `synced` are queued for [`Watcher::next`].
/// Fails on bad options, or when `run/` exists but cannot be opened or
/// read (a missing `run/` is watched for as an empty directory).
pub fn watch(runtime_dir: impl AsRef<Path>, opts: &WatchOptions) -> Result<Watcher> {
    let runtime_dir = caller_path(runtime_dir.as_ref(), "runtime_dir")?;
    opts.validate()?;
    Ok(Watcher {
        owner: WatcherOwner::current(),
        engine: Engine::start(runtime_dir, opts)?,
    })
}

impl AsFd for Watcher {
    /// The epoll descriptor: readable when [`Watcher::next`] may return an
    /// event without waiting. Only poll it; never read from or close it.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.engine.as_fd()
    }
}

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.engine.as_fd().as_raw_fd()
    }
}

impl Watcher {
    /// The next event: waits at most `timeout` (`None`: until there is
    /// one) and returns `Ok(None)` when it passes. `Some(Duration::ZERO)`
    /// never waits (use it after the descriptor polled readable).
    ///
    /// An error (say, `run/` became unreadable, or out of descriptors) is
    /// not the end: the watcher keeps its state, queues a `resync` and a
    /// later call tries again (after a pause growing from 100 ms up to the
    /// probe interval); `synced` follows once a scan succeeds.
    ///
    /// From a process other than the one that created the watcher (a
    /// `fork()` child) it fails with `forked` and touches nothing: the
    /// parent's stream goes on as if the call had not been made.
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<Event>> {
        self.owner.check()?;
        self.engine.next(timeout)
    }

    /// The process this watcher belongs to (see [`WatcherOwner`]).
    pub fn owner(&self) -> WatcherOwner {
        self.owner
    }

    /// The state the events so far describe: sandbox id → entry.
    pub fn known(&self) -> &BTreeMap<String, SidecarEntry> {
        self.engine.known()
    }

    /// The options the watcher runs with.
    pub fn options(&self) -> &WatchOptions {
        self.engine.options()
    }
}

#[cfg(test)]
mod tests;
