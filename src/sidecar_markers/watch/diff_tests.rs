//! Unit tests of the watcher's diff (`diff.rs`): the model against a
//! scan, table by table; no I/O.

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
        "the endpoint accepted a connection; identity not checked: another pid namespace".into();
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
