//! Text that reaches a person: one line, no control characters.
//!
//! Marker strings are written by whoever writes markers. JSON output keeps
//! them byte-exact (JSON escapes what it must); everything shown to a
//! person — the CLI table, error messages, `inspect` details — goes through
//! [`escape`], so a `\n` inside a field cannot forge a row and an escape
//! sequence cannot reach the terminal.

use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `s` with every control character escaped: `\n`, `\r` and `\t` stay
/// readable, other C0/C1 controls, DEL and the Unicode line/paragraph
/// separators become `\u{XX}`. Printable text, including non-ASCII, is kept.
pub fn escape(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A message folded onto one line for a person: controls escaped, and
/// nothing else changed.
pub fn one_line(s: &str) -> String {
    escape(s.trim_end_matches('\n'))
}

/// A path as a string without losing bytes: UTF-8 paths as they are; a path
/// with bytes that are not UTF-8 has each such byte written `\xNN`.
pub fn path_string(p: &Path) -> String {
    let bytes = p.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_text_kept() {
        assert_eq!(escape("plain é 日本"), "plain é 日本");
        assert_eq!(escape("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("x\u{7f}\u{85}\u{2028}"), "x\\u{7f}\\u{85}\\u{2028}");
        assert_eq!(one_line("two\nlines\n"), "two\\nlines");
    }

    #[test]
    fn non_utf8_paths_keep_their_bytes() {
        use std::ffi::OsStr;
        let p = Path::new(OsStr::from_bytes(b"/tmp/a\xffb"));
        assert_eq!(path_string(p), "/tmp/a\\xffb");
        assert_eq!(path_string(Path::new("/ok/é")), "/ok/é");
    }
}
