//! Unit tests of `stop.rs`: signal names both ways, strict parsing of
//! malformed ones, and a dead pid's pidfd.

use super::*;
use crate::sidecar_markers::error::ErrorCode;

#[test]
fn signal_names_round_trip() {
    for (name, n) in SIGNALS {
        assert_eq!(signal_name(*n), *name);
        assert_eq!(parse_signal(name).unwrap(), *n);
        assert_eq!(parse_signal(&name[3..].to_lowercase()).unwrap(), *n);
    }
    assert_eq!(parse_signal("15").unwrap(), libc::SIGTERM);
    let rt = libc::SIGRTMIN() + 2;
    assert_eq!(signal_name(rt), "SIGRTMIN+2");
    assert_eq!(parse_signal("SIGRTMIN+2").unwrap(), rt);
    for bad in ["0", "-1", "SIGNOPE", "", "999"] {
        let e = parse_signal(bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad:?}");
    }
}

#[test]
fn real_time_signals_parse_from_both_ends_as_kill_spells_them() {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    assert_eq!(parse_signal("SIGRTMIN").unwrap(), min);
    assert_eq!(parse_signal("rtmin+0").unwrap(), min);
    assert_eq!(parse_signal("SIGRTMAX").unwrap(), max);
    assert_eq!(parse_signal("SIGRTMAX-0").unwrap(), max);
    assert_eq!(parse_signal("SIGRTMAX-1").unwrap(), max - 1);
    let span = (max - min).to_string();
    assert_eq!(parse_signal(&format!("SIGRTMIN+{span}")).unwrap(), max);
    assert_eq!(parse_signal(&format!("SIGRTMAX-{span}")).unwrap(), min);
    // Every real-time signal's name reads back as itself.
    for sig in min..=max {
        assert_eq!(parse_signal(&signal_name(sig)).unwrap(), sig);
    }
    assert_eq!(parse_signal(&max.to_string()).unwrap(), max);
}

/// Each malformed form is refused with `invalid_argument`, naming what
/// was given: `SIGRTMIN+-30` once read as `SIGRTMIN - 30`, i.e. SIGILL.
#[test]
fn malformed_signals_are_refused_naming_the_text() {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let span = max - min;
    let cases: Vec<(String, &str)> = vec![
        // Real-time offsets that are not plain digits, or out of range.
        ("SIGRTMIN+-30".into(), "plain ASCII digits"),
        ("SIGRTMIN+-1".into(), "plain ASCII digits"),
        ("SIGRTMIN++1".into(), "plain ASCII digits"),
        ("SIGRTMIN+".into(), "plain ASCII digits"),
        ("SIGRTMIN+01".into(), "leading zero"),
        ("SIGRTMIN+1x".into(), "plain ASCII digits"),
        ("SIGRTMIN+0x1".into(), "plain ASCII digits"),
        ("SIGRTMIN-1".into(), "not a signal name"),
        ("SIGRTMIN+ 1".into(), "no sign, space"),
        ("SIGRTMIN +1".into(), "no sign, space"),
        (
            format!("SIGRTMIN+{}", span + 1),
            "outside the real-time signals",
        ),
        (
            "SIGRTMIN+99999999999999".into(),
            "outside the real-time signals",
        ),
        ("SIGRTMAX+1".into(), "not a signal name"),
        ("SIGRTMAX-+1".into(), "plain ASCII digits"),
        ("SIGRTMAX--1".into(), "plain ASCII digits"),
        ("SIGRTMAX-".into(), "plain ASCII digits"),
        (
            format!("SIGRTMAX-{}", span + 1),
            "outside the real-time signals",
        ),
        (
            "SIGRTMAX-99999999999999".into(),
            "outside the real-time signals",
        ),
        // Numbers with a sign, spaces, a leading zero, out of range.
        ("+15".into(), "no sign"),
        ("-15".into(), "no sign"),
        (" 15".into(), "no sign, space"),
        ("15 ".into(), "no sign, space"),
        (" 15 ".into(), "no sign, space"),
        ("1 5".into(), "no sign, space"),
        ("15\n".into(), "no sign, space"),
        ("\t15".into(), "no sign, space"),
        ("015".into(), "leading zero"),
        ("00".into(), "leading zero"),
        ("0".into(), "not a signal number in 1..="),
        (format!("{}", max + 1), "not a signal number in 1..="),
        ("99999999999999999999".into(), "not a signal number in 1..="),
        ("1e1".into(), "not a signal name"),
        ("0x0f".into(), "not a signal name"),
        // Names with spaces, NUL, other characters, or nothing.
        ("".into(), "empty"),
        (" ".into(), "no sign, space"),
        ("SIG TERM".into(), "no sign, space"),
        (" SIGTERM".into(), "no sign, space"),
        ("SIGTERM ".into(), "no sign, space"),
        ("SIGTERM\0".into(), "no sign, space"),
        ("\0".into(), "no sign, space"),
        ("SIGTERM\u{a0}".into(), "no sign, space"),
        ("SIGＴERM".into(), "no sign, space"),
        ("SIG".into(), "not a signal name"),
        ("SIGSIGTERM".into(), "not a signal name"),
        ("SIGTERM+1".into(), "not a signal name"),
        ("SIGNOPE".into(), "not a signal name"),
    ];
    for (text, why) in &cases {
        let e = parse_signal(text).expect_err(text);
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{text:?}");
        let msg = e.to_string();
        assert!(msg.contains("signal"), "{text:?}: {msg}");
        assert!(msg.contains(why), "{text:?}: {msg}");
        // The text is named (escaped: one line, controls visible).
        let named = format!("{text:?}");
        let bare = text.trim_matches(' ');
        assert!(
            msg.contains(&named) || (!bare.is_empty() && msg.contains(bare)) || text.is_empty(),
            "{text:?}: {msg}"
        );
        assert!(
            !msg.contains('\n') && !msg.contains('\0'),
            "{text:?}: {msg}"
        );
    }
}

#[test]
fn pidfd_of_a_dead_pid_is_esrch() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let e = pidfd_open(pid).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
}
