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
    // A spent pidfd budget loses no event: its resync goes out at once,
    // with no full scan owed, once.
    e.degrade(d("pidfd-budget", "budget spent"));
    assert_eq!(resync_reason(next_now(&mut e)), "budget spent");
    e.degrade(d("pidfd-budget", "budget spent"));
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

/// Long enough that no probe round or rescan comes during a test: what
/// the engine reports then, a trigger (inotify, a pidfd) brought.
const HOUR: Duration = Duration::from_secs(3600);

/// The "never hangs" bound for what a trigger brings.
const BOUND: Duration = Duration::from_secs(20);

/// Options with this probe interval and no rescan during a test.
fn every(probe_interval: Duration) -> WatchOptions {
    WatchOptions {
        probe_interval,
        rescan_interval: HOUR,
        ..WatchOptions::default()
    }
}

/// Sidecars of the tests: one process of their own and a marker for
/// each id (identity recorded, so verified; the endpoint its own socket,
/// which only `listen` binds: `unhealthy` until then). Killed when
/// dropped.
struct Sidecars {
    child: std::process::Child,
    dirs: Vec<std::path::PathBuf>,
}

impl Sidecars {
    fn start(runtime: &std::path::Path, ids: &[&str]) -> Sidecars {
        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let dirs = ids
            .iter()
            .map(|id| {
                let meta = crate::sidecar_markers::MetadataFile::seed_for_test(id, child.id());
                crate::sidecar_markers::create_marker(runtime, &meta).unwrap()
            })
            .collect();
        Sidecars { child, dirs }
    }

    /// The endpoint of the `i`th, answering while the listener is held.
    fn listen(&self, i: usize) -> std::os::unix::net::UnixListener {
        std::os::unix::net::UnixListener::bind(self.dirs[i].join(read::DEFAULT_SOCKET)).unwrap()
    }
}

impl Drop for Sidecars {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sidecar `id` of `runtime`, watched by an engine with no probe
/// round due for an hour, past its initial scan.
fn watching_one(runtime: &std::path::Path, id: &str) -> (Sidecars, Engine) {
    let s = Sidecars::start(runtime, &[id]);
    let mut e = Engine::start(runtime.to_path_buf(), &every(HOUR)).unwrap();
    assert_eq!(
        drain(&mut e),
        [format!("appeared {id} unhealthy"), "synced".into()]
    );
    (s, e)
}

/// An event in brief: its kind, then its sandbox id and what changed.
fn brief(ev: &Event) -> String {
    match ev {
        Event::Appeared {
            sandbox_id, entry, ..
        } => format!("appeared {sandbox_id} {}", entry.state.as_str()),
        Event::Changed {
            sandbox_id,
            entry,
            previous,
            ..
        } => format!(
            "changed {sandbox_id} {} from {}",
            entry.state.as_str(),
            previous.as_str()
        ),
        Event::Gone {
            sandbox_id, reason, ..
        } => format!("gone {sandbox_id} {}", reason.as_str()),
        Event::Resync { reason, .. } => format!("resync {reason}"),
        Event::Synced { .. } => "synced".into(),
    }
}

/// Every event queued now, in brief.
fn drain(e: &mut Engine) -> Vec<String> {
    std::iter::from_fn(|| next_now(e))
        .map(|ev| brief(&ev))
        .collect()
}

/// The next event within [`BOUND`], in brief.
fn next_within_bound(e: &mut Engine) -> Option<String> {
    e.next(Some(BOUND)).unwrap().map(|ev| brief(&ev))
}

/// Whether the engine's descriptor turns readable within `timeout_ms`.
fn readable(e: &Engine, timeout_ms: i32) -> bool {
    let mut p = [libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&e.as_fd()),
        events: libc::POLLIN,
        revents: 0,
    }];
    sys::poll(&mut p, timeout_ms).unwrap() == 1
}

/// The sidecars of the initial scan appear, each pinned by a pidfd (no
/// degradation), and are known; an exit while `next` waits is `gone` at
/// once, with no probe round or rescan due for an hour.
#[test]
fn an_exit_while_waiting_is_gone_through_its_pidfd() {
    let rt = tempfile::tempdir().unwrap();
    let a = Sidecars::start(rt.path(), &["sb-a"]);
    let _b = Sidecars::start(rt.path(), &["sb-b"]);
    let opts = every(HOUR);
    let mut e = Engine::start(rt.path().to_path_buf(), &opts).unwrap();
    assert_eq!(e.options(), &opts);
    assert_eq!(
        drain(&mut e),
        [
            "appeared sb-a unhealthy",
            "appeared sb-b unhealthy",
            "synced"
        ]
    );
    assert_eq!(e.known().keys().collect::<Vec<_>>(), ["sb-a", "sb-b"]);
    assert!(e.pids.pinned("sb-a") && e.pids.pinned("sb-b"));
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(a);
    });
    let gone = next_within_bound(&mut e);
    killer.join().unwrap();
    assert_eq!(gone.as_deref(), Some("gone sb-a collected"));
    assert_eq!(drain(&mut e), Vec::<String>::new());
    assert_eq!(e.known().keys().collect::<Vec<_>>(), ["sb-b"]);
}

/// The descriptor is readable exactly while events are queued, and again
/// when the timer says work is due.
#[test]
fn the_descriptor_is_readable_while_events_wait_and_when_work_is_due() {
    let rt = tempfile::tempdir().unwrap();
    let mut e = Engine::start(rt.path().to_path_buf(), &every(HOUR)).unwrap();
    assert!(readable(&e, 0), "the initial synced waits");
    assert_eq!(drain(&mut e), ["synced"]);
    assert!(!readable(&e, 0), "nothing queued, nothing due for an hour");
    let mut e = Engine::start(rt.path().to_path_buf(), &every(Duration::from_millis(50))).unwrap();
    assert_eq!(drain(&mut e), ["synced"]);
    assert!(
        readable(&e, BOUND.as_millis() as i32),
        "the timer armed for the next probe round"
    );
}

/// `run/` that cannot be opened (a file in its way) is an error of `next`
/// and one `resync` for the episode, however often it is tried again;
/// the `synced` follows the first full scan that works.
#[test]
fn an_unreadable_run_dir_is_one_resync_until_it_reads_again() {
    let rt = tempfile::tempdir().unwrap();
    let run = rt.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let mut e = started(rt.path());
    std::fs::remove_dir(&run).unwrap();
    std::fs::write(&run, b"").unwrap();
    e.look(Look::Rescan);
    assert!(e.next(Some(Duration::ZERO)).is_err());
    let reason = resync_reason(next_now(&mut e));
    assert!(reason.starts_with("cannot look at run/ ("), "{reason}");
    assert!(e.next(Some(BOUND)).is_err(), "tried again after a pause");
    assert_eq!(next_now(&mut e), None, "one resync per episode");
    std::fs::remove_file(&run).unwrap();
    std::fs::create_dir(&run).unwrap();
    assert_eq!(next_within_bound(&mut e).as_deref(), Some("synced"));
}

/// A marker's directory is watched, whether the initial scan found it or
/// it came later: its socket bound is seen at once (`changed` to
/// `running`), with no probe round due for an hour.
#[test]
fn a_socket_bound_in_a_marker_is_seen_through_its_watch() {
    let rt = tempfile::tempdir().unwrap();
    let (first, mut e) = watching_one(rt.path(), "sb-first");
    let later = Sidecars::start(rt.path(), &["sb-later"]);
    assert_eq!(
        next_within_bound(&mut e).as_deref(),
        Some("appeared sb-later unhealthy")
    );
    for (s, id) in [(&first, "sb-first"), (&later, "sb-later")] {
        let _listener = s.listen(0);
        assert_eq!(
            next_within_bound(&mut e),
            Some(format!("changed {id} running from unhealthy"))
        );
    }
}

/// The sidecar `sb-a` of `runtime`, serving through the listener
/// returned, watched by an engine with a probe round every 50 ms, past
/// its initial scan.
fn serving_with_rounds(
    runtime: &std::path::Path,
) -> (Sidecars, std::os::unix::net::UnixListener, Engine) {
    let s = Sidecars::start(runtime, &["sb-a"]);
    let listener = s.listen(0);
    let mut e = Engine::start(runtime.to_path_buf(), &every(Duration::from_millis(50))).unwrap();
    assert_eq!(drain(&mut e), ["appeared sb-a running", "synced"]);
    (s, listener, e)
}

/// A probe round probes a settled sidecar's endpoint and judges it again
/// in full when the answer disagrees: a listener closed (no trigger
/// sees that) is `changed` to `unhealthy` by the next round.
#[test]
fn a_round_sees_an_endpoint_that_stops_answering() {
    let rt = tempfile::tempdir().unwrap();
    let (_s, listener, mut e) = serving_with_rounds(rt.path());
    drop(listener);
    assert_eq!(
        next_within_bound(&mut e).as_deref(),
        Some("changed sb-a unhealthy from running")
    );
}

/// A sidecar without a pidfd (over the budget, say) is judged in full by
/// every probe round, not only probed: its exit is seen there even while
/// its endpoint, held by another process, still answers.
#[test]
fn a_round_judges_an_unpinned_sidecar_in_full() {
    let rt = tempfile::tempdir().unwrap();
    let (s, _listener, mut e) = serving_with_rounds(rt.path());
    e.pids.release(&e.epoll, "sb-a");
    drop(s);
    assert_eq!(
        next_within_bound(&mut e).as_deref(),
        Some("gone sb-a collected")
    );
}

/// Whether a connection waits on `listener`: a probe connected to it.
fn connected(listener: &std::os::unix::net::UnixListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    let mut any = false;
    while listener.accept().is_ok() {
        any = true;
    }
    any
}

/// A fleet (at least [`FLEET_MIN_ENTRIES`] markers) is judged by each
/// round's socket-diagnostics dump, with no connect: the first round
/// finds each settled sidecar's socket file, the next ones judge by it
/// alone, and one that stops listening is judged again in full.
#[test]
fn a_fleets_rounds_judge_by_the_dump_without_connecting() {
    let rt = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..FLEET_MIN_ENTRIES).map(|i| format!("sb-{i}")).collect();
    let s = Sidecars::start(
        rt.path(),
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut listeners: Vec<_> = (0..ids.len()).map(|i| s.listen(i)).collect();
    let mut e = Engine::start(rt.path().to_path_buf(), &every(HOUR)).unwrap();
    let mut want: Vec<String> = ids
        .iter()
        .map(|id| format!("appeared {id} running"))
        .collect();
    want.push("synced".into());
    assert_eq!(drain(&mut e), want);
    for l in &listeners {
        connected(l);
    }
    e.probe_round(BTreeSet::new()).unwrap();
    assert_eq!(e.pids.quiet().count(), ids.len(), "each socket file found");
    e.probe_round(BTreeSet::new()).unwrap();
    assert!(
        !listeners.iter().any(connected),
        "no connect: the dump judged"
    );
    assert_eq!(
        e.pids.quiet().count(),
        ids.len(),
        "none judged in full (which forgets the socket file)"
    );
    assert_eq!(drain(&mut e), Vec::<String>::new());
    drop(listeners.remove(0));
    e.probe_round(BTreeSet::new()).unwrap();
    assert_eq!(drain(&mut e), ["changed sb-0 unhealthy from running"]);
    assert!(!listeners.iter().any(connected));
}

/// Markers a shortage kept from being judged keep their last state: one
/// `resync` says so for the episode, they are judged again after a
/// pause, and the `synced` follows once they were.
#[test]
fn markers_held_by_a_shortage_are_one_resync_then_judged_again() {
    let rt = tempfile::tempdir().unwrap();
    let (_s, mut e) = watching_one(rt.path(), "sb-a");
    let scope: BTreeSet<String> = ["sb-a".to_string()].into();
    for _ in 0..2 {
        let short = Scan {
            reports: vec![crate::sidecar_markers::watch::diff::tests::failed_read(
                "sb-a",
                libc::EMFILE,
            )],
            ..Scan::default()
        };
        e.apply(short, Some(&scope));
    }
    assert_eq!(
        drain(&mut e),
        [
            "resync out of descriptors or memory judging 1 marker(s) (first sb-a): \
          their last state stands until they are judged again"
        ]
    );
    assert_eq!(e.known()["sb-a"].state, State::Unhealthy);
    assert_eq!(next_within_bound(&mut e).as_deref(), Some("synced"));
    assert_eq!(e.known()["sb-a"].state, State::Unhealthy);
}

/// A fleet's initial events all come out, in order, however many: the
/// queue's room is given back only once it is empty.
#[test]
fn a_fleets_initial_events_all_come_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    let ids: Vec<String> = (0..=QUEUE_KEPT).map(|i| format!("sb-{i:04}")).collect();
    for id in &ids {
        e.push(Event::Gone {
            sandbox_id: id.clone(),
            reason: super::super::events::GoneReason::Removed,
            at: now_rfc3339(),
        });
    }
    let want: Vec<String> = ids.iter().map(|id| format!("gone {id} removed")).collect();
    assert_eq!(drain(&mut e), want);
}
