//! `{name}` placeholders in a scenario's strings: the fixture's paths,
//! pids, ports and start times, known once it is laid down.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::canon::rewrite;
use crate::scenario::Res;

/// Replaces `{name}` placeholders in every string. A string that is exactly
/// one numeric placeholder (`"{pid:x}"`) becomes that number.
pub fn subst(v: &Value, ph: &BTreeMap<String, Value>) -> Res<Value> {
    rewrite(v, &|v| match v {
        Value::String(s) => subst_str(s, ph).map(Some),
        _ => Ok(None),
    })
}

fn subst_str(s: &str, ph: &BTreeMap<String, Value>) -> Res<Value> {
    if let Some(key) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}'))
        && let Some(val) = ph.get(key)
        && val.is_number()
    {
        return Ok(val.clone());
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let key = after.find('}').map(|c| &after[..c]);
        match key {
            Some(k) if is_placeholder(k) => {
                let val = ph
                    .get(k)
                    .ok_or_else(|| format!("unknown placeholder {{{k}}}"))?;
                match val {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[k.len() + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn is_placeholder(k: &str) -> bool {
    let (kind, name) = k.split_once(':').unwrap_or((k, "x"));
    !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
