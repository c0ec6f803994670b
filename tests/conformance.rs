//! The conformance suite, Rust and CLI runner: every scenario of
//! `tests/conformance/scenarios/` laid down by `firma-testkit` and checked
//! through the library and through the `firma` command line. The runners of
//! the other surfaces (tests/c, python/tests, bindings/go) do the same with
//! the same scenarios; see tests/conformance/README.md.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use firma_stack::sidecar_markers::{self as sm, ProbeOptions, StackError};
use serde_json::{Value, json};

/// "Never hangs": far above any probe timeout a scenario uses.
const HANG_BOUND: Duration = Duration::from_secs(30);

/// The fixture tool, found or built once (shared with tests/common).
#[path = "common/testkit.rs"]
mod testkit;
use testkit::testkit;

fn firma() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_firma"))
}

/// One running fixture: the testkit process, its plan, and its pipes.
struct Kit {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    plan: Value,
}

impl Kit {
    fn up(scenario: &Path) -> Kit {
        let mut child = Command::new(testkit())
            .arg("up")
            .arg(scenario)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", testkit().display()));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let plan: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "{}: the testkit gave no plan ({e}): {line:?}",
                scenario.display()
            )
        });
        Kit {
            child,
            stdin,
            stdout,
            plan,
        }
    }

    fn ask(&mut self, request: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{request}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    fn canon(&mut self, answer: &Result<Value, Value>) -> String {
        match answer {
            Ok(v) => self.ask(&format!("canon ok {v}")),
            Err(e) => self.ask(&format!("canon error {e}")),
        }
    }
}

impl Drop for Kit {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn str_of<'a>(step: &'a Value, key: &str) -> &'a str {
    step.get(key).and_then(Value::as_str).unwrap_or("")
}

fn error_json(e: &StackError) -> Value {
    json!({ "code": e.code(), "path": e.path(), "errno": e.errno() })
}

/// The library's answer to a step, bounded by HANG_BOUND.
fn library(step: &Value) -> Result<Value, Value> {
    let op = str_of(step, "op").to_owned();
    let runtime = str_of(step, "runtime").to_owned();
    let id = str_of(step, "id").to_owned();
    let dir = str_of(step, "dir").to_owned();
    let arg = str_of(step, "arg").to_owned();
    let opts = step["timeout_ms"]
        .as_u64()
        .map(|ms| ProbeOptions::with_timeout(Duration::from_millis(ms)))
        .unwrap_or_default();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let to = |r: Result<Value, StackError>| r.map_err(|e| error_json(&e));
        let answer = match op.as_str() {
            "list" => to(sm::list_with(&runtime, &opts).map(|v| json!(v))),
            "get" => to(sm::get_with(&runtime, &id, &opts).map(|v| json!(v))),
            "gc_stale" => to(sm::gc_stale(&runtime).map(|v| json!(v))),
            "probe_entry" => to(sm::probe_entry_with(&dir, &opts).map(|v| json!(v))),
            "inspect" => to(sm::inspect_with(&runtime, &opts).map(|v| json!(v))),
            "watch_synced" => to(watch_synced(&runtime, opts)),
            "metrics" => to(metrics(&runtime, opts).map(|t| json!(t))),
            "list_filtered" => to(sm::Filter::from_json(&arg).and_then(|f| {
                let mut v = sm::list_with(&runtime, &opts)?;
                v.retain(|e| f.matches_entry(e));
                Ok(json!(v))
            })),
            "inspect_filtered" => to(sm::Filter::from_json(&arg).and_then(|f| {
                let mut v = sm::inspect_with(&runtime, &opts)?;
                v.retain(|r| f.matches_report(r));
                Ok(json!(v))
            })),
            "wait" => to(wait(&runtime, &arg, opts)),
            "runtime_dir_state" => Ok(json!(sm::runtime_dir_state(&runtime))),
            other => Err(json!({ "code": format!("runner has no op {other}") })),
        };
        let _ = tx.send(answer);
    });
    rx.recv_timeout(HANG_BOUND)
        .unwrap_or_else(|_| panic!("{step}: no answer within {HANG_BOUND:?}"))
}

/// The metrics of one scan (collecting, text format 0.0.4).
fn metrics(runtime: &str, probe: ProbeOptions) -> Result<String, StackError> {
    let opts = sm::metrics::MetricsOptions {
        probe,
        collect: true,
    };
    sm::metrics::render_metrics(runtime, &opts, sm::metrics::Format::Text)
}

/// The core's `wait` for a step's request `{"sandbox_ids", "for",
/// "timeout_ms"}`, the other options the defaults.
fn wait(runtime: &str, request: &str, probe: ProbeOptions) -> Result<Value, StackError> {
    let r: Value = serde_json::from_str(request).expect("the testkit's JSON");
    let ids: Vec<String> = serde_json::from_value(r["sandbox_ids"].clone()).unwrap_or_default();
    let mut opts = sm::WaitOptions {
        condition: serde_json::from_value(r["for"].clone()).expect("a condition"),
        probe,
        ..sm::WaitOptions::default()
    };
    if let Some(ms) = r["timeout_ms"].as_u64() {
        opts.timeout = Duration::from_millis(ms);
    }
    sm::wait(runtime, &ids, &opts).map(|o| json!(o))
}

/// A read-only watcher's events up to and including `synced`.
fn watch_synced(runtime: &str, probe: ProbeOptions) -> Result<Value, StackError> {
    let opts = sm::WatchOptions {
        probe,
        collect: false,
        ..sm::WatchOptions::default()
    };
    let mut w = sm::watch(runtime, &opts)?;
    let mut events = Vec::new();
    while let Some(ev) = w.next(Some(HANG_BOUND))? {
        let v = json!(ev);
        let done = v["event"] == "synced";
        events.push(v);
        if done {
            break;
        }
    }
    Ok(Value::Array(events))
}

/// `firma sidecar watch --json --no-gc`'s lines up to and including
/// `synced`; the command is then stopped.
fn cli_watch_synced(mut cmd: Command) -> Result<Value, Value> {
    let mut child = cmd
        .args(["sidecar", "watch", "--json", "--no-gc"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events = Vec::new();
    let result = loop {
        match lines.next() {
            Some(Ok(line)) => {
                let v: Value = serde_json::from_str(&line).unwrap();
                let done = v["event"] == "synced";
                events.push(v);
                if done {
                    break Ok(Value::Array(events));
                }
            }
            _ => break Err(json!({ "code": "cli watch ended before synced" })),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The CLI's selection flags for a step's filter (`--state`, `--agent`,
/// `--session`, `--reason`; the ids as `--sandbox-id`, or as the NAMEs of
/// `inspect`).
fn cli_select<'a>(cmd: &'a mut Command, step: &Value, inspect: bool) -> &'a mut Command {
    let f: Value = serde_json::from_str(str_of(step, "arg")).unwrap();
    let list = |k: &str| f[k].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    for s in list("states") {
        cmd.arg("--state").arg(text(&s));
    }
    for (key, flag) in [("agent", "--agent"), ("session", "--session")] {
        if let Some(v) = f[key].as_str() {
            cmd.arg(flag).arg(v);
        }
    }
    for r in list("reasons") {
        cmd.arg("--reason").arg(text(&r));
    }
    for id in list("sandbox_ids") {
        if inspect {
            cmd.arg(text(&id));
        } else {
            cmd.arg("--sandbox-id").arg(text(&id));
        }
    }
    cmd
}

/// What the CLI says for a step: `None` when it has no such command.
/// Errors are exit status 2 with a message `firma: …` naming the path, so
/// they are compared by that: the code is not part of the CLI's output.
fn cli(step: &Value, expected: &Value) -> Option<Result<Value, Value>> {
    let mut cmd = Command::new(firma());
    cmd.arg("--runtime-dir").arg(str_of(step, "runtime"));
    if let Some(ms) = step["timeout_ms"].as_u64() {
        cmd.arg("--timeout-ms").arg(ms.to_string());
    }
    match str_of(step, "op") {
        "list" => cmd.args(["sidecar", "status", "--json"]),
        "get" => cmd
            .args(["sidecar", "get", "--json", "--"])
            .arg(str_of(step, "id")),
        "gc_stale" => cmd.args(["sidecar", "gc", "--json"]),
        "inspect" => cmd.args(["sidecar", "inspect", "--json"]),
        "watch_synced" => return Some(cli_watch_synced(cmd)),
        "metrics" => cmd.args(["sidecar", "metrics"]),
        "list_filtered" => cli_select(cmd.args(["sidecar", "status", "--json"]), step, false),
        "inspect_filtered" => cli_select(cmd.args(["sidecar", "inspect", "--json"]), step, true),
        "wait" => {
            let r: Value = serde_json::from_str(str_of(step, "arg")).unwrap();
            cmd.args(["sidecar", "wait", "--json", "--for"])
                .arg(r["for"].as_str().unwrap_or(""))
                .arg("--timeout")
                .arg(format!("{}ms", r["timeout_ms"].as_u64().unwrap_or(30_000)))
                .arg("--");
            for id in r["sandbox_ids"].as_array().into_iter().flatten() {
                cmd.arg(id.as_str().unwrap_or(""));
            }
            &mut cmd
        }
        _ => return None,
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if str_of(step, "op") == "metrics" && out.status.code() == Some(0) {
        return Some(Ok(json!(stdout)));
    }
    // `wait` exits 7 when it timed out, its outcome printed all the same.
    let code = match out.status.code() {
        Some(7) if str_of(step, "op") == "wait" => Some(0),
        code => code,
    };
    Some(match code {
        Some(0 | 1) => serde_json::from_str(&stdout).map_err(
            |e| json!({ "code": format!("cli printed no JSON ({e}): {stdout:?} {stderr:?}") }),
        ),
        Some(2) => {
            let want = &expected["error"];
            let path_named = want["path"].as_str().is_none_or(|p| stderr.contains(p));
            if want.is_object() && path_named && stderr.starts_with("firma: ") {
                // Agrees: report exactly what was expected.
                Err(want.clone())
            } else {
                Err(json!({ "code": format!("cli exit 2: {stderr}") }))
            }
        }
        other => Err(json!({ "code": format!("cli exit {other:?}: {stderr}") })),
    })
}

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/scenarios");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no scenarios in {}", dir.display());
    v
}

/// Runs one scenario on one surface; returns the disagreements.
fn run(scenario: &Path, surface: &str) -> Vec<String> {
    let mut kit = Kit::up(scenario);
    let name = kit.plan["scenario"].as_str().unwrap_or("?").to_owned();
    let steps = kit.plan["steps"].as_array().cloned().unwrap_or_default();
    let mut failures = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let skip = step["skip"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(surface)));
        if skip {
            continue;
        }
        let expected = str_of(step, "expect").to_owned();
        let actual = if str_of(step, "op") == "disk" {
            kit.ask(&format!("disk {i}"))
        } else {
            let answer = if surface == "cli" {
                let want: Value = serde_json::from_str(&expected).unwrap();
                match cli(step, &want) {
                    Some(a) => a,
                    None => continue,
                }
            } else {
                library(step)
            };
            kit.canon(&answer)
        };
        if actual != expected {
            failures.push(format!(
                "scenario {name}, step {i} ({} {}{}) on {surface}:\n  expected {expected}\n  actual   {actual}",
                str_of(step, "op"),
                str_of(step, "id"),
                str_of(step, "dir"),
            ));
        }
    }
    failures
}

#[test]
fn every_scenario_on_the_library_and_the_cli() {
    let mut failures = Vec::new();
    let all = scenarios();
    for scenario in &all {
        for surface in ["rust", "cli"] {
            failures.extend(run(scenario, surface));
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s) over {} scenarios:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// The runner itself: a wrong expectation is reported with the scenario's
/// name and both answers, on the library and on the CLI.
#[test]
fn a_disagreement_names_the_scenario_and_both_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong-on-purpose.json");
    std::fs::write(
        &path,
        r#"{"steps": [{"op": "list", "expect": {"ok": ["not-there"]}}]}"#,
    )
    .unwrap();
    for surface in ["rust", "cli"] {
        let failures = run(&path, surface);
        assert_eq!(failures.len(), 1, "{failures:?}");
        let f = &failures[0];
        assert!(f.contains("scenario wrong-on-purpose, step 0 (list"), "{f}");
        assert!(f.contains(&format!("on {surface}")), "{f}");
        assert!(f.contains(r#"expected {"ok":["not-there"]}"#), "{f}");
        assert!(f.contains(r#"actual   {"ok":[]}"#), "{f}");
    }
}

/// The testkit refuses a misspelt key, and tears its fixture down (its
/// processes killed and reaped, its directory removed) when stdin closes.
#[test]
fn the_testkit_refuses_unknown_keys_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"markers": [{"dir": "x", "metta": {}}]}"#).unwrap();
    let out = Command::new(testkit())
        .arg("up")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"unknown marker key "metta""#), "{stderr}");

    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/scenarios/serving-sidecar-is-running.json");
    let kit = Kit::up(&scenario);
    let runtime = PathBuf::from(kit.plan["placeholders"]["runtime"].as_str().unwrap());
    let pid = kit.plan["placeholders"]["pid:web"].as_i64().unwrap() as i32;
    assert!(runtime.join("run/web-1/sidecar.sock").exists());
    drop(kit);
    assert!(!runtime.exists(), "{} left behind", runtime.display());
    // SAFETY: kill(2) with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    assert_eq!(rc, -1, "sleeper {pid} outlived the testkit");
}
