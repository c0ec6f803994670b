//! `firma-testkit`: the one fixture tool of the conformance suite
//! (`tests/conformance/`). Every surface's runner (Rust, C, Python, Go, CLI)
//! asks it to lay down a scenario's fixture and to put answers into one
//! canonical form, so the fixtures and the normalisation exist once.
//!
//! ```text
//! firma-testkit up [--lines] SCENARIO.json
//! ```
//!
//! creates a fresh temporary directory, lays the scenario's fixture down in
//! it — live, zombie and dead processes; serving, wedged, refused and TCP
//! endpoints; markers written by the core's writer or by hand; FIFOs,
//! symlinks and plain files — and prints the plan: one JSON line (or, with
//! `--lines`, a line-based form for C: `place NAME xHEX` lines, `step …`
//! lines, then `ready`) holding the placeholders and every step with its
//! expected answer already substituted and canonicalised. It then answers requests on stdin, one per line:
//!
//! - `canon ok JSON` / `canon error JSON`: the canonical form of a surface's
//!   answer (a success value, or an error object of which `code`, `path` and
//!   `errno` are kept; `uptime_secs` numbers become `"set"`);
//! - `disk N`: the canonical state of the disk for step `N` (the names in
//!   `run/`, and which of the step's `paths` exist).
//!
//! When stdin closes, on SIGTERM/SIGINT/SIGHUP, or when its parent dies
//! (`PR_SET_PDEATHSIG`), it kills and reaps its processes and removes the
//! directory.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use firma_stack::sidecar_markers::{MetadataFile, create_marker};
use serde_json::{Map, Value, json};

type Res<T> = Result<T, String>;

/// What the signal thread and the stdin loop share: the one teardown.
struct Fixture {
    base: PathBuf,
    /// Children to kill (sleepers) and reap (all, zombies included).
    kill: Vec<libc::pid_t>,
    reap: Vec<libc::pid_t>,
}

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

fn teardown() {
    let Some(fx) = FIXTURE.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    for &pid in &fx.kill {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &fx.reap {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let _ = std::fs::remove_dir_all(&fx.base);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (lines, scenario) = match args.as_slice() {
        [up, path] if up == "up" => (false, path),
        [up, flag, path] if up == "up" && flag == "--lines" => (true, path),
        _ => {
            eprintln!("usage: firma-testkit up [--lines] SCENARIO.json");
            return ExitCode::from(2);
        }
    };
    match up(Path::new(scenario), lines) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            teardown();
            eprintln!("firma-testkit: {}: {e}", scenario);
            ExitCode::FAILURE
        }
    }
}

// The keys each object of a scenario may have (one line each, on purpose).
#[rustfmt::skip]
const SCENARIO_KEYS: &[&str] = &["about", "runtime_subdir", "processes", "endpoints", "markers", "files", "steps"];
#[rustfmt::skip]
const STEP_KEYS: &[&str] = &["op", "id", "dir", "runtime", "timeout_ms", "expect", "paths", "skip", "why"];
#[rustfmt::skip]
const MARKER_KEYS: &[&str] = &["dir", "under", "writer", "meta", "omit", "extra_toml", "text", "text_hex", "metadata", "pad_to"];

/// Refuses keys a scenario's author may have misspelt.
fn only_keys(v: &Value, what: &str, allowed: &[&str]) -> Res<()> {
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

fn check(rc: libc::c_int, what: &str) -> Res<()> {
    if rc < 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn up(scenario_path: &Path, lines: bool) -> Res<()> {
    // Die with the parent: SIGTERM, handled below like any other request to
    // stop. Signals are blocked here so that every thread inherits the mask
    // and only the signal thread receives them.
    // SAFETY: plain prctl/sigset calls on this process.
    let set = unsafe {
        check(
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong),
            "prctl",
        )?;
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
            libc::sigaddset(&mut set, sig);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err("pthread_sigmask failed".into());
        }
        set
    };
    if std::os::unix::process::parent_id() == 1 {
        return Err("parent already gone".into());
    }

    let text =
        std::fs::read_to_string(scenario_path).map_err(|e| format!("cannot read scenario: {e}"))?;
    let scenario: Value =
        serde_json::from_str(&text).map_err(|e| format!("scenario is not JSON: {e}"))?;
    let name = scenario_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sc = scenario.as_object().ok_or("scenario must be an object")?;
    only_keys(&scenario, "scenario", SCENARIO_KEYS)?;

    // A short base path: marker socket paths must usually fit sun_path.
    let mut template = *b"/tmp/fk-XXXXXX\0";
    // SAFETY: template is a writable NUL-terminated buffer.
    if unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) }.is_null() {
        return Err(format!("mkdtemp: {}", std::io::Error::last_os_error()));
    }
    let base = PathBuf::from(std::str::from_utf8(&template[..template.len() - 1]).unwrap());
    *FIXTURE.lock().unwrap() = Some(Fixture {
        base: base.clone(),
        kill: Vec::new(),
        reap: Vec::new(),
    });
    let mut runtime = base.join("rt");
    if let Some(sub) = sc.get("runtime_subdir").and_then(Value::as_str) {
        runtime.push(sub);
    }
    let outside = base.join("out");
    for d in [&runtime, &outside] {
        std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }

    let mut ph: BTreeMap<String, Value> = BTreeMap::new();
    let path_str = |p: &Path| Value::String(p.to_string_lossy().into_owned());
    ph.insert("runtime".into(), path_str(&runtime));
    ph.insert("run".into(), path_str(&runtime.join("run")));
    ph.insert("outside".into(), path_str(&outside));
    ph.insert("pid:testkit".into(), json!(std::process::id()));
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map_err(|e| format!("cannot read the boot id: {e}"))?;
    ph.insert("boot_id".into(), json!(boot.trim()));

    // 1. Processes, forked before any thread exists.
    if let Some(procs) = sc.get("processes") {
        let procs = procs.as_object().ok_or("processes must be an object")?;
        for (pname, kind) in procs {
            let pid = start_process(kind.as_str().unwrap_or(""))
                .map_err(|e| format!("process {pname:?}: {e}"))?;
            ph.insert(format!("pid:{pname}"), json!(pid));
            if let Some(ticks) = start_ticks(pid) {
                ph.insert(format!("ticks:{pname}"), json!(ticks));
                ph.insert(format!("other_ticks:{pname}"), json!(ticks + 7));
            }
        }
    }

    // The signal thread: any of the blocked signals ends the fixture.
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: waiting for the signals blocked above.
        unsafe { libc::sigwait(&set, &mut sig) };
        teardown();
        std::process::exit(0);
    });

    // 2. TCP endpoints (markers name their port).
    let endpoints = match sc.get("endpoints") {
        Some(v) => v.as_object().ok_or("endpoints must be an object")?.clone(),
        None => Map::new(),
    };
    let mut held: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    for (ename, spec) in &endpoints {
        if let Some(addr) = spec.get("tcp") {
            let addr = subst(addr, &ph)?;
            let l = TcpListener::bind(addr.as_str().ok_or("tcp must be a string")?)
                .map_err(|e| format!("endpoint {ename:?}: bind: {e}"))?;
            let local = l.local_addr().map_err(|e| e.to_string())?;
            ph.insert(format!("addr:{ename}"), json!(local.to_string()));
            ph.insert(format!("port:{ename}"), json!(local.port()));
            match mode(spec)? {
                "serving" => serve_tcp(l),
                "wedged" => held.push(wedge_tcp(l)?),
                m => return Err(format!("endpoint {ename:?}: tcp mode {m:?} unknown")),
            }
        }
    }

    // 3. Markers.
    let markers: Vec<Value> = match sc.get("markers") {
        Some(v) => v.as_array().ok_or("markers must be an array")?.clone(),
        None => Vec::new(),
    };
    let mut expanded: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for m in &markers {
        let m = subst(m, &ph)?;
        let dir = m
            .get("dir")
            .and_then(Value::as_str)
            .ok_or("a marker needs \"dir\"")?
            .to_owned();
        let entry =
            lay_marker(&runtime, &outside, &dir, &m).map_err(|e| format!("marker {dir:?}: {e}"))?;
        expanded.insert(dir, entry);
    }

    // 4. Unix endpoints (usually inside a marker directory).
    for (ename, spec) in &endpoints {
        if let Some(path) = spec.get("unix") {
            let path = subst(path, &ph)?;
            let path = PathBuf::from(path.as_str().ok_or("unix must be a string")?);
            let h = unix_endpoint(&path, mode(spec)?)
                .map_err(|e| format!("endpoint {ename:?} at {}: {e}", path.display()))?;
            held.push(h);
        }
    }

    // 5. Other things on disk.
    if let Some(files) = sc.get("files") {
        for f in files.as_array().ok_or("files must be an array")? {
            let f = subst(f, &ph)?;
            lay_file(&f).map_err(|e| format!("file {f}: {e}"))?;
        }
    }

    // 6. The plan.
    // A fixture file of a binding's own test may have no steps.
    let no_steps = Vec::new();
    let steps = match sc.get("steps") {
        Some(v) => v.as_array().ok_or("steps must be an array")?,
        None => &no_steps,
    };
    let mut plan_steps = Vec::new();
    let mut disk_paths: Vec<Vec<String>> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let step = subst(step, &ph)?;
        let s = plan_step(&step, &ph, &expanded).map_err(|e| format!("step {i}: {e}"))?;
        disk_paths.push(
            step.get("paths")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        );
        plan_steps.push(s);
    }

    let mut out = std::io::stdout().lock();
    let placeholders: Map<String, Value> = ph.clone().into_iter().collect();
    if lines {
        for (k, v) in &placeholders {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            writeln!(out, "place {k} x{}", hex(&v)).map_err(|e| e.to_string())?;
        }
        for (i, s) in plan_steps.iter().enumerate() {
            let field =
                |k: &str| format!("x{}", hex(s.get(k).and_then(Value::as_str).unwrap_or("")));
            let skip: Vec<&str> = s["skip"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            writeln!(
                out,
                "step {i} {} {} {} {} {} {} {}",
                s["op"].as_str().unwrap_or(""),
                field("runtime"),
                field("id"),
                field("dir"),
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
        writeln!(out, "ready").map_err(|e| e.to_string())?;
    } else {
        let plan = json!({
            "scenario": name,
            "about": sc.get("about").cloned().unwrap_or(Value::Null),
            "placeholders": placeholders,
            "steps": plan_steps,
        });
        writeln!(out, "{plan}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);

    // 7. Requests until stdin closes.
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let req = line.trim_end_matches('\n');
        let answer = answer(req, &runtime, &disk_paths);
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    drop(held);
    teardown();
    Ok(())
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

/// A canonical JSON text: compact, object keys sorted.
fn canon(v: &Value) -> String {
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
fn normalise(v: &Value) -> Value {
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
fn rewrite(v: &Value, f: &dyn Fn(&Value) -> Res<Option<Value>>) -> Res<Value> {
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
fn error_shape(v: &Value) -> Value {
    let get = |k: &str| match v.get(k) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Value::Null,
        Some(x) => x.clone(),
    };
    json!({ "code": get("code"), "path": get("path"), "errno": get("errno") })
}

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
        "list" | "get" | "gc_stale" | "probe_entry" | "inspect" | "watch_synced" => {
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
    if matches!(op, "list" | "get" | "gc_stale" | "inspect" | "watch_synced") {
        s.insert("runtime".into(), runtime);
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

/// Replaces `{name}` placeholders in every string. A string that is exactly
/// one numeric placeholder (`"{pid:x}"`) becomes that number.
fn subst(v: &Value, ph: &BTreeMap<String, Value>) -> Res<Value> {
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

fn mode(spec: &Value) -> Res<&str> {
    spec.get("mode")
        .and_then(Value::as_str)
        .ok_or_else(|| "an endpoint needs a \"mode\"".to_owned())
}

// ---- processes ---------------------------------------------------------

fn start_process(kind: &str) -> Res<libc::pid_t> {
    if !matches!(kind, "sleeper" | "zombie" | "dead") {
        return Err(format!("kind {kind:?} is not one of sleeper, zombie, dead"));
    }
    // SAFETY: no other thread exists yet; the child only makes
    // async-signal-safe calls before it pauses or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls in the child.
        unsafe {
            if kind == "sleeper" {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                loop {
                    libc::pause();
                }
            }
            libc::_exit(0);
        }
    }
    let mut fx = FIXTURE.lock().unwrap();
    let fx = fx.as_mut().expect("fixture set up");
    match kind {
        "sleeper" => {
            fx.kill.push(pid);
            fx.reap.push(pid);
        }
        "zombie" => {
            fx.reap.push(pid);
            // The kernel finishes the exit asynchronously.
            let mut tries = 0;
            while proc_state(pid).as_deref() != Some("Z") {
                tries += 1;
                if tries > 10_000 {
                    return Err(format!("pid {pid} never became a zombie"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        _ => {
            let mut status = 0;
            // SAFETY: reaping our own child.
            check(unsafe { libc::waitpid(pid, &mut status, 0) }, "waitpid")?;
        }
    }
    Ok(pid)
}

fn proc_stat_fields(pid: libc::pid_t) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

fn proc_state(pid: libc::pid_t) -> Option<String> {
    proc_stat_fields(pid)?.into_iter().next()
}

/// Field 22 of /proc/<pid>/stat (the 20th after the command name).
fn start_ticks(pid: libc::pid_t) -> Option<u64> {
    proc_stat_fields(pid)?.get(19)?.parse().ok()
}

// ---- endpoints ---------------------------------------------------------

fn serve_tcp(l: TcpListener) {
    std::thread::spawn(move || {
        for conn in l.incoming() {
            drop(conn);
        }
    });
}

/// Backlog 0 and filled: every further SYN is dropped, so a probe times out.
fn wedge_tcp(l: TcpListener) -> Res<Box<dyn std::any::Any + Send>> {
    // SAFETY: listen(2) on our own socket.
    check(unsafe { libc::listen(l.as_raw_fd(), 0) }, "listen")?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            held.push(s);
        }
    }
    if held.is_empty() {
        return Err("could not fill the TCP backlog".into());
    }
    Ok(Box::new((l, held)))
}

/// Binds a Unix socket at `path`, through the parent directory's
/// descriptor when the path is longer than `sun_path`.
fn bind_unix(path: &Path) -> Res<(UnixListener, Option<std::fs::File>)> {
    if path.as_os_str().len() < 100 {
        return UnixListener::bind(path)
            .map(|l| (l, None))
            .map_err(|e| format!("bind: {e}"));
    }
    let parent = path.parent().ok_or("no parent")?;
    let dir = std::fs::File::open(parent).map_err(|e| format!("open parent: {e}"))?;
    let short = format!(
        "/proc/self/fd/{}/{}",
        dir.as_raw_fd(),
        path.file_name().ok_or("no file name")?.to_string_lossy()
    );
    UnixListener::bind(short)
        .map(|l| (l, Some(dir)))
        .map_err(|e| format!("bind: {e}"))
}

fn unix_endpoint(path: &Path, mode: &str) -> Res<Box<dyn std::any::Any + Send>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create parent: {e}"))?;
    }
    let (l, dir) = bind_unix(path)?;
    match mode {
        "serving" => {
            std::thread::spawn(move || {
                for conn in l.incoming() {
                    drop(conn);
                }
            });
            Ok(Box::new(dir))
        }
        "wedged" => {
            // SAFETY: listen(2) on our own socket.
            check(unsafe { libc::listen(l.as_raw_fd(), 0) }, "listen")?;
            // A Unix accept queue of backlog 0 holds exactly one connection:
            // this connect is queued at once, and every later one is turned
            // away (EAGAIN for a non-blocking connect).
            let target = match &dir {
                Some(d) => PathBuf::from(format!(
                    "/proc/self/fd/{}/{}",
                    d.as_raw_fd(),
                    path.file_name().ok_or("no file name")?.to_string_lossy()
                )),
                None => path.to_path_buf(),
            };
            let held = UnixStream::connect(&target)
                .map_err(|e| format!("could not fill the Unix backlog: {e}"))?;
            Ok(Box::new((l, held, dir)))
        }
        "refused" => {
            // The socket file stays; nobody listens: ECONNREFUSED.
            drop(l);
            Ok(Box::new(dir))
        }
        m => Err(format!("unix mode {m:?} is not serving, wedged or refused")),
    }
}

// ---- markers and files -------------------------------------------------

const DEFAULTS: [(&str, &str); 6] = [
    ("agent_id", "agent"),
    ("session_id", "session"),
    ("authority_url", "https://authority.invalid"),
    ("policy_bundle_version", "v1"),
    ("started_at", "2026-11-29T12:00:00Z"),
    ("listen", ""),
];

/// Lays down one marker and returns the entry it stands for (without
/// state) for `$marker` in expectations.
fn lay_marker(runtime: &Path, outside: &Path, dir: &str, m: &Value) -> Res<Map<String, Value>> {
    only_keys(m, "marker", MARKER_KEYS)?;
    let writer = m.get("writer").and_then(Value::as_str).unwrap_or("hand");
    let mut meta = Map::new();
    meta.insert("sandbox_id".into(), json!(dir));
    for (k, v) in DEFAULTS {
        meta.insert(k.into(), json!(v));
    }
    if let Some(given) = m.get("meta") {
        for (k, v) in given.as_object().ok_or("meta must be an object")? {
            meta.insert(k.clone(), v.clone());
        }
    }
    for k in m
        .get("omit")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        meta.remove(k.as_str().unwrap_or(""));
    }
    if meta.get("listen") == Some(&json!("")) {
        meta.remove("listen");
    }
    let root = match m.get("under").and_then(Value::as_str) {
        Some(u) => PathBuf::from(u),
        None => runtime.to_path_buf(),
    };
    let runtime = root.as_path();
    let marker_dir = runtime.join("run").join(dir);

    // The entry reported for this marker: its metadata without the keys
    // that are not reported, plus listen and uptime below.
    let mut entry: Map<String, Value> = meta
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "listen" | "boot_id" | "pid_start_ticks"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let listen = match meta.get("listen").and_then(Value::as_str) {
        Some(l) if !l.is_empty() => l.to_owned(),
        _ => marker_dir
            .join("sidecar.sock")
            .to_string_lossy()
            .into_owned(),
    };
    entry.insert("listen".into(), json!(listen));
    entry.insert(
        "uptime_secs".into(),
        if writer == "core" {
            json!("set")
        } else {
            Value::Null
        },
    );

    if writer == "core" {
        let s = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
        let mf = MetadataFile {
            sandbox_id: s("sandbox_id").ok_or("sandbox_id")?,
            agent_id: s("agent_id").unwrap_or_default(),
            session_id: s("session_id").unwrap_or_default(),
            authority_url: s("authority_url").unwrap_or_default(),
            policy_bundle_version: s("policy_bundle_version").unwrap_or_default(),
            pid: meta
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .ok_or("the core's writer needs a numeric pid")?,
            started_at: s("started_at").unwrap_or_default(),
            listen: s("listen"),
            boot_id: s("boot_id"),
            pid_start_ticks: meta.get("pid_start_ticks").and_then(Value::as_u64),
            pid_ns_inode: meta.get("pid_ns_inode").and_then(Value::as_u64),
            boottime_offset_ns: meta.get("boottime_offset_ns").and_then(Value::as_i64),
        };
        let made = create_marker(runtime, &mf).map_err(|e| format!("create_marker: {e}"))?;
        if made != marker_dir {
            return Err(format!("the writer made {} instead", made.display()));
        }
        return Ok(entry);
    }

    std::fs::create_dir_all(&marker_dir).map_err(|e| format!("mkdir: {e}"))?;
    let mut text: Vec<u8> = match (m.get("text").and_then(Value::as_str), m.get("text_hex")) {
        (Some(t), _) => t.as_bytes().to_vec(),
        (None, Some(h)) => unhex(h.as_str().ok_or("text_hex must be a string")?)?,
        (None, None) => {
            let mut t = String::new();
            for (k, v) in &meta {
                t.push_str(&format!("{k} = {}\n", toml_value(v)?));
            }
            t.into_bytes()
        }
    };
    if let Some(extra) = m.get("extra_toml").and_then(Value::as_str) {
        text.extend_from_slice(extra.as_bytes());
    }
    if let Some(n) = m.get("pad_to").and_then(Value::as_u64) {
        let n = n as usize;
        text.push(b'#');
        while text.len() < n - 1 {
            text.push(b'x');
        }
        text.push(b'\n');
    }
    let file = marker_dir.join("metadata.toml");
    match m.get("metadata").and_then(Value::as_str).unwrap_or("file") {
        "file" => std::fs::write(&file, &text).map_err(|e| format!("write: {e}"))?,
        "none" => {}
        "fifo" => mkfifo(&file)?,
        "symlink" => {
            let real = outside.join(format!("{dir}.toml"));
            std::fs::write(&real, &text).map_err(|e| format!("write: {e}"))?;
            symlink(&real, &file).map_err(|e| format!("symlink: {e}"))?;
        }
        "sparse_gib" => {
            std::fs::write(&file, &text).map_err(|e| format!("write: {e}"))?;
            let f = std::fs::OpenOptions::new()
                .append(true)
                .open(&file)
                .map_err(|e| e.to_string())?;
            f.set_len(1 << 30).map_err(|e| format!("set_len: {e}"))?;
        }
        other => {
            return Err(format!(
                "metadata {other:?} is not file, none, fifo, symlink or sparse_gib"
            ));
        }
    }
    Ok(entry)
}

fn toml_value(v: &Value) -> Res<String> {
    Ok(match v {
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(format!("meta value {other} is not a string or number")),
    })
}

fn mkfifo(path: &Path) -> Res<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: valid NUL-terminated path.
    check(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, "mkfifo")
}

fn lay_file(f: &Value) -> Res<()> {
    let path = PathBuf::from(
        f.get("path")
            .and_then(Value::as_str)
            .ok_or("needs \"path\"")?,
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create parent: {e}"))?;
    }
    match f.get("kind").and_then(Value::as_str).unwrap_or("file") {
        "file" => std::fs::write(&path, f.get("text").and_then(Value::as_str).unwrap_or(""))
            .map_err(|e| e.to_string()),
        "dir" => std::fs::create_dir_all(&path).map_err(|e| e.to_string()),
        "fifo" => mkfifo(&path),
        "symlink" => symlink(
            f.get("target")
                .and_then(Value::as_str)
                .ok_or("needs \"target\"")?,
            &path,
        )
        .map_err(|e| e.to_string()),
        k => Err(format!("kind {k:?} is not file, dir, fifo or symlink")),
    }
}

fn unhex(h: &str) -> Res<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return Err("text_hex has an odd length".into());
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|e| format!("text_hex: {e}")))
        .collect()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
