//! How a listing is shaped (`status`, `get`, `inspect`): sorted by a
//! field (`--sort`), and printed as the default table, every column
//! (`-o wide`), named columns or a template (`--format`), with or without
//! the header (`--no-headers`). Fields are the JSON keys of the item (an
//! `inspect` report's `entry` keys merged in, its `error` as its message)
//! plus `uptime`, the human form of `uptime_secs`. Every value is escaped
//! for people ([`text::escape`]); JSON never passes through here.

use firma_stack::sidecar_markers::text;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::args::ShapeArgs;
use crate::render;

/// What is listed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SidecarEntry`s (status, get).
    Entries,
    /// `MarkerReport`s (inspect).
    Reports,
}

const ENTRY_FIELDS: [&str; 11] = [
    "sandbox_id",
    "agent_id",
    "session_id",
    "authority_url",
    "policy_bundle_version",
    "pid",
    "started_at",
    "state",
    "listen",
    "uptime_secs",
    "uptime",
];

const REPORT_FIELDS: [&str; 6] = ["name", "verdict", "state", "reason", "detail", "error"];

/// The default columns: (header, field). They fit 100 columns for the
/// usual ids; `-o wide` adds the long ones.
fn columns(kind: Kind, wide: bool) -> Vec<(&'static str, &'static str)> {
    use Kind::{Entries, Reports};
    // Every column of both kinds, in order, and whether only `-o wide`
    // shows it. Reports place PID and AGENT before DETAIL when wide.
    const COLUMNS: [(Kind, &str, &str, bool); 15] = [
        (Entries, "SANDBOX", "sandbox_id", false),
        (Entries, "AGENT", "agent_id", false),
        (Entries, "SESSION", "session_id", false),
        (Entries, "STATE", "state", false),
        (Entries, "PID", "pid", false),
        (Entries, "UPTIME", "uptime", false),
        (Entries, "STARTED", "started_at", true),
        (Entries, "LISTEN", "listen", true),
        (Reports, "NAME", "name", false),
        (Reports, "VERDICT", "verdict", false),
        (Reports, "STATE", "state", false),
        (Reports, "REASON", "reason", false),
        (Reports, "PID", "pid", true),
        (Reports, "AGENT", "agent_id", true),
        (Reports, "DETAIL", "detail", false),
    ];
    COLUMNS
        .iter()
        .filter(|&&(k, _, _, wide_only)| k == kind && (wide || !wide_only))
        .map(|&(_, header, field, _)| (header, field))
        .collect()
}

fn known(kind: Kind, field: &str) -> bool {
    ENTRY_FIELDS.contains(&field) || (kind == Kind::Reports && REPORT_FIELDS.contains(&field))
}

fn unknown(kind: Kind, field: &str) -> String {
    let mut all: Vec<&str> = Vec::new();
    if kind == Kind::Reports {
        all.extend(REPORT_FIELDS);
    }
    let more: Vec<&str> = ENTRY_FIELDS
        .into_iter()
        .filter(|f| !all.contains(f))
        .collect();
    all.extend(more);
    format!(
        "unknown field \"{}\" (fields: {})",
        text::escape(field),
        all.join(", ")
    )
}

/// The fields of one item, flattened.
fn fields<T: Serialize>(item: &T) -> Map<String, Value> {
    let mut m = match serde_json::to_value(item) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(Value::Object(entry)) = m.remove("entry") {
        for (k, v) in entry {
            m.entry(k).or_insert(v);
        }
    }
    if let Some(err) = m.get("error").and_then(|e| e.get("message")).cloned() {
        m.insert("error".into(), err);
    }
    let stopped = m.get("state").and_then(Value::as_str) == Some("stopped");
    let uptime = if stopped {
        "-".to_owned()
    } else {
        render::human_uptime(m.get("uptime_secs").and_then(Value::as_u64))
    };
    if m.contains_key("uptime_secs") {
        m.insert("uptime".into(), Value::String(uptime));
    }
    m
}

/// A value as text: strings as they are, numbers in decimal, a missing
/// value as `-` (`missing`).
fn show(v: Option<&Value>, missing: &str) -> String {
    match v {
        None | Some(Value::Null) => missing.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Sorts `items` by `field` (stable; numbers by value, strings by bytes, a
/// missing value last).
pub fn sort<T: Serialize>(items: &mut [T], field: Option<&str>, kind: Kind) -> Result<(), String> {
    let Some(field) = field else { return Ok(()) };
    if !known(kind, field) {
        return Err(unknown(kind, field));
    }
    let field = if field == "uptime" {
        "uptime_secs"
    } else {
        field
    };
    let key = |t: &T| -> (u8, u64, String) {
        match fields(t).get(field) {
            None | Some(Value::Null) => (2, 0, String::new()),
            Some(Value::Number(n)) => (0, n.as_u64().unwrap_or(u64::MAX), String::new()),
            Some(v) => (1, 0, show(Some(v), "")),
        }
    };
    // Decorate-sort-undecorate: serialize each item once.
    let mut keyed: Vec<(usize, (u8, u64, String))> =
        items.iter().enumerate().map(|(i, t)| (i, key(t))).collect();
    keyed.sort_by(|a, b| a.1.cmp(&b.1));
    let order: Vec<usize> = keyed.into_iter().map(|(i, _)| i).collect();
    apply_order(items, &order);
    Ok(())
}

/// Reorders `items` so that position k holds what was at `order[k]`.
fn apply_order<T>(items: &mut [T], order: &[usize]) {
    let mut pos: Vec<usize> = (0..items.len()).collect(); // pos[orig] = current index
    let mut at: Vec<usize> = (0..items.len()).collect(); // at[current] = orig
    for (k, &orig) in order.iter().enumerate() {
        let cur = pos[orig];
        items.swap(k, cur);
        let displaced = at[k];
        at.swap(k, cur);
        pos[orig] = k;
        pos[displaced] = cur;
    }
}

/// One piece of a template.
enum Piece {
    Text(String),
    Field(String),
}

fn parse_template(t: &str, kind: Kind) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("--format: unclosed {{ in {t:?}")),
                    }
                }
                let name = name.trim().to_owned();
                if !known(kind, &name) {
                    return Err(format!("--format: {}", unknown(kind, &name)));
                }
                out.push(Piece::Text(std::mem::take(&mut lit)));
                out.push(Piece::Field(name));
            }
            '}' => return Err(format!("--format: a lone }} in {t:?} (write }}}})")),
            '\\' => match chars.next() {
                Some('t') => lit.push('\t'),
                Some('n') => lit.push('\n'),
                Some('\\') => lit.push('\\'),
                Some(c) => {
                    lit.push('\\');
                    lit.push(c);
                }
                None => lit.push('\\'),
            },
            c => lit.push(c),
        }
    }
    out.push(Piece::Text(lit));
    Ok(out)
}

/// The text of a listing in the table, wide, columns or template form.
pub fn print<T: Serialize>(
    items: &[T],
    kind: Kind,
    shape: &ShapeArgs,
    colour: bool,
) -> Result<String, String> {
    let rows: Vec<Map<String, Value>> = items.iter().map(fields).collect();
    let (headers, names): (Vec<String>, Vec<String>) = match shape.format.as_deref() {
        Some(t) if t.contains('{') || t.contains('\\') => {
            let pieces = parse_template(t, kind)?;
            let mut out = String::new();
            for row in &rows {
                for p in &pieces {
                    match p {
                        Piece::Text(s) => out.push_str(s),
                        Piece::Field(f) => out.push_str(&text::escape(&show(row.get(f), ""))),
                    }
                }
                out.push('\n');
            }
            return Ok(out);
        }
        Some(cols) => {
            let mut h = Vec::new();
            let mut n = Vec::new();
            for c in cols.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                if !known(kind, c) {
                    return Err(format!("--format: {}", unknown(kind, c)));
                }
                h.push(c.to_ascii_uppercase());
                n.push(c.to_owned());
            }
            if n.is_empty() {
                return Err("--format: no column named".into());
            }
            (h, n)
        }
        None => columns(kind, shape.output.as_deref() == Some("wide"))
            .into_iter()
            .map(|(h, f)| (h.to_owned(), f.to_owned()))
            .unzip(),
    };
    let cells: Vec<Vec<(String, Option<&'static str>)>> = rows
        .iter()
        .map(|row| {
            names
                .iter()
                .map(|f| {
                    let v = show(row.get(f), "-");
                    let c = match f.as_str() {
                        "state" => render::state_colour_of(&v),
                        "verdict" => render::verdict_colour_of(&v),
                        _ => None,
                    };
                    (v, c)
                })
                .collect()
        })
        .collect();
    // Without headers, the columns are as wide as their values only.
    let header: Vec<&str> = if shape.no_headers {
        vec![""; headers.len()]
    } else {
        headers.iter().map(String::as_str).collect()
    };
    let table = render::text_table(&header, cells, colour);
    Ok(if shape.no_headers {
        table
            .split_once('\n')
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default()
    } else {
        table
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_is_stable_numeric_and_missing_last() {
        let mut v = vec![
            serde_json::json!({"pid": 10, "name": "b"}),
            serde_json::json!({"pid": 9, "name": "a"}),
            serde_json::json!({"name": "c"}),
            serde_json::json!({"pid": 100, "name": "d"}),
        ];
        sort(&mut v, Some("pid"), Kind::Reports).unwrap();
        let names: Vec<&str> = v.iter().map(|x| x["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b", "d", "c"]);
        assert!(sort(&mut v, Some("nope"), Kind::Entries).is_err());
    }

    #[test]
    fn templates_escape_and_refuse_unknown_fields() {
        let shape = ShapeArgs {
            format: Some("{{{sandbox_id}}}\\t{pid}".into()),
            ..ShapeArgs::default()
        };
        let items = [serde_json::json!({"sandbox_id": "a\u{1b}b", "pid": 3})];
        assert_eq!(
            print(&items, Kind::Entries, &shape, false).unwrap(),
            "{a\\u{1b}b}\t3\n"
        );
        let bad = ShapeArgs {
            format: Some("{sandbox}".into()),
            ..ShapeArgs::default()
        };
        assert!(print(&items, Kind::Entries, &bad, false).is_err());
    }
}
