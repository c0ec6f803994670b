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
    // A watch event's `at` depends on the clock: not compared.
    let drop_at = |v: &Value| -> Res<Option<Value>> {
        Ok(match v {
            Value::Object(m) if m.contains_key("event") && m.contains_key("at") => {
                let mut m = m.clone();
                m.remove("at");
                Some(rewrite(&Value::Object(m), &set_or_null)?)
            }
            _ => None,
        })
    };
    let v = rewrite(v, &drop_at).expect("normalising cannot fail");
    rewrite(&v, &set_or_null).expect("normalising cannot fail")
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
