//! The pure parts of the prober, as tables: what an errno says about an
//! endpoint, the state and reason of each outcome, the connect window, the
//! deadline and poll arithmetic; and, on real sockets, the lookup in a
//! child process and the cached lookup.

use super::path::{FLIGHTS, connect_path_in_child, land};
use super::*;
use std::sync::{Condvar, Mutex};

/// Every errno a connect can end with names one outcome
/// (docs/design.md, "Reason codes"); one the table does not know is a
/// `connect_error` carrying it.
#[test]
fn errnos_classify_as_the_reason_codes_say() {
    let short = Outcome::Unavailable("out of descriptors or memory");
    let table = [
        (libc::EACCES, Outcome::PermissionDenied),
        (libc::EPERM, Outcome::PermissionDenied),
        (libc::ENOENT, Outcome::Missing),
        (libc::ENOTDIR, Outcome::Missing),
        (libc::ECONNREFUSED, Outcome::Refused),
        (libc::ECONNRESET, Outcome::Refused),
        (libc::ECONNABORTED, Outcome::Refused),
        (libc::EAGAIN, Outcome::BacklogFull),
        (libc::ETIMEDOUT, Outcome::Timeout),
        (libc::ENOTSOCK, Outcome::NotASocket),
        (libc::EPROTOTYPE, Outcome::NotASocket),
        (libc::ENXIO, Outcome::NotASocket),
        (libc::ENETUNREACH, Outcome::Unreachable),
        (libc::EHOSTUNREACH, Outcome::Unreachable),
        (libc::EADDRNOTAVAIL, Outcome::Unreachable),
        (libc::ENETDOWN, Outcome::Unreachable),
        (libc::EHOSTDOWN, Outcome::Unreachable),
        (libc::EMFILE, short),
        (libc::ENFILE, short),
        (libc::ENOBUFS, short),
        (libc::ENOMEM, short),
        (libc::EINVAL, Outcome::ConnectError(libc::EINVAL)),
        (
            libc::ENAMETOOLONG,
            Outcome::ConnectError(libc::ENAMETOOLONG),
        ),
        (libc::EIO, Outcome::ConnectError(libc::EIO)),
    ];
    for (errno, want) in table {
        assert_eq!(classify(errno), want, "errno {errno}");
    }
}

/// A failed call without an errno counts as `EIO`.
#[test]
fn an_error_without_errno_is_eio() {
    let table = [
        (
            std::io::Error::from_raw_os_error(libc::EAGAIN),
            libc::EAGAIN,
        ),
        (std::io::Error::other("no errno"), libc::EIO),
    ];
    for (e, want) in table {
        assert_eq!(errno_of(&e), want, "{e}");
    }
}

/// The state and reason code of each outcome: only a connection is
/// `running`; our own shortage and a permission refusal are `unknown`;
/// everything else the endpoint did is `unhealthy`.
#[test]
fn each_outcome_has_its_state_and_reason() {
    use Reason as R;
    use State::{Running, Unhealthy, Unknown};
    let table = [
        (Outcome::Serving, Running, R::Serving),
        (Outcome::Listening, Running, R::Serving),
        (Outcome::Missing, Unhealthy, R::EndpointMissing),
        (Outcome::Refused, Unhealthy, R::ConnectionRefused),
        (Outcome::BacklogFull, Unhealthy, R::BacklogFull),
        (Outcome::Timeout, Unhealthy, R::Timeout),
        // A stuck path keeps the verdict its first probe gave at its
        // deadline (docs/design.md, "Probing").
        (Outcome::Stuck, Unhealthy, R::Timeout),
        (Outcome::PermissionDenied, Unknown, R::PermissionDenied),
        (Outcome::NotASocket, Unhealthy, R::NotASocket),
        (Outcome::Unreachable, Unhealthy, R::Unreachable),
        (
            Outcome::ConnectError(libc::EINVAL),
            Unhealthy,
            R::ConnectError,
        ),
        (Outcome::Unavailable("why"), Unknown, R::ProbeUnavailable),
    ];
    for (outcome, state, reason) in table {
        assert_eq!(
            (outcome.state(), outcome.reason()),
            (state, reason),
            "{outcome:?}"
        );
        let detail = outcome.detail();
        assert!(!detail.is_empty() && !detail.contains('\n'), "{outcome:?}");
    }
}

/// The two outcomes that carry something say it in their detail.
#[test]
fn details_name_the_errno_and_the_shortage() {
    let einval = std::io::Error::from_raw_os_error(libc::EINVAL).to_string();
    let table = [
        (
            Outcome::ConnectError(libc::EINVAL),
            format!("connect failed: {einval}"),
        ),
        (
            Outcome::Unavailable("no threads"),
            "the probe could not be made: no threads".to_string(),
        ),
    ];
    for (outcome, want) in table {
        assert_eq!(outcome.detail(), want);
    }
}

/// Half of what the soft limit leaves after the headroom, shared by the
/// workers, between 1 and 2^16; an unknown limit counts as 2^20.
#[test]
fn the_window_shares_half_the_descriptors_between_workers() {
    let table: [(Option<u64>, usize, usize); 11] = [
        (Some(1024), 1, 480),
        (Some(1024), 4, 120),
        (Some(1024), 0, 480),
        (Some(1024), 7, 68),
        (Some(FD_HEADROOM + 2), 1, 1),
        (Some(FD_HEADROOM), 1, 1),
        (Some(10), 8, 1),
        (Some(2 * 65_535 + FD_HEADROOM), 1, 65_535),
        (Some(2 * 65_536 + FD_HEADROOM), 1, 65_536),
        (Some(u64::MAX), 1, 65_536),
        (None, 8, 65_532),
    ];
    for (soft, workers, want) in table {
        assert_eq!(window_for(soft, workers), want, "{soft:?} / {workers}");
    }
}

/// A deadline is start + timeout; one past what the clock holds is a year.
#[test]
fn deadlines_add_the_timeout_or_cap_at_a_year() {
    let now = Instant::now();
    let year = Duration::from_secs(86_400 * 365);
    let table = [
        (Duration::ZERO, Duration::ZERO),
        (Duration::from_millis(200), Duration::from_millis(200)),
        (Duration::from_secs(600), Duration::from_secs(600)),
        (Duration::MAX, year),
    ];
    for (timeout, want) in table {
        assert_eq!(deadline_after(now, timeout) - now, want, "{timeout:?}");
    }
}

/// poll(2) waits whole milliseconds, rounded up (a remainder of a
/// microsecond is a millisecond, not a spin), at most `i32::MAX`.
#[test]
fn poll_waits_whole_milliseconds_rounded_up() {
    let table = [
        (Duration::ZERO, 0),
        (Duration::from_nanos(999), 0),
        (Duration::from_micros(1), 1),
        (Duration::from_micros(999), 1),
        (Duration::from_millis(1), 1),
        (Duration::from_micros(1_001), 2),
        (Duration::from_millis(200), 200),
        (Duration::from_millis(i32::MAX as u64), i32::MAX),
        (Duration::from_millis(i32::MAX as u64 + 1), i32::MAX),
        (Duration::MAX, i32::MAX),
    ];
    for (wait, want) in table {
        assert_eq!(poll_ms(wait), want, "{wait:?}");
    }
}

/// A scratch directory under the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("firma-probe-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A listener at a path in `dir` too long for `sun_path`, and that path.
fn long_listener(dir: &Scratch) -> (PathBuf, std::os::unix::net::UnixListener) {
    let deep = dir.0.join("d".repeat(100));
    std::fs::create_dir_all(&deep).unwrap();
    let long = deep.join("long.sock");
    assert!(long.as_os_str().len() >= 108, "longer than sun_path");
    // bind(2) cannot take it either: bind through the directory's
    // descriptor (the working directory is the other tests' too).
    let d = std::fs::File::open(&deep).unwrap();
    let via = format!("/proc/self/fd/{}/long.sock", d.as_raw_fd());
    (long, std::os::unix::net::UnixListener::bind(via).unwrap())
}

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
fn flights_alone() -> std::sync::MutexGuard<'static, ()> {
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

/// Probes the marker socket of the marker directory at `dir`, the prober
/// being told the marker's path is `path` (the same, unless a test moved
/// the directory): what `start` answers at once, and what `finish` gives.
fn probe_marker_socket(
    dir: &Path,
    path: &Path,
    fleet: Option<&Fleet>,
) -> (Option<Outcome>, Vec<(usize, Outcome)>) {
    let fd = sys::open(dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).unwrap();
    let mut fds = sys::MarkerFds::default();
    let mut prober = Prober::new(Duration::from_secs(5), 4, fleet);
    let at_once = prober.start(
        7,
        &Endpoint::MarkerSocket,
        Loc::Dir(fd.as_fd()),
        path,
        &mut fds,
    );
    (at_once, prober.finish())
}

/// Connections waiting on `l` (accepting them).
fn accepted(l: &std::os::unix::net::UnixListener) -> usize {
    l.set_nonblocking(true).unwrap();
    l.incoming().take_while(Result::is_ok).count()
}

/// The marker's own listening socket is answered at once: by one connect
/// (exactly one: the listener sees it), or, with a fleet probe, from the
/// dump without any connection.
#[test]
fn the_marker_socket_is_connected_to_once_or_judged_by_the_fleet_without_connecting() {
    let dir = Scratch::new("marker-socket");
    let l = std::os::unix::net::UnixListener::bind(dir.0.join("sidecar.sock")).unwrap();
    assert_eq!(
        probe_marker_socket(&dir.0, &dir.0, None),
        (Some(Outcome::Serving), vec![])
    );
    assert_eq!(accepted(&l), 1, "one connect, no second try");

    let fleet = Fleet::new(Duration::from_secs(5));
    assert_eq!(fleet.refused(), None, "the kernel refused the dump");
    assert_eq!(
        probe_marker_socket(&dir.0, &dir.0, Some(&fleet)),
        (Some(Outcome::Listening), vec![])
    );
    assert_eq!(accepted(&l), 0, "the fleet probe connected");
}

/// A `sidecar.sock` that is a symlink is a path the library does not
/// control: looked up by path (guarded), which finds the listener. One
/// that is missing is `endpoint_missing` at once, from the marker
/// directory that was opened: never looked up again by path (where a
/// replaced marker directory now has a listener).
#[test]
fn a_symlinked_marker_socket_is_looked_up_by_path_a_missing_one_is_not() {
    let _alone = flights_alone();
    let dir = Scratch::new("marker-symlink");
    let linked = dir.0.join("linked");
    std::fs::create_dir(&linked).unwrap();
    let l = std::os::unix::net::UnixListener::bind(linked.join("real.sock")).unwrap();
    std::os::unix::fs::symlink("real.sock", linked.join("sidecar.sock")).unwrap();
    let (at_once, later) = probe_marker_socket(&linked, &linked, None);
    let outcome = at_once.or(later.first().map(|&(k, o)| {
        assert_eq!(k, 7);
        o
    }));
    assert_eq!(outcome, Some(Outcome::Serving), "{later:?}");
    assert_eq!(accepted(&l), 1);

    let marker = dir.0.join("replaced");
    std::fs::create_dir(&marker).unwrap();
    let opened = dir.0.join("opened");
    let fd = sys::open(&marker, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).unwrap();
    std::fs::rename(&marker, &opened).unwrap();
    std::fs::create_dir(&marker).unwrap();
    let l = std::os::unix::net::UnixListener::bind(marker.join("sidecar.sock")).unwrap();
    let mut prober = Prober::new(Duration::from_secs(5), 4, None);
    let at_once = prober.start(
        7,
        &Endpoint::MarkerSocket,
        Loc::Dir(fd.as_fd()),
        &marker,
        &mut sys::MarkerFds::default(),
    );
    assert_eq!((at_once, prober.finish()), (Some(Outcome::Missing), vec![]));
    assert_eq!(accepted(&l), 0, "the path was looked up");
}

/// A TCP listener whose accept queue is full (listen(0), filled): the
/// kernel drops further SYNs, so a connect to it stays in progress.
fn syn_dropping() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    sys::socket::listen(l.as_fd(), 0).unwrap();
    let addr = l.local_addr().unwrap();
    let held: Vec<_> = (0..3)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()
        })
        .collect();
    assert!(!held.is_empty(), "could not fill the TCP backlog");
    (l, held)
}

/// TCP connects in flight are pending until settled, each timing out at
/// its deadline; with a window of one, starting a second settles the
/// first (the oldest) before it.
#[test]
fn tcp_connects_stay_pending_until_settled_and_the_window_settles_the_oldest() {
    let (l, _held) = syn_dropping();
    let wedged = Endpoint::Tcp(l.local_addr().unwrap());
    let timeout = Duration::from_millis(200);
    let dir = Scratch::new("tcp");
    let fd = sys::open(&dir.0, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).unwrap();
    let loc = Loc::Dir(fd.as_fd());
    let mut fds = sys::MarkerFds::default();

    let mut prober = Prober::new(timeout, 4, None);
    assert!(!prober.has_pending());
    assert_eq!(prober.start(1, &wedged, loc, &dir.0, &mut fds), None);
    assert!(prober.has_pending());
    prober.settle_all();
    assert!(!prober.has_pending());
    assert_eq!(prober.finished, [(1, Outcome::Timeout)]);
    assert_eq!(prober.finish(), [(1, Outcome::Timeout)]);

    // Settled together: a connection, a refusal and a timeout, each
    // for its own key.
    let serving = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = Endpoint::Tcp(refusing.local_addr().unwrap());
    drop(refusing);
    let mut prober = Prober::new(Duration::from_secs(2), 4, None);
    let mut got = Vec::new();
    for (key, endpoint) in [
        (1, Endpoint::Tcp(serving.local_addr().unwrap())),
        (2, refused),
        (3, wedged.clone()),
    ] {
        if let Some(o) = prober.start(key, &endpoint, loc, &dir.0, &mut fds) {
            got.push((key, o));
        }
    }
    got.extend(prober.finish());
    got.sort_by_key(|&(k, _)| k);
    assert_eq!(
        got,
        [
            (1, Outcome::Serving),
            (2, Outcome::Refused),
            (3, Outcome::Timeout)
        ]
    );

    let mut prober = Prober::new(timeout, 1, None);
    assert_eq!(prober.start(1, &wedged, loc, &dir.0, &mut fds), None);
    assert_eq!(prober.start(2, &wedged, loc, &dir.0, &mut fds), None);
    assert_eq!(prober.pending.len(), 1);
    assert_eq!(prober.finished, [(1, Outcome::Timeout)]);
    assert_eq!(
        prober.finish(),
        [(1, Outcome::Timeout), (2, Outcome::Timeout)]
    );
}

/// The window is [`window_for`] the process's own soft limit: more than
/// one connect in flight under any limit a test runs with.
#[test]
fn the_window_follows_the_process_soft_limit() {
    let soft = sys::nofile_soft_limit();
    assert!(soft.is_none_or(|s| s >= 256), "a soft limit of {soft:?}");
    for workers in [1, 3] {
        assert_eq!(window(workers), window_for(soft, workers), "{workers}");
    }
    assert!(window(1) > 1);
}

/// The listener on a marker's own socket is pinned by a pidfd naming this
/// process (which listens); nothing else there proves a listener: no
/// socket, a regular file, a datagram socket, a symlink to the listening
/// socket.
#[test]
fn the_marker_socket_listener_is_pinned_and_nothing_else_proves_one() {
    let dir = Scratch::new("listener");
    let marker = |name: &str| {
        let d = dir.0.join(name);
        std::fs::create_dir(&d).unwrap();
        let fd = sys::open(&d, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).unwrap();
        (d, fd)
    };
    let (d, listening) = marker("listening");
    let _l = std::os::unix::net::UnixListener::bind(d.join("sidecar.sock")).unwrap();
    let (pidfd, pid) = socket_listener(Loc::Dir(listening.as_fd())).expect("a listener");
    assert_eq!(pid, std::process::id());
    assert_eq!(pidfd_pid(pidfd.as_fd()), Some(pid));

    let (_, missing) = marker("missing");
    let (d, file) = marker("file");
    std::fs::write(d.join("sidecar.sock"), "x").unwrap();
    let (d, datagram) = marker("datagram");
    let _dg = std::os::unix::net::UnixDatagram::bind(d.join("sidecar.sock")).unwrap();
    let (d, linked) = marker("linked");
    std::os::unix::fs::symlink(dir.0.join("listening/sidecar.sock"), d.join("sidecar.sock"))
        .unwrap();
    for (what, fd) in [
        ("missing", missing),
        ("file", file),
        ("datagram", datagram),
        ("linked", linked),
    ] {
        assert!(socket_listener(Loc::Dir(fd.as_fd())).is_none(), "{what}");
    }
}

/// A pidfd names its process's pid here while it lives, and nothing once
/// it has been reaped.
#[test]
fn a_pidfd_names_its_pid_until_the_process_is_reaped() {
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pidfd = sys::pidfd::Pidfd::open(child.id()).unwrap();
    assert_eq!(pidfd_pid(pidfd.as_fd()), Some(child.id()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(pidfd_pid(pidfd.as_fd()), None);
}

/// The fleet snapshot answers for a listening socket file as its owner
/// could connect; for root, whatever the file's mode (root's connect
/// ignores it). The marker's socket file is `stat`ed as the prober opens
/// it: not through a symlink; anything but a socket is not the dump's.
#[test]
fn the_fleet_snapshot_answers_for_the_marker_socket_file_whatever_its_mode_for_root() {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(sys::geteuid(), 0, "run the unit tests as root");
    let dir = Scratch::new("fleet");
    let _l = std::os::unix::net::UnixListener::bind(dir.0.join("sidecar.sock")).unwrap();
    std::fs::set_permissions(
        dir.0.join("sidecar.sock"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let snap = fleet::FleetSnapshot::take(deadline_after(Instant::now(), Duration::from_secs(5)))
        .expect("the kernel refused the socket-diagnostics dump");
    let fd = sys::open(&dir.0, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).unwrap();
    let st = stat_marker_socket(Loc::Dir(fd.as_fd())).expect("the socket file");
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFSOCK);
    assert_eq!(snap.judge(&st), Some(Outcome::Listening));
    let file = snap.socket_file(&st).expect("the dump's name for it");
    assert_eq!(snap.judge_socket(file), Some(Outcome::Listening));

    let mut not_a_socket = st;
    not_a_socket.st_mode = libc::S_IFREG | 0o644;
    assert_eq!(snap.socket_file(&not_a_socket), None);

    std::fs::rename(dir.0.join("sidecar.sock"), dir.0.join("real.sock")).unwrap();
    std::os::unix::fs::symlink("real.sock", dir.0.join("sidecar.sock")).unwrap();
    assert!(
        stat_marker_socket(Loc::Dir(fd.as_fd())).is_none(),
        "followed"
    );
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

/// Runs the unit test `name` of this module again, alone, in a process of
/// its own behind `wrapper` (a command that runs the rest of its
/// arguments: `prlimit`, `unshare`), with `env` set; it must pass.
fn rerun_under(wrapper: &[&str], name: &str, env: (&str, &std::ffi::OsStr)) {
    let name = format!("sidecar_markers::probe::tests::{name}");
    let out = std::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .output()
        .unwrap_or_else(|e| panic!("{} (util-linux) must be installed: {e}", wrapper[0]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} behind {wrapper:?}:\n{stdout}\n{stderr}"
    );
}

/// Set in the process [`out_of_descriptors_the_prober_frees_its_own_and_tries_once_more`]
/// runs itself in, under a lowered descriptor limit.
const LOW_NOFILE_ENV: &str = "FIRMA_PROBE_TEST_LOW_NOFILE";

/// Out of descriptors while its own TCP connects hold some, the prober
/// settles them and tries once more: a new TCP connect and the marker's
/// own socket (`socket(2)` failing after its `O_PATH` open) get their
/// answer, not `probe_unavailable`. Runs in a process of its own (this
/// test, again, under `prlimit --nofile`), where every other descriptor
/// is taken by `/dev/null`s.
#[test]
fn out_of_descriptors_the_prober_frees_its_own_and_tries_once_more() {
    if std::env::var_os(LOW_NOFILE_ENV).is_none() {
        rerun_under(
            &["prlimit", "--nofile=256:256", "--"],
            "out_of_descriptors_the_prober_frees_its_own_and_tries_once_more",
            (LOW_NOFILE_ENV, "1".as_ref()),
        );
        return;
    }
    let (l, _held) = syn_dropping();
    let wedged = Endpoint::Tcp(l.local_addr().unwrap());
    let dir = Scratch::new("emfile");
    let _marker_l = std::os::unix::net::UnixListener::bind(dir.0.join("sidecar.sock")).unwrap();
    let fd = sys::open(&dir.0, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).unwrap();
    let loc = Loc::Dir(fd.as_fd());
    let mut fds = sys::MarkerFds::default();
    let mut prober = Prober::new(Duration::from_millis(200), 4, None);
    // Every free descriptor taken but `free`.
    let fill = |free: usize| {
        let mut taken = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => taken.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => panic!("{e}"),
            }
        }
        taken.truncate(taken.len() - free);
        taken
    };

    assert_eq!(prober.start(1, &wedged, loc, &dir.0, &mut fds), None);
    let taken = fill(0);
    assert_eq!(prober.start(2, &wedged, loc, &dir.0, &mut fds), None);
    drop(taken);
    assert_eq!(prober.pending.len(), 1);
    assert_eq!(prober.finished, [(1, Outcome::Timeout)]);

    let taken = fill(1);
    assert_eq!(
        prober.start(3, &Endpoint::MarkerSocket, loc, &dir.0, &mut fds),
        Some(Outcome::Serving)
    );
    drop(taken);
    assert_eq!(
        prober.finish(),
        [(1, Outcome::Timeout), (2, Outcome::Timeout)]
    );
}

/// The dump answers root for any socket file, and another reader only for
/// one of its own that it may write; anyone else connects.
#[test]
fn the_dump_answers_root_and_a_writing_owner_only() {
    let table = [
        (0, 0, 0o000, true),
        (0, 1000, 0o000, true),
        (1000, 1000, 0o600, true),
        (1000, 1000, 0o200, true),
        (1000, 1000, 0o400, false),
        (1000, 1000, 0o077, false),
        (1000, 0, 0o777, false),
        (1000, 2000, 0o600, false),
    ];
    for (euid, owner, mode, want) in table {
        assert_eq!(
            fleet::may_connect(euid, owner, mode),
            want,
            "euid {euid}, owner {owner}, mode {mode:o}"
        );
    }
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

/// Set, to the directory of a socket this test's first process listens
/// on, in the process
/// [`a_listener_this_reader_cannot_see_is_no_proof`] runs itself in, in
/// a pid namespace of its own (with its own `/proc`).
const OTHER_PIDNS_ENV: &str = "FIRMA_PROBE_TEST_OTHER_PIDNS";

/// A listener whose process this reader's pid namespace cannot see (a
/// pidfd whose `Pid:` is 0 here) proves nothing: `socket_listener` gives
/// `None`, `pidfd_pid` no pid. Checked from a child pid namespace, the
/// listener being this test's first process outside it.
#[test]
fn a_listener_this_reader_cannot_see_is_no_proof() {
    let Some(dir) = std::env::var_os(OTHER_PIDNS_ENV) else {
        assert_eq!(sys::geteuid(), 0, "unshare --pid needs root");
        let dir = Scratch::new("other-pidns");
        let _l = std::os::unix::net::UnixListener::bind(dir.0.join("sidecar.sock")).unwrap();
        rerun_under(
            &["unshare", "--pid", "--fork", "--mount-proc", "--"],
            "a_listener_this_reader_cannot_see_is_no_proof",
            (OTHER_PIDNS_ENV, dir.0.as_os_str()),
        );
        return;
    };
    let dir = PathBuf::from(dir);
    let sock = Socket::unix().unwrap();
    let addr = UnixAddr::new(dir.join("sidecar.sock").as_os_str().as_bytes()).unwrap();
    sock.connect_unix(&addr).unwrap();
    let pidfd = sock.peer_pidfd().expect("SO_PEERPIDFD (Linux 6.5)");
    let shown: Option<i64> = sys::proc_field(&sys::fdinfo(pidfd.as_fd()).unwrap(), "Pid:");
    assert_eq!(shown, Some(0), "the listener is visible here: no fixture");
    assert_eq!(pidfd_pid(pidfd.as_fd()), None);
    let fd = sys::open(&dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).unwrap();
    assert!(socket_listener(Loc::Dir(fd.as_fd())).is_none());
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
