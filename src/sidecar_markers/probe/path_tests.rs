//! Looking a socket path up on real sockets: in a child process, cached,
//! once per flight of probes (stuck paths answer at once), and the
//! descriptors that lookups hold. The prober's other real-socket tests are
//! `socket_tests.rs`; the pure tables `tests.rs`.

use super::path::{FLIGHTS, connect_path_in_child, land};
use super::tests::{Scratch, accepted, long_listener};
use super::*;
use std::sync::{Condvar, Mutex};

/// The lookup in a child process answers as a connect here would: a
/// listener, a path too long for `sun_path` (reached from its parent as
/// the child's working directory), a missing path, a regular file; and the
/// listener sees the child's connection (the connect really happened).
#[test]
fn a_lookup_in_a_child_process_answers_like_a_connect() {
    use std::os::unix::net::UnixListener;
    let dir = Scratch::new("child");
    let short = dir.0.join("s.sock");
    let l = UnixListener::bind(&short).unwrap();
    l.set_nonblocking(true).unwrap();
    assert_eq!(connect_path_in_child(&short), Outcome::Serving);
    assert!(
        l.accept().is_ok(),
        "the child's connection reached the listener"
    );

    let (long, _l2) = long_listener(&dir);
    assert_eq!(connect_path_in_child(&long), Outcome::Serving);

    assert_eq!(
        connect_path_in_child(&dir.0.join("absent.sock")),
        Outcome::Missing
    );
    std::fs::write(dir.0.join("file"), "x").unwrap();
    assert_eq!(connect_path_in_child(&dir.0.join("file")), Outcome::Refused);
}

/// The cached lookup finds what the dentry cache holds (a file just made)
/// and its cached attributes name the same inode as `stat`.
#[test]
fn a_cached_lookup_and_cached_attributes_name_the_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = Scratch::new("cached");
    let p = dir.0.join("f");
    std::fs::write(&p, "x").unwrap();
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let fd = sys::lookup::open_cached(&c)
        .unwrap()
        .expect("a file just created is in the dentry cache");
    let st = sys::lookup::fstat_cached(fd.as_fd()).unwrap();
    let md = std::fs::metadata(&p).unwrap();
    assert_eq!((st.st_dev, st.st_ino), (md.dev(), md.ino()));
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFREG);
    let missing = std::ffi::CString::new(dir.0.join("nope").as_os_str().as_bytes()).unwrap();
    match sys::lookup::open_cached(&missing) {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
        Ok(None) => {} // not in the cache as a negative entry: the slow path.
        Ok(Some(_)) => panic!("a missing file was opened"),
    }
}

/// Held by each test that puts flights in [`FLIGHTS`] (process-wide):
/// one at a time, so none sees another's.
pub(super) fn flights_alone() -> std::sync::MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A flight in [`FLIGHTS`] for `path`, started `age` ago, with `answer`.
fn fake_flight(path: &Path, age: Duration, answer: Option<Outcome>) -> Arc<Flight> {
    let f = Arc::new(Flight {
        started: Instant::now() - age,
        answer: Mutex::new(answer),
        answered: Condvar::new(),
    });
    FLIGHTS
        .lock()
        .unwrap()
        .push((path.to_path_buf(), f.clone()));
    f
}

/// The one-lookup-per-path rule (docs/design.md, "Probing"): a lookup in
/// flight is joined, not repeated; one older than the timeout is stuck and
/// so is every path in its directory, answered at once; one that has
/// already answered is landing and never joined (its answer predates the
/// probe).
#[test]
fn a_path_is_looked_up_once_stuck_paths_answer_at_once_and_answers_are_not_reused() {
    let _alone = flights_alone();
    let dir = Scratch::new("flights");
    let timeout = Duration::from_secs(1);
    let deadline = || Instant::now() + Duration::from_secs(5);

    let young = dir.0.join("young/a.sock");
    let f = fake_flight(&young, Duration::ZERO, None);
    match connect_unix_path_guarded(young.clone(), deadline(), timeout) {
        PathProbe::Waiting(g) => assert!(Arc::ptr_eq(&f, &g), "joined"),
        PathProbe::Done(o) => panic!("a second lookup or an answer: {o:?}"),
    }
    land(&f);

    let stuck = dir.0.join("hung/a.sock");
    let f = fake_flight(&stuck, Duration::from_secs(10), None);
    for p in [stuck.clone(), dir.0.join("hung/b.sock")] {
        match connect_unix_path_guarded(p.clone(), deadline(), timeout) {
            PathProbe::Done(o) => assert_eq!(o, Outcome::Stuck, "{p:?}"),
            PathProbe::Waiting(_) => panic!("{p:?}: looked up again"),
        }
    }
    // Elsewhere, a real lookup (in a child process) of a missing path.
    match connect_unix_path_guarded(dir.0.join("elsewhere.sock"), deadline(), timeout) {
        PathProbe::Waiting(g) => assert_eq!(g.wait_until(deadline()), Some(Outcome::Missing)),
        PathProbe::Done(o) => panic!("not stuck, not looked up: {o:?}"),
    }
    land(&f);

    let landing = dir.0.join("landing.sock");
    let f = fake_flight(&landing, Duration::from_secs(10), Some(Outcome::Serving));
    match connect_unix_path_guarded(landing.clone(), deadline(), timeout) {
        PathProbe::Waiting(g) => {
            assert!(!Arc::ptr_eq(&f, &g), "an old answer reused");
            assert_eq!(g.wait_until(deadline()), Some(Outcome::Missing));
        }
        PathProbe::Done(o) => panic!("{o:?}"),
    }
    land(&f);
}

/// A path probe made directly (no openat2, or no child process allowed)
/// answers as a connect: a listener, one at a path too long for
/// `sun_path` (reached through its directory's descriptor), a missing
/// directory on the way.
#[test]
fn a_direct_path_probe_answers_like_a_connect_long_paths_too() {
    use std::os::unix::net::UnixListener;
    let dir = Scratch::new("direct");
    let short = dir.0.join("s.sock");
    let l = UnixListener::bind(&short).unwrap();
    assert_eq!(path::connect_path_blocking(&short), Outcome::Serving);
    assert_eq!(accepted(&l), 1);

    let (long, l) = long_listener(&dir);
    assert_eq!(path::connect_path_blocking(&long), Outcome::Serving);
    assert_eq!(accepted(&l), 1);
    assert_eq!(
        path::connect_path_blocking(&dir.0.join("d".repeat(120)).join("x.sock")),
        Outcome::Missing
    );
}

/// Waiting for a flight's answer returns it when it comes before the
/// deadline (not giving up at once), and nothing once the deadline has
/// passed without one.
#[test]
fn a_flight_is_waited_for_until_its_answer_or_the_deadline() {
    let f = Arc::new(Flight {
        started: Instant::now(),
        answer: Mutex::new(None),
        answered: Condvar::new(),
    });
    assert!(!f.has_answered());
    assert_eq!(f.wait_until(Instant::now()), None);
    let g = f.clone();
    let answering = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        g.answer(Outcome::Refused);
    });
    assert_eq!(
        f.wait_until(Instant::now() + Duration::from_secs(30)),
        Some(Outcome::Refused)
    );
    answering.join().unwrap();
    assert!(f.has_answered());
}

/// The `O_PATH` descriptors `socket_listener` opens on the marker's socket
/// and a direct probe of a long path on its directory are close-on-exec:
/// while another thread makes both in a loop (so they are open much of
/// the time), none of up to 40 programs started meanwhile inherits one.
/// (The correct code cannot fail this; a descriptor without close-on-exec
/// is caught within a few.)
#[test]
fn the_socket_path_descriptors_of_probes_are_close_on_exec() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = Scratch::new("cloexec");
    let sock = dir.0.join("sidecar.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let fd = sys::open(&dir.0, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).unwrap();
    let (long, long_l) = long_listener(&dir);
    let stop = AtomicBool::new(false);
    let inherited = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                assert!(socket_listener(Loc::Dir(fd.as_fd())).is_some());
                accepted(&l);
                assert_eq!(path::connect_path_blocking(&long), Outcome::Serving);
                accepted(&long_l);
            }
        });
        let found = (0..40).find_map(|_| {
            let listing = std::process::Command::new("ls")
                .args(["-l", "/proc/self/fd/"])
                .output()
                .unwrap();
            let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
            let deep = long.parent().unwrap().to_str().unwrap();
            (listing.contains(sock.to_str().unwrap()) || listing.contains(deep)).then_some(listing)
        });
        stop.store(true, Ordering::Relaxed);
        found
    });
    assert_eq!(inherited, None);
}

/// At most [`MAX_PATH_THREADS`](path::MAX_PATH_THREADS) lookups are in
/// flight: with that many, a probe waits for one to end, until its
/// deadline, then answers `probe_unavailable` without a lookup.
#[test]
fn past_the_most_lookups_in_flight_a_probe_waits_for_one_then_gives_up() {
    let _alone = flights_alone();
    let dir = Scratch::new("cap");
    let timeout = Duration::from_secs(60);
    let in_flight = FLIGHTS.lock().unwrap().len();
    let mine: Vec<_> = (in_flight..path::MAX_PATH_THREADS)
        .map(|i| fake_flight(&dir.0.join(format!("{i}/a.sock")), Duration::ZERO, None))
        .collect();
    let probe = dir.0.join("probed.sock");
    match connect_unix_path_guarded(probe.clone(), Instant::now(), timeout) {
        PathProbe::Done(o) => assert!(matches!(o, Outcome::Unavailable(_)), "{o:?}"),
        PathProbe::Waiting(_) => panic!("a lookup past the most in flight"),
    }
    // One lands meanwhile: the probe waiting for it gets its lookup.
    let first = mine[0].clone();
    let landing = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        land(&first);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    match connect_unix_path_guarded(probe, deadline, timeout) {
        PathProbe::Waiting(g) => assert_eq!(g.wait_until(deadline), Some(Outcome::Missing)),
        PathProbe::Done(o) => panic!("did not wait for a lookup to end: {o:?}"),
    }
    landing.join().unwrap();
    let still: Vec<_> = FLIGHTS
        .lock()
        .unwrap()
        .iter()
        .map(|(_, f)| f.clone())
        .collect();
    assert!(
        mine[1..]
            .iter()
            .all(|f| still.iter().any(|g| Arc::ptr_eq(f, g))),
        "landing one took others with it"
    );
    for f in &mine {
        land(f);
    }
}
