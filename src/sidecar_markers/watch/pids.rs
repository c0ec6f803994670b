//! The other trigger besides inotify (`triggers.rs`) and the clock: a
//! pidfd per sidecar that is not stopped, readable the moment its process
//! exits, registered with the watcher's epoll.
//!
//! At most a *budget* of pidfds is held (three quarters of the descriptor
//! soft limit: see [`budget_for`]), and only for sidecars whose
//! process identity was verified. The others are judged again every probe
//! round, as a sidecar without a pidfd always was. Running out of
//! descriptors opening one shrinks the budget to what is held.
//!
//! Beside each pidfd is kept what the last probe round found of a settled
//! sidecar (see [`Quiet`]): the next rounds judge its socket file by the
//! socket-diagnostics dump without looking it up again, until the marker
//! is judged again in full.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;

use super::schedule::Degradation;
use crate::sidecar_markers::State;
use crate::sidecar_markers::probe::SocketFile;
use crate::sidecar_markers::sys::epoll::Epoll;
use crate::sidecar_markers::sys::pidfd::Pidfd;

/// A settled sidecar as a probe round found it: its own socket file, as
/// the dump names it, and the state reported, which the dump's answer must
/// agree with. Kept until the sidecar is next judged in full, which is the
/// only way its reported state changes and what every trigger that could
/// make its socket file another leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Quiet {
    pub file: SocketFile,
    pub state: State,
}

struct PidWatch {
    token: u64,
    pid: u32,
    fd: Pidfd,
    /// What a probe round found of the settled sidecar (docs/design.md,
    /// "Events"); `None` until then, and again after each full judgement.
    quiet: Option<Quiet>,
}

/// A pidfd per sidecar that is not stopped, each registered with the
/// watcher's epoll under a token of its own, so an exit wakes the watcher.
pub(super) struct Pids {
    by_name: HashMap<String, PidWatch>,
    next_token: u64,
    /// Cleared when the kernel says pidfds are unavailable.
    available: bool,
    /// At most this many pidfds are held.
    budget: usize,
}

/// Descriptors always left to the caller and the watcher's scans, at
/// least: a quarter of the soft limit, and never fewer than this.
const HEADROOM: u64 = 64;

/// The pidfd budget under the soft descriptor limit `soft`: what is left
/// after a quarter of it (at least [`HEADROOM`]) for the caller and the
/// scans: 0 at 64, 768 at 1,024, 15,000 at 20,000, 49,152 at 65,536. A
/// scan that still runs short settles its probes and holds what it could
/// not judge (docs/design.md, "Events").
pub(super) fn budget_for(soft: u64) -> usize {
    let kept = (soft / 4).max(HEADROOM);
    usize::try_from(soft.saturating_sub(kept)).unwrap_or(usize::MAX)
}

impl Pids {
    /// Tokens from `first_token` up are the pidfds'; at most `budget`
    /// are held.
    pub fn new(first_token: u64, budget: usize) -> Pids {
        Pids {
            by_name: HashMap::new(),
            next_token: first_token,
            available: true,
            budget,
        }
    }

    /// A new budget (the limit may have changed); pidfds held beyond it
    /// stay until their sidecars go. `true` when there is room to spare.
    pub fn set_budget(&mut self, budget: usize) -> bool {
        self.budget = budget;
        self.by_name.len() < budget
    }

    /// Whether `name`'s process is pinned by a pidfd (its exit wakes the
    /// watcher).
    pub fn pinned(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// A probe round found the pinned sidecar `name` settled, as `quiet`
    /// (nothing when it is not pinned).
    pub fn set_quiet(&mut self, name: &str, quiet: Quiet) {
        if let Some(p) = self.by_name.get_mut(name) {
            p.quiet = Some(quiet);
        }
    }

    /// Every pinned sidecar a probe round found settled since it was last
    /// judged in full, in no particular order. (Every pinned sidecar is a
    /// known one: a pidfd is held only for a sidecar the last judgement
    /// found, and dropped when it goes.)
    pub fn quiet(&self) -> impl Iterator<Item = (&String, Quiet)> {
        self.by_name
            .iter()
            .filter_map(|(name, p)| Some((name, p.quiet?)))
    }

    #[cfg(test)]
    /// How many pidfds are held.
    pub fn held(&self) -> usize {
        self.by_name.len()
    }

    /// After a scan found the sidecar `name` (`pid`, `state`, its identity
    /// `verified` or not): holds a pidfd for it unless it is stopped or
    /// unverified (a new one when the pid changed), within the budget, and
    /// forgets what a probe round found of it ([`Quiet`]).
    /// Pidfds unavailable, the budget spent, or one that cannot be had, is
    /// a degradation.
    pub fn track(
        &mut self,
        epoll: &Epoll,
        name: &str,
        pid: u32,
        state: State,
        verified: bool,
    ) -> Option<Degradation> {
        if state == State::Stopped || !verified {
            self.release(epoll, name);
            return None;
        }
        if let Some(p) = self.by_name.get_mut(name)
            && p.pid == pid
        {
            // Judged in full: the next probe round looks at its socket
            // file afresh.
            p.quiet = None;
            return None;
        }
        self.release(epoll, name);
        if !self.available {
            return None;
        }
        if self.by_name.len() >= self.budget {
            return Some(over_budget(self.budget, None));
        }
        match Pidfd::open(pid) {
            Ok(fd) => {
                let token = self.next_token;
                self.next_token += 1;
                if epoll.add(fd.as_fd(), token).is_ok() {
                    self.by_name.insert(
                        name.to_owned(),
                        PidWatch {
                            token,
                            pid,
                            fd,
                            quiet: None,
                        },
                    );
                }
                None
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                self.budget = self.by_name.len();
                Some(over_budget(self.budget, Some(&e)))
            }
            Err(e) => {
                let (unavailable, degraded) = open_failure(&e)?;
                if unavailable {
                    self.available = false;
                }
                Some(degraded)
            }
        }
    }

    /// Drops the pidfd of `name`, if one is held.
    pub fn release(&mut self, epoll: &Epoll, name: &str) {
        if let Some(p) = self.by_name.remove(name) {
            let _ = epoll.delete(p.fd.as_fd());
        }
    }

    /// The pidfd of `token` became readable: its sidecar exited. Drops the
    /// pidfd and names the sidecar, to be judged again; `None` for a token
    /// that is not (or no longer) a pidfd's.
    pub fn exited(&mut self, epoll: &Epoll, token: u64) -> Option<String> {
        // A walk over the pidfds held: exits are rare next to the memory
        // a second map of names would keep for every sidecar.
        let name = self
            .by_name
            .iter()
            .find_map(|(name, p)| (p.token == token).then(|| name.clone()))?;
        self.release(epoll, &name);
        Some(name)
    }
}

/// The budget of `budget` pidfds is spent (or `e`, out of descriptors,
/// shrank it).
fn over_budget(budget: usize, e: Option<&io::Error>) -> Degradation {
    let why = match e {
        Some(e) => format!("out of descriptors ({e}) holding {budget} pidfds"),
        None => format!("{budget} pidfds held, the budget under the descriptor limit"),
    };
    Degradation {
        key: "pidfd-budget",
        reason: format!("{why}: the exits of the other sidecars are seen at the probe interval"),
    }
}

/// What a failed `pidfd_open` means: `None` when the process exited since
/// it was judged (or is not ours to see: the next probe round judges it
/// again); otherwise the degradation, and whether pidfds are unavailable
/// altogether (`ENOSYS`, or `EPERM` from a seccomp filter) rather than this
/// once.
fn open_failure(e: &io::Error) -> Option<(bool, Degradation)> {
    match e.raw_os_error() {
        Some(libc::ESRCH) => None,
        Some(libc::ENOSYS | libc::EPERM) => Some((
            true,
            Degradation {
                key: "pidfd",
                reason: format!(
                    "pidfds are unavailable ({e}): exits are seen at the probe interval"
                ),
            },
        )),
        _ => Some((
            false,
            Degradation {
                key: "pidfd-open",
                reason: format!(
                    "cannot hold a pidfd for every sidecar ({e}): some exits are seen at the probe interval"
                ),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::Duration;

    use crate::sidecar_markers::sys::epoll::Events;

    const FIRST: u64 = 3;

    fn sleeper() -> Child {
        Command::new("sleep").arg("60").spawn().unwrap()
    }

    fn ready(epoll: &Epoll, timeout: Duration) -> Vec<u64> {
        let mut events = Events::default();
        epoll.wait(&mut events, timeout).unwrap();
        events.tokens().collect()
    }

    /// A live sidecar's pidfd is held once, wakes the epoll when it exits,
    /// and is dropped then: the exit names the sidecar once.
    #[test]
    fn an_exit_wakes_the_epoll_once_with_the_sidecars_name() {
        let epoll = Epoll::new().unwrap();
        let mut pids = Pids::new(FIRST, 1000);
        let mut child = sleeper();
        let pid = child.id();
        assert_eq!(pids.track(&epoll, "sb-a", pid, State::Running, true), None);
        assert_eq!(
            pids.track(&epoll, "sb-a", pid, State::Unhealthy, true),
            None
        );
        assert_eq!(pids.by_name.len(), 1, "the same pid: the same pidfd");
        assert_eq!(pids.by_name["sb-a"].token, FIRST);
        assert!(ready(&epoll, Duration::ZERO).is_empty());
        child.kill().unwrap();
        assert_eq!(ready(&epoll, Duration::from_secs(10)), [FIRST]);
        assert_eq!(pids.exited(&epoll, FIRST).as_deref(), Some("sb-a"));
        assert!(pids.by_name.is_empty());
        assert!(ready(&epoll, Duration::ZERO).is_empty(), "deregistered");
        assert_eq!(pids.exited(&epoll, FIRST), None, "once");
        child.wait().unwrap();
    }

    /// A stopped sidecar holds no pidfd; a new pid gets a new one (and a
    /// new token); release drops it.
    #[test]
    fn stopped_or_replaced_sidecars_drop_their_pidfd() {
        let epoll = Epoll::new().unwrap();
        let mut pids = Pids::new(FIRST, 1000);
        let mut a = sleeper();
        let mut b = sleeper();
        pids.track(&epoll, "sb-a", a.id(), State::Running, true);
        pids.track(&epoll, "sb-a", b.id(), State::Running, true);
        assert_eq!(pids.by_name["sb-a"].pid, b.id());
        assert_eq!(pids.by_name["sb-a"].token, FIRST + 1);
        pids.track(&epoll, "sb-a", b.id(), State::Stopped, true);
        assert!(pids.by_name.is_empty());
        pids.track(&epoll, "sb-b", a.id(), State::Unknown, true);
        pids.release(&epoll, "sb-b");
        pids.release(&epoll, "sb-b");
        assert!(pids.by_name.is_empty());
        for c in [&mut a, &mut b] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        assert!(ready(&epoll, Duration::from_millis(50)).is_empty());
    }

    /// A process gone before its pidfd could be had is no degradation: the
    /// next probe round judges it.
    #[test]
    fn a_process_gone_already_holds_nothing() {
        let epoll = Epoll::new().unwrap();
        let mut pids = Pids::new(FIRST, 1000);
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(pids.track(&epoll, "sb-a", pid, State::Running, true), None);
        assert!(pids.by_name.is_empty() && pids.available);
    }

    /// Once pidfds are known to be unavailable, none is tried again.
    #[test]
    fn unavailable_pidfds_are_not_tried_again() {
        let epoll = Epoll::new().unwrap();
        let mut pids = Pids::new(FIRST, 1000);
        pids.available = false;
        let mut child = sleeper();
        assert_eq!(
            pids.track(&epoll, "sb-a", child.id(), State::Running, true),
            None
        );
        assert!(pids.by_name.is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn open_failures_say_what_they_mean() {
        let err = io::Error::from_raw_os_error;
        assert_eq!(open_failure(&err(libc::ESRCH)), None);
        for errno in [libc::ENOSYS, libc::EPERM] {
            let (unavailable, d) = open_failure(&err(errno)).unwrap();
            assert!(unavailable);
            assert_eq!(d.key, "pidfd");
            assert!(
                d.reason.starts_with("pidfds are unavailable ("),
                "{}",
                d.reason
            );
            assert!(
                d.reason
                    .ends_with("): exits are seen at the probe interval")
            );
        }
        let (unavailable, d) = open_failure(&err(libc::EMFILE)).unwrap();
        assert!(!unavailable);
        assert_eq!(d.key, "pidfd-open");
        assert!(
            d.reason
                .starts_with("cannot hold a pidfd for every sidecar (Too many open files"),
            "{}",
            d.reason
        );
        assert!(
            d.reason
                .ends_with("): some exits are seen at the probe interval")
        );
    }

    /// At most the budget is pinned; an unverified identity never is; the
    /// budget formula leaves the headroom and a quarter of the rest.
    #[test]
    fn the_budget_and_verification_bound_what_is_pinned() {
        assert_eq!(
            [64, 200, 1024, 20_000, 65536].map(budget_for),
            [0, 136, 768, 15_000, 49_152],
            "three quarters of the limit, at least 64 left"
        );
        let epoll = Epoll::new().unwrap();
        let mut pids = Pids::new(FIRST, 1);
        let mut a = sleeper();
        let mut b = sleeper();
        assert_eq!(
            pids.track(&epoll, "sb-u", a.id(), State::Running, false),
            None
        );
        assert!(!pids.pinned("sb-u"), "unverified: not pinned");
        assert_eq!(
            pids.track(&epoll, "sb-a", a.id(), State::Running, true),
            None
        );
        let d = pids
            .track(&epoll, "sb-b", b.id(), State::Running, true)
            .unwrap();
        assert_eq!(d.key, "pidfd-budget");
        assert_eq!(
            d.reason,
            "1 pidfds held, the budget under the descriptor limit: \
             the exits of the other sidecars are seen at the probe interval"
        );
        assert!(pids.pinned("sb-a") && !pids.pinned("sb-b") && pids.held() == 1);
        assert!(!pids.set_budget(1), "as many held as the budget: no room");
        assert!(pids.set_budget(2));
        assert_eq!(
            pids.track(&epoll, "sb-b", b.id(), State::Running, true),
            None
        );
        assert!(pids.pinned("sb-b"));
        assert!(!pids.set_budget(2), "spent");
        assert!(!pids.set_budget(1), "over it: those held stay");
        assert_eq!(pids.held(), 2);
        // A pinned sidecar whose identity is no longer verified is let go.
        assert_eq!(
            pids.track(&epoll, "sb-b", b.id(), State::Running, false),
            None
        );
        assert!(!pids.pinned("sb-b"));
        for c in [&mut a, &mut b] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// What a probe round found of a pinned sidecar is kept until it is
    /// judged in full again (tracked at the same pid); nothing is kept for
    /// a sidecar that is not pinned.
    #[test]
    fn a_quiet_sidecar_is_kept_until_judged_in_full() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sidecar.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(&path)
            .unwrap();
        let st = crate::sidecar_markers::sys::fstat(fd.as_fd()).unwrap();
        let fleet = crate::sidecar_markers::probe::Fleet::new(Duration::from_secs(5));
        let snap = fleet.snapshot().expect("a socket-diagnostics dump");
        let file = snap.socket_file(&st).expect("a socket file we may write");
        let q = Quiet {
            file,
            state: State::Running,
        };
        let epoll = Epoll::new().unwrap();
        let mut pids = Pids::new(FIRST, 1000);
        let mut child = sleeper();
        pids.track(&epoll, "sb-a", child.id(), State::Running, true);
        assert_eq!(pids.quiet().count(), 0, "none before a round");
        pids.set_quiet("sb-a", q);
        pids.set_quiet("sb-unpinned", q);
        let quiet: Vec<(String, Quiet)> = pids.quiet().map(|(n, q)| (n.clone(), q)).collect();
        assert_eq!(quiet, [("sb-a".to_string(), q)]);
        pids.track(&epoll, "sb-a", child.id(), State::Running, true);
        assert!(pids.pinned("sb-a"));
        assert_eq!(pids.quiet().count(), 0, "judged in full: forgotten");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
