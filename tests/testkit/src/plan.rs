//! The plan: every step of the scenario with its placeholders substituted
//! and its expected answer expanded and put in canonical form, printed as
//! one JSON line or, for C, as lines.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Map, Value, json};

use crate::canon::{canon, error_shape, normalise, rewrite};
use crate::placeholders::subst;
use crate::scenario::{Res, STEP_KEYS, Scenario, only_keys};

fn plan_step(
    step: &Value,
    ph: &BTreeMap<String, Value>,
    markers: &BTreeMap<String, Map<String, Value>>,
) -> Res<Value> {
    let op = step
        .get("op")
        .and_then(Value::as_str)
        .ok_or("a step needs \"op\"")?;
    only_keys(step, "step", STEP_KEYS)?;
    let expect = step.get("expect").ok_or("a step needs \"expect\"")?;
    let expect = match op {
        "disk" => {
            let mut e = expect
                .as_object()
                .ok_or("disk expect must be an object")?
                .clone();
            e.entry("present").or_insert(json!([]));
            json!({ "ok": e })
        }
        "list" | "get" | "gc_stale" | "probe_entry" | "inspect" | "watch_synced" | "metrics"
        | "list_filtered" | "inspect_filtered" | "wait" | "runtime_dir_state" => {
            let obj = expect
                .as_object()
                .ok_or("expect must be {\"ok\": …} or {\"error\": …}")?;
            match (obj.get("ok"), obj.get("error"), obj.len()) {
                (Some(v), None, 1) => json!({ "ok": normalise(&expand(v, markers)?) }),
                (None, Some(e), 1) => json!({ "error": error_shape(e) }),
                _ => return Err("expect must be {\"ok\": …} or {\"error\": …}".into()),
            }
        }
        other => return Err(format!("unknown op {other:?}")),
    };
    let mut s = Map::new();
    s.insert("op".into(), json!(op));
    let runtime = step
        .get("runtime")
        .cloned()
        .unwrap_or_else(|| ph["runtime"].clone());
    if matches!(
        op,
        "list"
            | "get"
            | "gc_stale"
            | "inspect"
            | "watch_synced"
            | "metrics"
            | "list_filtered"
            | "inspect_filtered"
            | "wait"
            | "runtime_dir_state"
    ) {
        s.insert("runtime".into(), runtime);
    }
    // The JSON argument of an op that takes one (a filter, a wait
    // request), as compact text: every runner passes it on as it is.
    let arg = match op {
        "list_filtered" | "inspect_filtered" => Some(("filter", json!({}))),
        "wait" => Some(("wait", Value::Null)),
        _ => None,
    };
    if let Some((key, default)) = arg {
        let v = step.get(key).cloned().unwrap_or(default);
        if v.is_null() {
            return Err(format!("{op} needs \"{key}\""));
        }
        s.insert("arg".into(), json!(v.to_string()));
    }
    for k in ["id", "dir"] {
        if let Some(v) = step.get(k) {
            s.insert(k.into(), v.clone());
        }
    }
    if op == "get" && !s.contains_key("id") {
        return Err("get needs \"id\"".into());
    }
    if op == "probe_entry" && !s.contains_key("dir") {
        return Err("probe_entry needs \"dir\"".into());
    }
    s.insert(
        "timeout_ms".into(),
        step.get("timeout_ms").cloned().unwrap_or(Value::Null),
    );
    s.insert(
        "skip".into(),
        step.get("skip").cloned().unwrap_or(json!([])),
    );
    s.insert("expect".into(), json!(canon(&expect)));
    Ok(Value::Object(s))
}

/// `{"$marker": "dir", "state": …}` in an expected answer stands for the
/// entry of that fixture marker: its metadata, listen (the marker's socket
/// when none is written) and uptime (set for the core's writer, which
/// writes `sidecar.pid`), overridden by the other keys given.
fn expand(v: &Value, markers: &BTreeMap<String, Map<String, Value>>) -> Res<Value> {
    let marker_entry = |v: &Value| -> Res<Option<Value>> {
        let Some(m) = v.as_object().filter(|m| m.contains_key("$marker")) else {
            return Ok(None);
        };
        let dir = m["$marker"].as_str().ok_or("$marker must be a string")?;
        let mut e = markers
            .get(dir)
            .ok_or_else(|| format!("$marker {dir:?} is not a fixture marker"))?
            .clone();
        e.extend(
            m.iter()
                .filter(|(k, _)| *k != "$marker")
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if !e.contains_key("state") {
            return Err(format!("$marker {dir:?} needs a \"state\""));
        }
        Ok(Some(Value::Object(e)))
    };
    rewrite(v, &marker_entry)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The plan of a scenario: its steps, and for each the paths that `disk N`
/// reports on.
pub struct Plan {
    steps: Vec<Value>,
    pub disk_paths: Vec<Vec<String>>,
}

impl Plan {
    /// Plans every step once the fixture is laid down (`ph` complete,
    /// `markers` the entries the laid markers stand for).
    pub fn make(
        scenario: &Scenario,
        ph: &BTreeMap<String, Value>,
        markers: &BTreeMap<String, Map<String, Value>>,
    ) -> Res<Plan> {
        // A fixture file of a binding's own test may have no steps.
        let steps = scenario.array("steps", "steps must be an array")?;
        let mut plan = Plan {
            steps: Vec::new(),
            disk_paths: Vec::new(),
        };
        for (i, step) in steps.iter().enumerate() {
            let step = subst(step, ph)?;
            let s = plan_step(&step, ph, markers).map_err(|e| format!("step {i}: {e}"))?;
            plan.disk_paths.push(
                step.get("paths")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            );
            plan.steps.push(s);
        }
        Ok(plan)
    }

    /// Prints the plan on stdout: one JSON line, or with `lines` the line
    /// form (`place`, `step`, `ready`).
    pub fn print(&self, scenario: &Scenario, ph: &BTreeMap<String, Value>, lines: bool) -> Res<()> {
        let mut out = std::io::stdout().lock();
        let placeholders: Map<String, Value> = ph.clone().into_iter().collect();
        if lines {
            self.print_lines(&mut out, &placeholders)?;
        } else {
            let plan = json!({
                "scenario": scenario.name,
                "about": scenario.get("about").cloned().unwrap_or(Value::Null),
                "placeholders": placeholders,
                "steps": self.steps,
            });
            writeln!(out, "{plan}").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())
    }

    /// The line form, for C: `place NAME xHEX` per placeholder, `step I OP
    /// xRUNTIME xID xDIR xARG TIMEOUT SKIP EXPECT` per step, then `ready`.
    fn print_lines(&self, out: &mut impl Write, placeholders: &Map<String, Value>) -> Res<()> {
        for (k, v) in placeholders {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            writeln!(out, "place {k} x{}", hex(&v)).map_err(|e| e.to_string())?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            let field =
                |k: &str| format!("x{}", hex(s.get(k).and_then(Value::as_str).unwrap_or("")));
            let skip: Vec<&str> = s["skip"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            writeln!(
                out,
                "step {i} {} {} {} {} {} {} {} {}",
                s["op"].as_str().unwrap_or(""),
                field("runtime"),
                field("id"),
                field("dir"),
                field("arg"),
                s["timeout_ms"].as_u64().unwrap_or(0),
                if skip.is_empty() {
                    "-".to_owned()
                } else {
                    skip.join(",")
                },
                s["expect"].as_str().unwrap_or("")
            )
            .map_err(|e| e.to_string())?;
        }
        writeln!(out, "ready").map_err(|e| e.to_string())
    }
}
