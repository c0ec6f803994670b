//! The pure parts of the prober, as tables: what an errno says about an
//! endpoint, the state and reason of each outcome, the connect window, the
//! deadline and poll arithmetic. The prober on real sockets is
//! `path_tests.rs` (path lookups) and `socket_tests.rs` (the rest); the
//! fixtures they share end this file.

use super::*;

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
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new(tag: &str) -> Scratch {
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
pub(super) fn long_listener(dir: &Scratch) -> (PathBuf, std::os::unix::net::UnixListener) {
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

/// Connections waiting on `l` (accepting them).
pub(super) fn accepted(l: &std::os::unix::net::UnixListener) -> usize {
    l.set_nonblocking(true).unwrap();
    l.incoming().take_while(Result::is_ok).count()
}
