//! What tells a watcher to look again, besides the clock and the pidfds
//! (`pids.rs`): inotify watches on `run/`, on each marker directory and
//! (while `run/` is missing) on the runtime directory.
//!
//! [`Wds`] is the watch-descriptor bookkeeping and [`Wds::on_event`] what
//! each inotify event asks for, both pure; [`Watches`] holds the inotify
//! instance around them.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use super::schedule::Degradation;
use crate::sidecar_markers::options::is_valid_sandbox_id;
use crate::sidecar_markers::read::{METADATA, PID_FILE, SOCKET_FILE};
use crate::sidecar_markers::sys;
use crate::sidecar_markers::sys::inotify::Inotify;

/// On `run/`: entries created, deleted or moved in or out; `run/` itself
/// deleted or moved.
const RUN_MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_EXCL_UNLINK;

/// On a marker directory: `metadata.toml` written or replaced,
/// `sidecar.sock` or `sidecar.pid` created or removed, or their attributes
/// changed (a `chmod` or `chown` of `sidecar.sock` changes who may
/// connect: the probe rounds judge a known socket file without looking it
/// up again); the directory deleted.
const MARKER_MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_ATTRIB
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_DONT_FOLLOW
    | libc::IN_EXCL_UNLINK;

/// On the runtime directory while `run/` is missing: `run/` created or
/// moved in; the runtime directory deleted.
const PARENT_MASK: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_EXCL_UNLINK;

/// The inotify watches held, by watch descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Wds {
    /// On `run/`.
    run: Option<i32>,
    /// While `run/` is missing: on the runtime directory, for its creation.
    parent: Option<i32>,
    /// On each marker directory: wd → sandbox id, and back.
    dirs: HashMap<i32, String>,
    names: HashMap<String, i32>,
}

/// What an inotify event asks the watcher to look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Look {
    Nothing,
    /// Events were lost (`IN_Q_OVERFLOW`): resync.
    Overflow,
    /// Scan all of `run/` again (quietly).
    Rescan,
    /// Judge this marker again.
    Marker(String),
}

/// An inotify event's effect beyond the maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Reaction {
    /// A watch the maps have forgotten, to remove in the kernel too.
    pub unwatch: Option<i32>,
    pub look: Look,
}

impl Reaction {
    fn look(look: Look) -> Reaction {
        Reaction {
            unwatch: None,
            look,
        }
    }
}

impl Wds {
    /// Takes note of one inotify event and says what it asks for:
    ///
    /// - `IN_Q_OVERFLOW` (from any watch): a resync;
    /// - on the runtime directory: `run` created or moved in, or the
    ///   directory itself gone (`IN_DELETE_SELF`, `IN_IGNORED`, which also
    ///   ends the watch): a rescan;
    /// - on `run/` itself gone or moved (`IN_DELETE_SELF`, `IN_MOVE_SELF`,
    ///   `IN_IGNORED`): the watch is forgotten (and removed, unless the
    ///   kernel did with `IN_IGNORED`) and `run/` rescanned;
    /// - on an entry of `run/`: a marker deleted or moved out loses its
    ///   watch; a valid sandbox id is judged again (hidden names, names that
    ///   are not UTF-8 or not sandbox ids are not markers);
    /// - on a marker directory: `IN_IGNORED` ends its watch; its
    ///   `metadata.toml`, `sidecar.sock` or `sidecar.pid`, or itself
    ///   deleted: the marker is judged again;
    /// - anything else (a watch already forgotten): nothing.
    pub fn on_event(&mut self, wd: i32, mask: u32, name: &[u8]) -> Reaction {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            return Reaction::look(Look::Overflow);
        }
        if Some(wd) == self.parent {
            if mask & libc::IN_IGNORED != 0 {
                self.parent = None;
            }
            if name == b"run" || mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF) != 0 {
                return Reaction::look(Look::Rescan);
            }
            return Reaction::look(Look::Nothing);
        }
        if Some(wd) == self.run {
            if mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
                // run/ itself went away (or moved): forget the watch and
                // look at the path again.
                self.run = None;
                return Reaction {
                    unwatch: (mask & libc::IN_IGNORED == 0).then_some(wd),
                    look: Look::Rescan,
                };
            }
            if name.is_empty() || name.starts_with(b".") {
                return Reaction::look(Look::Nothing);
            }
            let Ok(name) = std::str::from_utf8(name) else {
                return Reaction::look(Look::Nothing);
            };
            let mut unwatch = None;
            if mask & (libc::IN_MOVED_FROM | libc::IN_DELETE) != 0
                && let Some(old) = self.names.remove(name)
            {
                self.dirs.remove(&old);
                unwatch = Some(old);
            }
            let look = if is_valid_sandbox_id(name.as_bytes()) {
                Look::Marker(name.to_owned())
            } else {
                Look::Nothing
            };
            return Reaction { unwatch, look };
        }
        let Some(marker) = self.dirs.get(&wd).cloned() else {
            return Reaction::look(Look::Nothing);
        };
        if mask & libc::IN_IGNORED != 0 {
            self.dirs.remove(&wd);
            if self.names.get(&marker) == Some(&wd) {
                self.names.remove(&marker);
            }
            return Reaction::look(Look::Marker(marker));
        }
        let relevant = [METADATA, SOCKET_FILE, PID_FILE]
            .iter()
            .any(|f| f.to_bytes() == name);
        if relevant || mask & libc::IN_DELETE_SELF != 0 {
            return Reaction::look(Look::Marker(marker));
        }
        Reaction::look(Look::Nothing)
    }

    /// The marker directory `name` is watched as `wd` (the same wd again
    /// for the same directory; a new one for a directory replaced, whose
    /// old wd is forgotten here).
    fn marker_watched(&mut self, name: &str, wd: i32) {
        if let Some(old) = self.names.insert(name.to_owned(), wd)
            && old != wd
        {
            self.dirs.remove(&old);
        }
        self.dirs.insert(wd, name.to_owned());
    }
}

/// The inotify instance (`None` where inotify is unavailable) and its
/// watches.
pub(super) struct Watches {
    inotify: Option<Inotify>,
    wds: Wds,
    /// Watch limit reached: judge everything at the probe interval.
    watch_limit: bool,
}

impl Watches {
    pub fn new(inotify: Option<Inotify>) -> Watches {
        Watches {
            inotify,
            wds: Wds::default(),
            watch_limit: false,
        }
    }

    /// Whether an inotify instance is held.
    pub fn has_inotify(&self) -> bool {
        self.inotify.is_some()
    }

    /// An inotify instance had after all (the instance limit was lifted):
    /// watches are added from the next scan on.
    pub fn set_inotify(&mut self, inotify: Inotify) {
        self.wds = Wds::default();
        self.watch_limit = false;
        self.inotify = Some(inotify);
    }

    /// Before a full scan while at the watch limit: try watching the
    /// markers again (the limit may have been raised, or watches freed).
    /// The first `ENOSPC` sets it again.
    pub fn retry_watch_limit(&mut self) {
        self.watch_limit = false;
    }

    /// Whether the watch limit was met since the last
    /// [`Self::retry_watch_limit`].
    pub fn at_watch_limit(&self) -> bool {
        self.watch_limit
    }

    /// Reads inotify events into `buf`; `None` without inotify.
    pub fn read(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        self.inotify.as_ref().map(|i| i.read(buf))
    }

    /// [`Wds::on_event`], removing in the kernel the watch it forgets.
    pub fn on_event(&mut self, wd: i32, mask: u32, name: &[u8]) -> Look {
        let r = self.wds.on_event(wd, mask, name);
        if let Some(wd) = r.unwatch {
            self.rm_watch(wd);
        }
        r.look
    }

    fn rm_watch(&self, wd: i32) {
        if let Some(inotify) = &self.inotify {
            // A stale wd only yields EINVAL.
            let _ = inotify.rm_watch(wd);
        }
    }

    /// Judging everything at the probe interval instead of on events:
    /// without inotify, with neither `run/` nor the runtime directory
    /// watched, or at the watch limit.
    pub fn polling(&self) -> bool {
        self.inotify.is_none()
            || (self.wds.run.is_none() && self.wds.parent.is_none())
            || self.watch_limit
    }

    /// Before a full scan: while `run/` is not watched, a watch on the
    /// runtime directory, so `run/` being created is seen even between
    /// the look and the watch (best effort: without it, a missing `run/`
    /// is looked for every probe interval).
    pub fn watch_parent(&mut self, run_path: &Path) {
        if self.wds.run.is_some() || self.wds.parent.is_some() {
            return;
        }
        let (Some(inotify), Some(parent)) = (self.inotify.as_ref(), run_path.parent()) else {
            return;
        };
        let Ok(path) = sys::cpath(parent) else { return };
        if let Ok(wd) = inotify.add_watch(&path, PARENT_MASK) {
            self.wds.parent = Some(wd);
        }
    }

    /// `run/` is missing: its watch (if any) is removed.
    pub fn forget_run(&mut self) {
        if let Some(wd) = self.wds.run.take() {
            self.rm_watch(wd);
        }
    }

    /// `run/` is open as `run`: watched from now on (through the open
    /// descriptor, so the watch is on the directory that was opened; by
    /// `run_path` only where /proc is missing), and the runtime directory
    /// no longer. A failure is a degradation.
    pub fn watch_run(&mut self, run: BorrowedFd<'_>, run_path: &Path) -> Option<Degradation> {
        let degraded = self.add_run_watch(run, run_path);
        if self.wds.run.is_some()
            && let Some(wd) = self.wds.parent.take()
        {
            self.rm_watch(wd);
        }
        degraded
    }

    fn add_run_watch(&mut self, run: BorrowedFd<'_>, run_path: &Path) -> Option<Degradation> {
        if self.wds.run.is_some() {
            return None;
        }
        let inotify = self.inotify.as_ref()?;
        let via_fd =
            CString::new(format!("/proc/thread-self/fd/{}", run.as_raw_fd())).expect("no NUL");
        let r = inotify.add_watch(&via_fd, RUN_MASK).or_else(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                let p = sys::cpath(run_path)?;
                inotify.add_watch(&p, RUN_MASK | libc::IN_DONT_FOLLOW)
            } else {
                Err(e)
            }
        });
        match r {
            Ok(wd) => {
                self.wds.run = Some(wd);
                None
            }
            Err(e) => Some(Degradation {
                key: "watch-run",
                reason: watch_failure("run/", &e),
            }),
        }
    }

    /// Whether `run/` is watched.
    pub fn watching_run(&self) -> bool {
        self.wds.run.is_some()
    }

    /// Whether the marker directory `name` is watched.
    pub fn watches_marker(&self, name: &str) -> bool {
        self.wds.names.contains_key(name)
    }

    /// Watches the marker directory `name` of the open `run/` (again: a
    /// directory replaced gets a new watch). Reaching the watch limit is a
    /// degradation, and no marker is watched after it; a marker gone, not
    /// a directory or not ours to watch is simply not watched (the probe
    /// rounds judge it all the same).
    pub fn watch_marker(&mut self, run: BorrowedFd<'_>, name: &CStr) -> Option<Degradation> {
        let inotify = self.inotify.as_ref()?;
        if self.watch_limit {
            return None;
        }
        let mut path = format!("/proc/thread-self/fd/{}/", run.as_raw_fd()).into_bytes();
        path.extend_from_slice(name.to_bytes());
        let path = CString::new(path).expect("no NUL");
        let name = name.to_str().ok()?;
        match inotify.add_watch(&path, MARKER_MASK) {
            Ok(wd) => {
                self.wds.marker_watched(name, wd);
                None
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                self.watch_limit = true;
                Some(Degradation {
                    key: "watch-marker",
                    reason: watch_failure("a marker directory", &e),
                })
            }
            Err(_) => None,
        }
    }
}

fn watch_failure(what: &str, e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        format!(
            "the inotify watch limit is reached watching {what} (fs.inotify.max_user_watches): \
             judging every marker each probe interval"
        )
    } else {
        format!("cannot watch {what} ({e}): judging every marker each probe interval")
    }
}

#[cfg(test)]
#[path = "triggers_tests.rs"]
mod tests;
