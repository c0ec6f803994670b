//! Target 2: the C ABI (`firma_stack::ffi`) driven with arbitrary byte
//! strings — non-UTF-8, cut at an embedded NUL as C would see them, NULL
//! pointers, NULL out-pointers, any timeout.
//!
//! Invariants checked on every call:
//! - the status is one of 0..=4 (5, `FIRMA_INTERNAL`, means a panic was
//!   caught at the boundary: a bug);
//! - a NULL out-pointer gives `FIRMA_INVALID_ARGUMENT`;
//! - otherwise the out string is always set, is valid UTF-8 and valid JSON
//!   (a plain string for `firma_default_runtime_dir`), is freed with
//!   `firma_string_free`, and has the shape its status promises: an error
//!   object `{code, message, path, errno}` whose code matches the status,
//!   or the result (`list`: entries never `stopped`; `gc`: ids; `get`: the
//!   entry asked for, or `null`);
//! - the live, corrupt and mismatched markers of the fixture survive.
//!
//! Every directory argument is confined below the fixture: the fuzzed bytes
//! become one path component (a `/` in them is replaced), appended to a
//! directory two levels inside the temporary directory, so even `..` stays
//! inside. Sandbox ids are passed as they are: the library must refuse
//! anything outside the grammar.

use std::ffi::{CStr, CString, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use firma_stack::ffi::{self, FirmaStatus};
use serde_json::Value;

use crate::{dead_pid, metadata};

#[derive(Arbitrary, Debug)]
pub struct AbiCase {
    pub calls: Vec<Call>,
}

#[derive(Arbitrary, Debug)]
pub enum Call {
    List {
        dir: DirArg,
        timeout_ms: u32,
        null_out: bool,
    },
    Get {
        dir: DirArg,
        id: Bytes,
        timeout_ms: u32,
        null_out: bool,
    },
    Gc {
        dir: DirArg,
        null_out: bool,
    },
    Probe {
        dir: DirArg,
        timeout_ms: u32,
        null_out: bool,
    },
    DefaultDir {
        null_out: bool,
    },
    FreeNull,
    AbiVersion,
}

#[derive(Arbitrary, Debug)]
pub enum DirArg {
    Null,
    Fixture,
    Marker(u8),
    Under(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum Bytes {
    Null,
    Pick(u8),
    Raw(Vec<u8>),
}

const MARKERS: &[&str] = &["live", "stale", "corrupt", "mismatch", "fifo", "absent"];

/// The markers that must survive whatever is called.
const KEPT: &[&str] = &["live", "corrupt", "mismatch", "fifo"];

struct Fixture {
    _tmp: tempfile::TempDir,
    /// `<tmp>/base/rt`: the runtime directory with the markers.
    rt: PathBuf,
    /// `<tmp>/base/sub`: where fuzzed path components are appended.
    sub: PathBuf,
}

fn write(rt: &Path, dir: &str, text: &str) {
    let d = rt.join("run").join(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("metadata.toml"), text).unwrap();
}

fn fixture() -> Fixture {
    let tmp = tempfile::Builder::new()
        .prefix("fzabi")
        .tempdir()
        .expect("temp dir");
    let base = tmp.path().join("base");
    let rt = base.join("rt");
    let sub = base.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    write(&rt, "live", &metadata("live", std::process::id()));
    write(&rt, "stale", &metadata("stale", dead_pid()));
    write(&rt, "corrupt", "this is [ not toml");
    write(&rt, "mismatch", &metadata("someone-else", dead_pid()));
    let fifo = rt.join("run/fifo");
    std::fs::create_dir_all(&fifo).unwrap();
    let c = CString::new(fifo.join("metadata.toml").as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path.
    unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    Fixture { _tmp: tmp, rt, sub }
}

/// Points the default runtime directory (NULL `runtime_dir`) at a private
/// temporary directory, once, before any call.
fn init_default_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("firma-fuzz-default-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("run")).unwrap();
        // SAFETY: runs once, before this process makes any library call;
        // libFuzzer and the replay test run inputs on one thread.
        unsafe { std::env::set_var("FIRMA_STATE_DIR", &dir) };
        dir
    })
}

/// The bytes as C sees them: up to the first NUL.
fn c_string(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("cut at the first NUL")
}

fn dir_arg(fx: &Fixture, arg: &DirArg) -> Option<CString> {
    match arg {
        DirArg::Null => None,
        DirArg::Fixture => Some(c_string(fx.rt.as_os_str().as_bytes())),
        DirArg::Marker(i) => {
            let m = fx.rt.join("run").join(MARKERS[*i as usize % MARKERS.len()]);
            Some(c_string(m.as_os_str().as_bytes()))
        }
        DirArg::Under(raw) => {
            let mut p = fx.sub.as_os_str().as_bytes().to_vec();
            p.push(b'/');
            p.extend(raw.iter().map(|&b| if b == b'/' { b'_' } else { b }));
            Some(c_string(&p))
        }
    }
}

fn id_arg(b: &Bytes) -> Option<CString> {
    match b {
        Bytes::Null => None,
        Bytes::Pick(i) => Some(c_string(MARKERS[*i as usize % MARKERS.len()].as_bytes())),
        Bytes::Raw(raw) => Some(c_string(raw)),
    }
}

fn ptr(c: &Option<CString>) -> *const c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// Entry point for libFuzzer and the replay test.
pub fn run(data: &[u8]) {
    let default_dir = init_default_dir();
    let mut u = Unstructured::new(data);
    let Ok(case) = AbiCase::arbitrary(&mut u) else {
        return;
    };
    let fx = fixture();
    for call in case.calls.iter().take(8) {
        one_call(&fx, default_dir, call);
    }
    for id in KEPT {
        assert!(
            fx.rt.join("run").join(id).join("metadata.toml").exists(),
            "marker {id} was removed"
        );
    }
}

fn one_call(fx: &Fixture, default_dir: &Path, call: &Call) {
    let mut out: *mut c_char = std::ptr::null_mut();
    let (null_out, kind) = match call {
        Call::List { null_out, .. } => (*null_out, "list"),
        Call::Get { null_out, .. } => (*null_out, "get"),
        Call::Gc { null_out, .. } => (*null_out, "gc"),
        Call::Probe { null_out, .. } => (*null_out, "probe"),
        Call::DefaultDir { null_out } => (*null_out, "default"),
        Call::FreeNull => {
            // SAFETY: NULL is a documented no-op.
            unsafe { ffi::firma_string_free(std::ptr::null_mut()) };
            return;
        }
        Call::AbiVersion => {
            assert_eq!(ffi::firma_abi_version(), ffi::FIRMA_ABI_VERSION);
            return;
        }
    };
    let out_ptr: *mut *mut c_char = if null_out {
        std::ptr::null_mut()
    } else {
        &mut out
    };
    let timeout = |t: &u32| t % 50;
    let mut asked_id: Option<CString> = None;
    // SAFETY: every pointer is NULL or a live NUL-terminated CString, and
    // out_ptr is NULL or points to `out`.
    let status = unsafe {
        match call {
            Call::List {
                dir, timeout_ms, ..
            } => {
                let d = dir_arg(fx, dir);
                ffi::firma_sidecar_list_with_timeout(ptr(&d), timeout(timeout_ms), out_ptr)
            }
            Call::Get {
                dir,
                id,
                timeout_ms,
                ..
            } => {
                let d = dir_arg(fx, dir);
                asked_id = id_arg(id);
                ffi::firma_sidecar_get_with_timeout(
                    ptr(&d),
                    ptr(&asked_id),
                    timeout(timeout_ms),
                    out_ptr,
                )
            }
            Call::Gc { dir, .. } => {
                let d = dir_arg(fx, dir);
                ffi::firma_sidecar_gc_stale(ptr(&d), out_ptr)
            }
            Call::Probe {
                dir, timeout_ms, ..
            } => {
                let d = dir_arg(fx, dir);
                ffi::firma_sidecar_probe_entry_with_timeout(ptr(&d), timeout(timeout_ms), out_ptr)
            }
            Call::DefaultDir { .. } => ffi::firma_default_runtime_dir(out_ptr),
            Call::FreeNull | Call::AbiVersion => unreachable!(),
        }
    };
    assert!(
        (0..=4).contains(&status),
        "{kind}: status {status} (5 is a panic caught at the boundary)"
    );
    if null_out {
        assert_eq!(status, FirmaStatus::FIRMA_INVALID_ARGUMENT as i32);
        return;
    }
    assert!(!out.is_null(), "{kind}: status {status} but no out string");
    // SAFETY: the library stored a NUL-terminated string it owns.
    let text = unsafe { CStr::from_ptr(out) }
        .to_str()
        .map(str::to_owned)
        .unwrap_or_else(|e| panic!("{kind}: out string is not UTF-8: {e}"));
    // SAFETY: freed exactly once, as the ABI asks.
    unsafe { ffi::firma_string_free(out) };

    if kind == "default" && status == 0 {
        assert_eq!(Path::new(&text), default_dir, "default runtime dir");
        return;
    }
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{kind}: out string is not JSON ({e}): {text:?}"));
    if status != 0 {
        let code = match status {
            1 => "invalid_argument",
            2 => "io",
            3 => "marker_parse",
            4 => "identity_mismatch",
            _ => unreachable!(),
        };
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("{kind}: error not an object: {text}"));
        assert_eq!(
            obj.get("code").and_then(Value::as_str),
            Some(code),
            "{text}"
        );
        assert!(obj.get("message").is_some_and(Value::is_string), "{text}");
        assert!(
            obj.get("path")
                .is_some_and(|p| p.is_null() || p.is_string()),
            "{text}"
        );
        assert!(
            obj.get("errno").is_some_and(|p| p.is_null() || p.is_i64()),
            "{text}"
        );
        return;
    }
    match kind {
        "list" => {
            for e in v.as_array().unwrap_or_else(|| panic!("list: {text}")) {
                assert!(e.get("sandbox_id").is_some_and(Value::is_string), "{text}");
                assert_ne!(
                    e.get("state").and_then(Value::as_str),
                    Some("stopped"),
                    "{text}"
                );
            }
        }
        "gc" => {
            for id in v.as_array().unwrap_or_else(|| panic!("gc: {text}")) {
                assert!(id.is_string(), "{text}");
            }
        }
        "get" => {
            if !v.is_null() {
                let want = asked_id.as_ref().map(|c| c.to_string_lossy().into_owned());
                assert_eq!(
                    v.get("sandbox_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    want,
                    "get returned another marker: {text}"
                );
            }
        }
        "probe" => assert!(v.get("sandbox_id").is_some_and(Value::is_string), "{text}"),
        _ => unreachable!(),
    }
}

/// Named traits of a decoded input, used to pick a seed corpus covering
/// every function and kind of argument (see `tests/replay.rs`).
pub fn features(data: &[u8]) -> Vec<String> {
    let mut u = Unstructured::new(data);
    let Ok(case) = AbiCase::arbitrary(&mut u) else {
        return Vec::new();
    };
    let dir = |d: &DirArg| match d {
        DirArg::Null => "dir-null".to_owned(),
        DirArg::Fixture => "dir-fixture".to_owned(),
        DirArg::Marker(i) => format!("dir-marker-{}", MARKERS[*i as usize % MARKERS.len()]),
        DirArg::Under(b) if std::str::from_utf8(b).is_err() => "dir-nonutf8".to_owned(),
        DirArg::Under(b) if b.contains(&0) => "dir-nul".to_owned(),
        DirArg::Under(_) => "dir-under".to_owned(),
    };
    let mut out = Vec::new();
    for c in case.calls.iter().take(8) {
        let (name, d, null_out) = match c {
            Call::List { dir, null_out, .. } => ("list", Some(dir), *null_out),
            Call::Gc { dir, null_out } => ("gc", Some(dir), *null_out),
            Call::Probe { dir, null_out, .. } => ("probe", Some(dir), *null_out),
            Call::Get {
                dir, id, null_out, ..
            } => {
                out.push(match id {
                    Bytes::Null => "id-null".to_owned(),
                    Bytes::Pick(i) => format!("id-{}", MARKERS[*i as usize % MARKERS.len()]),
                    Bytes::Raw(b) if std::str::from_utf8(b).is_err() => "id-nonutf8".to_owned(),
                    Bytes::Raw(b) if b.contains(&0) => "id-nul".to_owned(),
                    Bytes::Raw(b) if b.windows(2).any(|w| w == b"..") => "id-dotdot".to_owned(),
                    Bytes::Raw(_) => "id-raw".to_owned(),
                });
                ("get", Some(dir), *null_out)
            }
            Call::DefaultDir { null_out } => ("default", None, *null_out),
            Call::FreeNull => ("free-null", None, false),
            Call::AbiVersion => ("abi-version", None, false),
        };
        out.push(format!("fn-{name}"));
        if let Some(d) = d {
            out.push(format!("{name}-{}", dir(d)));
        }
        if null_out {
            out.push("null-out".to_owned());
        }
    }
    out
}
