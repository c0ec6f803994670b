//! The watch stream against real processes, sockets and directories:
//! appeared / synced / changed / gone / resync, the pollable descriptor,
//! and a churn run (with a forced inotify overflow) whose events rebuild
//! exactly what `list` returns.
//!
//! The only timing asserted is an upper bound proving the stream is driven
//! by events, never that it is fast.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::*;
use firma_stack::sidecar_markers::{
    Event, GoneReason, MetadataFile, SharedWatcher, SidecarEntry, State, WatchOptions, Watcher,
    create_marker, list, remove_marker, watch,
};

fn meta(id: &str, pid: u32, listen: Option<String>) -> MetadataFile {
    MetadataFile {
        agent_id: "agent-w".into(),
        session_id: "session-w".into(),
        listen,
        ..crate::common::meta(id, pid)
    }
}

fn opts(probe_ms: u64, collect: bool) -> WatchOptions {
    WatchOptions {
        probe_interval: Duration::from_millis(probe_ms),
        collect,
        ..WatchOptions::default()
    }
}

/// Applies events strictly: an id appears only when unknown, changes or
/// goes only when known, and `previous` is the state last reported.
#[derive(Default)]
struct Tracker {
    state: BTreeMap<String, SidecarEntry>,
    events: Vec<Event>,
    gone: BTreeMap<String, usize>,
    appeared: BTreeMap<String, usize>,
}

impl Tracker {
    fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Appeared {
                sandbox_id, entry, ..
            } => {
                assert!(
                    !self.state.contains_key(sandbox_id),
                    "appeared twice without gone: {ev:?}"
                );
                assert_eq!(&entry.sandbox_id, sandbox_id);
                *self.appeared.entry(sandbox_id.clone()).or_default() += 1;
            }
            Event::Changed {
                sandbox_id,
                previous,
                ..
            } => {
                let old = self
                    .state
                    .get(sandbox_id)
                    .unwrap_or_else(|| panic!("changed for an unknown id: {ev:?}"));
                assert_eq!(old.state, *previous, "{ev:?}");
            }
            Event::Gone { sandbox_id, .. } => {
                assert!(
                    self.state.contains_key(sandbox_id),
                    "gone for an unknown id: {ev:?}"
                );
                *self.gone.entry(sandbox_id.clone()).or_default() += 1;
            }
            Event::Synced { .. } | Event::Resync { .. } => {}
        }
        // Same JSON on every surface: the event round-trips.
        let json = ev.to_json();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, ev);
        check_at(ev.at());
        ev.apply(&mut self.state);
        self.events.push(ev.clone());
    }

    /// Takes events until `pred` holds for one, failing after `within`.
    fn until(
        &mut self,
        w: &mut Watcher,
        within: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match w.next(Some(left)).unwrap() {
                Some(ev) => {
                    self.apply(&ev);
                    if pred(&ev) {
                        return ev;
                    }
                }
                None => panic!(
                    "no {what} within {within:?}; events so far: {:#?}",
                    self.events
                ),
            }
        }
    }

    /// Takes events until one for `id`, which must be `changed`; returns
    /// its `previous` state and its entry.
    fn until_changed(
        &mut self,
        w: &mut Watcher,
        within: Duration,
        id: &str,
    ) -> (State, SidecarEntry) {
        let what = format!("changed {id}");
        match self.until(w, within, &what, |e| e.sandbox_id() == Some(id)) {
            Event::Changed {
                previous, entry, ..
            } => (previous, entry),
            other => panic!("expected changed for {id}, got {other:?}"),
        }
    }

    /// Takes events until `id` is gone (within [`BOUND`]); returns why.
    fn until_gone(&mut self, w: &mut Watcher, id: &str) -> GoneReason {
        let ev = self.until(w, BOUND, &format!("gone {id}"), |e| {
            gone_of(e, id).is_some()
        });
        gone_of(&ev, id).unwrap()
    }

    /// Takes events until none comes for `quiet`.
    fn drain(&mut self, w: &mut Watcher, quiet: Duration) {
        while let Some(ev) = w.next(Some(quiet)).unwrap() {
            self.apply(&ev);
        }
    }

    fn count(&self, kind: &str) -> usize {
        self.events.iter().filter(|e| e.kind() == kind).count()
    }
}

/// `at` is RFC 3339 UTC with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn check_at(at: &str) {
    let b = at.as_bytes();
    assert_eq!(b.len(), 24, "{at}");
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16], b[19], b[23]),
        (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
        "{at}"
    );
}

fn without_uptime(m: &BTreeMap<String, SidecarEntry>) -> BTreeMap<String, SidecarEntry> {
    m.iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            v.uptime_secs = None;
            (k.clone(), v)
        })
        .collect()
}

fn listed(runtime: &Path) -> BTreeMap<String, SidecarEntry> {
    let m = list(runtime)
        .unwrap()
        .into_iter()
        .map(|e| (e.sandbox_id.clone(), e))
        .collect();
    without_uptime(&m)
}

fn gone_of(ev: &Event, id: &str) -> Option<GoneReason> {
    match ev {
        Event::Gone {
            sandbox_id, reason, ..
        } if sandbox_id == id => Some(*reason),
        _ => None,
    }
}

const BOUND: Duration = Duration::from_secs(2);

/// Watches `runtime` and takes the events up to the first `synced`.
fn watch_synced(runtime: &Path, opts: &WatchOptions) -> (Watcher, Tracker) {
    let mut w = watch(runtime, opts).unwrap();
    let mut t = Tracker::default();
    t.until(&mut w, BOUND, "synced", |e| e.kind() == "synced");
    (w, t)
}

#[test]
fn appeared_for_existing_and_new_markers_and_synced_once() {
    let rt = runtime();
    let (a, b) = one_of_each(rt.path(), ["alpha", "beta", "dead-before", "broken"]);

    let (mut w, mut t) = watch_synced(rt.path(), &opts(1000, true));
    assert_eq!(t.count("appeared"), 2, "{:#?}", t.events);
    assert_eq!(t.state["alpha"].state, State::Running);
    assert_eq!(t.state["alpha"].pid, a.pid);
    assert_eq!(t.state["beta"].state, State::Unhealthy);
    assert_eq!(t.state["beta"].pid, b.pid);
    // The stale marker was collected silently (never announced), the
    // broken one left alone: exactly what list sees.
    assert!(!rt.path().join("run/dead-before").exists());
    assert!(rt.path().join("run/broken").exists());
    assert_eq!(without_uptime(&t.state), listed(rt.path()));

    let c = Sidecar::start(rt.path(), "gamma", &[]);
    let ev = t.until(&mut w, BOUND, "appeared gamma", |e| {
        e.sandbox_id() == Some("gamma")
    });
    match ev {
        Event::Appeared { entry, .. } => {
            assert_eq!(entry.pid, c.pid);
            assert_eq!(entry.state, State::Running);
        }
        other => panic!("expected appeared, got {other:?}"),
    }
    // A broken marker written meanwhile produces nothing; the stream goes on.
    write_marker(rt.path(), "broken-2", "pid = \"no\"");
    t.drain(&mut w, Duration::from_millis(300));
    assert_eq!(t.count("synced"), 1, "{:#?}", t.events);
    assert!(t.events.iter().all(|e| e.sandbox_id() != Some("broken-2")));
    assert_eq!(without_uptime(&t.state), listed(rt.path()));
}

#[test]
fn sigkilled_sidecar_is_gone_collected_within_the_bound() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "victim", &[]);
    // A long probe interval: only the pidfd can make it quick.
    let (mut w, mut t) = watch_synced(rt.path(), &opts(60_000, true));
    assert!(t.state.contains_key("victim"));
    let marker = sc.kill_and_reap();
    assert_eq!(t.until_gone(&mut w, "victim"), GoneReason::Collected);
    assert!(!marker.exists(), "the watcher collects as list does");
}

#[test]
fn sigkilled_sidecar_is_changed_to_stopped_without_collect() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "victim", &[]);
    let (mut w, mut t) = watch_synced(rt.path(), &opts(60_000, false));
    // Left a zombie: the pidfd fires on exit, before any reaping.
    let mut child = sc.kill_leave_zombie();
    let (previous, entry) = t.until_changed(&mut w, BOUND, "victim");
    assert_eq!(previous, State::Running);
    assert_eq!(entry.state, State::Stopped);
    child.wait().unwrap();
    assert!(
        rt.path().join("run/victim").exists(),
        "a read-only watcher removes nothing"
    );
    // Removing it by hand is then `gone`/`removed`.
    remove_marker(rt.path(), "victim").unwrap();
    assert_eq!(t.until_gone(&mut w, "victim"), GoneReason::Removed);
}

#[test]
fn endpoint_that_stops_answering_is_changed_to_unhealthy() {
    let rt = runtime();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The marker names this (live) test process; only the endpoint changes,
    // so nothing but the probe round can notice.
    create_marker(
        rt.path(),
        &meta("tcp-1", std::process::id(), Some(addr.to_string())),
    )
    .unwrap();
    let probe = Duration::from_millis(300);
    let (mut w, mut t) = watch_synced(rt.path(), &opts(probe.as_millis() as u64, true));
    assert_eq!(t.state["tcp-1"].state, State::Running);
    drop(listener);
    // One probe interval plus the probe timeout, with generous slack.
    let bound = probe + w.options().probe.timeout + Duration::from_secs(2);
    let (previous, entry) = t.until_changed(&mut w, bound, "tcp-1");
    assert_eq!(previous, State::Running);
    assert_eq!(entry.state, State::Unhealthy);
}

/// A fleet large enough for the socket-diagnostics dump: its rounds judge
/// each settled sidecar's socket file by the dump without looking it up
/// again. A socket file replaced under a live, pinned sidecar (the old one
/// moved aside and still listening) must not be judged in its place: once
/// the new listener closes, the sidecar is `unhealthy`, as `list` says.
#[test]
fn a_replaced_marker_socket_is_judged_afresh_by_the_rounds() {
    let rt = runtime();
    let mut listeners = Vec::new();
    for i in 0..8 {
        let dir = create_marker(
            rt.path(),
            &meta(&format!("q-{i}"), std::process::id(), None),
        )
        .unwrap();
        listeners.push(UnixListener::bind(dir.join("sidecar.sock")).unwrap());
    }
    let probe = Duration::from_millis(100);
    let (mut w, mut t) = watch_synced(rt.path(), &opts(probe.as_millis() as u64, true));
    assert!(t.state.values().all(|e| e.state == State::Running));
    // A few rounds (the watcher works while `next` waits): each socket
    // file is known to the rounds by now.
    t.drain(&mut w, probe * 4);
    let marker = rt.path().join("run/q-0");
    std::fs::rename(marker.join("sidecar.sock"), marker.join("old.sock")).unwrap();
    let replaced = UnixListener::bind(marker.join("sidecar.sock")).unwrap();
    t.drain(&mut w, probe * 4);
    assert_eq!(t.state["q-0"].state, State::Running, "{:#?}", t.events);
    drop(replaced);
    let bound = probe + w.options().probe.timeout + Duration::from_secs(2);
    let (previous, entry) = t.until_changed(&mut w, bound, "q-0");
    assert_eq!((previous, entry.state), (State::Running, State::Unhealthy));
    assert_eq!(without_uptime(&t.state), listed(rt.path()));
    drop(listeners);
}

#[test]
fn marker_removed_by_hand_is_gone_removed() {
    let rt = runtime();
    let dir = create_marker(rt.path(), &meta("by-hand", std::process::id(), None)).unwrap();
    let (mut w, mut t) = watch_synced(rt.path(), &opts(60_000, true));
    assert!(t.state.contains_key("by-hand"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(t.until_gone(&mut w, "by-hand"), GoneReason::Removed);
}

#[test]
fn metadata_replaced_in_place_is_changed() {
    let rt = runtime();
    let dir = create_marker(rt.path(), &meta("meta-1", std::process::id(), None)).unwrap();
    let (mut w, mut t) = watch_synced(rt.path(), &opts(60_000, true));
    let text = std::fs::read_to_string(dir.join("metadata.toml")).unwrap();
    let tmp = dir.join("metadata.toml.new");
    std::fs::write(&tmp, text.replace("session-w", "session-renamed")).unwrap();
    std::fs::rename(&tmp, dir.join("metadata.toml")).unwrap();
    let (_, entry) = t.until_changed(&mut w, BOUND, "meta-1");
    assert_eq!(entry.session_id, "session-renamed");
}

fn poll_in(fd: i32, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    n == 1 && p.revents & libc::POLLIN != 0
}

#[test]
fn descriptor_is_readable_when_events_wait() {
    let rt = runtime();
    let _a = Sidecar::start(rt.path(), "first", &[]);
    let mut w = watch(rt.path(), &opts(60_000, true)).unwrap();
    let fd = w.as_raw_fd();
    // The initial scan's events are queued: readable at once.
    assert!(poll_in(fd, 2000), "queued events must make the fd readable");
    let mut t = Tracker::default();
    while let Some(ev) = w.next(Some(Duration::ZERO)).unwrap() {
        t.apply(&ev);
    }
    assert_eq!(t.count("synced"), 1);
    // Nothing waits now (the next probe round is a minute away).
    assert!(
        !poll_in(fd, 0),
        "no events queued: the fd must not be readable"
    );
    let _b = Sidecar::start(rt.path(), "second", &[]);
    let end = Instant::now() + BOUND;
    while !t.state.contains_key("second") {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            poll_in(fd, left.as_millis() as i32),
            "the fd did not become readable for a new marker"
        );
        while let Some(ev) = w.next(Some(Duration::ZERO)).unwrap() {
            t.apply(&ev);
        }
    }
    // One event at a time: with more queued the fd stays readable.
    let _c = Sidecar::start(rt.path(), "third", &[]);
    let _d = Sidecar::start(rt.path(), "fourth", &[]);
    let end = Instant::now() + BOUND;
    while !(t.state.contains_key("third") && t.state.contains_key("fourth")) {
        let left = end.saturating_duration_since(Instant::now());
        assert!(poll_in(fd, left.as_millis() as i32), "fd not readable");
        if let Some(ev) = w.next(Some(Duration::ZERO)).unwrap() {
            t.apply(&ev);
        }
    }
}

#[test]
fn missing_run_dir_is_watched_until_it_appears() {
    let rt = runtime();
    // A long probe interval: only the watch on the runtime dir can make
    // it quick.
    let (mut w, mut t) = watch_synced(rt.path(), &opts(60_000, true));
    assert!(t.state.is_empty());
    let _a = Sidecar::start(rt.path(), "late", &[]);
    t.until(&mut w, BOUND, "appeared late", |e| {
        e.sandbox_id() == Some("late")
    });
}

#[test]
fn bad_options_are_refused_with_a_clear_error() {
    let rt = runtime();
    let mut o = opts(1000, true);
    o.probe_interval = Duration::ZERO;
    let e = watch(rt.path(), &o).err().unwrap();
    assert!(e.to_string().contains("probe_interval"), "{e}");
    assert!(watch("", &opts(1000, true)).is_err());
}

/// A process that lives until killed, used as a marker's pid.
fn sleeper() -> Child {
    Command::new("sleep").arg("3600").spawn().unwrap()
}

fn churn_scale() -> usize {
    std::env::var("FIRMA_WATCH_CHURN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Floods a watched marker directory with events (close-after-write of
/// two scratch files, alternating so the kernel cannot coalesce them), more
/// than the inotify queue holds, while nobody reads the stream. Returns
/// false when the queue is too large to flood quickly.
fn flood(marker: &Path) -> bool {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(usize::MAX);
    if max > 1_000_000 {
        return false;
    }
    let files = [marker.join("scratch-a"), marker.join("scratch-b")];
    for i in 0..max + 256 {
        drop(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&files[i % 2])
                .unwrap(),
        );
    }
    true
}

#[test]
fn churn_with_overflow_ends_with_the_state_list_returns() {
    let rt = runtime();
    let n = churn_scale();
    let mut sleepers: Vec<Child> = (0..n / 10 + 1).map(|_| sleeper()).collect();
    let flood_target =
        create_marker(rt.path(), &meta("flood-target", std::process::id(), None)).unwrap();
    let (mut w, mut t) = watch_synced(rt.path(), &opts(250, true));

    // A concurrent lister collects too: each stale id is reported by
    // exactly one of us.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lister = {
        let (dir, stop) = (rt.path().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut collected = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                collected.extend(firma_stack::sidecar_markers::gc_stale(&dir).unwrap());
                std::thread::sleep(Duration::from_millis(20));
            }
            collected
        })
    };

    let started = Instant::now();
    let mut created = 0usize;
    let mut flooded = false;
    let mut burst = 0;
    while created < n {
        // A burst of markers, each naming one of the sleepers.
        for _ in 0..(n / 6).max(1) {
            if created == n {
                break;
            }
            let pid = sleepers[created % sleepers.len()].id();
            let id = format!("churn-{created}");
            if created.is_multiple_of(10) {
                // The writer's way: one atomic rename (fsynced, slower).
                create_marker(rt.path(), &meta(&id, pid, None)).unwrap();
            } else {
                // A foreign writer's way: mkdir, then metadata.toml.
                write_marker(rt.path(), &id, &metadata(&id, pid.into(), ""));
            }
            created += 1;
        }
        // Read some of the stream, not all.
        for _ in 0..20 {
            if let Some(ev) = w.next(Some(Duration::ZERO)).unwrap() {
                t.apply(&ev);
            }
        }
        // Kill a sleeper (its markers become stale) and remove a few
        // markers by hand.
        if sleepers.len() > 2 {
            let mut s = sleepers.remove(burst % sleepers.len());
            s.kill().unwrap();
            s.wait().unwrap();
        }
        for k in (0..created).step_by(7).skip(burst).take(5) {
            let _ = remove_marker(rt.path(), &format!("churn-{k}"));
        }
        if burst == 2 {
            flooded = flood(&flood_target);
        }
        burst += 1;
    }
    eprintln!(
        "churn: {created} markers in {burst} bursts, {:?}",
        started.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let by_lister: HashSet<String> = lister.join().unwrap().into_iter().collect();

    // Let the stream settle, then the events must rebuild list exactly.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        t.drain(&mut w, Duration::from_millis(400));
        if without_uptime(&t.state) == listed(rt.path()) {
            break;
        }
        assert!(
            Instant::now() < end,
            "events never matched list:\nwatch: {:?}\nlist: {:?}",
            t.state.keys().collect::<Vec<_>>(),
            listed(rt.path()).keys().collect::<Vec<_>>()
        );
    }
    eprintln!(
        "churn: settled after {:?}, {} events",
        started.elapsed(),
        t.events.len()
    );
    for (id, g) in &t.gone {
        assert!(*g <= t.appeared[id], "{id} gone {g} times");
    }
    for ev in &t.events {
        if let Event::Gone {
            sandbox_id,
            reason: GoneReason::Collected,
            ..
        } = ev
        {
            assert!(
                !by_lister.contains(sandbox_id),
                "{sandbox_id} reported collected by both the watcher and gc_stale"
            );
        }
    }
    assert!(t.count("gone") > 0 && t.count("appeared") > 0);
    if flooded {
        let resync = t
            .events
            .iter()
            .position(|e| matches!(e, Event::Resync { reason, .. } if reason.contains("overflow")))
            .expect("the flood must overflow the inotify queue and cause a resync");
        assert!(
            t.events[resync..].iter().any(|e| e.kind() == "synced"),
            "a resync is followed by synced"
        );
    } else {
        eprintln!(
            "LOUD: inotify max_queued_events is too large to flood here; the overflow path was NOT exercised"
        );
        panic!("cannot force an inotify overflow on this machine (max_queued_events too large)");
    }
    for mut s in sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
}

/// A watcher shared between threads (what the C handle is):
/// one thread waiting for an event without a deadline holds nothing while
/// it waits, so another thread's `next` with a deadline returns at it —
/// were the step held across the wait, it would never return at all.
#[test]
fn a_shared_watcher_keeps_every_callers_deadline() {
    let rt = runtime();
    let w = std::sync::Arc::new(SharedWatcher::new(
        watch(rt.path(), &opts(60_000, true)).unwrap(),
    ));
    let first = w
        .next(Some(Instant::now() + Duration::from_secs(10)))
        .unwrap();
    assert!(matches!(first, Some(Event::Synced { .. })), "{first:?}");
    let waiter = std::thread::spawn({
        let w = std::sync::Arc::clone(&w);
        move || w.next(None)
    });
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..20 {
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = std::sync::Arc::clone(&w);
        std::thread::spawn(move || {
            let _ = tx.send(shared.next(Some(Instant::now() + Duration::from_millis(10))));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a next with a deadline waited behind a next without one");
        assert!(got.unwrap().is_none());
    }
    // A marker wakes the waiter with its event.
    create_marker(rt.path(), &meta("woke", std::process::id(), None)).unwrap();
    let ev = waiter.join().unwrap().unwrap();
    assert!(matches!(ev, Some(Event::Appeared { .. })), "{ev:?}");
}

/// A signal the caller's program handles (here SIGUSR1, with a handler
/// that does nothing, without `SA_RESTART`) interrupts the wait in
/// `next`, as a Python or Go program's handlers do: no error, `next`
/// waits on and returns the next event.
#[test]
fn a_signal_while_waiting_is_no_error() {
    let rt = runtime();
    let (mut w, _) = watch_synced(rt.path(), &opts(60_000, true));
    let mut sidecar = None;
    // Nothing comes before the sidecar started once the signals were sent.
    let got = interrupted(
        || {
            w.next(Some(Duration::from_secs(30)))
                .map(|ev| ev.map(|e| e.kind()))
        },
        || sidecar = Some(Sidecar::start(rt.path(), "after", &[])),
    );
    assert_eq!(got.unwrap(), Some("appeared"));
}
