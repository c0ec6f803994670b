//! The requests a runner sends once the plan is out, one per line on
//! stdin, each answered with one canonical line on stdout.

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::canon::{canon, error_shape, normalise};
use crate::scenario::Res;

/// Answers each request until stdin closes (or stdout does).
pub fn answer_until_eof(runtime: &Path, disk_paths: &[Vec<String>]) {
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let req = line.trim_end_matches('\n');
        let answer = answer(req, runtime, disk_paths);
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
}

fn answer(req: &str, runtime: &Path, disk_paths: &[Vec<String>]) -> String {
    let result: Res<Value> = (|| {
        if let Some(rest) = req.strip_prefix("canon ") {
            let (kind, text) = rest.split_once(' ').ok_or("canon needs KIND JSON")?;
            let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
            return match kind {
                "ok" => Ok(json!({ "ok": normalise(&v) })),
                "error" => Ok(json!({ "error": error_shape(&v) })),
                k => Err(format!("canon kind {k:?} is neither ok nor error")),
            };
        }
        if let Some(n) = req.strip_prefix("disk ") {
            let n: usize = n.parse().map_err(|_| format!("bad step number {n:?}"))?;
            let paths = disk_paths.get(n).ok_or("no such step")?;
            return Ok(disk_state(runtime, paths));
        }
        Err(format!("unknown request {req:?}"))
    })();
    match result {
        Ok(v) => canon(&v),
        Err(e) => canon(&json!({ "testkit_error": e })),
    }
}

fn disk_state(runtime: &Path, paths: &[String]) -> Value {
    let run = runtime.join("run");
    let names = match std::fs::symlink_metadata(&run) {
        Ok(m) if m.is_dir() => {
            let mut v: Vec<String> = std::fs::read_dir(&run)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            json!(v)
        }
        _ => Value::Null,
    };
    let present: Vec<&String> = paths
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .collect();
    json!({ "ok": { "run": names, "present": present } })
}
