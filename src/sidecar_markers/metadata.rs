//! Parsing `metadata.toml` (docs/design.md, "On-disk format"): a fast path
//! for the flat form writers produce, the full TOML parser for anything
//! else, and the range checks both share.

use super::model::{MAX_PID, MetadataFile};

/// Parses and range-checks `metadata.toml` bytes.
pub(crate) fn parse_metadata(bytes: &[u8]) -> std::result::Result<MetadataFile, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("metadata.toml is not UTF-8: {e}"))?;
    let meta = match parse_flat(text) {
        Some(meta) => meta,
        None => toml::from_str(text).map_err(|e| toml_error(text, &e))?,
    };
    check_pid(meta.pid)?;
    for (key, value) in [
        ("pid_start_ticks", meta.pid_start_ticks),
        ("pid_ns_inode", meta.pid_ns_inode),
    ] {
        check_toml_int(key, value)?;
    }
    Ok(meta)
}

/// TOML integers are 64-bit signed: a larger value is not TOML (the spec
/// says a parser must reject it), though the TOML crate reads one into a
/// `u64` field. The writer cannot write one either.
fn check_toml_int(key: &str, value: Option<u64>) -> std::result::Result<(), String> {
    match value {
        Some(v) if i64::try_from(v).is_err() => Err(format!(
            "{key} = {v} is above TOML's largest integer ({})",
            i64::MAX
        )),
        _ => Ok(()),
    }
}

/// A TOML error as one line naming line and column, without echoing the
/// input (the parser's own message quotes the offending line).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = super::text::one_line(e.message());
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let col_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[col_start..])
                .chars()
                .count()
                + 1;
            // Name the key of that line when it is a plain one (never echo
            // anything else of the input).
            let line_text = text[col_start..].split('\n').next().unwrap_or("");
            let key = line_text
                .split_once('=')
                .map(|(k, _)| k.trim())
                .filter(|k| {
                    !k.is_empty()
                        && k.len() <= 64
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
            match key {
                Some(k) => format!(
                    "invalid metadata.toml at line {line}, column {column} (key {k}): {msg}"
                ),
                None => format!("invalid metadata.toml at line {line}, column {column}: {msg}"),
            }
        }
        None => format!("invalid metadata.toml: {msg}"),
    }
}

/// A value in the flat subset [`parse_flat`] understands.
enum Flat<'a> {
    Str(&'a str),
    Int(i64),
}

/// Parses the flat form writers produce — one `key = "basic string"` or
/// `key = 123` per line, blank lines and `#` comments — into a
/// [`MetadataFile`], in one pass without allocating a document.
///
/// Returns `None` for anything outside that subset (escapes, other string or
/// number forms, tables, arrays, dotted or quoted keys, unknown or duplicate
/// keys, a missing key, a control character, a value of the wrong type), and
/// the caller then parses with the full TOML parser, which also produces the
/// error message. So for every input it accepts, this gives exactly what the
/// TOML parser gives; the unit tests below compare the two.
pub(crate) fn parse_flat(text: &str) -> Option<MetadataFile> {
    let mut strs: [Option<&str>; 8] = [None; 8];
    const KEYS: [&str; 8] = [
        "sandbox_id",
        "agent_id",
        "session_id",
        "authority_url",
        "policy_bundle_version",
        "started_at",
        "listen",
        "boot_id",
    ];
    let (mut pid, mut ticks, mut ns, mut offset) = (None, None, None, None);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        // CR only counts as part of a line break when LF follows it: TOML
        // rejects a lone CR, and so does the fast path (it then falls back).
        let line = if lines.peek().is_some() {
            line.strip_suffix('\r').unwrap_or(line)
        } else {
            line
        };
        if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return None;
        }
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once('=')?;
        let key = key.trim_end_matches([' ', '\t']);
        let rest = rest.trim_start_matches([' ', '\t']);
        let (value, after) = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find(['"', '\\'])?;
            if r.as_bytes()[end] == b'\\' {
                return None;
            }
            (Flat::Str(&r[..end]), &r[end + 1..])
        } else {
            let end = rest.find([' ', '\t', '#']).unwrap_or(rest.len());
            (Flat::Int(plain_int(&rest[..end])?), &rest[end..])
        };
        let after = after.trim_start_matches([' ', '\t']);
        if !(after.is_empty() || after.starts_with('#')) {
            return None;
        }
        match (key, value) {
            ("pid", Flat::Int(v)) if pid.is_none() => pid = Some(v),
            ("pid_start_ticks", Flat::Int(v)) if ticks.is_none() => ticks = Some(v),
            ("pid_ns_inode", Flat::Int(v)) if ns.is_none() => ns = Some(v),
            ("boottime_offset_ns", Flat::Int(v)) if offset.is_none() => offset = Some(v),
            (k, Flat::Str(v)) => {
                let slot = &mut strs[KEYS.iter().position(|&known| known == k)?];
                if slot.replace(v).is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let [
        sandbox_id,
        agent_id,
        session_id,
        authority_url,
        policy_bundle_version,
        started_at,
        listen,
        boot_id,
    ] = strs;
    Some(MetadataFile {
        sandbox_id: sandbox_id?.to_owned(),
        agent_id: agent_id?.to_owned(),
        session_id: session_id?.to_owned(),
        authority_url: authority_url?.to_owned(),
        policy_bundle_version: policy_bundle_version?.to_owned(),
        pid: u32::try_from(pid?).ok()?,
        started_at: started_at?.to_owned(),
        listen: listen.map(str::to_owned),
        boot_id: boot_id.map(str::to_owned),
        pid_start_ticks: match ticks {
            Some(t) => Some(u64::try_from(t).ok()?),
            None => None,
        },
        pid_ns_inode: match ns {
            Some(t) => Some(u64::try_from(t).ok()?),
            None => None,
        },
        boottime_offset_ns: offset,
    })
}

/// A decimal integer without underscores or leading zeros, with an optional
/// `-` before a non-zero value (`-0`, `+1` and the like go to the TOML
/// parser).
fn plain_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && !(s.starts_with('-') && digits == "0");
    if ok { s.parse().ok() } else { None }
}

/// A pid must be in `1..=2^31-1`: 0 and negatives address process groups in
/// `kill(2)`, larger values wrap.
pub(crate) fn check_pid(pid: u32) -> std::result::Result<(), String> {
    if pid == 0 || pid > MAX_PID {
        return Err(format!("pid {pid} is out of range 1..={MAX_PID}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> Option<MetadataFile> {
        toml::from_str(text).ok()
    }

    const BASE: &str = "sandbox_id = \"s-1\"\nagent_id = \"a\"\nsession_id = \"s\"\n\
        authority_url = \"https://x.invalid/a?b=c#d\"\npolicy_bundle_version = \"sha256:1\"\n\
        pid = 42\nstarted_at = \"2026-11-29T00:00:00Z\"\n";

    /// An integer above i64::MAX is not TOML: refused whichever path reads
    /// it, as a TOML table parser refuses it.
    #[test]
    fn integers_above_tomls_range_are_parse_errors() {
        for key in ["pid_start_ticks", "pid_ns_inode"] {
            let text = format!("{BASE}{key} = 10953367776079910376\n");
            assert!(text.parse::<toml::Table>().is_err(), "{key}");
            let err = parse_metadata(text.as_bytes()).unwrap_err();
            assert!(
                err.contains(key) && err.contains("largest integer"),
                "{err}"
            );
            let top = format!("{BASE}{key} = 9223372036854775807\n");
            assert!(parse_metadata(top.as_bytes()).is_ok(), "{key} at i64::MAX");
        }
    }

    /// Every input the fast path accepts parses to the same value with the
    /// full TOML parser; inputs outside the subset fall back.
    #[test]
    fn flat_parser_agrees_with_toml_or_declines() {
        let pid = |v: &str| BASE.replace("pid = 42", &format!("pid = {v}"));
        let mut cases = plain_forms();
        cases.extend([
            BASE.replace("\"a\"", "\"日本 \\\" quote\""),
            BASE.replace("\"a\"", "'literal'"),
            BASE.replace("\"a\"", "\"\"\"multi\"\"\""),
            pid("042"),
            pid("+42"),
            pid("4_2"),
            pid("0x2a"),
            pid("-1"),
            pid("4294967296"),
            pid("99999999999999999999"),
            pid("\"42\""),
            pid("42\npid = 43"),
            BASE.replace("pid = 42", ""),
            format!("{BASE}unknown = \"x\"\n"),
            format!("{BASE}[table]\nx = 1\n"),
            format!("{BASE}a.b = 1\n"),
            format!("{BASE}\"quoted\" = 1\n"),
            format!("{BASE}pid_start_ticks = -5\n"),
            format!("{BASE}listen = 5\n"),
            BASE.replace("agent_id = \"a\"", "agent_id = \"a\" junk"),
            BASE.replace("agent_id = \"a\"", "agent_id = \"a\u{7f}\""),
            format!("\u{feff}{BASE}"),
        ]);
        let mut accepted = 0;
        for text in &cases {
            if let Some(fast) = parse_flat(text) {
                accepted += 1;
                assert_eq!(Some(fast), full(text), "fast path differs on {text:?}");
            }
        }
        assert_eq!(
            accepted,
            plain_forms().len(),
            "the fast path takes the plain forms only"
        );
    }

    /// Lone CR at the end (no LF): TOML rejects it, so must the fast path.
    #[test]
    fn lone_cr_is_rejected_like_toml() {
        let text = format!("{BASE}\r");
        assert!(full(&text).is_none());
        assert!(parse_flat(&text).is_none());
        assert!(parse_metadata(text.as_bytes()).is_err());
    }

    use proptest::prelude::*;

    /// Near-flat inputs: the writer's form with line-break variants, lone
    /// CRs, a BOM, escapes, comments, trailing whitespace, duplicate and
    /// unknown keys, signed and odd numbers.
    fn near_flat() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("sandbox_id = \"s-1\"".to_owned()),
            Just("agent_id = \"a\"".to_owned()),
            Just("session_id = \"s\"".to_owned()),
            Just("authority_url = \"u\"".to_owned()),
            Just("policy_bundle_version = \"p\"".to_owned()),
            Just("started_at = \"t\"".to_owned()),
            Just("pid = 42".to_owned()),
            Just("pid = -42".to_owned()),
            Just("pid = 042".to_owned()),
            Just("pid_start_ticks = 7".to_owned()),
            Just("pid_ns_inode = 4026531836".to_owned()),
            Just("boottime_offset_ns = -1000".to_owned()),
            Just("boottime_offset_ns = -0".to_owned()),
            Just("boottime_offset_ns = +5".to_owned()),
            Just("listen = \"/x.sock\"".to_owned()),
            Just("agent_id = \"esc\\\"aped\"".to_owned()),
            Just("agent_id = 'lit'".to_owned()),
            Just("# comment".to_owned()),
            Just("".to_owned()),
            Just("unknown = 1".to_owned()),
            "[a-z_]{1,6} = \"[ -~]{0,4}\"",
            "[a-z_]{1,6} = -?[0-9]{1,3}",
        ];
        let ending = prop_oneof![
            Just("\n"),
            Just("\r\n"),
            Just("\r"),
            Just(" \n"),
            Just("\t# c\n"),
            Just(""),
        ];
        let required: Vec<String> = BASE.lines().map(str::to_owned).collect();
        (
            any::<bool>(),
            Just(required).prop_shuffle(),
            proptest::collection::vec(ending.clone(), 7),
            proptest::collection::vec((line, ending), 0..5),
        )
            .prop_map(|(bom, required, endings, extra)| {
                let mut s = if bom {
                    "\u{feff}".to_owned()
                } else {
                    String::new()
                };
                for (l, e) in required.iter().zip(endings) {
                    s.push_str(l);
                    s.push_str(if e.is_empty() { "\n" } else { e });
                }
                for (l, e) in extra {
                    s.push_str(&l);
                    s.push_str(e);
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]
        /// The fast path accepts only what the TOML parser accepts, and
        /// reads the same values; and parse_metadata (fast path, then TOML)
        /// accepts exactly what TOML accepts.
        #[test]
        fn fast_path_agrees_with_toml(text in near_flat()) {
            let toml_says: Option<MetadataFile> = full(&text);
            if let Some(fast) = parse_flat(&text) {
                prop_assert_eq!(Some(fast), toml_says.clone(), "{:?}", text);
            }
            let ours = parse_metadata(text.as_bytes()).ok();
            let toml_checked = toml_says.filter(|m| check_pid(m.pid).is_ok());
            prop_assert_eq!(ours, toml_checked, "{:?}", text);
        }
    }

    /// What the writer produces takes the fast path.
    #[test]
    fn writer_output_takes_the_fast_path() {
        let meta = MetadataFile {
            sandbox_id: "s-1".into(),
            agent_id: "agent".into(),
            session_id: "session".into(),
            authority_url: "https://authority.invalid".into(),
            policy_bundle_version: "sha256:abc".into(),
            pid: 4242,
            started_at: "2026-11-29T00:00:00Z".into(),
            listen: Some("127.0.0.1:80".into()),
            boot_id: Some("0f0e-aa".into()),
            pid_start_ticks: Some(123456789),
            pid_ns_inode: Some(4026531836),
            boottime_offset_ns: Some(-1_000_000_000),
        };
        let text = toml::to_string(&meta).unwrap();
        assert_eq!(parse_flat(&text), Some(meta), "{text}");
    }

    /// Each plain form is taken by the fast path and read as TOML reads it.
    #[test]
    fn the_fast_path_takes_every_plain_form() {
        for text in &plain_forms() {
            let fast = parse_flat(text);
            assert!(fast.is_some(), "the fast path declined {text:?}");
            assert_eq!(fast, full(text), "fast path differs on {text:?}");
        }
    }

    /// The plain forms a writer (or a person) produces: blank lines and
    /// comments, CRLF, a tab in a string, an empty string, every integer
    /// key, zero and negative values.
    fn plain_forms() -> Vec<String> {
        let replaced = [
            ("\n", "\r\n"),
            ("pid = 42", "pid = 42 # the sidecar"),
            ("pid = 42", "pid\t=\t42"),
            ("\"a\"", "\"tab\there\""),
            ("\"a\"", "\"\""),
        ];
        let appended = [
            "pid_start_ticks = 0",
            "pid_ns_inode = 4026531836",
            "boottime_offset_ns = -1000",
            "boottime_offset_ns = 0",
            "listen = \"/run/x.sock\"\nboot_id = \"b\"",
        ];
        let mut forms = vec![
            BASE.to_owned(),
            format!("# comment\r\n\n  {BASE}  # trailing\n"),
            format!("\n{BASE}\n# the end"),
        ];
        forms.extend(replaced.map(|(from, to)| BASE.replace(from, to)));
        forms.extend(appended.map(|line| format!("{BASE}{line}\n")));
        forms
    }

    /// What the fast path must decline, because TOML refuses it: a control
    /// character in a string, a signed leading zero, any key given twice.
    #[test]
    fn the_fast_path_declines_what_toml_refuses() {
        let mut cases = vec![
            BASE.replace("\"a\"", "\"a\u{1}b\""),
            // A sign does not excuse a leading zero.
            BASE.replace("pid = 42", "pid = +042"),
        ];
        for line in [
            "pid_start_ticks = 7",
            "pid_ns_inode = 8",
            "boottime_offset_ns = 9",
            "listen = \"/x.sock\"",
        ] {
            cases.push(format!("{BASE}{line}\n{line}\n"));
        }
        for text in &cases {
            assert!(full(text).is_none(), "TOML takes {text:?}");
            assert!(parse_flat(text).is_none(), "the fast path took {text:?}");
            assert!(parse_metadata(text.as_bytes()).is_err(), "{text:?}");
        }
    }

    /// A TOML error names its line and column (in characters, from 1) and
    /// the key of that line when it is a plain one, nothing else of the
    /// input.
    #[test]
    fn toml_errors_name_line_column_and_a_plain_key() {
        let cases = [
            (
                "this is { not toml",
                "invalid metadata.toml at line 1, column 6: key with no value, expected `=`",
            ),
            (
                "a = 1\nb = 2\nagent_id = \"x\" junk\n",
                "invalid metadata.toml at line 3, column 16 (key agent_id): unexpected key or \
                 value, expected newline, `#`",
            ),
            (
                "a = 1\nagent-id = \"日本\" junk\n",
                "invalid metadata.toml at line 2, column 17 (key agent-id): unexpected key or \
                 value, expected newline, `#`",
            ),
            (
                "a = 1\n\"quo ted\" = \"x\" junk\n",
                "invalid metadata.toml at line 2, column 17: unexpected key or value, expected \
                 newline, `#`",
            ),
            (
                "a = 1\n= 3\n",
                "invalid metadata.toml at line 2, column 1: unquoted keys cannot be empty, \
                 expected letters, numbers, `-`, `_`",
            ),
            (
                "pid = 5\npid = 6\n",
                "invalid metadata.toml at line 2, column 1 (key pid): duplicate key",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_metadata(text.as_bytes()).unwrap_err(),
                want,
                "{text:?}"
            );
        }
        // A key longer than 64 bytes is not named.
        let long = "k".repeat(65);
        let err = parse_metadata(format!("{long} = 1 junk\n").as_bytes()).unwrap_err();
        assert!(
            err.starts_with("invalid metadata.toml at line 1, column 69: "),
            "{err}"
        );
        let key = "k".repeat(64);
        let err = parse_metadata(format!("{key} = 1 junk\n").as_bytes()).unwrap_err();
        assert!(err.contains(&format!("(key {key})")), "{err}");
    }

    /// A pid is in `1..=2^31-1`, both ends included.
    #[test]
    fn pids_are_checked_at_both_ends() {
        assert!(check_pid(1).is_ok());
        assert!(check_pid(MAX_PID).is_ok());
        assert!(check_pid(0).is_err());
        assert!(check_pid(MAX_PID + 1).is_err());
        let err = check_pid(u32::MAX).unwrap_err();
        assert_eq!(err, "pid 4294967295 is out of range 1..=2147483647");
    }
}
