//! Target 1: a runtime directory built from arbitrary bytes — marker names
//! (valid ids, raw bytes, the library's reserved `.tmp-`/`.gc-` names),
//! what a name is (a directory, a symlink out of `run/` or to a sibling, a
//! file, a FIFO), what `metadata.toml` is (structured or raw contents, a
//! FIFO, a socket, a device, a symlink, a directory, huge or exactly at the
//! size cap), pids (ours, dead, init, 0, negative, out of range, not an
//! integer), `listen` forms and identity fields — then `probe_entry`, `get`,
//! `list` and `gc_stale` over it.
//!
//! Invariants checked on every input:
//! - no call panics (a panic is the fuzzer's crash);
//! - `probe_entry` and `get` change nothing;
//! - `get` of an invalid id is `invalid_argument`; of a valid one it agrees
//!   with `probe_entry` on the same real directory;
//! - a marker leaves `run/` only if an independent, regex-free reading of
//!   it says it parses and names a provably stopped process, and `get` said
//!   `stopped` before (or it is a `.gc-` leftover, or the `.tmp-` directory
//!   of a writer that is gone); a marker that does not parse is never
//!   removed; entries that stay are unchanged; nothing appears;
//! - `gc_stale` reports exactly the ids it removed, each once;
//! - `list` never returns a `stopped` entry, and returns sorted ids of
//!   markers that are still there;
//! - nothing outside `run/` changes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use firma_stack::sidecar_markers::{
    self as sm, MAX_METADATA_BYTES, ProbeOptions, StackError, State,
};

use crate::snapshot::{self, Node};
use crate::{dead_pid, is_dead, metadata, own_identity, toml_string};

const NAMES: &[&str] = &[
    "a", "b-1", "web.2", "x_y", "Z9", "run", "sidecar", "a.", "-", "_",
];

#[derive(Arbitrary, Debug)]
pub struct Case {
    pub markers: Vec<MarkerSpec>,
    pub list_first: bool,
    pub timeout_ms: u8,
}

#[derive(Arbitrary, Debug)]
pub struct MarkerSpec {
    pub name: Name,
    pub body: Body,
}

#[derive(Arbitrary, Debug)]
pub enum Name {
    Pick(u8),
    Raw(Vec<u8>),
    Tmp { pid: PidPick, n: u8 },
    Gc(u16),
}

#[derive(Arbitrary, Debug)]
pub enum Body {
    Dir {
        meta: Box<Meta>,
        pid_file: PidFile,
        socket: bool,
        extra: Vec<(Vec<u8>, Vec<u8>)>,
        depth: u8,
    },
    SymlinkToOutside,
    SymlinkToSibling(u8),
    File(Vec<u8>),
    Fifo,
}

#[derive(Arbitrary, Debug)]
pub enum Meta {
    Missing,
    Text(Text),
    Fifo,
    Socket,
    Device,
    SymlinkToOutside,
    SymlinkDangling,
    Directory,
    Huge { stale: Box<Fields>, extra: u16 },
    AtCap(Box<Fields>),
}

#[derive(Arbitrary, Debug)]
pub enum Text {
    Raw(Vec<u8>),
    Fields(Box<Fields>),
}

#[derive(Arbitrary, Debug)]
pub struct Fields {
    pub id: IdPick,
    pub agent: String,
    pub session: String,
    pub url: String,
    pub version: String,
    pub pid: PidPick,
    pub started_at: String,
    pub listen: Listen,
    pub boot: Option<Boot>,
    pub ticks: Option<Ticks>,
    /// Index of one key to leave out (most values leave none out).
    pub omit: u8,
    pub extra: Option<(String, String)>,
    pub duplicate_id: bool,
}

#[derive(Arbitrary, Debug)]
pub enum IdPick {
    Dir,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum PidPick {
    Own,
    Dead,
    Init,
    Zero,
    Neg(i32),
    Raw(i64),
    Max,
    MaxPlus1,
    Str,
    Float,
}

#[derive(Arbitrary, Debug)]
pub enum Listen {
    Absent,
    Empty,
    MarkerSocket,
    TmpPath(String),
    Loopback(u16),
    Loopback6(u16),
    Localhost(u16),
    HostName(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
pub enum Boot {
    Host,
    Other(String),
}

#[derive(Arbitrary, Debug)]
pub enum Ticks {
    Own,
    Other(u64),
}

#[derive(Arbitrary, Debug)]
pub enum PidFile {
    None,
    Regular,
    Symlink,
    Dir,
    Fifo,
}

/// Entry point for libFuzzer and the replay test.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(case) = Case::arbitrary(&mut u) else {
        return;
    };
    check(&case);
}

fn pid_value(p: PidPick) -> String {
    match p {
        PidPick::Own => std::process::id().to_string(),
        PidPick::Dead => dead_pid().to_string(),
        PidPick::Init => "1".into(),
        PidPick::Zero => "0".into(),
        PidPick::Neg(n) => (-(i64::from(n).abs()) - 1).to_string(),
        PidPick::Raw(n) => n.to_string(),
        PidPick::Max => (i32::MAX).to_string(),
        PidPick::MaxPlus1 => (i64::from(i32::MAX) + 1).to_string(),
        PidPick::Str => format!("\"{}\"", dead_pid()),
        PidPick::Float => "1.5".into(),
    }
}

fn sanitize_name(raw: &[u8]) -> Option<Vec<u8>> {
    let mut v: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'/' || b == 0 { b'_' } else { b })
        .take(255)
        .collect();
    if v.is_empty() || v == b"." || v == b".." {
        return None;
    }
    v.truncate(255);
    Some(v)
}

fn bare_key(s: &str) -> String {
    let k: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(32)
        .collect();
    if k.is_empty() { "k".into() } else { k }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    rt: PathBuf,
    run: PathBuf,
    outside: PathBuf,
    listeners: Vec<UnixListener>,
}

fn render(f: &Fields, dir_name: &[u8], root: &Path) -> String {
    let id = match &f.id {
        IdPick::Dir => String::from_utf8_lossy(dir_name).into_owned(),
        IdPick::Other(s) => s.clone(),
    };
    let listen = match &f.listen {
        Listen::Absent => None,
        Listen::Empty => Some(String::new()),
        Listen::MarkerSocket => Some(
            root.join("rt/run")
                .join(OsStr::from_bytes(dir_name))
                .join("sidecar.sock")
                .to_string_lossy()
                .into_owned(),
        ),
        Listen::TmpPath(s) => Some(format!("{}/{}", root.display(), s.replace("..", "_"))),
        Listen::Loopback(p) => Some(format!("127.0.0.1:{p}")),
        Listen::Loopback6(p) => Some(format!("[::1]:{p}")),
        Listen::Localhost(p) => Some(format!("localhost:{p}")),
        Listen::HostName(h) => Some(format!("{}:80", bare_key(h))),
        Listen::Raw(s) => Some(s.clone()),
    };
    let (boot, ticks) = own_identity();
    let mut lines: Vec<String> = vec![
        format!("sandbox_id = {}", toml_string(&id)),
        format!("agent_id = {}", toml_string(&f.agent)),
        format!("session_id = {}", toml_string(&f.session)),
        format!("authority_url = {}", toml_string(&f.url)),
        format!("policy_bundle_version = {}", toml_string(&f.version)),
        format!("pid = {}", pid_value(f.pid)),
        format!("started_at = {}", toml_string(&f.started_at)),
    ];
    if let Some(l) = listen {
        lines.push(format!("listen = {}", toml_string(&l)));
    }
    match &f.boot {
        Some(Boot::Host) => lines.push(format!("boot_id = {}", toml_string(&boot))),
        Some(Boot::Other(s)) => lines.push(format!("boot_id = {}", toml_string(s))),
        None => {}
    }
    match &f.ticks {
        Some(Ticks::Own) => lines.push(format!("pid_start_ticks = {ticks}")),
        Some(Ticks::Other(t)) => lines.push(format!("pid_start_ticks = {t}")),
        None => {}
    }
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if usize::from(f.omit) == i {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if f.duplicate_id {
        out.push_str(&format!("sandbox_id = {}\n", toml_string(&id)));
    }
    if let Some((k, v)) = &f.extra {
        out.push_str(&format!("{} = {}\n", bare_key(k), toml_string(v)));
    }
    out
}

fn mkfifo(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid NUL-terminated path.
    unsafe { libc::mkfifo(c.as_ptr(), 0o644) == 0 }
}

fn mknod_null(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid path; creates a character device like /dev/null (1, 3),
    // which only root may do.
    unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) == 0 }
}

fn build(case: &Case) -> Fixture {
    let tmp = tempfile::Builder::new()
        .prefix("fz")
        .tempdir()
        .expect("temp dir");
    let root = tmp.path().to_path_buf();
    let rt = root.join("rt");
    let run = rt.join("run");
    let outside = root.join("outside");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"must survive").unwrap();
    let mut fx = Fixture {
        _tmp: tmp,
        root,
        rt,
        run,
        outside,
        listeners: Vec::new(),
    };
    let mut used: Vec<Vec<u8>> = Vec::new();
    for spec in case.markers.iter().take(8) {
        let name = match &spec.name {
            Name::Pick(i) => NAMES[*i as usize % NAMES.len()].as_bytes().to_vec(),
            Name::Raw(raw) => match sanitize_name(raw) {
                Some(n) => n,
                None => continue,
            },
            Name::Tmp { pid, n } => {
                format!(".tmp-{}-{n}", pid_value(*pid).trim_matches('"')).into_bytes()
            }
            Name::Gc(n) => format!(".gc-{n}-0").into_bytes(),
        };
        if used.contains(&name) {
            continue;
        }
        used.push(name.clone());
        let path = fx.run.join(OsStr::from_bytes(&name));
        build_entry(&mut fx, &name, &path, &spec.body, &used);
    }
    fx
}

fn build_entry(fx: &mut Fixture, name: &[u8], path: &Path, body: &Body, used: &[Vec<u8>]) {
    match body {
        Body::SymlinkToOutside => {
            // A perfectly stale marker of the same name, outside run/.
            let target = fx.outside.join(OsStr::from_bytes(name));
            if std::fs::create_dir_all(&target).is_ok() {
                let stale = metadata(&String::from_utf8_lossy(name), dead_pid());
                let _ = std::fs::write(target.join("metadata.toml"), stale);
            }
            let _ = std::os::unix::fs::symlink(&target, path);
        }
        Body::SymlinkToSibling(i) => {
            let target = &used[*i as usize % used.len()];
            let _ = std::os::unix::fs::symlink(OsStr::from_bytes(target), path);
        }
        Body::File(bytes) => {
            let _ = std::fs::write(path, bytes);
        }
        Body::Fifo => {
            mkfifo(path);
        }
        Body::Dir {
            meta,
            pid_file,
            socket,
            extra,
            depth,
        } => {
            if std::fs::create_dir(path).is_err() {
                return;
            }
            build_meta(fx, name, path, meta);
            let pid_path = path.join("sidecar.pid");
            match pid_file {
                PidFile::None => {}
                PidFile::Regular => {
                    let _ = std::fs::write(&pid_path, b"1\n");
                }
                PidFile::Symlink => {
                    let _ = std::os::unix::fs::symlink("/etc/hostname", &pid_path);
                }
                PidFile::Dir => {
                    let _ = std::fs::create_dir(&pid_path);
                }
                PidFile::Fifo => {
                    mkfifo(&pid_path);
                }
            }
            if *socket && let Ok(l) = UnixListener::bind(path.join("sidecar.sock")) {
                fx.listeners.push(l);
            }
            for (fname, contents) in extra.iter().take(3) {
                if let Some(n) = sanitize_name(fname) {
                    let _ = std::fs::write(path.join(OsStr::from_bytes(&n)), contents);
                }
            }
            let mut deep = path.to_path_buf();
            for level in 0..(*depth % 12) {
                deep.push(format!("d{level}"));
            }
            if deep != path {
                let _ = std::fs::create_dir_all(&deep);
                let _ = std::fs::write(deep.join("leaf"), b"x");
            }
        }
    }
}

fn build_meta(fx: &Fixture, name: &[u8], dir: &Path, meta: &Meta) {
    let m = dir.join("metadata.toml");
    match meta {
        Meta::Missing => {}
        Meta::Text(Text::Raw(bytes)) => {
            let _ = std::fs::write(&m, bytes);
        }
        Meta::Text(Text::Fields(f)) => {
            let _ = std::fs::write(&m, render(f, name, &fx.root));
        }
        Meta::Fifo => {
            mkfifo(&m);
        }
        Meta::Socket => {
            // A socket file nobody listens on.
            drop(UnixListener::bind(&m));
        }
        Meta::Device => {
            mknod_null(&m);
        }
        Meta::SymlinkToOutside => {
            let target = fx.outside.join("linked-metadata.toml");
            let text = metadata(&String::from_utf8_lossy(name), dead_pid());
            let _ = std::fs::write(&target, text);
            let _ = std::os::unix::fs::symlink(&target, &m);
        }
        Meta::SymlinkDangling => {
            let _ = std::os::unix::fs::symlink(fx.root.join("nowhere"), &m);
        }
        Meta::Directory => {
            let _ = std::fs::create_dir(&m);
        }
        Meta::Huge { stale, extra } => {
            let text = render(stale, name, &fx.root);
            if std::fs::write(&m, text).is_ok()
                && let Ok(f) = std::fs::OpenOptions::new().append(true).open(&m)
            {
                let _ = f.set_len(MAX_METADATA_BYTES as u64 + 1 + u64::from(*extra));
            }
        }
        Meta::AtCap(fields) => {
            let mut text = render(fields, name, &fx.root);
            if text.len() < MAX_METADATA_BYTES {
                text.push('#');
                while text.len() < MAX_METADATA_BYTES - 1 {
                    text.push('x');
                }
                text.push('\n');
            }
            let _ = std::fs::write(&m, text);
        }
    }
}

/// True when every `metadata.toml` under the fixture names only endpoints
/// inside it or on loopback: only then may the library probe.
fn hermetic(root: &Path) -> bool {
    let mut files = Vec::new();
    snapshot::files_named(root, "metadata.toml", &mut files);
    let root_s = root.to_string_lossy().into_owned();
    files.iter().all(|f| {
        let Ok(text) = std::fs::read(f) else {
            return false;
        };
        let Ok(text) = std::str::from_utf8(&text) else {
            return true; // never parsed, never probed
        };
        let Ok(table) = text.parse::<toml::Table>() else {
            return true;
        };
        match table.get("listen") {
            None => true,
            Some(toml::Value::String(s)) => listen_is_local(s, &root_s),
            Some(_) => true, // a parse error for the library
        }
    })
}

fn listen_is_local(s: &str, root: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if s.starts_with('/') {
        return s.starts_with(root) && !s.contains("..");
    }
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return addr.ip().is_loopback();
    }
    match s.rsplit_once(':') {
        Some((host, _)) => host.eq_ignore_ascii_case("localhost"),
        None => true,
    }
}

/// The independent reading of a marker: does it parse, and does it name a
/// process that is provably not the one it was written for? Regex-free and
/// without the library's types.
fn independent_verdict(run: &Path, name: &[u8]) -> (bool, bool) {
    let dir = run.join(OsStr::from_bytes(name));
    let Ok(dm) = std::fs::symlink_metadata(&dir) else {
        return (false, false);
    };
    if !dm.file_type().is_dir() {
        return (false, false);
    }
    let m = dir.join("metadata.toml");
    let Ok(mm) = std::fs::symlink_metadata(&m) else {
        return (false, false);
    };
    if !mm.file_type().is_file() || mm.len() > MAX_METADATA_BYTES as u64 {
        return (false, false);
    }
    let Ok(bytes) = std::fs::read(&m) else {
        return (false, false);
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return (false, false);
    };
    let Ok(t) = text.parse::<toml::Table>() else {
        return (false, false);
    };
    let is_str = |k: &str| matches!(t.get(k), Some(toml::Value::String(_)));
    let required = "sandbox_id agent_id session_id authority_url policy_bundle_version started_at";
    if !required.split(' ').all(is_str) {
        return (false, false);
    }
    let pid = match t.get("pid") {
        Some(toml::Value::Integer(p)) if (1..=i64::from(i32::MAX)).contains(p) => *p,
        _ => return (false, false),
    };
    if t.get("sandbox_id")
        .and_then(|v| v.as_str())
        .map(str::as_bytes)
        != Some(name)
    {
        return (false, false);
    }
    let listen_ok = match t.get("listen") {
        None => true,
        Some(toml::Value::String(s)) => {
            s.is_empty()
                || (s.starts_with('/') && !s.contains('\0'))
                || s.parse::<std::net::SocketAddr>().is_ok()
                || s.rsplit_once(':').is_some_and(|(h, p)| {
                    h.eq_ignore_ascii_case("localhost") && p.parse::<u16>().is_ok()
                })
        }
        Some(_) => false,
    };
    let boot = match t.get("boot_id") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(_) => return (false, false),
    };
    let ticks = match t.get("pid_start_ticks") {
        None => None,
        Some(toml::Value::Integer(n)) if *n >= 0 => Some(*n as u64),
        Some(_) => return (false, false),
    };
    if !listen_ok {
        return (false, false);
    }
    let (host_boot, _) = own_identity();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    let fields: Option<Vec<String>> = stat.as_ref().and_then(|s| {
        s.rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
    });
    let zombie = fields
        .as_ref()
        .and_then(|f| f.first())
        .is_some_and(|s| s == "Z" || s == "X");
    let ticks_differ = match (ticks, fields.as_ref().and_then(|f| f.get(19))) {
        (Some(t), Some(actual)) => actual.parse::<u64>().ok() != Some(t),
        _ => false,
    };
    // Boot ids compare as UUIDs; one that is not a UUID proves nothing, so
    // the marker can never be stale.
    let (recorded, host) = (boot.as_deref().map(uuid_hex), uuid_hex(&host_boot));
    if recorded == Some(None) {
        return (true, false);
    }
    let other_boot = matches!((recorded, host), (Some(Some(r)), Some(h)) if r != h);
    let stopped = is_dead(pid) || zombie || ticks_differ || other_boot;
    (true, stopped)
}

/// A boot id as 32 lowercase hex digits, if it is a UUID (any case, with
/// or without braces and dashes): read as groups, independently of the
/// library's position checks.
fn uuid_hex(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = match (s.starts_with('{'), s.ends_with('}')) {
        (true, true) if s.len() >= 2 => &s[1..s.len() - 1],
        (false, _) => s,
        _ => return None,
    };
    let groups: Vec<&str> = inner.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [32] && lens != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex = groups.concat();
    hex.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| hex.to_ascii_lowercase())
}

/// The library's own debris: the tomb of a collector (`.gc-<pid>-*`) or
/// the temporary directory of a writer (`.tmp-<pid>-*`) whose process is
/// gone. A live owner's reserved name must be left alone.
fn is_leftover(name: &[u8]) -> bool {
    let s = String::from_utf8_lossy(name);
    s.strip_prefix(".tmp-")
        .or_else(|| s.strip_prefix(".gc-"))
        .and_then(|r| r.split('-').next())
        .and_then(|p| p.parse::<i64>().ok())
        .is_some_and(|p| (1..=i64::from(i32::MAX)).contains(&p) && is_dead(p))
}

/// A tomb of this process's own collections (`.gc-<our pid>-*`).
fn is_own_tomb(name: &[u8]) -> bool {
    name.starts_with(format!(".gc-{}-", std::process::id()).as_bytes())
}

fn check(case: &Case) {
    let fx = build(case);
    let opts =
        ProbeOptions::with_timeout(Duration::from_millis(1 + u64::from(case.timeout_ms % 20)));
    let outside_before = snapshot::take(&fx.outside);
    let rt_files_before: Vec<_> = snapshot::entries(&fx.rt)
        .into_iter()
        .filter(|(k, _)| k != b"run")
        .collect();
    let before = snapshot::entries(&fx.run);
    let probe_ok = hermetic(&fx.root);

    // What get (the library) and the independent reading say beforehand.
    let mut got_stopped: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    let mut independent: BTreeMap<Vec<u8>, (bool, bool)> = BTreeMap::new();
    for name in before.keys() {
        independent.insert(name.clone(), independent_verdict(&fx.run, name));
        if !probe_ok {
            continue;
        }
        let path = fx.run.join(OsStr::from_bytes(name));
        let pe = sm::probe_entry_with(&path, &opts);
        let Ok(id) = std::str::from_utf8(name) else {
            continue;
        };
        let g = sm::get_with(&fx.rt, id, &opts);
        if sm::validate_sandbox_id(id).is_err() {
            assert!(
                matches!(g, Err(StackError::InvalidSandboxId { .. })),
                "get({id:?}) of an invalid id: {g:?}"
            );
            continue;
        }
        let real_dir = matches!(before.get(name), Some(Node::Dir(_)));
        match (&g, &pe) {
            (Ok(Some(a)), Ok(b)) => {
                assert!(real_dir, "get read through a non-directory {id:?}");
                assert_eq!(a.sandbox_id, b.sandbox_id);
                assert_eq!(a.pid, b.pid);
                assert_eq!(a.listen, b.listen);
                got_stopped.insert(name.clone(), a.state == State::Stopped);
            }
            (Ok(Some(a)), Err(e)) => panic!("get({id:?}) = {a:?} but probe_entry failed: {e}"),
            (Ok(None), _) => panic!("get({id:?}) = None for an entry that exists"),
            (Err(a), Err(b)) if real_dir => {
                assert_eq!(
                    a.code(),
                    b.code(),
                    "get vs probe_entry of {id:?}: {a} / {b}"
                )
            }
            (Err(a), Ok(b)) if real_dir => {
                panic!("get({id:?}) failed ({a}) but probe_entry read {b:?}")
            }
            (Err(_), _) => {}
        }
        if let Ok(Some(e)) = &g {
            assert!(
                independent[name].0,
                "get read {id:?} ({e:?}) but it does not parse independently"
            );
        }
    }
    assert_eq!(
        snapshot::entries(&fx.run),
        before,
        "probe_entry/get changed run/"
    );

    let mut removed_by_gc: Vec<String> = Vec::new();
    let mut list_ok = None;
    let mut ops: Vec<bool> = vec![false, true];
    if case.list_first {
        ops.reverse();
    }
    for is_list in ops {
        if is_list {
            if !probe_ok {
                continue;
            }
            match sm::list_with(&fx.rt, &opts) {
                Ok(entries) => list_ok = Some(entries),
                Err(e) => assert_eq!(e.code(), "io", "list failed: {e}"),
            }
        } else {
            match sm::gc_stale(&fx.rt) {
                Ok(ids) => removed_by_gc = ids,
                Err(e) => assert_eq!(e.code(), "io", "gc_stale failed: {e}"),
            }
        }
    }

    let after = snapshot::entries(&fx.run);
    for (name, node) in &after {
        let was = before.get(name);
        if was.is_none() && is_own_tomb(name) {
            // A removal that cannot finish (a stale tree the library cannot
            // delete whole) leaves its tomb, best effort; the marker it held
            // is checked below like any other that left its name.
            continue;
        }
        assert!(was.is_some(), "a new entry appeared in run/: {name:?}");
        // A leftover may be partly removed when its removal fails midway.
        if !is_leftover(name) {
            assert_eq!(Some(node), was, "entry {name:?} changed");
        }
    }
    for name in before.keys() {
        if after.contains_key(name) || is_leftover(name) {
            continue;
        }
        let s = String::from_utf8_lossy(name);
        let (parses, stopped) = independent[name];
        assert!(parses, "removed {s:?}, which does not parse");
        assert!(
            stopped,
            "removed {s:?}, whose process is not provably stopped"
        );
        if let Some(st) = got_stopped.get(name) {
            assert!(*st, "removed {s:?}, which get reported not stopped");
        }
    }
    let mut sorted = removed_by_gc.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, removed_by_gc, "gc ids not sorted and unique");
    for id in &removed_by_gc {
        assert!(
            before.contains_key(id.as_bytes()) && !after.contains_key(id.as_bytes()),
            "gc reported {id:?} but did not remove it"
        );
    }
    if let Some(entries) = list_ok {
        let ids: Vec<&str> = entries.iter().map(|e| e.sandbox_id.as_str()).collect();
        let mut s = ids.clone();
        s.sort();
        assert_eq!(ids, s, "list not sorted");
        for e in &entries {
            assert_ne!(e.state, State::Stopped, "list returned a stopped {e:?}");
            assert!(
                before.contains_key(e.sandbox_id.as_bytes()),
                "list returned an id that was never in run/: {e:?}"
            );
            assert!(
                !removed_by_gc.contains(&e.sandbox_id) || case.list_first,
                "list returned {e:?}, which gc had removed"
            );
        }
    }
    assert_eq!(
        snapshot::take(&fx.outside),
        outside_before,
        "something outside run/ changed"
    );
    let rt_files_after: Vec<_> = snapshot::entries(&fx.rt)
        .into_iter()
        .filter(|(k, _)| k != b"run")
        .collect();
    assert_eq!(rt_files_after, rt_files_before);
    drop(fx.listeners);
}

/// Named traits of a decoded input, used to pick a seed corpus that covers
/// every kind of hostile entry (see `tests/replay.rs`).
pub fn features(data: &[u8]) -> Vec<String> {
    let mut u = Unstructured::new(data);
    let Ok(case) = Case::arbitrary(&mut u) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in case.markers.iter().take(8) {
        let name = match &m.name {
            Name::Pick(_) => "id",
            Name::Raw(r) if std::str::from_utf8(r).is_err() => "nonutf8",
            Name::Raw(_) => "raw",
            Name::Tmp { pid, .. } => match pid {
                PidPick::Dead => "tmp-dead",
                PidPick::Own => "tmp-live",
                _ => "tmp",
            },
            Name::Gc(_) => "gc",
        };
        let body = match &m.body {
            Body::SymlinkToOutside => "symlink-out".to_owned(),
            Body::SymlinkToSibling(_) => "symlink-sibling".to_owned(),
            Body::File(_) => "file".to_owned(),
            Body::Fifo => "fifo".to_owned(),
            Body::Dir {
                meta,
                depth,
                socket,
                ..
            } => {
                if depth % 12 > 8 {
                    out.push(format!("deep-{name}"));
                }
                match meta.as_ref() {
                    Meta::Missing => "missing".to_owned(),
                    Meta::Text(Text::Raw(_)) => "rawtext".to_owned(),
                    Meta::Text(Text::Fields(f)) => {
                        let listen = match f.listen {
                            Listen::Absent => "absent",
                            Listen::Empty => "empty",
                            Listen::MarkerSocket => "markersock",
                            Listen::TmpPath(_) => "unixpath",
                            Listen::Loopback(_) => "tcp4",
                            Listen::Loopback6(_) => "tcp6",
                            Listen::Localhost(_) => "localhost",
                            Listen::HostName(_) => "hostname",
                            Listen::Raw(_) => "raw",
                        };
                        out.push(format!("listen-{listen}"));
                        match (&f.boot, &f.ticks) {
                            (Some(Boot::Other(_)), _) => out.push("ident-otherboot".into()),
                            (_, Some(Ticks::Other(_))) => out.push("ident-otherticks".into()),
                            (Some(Boot::Host), Some(Ticks::Own)) => out.push("ident-own".into()),
                            _ => {}
                        }
                        if usize::from(f.omit) < 9 {
                            out.push("omit-key".into());
                        }
                        if f.duplicate_id {
                            out.push("duplicate-key".into());
                        }
                        let pid = match f.pid {
                            PidPick::Own if *socket => "own-socket",
                            PidPick::Own => "own",
                            PidPick::Dead => "dead",
                            PidPick::Init => "init",
                            PidPick::Zero => "zero",
                            PidPick::Neg(_) => "neg",
                            PidPick::Raw(_) => "rawpid",
                            PidPick::Max => "max",
                            PidPick::MaxPlus1 => "maxplus1",
                            PidPick::Str => "strpid",
                            PidPick::Float => "floatpid",
                        };
                        if matches!(f.id, IdPick::Other(_)) {
                            out.push("id-mismatch".into());
                        }
                        out.push(format!("pid-{pid}"));
                        "fields".to_owned()
                    }
                    Meta::Fifo => "meta-fifo".to_owned(),
                    Meta::Socket => "meta-socket".to_owned(),
                    Meta::Device => "meta-device".to_owned(),
                    Meta::SymlinkToOutside => "meta-symlink".to_owned(),
                    Meta::SymlinkDangling => "meta-dangling".to_owned(),
                    Meta::Directory => "meta-dir".to_owned(),
                    Meta::Huge { .. } => "huge".to_owned(),
                    Meta::AtCap(_) => "atcap".to_owned(),
                }
            }
        };
        out.push(format!("name-{name}"));
        out.push(format!("body-{body}"));
    }
    out
}
