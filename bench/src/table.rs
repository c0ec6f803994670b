//! The markdown of the table: headings, rows and the targets' verdicts.

use std::fmt::{Display, Write as _};

use crate::stats::fmt_ratio;

/// `### text` with blank lines around it.
pub fn heading(o: &mut String, text: &str) {
    let _ = writeln!(o, "\n### {text}\n");
}

/// A header row and its alignment row: `align` has one letter a column,
/// `l` or `r`.
pub fn head(o: &mut String, cols: &[&str], align: &str) {
    row(o, cols);
    for a in align.chars() {
        o.push_str(if a == 'r' { "|---:" } else { "|---" });
    }
    o.push_str("|\n");
}

/// `| a | b | c |`.
pub fn row<T: Display>(o: &mut String, cells: &[T]) {
    for c in cells {
        let _ = write!(o, "| {c} ");
    }
    let _ = writeln!(o, "|");
}

/// A line of the targets table: what is promised, what was measured, and
/// whether it holds (None: not measured).
pub struct Target {
    pub what: String,
    pub measured: String,
    pub ok: Option<bool>,
}

impl Target {
    /// `ratio ≤ max`; pending when the ratio could not be measured.
    pub fn at_most(what: impl Into<String>, ratio: f64, max: f64) -> Target {
        Target {
            what: what.into(),
            measured: fmt_ratio(ratio),
            ok: (!ratio.is_nan()).then_some(ratio <= max),
        }
    }

    pub fn verdict(&self) -> &'static str {
        match self.ok {
            Some(true) => "**met**",
            Some(false) => "**not met**",
            None => "pending",
        }
    }
}

/// The targets table.
pub fn targets(o: &mut String, title: &str, targets: &[Target]) {
    heading(o, title);
    head(o, &["target", "measured", ""], "lrl");
    for t in targets {
        row(o, &[t.what.as_str(), &t.measured, t.verdict()]);
    }
}
