//! Stopping a sidecar: identity-checked signalling through a pidfd.
//!
//! Signalling by pid number is how supervisors kill the wrong process: the
//! pid may have been reused since the marker was written. [`stop`] signals
//! only a process it has proved to be the marker's, and only through a
//! pidfd, which names one process for as long as it is held:
//!
//! 1. read the marker and judge it with the one liveness function
//!    ([`process::resolve`], the one liveness function); a process already gone (or a zombie, or from
//!    another boot) is not signalled, its marker is collected;
//! 2. refuse what must never be signalled: an identity that cannot be
//!    proved (unless the caller opts out), a reused pid, pid 1, the
//!    caller's own pid, a pid beyond `pid_max`;
//! 3. `pidfd_open(pid)`, then judge the identity **again**: the process the
//!    pidfd pins is the one `/proc/<pid>` showed after it was opened, so a
//!    pid reused between step 1 and the open is caught here;
//! 4. `pidfd_send_signal`, then wait for the exit by polling the pidfd up to
//!    the grace period; if still alive and allowed, `SIGKILL` through the
//!    same pidfd and wait again (at most [`KILL_WAIT`]);
//! 5. once it exited, collect the marker as `gc_stale` would (each removal
//!    reported by exactly one caller).
//!
//! There is no fallback to `kill(pid, …)`: without pidfds nothing is sent.
//! Nothing here waits for (reaps) a process: the sidecar's parent does.
//! Concurrent stops of one marker are serialised by a lock in a directory
//! only the caller can write (`stop_lock`), never by one the marker's owner
//! could hold: one signals, the others wait for the exit.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use super::error::{Result, StackError};
use super::model::MAX_PID;
use super::options::{KILL_WAIT, StopOptions};
use super::process::{self, Identity, Liveness};
use super::read::{self, Marker};
use super::signal_names::signal_name;
use super::stop_lock::{self, StopLock};
use super::sys::pidfd::Pidfd;
use super::trust::Trust;
use super::{assess, authority, gc, host_pids, probe, sys};

/// What one [`stop`] did. Serializes as the JSON every surface returns:
/// `{"sandbox_id","pid","signals","exited","killed","collected","waited_ms"}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StopOutcome {
    pub sandbox_id: String,
    pub pid: u32,
    /// Names of the signals this call sent, in order (`["SIGTERM",
    /// "SIGKILL"]`); empty when it sent none (the process was already gone,
    /// or another stop of the same marker was under way).
    pub signals: Vec<String>,
    /// The process has exited (proved through the pidfd, or by the
    /// liveness judgement for a process already gone).
    pub exited: bool,
    /// This call sent `SIGKILL`.
    pub killed: bool,
    /// This call removed the marker. `false` when the sidecar removed its
    /// own marker on the way out, another caller collected it, or the
    /// process is still running.
    pub collected: bool,
    /// Milliseconds spent waiting for the exit.
    pub waited_ms: u64,
}

/// Stops the sidecar of `sandbox_id` under `runtime_dir`; see the module
/// documentation for the sequence. `Ok(None)` when there is no such marker.
/// A refusal is an error with its own code, and then nothing was signalled.
/// A process still running after the grace period with `kill: false` (or
/// [`KILL_WAIT`] after `SIGKILL`) gives an outcome with `exited: false`,
/// its marker kept.
pub fn stop(
    runtime_dir: impl AsRef<Path>,
    sandbox_id: &str,
    opts: &StopOptions,
) -> Result<Option<StopOutcome>> {
    opts.validate()?;
    // Refused on an untrusted directory (docs/design.md, "Trust").
    let (dir, need) = (runtime_dir.as_ref(), Some("stop a sidecar"));
    read::with_marker(dir, sandbox_id, need, |run, name, marker, trust| {
        Job::new(run, name, marker, trust, opts).run()
    })?
    .transpose()
    .map(Option::flatten)
}

/// One stop under way.
struct Job<'a> {
    run: BorrowedFd<'a>,
    name: &'a CString,
    marker: Marker,
    opts: &'a StopOptions,
    /// The non-root owners of the directory: they bound what may be done.
    bounding: authority::Bounding,
}

impl<'a> Job<'a> {
    /// The stop of the marker `name` of `run` as read, in a directory of
    /// `trust`, with `opts`.
    fn new(
        run: BorrowedFd<'a>,
        name: &'a CString,
        marker: Marker,
        trust: &Trust,
        opts: &'a StopOptions,
    ) -> Job<'a> {
        let bounding = authority::Bounding::new(trust.bounding_owners());
        Job {
            run,
            name,
            marker,
            opts,
            bounding,
        }
    }
}

/// What a liveness judgement allows.
enum Go {
    /// The process is provably gone: signal nothing, collect.
    Gone,
    /// Proceed (identity verified, or the caller opted out).
    Signal,
}

impl Job<'_> {
    fn pid(&self) -> u32 {
        self.marker.meta.pid
    }

    fn outcome(&self) -> StopOutcome {
        StopOutcome {
            sandbox_id: self.marker.meta.sandbox_id.clone(),
            pid: self.pid(),
            signals: Vec::new(),
            exited: false,
            killed: false,
            collected: false,
            waited_ms: 0,
        }
    }

    /// `Ok(None)`: the marker was gone by the time its claim was checked
    /// (another stop or a collector removed it since it was read): there
    /// is no such marker, and nothing was signalled.
    fn run(&self) -> Result<Option<StopOutcome>> {
        // 1. The one liveness function, before anything else. Where the
        //    identity fields cannot prove the process, the listener of the
        //    marker's own socket may: a pidfd of it, its pid the recorded one.
        //    For a marker of another pid namespace, the process is found
        //    under the reader's pid for it (`here`), which is what is
        //    pinned, checked and signalled.
        let (liveness, here) = self.resolve();
        let listener = self.socket_proof(liveness);
        let (listener, here) = match (listener, here) {
            (Some((pidfd, pid)), _) => (Some(pidfd), pid),
            (None, here) => {
                if let Go::Gone = self.judge(liveness)? {
                    return self.gone().map(Some);
                }
                match here {
                    Some(here) => (None, here),
                    // Alive always comes with the pid it was found under;
                    // never take "not found" for "gone" here.
                    None => {
                        return Err(StackError::IdentityUnverifiable {
                            path: self.marker.path.clone(),
                            sandbox_id: self.marker.meta.sandbox_id.clone(),
                            pid: self.pid(),
                            reason: "its process was not found here".to_owned(),
                        });
                    }
                }
            }
        };
        // 2. Pids never signalled, whatever the marker says; then whose
        //    claim the marker is at all.
        self.refuse_pid(here)?;
        let owner = match self.marker.owner(self.run, self.name) {
            Ok(owner) => owner,
            // Removed since it was read (by a concurrent stop that saw the
            // process exit, or a collector): no marker, no claim. Never
            // `not_authorized`, which would blame the marker's owner.
            Err(_) if self.marker_is_gone()? => return Ok(None),
            Err(why) => return Err(self.not_authorized(why)),
        };
        self.pin_and_stop(here, listener, owner).map(Some)
    }

    /// Whether the marker's directory no longer exists under its name.
    fn marker_is_gone(&self) -> Result<bool> {
        match sys::lstatat(self.run, self.name) {
            Ok(_) => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(true),
            Err(e) => Err(StackError::io("stat", &self.marker.path, e)),
        }
    }

    /// Steps 3 to 5 for the process found `here` (pinned already when
    /// `listener` is its pidfd), for a marker claimed by `owner`.
    fn pin_and_stop(
        &self,
        here: u32,
        listener: Option<OwnedFd>,
        owner: u32,
    ) -> Result<StopOutcome> {
        // 3. Pin the process, then prove again that it is the marker's.
        let by_socket = listener.is_some();
        let pidfd = match listener {
            Some(pidfd) => Pidfd::from_owned(pidfd),
            None => match Pidfd::open(here) {
                Ok(fd) => fd,
                // Exited since the judgement: nothing to signal.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return self.gone(),
                Err(e) => return Err(self.pidfd_error("pidfd_open", e)),
            },
        };
        let (again, here_again) = self.resolve();
        if by_socket {
            // The listener, pinned, must still be the process found and
            // the fields must still not prove it stopped.
            if again.is_stale() || probe::pidfd_pid(pidfd.as_fd()) != Some(here) {
                return self.gone();
            }
        } else if let Go::Gone = self.judge(again)? {
            return self.gone();
        } else if here_again != Some(here) {
            // Another process now answers for the recorded pid.
            return self.gone();
        }
        // 4. Whether the marker's authority reaches the pinned process.
        let creds = match process::credentials(here) {
            Ok(Some(c)) => c,
            Ok(None) => return self.gone(),
            Err(e) => {
                return Err(self.not_authorized(format!(
                    "its credentials cannot be read from /proc/{here}/status ({e})",
                )));
            }
        };
        authority::may_signal(
            self.bounding,
            owner,
            here,
            &creds,
            &process::own_ancestors(),
        )
        .map_err(|why| self.not_authorized(why))?;
        // Still running after those reads, the pinned process held the pid
        // throughout them (a live process's pid cannot be reused), so the
        // identity and credentials just read are the pinned process's own.
        if pidfd
            .poll_exit(Duration::ZERO)
            .map_err(|e| self.poll_error(e))?
        {
            return self.gone();
        }
        // One signaller per marker; the others wait for the same exit.
        match self.lock()? {
            Some(_lock) => self.signal_and_wait(&pidfd),
            None => self.follow(&pidfd),
        }
    }

    /// The marker judged by the one liveness function
    /// ([`assess::liveness`]), and the pid that names its process here.
    fn resolve(&self) -> (Liveness, Option<u32>) {
        let loc = read::Loc::Entry {
            run: self.run,
            name: self.name,
        };
        let mut fds = sys::MarkerFds::default();
        assess::liveness(loc, &self.marker, &mut fds, &process::Foreign::now())
    }

    /// The proof the marker's own socket gives where the identity fields
    /// give none (nothing recorded, `/proc` withheld, no namespace
    /// recorded): the listener of `<marker>/sidecar.sock`, pinned by
    /// `SO_PEERPIDFD`, whose pid is the recorded one. Never consulted for a
    /// verdict the fields decide (verified, reused, gone, another boot).
    /// For a marker of another pid namespace the listener (its pid already
    /// the reader's, as the kernel gives it) must be in the recorded
    /// namespace under the recorded pid; then it proves the process also
    /// where `/proc` cannot be walked. Gives the pidfd and the reader's pid.
    fn socket_proof(&self, liveness: Liveness) -> Option<(OwnedFd, u32)> {
        let (own_ns, _) = process::own_namespaces();
        let foreign_ns = self
            .marker
            .meta
            .pid_ns_inode
            .filter(|&ns| own_ns.is_some_and(|own| own != ns));
        let undecided = matches!(
            liveness,
            Liveness::Alive(Identity::NotRecorded | Identity::Unchecked(_) | Identity::Foreign(_))
        ) || (foreign_ns.is_some()
            && matches!(liveness, Liveness::Unverifiable(_))
            && !process::is_boot_unproved(&self.marker.meta));
        if !undecided
            || !matches!(
                self.marker.endpoint,
                super::endpoint::Endpoint::MarkerSocket
            )
        {
            return None;
        }
        let loc = read::Loc::Entry {
            run: self.run,
            name: self.name,
        };
        let (pidfd, pid) = probe::socket_listener(loc)?;
        // A marker that records no namespace may come from a container
        // (writers that record no identity at all): the listener is then
        // the recorded process when its pid in its own namespace is the
        // recorded one.
        let proved = match foreign_ns {
            Some(ns) => host_pids::is_at(pid, ns, self.pid()),
            None if self.marker.meta.pid_ns_inode.is_none() => {
                pid == self.pid() || host_pids::own_ns_pid(pid) == Some(self.pid())
            }
            None => pid == self.pid(),
        };
        proved.then_some((pidfd, pid))
    }

    fn not_authorized(&self, reason: String) -> StackError {
        StackError::NotAuthorized {
            path: self.marker.path.clone(),
            sandbox_id: self.marker.meta.sandbox_id.clone(),
            pid: self.pid(),
            reason,
        }
    }

    /// Maps a liveness verdict to what stop may do, or to its refusal. The
    /// opt-out acts only where the identity check cannot be made at all;
    /// it never overrides a proof (docs/design.md, "Trust").
    fn judge(&self, liveness: Liveness) -> Result<Go> {
        let unverifiable = |reason: &str| StackError::IdentityUnverifiable {
            path: self.marker.path.clone(),
            sandbox_id: self.marker.meta.sandbox_id.clone(),
            pid: self.pid(),
            reason: reason.to_owned(),
        };
        match liveness {
            Liveness::Gone | Liveness::Zombie | Liveness::OtherBoot => Ok(Go::Gone),
            Liveness::Reused => Err(StackError::PidReused {
                path: self.marker.path.clone(),
                sandbox_id: self.marker.meta.sandbox_id.clone(),
                pid: self.pid(),
            }),
            Liveness::Alive(Identity::Verified) => Ok(Go::Signal),
            Liveness::Alive(id) if id.opt_out_may_override() && !self.opts.verify_identity => {
                Ok(Go::Signal)
            }
            Liveness::Alive(Identity::NotRecorded) => Err(unverifiable(
                "the marker records no boot_id and pid_start_ticks",
            )),
            Liveness::Alive(Identity::Unchecked(why) | Identity::Foreign(why))
            | Liveness::Unverifiable(why) => Err(unverifiable(why)),
        }
    }

    /// `here`: the reader's pid of the process (the recorded one, unless
    /// the marker comes from another pid namespace).
    fn refuse_pid(&self, here: u32) -> Result<()> {
        let pid = self.pid();
        match never_signalled(here, std::process::id(), pid_max()) {
            Some(reason) => Err(StackError::Refused {
                path: self.marker.path.clone(),
                sandbox_id: self.marker.meta.sandbox_id.clone(),
                pid,
                reason,
            }),
            None => Ok(()),
        }
    }

    fn pidfd_error(&self, action: &'static str, e: io::Error) -> StackError {
        match e.raw_os_error() {
            Some(libc::ENOSYS | libc::ENODEV | libc::EPERM) if action == "pidfd_open" => {
                StackError::PidfdUnavailable {
                    path: self.marker.path.clone(),
                    sandbox_id: self.marker.meta.sandbox_id.clone(),
                    pid: self.pid(),
                    action,
                    source: e,
                }
            }
            Some(libc::ENOSYS) => StackError::PidfdUnavailable {
                path: self.marker.path.clone(),
                sandbox_id: self.marker.meta.sandbox_id.clone(),
                pid: self.pid(),
                action,
                source: e,
            },
            _ => StackError::io(action, format!("/proc/{}", self.pid()), e),
        }
    }

    /// Nothing signalled: the process is gone; collect its marker.
    fn gone(&self) -> Result<StopOutcome> {
        let mut out = self.outcome();
        out.exited = true;
        out.collected = self.collect()?;
        Ok(out)
    }

    /// Takes the marker exactly as `gc_stale` does: only the marker that was
    /// judged (the same `metadata.toml`, inode and bytes, as
    /// `gc::holds_judged` decides: a sidecar restarted under the same id
    /// during the grace period keeps its new marker), only when the bounding
    /// owners could remove it themselves, reported by exactly one caller.
    fn collect(&self) -> Result<bool> {
        let owner = self.marker.owner(self.run, self.name);
        if authority::may_remove(self.bounding, owner).is_err() {
            return Ok(false);
        }
        gc::take(self.run, self.name, Some(self.marker.meta_id))
            .map_err(|e| StackError::io("remove stopped marker", &self.marker.path, e))
    }

    /// Takes the stop lock of this marker, in a directory only the caller
    /// can write (`stop_lock`): never a lock on anything the marker's
    /// author can open, so its owner cannot make this call wait. `None`
    /// when another stop of the caller's holds it, or the marker judged is
    /// no longer there (it was collected, or replaced by another): either
    /// way this call must not signal.
    fn lock(&self) -> Result<Option<StopLock>> {
        let lock = match stop_lock::take(self.run, self.name) {
            stop_lock::Taken::Go(lock) => lock,
            stop_lock::Taken::Busy => return Ok(None),
        };
        let dir = match sys::openat(self.run, self.name, sys::DIR_FLAGS, 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(StackError::io("open", &self.marker.path, e)),
        };
        // Still the marker judged (same file, same bytes: see
        // gc::holds_judged), not one re-created under its name?
        match gc::holds_judged(dir.as_fd(), read::METADATA, &self.marker.meta_id) {
            Ok(true) => Ok(Some(lock)),
            Ok(false) => Ok(None),
            Err(e) => Err(StackError::io(
                "read",
                self.marker.path.join("metadata.toml"),
                e,
            )),
        }
    }

    /// The signaller: first signal, grace, `SIGKILL` if allowed, collect.
    fn signal_and_wait(&self, pidfd: &Pidfd) -> Result<StopOutcome> {
        let mut out = self.outcome();
        let start = Instant::now();
        let mut exited = match self.send(pidfd, self.opts.signal, &mut out)? {
            false => true,
            true => pidfd
                .poll_exit(self.opts.grace)
                .map_err(|e| self.poll_error(e))?,
        };
        if !exited && self.opts.kill && self.opts.signal != libc::SIGKILL {
            match self.send(pidfd, libc::SIGKILL, &mut out)? {
                false => exited = true,
                true => exited = pidfd.poll_exit(KILL_WAIT).map_err(|e| self.poll_error(e))?,
            }
        } else if !exited && self.opts.signal == libc::SIGKILL {
            exited = pidfd.poll_exit(KILL_WAIT).map_err(|e| self.poll_error(e))?;
        }
        out.waited_ms = millis(start.elapsed());
        out.exited = exited;
        if exited {
            out.collected = self.collect()?;
        }
        Ok(out)
    }

    /// Another stop of this marker (by the caller's own euid: the lock is
    /// where nobody else can write) is under way: wait for the exit it
    /// causes, up to this call's own grace period (plus [`KILL_WAIT`] with
    /// `kill`), then try to collect too (exactly one of us reports the
    /// removal). Should that stop end with the process still running (it
    /// was `kill: false`, or gave up), its lock is free: this call takes
    /// it and stops the process itself, as its own options say. Otherwise
    /// the outcome says what happened: no signal sent by this call, and
    /// `exited: false` when the process outlived the wait.
    fn follow(&self, pidfd: &Pidfd) -> Result<StopOutcome> {
        let mut out = self.outcome();
        let start = Instant::now();
        let mut bound = self.opts.grace;
        if self.opts.kill {
            bound += KILL_WAIT;
        }
        let deadline = start + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            out.exited = pidfd
                .poll_exit(left.min(stop_lock::RETRY_EVERY))
                .map_err(|e| self.poll_error(e))?;
            if out.exited || Instant::now() >= deadline {
                break;
            }
            if let Some(_lock) = self.lock()? {
                let mut took_over = self.signal_and_wait(pidfd)?;
                took_over.waited_ms = millis(start.elapsed());
                return Ok(took_over);
            }
        }
        out.waited_ms = millis(start.elapsed());
        if out.exited {
            out.collected = self.collect()?;
        }
        Ok(out)
    }

    /// Sends `signal` through the pidfd; `Ok(false)` when the process had
    /// already exited (nothing sent).
    fn send(&self, pidfd: &Pidfd, signal: i32, out: &mut StopOutcome) -> Result<bool> {
        match pidfd.send_signal(signal) {
            Ok(()) => {
                out.signals.push(signal_name(signal));
                out.killed |= signal == libc::SIGKILL;
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            // The kernel's word on the caller's own authority.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(self.not_authorized(format!(
                "the caller may not signal it ({})",
                io::Error::from_raw_os_error(libc::EPERM)
            ))),
            Err(e) => Err(self.pidfd_error("pidfd_send_signal", e)),
        }
    }

    fn poll_error(&self, e: io::Error) -> StackError {
        StackError::io("wait for the exit of", format!("/proc/{}", self.pid()), e)
    }
}

/// Why `pid` is never signalled, whatever its marker says: pid 1, the
/// caller's own pid (`own`), a pid above the kernel's `pid_max` (when
/// known) or beyond any pid. `None`: it may be.
fn never_signalled(pid: u32, own: u32, pid_max: Option<u32>) -> Option<String> {
    if pid == 1 {
        Some("pid 1 is never signalled".to_owned())
    } else if pid == own {
        Some("it is the caller's own pid".to_owned())
    } else {
        match pid_max {
            Some(max) if pid > max => Some(format!(
                "it is above the kernel's pid_max ({max}), so no process can have it"
            )),
            _ if pid > MAX_PID => Some("it is out of range".to_owned()),
            _ => None,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `/proc/sys/kernel/pid_max`, when readable.
fn pid_max() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
#[path = "stop_tests.rs"]
mod tests;
