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
pub(super) mod tests {
    use super::*;
    use crate::sidecar_markers::watch::events::tests::{AT, entry};
    use crate::sidecar_markers::{MarkerReport, Reason, Verdict};

    fn report(name: &str, entry: Option<SidecarEntry>) -> MarkerReport {
        let verdict = match &entry {
            Some(e) if e.state == State::Stopped => Verdict::Stale,
            Some(_) => Verdict::Live,
            None => Verdict::Broken,
        };
        MarkerReport {
            name: name.into(),
            verdict,
            state: entry.as_ref().map(|e| e.state),
            reason: Reason::Serving,
            detail: String::new(),
            entry,
            error: None,
        }
    }

    /// A scan that found `live` (name, state) and collected `collected`.
    fn scan(live: &[(&str, State)], collected: &[&str]) -> Scan {
        Scan {
            reports: live
                .iter()
                .map(|(n, s)| report(n, Some(entry(n, *s))))
                .collect(),
            collected: collected.iter().map(|s| s.to_string()).collect(),
            ..Scan::default()
        }
    }

    fn model(live: &[(&str, State)]) -> Model {
        let mut m = Model::default();
        m.apply(scan(live, &[]), None, AT);
        m
    }

    fn appeared(id: &str, state: State) -> Event {
        Event::Appeared {
            sandbox_id: id.into(),
            entry: entry(id, state),
            at: AT.into(),
        }
    }

    fn changed(id: &str, state: State, previous: State) -> Event {
        Event::Changed {
            sandbox_id: id.into(),
            entry: entry(id, state),
            previous,
            at: AT.into(),
        }
    }

    fn gone(id: &str, reason: GoneReason) -> Event {
        Event::Gone {
            sandbox_id: id.into(),
            reason,
            at: AT.into(),
        }
    }

    fn scope(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    use GoneReason::{Collected, Removed};
    use State::{Running, Stopped, Unhealthy, Unknown};

    /// Full scans (no scope): each row is what was reported before, the
    /// scan, what it collected, and the events expected, in order.
    #[test]
    fn full_scans() {
        type Row<'a> = (
            &'a str,
            &'a [(&'a str, State)],
            &'a [(&'a str, State)],
            &'a [&'a str],
            Vec<Event>,
        );
        let table: Vec<Row> = vec![
            ("nothing, nothing", &[], &[], &[], vec![]),
            (
                "first scan: all appear, sorted",
                &[],
                &[("b", Running), ("a", Unhealthy)],
                &[],
                vec![appeared("a", Unhealthy), appeared("b", Running)],
            ),
            (
                "nothing changed",
                &[("a", Running)],
                &[("a", Running)],
                &[],
                vec![],
            ),
            (
                "state changed",
                &[("a", Running)],
                &[("a", Unhealthy)],
                &[],
                vec![changed("a", Unhealthy, Running)],
            ),
            (
                "to stopped (collect off)",
                &[("a", Unknown)],
                &[("a", Stopped)],
                &[],
                vec![changed("a", Stopped, Unknown)],
            ),
            (
                "collected by this scan",
                &[("a", Running)],
                &[],
                &["a"],
                vec![gone("a", Collected)],
            ),
            (
                "removed by other hands",
                &[("a", Running)],
                &[],
                &[],
                vec![gone("a", Removed)],
            ),
            (
                "collected but never reported: no event",
                &[],
                &[],
                &["a"],
                vec![],
            ),
            (
                "every kind at once, sorted by sandbox id",
                &[("b", Running), ("c", Running), ("d", Running)],
                &[("c", Unhealthy), ("a", Running), ("d", Running)],
                &["b"],
                vec![
                    appeared("a", Running),
                    gone("b", Collected),
                    changed("c", Unhealthy, Running),
                ],
            ),
        ];
        for (what, before, now, collected, want) in table {
            let mut m = model(before);
            let d = m.apply(scan(now, collected), None, AT);
            assert_eq!(d.events, want, "{what}");
            let state: BTreeMap<String, SidecarEntry> = now
                .iter()
                .map(|(n, s)| (n.to_string(), entry(n, *s)))
                .collect();
            assert_eq!(m.known(), &state, "{what}: the model is the scan");
            let gone: Vec<String> = before
                .iter()
                .filter(|(n, _)| !now.iter().any(|(m, _)| m == n))
                .map(|(n, _)| n.to_string())
                .collect();
            assert_eq!(d.gone, gone, "{what}");
        }
    }

    /// Only the uptime differs: the same sidecar, no event, but the model
    /// takes the new entry.
    #[test]
    fn uptime_alone_is_no_change() {
        let mut m = model(&[("a", Running)]);
        let mut later = entry("a", Running);
        later.uptime_secs = Some(600);
        let s = Scan {
            reports: vec![report("a", Some(later.clone()))],
            ..Scan::default()
        };
        assert_eq!(m.apply(s, None, AT).events, vec![]);
        assert_eq!(m.known()["a"], later);
    }

    /// Anything else that differs (the metadata, the pid) is `changed`,
    /// with the state unchanged as `previous`.
    #[test]
    fn other_fields_are_a_change() {
        let mut m = model(&[("a", Running)]);
        let mut replaced = entry("a", Running);
        replaced.policy_bundle_version = "2".into();
        replaced.pid += 1;
        let s = Scan {
            reports: vec![report("a", Some(replaced.clone()))],
            ..Scan::default()
        };
        let want = Event::Changed {
            sandbox_id: "a".into(),
            entry: replaced,
            previous: Running,
            at: AT.into(),
        };
        assert_eq!(m.apply(s, None, AT).events, vec![want]);
    }

    /// A marker that turned broken is gone (`removed`), and one broken
    /// from the start never appears.
    #[test]
    fn broken_markers_are_not_sidecars() {
        let mut m = model(&[("a", Running)]);
        let s = Scan {
            reports: vec![report("a", None), report("z", None)],
            ..Scan::default()
        };
        let d = m.apply(s, None, AT);
        assert_eq!(d.events, vec![gone("a", Removed)]);
        assert!(d.seen.is_empty());
        assert!(m.known().is_empty());
    }

    /// With a scope, reports outside it are ignored and only names in it
    /// can go; the rest of the model stays.
    #[test]
    fn a_scope_limits_what_is_compared() {
        let mut m = model(&[("a", Running), ("b", Running), ("c", Running)]);
        let d = m.apply(
            scan(&[("b", Unhealthy), ("x", Running)], &["a"]),
            Some(&scope(&["a", "b", "new"])),
            AT,
        );
        assert_eq!(
            d.events,
            vec![gone("a", Collected), changed("b", Unhealthy, Running)]
        );
        assert_eq!(d.gone, ["a"]);
        assert_eq!(m.known().keys().collect::<Vec<_>>(), ["b", "c"]);
        // A scoped name that appears.
        let d = m.apply(scan(&[("new", Running)], &[]), Some(&scope(&["new"])), AT);
        assert_eq!(d.events, vec![appeared("new", Running)]);
        assert!(d.gone.is_empty());
    }

    /// Every sidecar found is handed on (to hold or drop its pidfd), in the
    /// scan's order, changed or not; gone ones are listed apart.
    #[test]
    fn seen_and_gone_are_handed_on() {
        let mut m = model(&[("a", Running), ("b", Running)]);
        let d = m.apply(scan(&[("c", Stopped), ("a", Running)], &[]), None, AT);
        let seen: Vec<(String, u32, State)> = d
            .seen
            .into_iter()
            .map(|s| (s.name, s.pid, s.state))
            .collect();
        assert_eq!(
            seen,
            [
                ("c".to_string(), entry("c", Stopped).pid, Stopped),
                ("a".to_string(), entry("a", Running).pid, Running),
            ]
        );
        assert_eq!(d.gone, ["b"]);
    }

    /// A sidecar gone and back is reported again (at most one `gone` per
    /// appearance).
    #[test]
    fn gone_then_back_appears_again() {
        let mut m = model(&[("a", Running)]);
        assert_eq!(
            m.apply(scan(&[], &["a"]), None, AT).events,
            vec![gone("a", Collected)]
        );
        assert_eq!(m.apply(scan(&[], &[]), None, AT).events, vec![]);
        assert_eq!(
            m.apply(scan(&[("a", Running)], &[]), None, AT).events,
            vec![appeared("a", Running)]
        );
    }

    /// The report of the marker `name` unreadable for `errno`.
    pub(in crate::sidecar_markers::watch) fn failed_read(name: &str, errno: i32) -> MarkerReport {
        MarkerReport {
            error: Some(crate::sidecar_markers::ErrorInfo {
                code: crate::sidecar_markers::ErrorCode::Io,
                message: "read".into(),
                path: None,
                errno: Some(errno),
            }),
            reason: Reason::IoError,
            ..report(name, None)
        }
    }

    /// Out of descriptors is never "the marker vanished": a marker
    /// unreadable for EMFILE (or a probe not made for want of
    /// descriptors) keeps its last state, is held, and is not gone, in a
    /// full scan or a scoped one. A marker broken for what it is (EACCES,
    /// a parse error) goes as before.
    #[test]
    fn a_shortage_holds_the_last_state() {
        let mut unavailable = report("b", Some(entry("b", State::Unknown)));
        unavailable.reason = Reason::ProbeUnavailable;
        unavailable.detail = "the probe could not be made: out of descriptors or memory".into();
        for scope in [None, Some(scope(&["a", "b", "c", "d"]))] {
            let mut m = model(&[
                ("a", Running),
                ("b", Running),
                ("c", Running),
                ("d", Running),
            ]);
            let s = Scan {
                reports: vec![
                    failed_read("a", libc::EMFILE),
                    unavailable.clone(),
                    failed_read("c", libc::ENFILE),
                    failed_read("d", libc::EACCES),
                ],
                ..Scan::default()
            };
            let d = m.apply(s, scope.as_ref(), AT);
            assert_eq!(d.held, ["a", "b", "c"]);
            assert_eq!(d.gone, ["d"]);
            assert_eq!(d.events, vec![gone("d", Removed)]);
            assert_eq!(m.known()["b"].state, Running, "the last state stands");
            assert_eq!(m.known().len(), 3);
        }
        // Unknown before, held: still unknown to the stream.
        let mut m = model(&[]);
        let s = Scan {
            reports: vec![failed_read("new", libc::EMFILE)],
            ..Scan::default()
        };
        let d = m.apply(s, None, AT);
        assert_eq!((d.held, d.events), (vec!["new".to_string()], vec![]));
        assert!(m.known().is_empty());
    }

    /// The report of a sidecar `name` in `state`, for `reason`, saying
    /// `detail`.
    fn judged(name: &str, state: State, reason: Reason, detail: &str) -> MarkerReport {
        MarkerReport {
            reason,
            detail: detail.into(),
            ..report(name, Some(entry(name, state)))
        }
    }

    /// What is a shortage of this reader's (held) and what is the marker's
    /// own news (judged): one row per report, whatever its entry.
    #[test]
    fn transient_is_a_shortage_of_this_reader_only() {
        let probe = |reason, detail| judged("a", Unknown, reason, detail);
        let no_errno = MarkerReport {
            error: None,
            ..failed_read("a", 0)
        };
        let unverifiable_short = "process cannot be checked: why; endpoint: \
             the probe could not be made: out of descriptors or memory";
        #[rustfmt::skip]
        let table: Vec<(&str, MarkerReport, bool)> = vec![
            ("EMFILE", failed_read("a", libc::EMFILE), true),
            ("ENFILE", failed_read("a", libc::ENFILE), true),
            ("ENOMEM", failed_read("a", libc::ENOMEM), true),
            ("ENOBUFS", failed_read("a", libc::ENOBUFS), true),
            ("EAGAIN", failed_read("a", libc::EAGAIN), true),
            ("EINTR", failed_read("a", libc::EINTR), true),
            ("EACCES: the marker's own", failed_read("a", libc::EACCES), false),
            ("broken without an errno", no_errno, false),
            ("no descriptor for a probe", probe(Reason::ProbeUnavailable, "the probe could not be made: out of descriptors or memory"), true),
            ("no thread for a probe", probe(Reason::ProbeUnavailable, "the probe could not be made: cannot start a probe thread"), true),
            ("probes stuck on a hung filesystem", probe(Reason::ProbeUnavailable, "the probe could not be made: too many probes are stuck on paths that do not answer"), false),
            ("unverifiable, whatever its probe", probe(Reason::Unverifiable, unverifiable_short), false),
            ("serving", probe(Reason::Serving, ""), false),
        ];
        for (what, r, want) in table {
            assert_eq!(transient(&r), want, "{what}");
        }
    }

    /// Each way a report says its process identity was not verified, one
    /// at a time.
    #[test]
    fn verified_is_false_for_each_unverified_detail() {
        let with = |reason, detail| judged("a", Running, reason, detail);
        #[rustfmt::skip]
        let table = [
            ("verified", with(Reason::Serving, "the endpoint accepted a connection"), true),
            ("verified, the endpoint refusing", with(Reason::ConnectionRefused, "connection refused"), true),
            ("unverifiable", with(Reason::Unverifiable, ""), false),
            ("serving, unverified", with(Reason::Serving, "the endpoint accepted a connection; process not verified: why"), false),
            ("cannot be checked", with(Reason::Unverifiable, "process cannot be checked: why; endpoint: connection refused"), false),
            ("identity not checked", with(Reason::Serving, "the endpoint accepted a connection; identity not checked: hidepid"), false),
        ];
        for (what, r, want) in table {
            assert_eq!(verified(&r), want, "{what}");
        }
    }

    /// Only a verified identity may be pinned by a pidfd.
    #[test]
    fn unverified_identities_are_not_pinned() {
        let mut m = model(&[]);
        let mut foreign = report("f", Some(entry("f", Running)));
        foreign.detail =
            "the endpoint accepted a connection; identity not checked: another pid namespace"
                .into();
        let mut unverifiable = report("u", Some(entry("u", State::Unknown)));
        unverifiable.reason = Reason::Unverifiable;
        let s = Scan {
            reports: vec![
                report("a", Some(entry("a", Running))),
                foreign,
                unverifiable,
            ],
            ..Scan::default()
        };
        let d = m.apply(s, None, AT);
        let pins: Vec<(String, bool)> = d.seen.into_iter().map(|s| (s.name, s.verified)).collect();
        assert_eq!(
            pins,
            [("a".into(), true), ("f".into(), false), ("u".into(), false)]
        );
    }
}
