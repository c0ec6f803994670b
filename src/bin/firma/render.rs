//! What the command line shows a person: aligned tables, coloured states,
//! uptimes and one-line summaries. Every string that came from a marker is
//! escaped here ([`text::escape`]); JSON never passes through this module.

use std::io::IsTerminal;

use firma_stack::sidecar_markers::{State, Verdict, text};

/// Whether the table may colour its cells: stdout is a terminal and
/// `NO_COLOR` is absent or empty (the no-color.org rule).
pub fn colour_wanted() -> bool {
    let disabled = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !disabled && std::io::stdout().is_terminal()
}

/// SGR colour numbers.
const GREEN: &str = "32";
const YELLOW: &str = "33";
const RED: &str = "31";
const MAGENTA: &str = "35";

fn state_colour(state: State) -> &'static str {
    match state {
        State::Running => GREEN,
        State::Unhealthy => YELLOW,
        State::Stopped => RED,
        State::Unknown => MAGENTA,
    }
}

fn verdict_colour(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Live => GREEN,
        Verdict::Stale => YELLOW,
        Verdict::Broken => RED,
    }
}

/// The colour of a state shown as text (`None` for anything else).
pub fn state_colour_of(s: &str) -> Option<&'static str> {
    serde_json::from_value::<State>(serde_json::Value::String(s.to_owned()))
        .ok()
        .map(state_colour)
}

/// The colour of a verdict shown as text (`None` for anything else).
pub fn verdict_colour_of(s: &str) -> Option<&'static str> {
    serde_json::from_value::<Verdict>(serde_json::Value::String(s.to_owned()))
        .ok()
        .map(verdict_colour)
}

/// A table of plain text cells (escaped here), each with an optional
/// colour: what `--format` columns and `-o wide` print.
pub fn text_table(
    header: &[&str],
    rows: Vec<Vec<(String, Option<&'static str>)>>,
    colour: bool,
) -> String {
    let rows: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|(t, c)| Cell {
                    text: text::escape(&t),
                    colour: c,
                })
                .collect()
        })
        .collect();
    layout(header, &rows, colour)
}

/// One table cell: its text (already safe to print) and an optional colour.
struct Cell {
    text: String,
    colour: Option<&'static str>,
}

impl Cell {
    /// A cell showing `s`, a string from a marker or the system: escaped.
    #[cfg(test)]
    fn of(s: &str) -> Cell {
        Cell {
            text: text::escape(s),
            colour: None,
        }
    }

    #[cfg(test)]
    fn coloured(s: &str, colour: &'static str) -> Cell {
        Cell {
            text: text::escape(s),
            colour: Some(colour),
        }
    }
}

/// Lays out `header` and `rows` in columns separated by two spaces. The
/// header is printed even when there are no rows. Colours, when `colour`,
/// wrap the cell text only, so alignment is computed on what is visible.
fn layout(header: &[&str], rows: &[Vec<Cell>], colour: bool) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.text.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<(&str, Option<&'static str>)>| {
        let mut l = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, ((cell, c), w)) in cells.into_iter().zip(&widths).enumerate() {
            match c.filter(|_| colour) {
                Some(c) => l.push_str(&format!("\x1b[{c}m{cell}\x1b[0m")),
                None => l.push_str(cell),
            }
            if i < last {
                let pad = w - cell.chars().count() + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end_matches(' '));
        out.push('\n');
    };
    line(header.iter().map(|h| (*h, None)).collect());
    for row in rows {
        line(row.iter().map(|c| (c.text.as_str(), c.colour)).collect());
    }
    out
}

/// Human form of an uptime: `45s`, `12m 3s`, `2h 5m`, `3d 4h`; `-` when
/// unknown.
pub fn human_uptime(secs: Option<u64>) -> String {
    let Some(s) = secs else { return "-".into() };
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// At most this many names are spelled out in a one-line summary.
const NAMES_SHOWN: usize = 20;

/// `a, b, c` (escaped), or `a, …, t and 80 more` for long lists.
pub fn name_list(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(NAMES_SHOWN)
        .map(|n| text::escape(n))
        .collect();
    let mut s = shown.join(", ");
    if names.len() > NAMES_SHOWN {
        s.push_str(&format!(" and {} more", names.len() - NAMES_SHOWN));
    }
    s
}

/// `1 marker` / `2 markers`.
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_units() {
        assert_eq!(human_uptime(None), "-");
        assert_eq!(human_uptime(Some(45)), "45s");
        assert_eq!(human_uptime(Some(723)), "12m 3s");
        assert_eq!(human_uptime(Some(7500)), "2h 5m");
        assert_eq!(human_uptime(Some(3 * 86_400 + 4 * 3600 + 5)), "3d 4h");
    }

    #[test]
    fn colour_does_not_shift_columns() {
        let rows = vec![
            vec![Cell::coloured("running", GREEN), Cell::of("x")],
            vec![Cell::coloured("unhealthy", YELLOW), Cell::of("y")],
        ];
        let plain = layout(&["STATE", "N"], &rows, false);
        let coloured = layout(&["STATE", "N"], &rows, true);
        assert_eq!(plain, "STATE      N\nrunning    x\nunhealthy  y\n");
        assert_eq!(
            coloured,
            "STATE      N\n\x1b[32mrunning\x1b[0m    x\n\x1b[33munhealthy\x1b[0m  y\n"
        );
    }

    #[test]
    fn cells_are_escaped_and_lists_capped() {
        let rows = vec![vec![Cell::of("a\nb\u{1b}[2J"), Cell::of("z")]];
        assert_eq!(
            layout(&["A", "B"], &rows, false),
            "A              B\na\\nb\\u{1b}[2J  z\n"
        );
        let names: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        assert!(name_list(&names).ends_with("n19 and 5 more"));
        assert_eq!(name_list(&names[..2]), "n0, n1");
        assert_eq!(count(1, "marker"), "1 marker");
        assert_eq!(count(3, "marker"), "3 markers");
    }
}
