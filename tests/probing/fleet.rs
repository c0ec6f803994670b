//! The fleet probe (docs/design.md, "Probing"): one socket-diagnostics
//! dump gives the same verdict as a `connect` for every kind of endpoint,
//! and answers the listening ones without connecting to them.
//!
//! Real sockets only: listening, a backlog filled by real connections,
//! closed, removed, replaced by a regular file, bound but not listening, a
//! seqpacket listener; each behind the marker's own `sidecar.sock` and
//! behind an explicit `listen` path. `firma sidecar inspect --json` runs
//! with `FIRMA_PROBE_METHOD=connect`, without, without from another
//! network namespace (where the dump cannot see the listeners), and under a
//! seccomp filter refusing the netlink socket.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// A Unix socket of `kind` bound at `path`; listening with `backlog`
/// unless `None`. The kernel refusing any step fails the test.
fn bound(path: &Path, kind: libc::c_int, backlog: Option<libc::c_int>) -> OwnedFd {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain old data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(
        bytes.len() < addr.sun_path.len(),
        "path too long for a fixture"
    );
    for (d, &s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: a valid sockaddr_un of `len` bytes.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    assert_eq!(rc, 0, "bind {path:?}: {}", std::io::Error::last_os_error());
    if let Some(b) = backlog {
        // SAFETY: listen(2) on our socket.
        let rc = unsafe { libc::listen(fd.as_raw_fd(), b) };
        assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
    }
    fd
}

/// Connects non-blocking to `path` until the backlog refuses (`EAGAIN`):
/// the connections that fill it.
fn fill_backlog(path: &Path) -> Vec<std::os::unix::net::UnixStream> {
    let mut fillers = Vec::new();
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    loop {
        assert!(fillers.len() < 64, "the backlog never filled");
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor we own.
        let s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
        // SAFETY: sockaddr_un is plain old data.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, &b) in addr.sun_path.iter_mut().zip(c.as_bytes()) {
            *d = b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: a valid sockaddr_un.
        let rc = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "filling: {e}");
            return fillers;
        }
        fillers.push(s);
    }
}

/// Pending connections on a listener (accepting them, non-blocking).
fn accept_all(listener: &OwnedFd) -> usize {
    let mut n = 0;
    loop {
        // SAFETY: accept4 on our listener; no address wanted.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            return n;
        }
        // SAFETY: a fresh descriptor we own.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        n += 1;
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on our descriptor.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) },
        0
    );
}

/// (state, reason, detail) by name, from `firma sidecar inspect --json`.
fn inspect(rt: &Path, connect_only: bool) -> BTreeMap<String, (String, String, String)> {
    inspect_by(Command::new(FIRMA), rt, connect_only)
}

/// [`inspect`] run by `cmd` (`firma`, or a wrapper that runs it).
fn inspect_by(
    mut cmd: Command,
    rt: &Path,
    connect_only: bool,
) -> BTreeMap<String, (String, String, String)> {
    cmd.arg("--runtime-dir")
        .arg(rt)
        .args(["sidecar", "inspect", "--json", "--timeout-ms", "2000"]);
    if connect_only {
        cmd.env("FIRMA_PROBE_METHOD", "connect");
    } else {
        cmd.env_remove("FIRMA_PROBE_METHOD");
    }
    let v = json_output(&mut cmd, "firma sidecar inspect");
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (s("name"), (s("state"), s("reason"), s("detail")))
        })
        .collect()
}

/// `firma` with a seccomp filter that refuses `socket(AF_NETLINK, …)` with
/// `EPERM`: a kernel refusing the socket-diagnostics dump, for real.
fn firma_without_netlink() -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(FIRMA);
    // SAFETY: between fork and exec only prctl(2) is called, on data
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(|| {
            let stmt = |code: u16, k: u32| libc::sock_filter {
                code,
                jt: 0,
                jf: 0,
                k,
            };
            let jeq = |k: u32, jf: u8| libc::sock_filter {
                code: 0x05 | 0x10, // BPF_JMP | BPF_JEQ | BPF_K
                jt: 0,
                jf,
                k,
            };
            let filter = [
                stmt(0x20, 0), // BPF_LD | BPF_W | BPF_ABS: seccomp_data.nr
                jeq(libc::SYS_socket as u32, 3),
                stmt(0x20, 16), // args[0] (low half)
                jeq(libc::AF_NETLINK as u32, 1),
                stmt(0x06, 0x0005_0000 | libc::EPERM as u32), // RET ERRNO(EPERM)
                stmt(0x06, 0x7fff_0000),                      // RET ALLOW
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[test]
fn the_fleet_probe_and_connect_agree_on_every_kind_of_endpoint() {
    let rt = runtime();
    let ext = runtime();
    let me = i64::from(std::process::id());
    let mut keep = Vec::new();
    let mut listeners = Vec::new();
    // Each fixture twice: as the marker's sidecar.sock, and at an explicit
    // `listen` path outside the marker.
    let at = |name: &str| -> [std::path::PathBuf; 2] {
        let m = write_marker(rt.path(), name, &metadata(name, me, ""));
        let ext_path = ext.path().join(format!("{name}.sock"));
        let listen = format!("listen = \"{}\"\n", ext_path.display());
        let x = format!("{name}-listen");
        write_marker(rt.path(), &x, &metadata(&x, me, &listen));
        [m.join("sidecar.sock"), ext_path]
    };
    for p in at("listening") {
        let l = bound(&p, libc::SOCK_STREAM, Some(16));
        set_nonblocking(&l);
        listeners.push(l);
    }
    for p in at("backlog-full") {
        let l = bound(&p, libc::SOCK_STREAM, Some(0));
        let fillers = fill_backlog(&p);
        assert!(!fillers.is_empty(), "listen(0) takes one connection");
        keep.push(l);
        keep.extend(fillers.into_iter().map(OwnedFd::from));
    }
    // The boundary: as many waiting as the backlog is not yet full (the
    // kernel refuses only when more wait than the backlog).
    let mut at_boundary = Vec::new();
    for p in at("one-waiting") {
        let l = bound(&p, libc::SOCK_STREAM, Some(1));
        set_nonblocking(&l);
        keep.push(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(&p).unwrap(),
        ));
        at_boundary.push(l);
    }
    // After a run that connected: back to one waiting at each boundary.
    let back_to_one = || {
        for l in &at_boundary {
            // SAFETY: accept4 on our listener; no address wanted.
            let fd = unsafe {
                libc::accept4(
                    l.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            assert!(fd >= 0, "the connect probe's connection waits there");
            // SAFETY: a fresh descriptor we own.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    };
    for p in at("closed") {
        drop(bound(&p, libc::SOCK_STREAM, Some(16)));
    }
    at("removed");
    for p in at("regular-file") {
        std::fs::write(&p, "not a socket").unwrap();
    }
    for p in at("bound-not-listening") {
        keep.push(bound(&p, libc::SOCK_STREAM, None));
    }
    for p in at("seqpacket") {
        keep.push(bound(&p, libc::SOCK_SEQPACKET, Some(16)));
    }

    // The fleet probe first: a connect probe adds a connection to the
    // queue it measures (one-waiting would then be full).
    let by_fleet = inspect(rt.path(), false);
    let connected: usize = listeners.iter().map(accept_all).sum();
    assert_eq!(
        connected, 0,
        "the fleet probe answered the listening endpoints without connecting"
    );
    let by_connect = inspect(rt.path(), true);
    let connected: usize = listeners.iter().map(accept_all).sum();
    assert_eq!(connected, 2, "connect-only probed both listening endpoints");
    back_to_one();

    assert_eq!(by_connect.len(), 16, "{by_connect:#?}");
    for (name, (state, reason, detail)) in &by_connect {
        let (f_state, f_reason, f_detail) = &by_fleet[name];
        assert_eq!(
            (state, reason),
            (f_state, f_reason),
            "{name}: connect says {state}/{reason} ({detail}), the fleet probe \
             {f_state}/{f_reason} ({f_detail})"
        );
        assert!(
            !f_detail.contains("probed by connect"),
            "the fleet probe was refused: {f_detail}"
        );
        assert!(
            detail.contains("probed by connect: FIRMA_PROBE_METHOD=connect"),
            "{name}: {detail}"
        );
    }
    // A run of inspect (`firma` as `cmd` runs it) whose fleet probe cannot
    // see the listeners (`why`): it connects to both listening endpoints,
    // and its verdicts are connect-only's. Returns them.
    let connects_as_connect_only = |cmd: Command, why: &str| {
        let by = inspect_by(cmd, rt.path(), false);
        let connected: usize = listeners.iter().map(accept_all).sum();
        assert_eq!(connected, 2, "{why} the listeners are connected to");
        back_to_one();
        for (name, (state, reason, _)) in &by_connect {
            let (b_state, b_reason, b_detail) = &by[name];
            assert_eq!((state, reason), (b_state, b_reason), "{name}: {b_detail}");
        }
        by
    };
    // A reader in another network namespace: the dump there holds none of
    // these listeners, so every one is connected to (a Unix socket file
    // connects across namespaces) and the verdicts are the same.
    need_root("unshare --net needs root");
    let mut unshared = Command::new("unshare");
    unshared.args(["--net", FIRMA]);
    connects_as_connect_only(unshared, "from another netns");
    // The kernel refusing the dump (seccomp: EPERM): every Unix endpoint
    // connected to, the same verdicts, and inspect says why.
    let refused = connects_as_connect_only(firma_without_netlink(), "with the dump refused");
    for name in by_connect.keys() {
        let (_, _, r_detail) = &refused[name];
        assert!(
            r_detail.contains("(probed by connect: socket diagnostics unavailable")
                && r_detail.contains("Operation not permitted"),
            "{name}: {r_detail}"
        );
    }
    // And the verdicts are the ones each fixture is for.
    let want = [
        ("listening", "running", "serving"),
        ("backlog-full", "unhealthy", "backlog_full"),
        ("one-waiting", "running", "serving"),
        ("closed", "unhealthy", "connection_refused"),
        ("removed", "unhealthy", "endpoint_missing"),
        ("regular-file", "unhealthy", "connection_refused"),
        ("bound-not-listening", "unhealthy", "connection_refused"),
        ("seqpacket", "unhealthy", "not_a_socket"),
    ];
    for (name, state, reason) in want {
        for n in [name.to_owned(), format!("{name}-listen")] {
            let (s, r, d) = &by_fleet[&n];
            assert_eq!((s.as_str(), r.as_str()), (state, reason), "{n}: {d}");
        }
    }
    drop(keep);
}
