//! Probe timing and options. Which state each fixture gets (running,
//! unhealthy, stopped; Unix, TCP, long socket paths) is checked on every
//! surface by the conformance suite (tests/conformance); what stays here is
//! timing, the as-another-user case and option edge cases.

use std::time::{Duration, Instant};

use crate::common::*;
use firma_stack::sidecar_markers::{
    ErrorCode, MAX_TIMEOUT, ProbeOptions, ScanOptions, StackError, State, get_with, inspect_with,
    list_with, probe_entry_with, scan,
};

#[test]
fn wedged_unix_sidecar_is_unhealthy_without_waiting() {
    let rt = runtime();
    let _sc = Sidecar::start(rt.path(), "stuck", &["--mode", "wedged"]);
    // A generous timeout: a full backlog must be answered at once (EAGAIN),
    // never by waiting the timeout out.
    let opts = ProbeOptions::with_timeout(Duration::from_secs(30));
    let t = Instant::now();
    let e = get_with(rt.path(), "stuck", &opts).unwrap().unwrap();
    assert_eq!(e.state, State::Unhealthy);
    assert_within(t, Duration::from_secs(10), "the wedged sidecar's probe");
}

#[test]
fn wedged_tcp_is_answered_at_the_timeout_not_before() {
    let rt = runtime();
    let _ok = Sidecar::start(rt.path(), "tcp-ok", &["--tcp", "127.0.0.1:0"]);
    let _wedged = Sidecar::syn_dropping(rt.path(), "tcp-wedged");
    let opts = ProbeOptions::with_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let entries = list_with(rt.path(), &opts).unwrap();
    let took = t.elapsed();
    // (Which states these get is a conformance scenario; here: timing.)
    assert_eq!(entries.len(), 2, "{entries:?}");
    // The SYN is dropped, so the answer is the timeout: not before it, and
    // not hanging (generous upper bound for a loaded machine).
    assert!(
        took >= Duration::from_millis(290),
        "answered in {took:?}, before the timeout"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// A signal the calling program handles (no `SA_RESTART`), landing in
/// the probe's wait for its connects (`poll` fails `EINTR`), is no error:
/// the wait goes on to the probe's deadline and the endpoint is judged by
/// it — a timeout, `unhealthy` — never `unknown` for a failed `poll`.
#[test]
fn a_signal_while_a_probe_waits_is_no_error() {
    let rt = runtime();
    let _wedged = Sidecar::syn_dropping(rt.path(), "tcp-wedged");
    let opts = ProbeOptions::with_timeout(Duration::from_millis(1500));
    // The SYN is dropped: nothing answers before the deadline.
    let got = interrupted(|| get_with(rt.path(), "tcp-wedged", &opts), || ());
    let entry = got.unwrap().expect("the marker is there");
    assert_eq!(entry.state, State::Unhealthy, "{entry:?}");
}

#[test]
fn many_wedged_tcp_endpoints_share_one_deadline() {
    let rt = runtime();
    let sidecars: Vec<_> = (0..8)
        .map(|i| Sidecar::syn_dropping(rt.path(), &format!("w{i}")))
        .collect();
    let timeout = Duration::from_millis(500);
    let t = Instant::now();
    let entries = list_with(rt.path(), &ProbeOptions::with_timeout(timeout)).unwrap();
    let took = t.elapsed();
    assert_eq!(entries.len(), sidecars.len());
    assert!(entries.iter().all(|e| e.state == State::Unhealthy));
    // Probed one after another this would take 8 × 500 ms = 4 s.
    assert!(
        took < Duration::from_millis(2500),
        "8 wedged endpoints took {took:?}"
    );
}

#[test]
fn permission_denied_on_socket_is_unknown_not_stopped() {
    let rt = root_runtime("probing as another user");
    let sc = Sidecar::start(rt.path(), "private", &[]);
    open_up(rt.path());
    // The socket stays 0755 root-owned... make it unwritable for others.
    chmod(sc.marker.join("sidecar.sock"), 0o600);
    let (code, stdout, stderr) = decode(
        firma_as_nobody(rt.path())
            .args(["sidecar", "get", "private", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(stdout.contains(r#""state":"unknown""#), "{stdout}");
}

#[test]
fn the_longest_timeout_does_not_overflow() {
    let rt = runtime();
    let _ok = Sidecar::start(rt.path(), "tcp-ok", &["--tcp", "127.0.0.1:0"]);
    let e = get_with(
        rt.path(),
        "tcp-ok",
        &ProbeOptions::with_timeout(MAX_TIMEOUT),
    )
    .unwrap()
    .unwrap();
    assert_eq!(e.state, State::Running);
}

/// Every entry point that probes refuses a timeout outside `(0,
/// MAX_TIMEOUT]` with `invalid_argument` naming `timeout`, as the C ABI,
/// the CLI, Python and `watch` do: a Rust caller's zero timeout no longer
/// passes unchecked. Nothing is read or removed first.
#[test]
fn timeouts_out_of_range_are_refused_by_every_entry_point() {
    let rt = runtime();
    let _ok = Sidecar::start(rt.path(), "tcp-ok", &["--tcp", "127.0.0.1:0"]);
    let marker = rt.path().join("run/tcp-ok");
    let over = MAX_TIMEOUT + Duration::from_nanos(1);
    for timeout in [Duration::ZERO, over, Duration::MAX] {
        let opts = ProbeOptions::with_timeout(timeout);
        let scan_opts = ScanOptions {
            probe: Some(opts),
            collect: true,
        };
        let errors: Vec<(&str, StackError)> = vec![
            ("list_with", list_with(rt.path(), &opts).unwrap_err()),
            (
                "get_with",
                get_with(rt.path(), "tcp-ok", &opts).unwrap_err(),
            ),
            ("inspect_with", inspect_with(rt.path(), &opts).unwrap_err()),
            (
                "probe_entry_with",
                probe_entry_with(&marker, &opts).unwrap_err(),
            ),
            ("scan", scan(rt.path(), &scan_opts).unwrap_err()),
        ];
        for (call, e) in errors {
            assert_eq!(
                e.code(),
                ErrorCode::InvalidArgument,
                "{call} {timeout:?}: {e}"
            );
            assert!(
                e.to_string().starts_with("invalid argument timeout: "),
                "{call} {timeout:?}: {e}"
            );
        }
    }
    // The bounds themselves pass, and a scan without probing has no timeout.
    for timeout in [Duration::from_nanos(1), MAX_TIMEOUT] {
        list_with(rt.path(), &ProbeOptions::with_timeout(timeout)).unwrap();
    }
    let no_probe = ScanOptions {
        probe: None,
        collect: false,
    };
    scan(rt.path(), &no_probe).unwrap();
}
