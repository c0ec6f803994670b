//! Signals by name and number, both ways, strictly: what `stop` sends and
//! every surface parses (`SIGTERM`, `TERM`, `15`, `SIGRTMIN+2`).

use super::error::{Result, StackError};

/// The name of a signal number: `SIGTERM`, `SIGRTMIN+3`, or the number for
/// one this table does not know.
pub fn signal_name(signal: i32) -> String {
    if let Some((name, _)) = SIGNALS.iter().find(|&&(_, n)| n == signal) {
        return (*name).to_owned();
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if (min..=max).contains(&signal) {
        return match signal - min {
            0 => "SIGRTMIN".to_owned(),
            n => format!("SIGRTMIN+{n}"),
        };
    }
    signal.to_string()
}

/// The names of the signals [`parse_signal`] knows by name, in number
/// order, as `SIGTERM` (the real-time ones are `SIGRTMIN`, `SIGRTMIN+N`,
/// `SIGRTMAX-N`, `SIGRTMAX`): for shell completion and help texts.
pub fn signal_names() -> impl Iterator<Item = &'static str> {
    SIGNALS
        .iter()
        .map(|&(name, _)| name)
        .chain(["SIGRTMIN", "SIGRTMAX"])
}

/// Parses a signal given by name or number, strictly (the error names the
/// bad value and says why):
///
/// - a number is plain ASCII digits without a sign or a leading zero
///   (`15`; not `+15`, `-15`, `015` or ` 15 `), in `1..=SIGRTMAX`;
/// - a name is ASCII letters, any case, with or without `SIG` (`SIGTERM`,
///   `TERM`, `sigterm`);
/// - a real-time signal is `SIGRTMIN`, `SIGRTMIN+N` (at most `SIGRTMAX`),
///   `SIGRTMAX` or `SIGRTMAX-N` (at least `SIGRTMIN`), as `kill -l` spells
///   them, `N` plain digits as above.
///
/// Nothing is trimmed: an empty string, white space anywhere, a NUL or any
/// other character is refused, so a text means one signal or none.
pub fn parse_signal(text: &str) -> Result<i32> {
    let bad = |reason: String| StackError::InvalidArgument {
        what: "signal".into(),
        reason,
    };
    if text.is_empty() {
        return Err(bad("\"\" is empty, not a signal".into()));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let sig = plain_number(text)
            .ok_or_else(|| bad(format!("{text:?} is not a signal: a number {NUMBER_RULE}")))?;
        let max = libc::SIGRTMAX();
        if !(1..=max).contains(&sig) {
            return Err(bad(format!("{text} is not a signal number in 1..={max}")));
        }
        return Ok(sig);
    }
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'-';
    if text.starts_with(['+', '-']) || !text.bytes().all(name_byte) {
        return Err(bad(format!(
            "{text:?} is not a signal: a name (SIGTERM, TERM, SIGRTMIN+2, SIGRTMAX-1) or a \
             number (15), with no sign, space or other character"
        )));
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|&&(s, _)| &s[3..] == name) {
        return Ok(n);
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let offset = |digits: &str| {
        plain_number(digits).ok_or_else(|| {
            bad(format!(
                "{text:?} is not a signal: the N of SIGRTMIN+N or SIGRTMAX-N {NUMBER_RULE}"
            ))
        })
    };
    let sig = match name {
        "RTMIN" => min,
        "RTMAX" => max,
        _ => {
            if let Some(n) = name.strip_prefix("RTMIN+") {
                min.checked_add(offset(n)?).unwrap_or(i32::MAX)
            } else if let Some(n) = name.strip_prefix("RTMAX-") {
                max - offset(n)?
            } else {
                return Err(bad(format!(
                    "{text:?} is not a signal name (e.g. SIGTERM, INT, SIGRTMIN+1, 9)"
                )));
            }
        }
    };
    if !(min..=max).contains(&sig) {
        return Err(bad(format!(
            "{text:?} is outside the real-time signals SIGRTMIN..=SIGRTMAX ({min}..={max}, \
             SIGRTMIN+0..=SIGRTMIN+{}, SIGRTMAX-{}..=SIGRTMAX-0)",
            max - min,
            max - min
        )));
    }
    Ok(sig)
}

/// What [`plain_number`] accepts, for error messages.
const NUMBER_RULE: &str = "is plain ASCII digits without a sign, space or leading zero";

/// A number written as plain ASCII digits, without a sign or a leading zero
/// (`0` itself excepted); `None` for anything else. One beyond `i32` is
/// `i32::MAX`, which no range here admits.
fn plain_number(digits: &str) -> Option<i32> {
    let b = digits.as_bytes();
    let plain = !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
    plain.then(|| digits.parse().unwrap_or(i32::MAX))
}

const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGSTKFLT", libc::SIGSTKFLT),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGPWR", libc::SIGPWR),
    ("SIGSYS", libc::SIGSYS),
];

#[cfg(test)]
mod tests {
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
        // Real-time offsets, alike at both ends (SIGRTMIN counts up,
        // SIGRTMAX down): the other end's sign, no digits or a sign among
        // them, out of range.
        let mut cases: Vec<(String, &str)> = Vec::new();
        for (end, sign, other) in [("SIGRTMIN", '+', '-'), ("SIGRTMAX", '-', '+')] {
            cases.push((format!("{end}{other}1"), "not a signal name"));
            for digits in ["", "+1", "-1"] {
                cases.push((format!("{end}{sign}{digits}"), "plain ASCII digits"));
            }
            for big in [(span + 1).to_string(), "99999999999999".into()] {
                cases.push((format!("{end}{sign}{big}"), "outside the real-time signals"));
            }
        }
        cases.extend([
            // Offsets that are not plain digits.
            ("SIGRTMIN+-30".into(), "plain ASCII digits"),
            ("SIGRTMIN+01".into(), "leading zero"),
            ("SIGRTMIN+1x".into(), "plain ASCII digits"),
            ("SIGRTMIN+0x1".into(), "plain ASCII digits"),
            ("SIGRTMIN+ 1".into(), "no sign, space"),
            ("SIGRTMIN +1".into(), "no sign, space"),
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
        ]);
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
}
