//! The scenario's markers — written by the core's writer
//! (`"writer": "core"`) or by hand, as text, bytes, a FIFO, a symlink or a
//! sparse file — and its other files (`"files"`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use firma_stack::sidecar_markers::{MetadataFile, create_marker};
use serde_json::{Map, Value, json};

use crate::fixture::{Dirs, check};
use crate::placeholders::subst;
use crate::scenario::{MARKER_KEYS, Res, Scenario, only_keys};

/// Lays every marker of `"markers"` down; returns, by directory name, the
/// entry each stands for (for `$marker` in expected answers).
pub fn lay_markers(
    scenario: &Scenario,
    dirs: &Dirs,
    ph: &BTreeMap<String, Value>,
) -> Res<BTreeMap<String, Map<String, Value>>> {
    let mut laid: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for m in &scenario.array("markers", "markers must be an array")? {
        let m = subst(m, ph)?;
        let dir = m
            .get("dir")
            .and_then(Value::as_str)
            .ok_or("a marker needs \"dir\"")?
            .to_owned();
        let entry = lay_marker(&dirs.runtime, &dirs.outside, &dir, &m)
            .map_err(|e| format!("marker {dir:?}: {e}"))?;
        laid.insert(dir, entry);
    }
    Ok(laid)
}

/// Lays every file of `"files"` down.
pub fn lay_files(scenario: &Scenario, ph: &BTreeMap<String, Value>) -> Res<()> {
    for f in &scenario.array("files", "files must be an array")? {
        let f = subst(f, ph)?;
        lay_file(&f).map_err(|e| format!("file {f}: {e}"))?;
    }
    Ok(())
}

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
    let meta = marker_meta(dir, m)?;
    let root = match m.get("under").and_then(Value::as_str) {
        Some(u) => PathBuf::from(u),
        None => runtime.to_path_buf(),
    };
    let runtime = root.as_path();
    let marker_dir = runtime.join("run").join(dir);
    let entry = reported_entry(&meta, &marker_dir, writer == "core");
    if writer == "core" {
        write_with_core(runtime, &meta, &marker_dir)?;
    } else {
        write_by_hand(&marker_dir, outside, dir, m, &meta)?;
    }
    Ok(entry)
}

/// The marker's metadata: the defaults, then `"meta"`, less `"omit"` (and
/// less an empty `listen`).
fn marker_meta(dir: &str, m: &Value) -> Res<Map<String, Value>> {
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
    Ok(meta)
}

/// The entry reported for a marker: its metadata without the keys that are
/// not reported, plus `listen` (the marker's socket when none is written)
/// and `uptime_secs` (set for the core's writer, which writes
/// `sidecar.pid`).
fn reported_entry(meta: &Map<String, Value>, marker_dir: &Path, core: bool) -> Map<String, Value> {
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
        if core { json!("set") } else { Value::Null },
    );
    entry
}

/// Writes the marker with the core's writer, which must make `marker_dir`.
fn write_with_core(runtime: &Path, meta: &Map<String, Value>, marker_dir: &Path) -> Res<()> {
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
    Ok(())
}

/// Writes the marker by hand: its text (given, or from `meta`) as the
/// scenario's `"metadata"` says — a file, none, a FIFO, a symlink to a file
/// outside, or a sparse 1 GiB file.
fn write_by_hand(
    marker_dir: &Path,
    outside: &Path,
    dir: &str,
    m: &Value,
    meta: &Map<String, Value>,
) -> Res<()> {
    std::fs::create_dir_all(marker_dir).map_err(|e| format!("mkdir: {e}"))?;
    let text = marker_text(m, meta)?;
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
    Ok(())
}

/// A hand-written marker's bytes: `"text"`, `"text_hex"` or `meta` as TOML,
/// then `"extra_toml"`, then padding to `"pad_to"` bytes.
fn marker_text(m: &Value, meta: &Map<String, Value>) -> Res<Vec<u8>> {
    let mut text: Vec<u8> = match (m.get("text").and_then(Value::as_str), m.get("text_hex")) {
        (Some(t), _) => t.as_bytes().to_vec(),
        (None, Some(h)) => unhex(h.as_str().ok_or("text_hex must be a string")?)?,
        (None, None) => {
            let mut t = String::new();
            for (k, v) in meta {
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
    Ok(text)
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
