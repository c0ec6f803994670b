//! A scenario file (tests/conformance/README.md): read, checked to be an
//! object, and refused when one of its objects has a key nobody reads.

use std::path::Path;

use serde_json::{Map, Value};

pub type Res<T> = Result<T, String>;

// The keys each object of a scenario may have (one line each, on purpose).
#[rustfmt::skip]
const SCENARIO_KEYS: &[&str] = &["about", "runtime_subdir", "processes", "endpoints", "markers", "files", "steps"];
#[rustfmt::skip]
pub const STEP_KEYS: &[&str] = &["op", "id", "dir", "runtime", "timeout_ms", "expect", "paths", "skip", "why", "filter", "wait"];
#[rustfmt::skip]
pub const MARKER_KEYS: &[&str] = &["dir", "under", "writer", "meta", "omit", "extra_toml", "text", "text_hex", "metadata", "pad_to"];

/// Refuses keys a scenario's author may have misspelt.
pub fn only_keys(v: &Value, what: &str, allowed: &[&str]) -> Res<()> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("a {what} must be an object"))?;
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown {what} key {k:?} (known: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

/// One scenario: its name (the file's stem) and its top-level object.
pub struct Scenario {
    pub name: String,
    pub top: Map<String, Value>,
}

impl Scenario {
    pub fn read(path: &Path) -> Res<Scenario> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read scenario: {e}"))?;
        let scenario: Value =
            serde_json::from_str(&text).map_err(|e| format!("scenario is not JSON: {e}"))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let top = scenario
            .as_object()
            .ok_or("scenario must be an object")?
            .clone();
        only_keys(&scenario, "scenario", SCENARIO_KEYS)?;
        Ok(Scenario { name, top })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.top.get(key)
    }

    /// `"endpoints"`: name to spec (none when absent).
    pub fn endpoints(&self) -> Res<Map<String, Value>> {
        match self.get("endpoints") {
            Some(v) => Ok(v.as_object().ok_or("endpoints must be an object")?.clone()),
            None => Ok(Map::new()),
        }
    }

    /// The array under `key` (`what` names it in the error); empty when
    /// absent.
    pub fn array(&self, key: &str, what: &str) -> Res<Vec<Value>> {
        match self.get(key) {
            Some(v) => Ok(v.as_array().ok_or(what)?.clone()),
            None => Ok(Vec::new()),
        }
    }
}
