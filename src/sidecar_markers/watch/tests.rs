//! The public face of a watcher, unit-tested on a temporary runtime
//! directory: [`Watcher`], its [`WatcherOwner`] and the
//! [`SharedWatcher`] the C handle steps from several threads.

use super::*;
use crate::sidecar_markers::EventFilter;
use crate::sidecar_markers::create_marker;
use crate::sidecar_markers::model::MetadataFile;
use std::sync::Arc;
use std::time::Instant;

/// Options no default has: a probe and a rescan interval long enough
/// that no timer fires during a test.
fn quiet() -> WatchOptions {
    WatchOptions {
        probe_interval: Duration::from_secs(600),
        rescan_interval: Duration::from_secs(3600),
        collect: false,
        ..WatchOptions::default()
    }
}

/// A marker of this (live) process.
fn add_marker(runtime: &Path, id: &str) {
    create_marker(
        runtime,
        &MetadataFile::seed_for_test(id, std::process::id()),
    )
    .unwrap();
}

fn appeared(ev: &Option<Event>, id: &str) -> bool {
    matches!(ev, Some(Event::Appeared { sandbox_id, .. }) if sandbox_id == id)
}

/// The watcher hands out what it holds: its epoll descriptor, its
/// options, the state its events describe.
#[test]
fn a_watcher_gives_its_descriptor_options_and_state() {
    let rt = tempfile::tempdir().unwrap();
    add_marker(rt.path(), "sb-w");
    let mut w = watch(rt.path(), &quiet()).unwrap();
    assert_eq!(w.as_raw_fd(), w.as_fd().as_raw_fd());
    assert_eq!(*w.options(), quiet());
    let ev = w.next(Some(Duration::ZERO)).unwrap();
    assert!(appeared(&ev, "sb-w"), "{ev:?}");
    let ev = w.next(Some(Duration::ZERO)).unwrap();
    assert!(matches!(ev, Some(Event::Synced { .. })), "{ev:?}");
    assert_eq!(w.known().keys().collect::<Vec<_>>(), ["sb-w"]);
    assert_eq!(w.known()["sb-w"].pid, std::process::id());
}

/// A watcher belongs to the process that made it; from any other its
/// `next` (and a shared watcher's) fails with `forked`, naming both.
#[test]
fn a_watcher_belongs_to_its_process() {
    let rt = tempfile::tempdir().unwrap();
    let mut w = watch(rt.path(), &quiet()).unwrap();
    let me = std::process::id();
    assert_eq!(w.owner().pid(), me);
    assert!(w.owner().check().is_ok());
    let other = WatcherOwner { pid: me + 1 };
    let forked = |r: Result<Option<Event>>| match r {
        Err(StackError::Forked { owner, caller }) => assert_eq!((owner, caller), (me + 1, me)),
        other => panic!("not forked: {other:?}"),
    };
    forked(other.check().map(|()| None));
    w.owner = other;
    forked(w.next(Some(Duration::ZERO)));
    let shared = SharedWatcher::new(w);
    forked(shared.next(Some(Instant::now())));
}

/// The turn is given back after each step: a second `next` gets the
/// next event, and the descriptor to poll is the watcher's.
#[test]
fn a_shared_watcher_steps_one_event_after_another() {
    let rt = tempfile::tempdir().unwrap();
    add_marker(rt.path(), "sb-s");
    let w = watch(rt.path(), &quiet()).unwrap();
    let fd = w.as_raw_fd();
    let shared = SharedWatcher::new(w);
    assert_eq!(shared.fd(), fd);
    let soon = || Some(Instant::now() + Duration::from_secs(10));
    assert!(appeared(&shared.next(soon()).unwrap(), "sb-s"));
    let ev = shared.next(soon()).unwrap();
    assert!(matches!(ev, Some(Event::Synced { .. })), "{ev:?}");
}

/// A filtered shared watcher gives only the events its filter passes,
/// the rest of the stream (`synced`) included, whichever thread steps.
#[test]
fn a_filtered_shared_watcher_gives_only_the_selected_sidecars() {
    let rt = tempfile::tempdir().unwrap();
    for id in ["sb-a", "sb-b", "sb-c"] {
        add_marker(rt.path(), id);
    }
    let filter = crate::sidecar_markers::Filter {
        sandbox_ids: vec!["sb-b".into()],
        ..Default::default()
    };
    let w = watch(rt.path(), &quiet()).unwrap();
    let shared = Arc::new(SharedWatcher::filtered(w, Some(EventFilter::new(filter))));
    let soon = || Some(Instant::now() + Duration::from_secs(10));
    let other = Arc::clone(&shared);
    let first = std::thread::spawn(move || other.next(soon()).unwrap())
        .join()
        .unwrap();
    assert!(appeared(&first, "sb-b"), "{first:?}");
    let ev = shared.next(soon()).unwrap();
    assert!(matches!(ev, Some(Event::Synced { .. })), "{ev:?}");
    assert_eq!(shared.next(Some(Instant::now())).unwrap(), None);
}

/// The utime + stime ticks and the voluntary context switches of the
/// thread `tid` of this process so far.
fn thread_usage(tid: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; the first after `)` is 3.
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    let switches = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (ticks, switches)
}

/// A `next` waits for the descriptor, with or without a deadline: an
/// event that comes during the wait is returned, and the wait itself
/// neither spins nor wakes up over and over (a waiting thread used to
/// be seen by its CPU ticks and context switches: none to speak of).
#[test]
fn a_shared_watcher_waits_for_an_event_without_spinning() {
    let rt = tempfile::tempdir().unwrap();
    let shared = Arc::new(SharedWatcher::new(watch(rt.path(), &quiet()).unwrap()));
    let ev = shared.next(Some(Instant::now())).unwrap();
    assert!(matches!(ev, Some(Event::Synced { .. })), "{ev:?}");
    for deadline in [Some(Duration::from_secs(20)), None] {
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || {
                let me = std::fs::read_link("/proc/thread-self").unwrap();
                tx.send(me.file_name().unwrap().to_str().unwrap().to_owned())
                    .unwrap();
                shared.next(deadline.map(|d| Instant::now() + d))
            }
        });
        let tid = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let before = thread_usage(&tid);
        std::thread::sleep(Duration::from_secs(1));
        let after = thread_usage(&tid);
        let id = format!("sb-{}", deadline.is_some());
        add_marker(rt.path(), &id);
        let ev = waiter.join().unwrap().unwrap();
        assert!(appeared(&ev, &id), "{deadline:?}: {ev:?}");
        let (ticks, switches) = (after.0 - before.0, after.1 - before.1);
        assert!(
            ticks <= 5 && switches <= 20,
            "{deadline:?}: a waiting next took {ticks} ticks of CPU and {switches} \
             voluntary context switches in a second"
        );
    }
}
