//! When a watcher looks again, and at what: the probe and rescan times,
//! the markers waiting to be judged again, a full scan owed (quiet, or a
//! resync with its reason), the pause after a failure, and the
//! degradations announced. No I/O: the time is passed in.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// What a full scan is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Full {
    /// The periodic safety net: no `resync`/`synced` around it.
    Quiet,
    /// After losing track: `resync` (with this reason), then `synced`.
    Resync(String),
}

/// A way the watcher runs worse than it should (no inotify watch on
/// `run/`, the watch limit, no pidfds), announced once per `key` in a
/// `resync` event with `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Degradation {
    pub key: &'static str,
    pub reason: String,
}

/// What is due now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing (or not yet: a failure's pause is not over).
    Idle,
    /// A full scan owed; on failure it stays owed ([`Schedule::rescan`]).
    Full(Full),
    /// The periodic full scan (or a probe round while polling).
    Rescan,
    /// Judge these markers again.
    Examine(BTreeSet<String>),
    /// A probe round: every known marker is looked at again (the engine
    /// decides how: see `Engine::probe_round`), and these markers, which
    /// waited, are judged again in full.
    Round(BTreeSet<String>),
}

pub(super) struct Schedule {
    probe_interval: Duration,
    rescan_interval: Duration,
    next_probe: Instant,
    next_rescan: Instant,
    /// After a failure to open or read `run/`, no work before this.
    retry_at: Option<Instant>,
    /// Failures in a row (the backoff's exponent); reset by a success.
    failures: u32,
    need_full: Option<Full>,
    /// Markers to judge again as soon as possible.
    dirty: BTreeSet<String>,
    /// Markers a transient error kept from being judged (out of
    /// descriptors, say): judged again at `later_at`, with backoff.
    later: BTreeSet<String>,
    later_at: Option<Instant>,
    later_failures: u32,
    /// A `resync` went out and its `synced` is owed.
    unsynced: bool,
    /// Degradations already announced (announced once each).
    announced: HashSet<&'static str>,
    /// A probe round is spread over this many ticks of the probe interval
    /// (see [`Schedule::spread`]).
    slices: u32,
}

/// The first pause after a failure; it doubles with each failure in a row
/// up to [`Schedule::backoff_cap`].
const BACKOFF_START: Duration = Duration::from_millis(100);

/// The longest pause between two tries, whatever the probe interval: a
/// watcher that failed is never quiet for longer.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Schedule {
    /// Everything due at `now`.
    pub fn new(probe_interval: Duration, rescan_interval: Duration, now: Instant) -> Schedule {
        Schedule {
            probe_interval,
            rescan_interval,
            next_probe: now,
            next_rescan: now,
            retry_at: None,
            failures: 0,
            need_full: None,
            dirty: BTreeSet::new(),
            later: BTreeSet::new(),
            later_at: None,
            later_failures: 0,
            unsynced: false,
            announced: HashSet::new(),
            slices: 1,
        }
    }

    /// What to do at `now`, taking it off the schedule. `polling`: the
    /// watcher cannot rely on inotify, so a probe round is a full scan.
    /// In order: nothing during a failure's pause; a full scan owed;
    /// the periodic rescan; a probe round (with whatever waits); the
    /// markers waiting.
    pub fn step(&mut self, now: Instant, polling: bool) -> Step {
        if let Some(r) = self.retry_at {
            if now < r {
                return Step::Idle;
            }
            self.retry_at = None;
        }
        if self.later_at.is_some_and(|t| now >= t) {
            self.later_at = None;
            self.dirty.append(&mut self.later);
        }
        if let Some(full) = self.need_full.take() {
            Step::Full(full)
        } else if now >= self.next_rescan || (now >= self.next_probe && polling) {
            Step::Rescan
        } else if now >= self.next_probe {
            self.next_probe = now + self.tick();
            Step::Round(std::mem::take(&mut self.dirty))
        } else if !self.dirty.is_empty() {
            Step::Examine(std::mem::take(&mut self.dirty))
        } else {
            Step::Idle
        }
    }

    /// Spreads the probe round under way over `slices` ticks (at least
    /// 1): a [`Step::Round`] then comes every probe interval / `slices`,
    /// and the engine looks at a slice of the round's markers at each, so
    /// that every marker is looked at once per interval and no tick is a
    /// spike.
    pub fn spread(&mut self, slices: u32) {
        self.slices = slices.max(1);
    }

    /// The time between two [`Step::Round`]s.
    fn tick(&self) -> Duration {
        self.probe_interval / self.slices
    }

    /// A full scan starts at `now`: the next probe tick and rescan are an
    /// interval away, and nothing waits any more.
    pub fn full_scan_started(&mut self, now: Instant) {
        self.next_probe = now + self.tick();
        self.next_rescan = now + self.rescan_interval;
        self.dirty.clear();
    }

    /// The work of the step taken at `now` failed: nothing more until a
    /// pause has passed, 100 ms doubling with each failure in a row up to
    /// the probe interval (at most 5 s).
    pub fn failed(&mut self, now: Instant) {
        self.retry_at = Some(now + self.backoff(self.failures));
        self.failures = self.failures.saturating_add(1);
    }

    /// The work of a step succeeded: the next failure pauses briefly again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// The pause after `failures` failures in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let cap = self.probe_interval.min(BACKOFF_MAX);
        let start = BACKOFF_START.min(cap);
        start.saturating_mul(1u32 << failures.min(16)).min(cap)
    }

    /// A transient error (out of descriptors, say) kept `names` from being
    /// judged at `now`: their last state stands and they are judged again
    /// after a pause that grows while it keeps happening. Names held while
    /// others wait join them, at the time set already.
    ///
    /// `later_at` is set exactly while `later` holds a name: both are set
    /// here and cleared together by [`Schedule::step`].
    pub fn retry_later(&mut self, names: impl IntoIterator<Item = String>, now: Instant) {
        self.later.extend(names);
        if !self.later.is_empty() && self.later_at.is_none() {
            self.later_at = Some(now + self.backoff(self.later_failures));
            self.later_failures = self.later_failures.saturating_add(1);
        }
    }

    /// Judging the markers held back worked: the next transient error
    /// pauses briefly again (unless some still wait).
    pub fn later_cleared(&mut self) {
        if self.later.is_empty() {
            self.later_failures = 0;
        }
    }

    /// A `resync` went out: its `synced` is owed.
    pub fn resynced(&mut self) {
        self.unsynced = true;
    }

    /// Whether `synced` is owed and may go out now: nothing is held back,
    /// no full scan is owed, no failure is being waited out. Clears the
    /// debt when it says yes.
    pub fn take_synced(&mut self) -> bool {
        if self.unsynced
            && self.need_full.is_none()
            && self.retry_at.is_none()
            && self.later.is_empty()
        {
            self.unsynced = false;
            return true;
        }
        false
    }

    /// Whether a `synced` is owed.
    pub fn owes_synced(&self) -> bool {
        self.unsynced
    }

    /// When work is due next (`now`, if something is waiting).
    pub fn due(&self, now: Instant) -> Instant {
        if let Some(r) = self.retry_at {
            return r;
        }
        if self.need_full.is_some() || !self.dirty.is_empty() {
            return now;
        }
        let next = self.next_probe.min(self.next_rescan);
        self.later_at.map_or(next, |t| t.min(next))
    }

    /// Judge the marker `name` again as soon as possible.
    pub fn examine(&mut self, name: String) {
        self.dirty.insert(name);
    }

    /// A full scan is owed (a quiet one, unless a resync is owed already).
    pub fn rescan(&mut self) {
        self.need_full.get_or_insert(Full::Quiet);
    }

    /// A resync for `reason` is owed, in place of whatever full scan was
    /// owed (the inotify queue overflowed: nothing before counts).
    pub fn resync(&mut self, reason: String) {
        self.need_full = Some(Full::Resync(reason));
    }

    /// Marks `key` announced; `false` when it was already.
    pub fn announce(&mut self, key: &'static str) -> bool {
        self.announced.insert(key)
    }

    /// The degradation `key` is over (a limit was lifted): announced again
    /// should it come back. `true` when it had been announced.
    pub fn recovered(&mut self, key: &'static str) -> bool {
        self.announced.remove(key)
    }

    /// Announces a degradation once: a `resync` with the reason (joined to
    /// that of a resync owed already), a rescan, `synced`.
    pub fn degrade(&mut self, d: Degradation) {
        if !self.announce(d.key) {
            return;
        }
        let reason = d.reason;
        self.need_full = Some(match self.need_full.take() {
            Some(Full::Resync(earlier)) => Full::Resync(format!("{earlier}; {reason}")),
            Some(Full::Quiet) | None => Full::Resync(reason),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: Duration = Duration::from_secs(1);
    const RESCAN: Duration = Duration::from_secs(30);

    fn names(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A schedule right after the initial scan at `t0`.
    fn scanned(t0: Instant) -> Schedule {
        let mut s = Schedule::new(PROBE, RESCAN, t0);
        assert_eq!(s.due(t0), t0, "a new schedule is due at once");
        s.full_scan_started(t0);
        s
    }

    /// [`scanned`] at this instant, and the instant.
    fn scanned_now() -> (Instant, Schedule) {
        let t0 = Instant::now();
        (t0, scanned(t0))
    }

    /// `known` reads as the markers reported so far; a probe round is
    /// the engine's to make of them.
    fn step(s: &mut Schedule, at: Instant, polling: bool, _known: &[&str]) -> Step {
        s.step(at, polling)
    }

    fn degradation(key: &'static str, reason: &str) -> Degradation {
        Degradation {
            key,
            reason: reason.into(),
        }
    }

    #[test]
    fn probe_rounds_and_rescans_come_at_their_intervals() {
        let (t0, mut s) = scanned_now();
        assert_eq!(s.due(t0), t0 + PROBE);
        assert_eq!(step(&mut s, t0, false, &["a"]), Step::Idle);
        // A probe round judges every known marker and moves the next one.
        let t1 = t0 + PROBE;
        assert_eq!(
            step(&mut s, t1, false, &["b", "a"]),
            Step::Round(names(&[]))
        );
        assert_eq!(s.due(t1), t1 + PROBE);
        assert_eq!(step(&mut s, t1, false, &["a"]), Step::Idle);
        // The rescan, whatever else is due.
        let t2 = t0 + RESCAN;
        s.examine("x".into());
        assert_eq!(step(&mut s, t2, false, &["a"]), Step::Rescan);
        s.full_scan_started(t2);
        assert_eq!(s.due(t2), t2 + PROBE);
        assert_eq!(
            step(&mut s, t2, false, &["a"]),
            Step::Idle,
            "x was in the scan"
        );
    }

    /// Without inotify to rely on, a probe round is a full scan.
    #[test]
    fn polling_turns_probe_rounds_into_rescans() {
        let (t0, mut s) = scanned_now();
        assert_eq!(step(&mut s, t0 + PROBE / 2, true, &["a"]), Step::Idle);
        assert_eq!(step(&mut s, t0 + PROBE, true, &["a"]), Step::Rescan);
    }

    #[test]
    fn markers_waiting_are_examined_at_once_and_joined_to_a_probe_round() {
        let (t0, mut s) = scanned_now();
        s.examine("b".into());
        s.examine("a".into());
        s.examine("b".into());
        assert_eq!(s.due(t0), t0);
        assert_eq!(
            step(&mut s, t0, false, &[]),
            Step::Examine(names(&["a", "b"]))
        );
        assert_eq!(step(&mut s, t0, false, &[]), Step::Idle);
        s.examine("new".into());
        assert_eq!(
            step(&mut s, t0 + PROBE, false, &["a"]),
            Step::Round(names(&["new"]))
        );
        assert_eq!(step(&mut s, t0 + PROBE, false, &[]), Step::Idle);
    }

    /// An owed full scan goes before everything else and is taken once;
    /// the markers waiting stay for it to clear.
    #[test]
    fn an_owed_full_scan_goes_first() {
        let (t0, mut s) = scanned_now();
        s.examine("a".into());
        s.rescan();
        assert_eq!(s.due(t0), t0);
        assert_eq!(
            step(&mut s, t0 + RESCAN, false, &[]),
            Step::Full(Full::Quiet)
        );
        s.full_scan_started(t0 + RESCAN);
        assert_eq!(step(&mut s, t0 + RESCAN, false, &[]), Step::Idle);
    }

    /// What is owed when several things ask for a full scan.
    #[test]
    fn owed_full_scans_combine() {
        type Ask = fn(&mut Schedule);
        let quiet: Ask = |s| s.rescan();
        let overflow: Ask = |s| s.resync("overflow".into());
        let no_pidfd: Ask = |s| s.degrade(degradation("pidfd", "no pidfds"));
        let no_watch: Ask = |s| s.degrade(degradation("watch-run", "no watch"));
        // What is owed: a quiet rescan (None) or a resync with its reason.
        let overflow_first = "overflow; no pidfds; no watch";
        // One row a case, as a table reads.
        #[rustfmt::skip]
        let table: [(&str, Vec<Ask>, Option<&str>); 9] = [
            ("quiet", vec![quiet], None),
            ("quiet twice", vec![quiet, quiet], None),
            ("overflow", vec![overflow], Some("overflow")),
            ("a rescan keeps a resync", vec![overflow, quiet], Some("overflow")),
            ("a resync replaces a rescan", vec![quiet, overflow], Some("overflow")),
            ("an overflow replaces a degradation's resync", vec![no_pidfd, overflow], Some("overflow")),
            ("a degradation joins a resync owed", vec![overflow, no_pidfd, no_watch], Some(overflow_first)),
            ("a degradation replaces a rescan", vec![quiet, no_watch], Some("no watch")),
            ("a degradation is announced once", vec![no_pidfd, no_pidfd], Some("no pidfds")),
        ];
        let t0 = Instant::now();
        for (what, asks, want) in table {
            let mut s = scanned(t0);
            for ask in asks {
                ask(&mut s);
            }
            let want = Step::Full(match want {
                None => Full::Quiet,
                Some(reason) => Full::Resync(reason.into()),
            });
            let taken = [step(&mut s, t0, false, &[]), step(&mut s, t0, false, &[])];
            assert_eq!(taken, [want, Step::Idle], "{what}: owed, then taken once");
        }
    }

    #[test]
    fn a_degradation_announced_once_stays_announced() {
        let (t0, mut s) = scanned_now();
        assert!(s.announce("inotify"));
        assert!(!s.announce("inotify"));
        s.degrade(degradation("inotify", "again"));
        assert_eq!(step(&mut s, t0, false, &[]), Step::Idle);
        s.degrade(degradation("pidfd", "no pidfds"));
        assert_eq!(
            step(&mut s, t0, false, &[]),
            Step::Full(Full::Resync("no pidfds".into()))
        );
        s.degrade(degradation("pidfd", "no pidfds"));
        assert_eq!(step(&mut s, t0, false, &[]), Step::Idle);
    }

    /// After a failure nothing happens for a pause, whatever is owed; then
    /// everything owed is there. The pause doubles from 100 ms with each
    /// failure in a row, up to the probe interval (at most 5 s), and a
    /// success starts it over.
    #[test]
    fn a_failure_pauses_with_backoff() {
        let (t0, mut s) = scanned_now();
        s.failed(t0);
        s.examine("a".into());
        s.rescan();
        let first = Duration::from_millis(100);
        assert_eq!(s.due(t0), t0 + first);
        assert_eq!(step(&mut s, t0 + first / 2, false, &[]), Step::Idle);
        assert_eq!(s.due(t0), t0 + first, "still paused");
        assert_eq!(
            step(&mut s, t0 + first, false, &[]),
            Step::Full(Full::Quiet)
        );
        assert_eq!(s.due(t0 + first), t0 + first, "a waits");
        let pauses: Vec<Duration> = (0..6)
            .map(|_| {
                s.failed(t0);
                s.due(t0) - t0
            })
            .collect();
        let ms = Duration::from_millis;
        assert_eq!(pauses, [ms(200), ms(400), ms(800), PROBE, PROBE, PROBE]);
        s.succeeded();
        s.failed(t0);
        assert_eq!(s.due(t0), t0 + first, "a success starts over");
        let mut long = Schedule::new(Duration::from_secs(3600), RESCAN, t0);
        for _ in 0..10 {
            long.failed(t0);
        }
        let most = Duration::from_secs(5);
        assert_eq!(long.due(t0), t0 + most, "never quiet for long");
    }

    /// Markers a shortage held back are judged again after a pause, with
    /// what else waits; `synced` is owed until nothing is held or owed.
    #[test]
    fn held_markers_are_retried_and_synced_waits_for_them() {
        let (t0, mut s) = scanned_now();
        let ms = Duration::from_millis;
        s.resynced();
        s.retry_later(["a".to_string(), "b".to_string()], t0);
        assert!(!s.take_synced(), "a and b are held");
        assert_eq!(s.due(t0), t0 + ms(100));
        assert_eq!(step(&mut s, t0, false, &[]), Step::Idle);
        let t1 = t0 + ms(100);
        assert_eq!(
            step(&mut s, t1, false, &[]),
            Step::Examine(names(&["a", "b"]))
        );
        // Held again: the pause grows.
        s.retry_later(["a".to_string()], t1);
        assert_eq!(s.due(t1), t1 + ms(200));
        let t2 = t1 + ms(200);
        assert_eq!(step(&mut s, t2, false, &[]), Step::Examine(names(&["a"])));
        s.later_cleared();
        assert!(s.owes_synced());
        assert!(s.take_synced());
        assert!(!s.take_synced(), "once");
        assert!(!s.owes_synced(), "paid");
        s.retry_later(["c".to_string()], t2);
        assert_eq!(s.due(t2), t2 + ms(100), "cleared: short again");
    }

    /// Markers held while others wait join them, at the time set already
    /// (the pause does not start over); nothing held sets no time; and the
    /// pause starts short again only once nothing waits.
    #[test]
    fn markers_held_while_others_wait_join_them() {
        let first = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut s = scanned(t0);
        s.retry_later(Vec::new(), t0);
        assert_eq!(s.due(t0), t0 + PROBE, "nothing held: no retry");
        s.retry_later(["a".to_string()], t0);
        let t1 = t0 + first / 2;
        s.retry_later(["b".to_string()], t1);
        s.retry_later(["a".to_string()], t1);
        assert_eq!(s.due(t1), t0 + first, "the time set already");
        s.later_cleared();
        assert_eq!(step(&mut s, t1, false, &[]), Step::Idle);
        assert_eq!(
            step(&mut s, t0 + first, false, &[]),
            Step::Examine(names(&["a", "b"]))
        );
        // Held again: the second pause, as the earlier clearing came while
        // a and b waited.
        s.retry_later(["a".to_string()], t0 + first);
        assert_eq!(s.due(t0 + first), t0 + first + 2 * first);
    }

    /// A round spread over slices comes at each slice's tick.
    #[test]
    fn a_spread_round_comes_in_ticks() {
        let (t0, mut s) = scanned_now();
        s.spread(4);
        s.full_scan_started(t0);
        let tick = PROBE / 4;
        assert_eq!(s.due(t0), t0 + tick);
        assert_eq!(step(&mut s, t0 + tick, false, &[]), Step::Round(names(&[])));
        assert_eq!(s.due(t0 + tick), t0 + 2 * tick);
        s.spread(0);
        assert_eq!(s.tick(), PROBE, "at least one slice");
    }

    /// A degradation that is over is announced again when it comes back.
    #[test]
    fn a_recovered_degradation_is_announced_again() {
        let (t0, mut s) = scanned_now();
        s.degrade(degradation("watch-marker", "limit"));
        assert_eq!(
            step(&mut s, t0, false, &[]),
            Step::Full(Full::Resync("limit".into()))
        );
        assert!(s.recovered("watch-marker"));
        assert!(!s.recovered("watch-marker"));
        s.degrade(degradation("watch-marker", "limit again"));
        assert_eq!(
            step(&mut s, t0, false, &[]),
            Step::Full(Full::Resync("limit again".into()))
        );
    }
}
