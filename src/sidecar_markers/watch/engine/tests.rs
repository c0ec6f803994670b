use super::round::slices_for;
use super::*;

/// A watcher of `runtime` (with no marker), past its initial scan: that
/// scan ends with one `synced`.
fn started(runtime: &std::path::Path) -> Engine {
    let mut e = Engine::start(runtime.to_path_buf(), &WatchOptions::default()).unwrap();
    assert!(is_synced(next_now(&mut e)), "the initial scan is synced");
    e
}

fn next_now(e: &mut Engine) -> Option<Event> {
    e.next(Some(Duration::ZERO)).unwrap()
}

fn resync_reason(ev: Option<Event>) -> String {
    match ev {
        Some(Event::Resync { reason, .. }) => reason,
        other => panic!("not a resync: {other:?}"),
    }
}

fn is_synced(ev: Option<Event>) -> bool {
    matches!(ev, Some(Event::Synced { .. }))
}

/// The initial scan of an empty (or missing) `run/` is one `synced`
/// ([`started`] checks it), and nothing more.
#[test]
fn an_empty_run_dir_is_synced_at_once() {
    for make_run in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        if make_run {
            std::fs::create_dir(dir.path().join("run")).unwrap();
        }
        let mut e = started(dir.path());
        assert_eq!(next_now(&mut e), None);
        assert!(e.known().is_empty());
    }
}

/// An overflow: `resync` with its reason, the rescan, then `synced`.
#[test]
fn an_inotify_overflow_is_resync_then_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    e.look(Look::Overflow);
    assert_eq!(
        resync_reason(next_now(&mut e)),
        "the inotify queue overflowed: rescanning"
    );
    assert!(is_synced(next_now(&mut e)));
    assert_eq!(next_now(&mut e), None);
}

/// Degradations found together go out in one `resync`, each once.
#[test]
fn degradations_are_announced_once_in_one_resync() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    let d = |key, reason: &str| {
        Some(Degradation {
            key,
            reason: reason.into(),
        })
    };
    e.degrade(d("pidfd", "no pidfds"));
    e.degrade(d("watch-run", "no watch"));
    assert_eq!(resync_reason(next_now(&mut e)), "no pidfds; no watch");
    assert!(is_synced(next_now(&mut e)));
    e.degrade(d("pidfd", "no pidfds"));
    assert_eq!(next_now(&mut e), None);
}

/// A round's ticks take its markers in id order, a slice of about 500
/// each, each marker once; the last tick closes the round.
#[test]
fn a_round_takes_each_marker_once_in_slices() {
    let names: Vec<String> = (0..1_200).map(|i| format!("m{i:04}")).collect();
    let mut round = Round::default();
    assert_eq!(round.spread(names.clone()), 3);
    let mut taken = Vec::new();
    let mut sizes = Vec::new();
    while round.open {
        let slice = round.take();
        sizes.push(slice.len());
        taken.extend(slice);
    }
    assert_eq!(sizes, [400, 400, 400]);
    assert_eq!(taken, names);
    // Nothing left for the ticks: one tick, which closes the round.
    assert_eq!(round.spread(Vec::new()), 1);
    assert!(round.open);
    assert!(round.take().is_empty());
    assert!(!round.open);
    assert_eq!(slices_for(0), 1);
    assert_eq!(slices_for(1_000), 2);
    assert_eq!(slices_for(10_000), 20);
    assert_eq!(slices_for(1_000_000), 20);
}

/// `run/` created after the start is seen through the watch on the
/// runtime directory: a quiet rescan, no `resync`.
#[test]
fn run_created_later_is_rescanned_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    assert!(!e.watches.polling(), "the runtime directory is watched");
    assert!(!e.watches.watching_run());
    std::fs::create_dir(dir.path().join("run")).unwrap();
    assert_eq!(e.next(Some(Duration::from_millis(200))).unwrap(), None);
    assert!(e.watches.watching_run(), "run/ is watched now");
    assert!(!e.watches.polling());
}
