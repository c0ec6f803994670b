//! The canonical form every surface's answer is compared in: compact JSON
//! with sorted keys, clock-dependent values normalised, and errors reduced
//! to what every surface must agree on.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::scenario::Res;

/// A canonical JSON text: compact, object keys sorted.
pub fn canon(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let parts: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canon(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canon).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// `uptime_secs` is compared as set / unset: its value depends on the clock.
pub fn normalise(v: &Value) -> Value {
    let set_or_null = |v: &Value| -> Res<Option<Value>> {
        Ok(match v {
            Value::Object(m) if m.get("uptime_secs").is_some_and(Value::is_number) => {
                let mut m = m.clone();
                m.insert("uptime_secs".into(), json!("set"));
                Some(Value::Object(m))
            }
            _ => None,
        })
    };
    // What depends on the clock is not compared: a watch event's `at`, a
    // wait outcome's `waited_ms` (an object with the first key loses the
    // second).
    const CLOCK: [(&str, &str); 2] = [("event", "at"), ("condition", "waited_ms")];
    let drop_clock = |v: &Value| -> Res<Option<Value>> {
        let Value::Object(m) = v else {
            return Ok(None);
        };
        Ok(CLOCK
            .iter()
            .find(|(kind, key)| m.contains_key(*kind) && m.contains_key(*key))
            .map(|(_, key)| {
                let mut m = m.clone();
                m.remove(*key);
                Value::Object(m)
            }))
    };
    let v = rewrite(v, &drop_clock).expect("normalising cannot fail");
    let v = rewrite(&v, &exposition).expect("normalising cannot fail");
    let v = rewrite(&v, &kernel_neutral).expect("normalising cannot fail");
    rewrite(&v, &set_or_null).expect("normalising cannot fail")
}

/// What a scenario promises on every kernel the library supports, not what
/// one kernel's features add to it:
/// - a `resync` in a watch stream is advisory and says what this kernel
///   lacks (pidfds, inotify room — a reader under valgrind has neither
///   `pidfd_open` nor `openat2`); the model the stream builds is what every
///   surface must agree on, so resyncs are not compared;
/// - a serving socket is judged by the kernel's socket diagnostics where
///   they answer and by a connection elsewhere, and `inspect`'s detail says
///   which: both are the one outcome `serving`.
fn kernel_neutral(v: &Value) -> Res<Option<Value>> {
    const SERVING: &str = "serving (by the kernel's socket diagnostics or by a connection)";
    Ok(match v {
        Value::Array(a) if a.iter().any(is_resync) => Some(Value::Array(
            a.iter()
                .filter(|e| !is_resync(e))
                .map(|e| rewrite(e, &kernel_neutral))
                .collect::<Res<Vec<_>>>()?,
        )),
        Value::Object(m)
            if m.get("reason").and_then(Value::as_str) == Some("serving")
                && m.get("detail").is_some_and(Value::is_string) =>
        {
            let mut m = m.clone();
            m.insert("detail".into(), json!(SERVING));
            Some(Value::Object(m))
        }
        _ => None,
    })
}

/// An answer of `metrics` (Prometheus exposition text) is compared as its
/// series: the sample lines in order, the comments left out, and the
/// values that depend on the clock (how long the scan took, when it
/// finished) or on the build (the version label) replaced by `set`.
fn exposition(v: &Value) -> Res<Option<Value>> {
    const CLOCK: [&str; 2] = [
        "firma_scan_duration_seconds ",
        "firma_scan_timestamp_seconds ",
    ];
    let Value::String(text) = v else {
        return Ok(None);
    };
    if !text.starts_with("# HELP firma_") {
        return Ok(None);
    }
    let lines = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if let Some(c) = CLOCK.iter().find(|c| l.starts_with(*c)) {
                json!(format!("{c}set"))
            } else if l.starts_with("firma_build_info{") {
                json!("firma_build_info{version=\"set\"} 1")
            } else {
                json!(l)
            }
        })
        .collect();
    Ok(Some(Value::Array(lines)))
}

fn is_resync(v: &Value) -> bool {
    v.get("event").and_then(Value::as_str) == Some("resync")
}

/// Rebuilds `v` top-down: where `f` gives a replacement it is used as is,
/// elsewhere the children are rewritten.
pub fn rewrite(v: &Value, f: &dyn Fn(&Value) -> Res<Option<Value>>) -> Res<Value> {
    if let Some(new) = f(v)? {
        return Ok(new);
    }
    Ok(match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), rewrite(v, f)?)))
                .collect::<Res<_>>()?,
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rewrite(v, f)).collect::<Res<_>>()?),
        other => other.clone(),
    })
}

/// The part of an error every surface must agree on.
pub fn error_shape(v: &Value) -> Value {
    let get = |k: &str| match v.get(k) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Value::Null,
        Some(x) => x.clone(),
    };
    json!({ "code": get("code"), "path": get("path"), "errno": get("errno") })
}
