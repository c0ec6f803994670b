//! The prober on real sockets and processes: the marker socket's
//! listener and the fleet's snapshot, TCP connects held in the window,
//! the prober out of descriptors. Path lookups are `path_tests.rs`; the
//! pure tables `tests.rs`.

use super::path_tests::flights_alone;
use super::tests::{Scratch, accepted};
use super::*;

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

/// Runs the unit test `name` of this module again, alone, in a process of
/// its own behind `wrapper` (a command that runs the rest of its
/// arguments: `prlimit`, `unshare`), with `env` set; it must pass.
fn rerun_under(wrapper: &[&str], name: &str, env: (&str, &std::ffi::OsStr)) {
    let module = module_path!().trim_start_matches("firma_stack::");
    let name = format!("{module}::{name}");
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
