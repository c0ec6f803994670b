//! The comparison at the heart of a watcher: what the stream reported so
//! far (the [`Model`]) against a new scan, as events. No I/O: the scan is
//! made elsewhere (the same scan code as `list`) and so is the time.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::events::{Event, GoneReason};
use crate::sidecar_markers::scan::Scan;
use crate::sidecar_markers::{MarkerReport, Reason, SidecarEntry, State, Verdict};

/// What the events so far describe: sandbox id → entry.
#[derive(Debug, Default)]
pub(super) struct Model {
    known: BTreeMap<String, SidecarEntry>,
}

/// A sidecar the scan found, as the watcher needs it to follow its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Seen {
    pub name: String,
    pub pid: u32,
    pub state: State,
    /// Its process's identity was verified: a pidfd may pin it.
    pub verified: bool,
}

/// What one comparison found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Diff {
    /// The events to report, sorted by sandbox id.
    pub events: Vec<Event>,
    /// Every sidecar the scan found in scope, in the scan's order.
    pub seen: Vec<Seen>,
    /// Every sidecar reported before and gone now, by sandbox id.
    pub gone: Vec<String>,
    /// The markers a transient error kept from being judged (see
    /// [`transient`]): neither reported nor gone, their last state stands.
    pub held: Vec<String>,
}

/// Whether `report` says nothing about the marker because this reader ran
/// short (out of descriptors or memory, no thread for a probe): a marker
/// unreadable for `EMFILE`, `ENFILE`, `ENOMEM`, `ENOBUFS`, `EAGAIN` or
/// `EINTR`, or a probe that could not be made for want of descriptors,
/// memory or a thread. Such a marker keeps the state reported before and
/// is judged again: a shortage is never "the marker vanished".
///
/// A probe unavailable because too many probes are stuck on a hung
/// filesystem is not transient here: it is what `list` says too.
pub(super) fn transient(report: &MarkerReport) -> bool {
    match report.verdict {
        Verdict::Broken => report.error.as_ref().is_some_and(|e| {
            matches!(
                e.errno,
                Some(
                    libc::EMFILE
                        | libc::ENFILE
                        | libc::ENOMEM
                        | libc::ENOBUFS
                        | libc::EAGAIN
                        | libc::EINTR
                )
            )
        }),
        _ => {
            report.reason == Reason::ProbeUnavailable
                && (report.detail.contains("out of descriptors")
                    || report.detail.contains("cannot start a probe thread"))
        }
    }
}

/// Whether the report's process identity was verified, so that a pidfd
/// opened on its pid pins the sidecar's own process: not when the process
/// could not be checked at all, nor when its identity was not checked
/// (another pid namespace, `hidepid`).
fn verified(report: &MarkerReport) -> bool {
    report.reason != Reason::Unverifiable
        && !report.detail.contains("process cannot be checked")
        && !report.detail.contains("process not verified")
        && !report.detail.contains("identity not checked")
}

impl Model {
    pub fn known(&self) -> &BTreeMap<String, SidecarEntry> {
        &self.known
    }

    /// Compares `scan`, made of `scope` (`None`: all of `run/`), with what
    /// was reported, takes it as the new state and says what changed, every
    /// event stamped `at`:
    ///
    /// - a sidecar not reported before is `appeared`;
    /// - one reported before is `changed` when anything but its uptime
    ///   differs (`previous` is the state reported before);
    /// - one reported before and not in the scan (absent, or broken now) is
    ///   `gone`: `collected` when the scan collected its marker, `removed`
    ///   otherwise. With a scope, only the names in it can go.
    ///
    /// Reports outside `scope` are ignored.
    ///
    /// A report that is [`transient`] is held: the marker keeps its last
    /// state (or stays unreported) and is named in [`Diff::held`].
    pub fn apply(&mut self, scan: Scan, scope: Option<&BTreeSet<String>>, at: &str) -> Diff {
        let collected: HashSet<String> = scan.collected.into_iter().collect();
        let mut in_scan: HashSet<String> = HashSet::new();
        let mut diff = Diff::default();
        for report in scan.reports {
            if scope.is_some_and(|s| !s.contains(&report.name)) {
                continue;
            }
            if transient(&report) {
                in_scan.insert(report.name.clone());
                diff.held.push(report.name);
                continue;
            }
            let verified = verified(&report);
            let Some(entry) = report.entry else { continue };
            let name = report.name;
            in_scan.insert(name.clone());
            diff.seen.push(Seen {
                name: name.clone(),
                // A sidecar of another pid namespace is pinned under the
                // pid its process has here, never the recorded number.
                pid: scan.here.get(&name).copied().unwrap_or(entry.pid),
                state: entry.state,
                verified,
            });
            // What the model keeps for as long as the sidecar lives is
            // allocated here, in one go, rather than kept from the scan
            // (whose memory, made on its worker threads, is then all
            // temporary and given back after it); an unchanged entry is
            // kept as it is, only its uptime taken.
            match self.known.get_mut(&name) {
                None => {
                    self.known.insert(name.clone(), entry.clone());
                    diff.events.push(Event::Appeared {
                        sandbox_id: name,
                        entry,
                        at: at.to_owned(),
                    });
                }
                Some(old) => {
                    // The uptime moves on its own and is no change: take
                    // it first, so that the entries' own equality (every
                    // field, a new one too) says whether anything else did.
                    old.uptime_secs = entry.uptime_secs;
                    if *old != entry {
                        let previous = old.state;
                        *old = entry.clone();
                        diff.events.push(Event::Changed {
                            sandbox_id: name,
                            entry,
                            previous,
                            at: at.to_owned(),
                        });
                    }
                }
            }
        }
        diff.gone = match scope {
            None => self
                .known
                .keys()
                .filter(|k| !in_scan.contains(*k))
                .cloned()
                .collect(),
            Some(s) => s
                .iter()
                .filter(|k| !in_scan.contains(*k) && self.known.contains_key(*k))
                .cloned()
                .collect(),
        };
        for name in &diff.gone {
            self.known.remove(name);
            let reason = if collected.contains(name) {
                GoneReason::Collected
            } else {
                GoneReason::Removed
            };
            diff.events.push(Event::Gone {
                sandbox_id: name.clone(),
                reason,
                at: at.to_owned(),
            });
        }
        diff.events
            .sort_by(|a, b| a.sandbox_id().cmp(&b.sandbox_id()));
        diff
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
pub(super) mod tests;
